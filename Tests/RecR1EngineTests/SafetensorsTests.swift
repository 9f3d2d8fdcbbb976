import Foundation
import RecR1Kernels
import XCTest

@testable import RecR1Formats
@testable import RecR1Model

/// Writes safetensors files byte by byte from the format's description, independently of the reader:
/// an 8-byte little-endian header length N, N bytes of JSON header {name: {dtype, shape, data_offsets}}
/// (plus an optional "__metadata__" of strings), padded with spaces, then the data section, to which the
/// offsets are relative.
enum SafetensorsFixture {
    struct Tensor {
        var name: String
        var dtype: String  // "F32", "BF16" or "F16"
        var shape: [Int]
        var values: [Float]
    }

    static func littleEndian<T: FixedWidthInteger>(_ value: T) -> [UInt8] {
        (0..<(T.bitWidth / 8)).map { UInt8(truncatingIfNeeded: value >> ($0 * 8)) }
    }

    /// bfloat16 is the upper half of an IEEE binary32; rounds to nearest, ties to even (finite values).
    static func bf16Bits(_ value: Float) -> UInt16 {
        let bits = value.bitPattern
        return UInt16(truncatingIfNeeded: (bits &+ 0x7FFF &+ ((bits >> 16) & 1)) >> 16)
    }

    /// The value a BF16 or F16 file holds for `value` (what a correct reader must return).
    static func stored(_ value: Float, as dtype: String) -> Float {
        switch dtype {
        case "BF16": return Float(bitPattern: UInt32(bf16Bits(value)) << 16)
        case "F16": return Float(Float16(value))
        default: return value
        }
    }

    static func bytes(of value: Float, as dtype: String) -> [UInt8] {
        switch dtype {
        case "F32": return littleEndian(value.bitPattern)
        case "BF16": return littleEndian(bf16Bits(value))
        case "F16": return littleEndian(Float16(value).bitPattern)  // IEEE binary16, round to nearest even
        default: preconditionFailure("the writer encodes F32, BF16 and F16")
        }
    }

    static func jsonList(_ values: [Int]) -> String { "[" + values.map(String.init).joined(separator: ",") + "]" }

    /// A complete file holding `tensors` back to back, in order.
    static func file(_ tensors: [Tensor], metadata: [String: String]? = ["format": "pt"]) -> Data {
        var entries: [String] = []
        if let metadata {
            let pairs = metadata.keys.sorted().map { "\"\($0)\":\"\(metadata[$0]!)\"" }
            entries.append("\"__metadata__\":{" + pairs.joined(separator: ",") + "}")
        }
        var data: [UInt8] = []
        for tensor in tensors {
            precondition(tensor.values.count == tensor.shape.reduce(1, *), "\(tensor.name): values do not fill the shape")
            let start = data.count
            for value in tensor.values { data += bytes(of: value, as: tensor.dtype) }
            entries.append("\"\(tensor.name)\":{\"dtype\":\"\(tensor.dtype)\",\"shape\":\(jsonList(tensor.shape)),"
                           + "\"data_offsets\":[\(start),\(data.count)]}")
        }
        return raw(header: "{" + entries.joined(separator: ",") + "}", data: data)
    }

    /// A file from a literal header and data: the header is padded with spaces to a multiple of 8 bytes (as
    /// the reference writer does), and its length is written in front unless `declaredLength` overrides it.
    static func raw(header: String, data: [UInt8], declaredLength: UInt64? = nil) -> Data {
        var headerBytes = Array(header.utf8)
        while headerBytes.count % 8 != 0 { headerBytes.append(0x20) }
        return Data(littleEndian(declaredLength ?? UInt64(headerBytes.count)) + headerBytes + data)
    }

