import Foundation
import RecR1Kernels
import XCTest

@testable import RecR1Model
@testable import RecR1Policy

/// The backward pass against central finite differences, for every kind of parameter, on small random models.
final class TrainingPassTests: EngineTestCase {

    let sequences: [[Int32]] = [[3, 17, 42, 8, 8, 1], [29, 49, 5, 7], [11, 2, 33, 40, 6, 6, 19]]
    let scored: [Range<Int>] = [1..<6, 2..<4, 3..<7]

    /// A parameter: where its gradient is, and how to nudge one of its entries.
    struct Parameter {
        let name: String
        let gradient: (ModelGradients) -> [Float]
        let nudge: (inout ModelWeights, Int, Float) -> Void
    }

    func parameters(_ c: ModelConfig) -> [Parameter] {
        var list = [
            Parameter(name: "token_embd", gradient: { $0.tokenEmbedding }, nudge: { $0.tokenEmbedding[$1] += $2 }),
            Parameter(name: "final_norm", gradient: { $0.finalNorm }, nudge: { $0.finalNorm[$1] += $2 }),
        ]
        if !c.tiedEmbeddings {
            list.append(Parameter(name: "lm_head", gradient: { $0.lmHead }, nudge: { $0.lmHead![$1] += $2 }))
        }
        for l in 0..<c.layers {
            func layer(_ name: String, _ g: @escaping (LayerGradients) -> [Float],
                       _ path: WritableKeyPath<LayerWeights, [Float]>) -> Parameter {
                Parameter(name: "blk.\(l).\(name)", gradient: { g($0.layers[l]) }, nudge: { $0.layers[l][keyPath: path][$1] += $2 })
            }
            list += [
                layer("attn_norm", { $0.attnNorm }, \.attnNorm), layer("wq", { $0.wq }, \.wq), layer("wk", { $0.wk }, \.wk),
                layer("wv", { $0.wv }, \.wv), layer("wo", { $0.wo }, \.wo), layer("ffn_norm", { $0.ffnNorm }, \.ffnNorm),
                layer("gate", { $0.wGate }, \.wGate), layer("up", { $0.wUp }, \.wUp), layer("down", { $0.wDown }, \.wDown),
            ]
            if c.qkvBias {
                list += [
                    Parameter(name: "blk.\(l).bq", gradient: { $0.layers[l].bq }, nudge: { $0.layers[l].bq![$1] += $2 }),
                    Parameter(name: "blk.\(l).bk", gradient: { $0.layers[l].bk }, nudge: { $0.layers[l].bk![$1] += $2 }),
                    Parameter(name: "blk.\(l).bv", gradient: { $0.layers[l].bv }, nudge: { $0.layers[l].bv![$1] += $2 }),
                ]
            }
        }
        return list
    }

    func testGradientsMatchFiniteDifferences() {
        for (bias, tied) in [(false, true), (true, false)] {
            let model = DecoderTests.randomModel(seed: 21, qkvBias: bias, tied: tied)
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
            let gradients = ModelGradients(config: model.config)
            pass.backward(coefficients, into: gradients)

            let epsilon: Float = 1e-2
            for parameter in parameters(model.config) {
                let analytic = parameter.gradient(gradients)
                XCTAssertGreaterThan(analytic.map(abs).max() ?? 0, 1e-4, "\(parameter.name): an all-zero gradient checks nothing")
                // The entries with the largest gradients, and a few random ones.
                let largest = analytic.indices.sorted { abs(analytic[$0]) > abs(analytic[$1]) }.prefix(3)
                let random = (0..<3).map { _ in Int(rng.next() % UInt64(analytic.count)) }
                for index in Array(largest) + random {
                    model.updateWeights { $0.nudge(parameter, index, epsilon) }
                    let up = loss()
                    model.updateWeights { $0.nudge(parameter, index, -2 * epsilon) }
                    let down = loss()
                    model.updateWeights { $0.nudge(parameter, index, epsilon) }
                    let numeric = (up - down) / Double(2 * epsilon)
                    let a = Double(analytic[index])
                    XCTAssertEqual(a, numeric, accuracy: 2e-3 + 2e-2 * max(abs(a), abs(numeric)),
                                   "\(parameter.name)[\(index)] bias \(bias) tied \(tied)")
                }
            }
        }
    }

