import Foundation
import RecR1Formats

/// The shape of a Llama- or Qwen2-family decoder.
public struct ModelConfig: Equatable {
    public enum Architecture: String { case llama = "LlamaForCausalLM", qwen2 = "Qwen2ForCausalLM" }

    public var architecture: Architecture
    public var layers: Int
    public var dim: Int            // hidden size
    public var ffnDim: Int         // intermediate size of the SwiGLU MLP
    public var heads: Int
    public var kvHeads: Int
    public var headDim: Int
    public var vocabSize: Int
    public var contextLength: Int
    public var ropeTheta: Float
    public var normEps: Float
    public var tiedEmbeddings: Bool
    public var qkvBias: Bool

    public var qDim: Int { heads * headDim }
    public var kvDim: Int { kvHeads * headDim }

    public init(architecture: Architecture, layers: Int, dim: Int, ffnDim: Int, heads: Int, kvHeads: Int,
                headDim: Int? = nil, vocabSize: Int, contextLength: Int, ropeTheta: Float, normEps: Float,
                tiedEmbeddings: Bool, qkvBias: Bool? = nil) {
        self.architecture = architecture
        self.layers = layers
        self.dim = dim
        self.ffnDim = ffnDim
        self.heads = heads
        self.kvHeads = kvHeads
        self.headDim = headDim ?? dim / heads
        self.vocabSize = vocabSize
        self.contextLength = contextLength
        self.ropeTheta = ropeTheta
        self.normEps = normEps
        self.tiedEmbeddings = tiedEmbeddings
        self.qkvBias = qkvBias ?? (architecture == .qwen2)
    }

    /// Checks the numbers fit together; the message names the offending key.
    public func validate(file: String) throws {
        func require(_ ok: Bool, _ message: String) throws { if !ok { throw FormatError(file, message) } }
        try require(layers > 0, "block_count / num_hidden_layers must be positive, got \(layers)")
        try require(dim > 0 && ffnDim > 0 && vocabSize > 0, "hidden, intermediate and vocab sizes must be positive")
        try require(heads > 0 && kvHeads > 0 && heads % kvHeads == 0,
                    "attention heads (\(heads)) must be a multiple of key/value heads (\(kvHeads))")
        try require(headDim > 0 && headDim % 2 == 0, "head dimension \(headDim) must be even (RoPE rotates pairs)")
        try require(contextLength > 0, "context length must be positive")
        try require(ropeTheta > 0 && normEps > 0, "rope theta and norm epsilon must be positive")
    }

    /// From GGUF metadata (`<arch>.block_count`, `<arch>.embedding_length`, ...).
    public init(gguf: GGUFFile) throws {
        let file = (gguf.path as NSString).lastPathComponent
        guard let arch = gguf.metadata["general.architecture"]?.string else {
            throw FormatError(file, "missing metadata 'general.architecture'")
        }
        let architecture: Architecture
        switch arch {
        case "llama": architecture = .llama
        case "qwen2": architecture = .qwen2
        default: throw FormatError(file, "general.architecture '\(arch)' is not supported (llama, qwen2)")
        }
        func int(_ key: String) throws -> Int {
            guard let value = gguf.metadata["\(arch).\(key)"]?.int else { throw FormatError(file, "missing metadata '\(arch).\(key)'") }
            return value
        }
        func float(_ key: String, default value: Float) -> Float {
            gguf.metadata["\(arch).\(key)"]?.double.map(Float.init) ?? value
        }
        let heads = try int("attention.head_count")
        let dim = try int("embedding_length")
        let vocab = gguf.metadata["\(arch).vocab_size"]?.int
            ?? gguf.metadata["tokenizer.ggml.tokens"]?.array?.count
            ?? gguf.tensors["token_embd.weight"]?.shape.first ?? 0
        self.init(
            architecture: architecture, layers: try int("block_count"), dim: dim, ffnDim: try int("feed_forward_length"),
            heads: heads, kvHeads: gguf.metadata["\(arch).attention.head_count_kv"]?.int ?? heads,
            headDim: gguf.metadata["\(arch).attention.key_length"]?.int,
            vocabSize: vocab, contextLength: try int("context_length"),
            ropeTheta: float("rope.freq_base", default: 10000),
            normEps: float("attention.layer_norm_rms_epsilon", default: 1e-5),
            tiedEmbeddings: gguf.tensors["output.weight"] == nil)
        try validate(file: file)
    }

    /// From a Hugging Face `config.json`.
    public init(configJSON path: String, tiedDefault: Bool = false) throws {
        let file = (path as NSString).lastPathComponent
        let object: Any
        do {
            object = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: path)))
        } catch {
            throw FormatError(file, "cannot read JSON: \(error.localizedDescription)")
        }
        guard let json = object as? [String: Any] else { throw FormatError(file, "not a JSON object") }
        func int(_ key: String) throws -> Int {
            guard let value = json[key] as? Int else { throw FormatError(file, "missing or non-integer '\(key)'") }
            return value
        }
        // `architectures` names the class; without it transformers goes by `model_type`, and so do we.
        let modelTypes: [String: Architecture] = ["llama": .llama, "qwen2": .qwen2]
        let archName = (json["architectures"] as? [String])?.first ?? ""
        let modelType = json["model_type"] as? String
        guard let architecture = Architecture(rawValue: archName) ?? (archName.isEmpty ? modelType.flatMap { modelTypes[$0] } : nil) else {
            if archName.isEmpty {
                throw FormatError(file, "no architectures, and model_type '\(modelType ?? "")' is not supported (llama, qwen2)")
            }
            throw FormatError(file, "architectures '\(archName)' is not supported (LlamaForCausalLM, Qwen2ForCausalLM)")
        }
        let heads = try int("num_attention_heads")
        self.init(
            architecture: architecture, layers: try int("num_hidden_layers"), dim: try int("hidden_size"),
            ffnDim: try int("intermediate_size"), heads: heads,
            kvHeads: (json["num_key_value_heads"] as? Int) ?? heads, headDim: json["head_dim"] as? Int,
            vocabSize: try int("vocab_size"), contextLength: (json["max_position_embeddings"] as? Int) ?? 2048,
            ropeTheta: Float((json["rope_theta"] as? Double) ?? 10000),
            normEps: Float((json["rms_norm_eps"] as? Double) ?? 1e-6),
            tiedEmbeddings: (json["tie_word_embeddings"] as? Bool) ?? tiedDefault,
            qkvBias: (json["attention_bias"] as? Bool) ?? (architecture == .qwen2))
        try validate(file: file)
    }

    /// Parameters of the base model.
    public var parameterCount: Int {
        let attention = dim * qDim + 2 * dim * kvDim + qDim * dim + (qkvBias ? qDim + 2 * kvDim : 0)
        let perLayer = attention + 3 * dim * ffnDim + 2 * dim
        return vocabSize * dim * (tiedEmbeddings ? 1 : 2) + layers * perLayer + dim
    }
}