    /// The Hugging Face tensors of a model, in the given dtype.
    static func tensors(of model: Decoder, dtype: String = "F32") -> [Tensor] {
        let c = model.config, w = model.weights
        func t(_ name: String, _ shape: [Int], _ values: [Float]) -> Tensor {
            Tensor(name: name, dtype: dtype, shape: shape, values: values)
        }
        var out = [t("model.embed_tokens.weight", [c.vocabSize, c.dim], w.tokenEmbedding)]
        for (i, layer) in w.layers.enumerated() {
            let p = "model.layers.\(i)."
            out.append(t(p + "input_layernorm.weight", [c.dim], layer.attnNorm))
            out.append(t(p + "self_attn.q_proj.weight", [c.qDim, c.dim], layer.wq))
            out.append(t(p + "self_attn.k_proj.weight", [c.kvDim, c.dim], layer.wk))
            out.append(t(p + "self_attn.v_proj.weight", [c.kvDim, c.dim], layer.wv))
            if let bq = layer.bq, let bk = layer.bk, let bv = layer.bv {
                out.append(t(p + "self_attn.q_proj.bias", [c.qDim], bq))
                out.append(t(p + "self_attn.k_proj.bias", [c.kvDim], bk))
                out.append(t(p + "self_attn.v_proj.bias", [c.kvDim], bv))
            }
            out.append(t(p + "self_attn.o_proj.weight", [c.dim, c.qDim], layer.wo))
            out.append(t(p + "post_attention_layernorm.weight", [c.dim], layer.ffnNorm))
            out.append(t(p + "mlp.gate_proj.weight", [c.ffnDim, c.dim], layer.wGate))
            out.append(t(p + "mlp.up_proj.weight", [c.ffnDim, c.dim], layer.wUp))
            out.append(t(p + "mlp.down_proj.weight", [c.dim, c.ffnDim], layer.wDown))
        }
        out.append(t("model.norm.weight", [c.dim], w.finalNorm))
        if let head = w.lmHead { out.append(t("lm_head.weight", [c.vocabSize, c.dim], head)) }
        return out
    }

    /// config.json as Hugging Face writes it for the test models (rope_theta 10000, rms_norm_eps 1e-5).
    static func config(of c: ModelConfig) -> [String: Any] {
        var json: [String: Any] = [
            "architectures": [c.architecture.rawValue],
            "model_type": c.architecture == .llama ? "llama" : "qwen2",
            "num_hidden_layers": c.layers, "hidden_size": c.dim, "intermediate_size": c.ffnDim,
            "num_attention_heads": c.heads, "num_key_value_heads": c.kvHeads, "vocab_size": c.vocabSize,
            "max_position_embeddings": c.contextLength, "rope_theta": 10000.0, "rms_norm_eps": 1e-5,
            "tie_word_embeddings": c.tiedEmbeddings, "hidden_act": "silu", "torch_dtype": "float32",
        ]
        // Llama configs carry attention_bias and often head_dim; Qwen2 configs have neither (bias is implied).
        if c.architecture == .llama {
            json["attention_bias"] = c.qkvBias
            json["head_dim"] = c.headDim
        }
        return json
    }
}

/// The safetensors reader, the config.json parser and the weight loader, on files written by hand above.
final class SafetensorsTests: EngineTestCase {

    var directory = ""

    override func setUpWithError() throws {
        directory = NSTemporaryDirectory() + "recr1-safetensors-\(UUID().uuidString.prefix(8))"
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
    }

    override func tearDown() {
        try? FileManager.default.removeItem(atPath: directory)
    }

    // MARK: - Helpers

    @discardableResult
    func write(_ data: Data, _ name: String, in folder: String? = nil) -> String {
        let path = (folder ?? directory) + "/" + name
        XCTAssertTrue(FileManager.default.createFile(atPath: path, contents: data), "cannot write \(path)")
        return path
    }

    func writeJSON(_ object: Any, _ name: String, in folder: String) throws {
        write(try JSONSerialization.data(withJSONObject: object, options: [.sortedKeys]), name, in: folder)
    }

    /// A Hugging Face directory for `model`: config.json and either model.safetensors or two shards with an index.
    func writeModelDirectory(_ model: Decoder, name: String, dtype: String = "F32", sharded: Bool = false,
                             config: [String: Any]? = nil,
                             edit: (inout [SafetensorsFixture.Tensor]) -> Void = { _ in }) throws -> String {
        let folder = directory + "/" + name
        try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
        try writeJSON(config ?? SafetensorsFixture.config(of: model.config), "config.json", in: folder)
        var tensors = SafetensorsFixture.tensors(of: model, dtype: dtype)
        edit(&tensors)
        if sharded {
            // The embedding and layer 0 in the first shard, everything else in the second.
            let first = tensors.filter { $0.name.hasPrefix("model.embed_tokens") || $0.name.hasPrefix("model.layers.0.") }
            let second = tensors.filter { t in !first.contains { $0.name == t.name } }
            let names = ["model-00001-of-00002.safetensors", "model-00002-of-00002.safetensors"]
            var map: [String: String] = [:]
            for (shard, group) in zip(names, [first, second]) {
                write(SafetensorsFixture.file(group), shard, in: folder)
                for tensor in group { map[tensor.name] = shard }
            }
            try writeJSON(["metadata": ["total_size": 4 * tensors.reduce(0) { $0 + $1.values.count }], "weight_map": map],
                          "model.safetensors.index.json", in: folder)
        } else {
            write(SafetensorsFixture.file(tensors), "model.safetensors", in: folder)
        }
        return folder
    }

