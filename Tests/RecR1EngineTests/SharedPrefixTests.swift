import Foundation
import XCTest

@testable import RecR1Learning
@testable import RecR1Model

/// Shared-prefix training: a group's prompt runs once and its completions attend to it. Log-probs and
/// gradients must equal the unshared computation's (each sequence whole), and finite differences.
final class SharedPrefixTests: EngineTestCase {

    // Two groups with one prompt each (4 and 3 samples, completions of varied length), and a lone sequence.
    let promptA: [Int32] = [3, 17, 42, 8, 8]
    let promptB: [Int32] = [29, 49, 5]
    lazy var sequences: [[Int32]] = [
        promptA + [1, 9], promptA + [22, 5, 7, 30], promptA + [6], promptA + [1, 9, 9],
        promptB + [40, 6, 6, 19], promptB + [11], promptB + [2, 33],
        [12, 44, 3, 7, 1],
    ]
    lazy var scored: [Range<Int>] = sequences.enumerated().map { index, sequence in
        (index < 4 ? promptA.count : index < 7 ? promptB.count : 2)..<sequence.count
    }
    let groups = [PrefixGroup(sequences: 0..<4, length: 5), PrefixGroup(sequences: 4..<7, length: 3)]

    func coefficients(seed: UInt64) -> [[Float]] {
        var rng = SplitMix(seed: seed)
        return scored.map { range in range.map { _ in rng.normal() } }
    }

    func testLogprobsAndGradientsEqualTheUnsharedPass() {
        for (bias, tied) in [(false, true), (true, false)] {
            let model = DecoderTests.randomModel(seed: 33, qkvBias: bias, tied: tied)
            let d = coefficients(seed: 4)
            let pass = TrainingPass(decoder: model)

            let plain = pass.forward(sequences: sequences, scored: scored, entropy: true)
            let plainEntropies = pass.entropies
            let plainGradients = ModelGradients(config: model.config)
            pass.backward(d, dEntropies: d, into: plainGradients)

            let shared = pass.forward(sequences: sequences, scored: scored, prefixGroups: groups, entropy: true)
            let sharedEntropies = pass.entropies
            let sharedGradients = ModelGradients(config: model.config)
            pass.backward(d, dEntropies: d, into: sharedGradients)

            for s in sequences.indices {
                XCTAssertEqual(shared[s].count, scored[s].count)
                XCTAssertLessThan(maxAbsDifference(shared[s], plain[s]), 1e-5, "log-probs of sequence \(s)")
                let size = max(1, plainEntropies[s].map(abs).max() ?? 0)   // entropies are several nats
                XCTAssertLessThan(maxAbsDifference(sharedEntropies[s], plainEntropies[s]) / size, 5e-5, "entropies of \(s)")
            }
            func check(_ name: String, _ a: [Float], _ b: [Float]) {
                let scale = max(1e-3, b.map(abs).max() ?? 0)
                XCTAssertGreaterThan(scale, 1e-3, "\(name): an all-zero gradient checks nothing")
                XCTAssertLessThan(maxAbsDifference(a, b) / scale, 2e-4, "\(name) bias \(bias) tied \(tied)")
            }
            check("token_embd", sharedGradients.tokenEmbedding, plainGradients.tokenEmbedding)
            check("final_norm", sharedGradients.finalNorm, plainGradients.finalNorm)
            if !tied { check("lm_head", sharedGradients.lmHead, plainGradients.lmHead) }
            for l in 0..<model.config.layers {
                let a = sharedGradients.layers[l], b = plainGradients.layers[l]
                check("blk.\(l).wq", a.wq, b.wq); check("blk.\(l).wk", a.wk, b.wk); check("blk.\(l).wv", a.wv, b.wv)
                check("blk.\(l).wo", a.wo, b.wo); check("blk.\(l).gate", a.wGate, b.wGate)
                check("blk.\(l).up", a.wUp, b.wUp); check("blk.\(l).down", a.wDown, b.wDown)
                check("blk.\(l).attn_norm", a.attnNorm, b.attnNorm); check("blk.\(l).ffn_norm", a.ffnNorm, b.ffnNorm)
                if bias { check("blk.\(l).bq", a.bq, b.bq); check("blk.\(l).bk", a.bk, b.bk); check("blk.\(l).bv", a.bv, b.bv) }
            }
        }
    }

