import Foundation
import XCTest

import RecR1Formats
@testable import RecR1Tokenizer

/// Loading from tokenizer.json and from GGUF metadata, on small files written here, compared with the
/// same tokenizer built from a spec; and the errors for files that are wrong.
final class TokenizerLoadingTests: XCTestCase {
    var directory = ""

    override func setUpWithError() throws {
        directory = NSTemporaryDirectory() + "recr1-tokenizer-\(UUID().uuidString.prefix(8))"
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
    }

    override func tearDownWithError() throws {
        try? FileManager.default.removeItem(atPath: directory)
    }

    /// The spec every file below describes: bytes, five merged tokens, two special tokens, SmolLM's
    /// pre-tokenizer.
    let merged = ["he", "ll", "hell", "hello", " w"]
    let mergePairs = [("h", "e"), ("l", "l"), ("he", "ll"), ("hell", "o"), (" ", "w")]
    var referenceSpec: TokenizerSpec {
        tinySpec(merged: merged, merges: mergePairs, added: [("<|im_start|>", .control), ("<|im_end|>", .control)],
                 preTokenizer: .smollm)
    }
    let samples = ["hello world", "hello  12 world", "<|im_start|>user\nhello<|im_end|>\n", "naïve café 東京 👍", "  \n\t x"]

    func write(_ object: Any, _ name: String) throws -> String {
        let path = "\(directory)/\(name)"
        let data = try JSONSerialization.data(withJSONObject: object, options: [.sortedKeys])
        XCTAssertTrue(FileManager.default.createFile(atPath: path, contents: data))
        return path
    }

    /// A tokenizer.json for `referenceSpec`, in HF's layout.
    func tokenizerJSON(mergesAsPairs: Bool) -> [String: Any] {
        let spec = referenceSpec
        var vocab: [String: Int] = [:]
        for (id, token) in spec.tokens.enumerated() { vocab[token] = id }
        let merges: [Any] = spec.merges.map { pair -> Any in mergesAsPairs ? [pair.0, pair.1] : "\(pair.0) \(pair.1)" }
        let added: [[String: Any]] = [(256 + merged.count, "<|im_start|>"), (257 + merged.count, "<|im_end|>")].map {
            ["id": $0.0, "content": $0.1, "special": true, "lstrip": false, "rstrip": false, "single_word": false, "normalized": false]
        }
        return [
            "version": "1.0",
            "added_tokens": added,
            "normalizer": NSNull(),
            "pre_tokenizer": ["type": "Sequence", "pretokenizers": [
                ["type": "Digits", "individual_digits": true],
                ["type": "ByteLevel", "add_prefix_space": false, "trim_offsets": true, "use_regex": true],
            ]],
            "post_processor": ["type": "ByteLevel", "add_prefix_space": true, "trim_offsets": false, "use_regex": true],
            "decoder": ["type": "ByteLevel", "add_prefix_space": true, "trim_offsets": true, "use_regex": true],
            "model": ["type": "BPE", "dropout": NSNull(), "unk_token": NSNull(), "continuing_subword_prefix": NSNull(),
                      "end_of_word_suffix": NSNull(), "fuse_unk": false, "byte_fallback": false, "ignore_merges": false,
                      "vocab": vocab, "merges": merges],
        ]
    }

    func assertSameEncodings(_ loaded: Tokenizer, _ reference: Tokenizer, file: StaticString = #filePath, line: UInt = #line) {
        for text in samples {
            XCTAssertEqual(loaded.encode(text), reference.encode(text), text, file: file, line: line)
            XCTAssertEqual(loaded.encode(text, parseSpecial: false), reference.encode(text, parseSpecial: false), text, file: file, line: line)
            XCTAssertEqual(loaded.decode(reference.encode(text)), text, file: file, line: line)
        }
    }

    func testTokenizerJSONRoundTrip() throws {
        let reference = try Tokenizer(spec: referenceSpec)
        XCTAssertEqual(reference.encode("hello")[0], 259, "'hello' is one token")
        for pairs in [false, true] {
            let loaded = try Tokenizer(tokenizerJSON: write(tokenizerJSON(mergesAsPairs: pairs), "tokenizer-\(pairs).json"))
            XCTAssertEqual(loaded.preTokenizer, .smollm)
            XCTAssertEqual(loaded.vocabularySize, reference.vocabularySize)
            XCTAssertTrue(loaded.isSpecial(262))
            XCTAssertFalse(loaded.addsBOS)
            assertSameEncodings(loaded, reference)
        }
    }