    /// Logits of every position of a fixed token sequence.
    func logits(_ model: Decoder) -> [Float] {
        let tokens: [Int32] = [0, 3, 17, 42, 8, 8, 49, 21]
        let cache = KVCache(config: model.config, slots: 1, capacity: 16)
        let rows = tokens.enumerated().map { Decoder.Row(token: $1, slot: 0, position: $0) }
        return model.forward(rows, cache: cache, logitRows: Array(0..<tokens.count))
    }

    func assertSameWeights(_ a: ModelWeights, _ b: ModelWeights, _ label: String, file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertEqual(a.tokenEmbedding, b.tokenEmbedding, "\(label): embedding", file: file, line: line)
        XCTAssertEqual(a.finalNorm, b.finalNorm, "\(label): final norm", file: file, line: line)
        XCTAssertEqual(a.lmHead, b.lmHead, "\(label): lm head", file: file, line: line)
        XCTAssertEqual(a.layers.count, b.layers.count, "\(label): layers", file: file, line: line)
        for (i, (x, y)) in zip(a.layers, b.layers).enumerated() {
            let pairs: [(String, [Float]?, [Float]?)] = [
                ("attnNorm", x.attnNorm, y.attnNorm), ("wq", x.wq, y.wq), ("wk", x.wk, y.wk), ("wv", x.wv, y.wv),
                ("bq", x.bq, y.bq), ("bk", x.bk, y.bk), ("bv", x.bv, y.bv), ("wo", x.wo, y.wo),
                ("ffnNorm", x.ffnNorm, y.ffnNorm), ("wGate", x.wGate, y.wGate), ("wUp", x.wUp, y.wUp),
                ("wDown", x.wDown, y.wDown),
            ]
            for (name, u, v) in pairs { XCTAssertEqual(u, v, "\(label): layer \(i) \(name)", file: file, line: line) }
        }
    }

    /// `body` must throw a FormatError whose text contains every one of `parts`.
    func assertFormatError(_ label: String, contains parts: [String], file: StaticString = #filePath, line: UInt = #line,
                           _ body: () throws -> Void) {
        do {
            try body()
            XCTFail("\(label): no error", file: file, line: line)
        } catch let error as FormatError {
            for part in parts {
                XCTAssertTrue(error.description.contains(part), "\(label): '\(error)' does not mention '\(part)'", file: file, line: line)
            }
        } catch {
            XCTFail("\(label): not a FormatError: \(error)", file: file, line: line)
        }
    }

    // MARK: - The writer itself, against known bit patterns

    func testWriterProducesTheSpecifiedBytes() {
        XCTAssertEqual(SafetensorsFixture.bytes(of: 1, as: "F32"), [0x00, 0x00, 0x80, 0x3F])
        XCTAssertEqual(SafetensorsFixture.bytes(of: 1, as: "BF16"), [0x80, 0x3F])
        XCTAssertEqual(SafetensorsFixture.bytes(of: -2, as: "BF16"), [0x00, 0xC0])
        XCTAssertEqual(SafetensorsFixture.bytes(of: 1, as: "F16"), [0x00, 0x3C])
        XCTAssertEqual(SafetensorsFixture.bytes(of: 65504, as: "F16"), [0xFF, 0x7B])          // largest finite half
        XCTAssertEqual(SafetensorsFixture.bytes(of: 0x1p-24, as: "F16"), [0x01, 0x00])        // smallest subnormal half
        // BF16 rounding: 1 + 2^-8 is halfway between 1 and 1 + 2^-7 and goes to the even 1 (0x3F80);
        // 1 + 3·2^-8 is halfway between 0x3F81 and 0x3F82 and goes to the even 0x3F82; 1 + 2^-8 + 2^-20 rounds up.
        XCTAssertEqual(SafetensorsFixture.bf16Bits(1 + 0x1p-8), 0x3F80)
        XCTAssertEqual(SafetensorsFixture.bf16Bits(1 + 3 * 0x1p-8), 0x3F82)
        XCTAssertEqual(SafetensorsFixture.bf16Bits(1 + 0x1p-8 + 0x1p-20), 0x3F81)
        // Header: length prefix, then JSON padded with spaces to a multiple of 8, then data.
        let file = [UInt8](SafetensorsFixture.raw(header: "{}", data: [7]))
        XCTAssertEqual(file, [8, 0, 0, 0, 0, 0, 0, 0] + Array("{}      ".utf8) + [7])
    }

