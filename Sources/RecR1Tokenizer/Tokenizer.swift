import Foundation
import RecR1Formats

/// A byte-level BPE tokenizer (GPT-2 family: SmolLM2, Qwen2, Llama 3) that agrees token for token
/// with Hugging Face `tokenizers`.
///
/// Encoding: added tokens (`<|im_start|>`...) are found whole in the text first; every stretch between
/// them is cut into pieces by the pre-tokenizer, and each piece's UTF-8 bytes go through BPE.
/// Decoding concatenates the bytes of the tokens and reads them as UTF-8.
public final class Tokenizer: @unchecked Sendable {  // immutable apart from the encoder's locked cache
    public let preTokenizer: PreTokenizerKind
    public let bosTokenID: Int?
    public let eosTokenID: Int?
    public let paddingTokenID: Int?
    public let addsBOS: Bool
    public let addsEOS: Bool
    public let chatTemplateSource: String?
    /// What the tokenizer was built from (export writes it back as tokenizer.json).
    public let spec: TokenizerSpec

    private let tokens: [String]
    private let types: [TokenType]
    private let bytesOfToken: [[UInt8]]
    private let normalizesToNFC: Bool
    private let encoder: BytePairEncoder
    private let addedTokens: AddedTokenMatcher

    public var vocabularySize: Int { tokens.count }

    public init(spec: TokenizerSpec) throws {
        let file = spec.source
        guard spec.tokenTypes.count == spec.tokens.count else {
            throw FormatError(file, "\(spec.tokens.count) tokens but \(spec.tokenTypes.count) token types")
        }
        for (name, id) in [("bos", spec.bosTokenID), ("eos", spec.eosTokenID), ("padding", spec.paddingTokenID), ("unknown", spec.unknownTokenID)] {
            if let id, !spec.tokens.indices.contains(id) {
                throw FormatError(file, "the \(name) token id \(id) is outside the vocabulary of \(spec.tokens.count)")
            }
        }
        self.spec = spec
        tokens = spec.tokens
        types = spec.tokenTypes
        preTokenizer = spec.preTokenizer
        normalizesToNFC = spec.normalizesToNFC
        bosTokenID = spec.bosTokenID
        eosTokenID = spec.eosTokenID
        paddingTokenID = spec.paddingTokenID
        addsBOS = spec.addsBOS
        addsEOS = spec.addsEOS
        chatTemplateSource = spec.chatTemplate

        let vocabulary = Self.vocabulary(spec)
        bytesOfToken = vocabulary.bytesOfToken
        encoder = BytePairEncoder(tokenForBytes: vocabulary.tokenForBytes,
                                  merges: try Self.mergeTable(spec, vocabulary.tokenForBytes),
                                  byteTokens: vocabulary.byteTokens, ignoreMerges: spec.ignoreMerges)
        addedTokens = AddedTokenMatcher(spec.tokens.enumerated().compactMap { id, token in
            let type = spec.tokenTypes[id]
            guard type == .control || type == .userDefined, !token.isEmpty else { return nil }
            return AddedTokenMatcher.Entry(bytes: Array(token.utf8), id: id, isSpecial: type == .control)
        })
    }

    /// The bytes of every token; token ids by bytes; and the token for each single byte: its spelled
    /// token, else its `<0xAB>` byte token, else the unknown token, else -1 (dropped).
    private static func vocabulary(_ spec: TokenizerSpec)
        -> (bytesOfToken: [[UInt8]], tokenForBytes: [[UInt8]: Int32], byteTokens: [Int32])
    {
        var bytesOfToken: [[UInt8]] = []
        bytesOfToken.reserveCapacity(spec.tokens.count)
        var tokenForBytes: [[UInt8]: Int32] = [:]
        tokenForBytes.reserveCapacity(spec.tokens.count)
        var byteTokens = [Int32](repeating: -1, count: 256)
        for (id, token) in spec.tokens.enumerated() {
            if spec.tokenTypes[id] == .byte, let byte = byteTokenValue(token) {
                bytesOfToken.append([byte])
                if byteTokens[Int(byte)] < 0 { byteTokens[Int(byte)] = Int32(id) }
                continue
            }
            let bytes = ByteLevel.tokenBytes(token)
            bytesOfToken.append(bytes)
            tokenForBytes[bytes] = Int32(id)  // on a clash the later id wins, as in HF's vocabulary map
        }
        for byte in 0..<256 {
            if let id = tokenForBytes[[UInt8(byte)]] {
                byteTokens[byte] = id
            } else if byteTokens[byte] < 0, let unknown = spec.unknownTokenID {
                byteTokens[byte] = Int32(unknown)
            }
        }
        return (bytesOfToken, tokenForBytes, byteTokens)
    }