    func testTrainingForwardAgreesWithTheInferenceScorer() {
        let model = DecoderTests.randomModel(seed: 8, qkvBias: true, tied: false)
        let logprobs = TrainingPass(decoder: model).forward(sequences: sequences, scored: scored)
        let items = zip(sequences, scored).map { (prompt: Array($0[..<$1.lowerBound]), completion: Array($0[$1])) }
        let reference = Scorer.score(model, items: items)
        for (ours, theirs) in zip(logprobs, reference) {
            XCTAssertLessThan(maxAbsDifference(ours, theirs), 1e-4)
        }
    }
}

extension ModelWeights {
    mutating func nudge(_ parameter: TrainingPassTests.Parameter, _ index: Int, _ delta: Float) {
        parameter.nudge(&self, index, delta)
    }
}

/// The backward pass on SmolLM2 against PyTorch autograd (scripts/reference/make_golden_gradients.py).
final class GradientParityTests: EngineTestCase {
    func testGradientsMatchPyTorchAutograd() throws {
        let model = try XCTUnwrap(ParityTests.model)
        let data = try Data(contentsOf: ParityTests.golden.appendingPathComponent("gradients-smollm2.json"))
        let golden = try XCTUnwrap(JSONSerialization.jsonObject(with: data) as? [String: Any])
        let sequences = (golden["sequences"] as! [[Int]]).map { $0.map(Int32.init) }
        let scored = (golden["scored"] as! [[Int]]).map { $0[0]..<$0[1] }
        let coefficient = Float(golden["coefficient"] as! Double)

        let pass = TrainingPass(decoder: model)
        let logprobs = pass.forward(sequences: sequences, scored: scored)
        let loss = logprobs.flatMap { $0 }.reduce(0) { $0 + coefficient * $1 }
        XCTAssertEqual(Double(loss), golden["loss_value"] as! Double, accuracy: 1e-4)
        let gradients = ModelGradients(config: model.config)
        pass.backward(logprobs.map { $0.map { _ in coefficient } }, into: gradients)

        func ours(_ name: String) -> [Float]? {
            let parts = name.split(separator: ".")
            if name == "model.embed_tokens.weight" { return gradients.tokenEmbedding }
            if name == "model.norm.weight" { return gradients.finalNorm }
            guard parts.count >= 5, let l = Int(parts[2]) else { return nil }
            let layer = gradients.layers[l]
            switch parts[3...].joined(separator: ".") {
            case "input_layernorm.weight": return layer.attnNorm
            case "post_attention_layernorm.weight": return layer.ffnNorm
            case "self_attn.q_proj.weight": return layer.wq
            case "self_attn.k_proj.weight": return layer.wk
            case "self_attn.v_proj.weight": return layer.wv
            case "self_attn.o_proj.weight": return layer.wo
            case "mlp.gate_proj.weight": return layer.wGate
            case "mlp.up_proj.weight": return layer.wUp
            case "mlp.down_proj.weight": return layer.wDown
            default: return nil
            }
        }
        var worst: (error: Double, name: String) = (0, "")
        for tensor in golden["tensors"] as! [[String: Any]] {
            let name = tensor["name"] as! String
            let gradient = try XCTUnwrap(ours(name), name)
            let maxAbs = tensor["max_abs"] as! Double
            for (index, value) in zip(tensor["indices"] as! [Int], tensor["values"] as! [Double]) {
                let error = abs(Double(gradient[index]) - value) / maxAbs
                if error > worst.error { worst = (error, "\(name)[\(index)]") }
            }
            let norm = gradient.reduce(0.0) { $0 + Double($1) * Double($1) }.squareRoot()
            let expected = tensor["norm"] as! Double
            XCTAssertEqual(norm, expected, accuracy: 1e-3 * expected, "\(name) norm")
        }
        print("gradient parity: max |Δ| / max|grad| = \(worst.error) at \(worst.name)")
        XCTAssertLessThanOrEqual(worst.error, 1e-3, worst.name)
    }
}
