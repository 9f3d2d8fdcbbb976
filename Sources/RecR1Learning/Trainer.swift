import Foundation
import RecR1Model

/// How training changes the policy, and how it steps.
public struct TrainerSettings: Equatable {
    public var adamW = AdamWSettings()
    public var schedule: LearningRateSchedule = .constant(1e-5)
    public var maxGradientNorm: Float = 1
    /// The memory budget: sequences are run in micro-batches of at most this many tokens (a longer
    /// sequence runs alone). SmolLM2-135M saves about 1 MB of activations per token (34 KB in each of 30
    /// layers), plus about 1.1 KB × the sequence's length for the attention weights.
    public var maxTokensPerMicroBatch = 2048
    /// LoRA adapters, or nil for full fine-tuning.
    public var lora: LoRASettings? = LoRASettings()
    /// Seeds the adapters' initial A matrices.
    public var seed: UInt64 = 0
    /// Neighbouring sequences with the same prompt (a GRPO group's samples) run the prompt once.
    public var sharePrefixes = true

    public init() {}
}

/// A batch as the engine sees it: token sequences, which of their tokens the loss covers, and the loss.
public struct TrainingBatch {
    public var sequences: [[Int32]]
    /// Per sequence, the indices of the tokens the loss covers (≥ 1: each is predicted from those before).
    public var scored: [Range<Int>]

    public init(sequences: [[Int32]], scored: [Range<Int>]) {
        precondition(sequences.count == scored.count)
        self.sequences = sequences
        self.scored = scored
    }

    /// Prompt + completion pairs; the loss covers the completion.
    public init(prompts: [[Int32]], completions: [[Int32]]) {
        self.init(sequences: zip(prompts, completions).map { $0 + $1 },
                  scored: zip(prompts, completions).map { $0.count..<($0.count + $1.count) })
    }

    public var tokens: Int { sequences.reduce(0) { $0 + $1.count } }
    public var scoredTokens: Int { scored.reduce(0) { $0 + $1.count } }

    /// Runs of neighbouring sequences whose tokens before the first scored one are the same (at least
    /// `minimum` of them): each run's prompt can be computed once.
    public func sharedPrompts(minimum: Int = 1) -> [PrefixGroup] {
        var groups: [PrefixGroup] = []
        var start = 0
        while start < sequences.count {
            let length = scored[start].lowerBound
            var end = start + 1
            while end < sequences.count, scored[end].lowerBound == length,
                  sequences[end].prefix(length).elementsEqual(sequences[start].prefix(length)) { end += 1 }
            if end - start > 1 && length >= minimum { groups.append(PrefixGroup(sequences: start..<end, length: length)) }
            start = end
        }
        return groups
    }

    /// Rows the training pass runs for `range` (whole groups only): each group's prompt counts once.
    func rows(_ range: Range<Int>, groups: [PrefixGroup]) -> Int {
        let all = sequences[range].reduce(0) { $0 + $1.count }
        return all - groups.reduce(0) { $0 + ($1.sequences.count - 1) * $1.length }
    }
}

/// A micro-batch: sequences, and the prefix groups among them (indices relative to the micro-batch).
struct MicroBatch {
    var range: Range<Int>
    var groups: [PrefixGroup]
}

/// Micro-batches of at most `maxTokens` rows, never splitting a prefix group (one larger than the budget
/// runs alone, as a long sequence does).
func microBatches(_ batch: TrainingBatch, groups: [PrefixGroup], maxTokens: Int) -> [MicroBatch] {
    // Units: lone sequences and whole groups, in order, with the rows each costs.
    var units: [(range: Range<Int>, group: PrefixGroup?)] = []
    var s = 0, g = 0
    while s < batch.sequences.count {
        if g < groups.count, groups[g].sequences.lowerBound == s {
            units.append((groups[g].sequences, groups[g])); s = groups[g].sequences.upperBound; g += 1
        } else {
            units.append((s..<(s + 1), nil)); s += 1
        }
    }
    let lengths = units.map { batch.rows($0.range, groups: $0.group.map { [$0] } ?? []) }
    return microBatches(lengths: lengths, maxTokens: maxTokens).map { part in
        let first = units[part.lowerBound].range.lowerBound, last = units[part.upperBound - 1].range.upperBound
        let inside = units[part].compactMap(\.group).map {
            PrefixGroup(sequences: ($0.sequences.lowerBound - first)..<($0.sequences.upperBound - first), length: $0.length)
        }
        return MicroBatch(range: first..<last, groups: inside)
    }
}

