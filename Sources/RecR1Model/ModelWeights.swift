import Foundation
import RecR1Formats
import RecR1Kernels

/// The weights of one decoder layer, fp32, in Hugging Face layout: a linear layer's matrix is
/// [out × in], row-major, and y = x · Wᵀ.
public struct LayerWeights {
    public var attnNorm: [Float]   // [dim]
    public var wq: [Float]         // [qDim × dim]
    public var wk: [Float]         // [kvDim × dim]
    public var wv: [Float]         // [kvDim × dim]
    public var bq: [Float]?        // [qDim] (Qwen2)
    public var bk: [Float]?        // [kvDim]
    public var bv: [Float]?        // [kvDim]
    public var wo: [Float]         // [dim × qDim]
    public var ffnNorm: [Float]    // [dim]
    public var wGate: [Float]      // [ffnDim × dim]
    public var wUp: [Float]        // [ffnDim × dim]
    public var wDown: [Float]      // [dim × ffnDim]
    /// The file's block-format copies of the matrices, for decoding (none when loaded from fp32 data).
    public var quantized = QuantizedLayer()
}

/// Block-format copies of a layer's matrices (GGUF Q4_0 / Q4_1 / Q8_0), same layout as the fp32 ones.
public struct QuantizedLayer {
    public var wq, wk, wv, wo, wGate, wUp, wDown: QuantizedMatrix?
    public init() {}
}

public struct ModelWeights {
    public var tokenEmbedding: [Float]   // [vocab × dim]
    public var layers: [LayerWeights]
    public var finalNorm: [Float]        // [dim]
    /// [vocab × dim]; nil when tied to the token embedding.
    public var lmHead: [Float]?
    /// The output projection (lm head, or the tied embedding) in the file's block format, for decoding.
    public var quantizedHead: QuantizedMatrix?

    public init(tokenEmbedding: [Float], layers: [LayerWeights], finalNorm: [Float], lmHead: [Float]?) {
        self.tokenEmbedding = tokenEmbedding
        self.layers = layers
        self.finalNorm = finalNorm
        self.lmHead = lmHead
    }

    /// Reads and dequantises every tensor, checking each one's shape against the config.
    /// `tensor(name, shape)` returns the values in Hugging Face layout or throws naming the tensor.
    init(config c: ModelConfig, tensor: (String, [Int]) throws -> [Float], optional: (String, [Int]) throws -> [Float]?,
         names: (Int) -> LayerNames, embeddingName: String, finalNormName: String, headName: String) throws {
        tokenEmbedding = try tensor(embeddingName, [c.vocabSize, c.dim])
        finalNorm = try tensor(finalNormName, [c.dim])
        lmHead = c.tiedEmbeddings ? nil : try tensor(headName, [c.vocabSize, c.dim])
        layers = try (0..<c.layers).map { index in
            let n = names(index)
            return LayerWeights(
                attnNorm: try tensor(n.attnNorm, [c.dim]),
                wq: try tensor(n.wq, [c.qDim, c.dim]), wk: try tensor(n.wk, [c.kvDim, c.dim]),
                wv: try tensor(n.wv, [c.kvDim, c.dim]),
                bq: c.qkvBias ? try tensor(n.bq, [c.qDim]) : try optional(n.bq, [c.qDim]),
                bk: c.qkvBias ? try tensor(n.bk, [c.kvDim]) : try optional(n.bk, [c.kvDim]),
                bv: c.qkvBias ? try tensor(n.bv, [c.kvDim]) : try optional(n.bv, [c.kvDim]),
                wo: try tensor(n.wo, [c.dim, c.qDim]),
                ffnNorm: try tensor(n.ffnNorm, [c.dim]),
                wGate: try tensor(n.wGate, [c.ffnDim, c.dim]), wUp: try tensor(n.wUp, [c.ffnDim, c.dim]),
                wDown: try tensor(n.wDown, [c.dim, c.ffnDim]))
        }
    }

    struct LayerNames {
        var attnNorm, wq, wk, wv, bq, bk, bv, wo, ffnNorm, wGate, wUp, wDown: String
    }

