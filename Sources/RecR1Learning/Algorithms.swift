import Foundation
import RecR1Model

// The three methods as trainer steps: each turns its items into token sequences, gets what its loss needs
// (reference log-probs, the sampling policy's log-probs, advantages) and runs one update.

/// A GRPO sample: a completion of a prompt, its reward, and the log-probs of its tokens under the policy
/// that sampled it (nil: the current policy, so the ratio is 1 on the first pass).
public struct GRPOSample {
    public var prompt: [Int32]
    public var completion: [Int32]
    public var oldLogprobs: [Float]?
    public var reward: Float

    public init(prompt: [Int32], completion: [Int32], oldLogprobs: [Float]? = nil, reward: Float) {
        self.prompt = prompt
        self.completion = completion
        self.oldLogprobs = oldLogprobs
        self.reward = reward
    }
}

public struct PreferencePair {
    public var prompt: [Int32]
    public var chosen: [Int32]
    public var rejected: [Int32]

    public init(prompt: [Int32], chosen: [Int32], rejected: [Int32]) {
        self.prompt = prompt
        self.chosen = chosen
        self.rejected = rejected
    }
}

extension Trainer {
    /// GRPO: advantages from each group's rewards, the reference's log-probs when β ≠ 0, then the clipped
    /// objective (GRPO.loss). Metrics add the rewards' mean and standard deviation, and with
    /// `settings.dropFlatGroups` the groups left out ("groups_flat"); when every group is flat the step is
    /// skipped and nothing accumulated is lost.
    public func grpo(groups allGroups: [[GRPOSample]], settings: GRPOSettings, accumulate: Bool = false,
                     learningRate: Float? = nil) -> Report {
        let groups = settings.dropFlatGroups ? allGroups.filter { !GRPO.isFlat($0.map(\.reward)) } : allGroups
        let flat = ["groups_flat": Double(allGroups.count - groups.count)]
        if groups.isEmpty {
            return Report(applied: false, skippedReason: "every group's rewards are equal (drop_flat_groups)",
                          loss: 0, metrics: flat, step: optimizer.step, tokens: 0, sequences: 0)
        }
        let samples = groups.flatMap { $0 }
        let batch = TrainingBatch(prompts: samples.map(\.prompt), completions: samples.map(\.completion))
        let advantages = GRPO.advantages(groups.map { $0.map(\.reward) }, scaling: settings.scaling,
                                         epsilon: settings.advantageEpsilon).flatMap { $0 }
        let reference = settings.beta != 0 ? referenceLogprobs(batch) : nil
        let whole = (tokens: batch.scoredTokens, sequences: samples.count)
        var report = updateSeparately(batch, accumulate: accumulate, learningRate: learningRate) { part, logprobs, entropies in
            let sequences = part.map { i in
                // Without the sampler's log-probs, the current ones (a constant: the ratio's gradient is ρ·A).
                ScoredSequence(logprobs: logprobs[i - part.lowerBound],
                               oldLogprobs: samples[i].oldLogprobs ?? logprobs[i - part.lowerBound],
                               referenceLogprobs: reference?[i])
            }
            return GRPO.loss(sequences, advantages: Array(advantages[part]), entropies: entropies, settings: settings,
                             batch: whole)
        }
        let rewards = samples.map { Double($0.reward) }
        let mean = rewards.reduce(0, +) / Double(max(1, rewards.count))
        report.metrics.merge(flat) { $1 }
        report.metrics["reward_mean"] = mean
        report.metrics["reward_std"] = rewards.count > 1
            ? (rewards.reduce(0) { $0 + ($1 - mean) * ($1 - mean) } / Double(rewards.count - 1)).squareRoot() : 0
        return report
    }

    /// DPO: chosen and rejected completions against the reference (DPO.loss). Metrics add "pairs"; without
    /// pairs (every group was flat) the step is skipped.
    public func dpo(pairs: [PreferencePair], settings: DPOSettings, accumulate: Bool = false,
                    learningRate: Float? = nil) -> Report {
        if pairs.isEmpty {
            return Report(applied: false, skippedReason: "no pair: every group's rewards are equal",
                          loss: 0, metrics: ["pairs": 0], step: optimizer.step, tokens: 0, sequences: 0)
        }
        let batch = TrainingBatch(prompts: pairs.map(\.prompt) + pairs.map(\.prompt),
                                  completions: pairs.map(\.chosen) + pairs.map(\.rejected))
        let reference = referenceLogprobs(batch)
        let n = pairs.count
        var report = update(batch, accumulate: accumulate, learningRate: learningRate) { logprobs, _ in
            let scored = logprobs.indices.map { ScoredSequence(logprobs: logprobs[$0], referenceLogprobs: reference[$0]) }
            return DPO.loss(chosen: Array(scored[..<n]), rejected: Array(scored[n...]), settings: settings)
        }
        report.metrics["pairs"] = Double(n)
        return report
    }

    /// SFT: cross-entropy of the completions.
    public func sft(prompts: [[Int32]], completions: [[Int32]], accumulate: Bool = false,
                    learningRate: Float? = nil) -> Report {
        let batch = TrainingBatch(prompts: prompts, completions: completions)
        return updateSeparately(batch, accumulate: accumulate, learningRate: learningRate) { _, logprobs, _ in
            SFT.loss(logprobs.map { ScoredSequence(logprobs: $0) }, batchTokens: batch.scoredTokens)
        }
    }
}