    func testTokenizerJSONWithConfigBOSAndPreTokenizers() throws {
        var json = tokenizerJSON(mergesAsPairs: true)
        // Llama 3's shape: Split with its regex, ByteLevel without one, and a template that adds BOS.
        json["pre_tokenizer"] = ["type": "Sequence", "pretokenizers": [
            ["type": "Split", "pattern": ["Regex": PreTokenizerKind.llama3.splitRegex!], "behavior": "Isolated", "invert": false],
            ["type": "ByteLevel", "add_prefix_space": false, "trim_offsets": true, "use_regex": false],
        ]]
        json["post_processor"] = ["type": "Sequence", "processors": [
            ["type": "ByteLevel", "add_prefix_space": true, "trim_offsets": false, "use_regex": true],
            ["type": "TemplateProcessing",
             "single": [["SpecialToken": ["id": "<|im_start|>", "type_id": 0]], ["Sequence": ["id": "A", "type_id": 0]]],
             "pair": [], "special_tokens": [:]],
        ]]
        let path = try write(json, "tokenizer.json")
        let chatTemplate = "{% for message in messages %}{{'<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n'}}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}"
        _ = try write(["eos_token": ["content": "<|im_end|>"], "chat_template": chatTemplate], "tokenizer_config.json")
        let loaded = try Tokenizer(tokenizerJSON: path)
        XCTAssertEqual(loaded.preTokenizer, .llama3)
        XCTAssertEqual(loaded.bosTokenID, 261)
        XCTAssertEqual(loaded.eosTokenID, 262)
        XCTAssertTrue(loaded.addsBOS)
        // BOS, then the Llama 3 pieces "123", "45", " hello" (no digit merges; " hello" is Ġ + hello).
        let expected: [Int] = [261, 0x31, 0x32, 0x33, 0x34, 0x35, 0x20, 259]
        XCTAssertEqual(loaded.encode("12345 hello"), expected)
        XCTAssertEqual(try loaded.applyChatTemplate([ChatMessage(role: "user", content: "hi")], addGenerationPrompt: true),
                       "<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n")
    }

    func testTokenizerJSONNormalisesToNFCForQwen2() throws {
        var json = tokenizerJSON(mergesAsPairs: false)
        json["normalizer"] = ["type": "NFC"]
        json["pre_tokenizer"] = ["type": "Sequence", "pretokenizers": [
            ["type": "Split", "pattern": ["Regex": PreTokenizerKind.qwen2.splitRegex!], "behavior": "Isolated", "invert": false],
            ["type": "ByteLevel", "add_prefix_space": false, "trim_offsets": false, "use_regex": false],
        ]]
        let loaded = try Tokenizer(tokenizerJSON: write(json, "tokenizer.json"))
        XCTAssertEqual(loaded.preTokenizer, .qwen2)
        // NFC composes "e" + U+0301 into U+00E9, bytes C3 A9.
        XCTAssertEqual(loaded.encode("e\u{301}"), [0xC3, 0xA9])
    }

    func testTokenizerJSONErrorsNameTheKey() throws {
        func error(_ change: (inout [String: Any]) -> Void) throws -> String {
            var json = tokenizerJSON(mergesAsPairs: false)
            change(&json)
            do {
                _ = try Tokenizer(tokenizerJSON: write(json, "broken.json"))
                return "loaded"
            } catch {
                return "\(error)"
            }
        }
        XCTAssertTrue(try error { $0["model"] = nil }.contains("'model'"))
        XCTAssertTrue(try error { json in
            var model = json["model"] as! [String: Any]
            model["merges"] = nil
            json["model"] = model
        }.contains("model.merges"))
        XCTAssertTrue(try error { json in
            var model = json["model"] as! [String: Any]
            model["type"] = "WordPiece"
            json["model"] = model
        }.contains("model.type is 'WordPiece'"))
        XCTAssertTrue(try error { $0["pre_tokenizer"] = ["type": "Whitespace"] }.contains("pre_tokenizer {\"type\":\"Whitespace\"}"))
        XCTAssertTrue(try error { $0["normalizer"] = ["type": "Lowercase"] }.contains("normalizer"))
        XCTAssertTrue(try error { json in
            var added = json["added_tokens"] as! [[String: Any]]
            added[0]["lstrip"] = true
            json["added_tokens"] = added
        }.contains("added_tokens[0]"))
        XCTAssertThrowsError(try Tokenizer(tokenizerJSON: "\(directory)/missing.json")) { XCTAssertTrue("\($0)".contains("cannot read")) }
    }

    // MARK: GGUF

