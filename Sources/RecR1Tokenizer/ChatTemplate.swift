import Foundation
import RecR1Formats

public struct ChatMessage: Equatable, Sendable {
    public var role: String
    public var content: String

    public init(role: String, content: String) {
        self.role = role
        self.content = content
    }
}

/// A chat template rendered natively instead of by a Jinja engine. The one format recr1 knows is
/// ChatML, which SmolLM2 and Qwen2 use:
///
///     <|im_start|>{role}\n{content}<|im_end|>\n        for each message
///     <|im_start|>assistant\n                           with a generation prompt
///
/// and, when the template has one, a default system message inserted before a conversation whose
/// first message is not a system message (SmolLM2: "You are a helpful AI assistant named SmolLM,
/// trained by Hugging Face").
public struct ChatTemplate: Sendable {
    public let source: String
    public let defaultSystemMessage: String?

    /// Recognises the template text, or throws saying it is not one recr1 can render.
    public init(_ source: String) throws {
        let compact = Self.compact(source)
        // The message line and the generation prompt, as the template writes them.
        let messageLine = #"'<|im_start|>'+message['role']+'\n'+message['content']+'<|im_end|>'+'\n'"#
        let generationPrompt = #"'<|im_start|>assistant\n'"#
        guard compact.contains(messageLine), compact.contains(generationPrompt), compact.contains("add_generation_prompt") else {
            throw FormatError("chat template", "not a ChatML template recr1 can render (it expects "
                + "'<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n' per message "
                + "and '<|im_start|>assistant\\n' as the generation prompt): \(source.prefix(200))")
        }
        self.source = source
        defaultSystemMessage = Self.defaultSystemMessage(in: source)
    }

    /// The conversation as the template writes it. `defaultSystem: false` leaves out the default
    /// system message (a choice the Jinja template does not offer).
    public func render(_ messages: [ChatMessage], addGenerationPrompt: Bool, defaultSystem: Bool = true) -> String {
        var text = ""
        if defaultSystem, let defaultSystemMessage, let first = messages.first, first.role != "system" {
            text += "<|im_start|>system\n\(defaultSystemMessage)<|im_end|>\n"
        }
        for message in messages {
            text += "<|im_start|>\(message.role)\n\(message.content)<|im_end|>\n"
        }
        if addGenerationPrompt { text += "<|im_start|>assistant\n" }
        return text
    }

    /// The template with spaces dropped, one quote style, `message.role` as `message['role']`, and
    /// line breaks inside string literals written as the escape `\n`, so that spellings of the same
    /// template compare equal.
    private static func compact(_ source: String) -> String {
        var text = source.replacingOccurrences(of: "\"", with: "'")
        text = text.replacingOccurrences(of: "\n", with: "\\n")
        text = text.replacingOccurrences(of: " ", with: "")
        text = text.replacingOccurrences(of: "message.role", with: "message['role']")
        text = text.replacingOccurrences(of: "message.content", with: "message['content']")
        return text
    }

    /// The text of a string literal `'<|im_start|>system\n...<|im_end|>...'` in the template: the
    /// system message it writes for conversations that bring none. A literal that stops before
    /// `<|im_end|>` (as in `'<|im_start|>system\n' + messages[0]['content']`) is not a default.
    private static func defaultSystemMessage(in source: String) -> String? {
        for opening in ["<|im_start|>system\n", "<|im_start|>system\\n"] {
            var searchStart = source.startIndex
            while let found = source.range(of: opening, range: searchStart..<source.endIndex) {
                searchStart = found.upperBound
                guard let end = source.range(of: "<|im_end|>", range: found.upperBound..<source.endIndex) else { break }
                if let message = literalText(source[found.upperBound..<end.lowerBound]) { return message }
            }
        }
        return nil
    }

    /// The text of what should be the inside of one string literal, with Jinja's escapes undone; nil
    /// when an unescaped quote or a `{` shows that the literal ended and code began.
    private static func literalText(_ literal: Substring) -> String? {
        var text = ""
        var escaped = false
        for character in literal {
            if escaped {
                switch character {
                case "n": text.append("\n")
                case "t": text.append("\t")
                default: text.append(character)
                }
                escaped = false
            } else if character == "\\" {
                escaped = true
            } else if character == "'" || character == "\"" || character == "{" {
                return nil
            } else {
                text.append(character)
            }
        }
        return text
    }
}
