/// How text is cut into pieces before BPE (merges never cross a piece boundary). Each kind is the
/// regex its vocabulary was trained with, hand-written as a scanner over Unicode scalars that tries
/// the regex's alternatives in order, as a backtracking regex engine does; the comments quote them.
public enum PreTokenizerKind: String, CaseIterable, Sendable {
    /// GPT-2: `'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+`
    case gpt2
    /// SmolLM2: every `\p{N}` character split off on its own (HF `Digits` with
    /// `individual_digits`), then GPT-2 on each stretch between them.
    case smollm
    /// Qwen2: `(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+`
    case qwen2
    /// Llama 3: Qwen2's regex with numbers in groups of up to three, `\p{N}{1,3}`.
    case llama3

    /// The kind a GGUF's `tokenizer.ggml.pre` names (llama.cpp's names), nil for one recr1 does not know.
    public init?(ggufName: String) {
        switch ggufName {
        case "gpt2": self = .gpt2
        case "smollm": self = .smollm
        case "qwen2": self = .qwen2
        case "llama3", "llama-v3", "llama-bpe": self = .llama3
        default: return nil
        }
    }

    /// The regex of the HF `Split` pre-tokenizer (followed by ByteLevel without its own regex) that
    /// is this kind; SmolLM has none, being a `Digits` step.
    var splitRegex: String? {
        switch self {
        case .gpt2: return #"'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+"#
        case .smollm: return nil
        case .qwen2: return #"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"#
        case .llama3: return #"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"#
        }
    }

    /// Appends the pieces of `text`, as scalar ranges in order, to `pieces`.
    func split(_ text: ScalarText, into pieces: inout [Range<Int>]) {
        let scanner = PieceScanner(scalars: text.scalars, classes: text.classes)
        switch self {
        case .gpt2:
            scanner.splitGPT2(0, text.count, into: &pieces)
        case .smollm:
            var stretchStart = 0
            for index in 0..<text.count where text.classes[index].contains(.numeric) {
                if stretchStart < index { scanner.splitGPT2(stretchStart, index, into: &pieces) }
                pieces.append(index..<(index + 1))
                stretchStart = index + 1
            }
            if stretchStart < text.count { scanner.splitGPT2(stretchStart, text.count, into: &pieces) }
        case .qwen2:
            scanner.splitQwenStyle(0, text.count, maxDigits: 1, into: &pieces)
        case .llama3:
            scanner.splitQwenStyle(0, text.count, maxDigits: 3, into: &pieces)
        }
    }
}

/// The scanners. `end` is where the stretch being split ends: to the regex it is the end of text.
private struct PieceScanner {
    let scalars: [UInt32]
    let classes: [CharClass]

    func splitGPT2(_ start: Int, _ end: Int, into pieces: inout [Range<Int>]) {
        var index = start
        while index < end {
            let pieceEnd = gpt2PieceEnd(index, end)
            pieces.append(index..<pieceEnd)
            index = pieceEnd
        }
    }

    func splitQwenStyle(_ start: Int, _ end: Int, maxDigits: Int, into pieces: inout [Range<Int>]) {
        var index = start
        while index < end {
            let pieceEnd = qwenPieceEnd(index, end, maxDigits: maxDigits)
            pieces.append(index..<pieceEnd)
            index = pieceEnd
        }
    }

    private func gpt2PieceEnd(_ start: Int, _ end: Int) -> Int {
        // 's|'t|'re|'ve|'m|'ll|'d
        let contraction = contractionLength(start, end, ignoringCase: false)
        if contraction > 0 { return start + contraction }
        // ` ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+`: a space joins the run after it, whichever class that is.
        var first = start
        if scalars[start] == 0x20, start + 1 < end, !classes[start + 1].contains(.whitespace) { first = start + 1 }
        let kind = classes[first]
        if kind.contains(.letter) { return runEnd(first, end) { $0.contains(.letter) } }
        if kind.contains(.number) { return runEnd(first, end) { $0.contains(.number) } }
        if kind.isOther { return runEnd(first, end) { $0.isOther } }
        // `\s+(?!\S)|\s+`
        return whitespaceEnd(start, end)
    }