    /// A GGUF v3 file with no tensors and the given metadata, written the way the format lays it out.
    func writeGGUF(_ metadata: [(String, GGUFValue)], _ name: String) throws -> GGUFFile {
        var bytes: [UInt8] = Array("GGUF".utf8)
        func append<T: FixedWidthInteger>(_ value: T) { withUnsafeBytes(of: value.littleEndian) { bytes += $0 } }
        func appendString(_ string: String) { append(UInt64(string.utf8.count)); bytes += string.utf8 }
        func typeCode(_ value: GGUFValue) -> UInt32 {
            switch value {
            case .uint: return 4  // uint32
            case .int: return 5  // int32
            case .float: return 6
            case .bool: return 7
            case .string: return 8
            case .array: return 9
            }
        }
        func appendValue(_ value: GGUFValue) {
            switch value {
            case .uint(let v): append(UInt32(v))
            case .int(let v): append(Int32(v))
            case .float(let v): append(Float(v).bitPattern)
            case .bool(let v): append(UInt8(v ? 1 : 0))
            case .string(let v): appendString(v)
            case .array(let values):
                append(values.first.map(typeCode) ?? 8)
                append(UInt64(values.count))
                values.forEach(appendValue)
            }
        }
        append(UInt32(3))
        append(UInt64(0))
        append(UInt64(metadata.count))
        for (key, value) in metadata {
            appendString(key)
            append(typeCode(value))
            appendValue(value)
        }
        let path = "\(directory)/\(name)"
        XCTAssertTrue(FileManager.default.createFile(atPath: path, contents: Data(bytes)))
        return try GGUFFile(path: path)
    }

    func ggufMetadata() -> [(String, GGUFValue)] {
        let spec = referenceSpec
        return [
            ("tokenizer.ggml.model", .string("gpt2")),
            ("tokenizer.ggml.pre", .string("smollm")),
            ("tokenizer.ggml.tokens", .array(spec.tokens.map { .string($0) })),
            ("tokenizer.ggml.token_type", .array(spec.tokenTypes.map { .int(Int64($0.rawValue)) })),
            ("tokenizer.ggml.merges", .array(spec.merges.map { .string("\($0.0) \($0.1)") })),
            ("tokenizer.ggml.bos_token_id", .uint(261)),
            ("tokenizer.ggml.eos_token_id", .uint(262)),
            ("tokenizer.ggml.add_bos_token", .bool(false)),
            ("tokenizer.chat_template", .string("{{ '<|im_start|>assistant\\n' }}")),
        ]
    }

    func testGGUFRoundTrip() throws {
        let loaded = try Tokenizer(gguf: writeGGUF(ggufMetadata(), "tiny.gguf"))
        XCTAssertEqual(loaded.preTokenizer, .smollm)
        XCTAssertEqual(loaded.bosTokenID, 261)
        XCTAssertEqual(loaded.eosTokenID, 262)
        XCTAssertFalse(loaded.addsBOS)
        XCTAssertEqual(loaded.chatTemplateSource, "{{ '<|im_start|>assistant\\n' }}")
        XCTAssertThrowsError(try loaded.chatTemplate(), "a template that is not ChatML is refused")
        assertSameEncodings(loaded, try Tokenizer(spec: referenceSpec))
    }

    func testGGUFErrorsNameTheKey() throws {
        func error(_ change: (inout [(String, GGUFValue)]) -> Void) throws -> String {
            var metadata = ggufMetadata()
            change(&metadata)
            do {
                _ = try Tokenizer(gguf: writeGGUF(metadata, "broken.gguf"))
                return "loaded"
            } catch {
                return "\(error)"
            }
        }
        func set(_ key: String, _ value: GGUFValue?) -> (inout [(String, GGUFValue)]) -> Void {
            { metadata in
                metadata.removeAll { $0.0 == key }
                if let value { metadata.append((key, value)) }
            }
        }
        XCTAssertEqual(try error { _ in }, "loaded")
        XCTAssertTrue(try error(set("tokenizer.ggml.merges", nil)).contains("missing metadata key 'tokenizer.ggml.merges'"))
        XCTAssertTrue(try error(set("tokenizer.ggml.tokens", nil)).contains("'tokenizer.ggml.tokens'"))
        XCTAssertTrue(try error(set("tokenizer.ggml.pre", .string("deepseek-llm"))).contains("tokenizer.ggml.pre is 'deepseek-llm'"))
        XCTAssertTrue(try error(set("tokenizer.ggml.model", .string("llama"))).contains("tokenizer.ggml.model is 'llama'"))
        XCTAssertTrue(try error(set("tokenizer.ggml.merges", .array([.string("h e"), .string("he")]))).contains("tokenizer.ggml.merges[1]"))
        XCTAssertTrue(try error(set("tokenizer.ggml.token_type", .array([.int(1), .int(9)]))).contains("tokenizer.ggml.token_type"))
        XCTAssertTrue(try error(set("tokenizer.ggml.eos_token_id", .string("2"))).contains("'tokenizer.ggml.eos_token_id' is not an integer"))
        XCTAssertTrue(try error(set("tokenizer.ggml.bos_token_id", .uint(99_999))).contains("bos token id 99999"))
    }
}
