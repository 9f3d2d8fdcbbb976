import Foundation
import RecR1Formats

extension Tokenizer {
    /// The tokenizer of a GGUF file (its `tokenizer.*` metadata).
    public convenience init(gguf: GGUFFile) throws {
        try self.init(spec: TokenizerSpec(gguf: gguf))
    }

    /// The tokenizer of a Hugging Face `tokenizer.json` (with `tokenizer_config.json` beside it, when
    /// there is one, for the BOS / EOS tokens and the chat template).
    public convenience init(tokenizerJSON path: String) throws {
        try self.init(spec: TokenizerSpec(tokenizerJSON: path))
    }
}

// MARK: GGUF

extension TokenizerSpec {
    /// The tokenizer described by llama.cpp's `tokenizer.*` keys.
    public init(gguf: GGUFFile) throws {
        let file = (gguf.path as NSString).lastPathComponent
        let metadata = gguf.metadata

        func value(_ key: String) throws -> GGUFValue {
            guard let value = metadata[key] else { throw FormatError(file, "missing metadata key '\(key)'") }
            return value
        }
        func string(_ key: String) throws -> String {
            guard let string = try value(key).string else { throw FormatError(file, "'\(key)' is not a string") }
            return string
        }
        func strings(_ key: String) throws -> [String] {
            let value = try value(key)
            guard let array = value.array, let strings = value.strings, strings.count == array.count else {
                throw FormatError(file, "'\(key)' is not an array of strings")
            }
            return strings
        }
        func optionalID(_ key: String) throws -> Int? {
            guard let value = metadata[key] else { return nil }
            guard let id = value.int else { throw FormatError(file, "'\(key)' is not an integer") }
            return id
        }
        func optionalBool(_ key: String) throws -> Bool? {
            guard let value = metadata[key] else { return nil }
            guard let flag = value.bool else { throw FormatError(file, "'\(key)' is not a boolean") }
            return flag
        }

        let model = try string("tokenizer.ggml.model")
        guard model == "gpt2" else {
            throw FormatError(file, "tokenizer.ggml.model is '\(model)': recr1 reads byte-level BPE vocabularies ('gpt2') only")
        }
        let preName = try string("tokenizer.ggml.pre")
        guard let preTokenizer = PreTokenizerKind(ggufName: preName) else {
            throw FormatError(file, "tokenizer.ggml.pre is '\(preName)', a pre-tokenizer recr1 does not know "
                + "(gpt2, smollm, qwen2, llama-bpe / llama3)")
        }
        let tokens = try strings("tokenizer.ggml.tokens")

        var types = [TokenType](repeating: .normal, count: tokens.count)
        if let typeValue = metadata["tokenizer.ggml.token_type"] {
            guard let array = typeValue.array, let raw = typeValue.ints, raw.count == array.count else {
                throw FormatError(file, "'tokenizer.ggml.token_type' is not an array of integers")
            }
            guard raw.count == tokens.count else {
                throw FormatError(file, "'tokenizer.ggml.token_type' has \(raw.count) entries for \(tokens.count) tokens")
            }
            for (id, rawType) in raw.enumerated() {
                guard let type = TokenType(rawValue: rawType) else {
                    throw FormatError(file, "tokenizer.ggml.token_type[\(id)] is \(rawType), not a token type (1-6)")
                }
                // HF's GGUF loader adds control and user-defined tokens as added tokens only when they
                // are spelled in the byte alphabet (others are llama.cpp mislabels); the rest stay ordinary.
                let addable = ByteLevel.bytes(spelledBy: tokens[id]) != nil
                types[id] = (type == .control || type == .userDefined) && !addable ? .normal : type
            }
        }

        var merges: [(String, String)] = []
        for (index, merge) in try strings("tokenizer.ggml.merges").enumerated() {
            let parts = merge.split(separator: " ", omittingEmptySubsequences: false)
            guard parts.count == 2, !parts[0].isEmpty, !parts[1].isEmpty else {
                throw FormatError(file, "tokenizer.ggml.merges[\(index)] is '\(merge)', not two tokens separated by a space")
            }
            merges.append((String(parts[0]), String(parts[1])))
        }

        self.init(tokens: tokens, tokenTypes: types, merges: merges, preTokenizer: preTokenizer)
        source = file
        bosTokenID = try optionalID("tokenizer.ggml.bos_token_id")
        eosTokenID = try optionalID("tokenizer.ggml.eos_token_id")
        paddingTokenID = try optionalID("tokenizer.ggml.padding_token_id")
        // tokenizer.ggml.unknown_token_id is not used for bytes the vocabulary cannot spell: HF's GGUF
        // loader and llama.cpp both drop those.
        addsBOS = try optionalBool("tokenizer.ggml.add_bos_token") ?? false
        addsEOS = try optionalBool("tokenizer.ggml.add_eos_token") ?? false
        if metadata["tokenizer.chat_template"] != nil { chatTemplate = try string("tokenizer.chat_template") }
    }
}

