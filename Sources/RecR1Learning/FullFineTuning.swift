import RecR1Kernels
import RecR1Model

/// Full fine-tuning of a decoder's weights with AdamW: clip the global gradient norm, step, and bump the
/// step count. A step whose gradients are not finite is skipped and the weights stay as they were.
public final class FullFineTuning {
    public struct StepReport {
        public var applied: Bool
        public var gradientNorm: Float
        public var learningRate: Float
        public var step: Int
    }

    public let settings: AdamWSettings
    public let schedule: LearningRateSchedule
    public let maxGradientNorm: Float
    public private(set) var step = 0
    private var moments: [AdamWMoments] = []

    public init(settings: AdamWSettings = AdamWSettings(), schedule: LearningRateSchedule, maxGradientNorm: Float = 1) {
        self.settings = settings
        self.schedule = schedule
        self.maxGradientNorm = maxGradientNorm
    }

    public func apply(_ gradients: ModelGradients, to decoder: Decoder) -> StepReport {
        var tensors: [[Float]] = []
        decoder.weights.forEachParameter(gradients) { _, g in tensors.append(g) }
        let norm = clipGradientNorm(&tensors, maxNorm: maxGradientNorm)
        let rate = schedule.rate(step: step)
        guard norm.isFinite else { return StepReport(applied: false, gradientNorm: norm, learningRate: rate, step: step) }
        if moments.isEmpty { moments = tensors.map { AdamWMoments(count: $0.count) } }
        step += 1
        var index = 0
        decoder.weights.forEachParameter(gradients) { parameter, _ in
            AdamW.update(&parameter, gradient: tensors[index], moments: &moments[index], step: step,
                         learningRate: rate, settings: settings)
            index += 1
        }
        decoder.weights.dropQuantizedCopies()
        return StepReport(applied: true, gradientNorm: norm, learningRate: rate, step: step)
    }
}

/// Splits sequences (in order) into micro-batches of at most `maxTokens` tokens each (a longer sequence
/// goes alone), so that a large batch fits in memory: gradients accumulate across micro-batches
/// (`TrainingPass.backward` adds into the same `ModelGradients`), and the optimiser steps once.
public func microBatches(lengths: [Int], maxTokens: Int) -> [Range<Int>] {
    var batches: [Range<Int>] = []
    var start = 0, tokens = 0
    for (i, length) in lengths.enumerated() {
        if i > start && tokens + length > maxTokens {
            batches.append(start..<i)
            start = i
            tokens = 0
        }
        tokens += length
    }
    if start < lengths.count { batches.append(start..<lengths.count) }
    return batches
}