    // MARK: - Reading tensors

    func testTensorsOfEachDTypeWithMetadataAndPadding() throws {
        let tensors = [
            SafetensorsFixture.Tensor(name: "a", dtype: "F32", shape: [2, 3], values: [1, -2, 3.5, 0, 1e-20, -7.25e10]),
            SafetensorsFixture.Tensor(name: "b", dtype: "BF16", shape: [3], values: [1, -2, 0.5]),
            SafetensorsFixture.Tensor(name: "c", dtype: "F16", shape: [1, 2, 2], values: [0.25, -1.5, 1023.5, 65504]),
            SafetensorsFixture.Tensor(name: "scalar", dtype: "F32", shape: [], values: [42]),
            SafetensorsFixture.Tensor(name: "empty", dtype: "F32", shape: [0, 4], values: []),
        ]
        let path = write(SafetensorsFixture.file(tensors, metadata: ["format": "pt", "note": "written by hand"]), "mixed.safetensors")
        let file = try SafetensorsFile(path: path)
        XCTAssertEqual(Set(file.tensors.keys), ["a", "b", "c", "scalar", "empty"])  // no "__metadata__"
        // Offsets are relative to the data section: a takes 24 bytes, b 6, c 8, scalar 4.
        XCTAssertEqual(file.tensors["a"], .init(name: "a", dtype: "F32", shape: [2, 3], range: 0..<24))
        XCTAssertEqual(file.tensors["b"], .init(name: "b", dtype: "BF16", shape: [3], range: 24..<30))
        XCTAssertEqual(file.tensors["c"], .init(name: "c", dtype: "F16", shape: [1, 2, 2], range: 30..<38))
        XCTAssertEqual(file.tensors["scalar"]?.range, 38..<42)
        XCTAssertEqual(try file.floats("a"), [1, -2, 3.5, 0, 1e-20, -7.25e10])
        XCTAssertEqual(try file.floats("b"), [1, -2, 0.5])
        XCTAssertEqual(try file.floats("c"), [0.25, -1.5, 1023.5, 65504])
        XCTAssertEqual(try file.floats("scalar"), [42])
        XCTAssertEqual(try file.floats("empty"), [])
        assertFormatError("missing tensor", contains: ["'d'", "mixed.safetensors"]) { _ = try file.floats("d") }
    }

