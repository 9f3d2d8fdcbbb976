import Foundation
import RecR1Policy
import RecR1Proto
import RecR1Tokenizer

/// Tokenize, Detokenize, ApplyChatTemplate, Generate and Score: each checks its request against the
/// model and the configured limits (INVALID_ARGUMENT naming the field or the limit), then calls the policy.
struct EngineHandlers {
    let policy: Policy
    let config: ServerConfig

    private var tokenizer: Tokenizer { policy.tokenizer }

    func register(in table: inout MethodTable) {
        table.register(PolicyMethod.tokenize.fullName, tokenize)
        table.register(PolicyMethod.detokenize.fullName, detokenize)
        table.register(PolicyMethod.applyChatTemplate.fullName, applyChatTemplate)
        table.register(PolicyMethod.generate.fullName, generate)
        table.register(PolicyMethod.score.fullName, score)
    }

    // MARK: Tokenizer

    func tokenize(_ request: Recr1_V1_TokenizeRequest, _: CallContext) throws -> Recr1_V1_TokenizeReply {
        try checkCount(request.texts.count, "texts", limit: config.maxPromptsPerRequest, "max_prompts_per_request")
        var reply = Recr1_V1_TokenizeReply()
        reply.tokens = request.texts.map { text in
            tokenIds(tokenizer.encode(text, addSpecialTokens: request.addSpecialTokens,
                                      parseSpecial: !request.specialTokensAsText).map(Int32.init))
        }
        return reply
    }

    func detokenize(_ request: Recr1_V1_DetokenizeRequest, _: CallContext) throws -> Recr1_V1_DetokenizeReply {
        try checkCount(request.sequences.count, "sequences", limit: config.maxPromptsPerRequest, "max_prompts_per_request")
        var reply = Recr1_V1_DetokenizeReply()
        reply.texts = try request.sequences.enumerated().map { index, sequence in
            try checkIds(sequence.ids, field: "sequences[\(index)].ids")
            return tokenizer.decode(sequence.ids.map(Int.init), skipSpecialTokens: request.skipSpecialTokens)
        }
        return reply
    }

    func applyChatTemplate(_ request: Recr1_V1_ApplyChatTemplateRequest, _: CallContext) throws -> Recr1_V1_ApplyChatTemplateReply {
        try checkCount(request.conversations.count, "conversations", limit: config.maxPromptsPerRequest, "max_prompts_per_request")
        var reply = Recr1_V1_ApplyChatTemplateReply()
        for (index, conversation) in request.conversations.enumerated() {
            let text = try render(conversation, field: "conversations[\(index)]", addGenerationPrompt: request.addGenerationPrompt,
                                  defaultSystem: !request.noDefaultSystem)
            reply.texts.append(text)
            reply.tokens.append(tokenIds(tokenizer.encode(text, addSpecialTokens: false, parseSpecial: true).map(Int32.init)))
        }
        return reply
    }

    // MARK: Generate

    func generate(_ request: Recr1_V1_GenerateRequest, _ context: CallContext) throws -> Recr1_V1_GenerateReply {
        try checkCount(request.prompts.count, "prompts", limit: config.maxPromptsPerRequest, "max_prompts_per_request")
        let n = request.n == 0 ? 1 : Int(request.n)
        if n > config.maxSamplesPerPrompt {
            throw RPCError.invalidArgument("n", "\(n) samples per prompt exceed max_samples_per_prompt (\(config.maxSamplesPerPrompt))")
        }
        let settings = try samplingSettings(request.sampling)
        let prompts = try request.prompts.enumerated().map { index, prompt in
            let tokens = try promptTokens(prompt, field: "prompts[\(index)]")
            try checkLength(tokens.count + settings.maxNewTokens, field: "prompts[\(index)]",
                            what: "\(tokens.count) prompt tokens + max_new_tokens \(settings.maxNewTokens)")
            return tokens
        }
        let (completions, version) = policy.generate(prompts: prompts, n: n, settings: settings,
                                                     shouldStop: { context.deadlinePassed })
        try context.checkDeadline()
        var reply = Recr1_V1_GenerateReply()
        reply.policyVersion = version
        reply.results = zip(prompts, completions).map { prompt, samples in
            var result = Recr1_V1_PromptCompletions()
            result.promptTokens = tokenIds(prompt)
            result.completions = samples.map { sample in
                var completion = Recr1_V1_Completion()
                completion.tokenIds = sample.tokens.map { UInt32($0) }
                completion.logprobs = sample.logprobs
                // The text leaves out the end token that stopped the sample (its id stays in token_ids).
                let visible = sample.finish == .stop ? sample.tokens.dropLast() : sample.tokens[...]
                completion.text = tokenizer.decode(visible.map(Int.init))
                completion.finishReason = switch sample.finish {
                case .stop: .stop
                case .length: .length
                case .stopString: .stopString
                }
                return completion
            }
            return result
        }
        return reply
    }