/// Trains a decoder: runs the batch through the engine in micro-batches, asks the loss for its
/// derivatives, accumulates gradients (across micro-batches and across `accumulate` calls), and steps
/// the optimiser. The reference policy is the base — with adapters off (LoRA), or a frozen copy taken at
/// the start (full fine-tuning) — until `anchorReference` makes it a copy of the policy as it is then (RL
/// after an SFT cold start keeps its KL to the cold start, not to the base).
public final class Trainer {
    public struct Report {
        public var applied: Bool
        public var skippedReason: String = ""
        public var accumulated = false
        public var loss: Double
        public var metrics: [String: Double]
        public var gradientNorm: Float = 0
        public var learningRate: Float = 0
        public var step: Int
        public var tokens: Int
        public var sequences: Int
    }

    public let decoder: Decoder
    public let settings: TrainerSettings
    public let optimizer: AdamWOptimizer
    private let pass: TrainingPass
    /// Full fine-tuning: the base's weights, shared with the policy's until its first step writes.
    private let frozenReference: Decoder?
    /// The anchored reference (`anchorReference`): LoRA, a copy of the adapters; full, of the weights.
    /// Both nil: the reference is the base.
    public private(set) var referenceAdapters: LoRAAdapters?
    public private(set) var referenceDecoder: Decoder?
    private var fullGradients: ModelGradients?
    private var adapterGradients: LoRAAdapters?
    private var pendingSequences = 0

    public init(decoder: Decoder, settings: TrainerSettings) {
        self.decoder = decoder
        self.settings = settings
        optimizer = AdamWOptimizer(settings: settings.adamW, schedule: settings.schedule,
                                   maxGradientNorm: settings.maxGradientNorm)
        pass = TrainingPass(decoder: decoder)
        if let lora = settings.lora {
            let adapters = LoRAAdapters(config: decoder.config, settings: lora, seed: settings.seed)
            decoder.adapters = adapters
            decoder.adaptersEnabled = true
            frozenReference = nil
            trainableParameters = adapters.parameterCount
        } else {
            decoder.adapters = nil
            // The arrays are shared until the first step writes to the policy's copy.
            frozenReference = Decoder(config: decoder.config, weights: decoder.weights)
            trainableParameters = decoder.config.parameterCount
        }
    }

    public var mode: String { settings.lora == nil ? "full" : "lora" }

    /// Counted once: Info reads it while a step may be writing the tensors.
    public let trainableParameters: Int

    /// Gradient accumulation in progress (sequences whose gradients wait for a step).
    public var pendingAccumulation: Int { pendingSequences }

    /// Whether the reference policy is the base model (not anchored to a later policy).
    public var referenceIsBase: Bool { referenceAdapters == nil && referenceDecoder == nil }

    /// Makes the reference policy a copy of the policy as it is now (e.g. the cold start that RL starts from).
    public func anchorReference() {
        if let adapters = decoder.adapters {
            referenceAdapters = LoRAAdapters(copying: adapters)
        } else {
            referenceDecoder = Decoder(config: decoder.config, weights: decoder.weights)
        }
    }

    /// Sets the reference from a checkpoint: the adapters (LoRA) or weights (full) it anchored, or nil
    /// for the base.
    public func restoreReference(adapters: LoRAAdapters?, weights: ModelWeights?) {
        referenceAdapters = adapters
        referenceDecoder = weights.map { Decoder(config: decoder.config, weights: $0) }
    }

