import Foundation
import RecR1Formats
import RecR1Learning
import RecR1Model
import RecR1Tokenizer

/// Export for other tools: merged Hugging Face weights with config.json and the tokenizer, or a PEFT adapter.
extension Policy {
    /// model.safetensors (F32, adapters folded in), config.json, tokenizer.json, tokenizer_config.json,
    /// generation_config.json: a directory `transformers` loads with `from_pretrained`.
    public func exportMerged(to directory: String) throws -> [String] {
        try exclusive {
            let c = config
            var files: [(String, Data)] = []
            let tensors = decoder.weights.huggingFaceTensors(config: c, mergingAdapters: decoder.adapters)
            files.append(("model.safetensors", try SafetensorsWriter.encode(tensors, metadata: ["format": "pt"])))
            files.append(("config.json", try Self.huggingFaceConfig(c, tokenizer: tokenizer.spec)))
            files.append(("tokenizer.json", try tokenizer.spec.tokenizerJSON()))
            files.append(("tokenizer_config.json", try tokenizer.spec.tokenizerConfigJSON(contextLength: c.contextLength)))
            var generation: [String: Any] = ["_from_model_config": true]
            if let bos = tokenizer.bosTokenID { generation["bos_token_id"] = bos }
            generation["eos_token_id"] = endTokens.sorted().map(Int.init)
            files.append(("generation_config.json", try JSONSerialization.data(withJSONObject: generation, options: [.sortedKeys, .prettyPrinted])))
            return try Self.write(files, to: directory)
        }
    }

    /// adapter_model.safetensors and adapter_config.json, as PEFT saves a LoRA adapter.
    public func exportAdapter(to directory: String) throws -> [String] {
        try exclusive {
            guard let adapters = decoder.adapters else {
                throw ExportError(description: "the policy trains without LoRA adapters (training_mode = full): export the merged model instead")
            }
            let settings = adapters.settings
            let adapterConfig: [String: Any] = [
                "peft_type": "LORA", "task_type": "CAUSAL_LM", "r": settings.rank, "lora_alpha": settings.alpha,
                "lora_dropout": 0.0, "bias": "none", "fan_in_fan_out": false, "use_rslora": false, "use_dora": false,
                "init_lora_weights": true, "inference_mode": true,
                "target_modules": settings.targets.map(\.moduleName),
                "base_model_name_or_path": description.source,
            ]
            return try Self.write([
                ("adapter_model.safetensors", try SafetensorsWriter.encode(Checkpoint.adapterTensors(adapters), metadata: ["format": "pt"])),
                ("adapter_config.json", try JSONSerialization.data(withJSONObject: adapterConfig, options: [.sortedKeys, .prettyPrinted, .withoutEscapingSlashes])),
            ], to: directory)
        }
    }

    public struct ExportError: Error, CustomStringConvertible {
        public let description: String
    }

    /// Each file goes to a temporary name, is fsynced, and is renamed into place.
    private static func write(_ files: [(String, Data)], to directory: String) throws -> [String] {
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        for (name, data) in files {
            let path = (directory as NSString).appendingPathComponent(name)
            try DurableFile.write(data, to: path + ".partial")
            guard rename(path + ".partial", path) == 0 else {
                throw ExportError(description: "cannot rename \(path).partial: \(String(cString: strerror(errno)))")
            }
        }
        DurableFile.syncDirectory(directory)
        return files.map(\.0)
    }

    static func huggingFaceConfig(_ c: ModelConfig, tokenizer: TokenizerSpec) throws -> Data {
        var config: [String: Any] = [
            "architectures": [c.architecture.rawValue],
            "model_type": c.architecture == .llama ? "llama" : "qwen2",
            "hidden_size": c.dim, "intermediate_size": c.ffnDim,
            "num_hidden_layers": c.layers, "num_attention_heads": c.heads, "num_key_value_heads": c.kvHeads,
            "head_dim": c.headDim, "vocab_size": c.vocabSize, "max_position_embeddings": c.contextLength,
            "rope_theta": Double(c.ropeTheta), "rms_norm_eps": Double(c.normEps),
            "tie_word_embeddings": c.tiedEmbeddings, "hidden_act": "silu", "torch_dtype": "float32",
            "initializer_range": 0.02, "use_cache": true, "rope_scaling": NSNull(),
        ]
        if c.architecture == .llama {
            config["attention_bias"] = c.qkvBias
            config["mlp_bias"] = false
        } else {
            config["use_sliding_window"] = false
            config["sliding_window"] = NSNull()
        }
        if let bos = tokenizer.bosTokenID { config["bos_token_id"] = bos }
        if let eos = tokenizer.eosTokenID { config["eos_token_id"] = eos }
        return try JSONSerialization.data(withJSONObject: config, options: [.sortedKeys, .prettyPrinted])
    }
}
