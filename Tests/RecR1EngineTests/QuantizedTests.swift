import Foundation
import RecR1Formats
import RecR1Kernels
import XCTest

@testable import RecR1Model
@testable import RecR1Policy

/// Few-row products against GGUF block formats must equal products with the dequantised fp32 matrix.
final class QuantizedTests: EngineTestCase {

    /// Random blocks with sane f16 scales (and minimums for Q4_1).
    func randomBlocks(_ type: QuantizedMatrix.BlockType, rows: Int, cols: Int, rng: inout SplitMix) -> [UInt8] {
        var bytes = (0..<(rows * QuantizedMatrix.rowBytes(type, cols))).map { _ in UInt8(truncatingIfNeeded: rng.next()) }
        let blockBytes = type == .q4_1 ? 20 : type == .q4_0 ? 18 : 34
        for b in 0..<(bytes.count / blockBytes) {
            let d = Float16(0.001 + rng.uniform() * 0.05).bitPattern
            bytes[b * blockBytes] = UInt8(d & 0xff)
            bytes[b * blockBytes + 1] = UInt8(d >> 8)
            if type == .q4_1 {
                let m = Float16(-0.1 + rng.uniform() * 0.05).bitPattern
                bytes[b * blockBytes + 2] = UInt8(m & 0xff)
                bytes[b * blockBytes + 3] = UInt8(m >> 8)
            }
        }
        return bytes
    }

    func testBlockProductsEqualDequantisedProducts() {
        var rng = SplitMix(seed: 11)
        let cols = 96
        for type in [QuantizedMatrix.BlockType.q4_0, .q4_1, .q8_0] {
            for (rows, xRows) in [(37, 1), (64, 3), (300, 8), (258, 13)] {  // odd sizes exercise the tails
                let blocks = randomBlocks(type, rows: rows, cols: cols, rng: &rng)
                let matrix = QuantizedMatrix(type: type, rows: rows, cols: cols, blocks: blocks)
                var dense = [Float](repeating: 0, count: rows * cols)
                blocks.withUnsafeBytes { raw in
                    Dequantize.run(GGMLType(rawValue: UInt32(type.rawValue))!, from: raw, into: &dense, count: rows * cols)
                }
                let x = (0..<(xRows * cols)).map { _ in rng.normal() }
                var expected = [Float](repeating: 0, count: xRows * rows)
                for r in 0..<xRows {
                    for n in 0..<rows {
                        var sum = 0.0
                        for i in 0..<cols { sum += Double(x[r * cols + i]) * Double(dense[n * cols + i]) }
                        expected[r * rows + n] = Float(sum)
                    }
                }
                var out = [Float](repeating: 1, count: xRows * rows)
                MatMul.linear(&out, x, dense, quantized: matrix, rows: xRows, inDim: cols, outDim: rows)
                XCTAssertLessThan(maxAbsDifference(out, expected), 1e-4, "\(type) \(rows)x\(cols), \(xRows) rows")
                // accumulate adds to what is there
                var twice = out
                MatMul.linear(&twice, x, dense, quantized: matrix, rows: xRows, inDim: cols, outDim: rows, accumulate: true)
                XCTAssertLessThan(maxAbsDifference(twice, out.map { 2 * $0 }), 1e-4)
            }
        }
    }

    func testDecodingWithBlocksMatchesFp32OnSmolLM2() throws {
        let model = try XCTUnwrap(ParityTests.model)
        XCTAssertNotNil(model.weights.quantizedHead, "the GGUF's Q8_0 embedding serves as the quantised head")
        XCTAssertEqual(model.weights.layers[0].quantized.wq?.type, .q4_1)
        let prompt: [Int32] = [1, 9690, 198, 2683, 359, 253, 5356, 5646]
        func lastLogits(quantized: Bool) -> [Float] {
            MatMul.useQuantized = quantized
            defer { MatMul.useQuantized = true }
            let cache = KVCache(config: model.config, slots: 1, capacity: prompt.count)
            for (p, token) in prompt.dropLast().enumerated() {  // token by token: every product has one row
                _ = model.forward([Decoder.Row(token: token, slot: 0, position: p)], cache: cache, logitRows: [])
            }
            return model.forward([Decoder.Row(token: prompt.last!, slot: 0, position: prompt.count - 1)], cache: cache, logitRows: [0])
        }
        let blocks = lastLogits(quantized: true), dense = lastLogits(quantized: false)
        let difference = maxAbsDifference(blocks, dense)
        print("quantised vs fp32 decoding: max |Δ logit| = \(difference)")
        XCTAssertLessThan(difference, 2e-3)
    }
}
