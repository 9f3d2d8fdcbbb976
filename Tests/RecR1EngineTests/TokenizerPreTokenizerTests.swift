import XCTest

@testable import RecR1Tokenizer

/// The pre-tokenizers on cases whose pieces follow from their regexes by hand. A regex engine tries
/// the alternatives in order at each position and takes the first that matches; the comments say
/// which alternative makes each piece.
final class TokenizerPreTokenizerTests: XCTestCase {
    func pieces(_ kind: PreTokenizerKind, _ text: String) -> [String] {
        var text = text
        return text.withUTF8 { utf8 in
            var scalars = ScalarText()
            scalars.load(utf8)
            var ranges: [Range<Int>] = []
            kind.split(scalars, into: &ranges)
            return ranges.map { range in
                String(decoding: utf8[scalars.byteOffsets[range.lowerBound]..<scalars.byteOffsets[range.upperBound]], as: UTF8.self)
            }
        }
    }

    // GPT-2: 's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+

    func testGPT2() {
        // ` ?\p{L}+`: a word takes the one space before it.
        XCTAssertEqual(pieces(.gpt2, "Hello world"), ["Hello", " world"])
        // Contractions come first at an apostrophe; they are case-sensitive, so "'M" is not one and
        // "'" falls to ` ?[^\s\p{L}\p{N}]+`.
        XCTAssertEqual(pieces(.gpt2, "don't we'll"), ["don", "'t", " we", "'ll"])
        XCTAssertEqual(pieces(.gpt2, "I'M"), ["I", "'", "M"])
        // `\s+(?!\S)` stops one short of a following word, which then takes that space.
        XCTAssertEqual(pieces(.gpt2, "a   b"), ["a", "  ", " b"])
        // ...unless the run ends the text.
        XCTAssertEqual(pieces(.gpt2, "x   "), ["x", "   "])
        // A single whitespace character before a word that is not a space: `\s+(?!\S)` fails, `\s+` takes it.
        XCTAssertEqual(pieces(.gpt2, "a\tb"), ["a", "\t", "b"])
        // The run "\t\t" before x: the first tab by `\s+(?!\S)`, the second by `\s+`.
        XCTAssertEqual(pieces(.gpt2, "\t\tx"), ["\t", "\t", "x"])
        // Newlines are whitespace like any other: " \n " before b keeps its last space for " b".
        XCTAssertEqual(pieces(.gpt2, "a \n b"), ["a", " \n", " b"])
        // Numbers are runs of \p{N} with an optional space; punctuation runs likewise.
        XCTAssertEqual(pieces(.gpt2, "pi 3.14!!"), ["pi", " 3", ".", "14", "!!"])
        XCTAssertEqual(pieces(.gpt2, " 123abc"), [" 123", "abc"])
        XCTAssertEqual(pieces(.gpt2, "Hi!!! ok"), ["Hi", "!!!", " ok"])
        // A space before an apostrophe joins the punctuation run, and the contraction is lost.
        XCTAssertEqual(pieces(.gpt2, "x 's"), ["x", " '", "s"])
        // U+00A0 is \s but not the space the optional ` ?` means, so it is its own piece.
        XCTAssertEqual(pieces(.gpt2, "a\u{A0}b"), ["a", "\u{A0}", "b"])
        // Letters of any script; marks (U+0301, category Mn) are not \p{L}.
        XCTAssertEqual(pieces(.gpt2, "Привет мир"), ["Привет", " мир"])
        XCTAssertEqual(pieces(.gpt2, "e\u{301}x"), ["e", "\u{301}", "x"])
        XCTAssertEqual(pieces(.gpt2, ""), [])
    }

    func testSmolLMSplitsDigitsFirst() {
        // Every \p{N} character is cut out first; GPT-2 then runs on each stretch between, where the
        // end of a stretch is the end of text to `\s+(?!\S)`.
        XCTAssertEqual(pieces(.smollm, "2024"), ["2", "0", "2", "4"])
        // "a  1": the stretch "a  " -> "a", "  " (the run ends the stretch, so it is kept whole).
        XCTAssertEqual(pieces(.smollm, "a  1"), ["a", "  ", "1"])
        // GPT-2 alone would give the last space to the number instead.
        XCTAssertEqual(pieces(.gpt2, "a  1"), ["a", " ", " 1"])
        XCTAssertEqual(pieces(.smollm, " 12 ab"), [" ", "1", "2", " ab"])
        // Other numerals are numbers too: Arabic-Indic digits (Nd), superscript two (No).
        XCTAssertEqual(pieces(.smollm, "x²١٢"), ["x", "²", "١", "٢"])
    }

    // Qwen2: (?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+

    func testQwen2() {
        XCTAssertEqual(pieces(.qwen2, "Hello world"), ["Hello", " world"])
        // Contractions ignore case.
        XCTAssertEqual(pieces(.qwen2, "I'M DON'T"), ["I", "'M", " DON", "'T"])
        // Any one character that is not a line break, letter or number may lead a word.
        XCTAssertEqual(pieces(.qwen2, "(abc \tdef"), ["(abc", " ", "\tdef"])
        // One digit at a time.
        XCTAssertEqual(pieces(.qwen2, "12345"), ["1", "2", "3", "4", "5"])
        // `\s*[\r\n]+` ends at the last line break of a whitespace run; then "  y" -> " ", " y".
        XCTAssertEqual(pieces(.qwen2, "x\n\n  y"), ["x", "\n\n", " ", " y"])
        XCTAssertEqual(pieces(.qwen2, "x \r\n\ty"), ["x", " \r\n", "\ty"])
        // Punctuation takes the line breaks after it.
        XCTAssertEqual(pieces(.qwen2, "!!\n\nx"), ["!!\n\n", "x"])
        XCTAssertEqual(pieces(.qwen2, "a ?!"), ["a", " ?!"])
    }

    func testLlama3GroupsDigitsByThree() {
        XCTAssertEqual(pieces(.llama3, "12345"), ["123", "45"])
        // " 1234": the space is no word lead (1 is not a letter), no punctuation, and a one-character
        // run before a non-space: `\s+` takes it alone.
        XCTAssertEqual(pieces(.llama3, "abc 1234"), ["abc", " ", "123", "4"])
        XCTAssertEqual(pieces(.llama3, "you'RE"), ["you", "'RE"])
    }

    func testUnicodeVersionsOfHFTokenizers() {
        // HF's regexes run on Oniguruma's Unicode 16.0 tables: U+0C5C (a Telugu letter new in Unicode
        // 17.0) is unassigned there, so it is `[^\s\p{L}\p{N}]` and splits the word.
        XCTAssertEqual(pieces(.gpt2, "a\u{C5C}b"), ["a", "\u{C5C}", "b"])
        // HF's Digits step uses Rust's char::is_numeric, which knows the Unicode 17.0 digits U+11DE0...
        // (the GPT-2 regex after it does not, but a digit on its own is a piece either way).
        XCTAssertEqual(pieces(.smollm, "a\u{11DE0}b"), ["a", "\u{11DE0}", "b"])
    }

    func testGGUFNames() {
        XCTAssertEqual(PreTokenizerKind(ggufName: "smollm"), .smollm)
        XCTAssertEqual(PreTokenizerKind(ggufName: "gpt2"), .gpt2)
        XCTAssertEqual(PreTokenizerKind(ggufName: "qwen2"), .qwen2)
        XCTAssertEqual(PreTokenizerKind(ggufName: "llama-bpe"), .llama3)
        XCTAssertNil(PreTokenizerKind(ggufName: "deepseek-llm"))
    }
}
