import Foundation
import XCTest

import RecR1Formats
@testable import RecR1Tokenizer

/// The spelling of some text in GPT-2's byte alphabet ("a b" -> "aĠb").
func spelled(_ text: String) -> String { ByteLevel.spelling(of: Array(text.utf8)) }

/// A tiny byte-level vocabulary: ids 0...255 are the single bytes in byte order, then `merged` tokens
/// (given as text), then `added` tokens.
func tinySpec(merged: [String] = [], merges: [(String, String)] = [], added: [(String, TokenType)] = [],
              preTokenizer: PreTokenizerKind = .gpt2) -> TokenizerSpec {
    let tokens = (0..<256).map { ByteLevel.spelling(of: [UInt8($0)]) } + merged.map(spelled) + added.map(\.0)
    let types = [TokenType](repeating: .normal, count: 256 + merged.count) + added.map(\.1)
    return TokenizerSpec(tokens: tokens, tokenTypes: types,
                         merges: merges.map { (spelled($0.0), spelled($0.1)) }, preTokenizer: preTokenizer)
}

/// Unit tests on hand-made vocabularies: the byte alphabet, merge order, byte fallback, added tokens,
/// decoding and the stream decoder.
final class TokenizerTests: XCTestCase {
    /// Ids of single bytes in `tinySpec` vocabularies.
    func byteIDs(_ text: String) -> [Int] { text.utf8.map { Int($0) } }

    func testByteAlphabetIsGPT2s() {
        // Facts of GPT-2's bytes_to_unicode: printable bytes keep their scalar; the 68 others move, in
        // byte order, to U+0100 and up: 0x00 -> U+0100, " " (the 33rd moved byte) -> U+0120 "Ġ",
        // "\n" -> U+010A "Ċ", 0x7F -> U+0121, 0xAD (the last moved) -> U+0143.
        XCTAssertEqual(spelled("A~"), "A~")
        XCTAssertEqual(spelled(" "), "\u{120}")
        XCTAssertEqual(spelled("\n"), "\u{10A}")
        XCTAssertEqual(ByteLevel.spelling(of: [0x00, 0x7F, 0xA0, 0xA1, 0xAD, 0xFF]), "\u{100}\u{121}\u{142}\u{A1}\u{143}\u{FF}")
        for byte in 0...255 {
            XCTAssertEqual(ByteLevel.bytes(spelledBy: ByteLevel.spelling(of: [UInt8(byte)])), [UInt8(byte)])
        }
        XCTAssertNil(ByteLevel.bytes(spelledBy: " "), "a raw space is not in the alphabet")
        XCTAssertEqual(Set(ByteLevel.scalarForByte).count, 256)
    }

    func testMergesApplyBestRankFirst() throws {
        // "abc" is one piece. With "b c" ranked first: a b c -> a bc, and "a b" no longer has a pair.
        let bcFirst = try Tokenizer(spec: tinySpec(merged: ["ab", "bc"], merges: [("b", "c"), ("a", "b")]))
        XCTAssertEqual(bcFirst.encode("abc"), [byteIDs("a")[0], 257])
        // The same merges the other way round: a b c -> ab c.
        let abFirst = try Tokenizer(spec: tinySpec(merged: ["ab", "bc"], merges: [("a", "b"), ("b", "c")]))
        XCTAssertEqual(abFirst.encode("abc"), [256, byteIDs("c")[0]])
        // Merges build on merges: a b c -> a bc -> abc.
        let chained = try Tokenizer(spec: tinySpec(merged: ["bc", "abc"], merges: [("b", "c"), ("a", "bc")]))
        XCTAssertEqual(chained.encode("abc"), [257])
        // A pair listed twice counts at its later rank, as in HF: "a b" (ranks 0 and 2) loses to "b c" (1).
        let twice = try Tokenizer(spec: tinySpec(merged: ["ab", "bc"], merges: [("a", "b"), ("b", "c"), ("a", "b")]))
        XCTAssertEqual(twice.encode("abc"), [byteIDs("a")[0], 257])
        // On a tie the leftmost pair merges first: a a a -> aa a.
        let tie = try Tokenizer(spec: tinySpec(merged: ["aa"], merges: [("a", "a")]))
        XCTAssertEqual(tie.encode("aaa"), [256, byteIDs("a")[0]])
        XCTAssertEqual(tie.encode("aaaa"), [256, 256])
        // Merges stay inside pieces: GPT-2 cuts "a a" into "a" and " a", so "a " (rank 0) cannot
        // merge across the cut, while " a" merges inside the second piece.
        let spaced = try Tokenizer(spec: tinySpec(merged: ["a ", " a"], merges: [("a", " "), (" ", "a")]))
        XCTAssertEqual(spaced.encode("a a"), [byteIDs("a")[0], 257])
        // "a  a": "a", " " (whitespace gives its last space to the word), " a".
        XCTAssertEqual(spaced.encode("a  a"), [byteIDs("a")[0], byteIDs(" ")[0], 257])
    }

