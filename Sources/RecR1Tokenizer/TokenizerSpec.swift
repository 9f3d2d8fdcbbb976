/// What llama.cpp's `tokenizer.ggml.token_type` says a vocabulary entry is.
public enum TokenType: Int, Sendable {
    case normal = 1
    case unknown = 2
    /// A special token such as `<|im_end|>`: matched whole in text when special tokens are parsed,
    /// dropped by `decode(skipSpecialTokens: true)`.
    case control = 3
    /// An added token that is not special (like `<think>`): always matched whole in text.
    case userDefined = 4
    case unused = 5
    /// `<0xAB>`: the byte 0xAB, for a byte the vocabulary has no other token for.
    case byte = 6
}

/// Everything a byte-level BPE tokenizer is made of, whichever file it comes from.
public struct TokenizerSpec: Sendable {
    /// Vocabulary entries by id, spelled in GPT-2's byte alphabet ("Ġthe" is " the"); control and
    /// user-defined tokens are their literal text ("<|im_end|>").
    public var tokens: [String]
    /// One per token.
    public var tokenTypes: [TokenType]
    /// Merges, best first: each joins two vocabulary entries into the entry that is both, e.g. ("Ġ", "t").
    public var merges: [(String, String)]
    public var preTokenizer: PreTokenizerKind
    /// Qwen2's tokenizer.json normalises text to NFC before splitting it.
    public var normalizesToNFC = false
    /// Llama 3's `ignore_merges`: a piece that is itself a vocabulary entry becomes that token.
    public var ignoreMerges = false
    /// The token for a byte the vocabulary cannot spell; nil drops such bytes, which is what HF and
    /// llama.cpp do for a GGUF byte-level vocabulary.
    public var unknownTokenID: Int?
    public var bosTokenID: Int?
    public var eosTokenID: Int?
    public var paddingTokenID: Int?
    /// Whether `encode(addSpecialTokens: true)` starts with BOS / ends with EOS.
    public var addsBOS = false
    public var addsEOS = false
    /// The Jinja chat template the file carries, if any.
    public var chatTemplate: String?
    /// Where the spec came from, for error messages.
    public var source = "tokenizer"

    public init(tokens: [String], tokenTypes: [TokenType]? = nil, merges: [(String, String)], preTokenizer: PreTokenizerKind) {
        self.tokens = tokens
        self.tokenTypes = tokenTypes ?? Array(repeating: .normal, count: tokens.count)
        self.merges = merges
        self.preTokenizer = preTokenizer
    }
}
