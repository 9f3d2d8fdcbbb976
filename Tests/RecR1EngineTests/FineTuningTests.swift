import Foundation
import RecR1Kernels
import XCTest

@testable import RecR1Learning
@testable import RecR1Model

/// Forward, loss, backward and AdamW together on a small random model.
final class FineTuningTests: EngineTestCase {

    func testSFTStepsLowerTheLoss() {
        let model = DecoderTests.randomModel(seed: 31, qkvBias: true, tied: false)
        let sequences: [[Int32]] = [[4, 9, 12, 30, 2, 17, 5], [8, 8, 40, 3, 11]]
        let scored = [2..<7, 1..<5]
        let pass = TrainingPass(decoder: model)
        let tuning = AdamWOptimizer(settings: AdamWSettings(weightDecay: 0.01), schedule: .warmupConstant(0.01, warmup: 3))
        var losses: [Double] = []
        for _ in 0..<30 {
            let result = SFT.loss(pass.forward(sequences: sequences, scored: scored).map { ScoredSequence(logprobs: $0) })
            losses.append(result.loss)
            let gradients = ModelGradients(config: model.config)
            pass.backward(result.gradients, into: gradients)
            XCTAssertTrue(tuning.apply(gradients, to: model).applied)
        }
        print("SFT on a random model: loss \(losses.first!) -> \(losses.last!)")
        XCTAssertLessThan(losses.last!, 0.5 * losses.first!)
        XCTAssertEqual(tuning.step, 30)
    }

    func testNonFiniteGradientsSkipTheStepAndKeepTheWeights() {
        let model = DecoderTests.randomModel(seed: 32)
        let before = model.weights.layers[1].wq
        let gradients = ModelGradients(config: model.config)
        gradients.layers[1].wq[3] = .nan
        let tuning = AdamWOptimizer(schedule: .constant(0.1))
        let report = tuning.apply(gradients, to: model)
        XCTAssertFalse(report.applied)
        XCTAssertEqual(tuning.step, 0)
        XCTAssertEqual(model.weights.layers[1].wq, before)
    }
}

final class MicroBatchTests: EngineTestCase {

    func testMicroBatchesRespectTheBudget() {
        XCTAssertEqual(microBatches(lengths: [3, 4, 2, 9, 1, 1], maxTokens: 8), [0..<2, 2..<3, 3..<4, 4..<6])
        XCTAssertEqual(microBatches(lengths: [], maxTokens: 8), [])
        XCTAssertEqual(microBatches(lengths: [20], maxTokens: 8), [0..<1], "a long sequence goes alone")
    }

    func testAccumulatedMicroBatchGradientsEqualTheWholeBatch() {
        let model = DecoderTests.randomModel(seed: 41, qkvBias: true, tied: true)
        let sequences: [[Int32]] = [[4, 9, 12, 30, 2], [8, 8, 40, 3], [1, 2, 3, 4, 5, 6], [7, 7, 7]]
        let scored = [1..<5, 2..<4, 1..<6, 1..<3]
        let pass = TrainingPass(decoder: model)
        // The loss's derivatives come from the whole batch (token mean over all sequences).
        let whole = SFT.loss(pass.forward(sequences: sequences, scored: scored).map { ScoredSequence(logprobs: $0) })
        let all = ModelGradients(config: model.config)
        pass.backward(whole.gradients, into: all)

        let accumulated = ModelGradients(config: model.config)
        for batch in microBatches(lengths: sequences.map(\.count), maxTokens: 10) {
            _ = pass.forward(sequences: Array(sequences[batch]), scored: Array(scored[batch]))
            pass.backward(Array(whole.gradients[batch]), into: accumulated)
        }
        XCTAssertLessThan(maxAbsDifference(accumulated.tokenEmbedding, all.tokenEmbedding), 1e-5)
        XCTAssertLessThan(maxAbsDifference(accumulated.layers[0].wq, all.layers[0].wq), 1e-5)
        XCTAssertLessThan(maxAbsDifference(accumulated.layers[1].bv, all.layers[1].bv), 1e-5)
        XCTAssertLessThan(maxAbsDifference(accumulated.layers[1].wDown, all.layers[1].wDown), 1e-5)
        XCTAssertLessThan(maxAbsDifference(accumulated.finalNorm, all.finalNorm), 1e-5)
        XCTAssertGreaterThan(all.layers[0].wq.map(abs).max()!, 1e-4)
    }
}
