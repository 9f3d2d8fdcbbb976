/// What the pre-tokenizers ask of a character: `\p{L}`, `\p{N}`, `\s` and `[\r\n]` for the regexes,
/// and "is numeric" for SmolLM's digit split.
///
/// The Unicode versions matter at the edges. HF tokenizers runs its regexes with Oniguruma, whose
/// tables are Unicode 16.0: a character assigned later (Swift's tables are newer) is unassigned to
/// it, so neither a letter nor a number. Its `Digits` step uses Rust's `char::is_numeric`, which
/// knows Unicode 17.0 (e.g. the digits U+11DE0...U+11DE9).
struct CharClass: OptionSet {
    let rawValue: UInt8

    /// General category L* (Lu, Ll, Lt, Lm, Lo), as of Unicode 16.0.
    static let letter = CharClass(rawValue: 1)
    /// General category N* (Nd, Nl, No), as of Unicode 16.0.
    static let number = CharClass(rawValue: 2)
    /// Unicode White_Space, which is what `\s` matches in the Oniguruma regexes HF tokenizers runs
    /// (U+0009-000D, U+0020, U+0085, U+00A0, U+1680, U+2000-200A, U+2028/9, U+202F, U+205F, U+3000).
    static let whitespace = CharClass(rawValue: 4)
    /// "\r" or "\n" (also whitespace).
    static let lineBreak = CharClass(rawValue: 8)
    /// General category N* in Swift's (newer) tables: Rust's `char::is_numeric`.
    static let numeric = CharClass(rawValue: 16)

    /// The newest Unicode version whose characters the regexes know (Oniguruma's tables).
    private static let regexUnicodeVersion = (major: 16, minor: 0)

    /// Neither a letter, a number nor whitespace: `[^\s\p{L}\p{N}]`.
    var isOther: Bool { isDisjoint(with: [.letter, .number, .whitespace]) }

    init(rawValue: UInt8) { self.rawValue = rawValue }

    init(of scalar: UInt32) {
        if scalar < 128 {
            self = CharClass.ascii[Int(scalar)]
        } else {
            self = CharClass.classify(Unicode.Scalar(scalar)!)
        }
    }

    private static let ascii: [CharClass] = (0..<128).map { classify(Unicode.Scalar(UInt8($0))) }

    private static func classify(_ scalar: Unicode.Scalar) -> CharClass {
        let properties = scalar.properties
        var result: CharClass = []
        let knownToRegexes = properties.age.map { age in
            (age.major, age.minor) <= (regexUnicodeVersion.major, regexUnicodeVersion.minor)
        } ?? false
        switch properties.generalCategory {
        case .uppercaseLetter, .lowercaseLetter, .titlecaseLetter, .modifierLetter, .otherLetter:
            if knownToRegexes { result.insert(.letter) }
        case .decimalNumber, .letterNumber, .otherNumber:
            result.insert(.numeric)
            if knownToRegexes { result.insert(.number) }
        default:
            break
        }
        if properties.isWhitespace { result.insert(.whitespace) }
        if scalar == "\r" || scalar == "\n" { result.insert(.lineBreak) }
        return result
    }
}

/// A stretch of text as Unicode scalars, with each one's class and UTF-8 offset: what the
/// pre-tokenizers scan. Pieces are found as scalar ranges and cut out of the UTF-8 by offset.
/// Its arrays are reused from one stretch to the next.
struct ScalarText {
    private(set) var scalars: [UInt32] = []
    private(set) var classes: [CharClass] = []
    /// UTF-8 offset of each scalar from the start of the stretch, plus one entry for the end.
    private(set) var byteOffsets: [Int] = []

    var count: Int { scalars.count }

    /// Loads valid UTF-8 (the bytes of a Swift String).
    mutating func load(_ utf8: UnsafeBufferPointer<UInt8>) {
        scalars.removeAll(keepingCapacity: true)
        classes.removeAll(keepingCapacity: true)
        byteOffsets.removeAll(keepingCapacity: true)
        var index = 0
        while index < utf8.count {
            let lead = UInt32(utf8[index])
            var value: UInt32
            var length: Int
            if lead < 0x80 {
                (value, length) = (lead, 1)
            } else if lead < 0xE0 {
                (value, length) = (lead & 0x1F, 2)
            } else if lead < 0xF0 {
                (value, length) = (lead & 0x0F, 3)
            } else {
                (value, length) = (lead & 0x07, 4)
            }
            for continuation in 1..<length {
                value = value << 6 | UInt32(utf8[index + continuation] & 0x3F)
            }
            scalars.append(value)
            classes.append(CharClass(of: value))
            byteOffsets.append(index)
            index += length
        }
        byteOffsets.append(index)
    }
}
