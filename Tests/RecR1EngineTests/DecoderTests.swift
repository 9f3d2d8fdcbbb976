import Foundation
import RecR1Kernels
import XCTest

@testable import RecR1Model

/// The forward pass on a small random model: the KV cache and batching must not change the numbers.
final class DecoderTests: EngineTestCase {

    static func randomModel(seed: UInt64 = 1, qkvBias: Bool = false, tied: Bool = true) -> Decoder {
        let config = ModelConfig(architecture: qkvBias ? .qwen2 : .llama, layers: 2, dim: 32, ffnDim: 48, heads: 4,
                                 kvHeads: 2, vocabSize: 50, contextLength: 64, ropeTheta: 10000, normEps: 1e-5,
                                 tiedEmbeddings: tied, qkvBias: qkvBias)
        var rng = SplitMix(seed: seed)
        func randoms(_ count: Int, scale: Float = 0.2) -> [Float] { (0..<count).map { _ in rng.normal() * scale } }
        func ones(_ count: Int) -> [Float] { (0..<count).map { _ in 1 + rng.normal() * 0.1 } }
        let c = config
        let layers = (0..<c.layers).map { _ in
            LayerWeights(attnNorm: ones(c.dim), wq: randoms(c.qDim * c.dim), wk: randoms(c.kvDim * c.dim),
                         wv: randoms(c.kvDim * c.dim), bq: qkvBias ? randoms(c.qDim) : nil,
                         bk: qkvBias ? randoms(c.kvDim) : nil, bv: qkvBias ? randoms(c.kvDim) : nil,
                         wo: randoms(c.dim * c.qDim), ffnNorm: ones(c.dim), wGate: randoms(c.ffnDim * c.dim),
                         wUp: randoms(c.ffnDim * c.dim), wDown: randoms(c.dim * c.ffnDim))
        }
        let weights = ModelWeights(tokenEmbedding: randoms(c.vocabSize * c.dim, scale: 1), layers: layers,
                                   finalNorm: ones(c.dim), lmHead: tied ? nil : randoms(c.vocabSize * c.dim))
        return Decoder(config: config, weights: weights)
    }

    func testChunkedLogitsEqualTheWholeOnes() {
        let model = Self.randomModel(qkvBias: true, tied: false)
        let tokens: [Int32] = [3, 17, 42, 8, 8, 1, 29, 49, 5, 11]
        let rows = tokens.enumerated().map { Decoder.Row(token: $1, slot: 0, position: $0) }
        let wanted = [9, 0, 4, 5, 7, 2, 1]
        let whole = model.forward(rows, cache: KVCache(config: model.config, slots: 1, capacity: 16), logitRows: wanted)
        var chunked: [Float] = [], ranges: [Range<Int>] = []
        model.forward(rows, cache: KVCache(config: model.config, slots: 1, capacity: 16), logitRows: wanted, chunk: 3) { range, logits in
            ranges.append(range)
            chunked += UnsafeBufferPointer(start: logits, count: range.count * 50)
        }
        XCTAssertEqual(ranges, [0..<3, 3..<6, 6..<7])
        XCTAssertEqual(chunked.count, whole.count)
        XCTAssertLessThan(maxAbsDifference(chunked, whole), 1e-5)
    }

    func testIncrementalDecodingMatchesOneBatch() {
        for (bias, tied) in [(false, true), (true, false)] {
            let model = Self.randomModel(qkvBias: bias, tied: tied)
            let tokens: [Int32] = [3, 17, 42, 8, 8, 1, 29, 49]
            // All at once.
            let whole = KVCache(config: model.config, slots: 1, capacity: 16)
            let rows = tokens.enumerated().map { Decoder.Row(token: $1, slot: 0, position: $0) }
            let all = model.forward(rows, cache: whole, logitRows: Array(0..<tokens.count))
            // One token at a time through the cache.
            let stepwise = KVCache(config: model.config, slots: 1, capacity: 16)
            for (p, token) in tokens.enumerated() {
                let logits = model.forward([Decoder.Row(token: token, slot: 0, position: p)], cache: stepwise, logitRows: [0])
                let expected = Array(all[(p * 50)..<((p + 1) * 50)])
                XCTAssertEqual(maxAbsDifference(logits, expected), 0, accuracy: 1e-4, "position \(p), bias \(bias)")
            }
        }
    }