    /// Merges by the pair of token ids they join, with their rank and result.
    private static func mergeTable(_ spec: TokenizerSpec, _ tokenForBytes: [[UInt8]: Int32]) throws -> [UInt64: BytePairEncoder.Merge] {
        var merges: [UInt64: BytePairEncoder.Merge] = [:]
        merges.reserveCapacity(spec.merges.count)
        for (rank, (left, right)) in spec.merges.enumerated() {
            let leftBytes = ByteLevel.tokenBytes(left), rightBytes = ByteLevel.tokenBytes(right)
            guard let leftID = tokenForBytes[leftBytes], let rightID = tokenForBytes[rightBytes] else {
                throw FormatError(spec.source, "merge #\(rank) '\(left) \(right)' joins a token that is not in the vocabulary")
            }
            guard let result = tokenForBytes[leftBytes + rightBytes] else {
                throw FormatError(spec.source, "merge #\(rank) '\(left) \(right)' makes '\(left)\(right)', which is not in the vocabulary")
            }
            // A pair listed twice counts at its later rank, as in HF (its merge map keeps the last entry).
            merges[BytePairEncoder.pairKey(leftID, rightID)] = BytePairEncoder.Merge(rank: Int32(rank), result: result)
        }
        return merges
    }

    /// The byte of a `<0xAB>` token.
    private static func byteTokenValue(_ token: String) -> UInt8? {
        guard token.utf8.count == 6, token.hasPrefix("<0x"), token.hasSuffix(">") else { return nil }
        return UInt8(token.dropFirst(3).prefix(2), radix: 16)
    }

    // MARK: Encoding

    /// The token ids of `text`.
    /// - Parameters:
    ///   - addSpecialTokens: add BOS / EOS where the model asks for them (HF's `add_special_tokens`).
    ///   - parseSpecial: special-token strings in the text ("<|im_end|>") become their ids; when false
    ///     they are tokenized as plain text (HF's `split_special_tokens=True`). Non-special added tokens
    ///     are matched either way, as in HF and llama.cpp.
    public func encode(_ text: String, addSpecialTokens: Bool = true, parseSpecial: Bool = true) -> [Int] {
        var ids: [Int] = []
        ids.reserveCapacity(text.utf8.count / 3)
        if addSpecialTokens, addsBOS, let bos = bosTokenID { ids.append(bos) }
        var text = text
        text.withUTF8 { utf8 in
            var scratch = Scratch()
            var plainStart = 0
            for match in addedTokens.matches(in: utf8) where parseSpecial || !match.entry.isSpecial {
                encodePlain(UnsafeBufferPointer(rebasing: utf8[plainStart..<match.range.lowerBound]), into: &ids, &scratch)
                ids.append(match.entry.id)
                plainStart = match.range.upperBound
            }
            encodePlain(UnsafeBufferPointer(rebasing: utf8[plainStart...]), into: &ids, &scratch)
        }
        if addSpecialTokens, addsEOS, let eos = eosTokenID { ids.append(eos) }
        return ids
    }

    /// Buffers reused across the stretches of one `encode` call.
    private struct Scratch {
        var text = ScalarText()
        var pieces: [Range<Int>] = []
    }

