import Foundation
import RecR1Kernels
import XCTest

@testable import RecR1Learning
@testable import RecR1Model
@testable import RecR1Policy

/// LoRA adapters in the inference decoder and the training pass, their gradients against finite
/// differences, and the entropy term's gradient.
final class LoRATests: EngineTestCase {

    let sequences: [[Int32]] = [[3, 17, 42, 8, 8, 1], [29, 49, 5, 7], [11, 2, 33, 40, 6, 6, 19]]
    let scored: [Range<Int>] = [1..<6, 2..<4, 3..<7]

    /// Adapters with a non-zero B, so that they change the model (a fresh adapter has B = 0).
    func adaptedModel(bias: Bool, tied: Bool, targets: [LoRATarget] = LoRATarget.allCases) -> Decoder {
        let model = DecoderTests.randomModel(seed: 61, qkvBias: bias, tied: tied)
        let adapters = LoRAAdapters(config: model.config, settings: LoRASettings(rank: 4, alpha: 8, targets: targets), seed: 3)
        var rng = SplitMix(seed: 9)
        for layer in adapters.layers { for pair in layer.values { pair.b = pair.b.map { _ in rng.normal() * 0.2 } } }
        model.adapters = adapters
        return model
    }

    func testAFreshAdapterLeavesTheModelUnchangedAndAdaptersOffIsTheBase() {
        let model = DecoderTests.randomModel(seed: 61, qkvBias: true, tied: false)
        let base = TrainingPass(decoder: model).forward(sequences: sequences, scored: scored)
        model.adapters = LoRAAdapters(config: model.config, settings: LoRASettings(rank: 4, alpha: 8), seed: 3)
        XCTAssertEqual(TrainingPass(decoder: model).forward(sequences: sequences, scored: scored), base, "B = 0 at the start")

        let adapted = adaptedModel(bias: true, tied: false)
        let changed = TrainingPass(decoder: adapted).forward(sequences: sequences, scored: scored)
        XCTAssertGreaterThan(maxAbsDifference(changed.flatMap { $0 }, base.flatMap { $0 }), 1e-3)
        adapted.adaptersEnabled = false
        XCTAssertEqual(TrainingPass(decoder: adapted).forward(sequences: sequences, scored: scored), base)
    }

    func testInferenceDecoderAndTrainingPassAgreeWithAdapters() {
        let model = adaptedModel(bias: true, tied: false)
        let training = TrainingPass(decoder: model).forward(sequences: sequences, scored: scored)
        let items = zip(sequences, scored).map { (prompt: Array($0[..<$1.lowerBound]), completion: Array($0[$1])) }
        for (ours, theirs) in zip(training, Scorer.score(model, items: items)) {
            XCTAssertLessThan(maxAbsDifference(ours, theirs), 1e-4)
        }
    }

    func testMergedWeightsEqualTheAdaptedModel() {
        let model = adaptedModel(bias: false, tied: true)
        let adapted = TrainingPass(decoder: model).forward(sequences: sequences, scored: scored)
        let adapters = model.adapters!
        var merged = model.weights
        for l in merged.layers.indices {
            let pairs = adapters.layers[l]
            merged.layers[l].wq = adapters.merged(merged.layers[l].wq, pairs[.q]!)
            merged.layers[l].wk = adapters.merged(merged.layers[l].wk, pairs[.k]!)
            merged.layers[l].wv = adapters.merged(merged.layers[l].wv, pairs[.v]!)
            merged.layers[l].wo = adapters.merged(merged.layers[l].wo, pairs[.o]!)
            merged.layers[l].wGate = adapters.merged(merged.layers[l].wGate, pairs[.gate]!)
            merged.layers[l].wUp = adapters.merged(merged.layers[l].wUp, pairs[.up]!)
            merged.layers[l].wDown = adapters.merged(merged.layers[l].wDown, pairs[.down]!)
        }
        let plain = TrainingPass(decoder: Decoder(config: model.config, weights: merged)).forward(sequences: sequences, scored: scored)
        XCTAssertLessThan(maxAbsDifference(plain.flatMap { $0 }, adapted.flatMap { $0 }), 1e-4)
    }