    func testHalfPrecisionExactValuesLoadExactlyAndOthersWithinRounding() throws {
        // Exactly representable: BF16 keeps f32's exponent range with 8 significant bits; F16 has 11 bits,
        // exponents down to 2^-24 (subnormal) and a largest finite value of 65504.
        let exactBF16: [Float] = [1, -2, 0.5, 3.140625, -0.0, 65280, .infinity, 0x1p-126, 0x1p-133,
                                  Float(bitPattern: 0x7F7F_0000) /* largest finite bf16 */, Float(-1.5e-3).bf16Truncated]
        let exactF16: [Float] = [1, -2, 0.5, 1023.5, -0.0, 65504, -.infinity, 0x1p-14, 0x1p-24, 3 * 0x1p-24, 1638 * 0x1p-14]
        // General values, none of them representable, all in F16's normal range.
        let general: [Float] = [.pi, 0.1, -1234.567, 1e-3, 3.1e4, -0.7071068, 12.3456789]
        let path = write(SafetensorsFixture.file([
            .init(name: "bf16.exact", dtype: "BF16", shape: [exactBF16.count], values: exactBF16),
            .init(name: "f16.exact", dtype: "F16", shape: [exactF16.count], values: exactF16),
            .init(name: "bf16.general", dtype: "BF16", shape: [general.count], values: general),
            .init(name: "f16.general", dtype: "F16", shape: [general.count], values: general),
            .init(name: "f32.general", dtype: "F32", shape: [general.count], values: general),
        ]), "half.safetensors")
        let file = try SafetensorsFile(path: path)

        let bf16 = try file.floats("bf16.exact"), f16 = try file.floats("f16.exact")
        XCTAssertEqual(bf16.map(\.bitPattern), exactBF16.map(\.bitPattern))  // bit for bit: keeps -0.0 and infinities
        XCTAssertEqual(f16.map(\.bitPattern), exactF16.map(\.bitPattern))

        // Round to nearest: the error is at most half a unit in the last place, 2^-8 relative for BF16
        // (8 significant bits) and 2^-11 for F16 (11 bits).
        for (name, bound) in [("bf16.general", Float(0x1p-8)), ("f16.general", Float(0x1p-11))] {
            let loaded = try file.floats(name)
            for (value, got) in zip(general, loaded) {
                XCTAssertLessThanOrEqual(abs(got - value), abs(value) * bound, "\(name): \(value) loaded as \(got)")
                XCTAssertNotEqual(got, value, "\(name): \(value) is not representable, so it cannot load exactly")
                XCTAssertEqual(got, SafetensorsFixture.stored(value, as: name.hasPrefix("bf16") ? "BF16" : "F16"))
            }
        }
        XCTAssertEqual(try file.floats("f32.general"), general)
    }

    // MARK: - Whole models through Decoder.load

    func testF32ModelsRoundTripThroughDecoderLoad() throws {
        for (bias, tied) in [(false, true), (true, false)] {
            let model = DecoderTests.randomModel(seed: 21, qkvBias: bias, tied: tied)
            let expected = logits(model)
            for sharded in [false, true] {
                let label = "\(model.config.architecture) tied \(tied) sharded \(sharded)"
                let folder = try writeModelDirectory(model, name: "\(bias)-\(tied)-\(sharded)", sharded: sharded)
                XCTAssertEqual(FileManager.default.fileExists(atPath: folder + "/model.safetensors"), !sharded)
                let loaded = try Decoder.load(path: folder)
                XCTAssertEqual(loaded.config, model.config, label)
                assertSameWeights(loaded.weights, model.weights, label)
                XCTAssertLessThanOrEqual(maxAbsDifference(logits(loaded), expected), 1e-5, label)
            }
        }
    }

    func testHalfPrecisionModelsLoadAsTheirRoundedWeights() throws {
        // The model a BF16/F16 file describes is the f32 model with every weight rounded to that format.
        let model = DecoderTests.randomModel(seed: 4, qkvBias: true, tied: false)
        for dtype in ["BF16", "F16"] {
            func round(_ values: [Float]) -> [Float] { values.map { SafetensorsFixture.stored($0, as: dtype) } }
            func roundOptional(_ values: [Float]?) -> [Float]? { values.map { round($0) } }
            let w = model.weights
            let rounded = Decoder(config: model.config, weights: ModelWeights(
                tokenEmbedding: round(w.tokenEmbedding),
                layers: w.layers.map {
                    LayerWeights(attnNorm: round($0.attnNorm), wq: round($0.wq), wk: round($0.wk), wv: round($0.wv),
                                 bq: roundOptional($0.bq), bk: roundOptional($0.bk), bv: roundOptional($0.bv), wo: round($0.wo),
                                 ffnNorm: round($0.ffnNorm), wGate: round($0.wGate), wUp: round($0.wUp), wDown: round($0.wDown))
                },
                finalNorm: round(w.finalNorm), lmHead: roundOptional(w.lmHead)))
            let loaded = try Decoder.load(path: try writeModelDirectory(model, name: dtype, dtype: dtype, sharded: true))
            assertSameWeights(loaded.weights, rounded.weights, dtype)
            XCTAssertLessThanOrEqual(maxAbsDifference(logits(loaded), logits(rounded)), 1e-5, dtype)
        }
    }

    // MARK: - Errors in weights