    private func encodePlain(_ utf8: UnsafeBufferPointer<UInt8>, into ids: inout [Int], _ scratch: inout Scratch) {
        guard !utf8.isEmpty else { return }
        if normalizesToNFC && utf8.contains(where: { $0 >= 0x80 }) {  // ASCII is already NFC
            var normalized = String(decoding: utf8, as: UTF8.self).precomposedStringWithCanonicalMapping
            normalized.withUTF8 { encodeNormalized($0, into: &ids, &scratch) }
        } else {
            encodeNormalized(utf8, into: &ids, &scratch)
        }
    }

    private func encodeNormalized(_ utf8: UnsafeBufferPointer<UInt8>, into ids: inout [Int], _ scratch: inout Scratch) {
        scratch.text.load(utf8)
        scratch.pieces.removeAll(keepingCapacity: true)
        preTokenizer.split(scratch.text, into: &scratch.pieces)
        let offsets = scratch.text.byteOffsets
        for piece in scratch.pieces {
            encoder.encode(UnsafeBufferPointer(rebasing: utf8[offsets[piece.lowerBound]..<offsets[piece.upperBound]]), into: &ids)
        }
    }

    // MARK: Decoding

    /// The text of `ids`. Bytes that are not valid UTF-8 become U+FFFD, as in HF; ids outside the
    /// vocabulary are ignored.
    public func decode(_ ids: [Int], skipSpecialTokens: Bool = false) -> String {
        var bytes: [UInt8] = []
        for id in ids where tokens.indices.contains(id) {
            if skipSpecialTokens && types[id] == .control { continue }
            bytes.append(contentsOf: bytesOfToken[id])
        }
        return String(decoding: bytes, as: UTF8.self)
    }

    /// The bytes a token stands for; empty for an id outside the vocabulary.
    public func tokenBytes(_ id: Int) -> [UInt8] {
        tokens.indices.contains(id) ? bytesOfToken[id] : []
    }

    /// The vocabulary entry as the file spells it ("Ġthe"), nil outside the vocabulary.
    public func token(_ id: Int) -> String? {
        tokens.indices.contains(id) ? tokens[id] : nil
    }

    public func tokenType(_ id: Int) -> TokenType? {
        types.indices.contains(id) ? types[id] : nil
    }

    /// Whether `decode(skipSpecialTokens: true)` drops the token.
    public func isSpecial(_ id: Int) -> Bool {
        tokenType(id) == .control
    }

    /// The id of a vocabulary entry as the file spells it ("Ġthe", "<|im_end|>").
    public func id(ofToken token: String) -> Int? {
        if let id = addedTokens.id(of: Array(token.utf8)) { return id }
        if let id = encoder.tokenForBytes[ByteLevel.tokenBytes(token)], tokens[Int(id)] == token { return Int(id) }
        return tokens.firstIndex(of: token)
    }

    public func makeStreamDecoder(skipSpecialTokens: Bool = false) -> StreamDecoder {
        StreamDecoder(tokenizer: self, skipSpecialTokens: skipSpecialTokens)
    }

    // MARK: Chat

    /// The file's chat template, recognised (ChatML) or an error saying why it is not.
    public func chatTemplate() throws -> ChatTemplate {
        guard let source = chatTemplateSource else { throw FormatError("chat template", "the tokenizer has no chat template") }
        return try ChatTemplate(source)
    }

    /// The conversation as the model's chat template renders it (HF's `apply_chat_template(tokenize=False)`).
    public func applyChatTemplate(_ messages: [ChatMessage], addGenerationPrompt: Bool, defaultSystem: Bool = true) throws -> String {
        try chatTemplate().render(messages, addGenerationPrompt: addGenerationPrompt, defaultSystem: defaultSystem)
    }

    /// The ids of the rendered conversation: the template writes its own special tokens, so no BOS is added.
    public func encodeChat(_ messages: [ChatMessage], addGenerationPrompt: Bool, defaultSystem: Bool = true) throws -> [Int] {
        encode(try applyChatTemplate(messages, addGenerationPrompt: addGenerationPrompt, defaultSystem: defaultSystem),
               addSpecialTokens: false)
    }
}