    func testAdapterGradientsMatchFiniteDifferences() {
        for (bias, tied) in [(false, true), (true, false)] {
            let model = adaptedModel(bias: bias, tied: tied)
            let adapters = model.adapters!
            var rng = SplitMix(seed: 5)
            let coefficients = scored.map { range in range.map { _ in rng.normal() } }
            let pass = TrainingPass(decoder: model)
            func loss() -> Double {
                let logprobs = pass.forward(sequences: sequences, scored: scored)
                return zip(logprobs, coefficients).reduce(0.0) { total, pair in
                    total + zip(pair.0, pair.1).reduce(0.0) { $0 + Double($1.0) * Double($1.1) }
                }
            }
            _ = loss()
            let gradients = LoRAAdapters(zerosLike: adapters)
            let baseBefore = model.weights.layers[0].wq
            pass.backward(coefficients, into: nil, adapterGradients: gradients)
            XCTAssertEqual(model.weights.layers[0].wq, baseBefore)

            let epsilon: Float = 1e-2
            for l in 0..<model.config.layers {
                for target in LoRATarget.allCases {
                    for matrix in [\LoRAPair.a, \LoRAPair.b] {
                        let pair = adapters.layers[l][target]!
                        let analytic = gradients.layers[l][target]![keyPath: matrix]
                        let name = "layer \(l) \(target) \(matrix == \LoRAPair.a ? "A" : "B") bias \(bias)"
                        XCTAssertGreaterThan(analytic.map(abs).max()!, 1e-5, "\(name): an all-zero gradient checks nothing")
                        let largest = analytic.indices.sorted { abs(analytic[$0]) > abs(analytic[$1]) }.prefix(2)
                        let random = (0..<2).map { _ in Int(rng.next() % UInt64(analytic.count)) }
                        for index in Array(largest) + random {
                            func nudge(_ delta: Float) {
                                if matrix == \LoRAPair.a { pair.a[index] += delta } else { pair.b[index] += delta }
                            }
                            nudge(epsilon); let up = loss()
                            nudge(-2 * epsilon); let down = loss()
                            nudge(epsilon)
                            let numeric = (up - down) / Double(2 * epsilon), a = Double(analytic[index])
                            XCTAssertEqual(a, numeric, accuracy: 2e-3 + 2e-2 * max(abs(a), abs(numeric)), "\(name)[\(index)]")
                        }
                    }
                }
            }
        }
    }

    func testEntropyGradientMatchesFiniteDifferences() {
        let model = DecoderTests.randomModel(seed: 71, qkvBias: false, tied: true)
        var rng = SplitMix(seed: 6)
        let coefficients = scored.map { range in range.map { _ in rng.normal() } }
        let pass = TrainingPass(decoder: model)
        func loss() -> Double {  // Σ c_t · H_t
            _ = pass.forward(sequences: sequences, scored: scored, entropy: true)
            return zip(pass.entropies, coefficients).reduce(0.0) { total, pair in
                total + zip(pair.0, pair.1).reduce(0.0) { $0 + Double($1.0) * Double($1.1) }
            }
        }
        _ = loss()
        for entropy in pass.entropies.flatMap({ $0 }) {
            XCTAssertGreaterThan(entropy, 0)
            XCTAssertLessThanOrEqual(entropy, logf(Float(model.config.vocabSize)) + 1e-4)
        }
        let gradients = ModelGradients(config: model.config)
        pass.backward(scored.map { $0.map { _ in 0 } }, dEntropies: coefficients, into: gradients)
        let epsilon: Float = 1e-2
        let analytic = gradients.layers[1].wUp
        for index in analytic.indices.sorted(by: { abs(analytic[$0]) > abs(analytic[$1]) }).prefix(4) {
            model.updateWeights { $0.layers[1].wUp[index] += epsilon }; let up = loss()
            model.updateWeights { $0.layers[1].wUp[index] -= 2 * epsilon }; let down = loss()
            model.updateWeights { $0.layers[1].wUp[index] += epsilon }
            let numeric = (up - down) / Double(2 * epsilon), a = Double(analytic[index])
            XCTAssertEqual(a, numeric, accuracy: 2e-3 + 2e-2 * max(abs(a), abs(numeric)), "wUp[\(index)]")
        }
        let head = gradients.tokenEmbedding
        for index in head.indices.sorted(by: { abs(head[$0]) > abs(head[$1]) }).prefix(4) {
            model.updateWeights { $0.tokenEmbedding[index] += epsilon }; let up = loss()
            model.updateWeights { $0.tokenEmbedding[index] -= 2 * epsilon }; let down = loss()
            model.updateWeights { $0.tokenEmbedding[index] += epsilon }
            let numeric = (up - down) / Double(2 * epsilon), a = Double(head[index])
            XCTAssertEqual(a, numeric, accuracy: 2e-3 + 2e-2 * max(abs(a), abs(numeric)), "token_embd[\(index)]")
        }
    }