    func testMissingTensorIsNamed() throws {
        let llama = DecoderTests.randomModel(seed: 2)
        let noUp = try writeModelDirectory(llama, name: "no-up") { $0.removeAll { $0.name == "model.layers.1.mlp.up_proj.weight" } }
        assertFormatError("missing weight", contains: ["missing tensor", "'model.layers.1.mlp.up_proj.weight'"]) {
            _ = try Decoder.load(path: noUp)
        }
        // Qwen2 requires its q/k/v biases.
        let qwen = DecoderTests.randomModel(seed: 2, qkvBias: true, tied: false)
        let noBias = try writeModelDirectory(qwen, name: "no-bias", sharded: true) {
            $0.removeAll { $0.name == "model.layers.0.self_attn.k_proj.bias" }
        }
        assertFormatError("missing bias", contains: ["'model.layers.0.self_attn.k_proj.bias'"]) { _ = try Decoder.load(path: noBias) }
        // An untied config needs lm_head.weight.
        var untied = SafetensorsFixture.config(of: llama.config)
        untied["tie_word_embeddings"] = false
        let noHead = try writeModelDirectory(llama, name: "no-head", config: untied)
        assertFormatError("missing head", contains: ["'lm_head.weight'"]) { _ = try Decoder.load(path: noHead) }
    }

    func testWrongShapeNamesTensorAndBothShapes() throws {
        let model = DecoderTests.randomModel(seed: 2)
        // k_proj must be [kvDim × dim] = [16 × 32]; write it as [32 × 32].
        let folder = try writeModelDirectory(model, name: "bad-shape") { tensors in
            let i = tensors.firstIndex { $0.name == "model.layers.0.self_attn.k_proj.weight" }!
            tensors[i].shape = [32, 32]
            tensors[i].values = [Float](repeating: 0.5, count: 32 * 32)
        }
        assertFormatError("wrong shape", contains: ["'model.layers.0.self_attn.k_proj.weight'", "[32, 32]", "[16, 32]"]) {
            _ = try Decoder.load(path: folder)
        }
        // A transposed matrix (same element count) is as wrong as a bigger one.
        let transposed = try writeModelDirectory(model, name: "transposed") { tensors in
            let i = tensors.firstIndex { $0.name == "model.layers.1.mlp.down_proj.weight" }!
            tensors[i].shape = [48, 32]
        }
        assertFormatError("transposed", contains: ["'model.layers.1.mlp.down_proj.weight'", "[48, 32]", "[32, 48]"]) {
            _ = try Decoder.load(path: transposed)
        }
    }

    // MARK: - Broken files

    func testTruncatedFiles() throws {
        let good = SafetensorsFixture.file([.init(name: "w", dtype: "F32", shape: [4, 4], values: (0..<16).map(Float.init))])
        assertFormatError("empty", contains: ["truncated"]) { _ = try SafetensorsFile(path: write(Data(), "empty.safetensors")) }
        assertFormatError("5 bytes", contains: ["truncated"]) { _ = try SafetensorsFile(path: write(good.prefix(5), "five.safetensors")) }
        // The header is whole but the data stops 4 bytes short of w's 64.
        assertFormatError("short data", contains: ["truncated", "'w'", "short.safetensors"]) {
            _ = try SafetensorsFile(path: write(good.dropLast(4), "short.safetensors"))
        }
        // Cut inside the header.
        assertFormatError("short header", contains: ["truncated"]) {
            _ = try SafetensorsFile(path: write(good.prefix(20), "header.safetensors"))
        }
        assertFormatError("no file", contains: ["absent.safetensors", "cannot read"]) {
            _ = try SafetensorsFile(path: directory + "/absent.safetensors")
        }
    }

    func testHeaderLengthBeyondTheFile() {
        let header = "{\"w\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}}"
        assertFormatError("4096", contains: ["truncated", "4096"]) {
            _ = try SafetensorsFile(path: write(SafetensorsFixture.raw(header: header, data: [0, 0, 0, 0], declaredLength: 4096), "long.safetensors"))
        }
        // A length that does not even fit in an Int must not overflow anything.
        assertFormatError("UInt64.max", contains: ["truncated", "\(UInt64.max)"]) {
            _ = try SafetensorsFile(path: write(SafetensorsFixture.raw(header: header, data: [0, 0, 0, 0], declaredLength: .max), "max.safetensors"))
        }
    }

    func testHeaderThatIsNotJSON() {
        assertFormatError("not JSON", contains: ["not JSON", "garbage.safetensors"]) {
            _ = try SafetensorsFile(path: write(SafetensorsFixture.raw(header: "{\"w\": {dtype: F32", data: []), "garbage.safetensors"))
        }
    }

