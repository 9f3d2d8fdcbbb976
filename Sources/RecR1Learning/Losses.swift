import Foundation

// The losses of GRPO (and its DAPO / Dr. GRPO variants), DPO (sigmoid, IPO) and SFT, written on per-token
// log-probs. Each returns its value, metrics, and dLoss/dlog p for every token: the engine's backward pass
// (TrainingPass.backward) takes it from there.

/// A sequence's tokens as the losses see them: log-probs under the current policy, under the policy that
/// sampled it (GRPO's ratio), and under the reference (KL, DPO).
public struct ScoredSequence {
    public var logprobs: [Float]
    public var oldLogprobs: [Float]?
    public var referenceLogprobs: [Float]?

    public init(logprobs: [Float], oldLogprobs: [Float]? = nil, referenceLogprobs: [Float]? = nil) {
        self.logprobs = logprobs
        self.oldLogprobs = oldLogprobs
        self.referenceLogprobs = referenceLogprobs
    }
}

public struct LossResult {
    public var loss: Double
    /// dLoss / dlog p, shaped like the input log-probs.
    public var gradients: [[Float]]
    public var metrics: [String: Double]
    /// dLoss / dH for the entropy H of each token's distribution, when the loss has an entropy term.
    public var entropyGradients: [[Float]]? = nil
}

// MARK: - GRPO

public struct GRPOSettings: Equatable {
    public enum Scaling { case group, batch, none }
    public enum Aggregation: Equatable { case tokenMean, sequenceMean, constant(maxTokens: Int) }
    public enum KL { case k1, k2, k3 }
    /// The policy term: PPO's clipped token ratio (GRPO, DAPO), GSPO's clipped sequence ratio, or CISPO's
    /// clipped, stopped-gradient importance weight on a REINFORCE term.
    public enum Objective { case clippedToken, clippedSequence, cispo }

    public var epsilonLow: Float = 0.2
    public var epsilonHigh: Float = 0.2      // DAPO's clip-higher: e.g. 0.28
    public var beta: Float = 0.001           // 0 = no KL term (no reference needed)
    public var kl: KL = .k3
    public var scaling: Scaling = .group
    public var aggregation: Aggregation = .tokenMean
    public var advantageEpsilon: Float = 1e-4
    public var entropyCoefficient: Float = 0  // c in ℓ_t −= c·H_t (0 = off)
    public var objective: Objective = .clippedToken
    /// DAPO's dynamic sampling: leave out the groups whose rewards are all equal. Their advantages are 0, so
    /// they add no gradient, but they would count in the token mean and shrink every other group's step.
    public var dropFlatGroups = false

    public init() {}
}

public enum GRPO {
    /// A group carries no signal when its rewards are all equal: the one rule for dropping groups (jobs,
    /// Update with drop_flat_groups) and for pairing (DPO.bestAndWorst).
    public static func isFlat(_ rewards: [Float]) -> Bool {
        guard let first = rewards.first else { return true }
        return rewards.allSatisfy { $0 == first }
    }

    /// Group-relative advantages: (r − mean_group) / (std + ε), std over the group (.group) or the whole
    /// batch (.batch), or r − mean_group (.none, Dr. GRPO). std is the sample standard deviation (n − 1),
    /// as torch.std computes it.
    public static func advantages(_ rewards: [[Float]], scaling: GRPOSettings.Scaling, epsilon: Float) -> [[Float]] {
        func std(_ xs: [Float]) -> Float {
            guard xs.count > 1 else { return 0 }
            let mean = xs.reduce(0, +) / Float(xs.count)
            return (xs.reduce(0) { $0 + ($1 - mean) * ($1 - mean) } / Float(xs.count - 1)).squareRoot()
        }
        let batchStd = std(rewards.flatMap { $0 })
        return rewards.map { group in
            let mean = group.reduce(0, +) / Float(group.count)
            let denominator: Float
            switch scaling {
            case .group: denominator = std(group) + epsilon
            case .batch: denominator = batchStd + epsilon
            case .none: denominator = 1
            }
            // A group whose rewards are all equal carries no signal (and must not make 0 / 0).
            let scale = denominator > 0 ? 1 / denominator : 0
            return group.map { ($0 - mean) * scale }
        }
    }

