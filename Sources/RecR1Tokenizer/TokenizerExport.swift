import Foundation

extension TokenizerSpec {
    /// The tokenizer as a Hugging Face `tokenizer.json` (byte-level BPE) that `tokenizers` and recr1 read
    /// back to the same tokenizer.
    public func tokenizerJSON() throws -> Data {
        func byteLevel(useRegex: Bool) -> [String: Any] {
            ["type": "ByteLevel", "add_prefix_space": false, "trim_offsets": true, "use_regex": useRegex]
        }
        let steps: [String: Any]
        switch self.preTokenizer {
        case .gpt2:
            steps = byteLevel(useRegex: true)
        case .smollm:
            steps = ["type": "Sequence", "pretokenizers": [["type": "Digits", "individual_digits": true], byteLevel(useRegex: true)]]
        case .qwen2, .llama3:
            let split: [String: Any] = ["type": "Split", "pattern": ["Regex": self.preTokenizer.splitRegex!],
                                        "behavior": "Isolated", "invert": false]
            steps = ["type": "Sequence", "pretokenizers": [split, byteLevel(useRegex: false)]]
        }

        var postProcessor: Any = ["type": "ByteLevel", "add_prefix_space": true, "trim_offsets": false, "use_regex": true]
        let bos = addsBOS ? bosTokenID : nil, eos = addsEOS ? eosTokenID : nil
        if bos != nil || eos != nil {
            var single: [[String: Any]] = [], pair: [[String: Any]] = []
            var specials: [String: Any] = [:]
            func special(_ id: Int) -> [String: Any] {
                specials[tokens[id]] = ["id": tokens[id], "ids": [id], "tokens": [tokens[id]]]
                return ["SpecialToken": ["id": tokens[id], "type_id": 0]]
            }
            if let bos { single.append(special(bos)) }
            single.append(["Sequence": ["id": "A", "type_id": 0]])
            if let eos { single.append(special(eos)) }
            pair = single + single.map { $0["Sequence"] != nil ? ["Sequence": ["id": "B", "type_id": 1]] : $0 }
            postProcessor = ["type": "TemplateProcessing", "single": single, "pair": pair, "special_tokens": specials]
        }

        var vocabulary: [String: Int] = [:]
        var added: [[String: Any]] = []
        for (id, token) in tokens.enumerated() {
            vocabulary[token] = id
            if tokenTypes[id] == .control || tokenTypes[id] == .userDefined {
                added.append(["id": id, "content": token, "single_word": false, "lstrip": false, "rstrip": false,
                              "normalized": false, "special": tokenTypes[id] == .control])
            }
        }
        let root: [String: Any] = [
            "version": "1.0",
            "truncation": NSNull(), "padding": NSNull(),
            "added_tokens": added,
            "normalizer": normalizesToNFC ? ["type": "NFC"] : NSNull(),
            "pre_tokenizer": steps,
            "post_processor": postProcessor,
            "decoder": ["type": "ByteLevel", "add_prefix_space": true, "trim_offsets": true, "use_regex": true],
            "model": [
                "type": "BPE", "dropout": NSNull(), "unk_token": unknownTokenID.map { tokens[$0] as Any } ?? NSNull(),
                "continuing_subword_prefix": NSNull(), "end_of_word_suffix": NSNull(), "fuse_unk": false,
                "byte_fallback": false, "ignore_merges": ignoreMerges,
                "vocab": vocabulary, "merges": merges.map { "\($0.0) \($0.1)" },
            ] as [String: Any],
        ]
        return try JSONSerialization.data(withJSONObject: root, options: [.sortedKeys, .withoutEscapingSlashes])
    }

    /// `tokenizer_config.json`: the special tokens and the chat template, as transformers reads them.
    public func tokenizerConfigJSON(contextLength: Int) throws -> Data {
        var config: [String: Any] = [
            "tokenizer_class": "PreTrainedTokenizerFast",
            "clean_up_tokenization_spaces": false,
            "model_max_length": contextLength,
            "add_bos_token": addsBOS,
            "add_eos_token": addsEOS,
        ]
        if let bosTokenID { config["bos_token"] = tokens[bosTokenID] }
        if let eosTokenID { config["eos_token"] = tokens[eosTokenID] }
        if let paddingTokenID { config["pad_token"] = tokens[paddingTokenID] }
        if let unknownTokenID { config["unk_token"] = tokens[unknownTokenID] }
        if let chatTemplate { config["chat_template"] = chatTemplate }
        return try JSONSerialization.data(withJSONObject: config, options: [.sortedKeys, .prettyPrinted, .withoutEscapingSlashes])
    }
}