    func testBytesWithoutMergesFallBackToByteTokens() throws {
        // "é" is C3 A9 and "€" E2 82 AC: with no merges they come out one token per byte.
        let tokenizer = try Tokenizer(spec: tinySpec())
        XCTAssertEqual(tokenizer.encode("é€"), [0xC3, 0xA9, 0xE2, 0x82, 0xAC])
        XCTAssertEqual(tokenizer.decode([0xC3, 0xA9, 0xE2, 0x82, 0xAC]), "é€")
        XCTAssertEqual(tokenizer.tokenBytes(0x82), [0x82])
    }

    func testBytesTheVocabularyCannotSpell() throws {
        // Drop the token for 0xA9 (the second byte of "é"): ids stay, its spelling becomes unusable.
        var spec = tinySpec(added: [("<0xA9>", .byte), ("<unk>", .control)])
        spec.tokens[0xA9] = "<unused>"
        // A <0xA9> byte token stands in for it, and decodes to the byte.
        XCTAssertEqual(try Tokenizer(spec: spec).encode("é"), [0xC3, 256])
        XCTAssertEqual(try Tokenizer(spec: spec).decode([0xC3, 256]), "é")
        // Without one, the unknown token; without that, the byte is dropped (HF's BPE without unk_token).
        spec.tokenTypes[256] = .normal
        spec.unknownTokenID = 257
        XCTAssertEqual(try Tokenizer(spec: spec).encode("é"), [0xC3, 257])
        spec.unknownTokenID = nil
        XCTAssertEqual(try Tokenizer(spec: spec).encode("é"), [0xC3])
    }

    func testSpecialTokensParsedOrPlainText() throws {
        let tokenizer = try Tokenizer(spec: tinySpec(added: [("<|end|>", .control), ("<tool>", .userDefined)]))
        let end = 256, tool = 257
        XCTAssertEqual(tokenizer.encode("x<|end|>y"), [byteIDs("x")[0], end, byteIDs("y")[0]])
        // Not parsed: the text is ordinary bytes (GPT-2 pieces "x", "<|", "end", "|>", "y"; no merges).
        XCTAssertEqual(tokenizer.encode("x<|end|>y", parseSpecial: false), byteIDs("x<|end|>y"))
        // A user-defined (non-special) token is matched either way, as in HF and llama.cpp.
        XCTAssertEqual(tokenizer.encode("a<tool>", parseSpecial: false), [byteIDs("a")[0], tool])
        // No stripping around special tokens: the spaces stay in the text beside them.
        XCTAssertEqual(tokenizer.encode(" <|end|> "), [byteIDs(" ")[0], end, byteIDs(" ")[0]])
        // Nearly-special text is text.
        XCTAssertEqual(tokenizer.encode("<|end|"), byteIDs("<|end|"))
        XCTAssertEqual(tokenizer.encode("<|END|>"), byteIDs("<|END|>"))
        XCTAssertTrue(tokenizer.isSpecial(end))
        XCTAssertFalse(tokenizer.isSpecial(tool))
        XCTAssertEqual(tokenizer.id(ofToken: "<|end|>"), end)
        XCTAssertEqual(tokenizer.id(ofToken: spelled(" ")), 0x20)
    }

    func testAddedTokensMatchLeftmostLongest() throws {
        let tokenizer = try Tokenizer(spec: tinySpec(added: [("<a>", .control), ("<a><b>", .control), ("b><", .userDefined)]))
        // At offset 0 both "<a>" and "<a><b>" match: the longer wins, and "b><" (offset 4) overlaps it.
        XCTAssertEqual(tokenizer.encode("<a><b><"), [257] + byteIDs("<"))
        // "b><" starts first, so it wins over the "<a>" that overlaps its end.
        XCTAssertEqual(tokenizer.encode("xb><a>"), byteIDs("x") + [258] + byteIDs("a>"))
        XCTAssertEqual(tokenizer.encode("<a>b><"), [256, 258])
    }

    func testBOSAndEOSFollowTheModel() throws {
        var spec = tinySpec(added: [("<s>", .control), ("</s>", .control)])
        spec.bosTokenID = 256
        spec.eosTokenID = 257
        XCTAssertEqual(try Tokenizer(spec: spec).encode("a"), byteIDs("a"), "the model does not ask for BOS")
        spec.addsBOS = true
        XCTAssertEqual(try Tokenizer(spec: spec).encode("a"), [256] + byteIDs("a"))
        XCTAssertEqual(try Tokenizer(spec: spec).encode("a", addSpecialTokens: false), byteIDs("a"))
        spec.addsEOS = true
        XCTAssertEqual(try Tokenizer(spec: spec).encode("a"), [256] + byteIDs("a") + [257])
        spec.bosTokenID = 300
        XCTAssertThrowsError(try Tokenizer(spec: spec)) { XCTAssertTrue("\($0)".contains("bos"), "\($0)") }
    }