    /// From a GGUF file. llama.cpp stores Llama's Q and K rows interleaved for its RoPE; they are put back
    /// in Hugging Face's rotate-half order here.
    public init(gguf: GGUFFile, config: ModelConfig) throws {
        let file = (gguf.path as NSString).lastPathComponent
        func load(_ name: String, _ shape: [Int]) throws -> [Float] {
            guard let info = gguf.tensors[name] else { throw FormatError(file, "missing tensor '\(name)'") }
            guard info.shape == shape else {
                throw FormatError(file, "tensor '\(name)' has shape \(info.shape), the config needs \(shape)")
            }
            var values = try gguf.dequantize(name)
            if config.architecture == .llama && (name.hasSuffix("attn_q.weight") || name.hasSuffix("attn_k.weight")) {
                let heads = name.hasSuffix("attn_q.weight") ? config.heads : config.kvHeads
                values = Self.unpermuteRoPERows(values, heads: heads, headDim: config.headDim, rowLength: shape[1])
            }
            return values
        }
        try self.init(
            config: config, tensor: load,
            optional: { name, shape in gguf.tensors[name] == nil ? nil : try load(name, shape) },
            names: { i in
                LayerNames(attnNorm: "blk.\(i).attn_norm.weight", wq: "blk.\(i).attn_q.weight", wk: "blk.\(i).attn_k.weight",
                           wv: "blk.\(i).attn_v.weight", bq: "blk.\(i).attn_q.bias", bk: "blk.\(i).attn_k.bias",
                           bv: "blk.\(i).attn_v.bias", wo: "blk.\(i).attn_output.weight", ffnNorm: "blk.\(i).ffn_norm.weight",
                           wGate: "blk.\(i).ffn_gate.weight", wUp: "blk.\(i).ffn_up.weight", wDown: "blk.\(i).ffn_down.weight")
            },
            embeddingName: "token_embd.weight", finalNormName: "output_norm.weight", headName: "output.weight")

        // Keep the block-format matrices too: decoding reads them instead of the fp32 copies.
        func blocks(_ name: String) -> QuantizedMatrix? {
            guard let info = gguf.tensors[name], info.shape.count == 2,
                  let type = QuantizedMatrix.BlockType(rawValue: Int32(info.type.rawValue)),
                  var bytes = try? gguf.rawBytes(name) else { return nil }
            let (rows, cols) = (info.shape[0], info.shape[1])
            if config.architecture == .llama && (name.hasSuffix("attn_q.weight") || name.hasSuffix("attn_k.weight")) {
                let heads = name.hasSuffix("attn_q.weight") ? config.heads : config.kvHeads
                bytes = Self.unpermuteRoPERows(bytes, heads: heads, headDim: config.headDim,
                                               rowLength: QuantizedMatrix.rowBytes(type, cols))
            }
            return QuantizedMatrix(type: type, rows: rows, cols: cols, blocks: bytes)
        }
        for i in 0..<config.layers {
            var q = QuantizedLayer()
            q.wq = blocks("blk.\(i).attn_q.weight")
            q.wk = blocks("blk.\(i).attn_k.weight")
            q.wv = blocks("blk.\(i).attn_v.weight")
            q.wo = blocks("blk.\(i).attn_output.weight")
            q.wGate = blocks("blk.\(i).ffn_gate.weight")
            q.wUp = blocks("blk.\(i).ffn_up.weight")
            q.wDown = blocks("blk.\(i).ffn_down.weight")
            layers[i].quantized = q
        }
        quantizedHead = blocks(config.tiedEmbeddings ? "token_embd.weight" : "output.weight")
    }