// MARK: tokenizer.json

extension TokenizerSpec {
    /// The tokenizer a Hugging Face `tokenizer.json` describes; BOS / EOS and the chat template come
    /// from a `tokenizer_config.json` in the same folder, when there is one.
    public init(tokenizerJSON path: String) throws {
        let file = (path as NSString).lastPathComponent
        let root = try Self.readJSONObject(path)
        guard let model = root["model"] as? [String: Any] else { throw FormatError(file, "missing key 'model'") }
        guard let modelType = model["type"] as? String else { throw FormatError(file, "missing key 'model.type'") }
        guard modelType == "BPE" else { throw FormatError(file, "model.type is '\(modelType)': recr1 reads BPE only") }
        for key in ["continuing_subword_prefix", "end_of_word_suffix"] {
            if let affix = model[key] as? String, !affix.isEmpty {
                throw FormatError(file, "model.\(key) is '\(affix)': recr1's BPE has no word affixes")
            }
        }

        // The vocabulary, then added tokens over it (they may extend it).
        guard let vocab = model["vocab"] as? [String: Any] else { throw FormatError(file, "missing key 'model.vocab'") }
        var tokenByID: [Int: String] = [:]
        for (token, rawID) in vocab {
            guard let id = rawID as? Int, id >= 0 else { throw FormatError(file, "model.vocab['\(token)'] is not a token id") }
            tokenByID[id] = token
        }
        var typeByID: [Int: TokenType] = [:]
        if model["byte_fallback"] as? Bool == true {
            for (id, token) in tokenByID where token.utf8.count == 6 && token.hasPrefix("<0x") && token.hasSuffix(">") {
                typeByID[id] = .byte
            }
        }
        let addedTokens = root["added_tokens"] as? [[String: Any]] ?? []
        for (index, added) in addedTokens.enumerated() {
            guard let id = added["id"] as? Int, id >= 0, let content = added["content"] as? String else {
                throw FormatError(file, "added_tokens[\(index)] has no 'id' or 'content'")
            }
            for option in ["lstrip", "rstrip", "single_word"] where added[option] as? Bool == true {
                throw FormatError(file, "added_tokens[\(index)] ('\(content)') sets '\(option)', which recr1 does not support")
            }
            tokenByID[id] = content
            typeByID[id] = added["special"] as? Bool == true ? .control : .userDefined
        }
        let count = (tokenByID.keys.max() ?? -1) + 1
        var tokens: [String] = []
        tokens.reserveCapacity(count)
        for id in 0..<count {
            guard let token = tokenByID[id] else { throw FormatError(file, "model.vocab has no token with id \(id)") }
            tokens.append(token)
        }
        let types = (0..<count).map { typeByID[$0] ?? .normal }

        guard let rawMerges = model["merges"] as? [Any] else { throw FormatError(file, "missing key 'model.merges'") }
        var merges: [(String, String)] = []
        merges.reserveCapacity(rawMerges.count)
        for (index, rawMerge) in rawMerges.enumerated() {
            // Either "a b" (the older form) or ["a", "b"].
            var parts: [String] = []
            if let merge = rawMerge as? String {
                parts = merge.split(separator: " ", omittingEmptySubsequences: false).map(String.init)
            } else if let pair = rawMerge as? [String] {
                parts = pair
            }
            guard parts.count == 2, !parts[0].isEmpty, !parts[1].isEmpty else {
                throw FormatError(file, "model.merges[\(index)] is not two tokens")
            }
            merges.append((parts[0], parts[1]))
        }

        self.init(tokens: tokens, tokenTypes: types, merges: merges,
                  preTokenizer: try Self.preTokenizerKind(root["pre_tokenizer"], file: file))
        source = file
        ignoreMerges = model["ignore_merges"] as? Bool ?? false
        normalizesToNFC = try Self.normalizesToNFC(root["normalizer"], file: file)
        if let unknown = model["unk_token"] as? String {
            guard let id = tokens.firstIndex(of: unknown) else {
                throw FormatError(file, "model.unk_token '\(unknown)' is not in the vocabulary")
            }
            unknownTokenID = id
        }

        func id(of token: String, _ key: String) throws -> Int {
            guard let id = tokens.lastIndex(of: token) else { throw FormatError(file, "\(key) '\(token)' is not in the vocabulary") }
            return id
        }
        let (prefix, suffix) = try Self.templateSpecialTokens(root["post_processor"], file: file)
        if let prefix { bosTokenID = try id(of: prefix, "post_processor"); addsBOS = true }
        if let suffix { eosTokenID = try id(of: suffix, "post_processor"); addsEOS = true }

        let configPath = ((path as NSString).deletingLastPathComponent as NSString).appendingPathComponent("tokenizer_config.json")
        if FileManager.default.fileExists(atPath: configPath) {
            let config = try Self.readJSONObject(configPath)
            func content(_ key: String) -> String? {
                (config[key] as? String) ?? ((config[key] as? [String: Any])?["content"] as? String)
            }
            if bosTokenID == nil, let bos = content("bos_token") { bosTokenID = try id(of: bos, "tokenizer_config.json bos_token") }
            if eosTokenID == nil, let eos = content("eos_token") { eosTokenID = try id(of: eos, "tokenizer_config.json eos_token") }
            if let pad = content("pad_token") { paddingTokenID = try id(of: pad, "tokenizer_config.json pad_token") }
            if let template = config["chat_template"] as? String {
                chatTemplate = template
            } else if let templates = config["chat_template"] as? [[String: Any]] {
                chatTemplate = templates.first { $0["name"] as? String == "default" }?["template"] as? String
            }
        }
    }

