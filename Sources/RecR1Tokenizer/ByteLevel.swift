/// GPT-2's reversible map between bytes and printable Unicode scalars (its `bytes_to_unicode`).
///
/// Byte-level vocabularies spell every token with these 256 scalars so that tokens are printable
/// strings: "Ġthe" is the bytes of " the", "Ċ" is "\n". Bytes that are already printable and not
/// a space keep their own scalar; the other 68 are moved, in byte order, to U+0100 and up.
enum ByteLevel {
    /// The scalar that spells each byte.
    static let scalarForByte: [Unicode.Scalar] = {
        var table: [Unicode.Scalar] = []
        var nextMoved: UInt32 = 256
        for byte in 0..<256 {
            if keepsItsScalar(byte) {
                table.append(Unicode.Scalar(UInt8(byte)))
            } else {
                table.append(Unicode.Scalar(nextMoved)!)
                nextMoved += 1
            }
        }
        return table
    }()

    /// The byte each spelling scalar stands for, indexed by scalar value; -1 where a scalar spells
    /// nothing. Every spelling scalar is below U+0144.
    static let byteForScalar: [Int16] = {
        var table = [Int16](repeating: -1, count: 0x144)
        for (byte, scalar) in scalarForByte.enumerated() { table[Int(scalar.value)] = Int16(byte) }
        return table
    }()

    private static func keepsItsScalar(_ byte: Int) -> Bool {
        (0x21...0x7E).contains(byte) || (0xA1...0xAC).contains(byte) || (0xAE...0xFF).contains(byte)
    }

    /// The spelling of some bytes, e.g. " the" -> "Ġthe".
    static func spelling<Bytes: Sequence>(of bytes: Bytes) -> String where Bytes.Element == UInt8 {
        var text = String.UnicodeScalarView()
        for byte in bytes { text.append(scalarForByte[Int(byte)]) }
        return String(text)
    }

    /// The bytes a spelled string stands for, or nil when a scalar in it is outside the alphabet.
    static func bytes(spelledBy text: String) -> [UInt8]? {
        var bytes: [UInt8] = []
        bytes.reserveCapacity(text.unicodeScalars.count)
        for scalar in text.unicodeScalars {
            guard scalar.value < byteForScalar.count, byteForScalar[Int(scalar.value)] >= 0 else { return nil }
            bytes.append(UInt8(byteForScalar[Int(scalar.value)]))
        }
        return bytes
    }

    /// The bytes a vocabulary entry stands for: decoded from the alphabet when every scalar is in it,
    /// otherwise the entry's own UTF-8. This is the rule of HF's ByteLevel decoder, which applies it
    /// to added tokens too ("<|im_end|>" is plain ASCII, so it decodes to itself either way).
    static func tokenBytes(_ token: String) -> [UInt8] {
        bytes(spelledBy: token) ?? Array(token.utf8)
    }
}