    func testSharedGradientsMatchFiniteDifferences() {
        let model = DecoderTests.randomModel(seed: 9, qkvBias: true, tied: true)
        let d = coefficients(seed: 12)
        let pass = TrainingPass(decoder: model)
        func loss() -> Double {
            let logprobs = pass.forward(sequences: sequences, scored: scored, prefixGroups: groups)
            return zip(logprobs, d).reduce(0.0) { total, pair in
                total + zip(pair.0, pair.1).reduce(0.0) { $0 + Double($1.0) * Double($1.1) }
            }
        }
        _ = loss()
        let gradients = ModelGradients(config: model.config)
        pass.backward(d, into: gradients)
        let epsilon: Float = 1e-2
        // A prompt token's embedding gets gradient from every sample of its group; wk and wq carry the
        // attention from completions to the shared prompt.
        let checks: [(String, (ModelGradients) -> [Float], (inout ModelWeights, Int, Float) -> Void)] = [
            ("token_embd", { $0.tokenEmbedding }, { $0.tokenEmbedding[$1] += $2 }),
            ("blk.0.wk", { $0.layers[0].wk }, { $0.layers[0].wk[$1] += $2 }),
            ("blk.1.wq", { $0.layers[1].wq }, { $0.layers[1].wq[$1] += $2 }),
            ("blk.0.wv", { $0.layers[0].wv }, { $0.layers[0].wv[$1] += $2 }),
            ("blk.1.down", { $0.layers[1].wDown }, { $0.layers[1].wDown[$1] += $2 }),
        ]
        let dim = model.config.dim
        for (name, gradient, nudge) in checks {
            let analytic = gradient(gradients)
            var indices = Array(analytic.indices.sorted { abs(analytic[$0]) > abs(analytic[$1]) }.prefix(4))
            if name == "token_embd" { indices += [Int(promptA[1]) * dim + 3, Int(promptB[0]) * dim + 7] }
            for index in indices {
                model.updateWeights { nudge(&$0, index, epsilon) }
                let up = loss()
                model.updateWeights { nudge(&$0, index, -2 * epsilon) }
                let down = loss()
                model.updateWeights { nudge(&$0, index, epsilon) }
                let numeric = (up - down) / Double(2 * epsilon)
                let a = Double(analytic[index])
                XCTAssertEqual(a, numeric, accuracy: 2e-3 + 2e-2 * max(abs(a), abs(numeric)), "\(name)[\(index)]")
            }
        }
    }

    func testBatchesFindTheirSharedPromptsAndMicroBatchesKeepGroupsWhole() {
        let batch = TrainingBatch(sequences: sequences, scored: scored)
        XCTAssertEqual(batch.sharedPrompts(), groups)
        XCTAssertEqual(batch.sharedPrompts(minimum: 4), [groups[0]])
        // Rows: group A 5 + 2 + 4 + 1 + 3, group B 3 + 4 + 1 + 2, the lone sequence 5.
        XCTAssertEqual(batch.rows(0..<8, groups: groups), 15 + 10 + 5)
        let parts = microBatches(batch, groups: groups, maxTokens: 16)
        XCTAssertEqual(parts.map(\.range), [0..<4, 4..<8])
        XCTAssertEqual(parts[1].groups, [PrefixGroup(sequences: 0..<3, length: 3)])
        // A budget smaller than a group: the group runs alone, whole.
        XCTAssertEqual(microBatches(batch, groups: groups, maxTokens: 4).map(\.range), [0..<4, 4..<7, 7..<8])
    }

    func testTrainerStepsTheSameWithAndWithoutSharing() {
        var reports: [Trainer.Report] = []
        var weights: [[Float]] = []
        for share in [false, true] {
            let model = DecoderTests.randomModel(seed: 5, qkvBias: false, tied: true)
            var settings = TrainerSettings()
            settings.sharePrefixes = share
            settings.schedule = .constant(1e-2)
            settings.adamW.epsilon = 1e-3   // steps proportional to the gradients, so that the weights compare them
            let trainer = Trainer(decoder: model, settings: settings)
            let batch = TrainingBatch(sequences: sequences, scored: scored)
            let rewards: [Float] = [1, 0, 0.5, 0.2, 1, 0, 0.3, 0.7]
            reports.append(trainer.updateSeparately(batch) { range, logprobs, _ in
                // A GRPO-like loss: -reward × token log-prob, token mean over the batch.
                let count = Float(batch.scoredTokens)
                let grads = zip(range, logprobs).map { s, lp in lp.map { _ in -rewards[s] / count } }
                let loss = zip(range, logprobs).reduce(0.0) { $0 + Double(-rewards[$1.0]) * Double($1.1.reduce(0, +)) / Double(count) }
                return LossResult(loss: loss, gradients: grads, metrics: [:])
            })
            weights.append(model.adapters!.layers[0][.q]!.b)
        }
        XCTAssertTrue(reports[0].applied && reports[1].applied)
        XCTAssertEqual(reports[0].loss, reports[1].loss, accuracy: 1e-5 * max(1, abs(reports[0].loss)))
        XCTAssertEqual(reports[0].gradientNorm, reports[1].gradientNorm, accuracy: 1e-4 * max(1, reports[0].gradientNorm))
        XCTAssertGreaterThan(weights[0].map(abs).max() ?? 0, 0, "the step moved the adapter")
        XCTAssertLessThan(maxAbsDifference(weights[0], weights[1]), 1e-5)
    }
}
