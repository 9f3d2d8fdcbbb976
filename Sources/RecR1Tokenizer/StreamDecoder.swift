/// Turns ids into text one at a time, as they are generated. The bytes of a character that is split
/// across tokens are held back until its last byte arrives, so each piece of text returned is whole
/// and the pieces joined equal `decode` of all the ids.
public struct StreamDecoder {
    public let tokenizer: Tokenizer
    public let skipSpecialTokens: Bool
    /// Bytes of a character still incomplete: at most three.
    private var pending: [UInt8] = []

    public init(tokenizer: Tokenizer, skipSpecialTokens: Bool = false) {
        self.tokenizer = tokenizer
        self.skipSpecialTokens = skipSpecialTokens
    }

    /// Whether a character is waiting for more bytes.
    public var hasPendingBytes: Bool { !pending.isEmpty }

    /// The text that this token completes: "" while a character is still incomplete.
    public mutating func push(_ id: Int) -> String {
        if skipSpecialTokens && tokenizer.isSpecial(id) { return "" }
        pending.append(contentsOf: tokenizer.tokenBytes(id))
        let complete = UTF8Tail.completePrefixLength(pending)
        let text = String(decoding: pending[..<complete], as: UTF8.self)
        pending.removeFirst(complete)
        return text
    }

    /// What is still held back, an incomplete character coming out as U+FFFD; the decoder is then empty.
    public mutating func finish() -> String {
        defer { pending.removeAll() }
        return String(decoding: pending, as: UTF8.self)
    }
}

enum UTF8Tail {
    /// The length of `bytes` without a trailing incomplete but so far valid UTF-8 sequence: a lead
    /// byte followed by fewer continuation bytes than it announces, each in its allowed range. Bytes
    /// that can never become valid are not held back (they decode to U+FFFD right away).
    static func completePrefixLength(_ bytes: [UInt8]) -> Int {
        var start = bytes.count
        // Back over at most three continuation bytes (10xxxxxx) to the lead byte.
        while start > 0 && bytes.count - start < 3 && bytes[start - 1] & 0xC0 == 0x80 { start -= 1 }
        guard start > 0 else { return bytes.count }
        let lead = bytes[start - 1]
        let have = bytes.count - start + 1
        let needed: Int
        var secondRange: ClosedRange<UInt8> = 0x80...0xBF
        switch lead {
        case 0xC2...0xDF: needed = 2
        case 0xE0: needed = 3; secondRange = 0xA0...0xBF
        case 0xED: needed = 3; secondRange = 0x80...0x9F  // no surrogates
        case 0xE1...0xEF: needed = 3
        case 0xF0: needed = 4; secondRange = 0x90...0xBF
        case 0xF4: needed = 4; secondRange = 0x80...0x8F  // nothing above U+10FFFF
        case 0xF1...0xF3: needed = 4
        default: return bytes.count  // ASCII, or a byte that never leads
        }
        guard have < needed else { return bytes.count }
        if have >= 2 && !secondRange.contains(bytes[start]) { return bytes.count }
        return start - 1
    }
}
