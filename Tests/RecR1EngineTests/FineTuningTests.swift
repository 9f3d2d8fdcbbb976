import Foundation
import RecR1Kernels
import XCTest

@testable import RecR1Learning
@testable import RecR1Model

/// Forward, loss, backward and AdamW together on a small random model.
final class FineTuningTests: XCTestCase {
    override class func setUp() { try? BLAS.load() }

    func testSFTStepsLowerTheLoss() {
        let model = DecoderTests.randomModel(seed: 31, qkvBias: true, tied: false)
        let sequences: [[Int32]] = [[4, 9, 12, 30, 2, 17, 5], [8, 8, 40, 3, 11]]
        let scored = [2..<7, 1..<5]
        let pass = TrainingPass(decoder: model)
        let tuning = FullFineTuning(settings: AdamWSettings(weightDecay: 0.01), schedule: .warmupConstant(0.01, warmup: 3))
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
        let tuning = FullFineTuning(schedule: .constant(0.1))
        let report = tuning.apply(gradients, to: model)
        XCTAssertFalse(report.applied)
        XCTAssertEqual(tuning.step, 0)
        XCTAssertEqual(model.weights.layers[1].wq, before)
    }
}
