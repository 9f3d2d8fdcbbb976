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

    /// GRPO and SFT run each micro-batch forward and backward once (their losses split over sequences): the
    /// step, the loss and the metrics equal those of the whole batch in one micro-batch.
    func testSeparableUpdatesInMicroBatchesEqualTheWholeBatch() {
        let prompts: [[Int32]] = [[4, 9, 12], [8, 8], [1, 2, 3, 4], [7, 7, 7]]
        let completions: [[Int32]] = [[30, 2, 5], [40, 3, 3, 9], [5, 6], [11, 12, 13, 14, 15]]
        let rewards: [Float] = [1, 0, 0.5, 2]
        for lora in [true, false] {
            func trained(_ budget: Int, _ body: (Trainer) -> Trainer.Report) -> (Trainer.Report, [Float]) {
                let model = DecoderTests.randomModel(seed: 52, qkvBias: true, tied: false)
                var settings = TrainerSettings()
                settings.lora = lora ? LoRASettings(rank: 4, alpha: 8) : nil
                settings.schedule = .constant(0.01)
                // A large epsilon makes the first AdamW step ≈ lr · g (with 1e-8 it is ≈ lr · sign(g), which
                // turns rounding-level gradient differences of near-zero entries into whole steps).
                settings.adamW = AdamWSettings(epsilon: 1)
                settings.maxTokensPerMicroBatch = budget
                settings.seed = 3
                let trainer = Trainer(decoder: model, settings: settings)
                let report = body(trainer)
                var flat: [Float] = []
                if let adapters = model.adapters {
                    adapters.forEachParameter(LoRAAdapters(zerosLike: adapters)) { p, _ in flat += p }
                } else {
                    model.updateWeights { $0.forEachParameter(ModelGradients(config: model.config)) { p, _ in flat += p } }
                }
                return (report, flat)
            }
            var grpo = GRPOSettings()
            grpo.beta = 0
            grpo.entropyCoefficient = 0.01
            let groups = [(0..<2), (2..<4)].map { group in
                group.map { GRPOSample(prompt: prompts[$0], completion: completions[$0], reward: rewards[$0]) }
            }
            for run in [{ (t: Trainer) in t.grpo(groups: groups, settings: grpo) },
                        { (t: Trainer) in t.sft(prompts: prompts, completions: completions) }] {
                let (whole, wholeWeights) = trained(1000, run)
                let (parts, partWeights) = trained(8, run)  // 3 or 4 micro-batches
                XCTAssertTrue(whole.applied && parts.applied)
                XCTAssertEqual(parts.loss, whole.loss, accuracy: 1e-6 * max(1, abs(whole.loss)))
                for (key, value) in whole.metrics {
                    XCTAssertEqual(parts.metrics[key] ?? .nan, value, accuracy: 1e-5 * max(1, abs(value)), key)
                }
                XCTAssertEqual(parts.gradientNorm, whole.gradientNorm, accuracy: 1e-5 * whole.gradientNorm)
                XCTAssertGreaterThan(whole.gradientNorm, 1e-4)
                XCTAssertLessThan(maxAbsDifference(partWeights, wholeWeights), 1e-6)
            }
        }
    }
}

/// The rules that turn scored samples into training items, in one place for Update and jobs: a flat group
/// (all rewards equal) is left out of GRPO when asked and never pairs for DPO.
final class GroupRuleTests: EngineTestCase {

    func testFlatGroupsAndBestAndWorst() {
        XCTAssertTrue(GRPO.isFlat([0.5, 0.5, 0.5]))
        XCTAssertTrue(GRPO.isFlat([]))
        XCTAssertFalse(GRPO.isFlat([0.5, 0.5, 0.6]))
        XCTAssertEqual(DPO.bestAndWorst([0.2, 0.9, nil, 0.9, 0.1, 0.1]).map { [$0.best, $0.worst] }, [1, 4], "first on ties")
        XCTAssertNil(DPO.bestAndWorst([0.3, nil, 0.3]), "all scored equal")
        XCTAssertNil(DPO.bestAndWorst([0.3, nil]), "one scored")
        XCTAssertEqual(DPO.bestAndWorst([nil, -1, 2]).map { [$0.best, $0.worst] }, [2, 1])
    }

    /// With dropFlatGroups, a flat group changes nothing: the step equals the step on the other groups alone
    /// (kept, it would count in the token mean and shrink the step). Every group flat: no step, weights kept.
    func testDroppedFlatGroupsLeaveTheStepOfTheOthers() {
        func trained(_ groups: [[GRPOSample]], drop: Bool, step: Bool = true) -> (Trainer.Report?, [Float]) {
            let model = DecoderTests.randomModel(seed: 61)
            var settings = TrainerSettings()
            settings.lora = LoRASettings(rank: 4, alpha: 8)
            settings.schedule = .constant(0.01)
            settings.seed = 5
            let trainer = Trainer(decoder: model, settings: settings)
            var grpo = GRPOSettings()
            grpo.beta = 0
            grpo.dropFlatGroups = drop
            let report = step ? trainer.grpo(groups: groups, settings: grpo) : nil
            var flat: [Float] = []
            model.adapters!.forEachParameter(LoRAAdapters(zerosLike: model.adapters!)) { p, _ in flat += p }
            return (report, flat)
        }
        func sample(_ prompt: [Int32], _ completion: [Int32], _ reward: Float) -> GRPOSample {
            GRPOSample(prompt: prompt, completion: completion, reward: reward)
        }
        let signal = [sample([4, 9, 12], [30, 2, 5], 1), sample([4, 9, 12], [40, 3], 0)]
        let flatGroup = [sample([8, 8], [11, 12, 13, 14], 0.5), sample([8, 8], [5, 6, 7], 0.5)]

        let (aloneReport, aloneWeights) = trained([signal], drop: false)
        let (droppedReport, droppedWeights) = trained([signal, flatGroup], drop: true)
        let (keptReport, keptWeights) = trained([signal, flatGroup], drop: false)
        let alone = aloneReport!, dropped = droppedReport!, kept = keptReport!
        XCTAssertTrue(alone.applied && dropped.applied && kept.applied)
        XCTAssertEqual(dropped.metrics["groups_flat"], 1)
        XCTAssertEqual(kept.metrics["groups_flat"], 0)
        XCTAssertEqual(dropped.sequences, 2)
        XCTAssertEqual(dropped.loss, alone.loss, accuracy: 1e-9)
        XCTAssertLessThan(maxAbsDifference(droppedWeights, aloneWeights), 1e-7)
        // Kept, the flat group's 7 tokens count in the token mean: the loss (and gradient) of the 5 others shrinks.
        XCTAssertEqual(kept.loss, alone.loss * 5 / 12, accuracy: 1e-6 * abs(alone.loss))
        XCTAssertGreaterThan(abs(alone.loss), 1e-4)
        XCTAssertEqual(keptWeights.count, aloneWeights.count)

        let (_, initial) = trained([flatGroup], drop: true, step: false)
        let (noneReport, noneWeights) = trained([flatGroup], drop: true)
        let none = noneReport!
        XCTAssertFalse(none.applied)
        XCTAssertEqual(none.metrics["groups_flat"], 1)
        XCTAssertTrue(none.skippedReason.contains("drop_flat_groups"))
        XCTAssertEqual(none.step, 0)
        XCTAssertEqual(noneWeights, initial)
        XCTAssertGreaterThan(maxAbsDifference(aloneWeights, initial), 1e-6)
    }
}