    func testLoRAAdaptersLearnAndTheBaseStaysFrozen() {
        let model = DecoderTests.randomModel(seed: 31, qkvBias: true, tied: false)
        let base = model.weights.layers[1].wq
        var settings = TrainerSettings()
        settings.lora = LoRASettings(rank: 4, alpha: 8)
        settings.schedule = .constant(0.02)
        let trainer = Trainer(decoder: model, settings: settings)
        let batch = TrainingBatch(prompts: [[4, 9], [8]], completions: [[12, 30, 2, 17, 5], [8, 40, 3, 11]])
        var losses: [Double] = []
        for _ in 0..<30 {
            let report = trainer.update(batch) { logprobs, _ in SFT.loss(logprobs.map { ScoredSequence(logprobs: $0) }) }
            XCTAssertTrue(report.applied, report.skippedReason)
            losses.append(report.loss)
        }
        print("LoRA SFT on a random model: loss \(losses.first!) -> \(losses.last!)")
        XCTAssertLessThan(losses.last!, 0.7 * losses.first!)
        XCTAssertEqual(model.weights.layers[1].wq, base, "LoRA leaves the base weights alone")
        XCTAssertEqual(trainer.optimizer.step, 30)
        // The reference is the base: adapters off.
        let referenced = trainer.referenceLogprobs(batch)
        model.adapters = nil
        XCTAssertEqual(referenced, TrainingPass(decoder: model).forward(sequences: batch.sequences, scored: batch.scored))
    }

    func testMicroBatchedUpdateEqualsTheWholeBatch() {
        func run(maxTokens: Int) -> [Float] {
            let model = DecoderTests.randomModel(seed: 41, qkvBias: true, tied: true)
            var settings = TrainerSettings()
            settings.lora = nil
            settings.schedule = .constant(0.01)
            settings.maxTokensPerMicroBatch = maxTokens
            settings.adamW = AdamWSettings(epsilon: 1)  // an update nearly linear in the gradient, which this compares
            let trainer = Trainer(decoder: model, settings: settings)
            let batch = TrainingBatch(prompts: [[4, 9], [8], [1, 2, 3], [7]], completions: [[12, 30, 2], [8, 40, 3], [4, 5, 6], [7, 7]])
            var grpo = GRPOSettings()
            grpo.entropyCoefficient = 0.01
            grpo.aggregation = .sequenceMean
            let report = trainer.update(batch) { logprobs, entropies in
                GRPO.loss(logprobs.map { ScoredSequence(logprobs: $0) }, advantages: [1, -1, 0.5, -0.5], entropies: entropies,
                          settings: grpo)
            }
            XCTAssertTrue(report.applied)
            return model.weights.layers[0].wq + model.weights.tokenEmbedding
        }
        let whole = run(maxTokens: 1000), split = run(maxTokens: 6)
        XCTAssertLessThan(maxAbsDifference(whole, split), 1e-6)
    }
}