    func testBadMergesAreErrors() {
        XCTAssertThrowsError(try Tokenizer(spec: tinySpec(merges: [("a", "b")]))) { error in
            XCTAssertTrue("\(error)".contains("merge #0 'a b'"), "\(error)")
        }
        var spec = tinySpec(merged: ["ab"], merges: [("a", "b")])
        spec.merges = [("a", "zz")]
        XCTAssertThrowsError(try Tokenizer(spec: spec)) { XCTAssertTrue("\($0)".contains("not in the vocabulary"), "\($0)") }
    }

    func testDecodeRoundTripAndSkippingSpecials() throws {
        let tokenizer = try Tokenizer(spec: tinySpec(merged: ["he", "hell", "ll", " w"],
                                                     merges: [("h", "e"), ("l", "l"), ("he", "ll"), (" ", "w")],
                                                     added: [("<|end|>", .control), ("<tool>", .userDefined)]))
        let text = "hello world\n\tnaïve 👍 <tool><|end|>"
        let ids = tokenizer.encode(text)
        // h e l l o: "h e" (rank 0), then "l l", then "he ll".
        XCTAssertEqual(Array(ids.prefix(2)), [257, byteIDs("o")[0]])
        XCTAssertEqual(tokenizer.decode(ids), text)
        XCTAssertEqual(tokenizer.decode(ids, skipSpecialTokens: true), "hello world\n\tnaïve 👍 <tool>")
        XCTAssertEqual(tokenizer.decode([999_999, -1]), "", "ids outside the vocabulary are ignored")
        // Bytes that are not UTF-8 decode to U+FFFD: a lone continuation byte, and a cut-off "€".
        XCTAssertEqual(tokenizer.decode([0x80, 0x41]), "\u{FFFD}A")
        XCTAssertEqual(tokenizer.decode([0xE2, 0x82]), "\u{FFFD}")
    }

    func testStreamDecoderHoldsBackSplitCharacters() throws {
        // "é€" is C3 A9 | E2 82 AC. The merged token "©â" is A9 E2: it ends "é" and starts "€".
        var spec = tinySpec(added: [("<|end|>", .control)])
        spec.tokens.append(ByteLevel.spelling(of: [0xA9, 0xE2]))
        spec.tokenTypes.append(.normal)
        let crossing = spec.tokens.count - 1
        let stream = try Tokenizer(spec: spec)
        var decoder = stream.makeStreamDecoder()
        XCTAssertEqual(decoder.push(0xC3), "")
        XCTAssertEqual(decoder.push(crossing), "é")
        XCTAssertTrue(decoder.hasPendingBytes)
        XCTAssertEqual(decoder.push(0x82), "")
        XCTAssertEqual(decoder.push(0xAC), "€")
        XCTAssertFalse(decoder.hasPendingBytes)
        // A four-byte emoji, one byte per token, then text.
        let thumbs = Array("👍".utf8).map(Int.init)
        XCTAssertEqual(thumbs.map { decoder.push($0) }, ["", "", "", "👍"])
        XCTAssertEqual(decoder.push(0x21), "!")
        // Special tokens come through unless skipped.
        XCTAssertEqual(decoder.push(256), "<|end|>")
        var skipping = stream.makeStreamDecoder(skipSpecialTokens: true)
        XCTAssertEqual(skipping.push(256), "")
        // A byte that can never start a character is not held back; an unfinished one comes out as
        // U+FFFD at the end of the stream.
        XCTAssertEqual(decoder.push(0xFF), "\u{FFFD}")
        XCTAssertEqual(decoder.push(0xE2), "")
        XCTAssertEqual(decoder.finish(), "\u{FFFD}")
        XCTAssertEqual(decoder.finish(), "")
        // E0 must be followed by A0...BF: E0 80 is invalid at once, not a character in progress.
        XCTAssertEqual(decoder.push(0xE0), "")
        XCTAssertEqual(decoder.push(0x80), "\u{FFFD}\u{FFFD}")
    }

    func testStreamDecoderPiecesJoinToDecode() throws {
        // One merge, C3 + A9 -> "é", so that some characters are one token and others several.
        var spec = tinySpec(merged: ["é"])
        spec.merges = [(ByteLevel.spelling(of: [0xC3]), ByteLevel.spelling(of: [0xA9]))]
        let tokenizer = try Tokenizer(spec: spec)
        let text = "Café — 東京 🇯🇵 e\u{301}"
        let ids = tokenizer.encode(text)
        XCTAssertEqual(Array(ids.prefix(4)), byteIDs("Caf") + [256])
        var decoder = tokenizer.makeStreamDecoder()
        let pieces = ids.map { decoder.push($0) } + [decoder.finish()]
        XCTAssertEqual(pieces.joined(), text)
        XCTAssertEqual(pieces.joined(), tokenizer.decode(ids))
        XCTAssertTrue(pieces.allSatisfy { !$0.contains("\u{FFFD}") })
    }
}
