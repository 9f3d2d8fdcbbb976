/// Finds added tokens (`<|im_start|>`, `<file_sep>`...) in raw UTF-8 text: leftmost match first,
/// the longest one where several start at the same place, never overlapping, as HF's Aho-Corasick
/// matcher (MatchKind::LeftmostLongest) does.
struct AddedTokenMatcher {
    struct Entry {
        let bytes: [UInt8]
        let id: Int
        let isSpecial: Bool
    }

    struct Match {
        let range: Range<Int>
        let entry: Entry
    }

    /// Entries by their first byte, longest first.
    private let entriesByFirstByte: [[Entry]]

    init(_ entries: [Entry]) {
        var table = [[Entry]](repeating: [], count: 256)
        for entry in entries where !entry.bytes.isEmpty { table[Int(entry.bytes[0])].append(entry) }
        entriesByFirstByte = table.map { $0.sorted { $0.bytes.count > $1.bytes.count } }
    }

    func id(of bytes: [UInt8]) -> Int? {
        guard let first = bytes.first else { return nil }
        return entriesByFirstByte[Int(first)].first { $0.bytes == bytes }?.id
    }

    func matches(in text: UnsafeBufferPointer<UInt8>) -> [Match] {
        var found: [Match] = []
        var position = 0
        while position < text.count {
            let candidates = entriesByFirstByte[Int(text[position])]
            if !candidates.isEmpty, let entry = candidates.first(where: { occurs($0.bytes, in: text, at: position) }) {
                found.append(Match(range: position..<(position + entry.bytes.count), entry: entry))
                position += entry.bytes.count
            } else {
                position += 1
            }
        }
        return found
    }

    private func occurs(_ bytes: [UInt8], in text: UnsafeBufferPointer<UInt8>, at position: Int) -> Bool {
        guard position + bytes.count <= text.count else { return false }
        for index in 1..<bytes.count where text[position + index] != bytes[index] { return false }
        return true
    }
}