    /// The reference policy's decoder, for generation or scoring: under LoRA the same decoder with adapters
    /// off (the base) or with the anchored adapters swapped in; under full fine-tuning a frozen copy.
    public func withReference<T>(_ body: (Decoder) -> T) -> T {
        if let referenceDecoder { return body(referenceDecoder) }
        if let frozenReference { return body(frozenReference) }
        if let referenceAdapters {
            let live = decoder.adapters
            decoder.adapters = referenceAdapters
            defer { decoder.adapters = live }
            return body(decoder)
        }
        decoder.adaptersEnabled = false
        defer { decoder.adaptersEnabled = true }
        return body(decoder)
    }

    /// Log-probs of the batch's scored tokens under the reference policy.
    public func referenceLogprobs(_ batch: TrainingBatch) -> [[Float]] {
        withReference { reference in
            Self.logprobs(batch, pass: reference === decoder ? pass : TrainingPass(decoder: reference),
                          settings: settings)
        }
    }

    /// Log-probs of the batch's scored tokens under the current policy (no gradients).
    public func policyLogprobs(_ batch: TrainingBatch) -> [[Float]] {
        Self.logprobs(batch, pass: pass, settings: settings)
    }

    private static func logprobs(_ batch: TrainingBatch, pass: TrainingPass, settings: TrainerSettings) -> [[Float]] {
        var result: [[Float]] = []
        for part in parts(batch, settings) {
            result += pass.forward(sequences: Array(batch.sequences[part.range]), scored: Array(batch.scored[part.range]),
                                   prefixGroups: part.groups)
        }
        return result
    }

    /// The batch's micro-batches, with its shared prompts when the settings share them.
    private static func parts(_ batch: TrainingBatch, _ settings: TrainerSettings) -> [MicroBatch] {
        microBatches(batch, groups: settings.sharePrefixes ? batch.sharedPrompts() : [],
                     maxTokens: settings.maxTokensPerMicroBatch)
    }

    /// One update: forward, `loss` (given the policy's log-probs and entropies of the scored tokens),
    /// backward, and — unless `accumulate` — an optimiser step on everything accumulated so far.
    ///
    /// With one micro-batch the forward pass serves the backward pass directly. With several, a first
    /// pass collects every log-prob (the losses normalise over the whole batch: token means, DPO pairs,
    /// group advantages), then each micro-batch runs forward again and backward with its share of the
    /// derivatives, so that the gradients equal the whole batch's exactly.
    ///
    /// A non-finite loss or gradient skips the step, leaves the weights untouched and drops what was
    /// accumulated.
    public func update(_ batch: TrainingBatch, accumulate: Bool = false, learningRate: Float? = nil,
                       loss: ([[Float]], [[Float]]) -> LossResult) -> Report {
        let parts = Self.parts(batch, settings)
        var logprobs: [[Float]] = [], entropies: [[Float]] = []
        for part in parts {
            logprobs += pass.forward(sequences: Array(batch.sequences[part.range]), scored: Array(batch.scored[part.range]),
                                     prefixGroups: part.groups, entropy: true)
            entropies += pass.entropies
        }
        let result = loss(logprobs, entropies)
        var metrics = result.metrics
        metrics["entropy"] = metrics["entropy"]
            ?? entropies.reduce(0.0) { $0 + $1.reduce(0.0) { $0 + Double($1) } } / Double(max(1, batch.scoredTokens))
        guard result.loss.isFinite else { return skipped(result.loss, metrics: metrics, batch) }
        let report = Report(applied: false, loss: result.loss, metrics: metrics, step: optimizer.step,
                            tokens: batch.tokens, sequences: batch.sequences.count)

        allocateGradients()
        for part in parts {
            let range = part.range
            if parts.count > 1 {
                _ = pass.forward(sequences: Array(batch.sequences[range]), scored: Array(batch.scored[range]),
                                 prefixGroups: part.groups, entropy: result.entropyGradients != nil)
            }
            pass.backward(Array(result.gradients[range]), dEntropies: result.entropyGradients.map { Array($0[range]) },
                          into: fullGradients, adapterGradients: adapterGradients)
        }
        return step(report, sequences: batch.sequences.count, accumulate: accumulate, learningRate: learningRate)
    }

