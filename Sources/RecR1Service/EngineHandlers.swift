import Foundation
import RecR1Policy
import RecR1Proto
import RecR1Tokenizer

/// Tokenize, Detokenize, ApplyChatTemplate, Generate and Score: each checks its request against the
/// model and the configured limits (INVALID_ARGUMENT naming the field or the limit), then calls the policy.
struct EngineHandlers {
    let policy: Policy
    let config: ServerConfig
    let rollouts: RolloutStore
    let admission: EngineAdmission
    let batcher: GenerateBatcher

    private var tokenizer: Tokenizer { policy.tokenizer }
    private var reader: RequestReader { RequestReader(policy: policy, config: config) }

    func register(in table: inout MethodTable) {
        table.register(PolicyMethod.tokenize.fullName, tokenize)
        table.register(PolicyMethod.detokenize.fullName, detokenize)
        table.register(PolicyMethod.applyChatTemplate.fullName, applyChatTemplate)
        table.register(PolicyMethod.generate.fullName, generate)
        table.register(PolicyMethod.score.fullName, score)
    }

    // MARK: Tokenizer

    func tokenize(_ request: Recr1_V1_TokenizeRequest, _: CallContext) throws -> Recr1_V1_TokenizeReply {
        try reader.checkCount(request.texts.count, "texts", limit: config.maxPromptsPerRequest, "max_prompts_per_request")
        var reply = Recr1_V1_TokenizeReply()
        reply.tokens = request.texts.map { text in
            reader.tokenIds(tokenizer.encode(text, addSpecialTokens: request.addSpecialTokens,
                                      parseSpecial: !request.specialTokensAsText).map(Int32.init))
        }
        return reply
    }

    func detokenize(_ request: Recr1_V1_DetokenizeRequest, _: CallContext) throws -> Recr1_V1_DetokenizeReply {
        try reader.checkCount(request.sequences.count, "sequences", limit: config.maxPromptsPerRequest, "max_prompts_per_request")
        var reply = Recr1_V1_DetokenizeReply()
        reply.texts = try request.sequences.enumerated().map { index, sequence in
            try reader.checkIds(sequence.ids, field: "sequences[\(index)].ids")
            return tokenizer.decode(sequence.ids.map(Int.init), skipSpecialTokens: request.skipSpecialTokens)
        }
        return reply
    }

    func applyChatTemplate(_ request: Recr1_V1_ApplyChatTemplateRequest, _: CallContext) throws -> Recr1_V1_ApplyChatTemplateReply {
        try reader.checkCount(request.conversations.count, "conversations", limit: config.maxPromptsPerRequest, "max_prompts_per_request")
        var reply = Recr1_V1_ApplyChatTemplateReply()
        for (index, conversation) in request.conversations.enumerated() {
            let text = try reader.render(conversation, field: "conversations[\(index)]", addGenerationPrompt: request.addGenerationPrompt,
                                  defaultSystem: !request.noDefaultSystem)
            reply.texts.append(text)
            reply.tokens.append(reader.tokenIds(tokenizer.encode(text, addSpecialTokens: false, parseSpecial: true).map(Int32.init)))
        }
        return reply
    }

    // MARK: Generate

    func generate(_ request: Recr1_V1_GenerateRequest, _ context: CallContext) throws -> Recr1_V1_GenerateReply {
        try reader.checkCount(request.prompts.count, "prompts", limit: config.maxPromptsPerRequest, "max_prompts_per_request")
        let n = request.n == 0 ? 1 : Int(request.n)
        if n > config.maxSamplesPerPrompt {
            throw RPCError.invalidArgument("n", "\(n) samples per prompt exceed max_samples_per_prompt (\(config.maxSamplesPerPrompt))")
        }
        let settings = try samplingSettings(request.sampling)
        let prompts = try request.prompts.enumerated().map { index, prompt in
            let tokens = try reader.promptTokens(prompt, field: "prompts[\(index)]")
            try reader.checkLength(tokens.count + settings.maxNewTokens, field: "prompts[\(index)]",
                            what: "\(tokens.count) prompt tokens + max_new_tokens \(settings.maxNewTokens)")
            return tokens
        }
        let pass = Generator.Request(prompts: prompts, n: n, settings: settings, shouldStop: { context.deadlinePassed })
        let output = try admission.run(context) { deadline in try batcher.generate(pass, deadline: deadline) }
        try context.checkDeadline()
        let (completions, version) = (output.completions, output.version)
        var reply = Recr1_V1_GenerateReply()
        reply.policyVersion = version
        reply.batchedRequests = UInt32(output.batchedRequests)
        reply.results = zip(prompts, completions).map { prompt, samples in
            var result = Recr1_V1_PromptCompletions()
            result.promptTokens = reader.tokenIds(prompt)
            result.completions = samples.map { sample in
                var completion = Recr1_V1_Completion()
                completion.tokenIds = sample.tokens.map { UInt32($0) }
                completion.logprobs = sample.logprobs
                if !request.noStore {
                    completion.rolloutID = rollouts.add(.init(prompt: prompt, completion: sample.tokens,
                                                              logprobs: sample.logprobs, policyVersion: version))
                }
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
        try reader.checkIds(p.stopTokenIds, field: "sampling.stop_token_ids")
        s.stopTokenIds = Set(p.stopTokenIds.map { Int32($0) })
        s.stopStrings = p.stopStrings
        s.ignoreEndTokens = p.ignoreEos
        return s
    }

    // MARK: Score

    func score(_ request: Recr1_V1_ScoreRequest, _ context: CallContext) throws -> Recr1_V1_ScoreReply {
        try reader.checkCount(request.items.count, "items", limit: config.maxPromptsPerRequest, "max_prompts_per_request")
        if case .UNRECOGNIZED(let value) = request.scoreWith {
            throw RPCError.invalidArgument("score_with", "\(value) is not POLICY (0), REFERENCE (1) or BOTH (2)")
        }
        let items = try request.items.enumerated().map { index, item in
            let prompt = try reader.promptTokens(item.prompt, field: "items[\(index)].prompt")
            let completion = try reader.continuationTokens(item.completion, field: "items[\(index)].completion")
            try reader.checkLength(prompt.count + completion.count, field: "items[\(index)]",
                            what: "\(prompt.count) prompt + \(completion.count) completion tokens")
            return (prompt: prompt, completion: completion)
        }
        let scored = try admission.run(context) { deadline in
            try policy.score(items, policy: request.scoreWith != .reference, reference: request.scoreWith != .policy,
                             deadline: deadline)
        }
        try context.checkDeadline()
        var reply = Recr1_V1_ScoreReply()
        reply.policyVersion = scored.version
        reply.results = items.indices.map { i in
            var result = Recr1_V1_ScoreResult()
            result.completionTokenIds = items[i].completion.map { UInt32($0) }
            if !scored.policy.isEmpty { result.policyLogprobs = scored.policy[i] }
            if !scored.reference.isEmpty { result.referenceLogprobs = scored.reference[i] }
            return result
        }
        return reply
    }
}
