import Foundation
import RecR1Policy
import RecR1Proto
import RecR1Tokenizer

/// Reads the parts that requests share (prompts, continuations, token ids, counts and lengths) and checks
/// them against the model and the configured limits: INVALID_ARGUMENT naming the field or the limit.
struct RequestReader {
    let policy: Policy
    let config: ServerConfig

    private var tokenizer: Tokenizer { policy.tokenizer }

    func checkCount(_ count: Int, _ field: String, limit: Int, _ limitName: String) throws {
        if count == 0 { throw RPCError.invalidArgument(field, "at least one is needed") }
        if count > limit { throw RPCError.invalidArgument(field, "\(count) exceed \(limitName) (\(limit))") }
    }

    func checkIds(_ ids: [UInt32], field: String) throws {
        if let bad = ids.firstIndex(where: { Int($0) >= tokenizer.vocabularySize }) {
            throw RPCError.invalidArgument("\(field)[\(bad)]",
                                           "token id \(ids[bad]) is not in the vocabulary (size \(tokenizer.vocabularySize))")
        }
    }

    func checkLength(_ tokens: Int, field: String, what: String) throws {
        if tokens > config.maxSequenceTokens {
            throw RPCError.invalidArgument(field, "\(what) exceed max_sequence_tokens (\(config.maxSequenceTokens))")
        }
        if tokens > policy.config.contextLength {
            throw RPCError.invalidArgument(field, "\(what) exceed the model's context length (\(policy.config.contextLength))")
        }
    }

    func render(_ conversation: Recr1_V1_Conversation, field: String, addGenerationPrompt: Bool,
                        defaultSystem: Bool) throws -> String {
        if conversation.messages.isEmpty { throw RPCError.invalidArgument("\(field).messages", "a conversation needs messages") }
        if let bad = conversation.messages.firstIndex(where: { $0.role.isEmpty }) {
            throw RPCError.invalidArgument("\(field).messages[\(bad)].role", "a message needs a role (system, user, assistant)")
        }
        let template: ChatTemplate
        do {
            template = try tokenizer.chatTemplate()
        } catch {
            throw RPCError.failedPrecondition("the model's chat template cannot be applied: \(error)")
        }
        let messages = conversation.messages.map { ChatMessage(role: $0.role, content: $0.content) }
        return template.render(messages, addGenerationPrompt: addGenerationPrompt, defaultSystem: defaultSystem)
    }

    func promptTokens(_ prompt: Recr1_V1_Prompt, field: String) throws -> [Int32] {
        let tokens: [Int32]
        switch prompt.kind {
        case .text(let text):
            tokens = tokenizer.encode(text, addSpecialTokens: true, parseSpecial: true).map(Int32.init)
        case .chat(let conversation):
            let text = try render(conversation, field: "\(field).chat", addGenerationPrompt: true, defaultSystem: true)
            tokens = tokenizer.encode(text, addSpecialTokens: false, parseSpecial: true).map(Int32.init)
        case .tokens(let ids):
            try checkIds(ids.ids, field: "\(field).tokens.ids")
            tokens = ids.ids.map { Int32($0) }
        case nil:
            throw RPCError.invalidArgument(field, "a prompt needs text, chat or tokens")
        }
        if tokens.isEmpty { throw RPCError.invalidArgument(field, "the prompt has no tokens") }
        return tokens
    }

    func continuationTokens(_ continuation: Recr1_V1_Continuation, field: String) throws -> [Int32] {
        let tokens: [Int32]
        switch continuation.kind {
        case .text(let text): tokens = tokenizer.encode(text, addSpecialTokens: false, parseSpecial: true).map(Int32.init)
        case .tokens(let ids):
            try checkIds(ids.ids, field: "\(field).tokens.ids")
            tokens = ids.ids.map { Int32($0) }
        case nil: throw RPCError.invalidArgument(field, "a completion needs text or tokens")
        }
        if tokens.isEmpty { throw RPCError.invalidArgument(field, "the completion has no tokens") }
        return tokens
    }

    func tokenIds(_ ids: [Int32]) -> Recr1_V1_TokenIds {
        var message = Recr1_V1_TokenIds()
        message.ids = ids.map { UInt32($0) }
        return message
    }
}
