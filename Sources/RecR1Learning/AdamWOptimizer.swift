import RecR1Kernels
import RecR1Model

/// The optimiser's state over an ordered list of tensors: AdamW moments and the step count. Each step
/// clips the global gradient norm, then updates every tensor; a step whose gradients are not finite is
/// skipped and the weights stay as they were.
public final class AdamWOptimizer {
    public struct StepReport {
        public var applied: Bool
        public var gradientNorm: Float
        public var learningRate: Float
        public var step: Int
    }

    public let settings: AdamWSettings
    public let schedule: LearningRateSchedule
    public let maxGradientNorm: Float
    /// Optimiser steps taken (the schedule's position).
    public internal(set) var step = 0
    /// One per tensor, in the order the parameters are visited; empty before the first step.
    public internal(set) var moments: [AdamWMoments] = []

    public init(settings: AdamWSettings = AdamWSettings(), schedule: LearningRateSchedule, maxGradientNorm: Float = 1) {
        self.settings = settings
        self.schedule = schedule
        self.maxGradientNorm = maxGradientNorm
    }

    /// One step over the tensors `visit` hands over, each with its gradient, always in the same order.
    /// `learningRate` overrides the schedule for this step.
    public func apply(learningRate: Float? = nil, _ visit: ((inout [Float], [Float]) -> Void) -> Void) -> StepReport {
        WorkClock.measure(.optimizer) { update(learningRate: learningRate, visit) }
    }

    private func update(learningRate: Float?, _ visit: ((inout [Float], [Float]) -> Void) -> Void) -> StepReport {
        // The global norm first; clipping scales the gradients as AdamW reads them (no copy of them is made).
        var squares = 0.0, tensors = 0
        visit { _, g in
            squares += sumOfSquares(g)
            tensors += 1
        }
        let norm = Float(squares.squareRoot())
        let rate = learningRate ?? schedule.rate(step: step)
        guard norm.isFinite else { return StepReport(applied: false, gradientNorm: norm, learningRate: rate, step: step) }
        let scale = clipScale(norm: norm, maxNorm: maxGradientNorm)
        if moments.isEmpty { visit { parameter, _ in moments.append(AdamWMoments(count: parameter.count)) } }
        precondition(moments.count == tensors, "the parameters changed between steps")
        step += 1
        var index = 0
        visit { parameter, gradient in
            AdamW.update(&parameter, gradient: gradient, gradientScale: scale, moments: &moments[index], step: step,
                         learningRate: rate, settings: settings)
            index += 1
        }
        return StepReport(applied: true, gradientNorm: norm, learningRate: rate, step: step)
    }

    /// Full fine-tuning: every weight of the decoder. Its block-format copies are dropped, since they no
    /// longer hold the weights.
    public func apply(_ gradients: ModelGradients, to decoder: Decoder, learningRate: Float? = nil) -> StepReport {
        decoder.updateWeights { weights in
            let report = apply(learningRate: learningRate) { weights.forEachParameter(gradients, $0) }
            if report.applied { weights.dropQuantizedCopies() }
            return report
        }
    }

    /// LoRA: the adapters only.
    public func apply(_ gradients: LoRAAdapters, to adapters: LoRAAdapters, learningRate: Float? = nil) -> StepReport {
        apply(learningRate: learningRate) { adapters.forEachParameter(gradients, $0) }
    }

    /// Restores a saved state (checkpoints).
    public func restore(step: Int, moments: [AdamWMoments]) {
        self.step = step
        self.moments = moments
    }
}

/// Splits sequences (in order) into micro-batches of at most `maxTokens` tokens each (a longer sequence
/// goes alone), so that a large batch fits in memory: gradients accumulate across micro-batches
/// (`TrainingPass.backward` adds into the same gradients), and the optimiser steps once.
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