    private static func readJSONObject(_ path: String) throws -> [String: Any] {
        let file = (path as NSString).lastPathComponent
        let data: Data
        do {
            data = try Data(contentsOf: URL(fileURLWithPath: path))
        } catch {
            throw FormatError(file, "cannot read: \(error.localizedDescription)")
        }
        guard let object = try? JSONSerialization.jsonObject(with: data), let root = object as? [String: Any] else {
            throw FormatError(file, "not a JSON object")
        }
        return root
    }

    /// The pre-tokenizer a tokenizer.json configures, when it is one of the kinds recr1 scans.
    static func preTokenizerKind(_ config: Any?, file: String) throws -> PreTokenizerKind {
        func isByteLevel(_ step: [String: Any], usingRegex: Bool) -> Bool {
            // HF's defaults: add_prefix_space and use_regex both true.
            step["type"] as? String == "ByteLevel"
                && (step["add_prefix_space"] as? Bool ?? true) == false
                && (step["use_regex"] as? Bool ?? true) == usingRegex
        }
        func recognise(_ config: [String: Any]) -> PreTokenizerKind? {
            if isByteLevel(config, usingRegex: true) { return .gpt2 }
            guard config["type"] as? String == "Sequence", let steps = config["pretokenizers"] as? [[String: Any]] else { return nil }
            if steps.count == 1 { return recognise(steps[0]) }
            guard steps.count == 2 else { return nil }
            let first = steps[0]
            if first["type"] as? String == "Digits", first["individual_digits"] as? Bool == true,
               isByteLevel(steps[1], usingRegex: true) {
                return .smollm
            }
            if first["type"] as? String == "Split", first["behavior"] as? String == "Isolated",
               first["invert"] as? Bool ?? false == false,
               let pattern = (first["pattern"] as? [String: Any])?["Regex"] as? String,
               isByteLevel(steps[1], usingRegex: false) {
                return PreTokenizerKind.allCases.first { $0.splitRegex == pattern }
            }
            return nil
        }
        guard let config = config as? [String: Any] else { throw FormatError(file, "missing key 'pre_tokenizer'") }
        if let kind = recognise(config) { return kind }
        throw FormatError(file, "pre_tokenizer \(compactJSON(config)) is not one recr1 knows: ByteLevel (GPT-2 regex), "
            + "Digits(individual_digits) + ByteLevel, or Split (GPT-2 / Qwen2 / Llama 3 regex) + ByteLevel(use_regex: false), "
            + "all without add_prefix_space")
    }