    func testUnsupportedDType() {
        let header = "{\"ids\":{\"dtype\":\"I64\",\"shape\":[2],\"data_offsets\":[0,16]}}"
        assertFormatError("I64", contains: ["'ids'", "I64"]) {
            _ = try SafetensorsFile(path: write(SafetensorsFixture.raw(header: header, data: [UInt8](repeating: 0, count: 16)), "i64.safetensors"))
        }
    }

    func testDataOffsetsThatDoNotMatchTheShape() {
        let data = [UInt8](repeating: 0, count: 64)
        // [2, 3] F32 needs 24 bytes: 20, reversed offsets and a negative start are all wrong.
        for (label, offsets) in [("too few bytes", "[0,20]"), ("too many bytes", "[0,28]"), ("reversed", "[24,0]"), ("negative", "[-4,20]")] {
            let header = "{\"m\":{\"dtype\":\"F32\",\"shape\":[2,3],\"data_offsets\":\(offsets)}}"
            assertFormatError(label, contains: ["'m'", "data_offsets"]) {
                _ = try SafetensorsFile(path: write(SafetensorsFixture.raw(header: header, data: data), "offsets.safetensors"))
            }
        }
        // An entry without data_offsets.
        assertFormatError("no offsets", contains: ["'m'", "data_offsets"]) {
            _ = try SafetensorsFile(path: write(SafetensorsFixture.raw(header: "{\"m\":{\"dtype\":\"F32\",\"shape\":[2,3]}}", data: data), "none.safetensors"))
        }
    }

    func testImpossibleShapesAreErrorsNotCrashes() {
        let data = [UInt8](repeating: 0, count: 64)
        // A negative dimension with offsets that agree with it arithmetically ([-1] × 4 bytes = -4).
        assertFormatError("negative dimension", contains: ["'m'", "[-1]"]) {
            let header = "{\"m\":{\"dtype\":\"F32\",\"shape\":[-1],\"data_offsets\":[8,4]}}"
            _ = try SafetensorsFile(path: write(SafetensorsFixture.raw(header: header, data: data), "negative.safetensors"))
        }
        // Element counts whose byte size overflows a 64-bit integer.
        for (label, shape) in [("count", "[4611686018427387904,4]"), ("bytes", "[4611686018427387904]")] {
            assertFormatError("overflowing \(label)", contains: ["'m'"]) {
                let header = "{\"m\":{\"dtype\":\"F32\",\"shape\":\(shape),\"data_offsets\":[0,16]}}"
                _ = try SafetensorsFile(path: write(SafetensorsFixture.raw(header: header, data: data), "huge.safetensors"))
            }
        }
        // A size that fits (2^60 floats = 2^62 bytes) with offsets ending at Int.max: consistent with the shape,
        // but far past the end of the file, and the end offset plus the header length overflows.
        assertFormatError("offsets at Int.max", contains: ["'m'", "truncated"]) {
            let header = "{\"m\":{\"dtype\":\"F32\",\"shape\":[1152921504606846976],"
                + "\"data_offsets\":[4611686018427387903,9223372036854775807]}}"
            _ = try SafetensorsFile(path: write(SafetensorsFixture.raw(header: header, data: data), "far.safetensors"))
        }
    }

    // MARK: - Shards

    func testShardErrors() throws {
        let model = DecoderTests.randomModel(seed: 2)
        let folder = try writeModelDirectory(model, name: "shards", sharded: true)
        try FileManager.default.removeItem(atPath: folder + "/model-00002-of-00002.safetensors")
        assertFormatError("absent shard", contains: ["model-00002-of-00002.safetensors"]) { _ = try Decoder.load(path: folder) }

        try writeJSON(["metadata": ["total_size": 0]], "model.safetensors.index.json", in: folder)
        assertFormatError("no weight_map", contains: ["model.safetensors.index.json", "weight_map"]) {
            _ = try SafetensorsSet(directory: folder)
        }
        write(Data("{\"weight_map\": ".utf8), "model.safetensors.index.json", in: folder)
        assertFormatError("index not JSON", contains: ["model.safetensors.index.json"]) { _ = try SafetensorsSet(directory: folder) }
    }

    // MARK: - config.json