    func samplingSettings(_ p: Recr1_V1_SamplingParams) throws -> SamplingSettings {
        var s = SamplingSettings()
        guard p.temperature.isFinite, p.temperature >= 0 else {
            throw RPCError.invalidArgument("sampling.temperature", "must be finite and >= 0 (0 = greedy), got \(p.temperature)")
        }
        guard p.topP.isFinite, (0...1).contains(p.topP) else {
            throw RPCError.invalidArgument("sampling.top_p", "must be in [0, 1] (0 or 1 = off), got \(p.topP)")
        }
        if p.maxNewTokens > config.maxNewTokens {
            throw RPCError.invalidArgument("sampling.max_new_tokens",
                                           "\(p.maxNewTokens) exceeds max_new_tokens (\(config.maxNewTokens))")
        }
        s.temperature = p.temperature
        s.topK = Int(p.topK)
        s.topP = p.topP == 0 ? 1 : p.topP
        s.seed = p.hasSeed ? p.seed.value : nil
        s.maxNewTokens = p.maxNewTokens == 0 ? min(256, config.maxNewTokens) : Int(p.maxNewTokens)
        try checkIds(p.stopTokenIds, field: "sampling.stop_token_ids")
        s.stopTokenIds = Set(p.stopTokenIds.map { Int32($0) })
        s.stopStrings = p.stopStrings
        return s
    }

    // MARK: Score

    func score(_ request: Recr1_V1_ScoreRequest, _ context: CallContext) throws -> Recr1_V1_ScoreReply {
        try checkCount(request.items.count, "items", limit: config.maxPromptsPerRequest, "max_prompts_per_request")
        if case .UNRECOGNIZED(let value) = request.scoreWith {
            throw RPCError.invalidArgument("score_with", "\(value) is not POLICY (0), REFERENCE (1) or BOTH (2)")
        }
        let items = try request.items.enumerated().map { index, item in
            let prompt = try promptTokens(item.prompt, field: "items[\(index)].prompt")
            let completion = try continuationTokens(item.completion, field: "items[\(index)].completion")
            try checkLength(prompt.count + completion.count, field: "items[\(index)]",
                            what: "\(prompt.count) prompt + \(completion.count) completion tokens")
            return (prompt: prompt, completion: completion)
        }
        let (logprobs, version) = policy.score(items)
        try context.checkDeadline()
        var reply = Recr1_V1_ScoreReply()
        reply.policyVersion = version
        reply.results = zip(items, logprobs).map { item, values in
            var result = Recr1_V1_ScoreResult()
            result.completionTokenIds = item.completion.map { UInt32($0) }
            // No training has happened in this build, so the policy is the reference.
            if request.scoreWith != .reference { result.policyLogprobs = values }
            if request.scoreWith != .policy { result.referenceLogprobs = values }
            return result
        }
        return reply
    }

    // MARK: Checks and conversions

    private func checkCount(_ count: Int, _ field: String, limit: Int, _ limitName: String) throws {
        if count == 0 { throw RPCError.invalidArgument(field, "at least one is needed") }
        if count > limit { throw RPCError.invalidArgument(field, "\(count) exceed \(limitName) (\(limit))") }
    }

    private func checkIds(_ ids: [UInt32], field: String) throws {
        if let bad = ids.firstIndex(where: { Int($0) >= tokenizer.vocabularySize }) {
            throw RPCError.invalidArgument("\(field)[\(bad)]",
                                           "token id \(ids[bad]) is not in the vocabulary (size \(tokenizer.vocabularySize))")
        }
    }

    private func checkLength(_ tokens: Int, field: String, what: String) throws {
        if tokens > config.maxSequenceTokens {
            throw RPCError.invalidArgument(field, "\(what) exceed max_sequence_tokens (\(config.maxSequenceTokens))")
        }
        if tokens > policy.config.contextLength {
            throw RPCError.invalidArgument(field, "\(what) exceed the model's context length (\(policy.config.contextLength))")
        }
    }

    private func render(_ conversation: Recr1_V1_Conversation, field: String, addGenerationPrompt: Bool,
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

    private func promptTokens(_ prompt: Recr1_V1_Prompt, field: String) throws -> [Int32] {
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

    private func continuationTokens(_ continuation: Recr1_V1_Continuation, field: String) throws -> [Int32] {
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

    private func tokenIds(_ ids: [Int32]) -> Recr1_V1_TokenIds {
        var message = Recr1_V1_TokenIds()
        message.ids = ids.map { UInt32($0) }
        return message
    }
}