    func testSharedPrefillAndInterleavedSlots() {
        let model = Self.randomModel(seed: 7)
        let prompt: [Int32] = [5, 6, 7, 8]
        let continuations: [[Int32]] = [[9, 10], [11, 12]]
        // Reference: each sequence alone.
        var expected: [[Float]] = []
        for continuation in continuations {
            let cache = KVCache(config: model.config, slots: 1, capacity: 8)
            let sequence = prompt + continuation
            let rows = sequence.enumerated().map { Decoder.Row(token: $1, slot: 0, position: $0) }
            expected.append(model.forward(rows, cache: cache, logitRows: [sequence.count - 1]))
        }
        // Prefill slot 0, copy it to slot 1, then decode both slots in the same batch.
        let cache = KVCache(config: model.config, slots: 2, capacity: 8)
        _ = model.forward(prompt.enumerated().map { Decoder.Row(token: $1, slot: 0, position: $0) }, cache: cache, logitRows: [])
        cache.copyPrefix(from: 0, to: [1], count: prompt.count)
        _ = model.forward([Decoder.Row(token: 9, slot: 0, position: 4), Decoder.Row(token: 11, slot: 1, position: 4)],
                          cache: cache, logitRows: [])
        let last = model.forward([Decoder.Row(token: 10, slot: 0, position: 5), Decoder.Row(token: 12, slot: 1, position: 5)],
                                 cache: cache, logitRows: [0, 1])
        XCTAssertEqual(maxAbsDifference(Array(last[0..<50]), expected[0]), 0, accuracy: 1e-4)
        XCTAssertEqual(maxAbsDifference(Array(last[50..<100]), expected[1]), 0, accuracy: 1e-4)
    }

    func testRoPEUnpermutationInvertsLlamaCppOrder() {
        // llama.cpp's permutation of a [heads·headDim × cols] matrix: row (h, t, i) -> (h, i, t).
        let heads = 2, headDim = 6, columns = 3
        let hf = (0..<(heads * headDim * columns)).map(Float.init)
        var permuted = [Float](repeating: 0, count: hf.count)
        for h in 0..<heads {
            for t in 0..<2 {
                for i in 0..<(headDim / 2) {
                    let source = (h * headDim + t * headDim / 2 + i) * columns
                    let target = (h * headDim + i * 2 + t) * columns
                    permuted[target..<(target + columns)] = hf[source..<(source + columns)]
                }
            }
        }
        XCTAssertNotEqual(permuted, hf)
        XCTAssertEqual(ModelWeights.unpermuteRoPERows(permuted, heads: heads, headDim: headDim, rowLength: columns), hf)
    }

    func testConfigRejectsInconsistentShapes() {
        let config = ModelConfig(architecture: .llama, layers: 2, dim: 32, ffnDim: 48, heads: 4, kvHeads: 3,
                                 vocabSize: 50, contextLength: 64, ropeTheta: 10000, normEps: 1e-5, tiedEmbeddings: true)
        XCTAssertThrowsError(try config.validate(file: "x")) { error in
            XCTAssertTrue("\(error)".contains("key/value heads"), "\(error)")
        }
    }
}

func maxAbsDifference(_ a: [Float], _ b: [Float]) -> Float {
    precondition(a.count == b.count)
    return zip(a, b).reduce(0) { max($0, abs($1.0 - $1.1)) }
}

/// A small deterministic generator for test weights.
struct SplitMix {
    var state: UInt64
    init(seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
    mutating func uniform() -> Float { Float(next() >> 40) / Float(1 << 24) }
    mutating func normal() -> Float {
        let u1 = max(uniform(), 1e-7), u2 = uniform()
        return (-2 * logf(u1)).squareRoot() * cosf(2 * .pi * u2)
    }
}