    func testConfigValuesAreRead() throws {
        // A SmolLM2-style config: integer rope_theta, explicit head_dim, GQA.
        let path = directory + "/config.json"
        try writeJSON([
            "architectures": ["LlamaForCausalLM"], "num_hidden_layers": 30, "hidden_size": 576, "intermediate_size": 1536,
            "num_attention_heads": 9, "num_key_value_heads": 3, "head_dim": 64, "vocab_size": 49152,
            "max_position_embeddings": 8192, "rope_theta": 100000, "rms_norm_eps": 1e-5, "tie_word_embeddings": true,
        ], "config.json", in: directory)
        let config = try ModelConfig(configJSON: path)
        XCTAssertEqual(config, ModelConfig(architecture: .llama, layers: 30, dim: 576, ffnDim: 1536, heads: 9, kvHeads: 3,
                                           headDim: 64, vocabSize: 49152, contextLength: 8192, ropeTheta: 100000,
                                           normEps: 1e-5, tiedEmbeddings: true, qkvBias: false))
        // Qwen2 without attention_bias still has q/k/v biases.
        try writeJSON([
            "architectures": ["Qwen2ForCausalLM"], "num_hidden_layers": 24, "hidden_size": 896, "intermediate_size": 4864,
            "num_attention_heads": 14, "num_key_value_heads": 2, "vocab_size": 151936, "max_position_embeddings": 32768,
            "rope_theta": 1000000.0, "rms_norm_eps": 1e-6, "tie_word_embeddings": true,
        ], "config.json", in: directory)
        let qwen = try ModelConfig(configJSON: path)
        XCTAssertEqual(qwen.architecture, .qwen2)
        XCTAssertTrue(qwen.qkvBias)
        XCTAssertEqual(qwen.headDim, 64)  // 896 / 14
        XCTAssertEqual(qwen.ropeTheta, 1_000_000)
    }

    func testConfigErrorsNameTheProblem() throws {
        let model = DecoderTests.randomModel(seed: 2)
        let good = SafetensorsFixture.config(of: model.config)
        func load(_ json: [String: Any], _ name: String) throws -> Decoder {
            try Decoder.load(path: try writeModelDirectory(model, name: name, config: json))
        }
        var unknown = good
        unknown["architectures"] = ["MistralForCausalLM"]
        assertFormatError("architecture", contains: ["config.json", "'MistralForCausalLM'"]) { _ = try load(unknown, "mistral") }

        var noArchitectures = good
        noArchitectures["architectures"] = nil
        noArchitectures["model_type"] = nil
        assertFormatError("no architectures", contains: ["config.json", "architectures", "model_type"]) { _ = try load(noArchitectures, "no-arch") }
        noArchitectures["model_type"] = "mistral"
        assertFormatError("unknown model_type", contains: ["config.json", "'mistral'"]) { _ = try load(noArchitectures, "no-arch-mistral") }
        // With model_type alone the model loads, as in transformers, and computes what the full config does.
        noArchitectures["model_type"] = "llama"
        let byType = try load(noArchitectures, "by-type")
        XCTAssertEqual(byType.config, try load(good, "by-class").config)

        for key in ["hidden_size", "num_hidden_layers", "vocab_size", "num_attention_heads", "intermediate_size"] {
            var missing = good
            missing[key] = nil
            assertFormatError("missing \(key)", contains: ["config.json", "'\(key)'"]) { _ = try load(missing, "no-\(key)") }
        }
        var wrongType = good
        wrongType["hidden_size"] = "32"
        assertFormatError("string hidden_size", contains: ["'hidden_size'"]) { _ = try load(wrongType, "string-size") }

        var badHeads = good
        badHeads["num_key_value_heads"] = 3
        assertFormatError("heads", contains: ["config.json", "(4)", "(3)"]) { _ = try load(badHeads, "heads") }

        let folder = directory + "/not-json"
        try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
        write(Data("architectures: llama".utf8), "config.json", in: folder)
        assertFormatError("config not JSON", contains: ["config.json", "JSON"]) { _ = try Decoder.load(path: folder) }
        assertFormatError("no directory", contains: ["nowhere"]) { _ = try Decoder.load(path: directory + "/nowhere") }
    }
}

private extension Float {
    /// The value with its low 16 bits cleared: exactly representable in BF16.
    var bf16Truncated: Float { Float(bitPattern: bitPattern & 0xFFFF_0000) }
}