    /// Per token t of sequence i, with ratio ρ_t = exp(log p_t − log p_old,t), the policy term is
    ///     GRPO  (.clippedToken):    −min(ρ_t·A_i, clip(ρ_t, 1 − ε_low, 1 + ε_high)·A_i)
    ///     GSPO  (.clippedSequence): −min(s_i·A_i, clip(s_i, 1 − ε_low, 1 + ε_high)·A_i),
    ///                               s_i = exp(mean_t (log p_t − log p_old,t)), the same for every token of i
    ///     CISPO (.cispo):           −sg(clip(ρ_t, 1 − ε_low, 1 + ε_high))·A_i·log p_t   (sg: no gradient)
    /// and ℓ_t = policy term + β·KL_t, where
    /// KL_t: k1 = log p − log p_ref, k2 = (log p − log p_ref)² / 2, k3 = e^(log p_ref − log p) − (log p_ref − log p) − 1.
    /// With an entropy bonus, ℓ_t −= c·H_t, H_t the entropy of the policy's distribution at token t.
    /// Aggregated by token mean, by the mean of each sequence's token mean, or by Σ / (sequences · max tokens).
    /// `batch` gives the whole batch's token and sequence counts when `sequences` are one micro-batch of it
    /// (the loss and gradients are then this part's share of the whole batch's).
    public static func loss(_ sequences: [ScoredSequence], advantages: [Float], entropies: [[Float]]? = nil,
                            settings s: GRPOSettings, batch: (tokens: Int, sequences: Int)? = nil) -> LossResult {
        precondition(sequences.count == advantages.count)
        precondition(s.entropyCoefficient == 0 || entropies != nil, "an entropy bonus needs the entropies")
        var entropyGradients: [[Float]] = []
        let partTokens = sequences.reduce(0) { $0 + $1.logprobs.count }
        let totalTokens = batch?.tokens ?? partTokens, totalSequences = batch?.sequences ?? sequences.count
        var loss = 0.0, klSum = 0.0, clipped = 0
        var logRatioSum = 0.0, logRatioMax: Float = 0  // |log p − log p_old|: the sampler–trainer check
        var gradients: [[Float]] = []
        for (sequence, advantage) in zip(sequences, advantages) {
            let n = sequence.logprobs.count
            let weight: Float  // the aggregation's factor for each of this sequence's tokens
            switch s.aggregation {
            case .tokenMean: weight = 1 / Float(max(1, totalTokens))
            case .sequenceMean: weight = 1 / Float(max(1, n) * totalSequences)
            case .constant(let maxTokens): weight = 1 / Float(maxTokens * totalSequences)
            }
            var grads = [Float](repeating: 0, count: n)
            if s.entropyCoefficient != 0, let entropies {
                let sequenceEntropies = entropies[entropyGradients.count]
                for t in 0..<n { loss -= Double(weight * s.entropyCoefficient * sequenceEntropies[t]) }
                entropyGradients.append([Float](repeating: -weight * s.entropyCoefficient, count: n))
            }
            func clip(_ ratio: Float) -> Float { min(max(ratio, 1 - s.epsilonLow), 1 + s.epsilonHigh) }
            // PPO's clipped term of a ratio (a token's, or GSPO's sequence ratio): loss, dℓ/dlog ratio, clipped.
            func clippedTerm(_ ratio: Float) -> (loss: Float, d: Float, clipped: Bool) {
                let unclipped = ratio * advantage, bounded = clip(ratio) * advantage
                // d(ρA)/dlog ρ = ρA; the clipped term does not depend on log p.
                return unclipped <= bounded ? (-unclipped, -unclipped, false) : (-bounded, 0, true)
            }
            // GSPO's sequence ratio gives every token of the sequence the same term. Σ_u weight·ℓ over its n
            // tokens, differentiated in log p_t, is n·weight·(−s·A / n): each token's gradient is weight·d.
            var sequenceTerm: (loss: Float, d: Float, clipped: Bool) = (0, 0, false)
            if s.objective == .clippedSequence {
                var logRatio: Float = 0
                for t in 0..<n { logRatio += sequence.logprobs[t] - (sequence.oldLogprobs?[t] ?? sequence.logprobs[t]) }
                sequenceTerm = clippedTerm(expf(logRatio / Float(max(1, n))))
            }
            for t in 0..<n {
                let logp = sequence.logprobs[t]
                let logRatio = logp - (sequence.oldLogprobs?[t] ?? logp)
                let ratio = expf(logRatio)
                logRatioSum += Double(abs(logRatio))
                logRatioMax = max(logRatioMax, abs(logRatio))
                let term: (loss: Float, d: Float, clipped: Bool)
                switch s.objective {
                case .clippedToken: term = clippedTerm(ratio)
                case .clippedSequence: term = sequenceTerm
                case .cispo:
                    let weightIS = clip(ratio)  // a constant of the loss: only log p carries the gradient
                    term = (-weightIS * advantage * logp, -weightIS * advantage, weightIS != ratio)
                }
                var tokenLoss = term.loss, d = term.d
                if term.clipped { clipped += 1 }
                if s.beta != 0, let reference = sequence.referenceLogprobs?[t] {
                    let delta = logp - reference
                    let (kl, dKL): (Float, Float)
                    switch s.kl {
                    case .k1: (kl, dKL) = (delta, 1)
                    case .k2: (kl, dKL) = (delta * delta / 2, delta)
                    case .k3: (kl, dKL) = (expf(-delta) + delta - 1, 1 - expf(-delta))
                    }
                    tokenLoss += s.beta * kl
                    d += s.beta * dKL
                    klSum += Double(kl)
                }
                loss += Double(weight * tokenLoss)
                grads[t] = weight * d
            }
            gradients.append(grads)
        }
        let tokens = Double(max(1, partTokens))
        var metrics = ["clip_fraction": Double(clipped) / tokens, "kl": klSum / tokens,
                       "log_ratio_abs_mean": logRatioSum / tokens, "log_ratio_abs_max": Double(logRatioMax)]
        if let entropies { metrics["entropy"] = entropies.reduce(0.0) { $0 + $1.reduce(0.0) { $0 + Double($1) } } / tokens }
        return LossResult(loss: loss, gradients: gradients, metrics: metrics,
                          entropyGradients: entropyGradients.isEmpty ? nil : entropyGradients)
    }
}