    private func qwenPieceEnd(_ start: Int, _ end: Int, maxDigits: Int) -> Int {
        // (?i:'s|'t|'re|'ve|'m|'ll|'d)
        let contraction = contractionLength(start, end, ignoringCase: true)
        if contraction > 0 { return start + contraction }
        // `[^\r\n\p{L}\p{N}]?\p{L}+`: letters, with one leading character that is none of those.
        let kind = classes[start]
        if kind.contains(.letter) { return runEnd(start, end) { $0.contains(.letter) } }
        if kind.isDisjoint(with: [.lineBreak, .number]), start + 1 < end, classes[start + 1].contains(.letter) {
            return runEnd(start + 1, end) { $0.contains(.letter) }
        }
        // `\p{N}` or `\p{N}{1,3}`
        if kind.contains(.number) { return min(runEnd(start, end) { $0.contains(.number) }, start + maxDigits) }
        // ` ?[^\s\p{L}\p{N}]+[\r\n]*`
        var first = start
        if scalars[start] == 0x20, start + 1 < end, classes[start + 1].isOther { first = start + 1 }
        if classes[first].isOther {
            let othersEnd = runEnd(first, end) { $0.isOther }
            return runEnd(othersEnd, end) { $0.contains(.lineBreak) }
        }
        // `\s*[\r\n]+`: the greedy `\s*` gives back characters until `[\r\n]+` can match, so the piece
        // ends just after the last line break of the whitespace run.
        let whitespaceRunEnd = runEnd(start, end) { $0.contains(.whitespace) }
        if let lastBreak = (start..<whitespaceRunEnd).last(where: { classes[$0].contains(.lineBreak) }) {
            return lastBreak + 1
        }
        // `\s+(?!\S)|\s+`
        return whitespaceEnd(start, end)
    }

    /// `\s+(?!\S)|\s+` at a whitespace character: the whole run if it reaches the end or is one
    /// character long, otherwise all but its last character, which is left to join what follows.
    private func whitespaceEnd(_ start: Int, _ end: Int) -> Int {
        let runEnd = runEnd(start, end) { $0.contains(.whitespace) }
        return runEnd == end || runEnd - start == 1 ? runEnd : runEnd - 1
    }

    private func runEnd(_ start: Int, _ end: Int, while belongs: (CharClass) -> Bool) -> Int {
        var index = start
        while index < end && belongs(classes[index]) { index += 1 }
        return index
    }

    /// The length of `'s|'t|'re|'ve|'m|'ll|'d` at `start`, 0 when none matches.
    private func contractionLength(_ start: Int, _ end: Int, ignoringCase: Bool) -> Int {
        guard scalars[start] == 0x27, start + 1 < end else { return 0 }
        let second = letter(scalars[start + 1], ignoringCase)
        if second == "s" || second == "t" || second == "m" || second == "d" { return 2 }
        guard start + 2 < end else { return 0 }
        let third = letter(scalars[start + 2], ignoringCase)
        if ((second == "r" || second == "v") && third == "e") || (second == "l" && third == "l") { return 3 }
        return 0
    }

    /// The character as an ASCII letter to compare with; under case-insensitive matching its simple
    /// case folding (Oniguruma folds U+017F LONG S to "s", too).
    private func letter(_ scalar: UInt32, _ ignoringCase: Bool) -> Unicode.Scalar {
        guard ignoringCase else { return Unicode.Scalar(scalar) ?? "\u{0}" }
        if scalar >= 0x41 && scalar <= 0x5A { return Unicode.Scalar(scalar + 0x20)! }
        if scalar == 0x17F { return "s" }
        return Unicode.Scalar(scalar) ?? "\u{0}"
    }
}