    /// From a Hugging Face directory's safetensors.
    public init(safetensors: SafetensorsSet, config: ModelConfig) throws {
        let file = (safetensors.directory as NSString).lastPathComponent
        func load(_ name: String, _ shape: [Int]) throws -> [Float] {
            guard let info = safetensors.info(name) else { throw FormatError(file, "missing tensor '\(name)'") }
            guard info.shape == shape else {
                throw FormatError(file, "tensor '\(name)' has shape \(info.shape), the config needs \(shape)")
            }
            return try safetensors.floats(name)
        }
        try self.init(
            config: config, tensor: load,
            optional: { name, shape in safetensors.info(name) == nil ? nil : try load(name, shape) },
            names: { i in
                let p = "model.layers.\(i)."
                return LayerNames(attnNorm: p + "input_layernorm.weight", wq: p + "self_attn.q_proj.weight",
                                  wk: p + "self_attn.k_proj.weight", wv: p + "self_attn.v_proj.weight",
                                  bq: p + "self_attn.q_proj.bias", bk: p + "self_attn.k_proj.bias",
                                  bv: p + "self_attn.v_proj.bias", wo: p + "self_attn.o_proj.weight",
                                  ffnNorm: p + "post_attention_layernorm.weight", wGate: p + "mlp.gate_proj.weight",
                                  wUp: p + "mlp.up_proj.weight", wDown: p + "mlp.down_proj.weight")
            },
            embeddingName: "model.embed_tokens.weight", finalNormName: "model.norm.weight", headName: "lm_head.weight")
    }

    /// llama.cpp's converter reorders each head's rows from [2][headDim/2] (rotate-half pairs i, i + headDim/2)
    /// to [headDim/2][2] (adjacent pairs). This puts row (h, i, t) back at (h, t, i).
    /// `rowLength` elements per row (floats, or bytes of blocks).
    static func unpermuteRoPERows<T: Numeric>(_ w: [T], heads: Int, headDim: Int, rowLength: Int) -> [T] {
        var out = [T](repeating: 0, count: w.count)
        let half = headDim / 2
        for h in 0..<heads {
            for i in 0..<half {
                for t in 0..<2 {
                    let source = (h * headDim + i * 2 + t) * rowLength
                    let target = (h * headDim + t * half + i) * rowLength
                    out[target..<(target + rowLength)] = w[source..<(source + rowLength)]
                }
            }
        }
        return out
    }
}

extension ModelWeights {
    /// Every tensor under its Hugging Face name and shape, with LoRA adapters folded in when given
    /// (export, and full fine-tuning's checkpoints, which `init(safetensors:config:)` reads back).
    public func huggingFaceTensors(config c: ModelConfig, mergingAdapters adapters: LoRAAdapters? = nil) -> [SafetensorsWriter.Tensor] {
        typealias T = SafetensorsWriter.Tensor
        var tensors = [T(name: "model.embed_tokens.weight", shape: [c.vocabSize, c.dim], values: tokenEmbedding)]
        for (l, layer) in layers.enumerated() {
            let p = "model.layers.\(l)."
            func matrix(_ target: LoRATarget, _ values: [Float]) -> T {
                let (inDim, outDim) = target.shape(c)
                var merged = values
                if let adapters, let pair = adapters.layers[l][target] { merged = adapters.merged(values, pair) }
                return T(name: p + "\(target.parentPath).\(target.moduleName).weight", shape: [outDim, inDim], values: merged)
            }
            tensors.append(T(name: p + "input_layernorm.weight", shape: [c.dim], values: layer.attnNorm))
            tensors += [matrix(.q, layer.wq), matrix(.k, layer.wk), matrix(.v, layer.wv), matrix(.o, layer.wo)]
            if let bq = layer.bq { tensors.append(T(name: p + "self_attn.q_proj.bias", shape: [c.qDim], values: bq)) }
            if let bk = layer.bk { tensors.append(T(name: p + "self_attn.k_proj.bias", shape: [c.kvDim], values: bk)) }
            if let bv = layer.bv { tensors.append(T(name: p + "self_attn.v_proj.bias", shape: [c.kvDim], values: bv)) }
            tensors.append(T(name: p + "post_attention_layernorm.weight", shape: [c.dim], values: layer.ffnNorm))
            tensors += [matrix(.gate, layer.wGate), matrix(.up, layer.wUp), matrix(.down, layer.wDown)]
        }
        tensors.append(T(name: "model.norm.weight", shape: [c.dim], values: finalNorm))
        if let lmHead { tensors.append(T(name: "lm_head.weight", shape: [c.vocabSize, c.dim], values: lmHead)) }
        return tensors
    }
}