// MARK: - DPO

public struct DPOSettings: Equatable {
    public enum Kind { case sigmoid, ipo }
    public var beta: Float = 0.1
    public var labelSmoothing: Float = 0
    public var kind: Kind = .sigmoid
    public init() {}
}

public enum DPO {
    /// RLRF4Rec's pair from one prompt's scored samples: (index of the best, index of the worst), the first
    /// one on ties, or nil when fewer than two are scored or all score the same (GRPO.isFlat).
    public static func bestAndWorst(_ rewards: [Float?]) -> (best: Int, worst: Int)? {
        let scored = rewards.enumerated().compactMap { i, r in r.map { (i, $0) } }
        guard scored.count >= 2, !GRPO.isFlat(scored.map(\.1)) else { return nil }
        // max(by:) and min(by:) keep the first of equal elements.
        let best = scored.max { $0.1 < $1.1 }!, worst = scored.min { $0.1 < $1.1 }!
        return (best.0, worst.0)
    }

    /// Per pair, with h = (log π(chosen) − log π_ref(chosen)) − (log π(rejected) − log π_ref(rejected)) and
    /// z = β·h:
    ///     sigmoid: ℓ = −(1 − s)·log σ(z) − s·log σ(−z)          IPO: ℓ = (h − 1/(2β))²
    /// averaged over pairs. A sequence's log π is the sum of its token log-probs for sigmoid, and their mean
    /// for IPO (as in the IPO paper and TRL: the squared loss would otherwise grow with the length). Metrics: rewards β·(log π − log π_ref) of chosen and rejected, and their margin.
    /// The gradients are those of the chosen sequences, then those of the rejected ones.
    public static func loss(chosen: [ScoredSequence], rejected: [ScoredSequence], settings s: DPOSettings) -> LossResult {
        precondition(chosen.count == rejected.count && !chosen.isEmpty)
        func sum(_ xs: [Float]) -> Float { xs.reduce(0, +) }
        func logSigmoid(_ x: Float) -> Float { x >= 0 ? -log1pf(expf(-x)) : x - log1pf(expf(x)) }
        func sigmoid(_ x: Float) -> Float { 1 / (1 + expf(-x)) }
        let pairs = Float(chosen.count)
        var loss = 0.0, chosenReward = 0.0, rejectedReward = 0.0
        var gradients: [[Float]] = []
        var rejectedGradients: [[Float]] = []
        for (c, r) in zip(chosen, rejected) {
            // dlog π(sequence)/dlog π(token): 1 for a sum, 1/length for a mean.
            let chosenScale: Float = s.kind == .ipo ? 1 / Float(max(1, c.logprobs.count)) : 1
            let rejectedScale: Float = s.kind == .ipo ? 1 / Float(max(1, r.logprobs.count)) : 1
            let chosenLog = chosenScale * (sum(c.logprobs) - sum(c.referenceLogprobs ?? []))
            let rejectedLog = rejectedScale * (sum(r.logprobs) - sum(r.referenceLogprobs ?? []))
            let h = chosenLog - rejectedLog
            let pairLoss: Float, dh: Float
            switch s.kind {
            case .sigmoid:
                let z = s.beta * h
                pairLoss = -(1 - s.labelSmoothing) * logSigmoid(z) - s.labelSmoothing * logSigmoid(-z)
                dh = s.beta * (-(1 - s.labelSmoothing) * sigmoid(-z) + s.labelSmoothing * sigmoid(z))
            case .ipo:
                let gap = h - 1 / (2 * s.beta)
                pairLoss = gap * gap
                dh = 2 * gap
            }
            loss += Double(pairLoss / pairs)
            chosenReward += Double(s.beta * chosenLog / pairs)
            rejectedReward += Double(s.beta * rejectedLog / pairs)
            gradients.append(c.logprobs.map { _ in chosenScale * dh / pairs })            // dh/dlog π(chosen token)
            rejectedGradients.append(r.logprobs.map { _ in -rejectedScale * dh / pairs })   // dh/dlog π(rejected token)
        }
        return LossResult(loss: loss, gradients: gradients + rejectedGradients,
                          metrics: ["chosen_rewards": chosenReward, "rejected_rewards": rejectedReward,
                                    "margin": chosenReward - rejectedReward])
    }
}

// MARK: - SFT

public enum SFT {
    /// Cross-entropy of the completion tokens: ℓ = −Σ log p / (number of completion tokens). `batchTokens`:
    /// the whole batch's count when `sequences` are one micro-batch of it.
    public static func loss(_ sequences: [ScoredSequence], batchTokens: Int? = nil) -> LossResult {
        let tokens = Float(max(1, batchTokens ?? sequences.reduce(0) { $0 + $1.logprobs.count }))
        let loss = -sequences.reduce(0.0) { $0 + Double($1.logprobs.reduce(0, +)) } / Double(tokens)
        return LossResult(loss: loss, gradients: sequences.map { $0.logprobs.map { _ in -1 / tokens } }, metrics: [:])
    }
}