    private static func normalizesToNFC(_ config: Any?, file: String) throws -> Bool {
        guard let config = config as? [String: Any] else { return false }  // null: no normaliser
        if config["type"] as? String == "NFC" { return true }
        if config["type"] as? String == "Sequence", let steps = config["normalizers"] as? [Any], steps.isEmpty { return false }
        throw FormatError(file, "normalizer \(compactJSON(config)) is not supported (recr1 knows none, or NFC)")
    }

    /// The special tokens a post-processor puts before and after a single sequence (HF's
    /// TemplateProcessing, e.g. Llama 3's `<|begin_of_text|> $A`).
    private static func templateSpecialTokens(_ config: Any?, file: String) throws -> (prefix: String?, suffix: String?) {
        guard let config = config as? [String: Any] else { return (nil, nil) }  // null: adds nothing
        switch config["type"] as? String {
        case "ByteLevel":
            return (nil, nil)
        case "Sequence":
            var found: (prefix: String?, suffix: String?) = (nil, nil)
            for step in config["processors"] as? [Any] ?? [] {
                let (prefix, suffix) = try templateSpecialTokens(step, file: file)
                found = (found.prefix ?? prefix, found.suffix ?? suffix)
            }
            return found
        case "TemplateProcessing":
            guard let single = config["single"] as? [[String: Any]],
                  let sequenceAt = single.firstIndex(where: { $0["Sequence"] != nil }) else {
                throw FormatError(file, "post_processor.single has no sequence")
            }
            let specials = single.map { ($0["SpecialToken"] as? [String: Any])?["id"] as? String }
            let before = specials[..<sequenceAt], after = specials[(sequenceAt + 1)...]
            guard before.count <= 1, after.count <= 1, !before.contains(nil), !after.contains(nil) else {
                throw FormatError(file, "post_processor.single \(compactJSON(single)) is not [BOS] $A [EOS]")
            }
            return (before.first ?? nil, after.first ?? nil)
        default:
            throw FormatError(file, "post_processor \(compactJSON(config)) is not supported (ByteLevel or TemplateProcessing)")
        }
    }

    private static func compactJSON(_ value: Any) -> String {
        guard let data = try? JSONSerialization.data(withJSONObject: value, options: [.sortedKeys]) else { return "\(value)" }
        return String(decoding: data, as: UTF8.self)
    }
}