    /// An update whose loss splits over sequences: the derivatives of sequence i depend on its own log-probs
    /// alone (and on batch-wide counts), as in GRPO and SFT. Each micro-batch then runs forward once and
    /// backward at once with `loss(part, logprobs, entropies)`, its share of the whole batch's loss, with no
    /// first pass over the whole batch. Metrics are the parts' means weighted by their scored tokens, except
    /// those named "…_max", the largest of the parts'.
    public func updateSeparately(_ batch: TrainingBatch, accumulate: Bool = false, learningRate: Float? = nil,
                                 loss: (Range<Int>, [[Float]], [[Float]]) -> LossResult) -> Report {
        allocateGradients()
        var total = 0.0, weighted: [String: Double] = [:], maxima: [String: Double] = [:], entropySum = 0.0
        for part in Self.parts(batch, settings) {
            let range = part.range
            let logprobs = pass.forward(sequences: Array(batch.sequences[range]), scored: Array(batch.scored[range]),
                                        prefixGroups: part.groups, entropy: true)
            let entropies = pass.entropies
            let result = loss(range, logprobs, entropies)
            guard result.loss.isFinite else { return skipped(result.loss, metrics: result.metrics, batch) }
            total += result.loss
            let tokens = Double(batch.scored[range].reduce(0) { $0 + $1.count })
            for (key, value) in result.metrics {
                if key.hasSuffix("_max") { maxima[key] = max(maxima[key] ?? value, value) } else { weighted[key, default: 0] += value * tokens }
            }
            entropySum += entropies.reduce(0.0) { $0 + $1.reduce(0.0) { $0 + Double($1) } }
            pass.backward(result.gradients, dEntropies: result.entropyGradients, into: fullGradients,
                          adapterGradients: adapterGradients)
        }
        let scoredTokens = Double(max(1, batch.scoredTokens))
        var metrics = weighted.mapValues { $0 / scoredTokens }.merging(maxima) { $1 }
        metrics["entropy"] = metrics["entropy"] ?? entropySum / scoredTokens
        let report = Report(applied: false, loss: total, metrics: metrics, step: optimizer.step, tokens: batch.tokens,
                            sequences: batch.sequences.count)
        return step(report, sequences: batch.sequences.count, accumulate: accumulate, learningRate: learningRate)
    }

    /// A step skipped because the loss is not finite: the weights stay, what was accumulated is dropped.
    private func skipped(_ loss: Double, metrics: [String: Double], _ batch: TrainingBatch) -> Report {
        dropAccumulation()
        var report = Report(applied: false, loss: loss, metrics: metrics, step: optimizer.step, tokens: batch.tokens,
                            sequences: batch.sequences.count)
        report.skippedReason = "the loss is not finite (\(loss))"
        return report
    }

    private func allocateGradients() {
        if decoder.adapters != nil {
            if adapterGradients == nil { adapterGradients = LoRAAdapters(zerosLike: decoder.adapters!) }
        } else if fullGradients == nil {
            fullGradients = ModelGradients(config: decoder.config)
        }
    }

    /// After the gradients of `sequences` more sequences are in: keep accumulating, or step the optimiser.
    private func step(_ report: Report, sequences: Int, accumulate: Bool, learningRate: Float?) -> Report {
        var report = report
        pendingSequences += sequences
        if accumulate {
            report.accumulated = true
            return report
        }

        let step: AdamWOptimizer.StepReport
        if let adapters = decoder.adapters, let gradients = adapterGradients {
            step = optimizer.apply(gradients, to: adapters, learningRate: learningRate)
        } else {
            step = optimizer.apply(fullGradients!, to: decoder, learningRate: learningRate)
        }
        dropAccumulation()
        report.applied = step.applied
        report.gradientNorm = step.gradientNorm
        report.learningRate = step.learningRate
        report.step = step.step
        if !step.applied { report.skippedReason = "the gradient norm is not finite (\(step.gradientNorm))" }
        return report
    }

    /// Zeroes the gradients (kept allocated: fresh pages cost a page fault each, every step).
    private func dropAccumulation() {
        fullGradients?.zero()
        adapterGradients?.zero()
        pendingSequences = 0
    }
}
