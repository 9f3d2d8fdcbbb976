import Foundation
import RecR1Learning
import RecR1Policy
import RecR1Proto

/// Update: a GRPO, DPO or SFT batch → one optimiser step (or one accumulation) → metrics and the new
/// policy version. Every item is read and checked before the engine runs, so a bad request changes nothing.
struct UpdateHandler {
    let policy: Policy
    let config: ServerConfig
    let rollouts: RolloutStore
    let admission: EngineAdmission

    private var reader: RequestReader { RequestReader(policy: policy, config: config) }

    func register(in table: inout MethodTable) {
        table.register(PolicyMethod.update.fullName, update)
    }

    func update(_ request: Recr1_V1_UpdateRequest, _ context: CallContext) throws -> Recr1_V1_UpdateReply {
        if request.learningRate != 0 && !(request.learningRate.isFinite && request.learningRate > 0) {
            throw RPCError.invalidArgument("learning_rate", "must be a positive number (0 = the schedule's), got \(request.learningRate)")
        }
        let rate: Float? = request.learningRate == 0 ? nil : request.learningRate
        let started = ContinuousClock.now
        let step: (Trainer) -> Trainer.Report
        switch request.batch {
        case .grpo(let batch):
            let (groups, settings) = try readGRPO(batch)
            step = { $0.grpo(groups: groups, settings: settings, accumulate: request.accumulate, learningRate: rate) }
        case .dpo(let batch):
            let (pairs, settings, flat) = try readDPO(batch)
            step = { trainer in
                var report = trainer.dpo(pairs: pairs, settings: settings, accumulate: request.accumulate, learningRate: rate)
                report.metrics["groups_flat"] = Double(flat)
                return report
            }
        case .sft(let batch):
            let pairs = try readSFT(batch)
            step = { $0.sft(prompts: pairs.map(\.0), completions: pairs.map(\.1), accumulate: request.accumulate, learningRate: rate) }
        case nil:
            throw RPCError.invalidArgument("batch", "an Update needs a grpo, dpo or sft batch")
        }
        try context.checkDeadline()
        let (report, version) = try admission.run(context) { deadline in try policy.train(deadline: deadline, step) }

        var reply = Recr1_V1_UpdateReply()
        reply.applied = report.applied
        reply.skippedReason = report.skippedReason
        reply.policyVersion = version
        reply.step = UInt64(report.step)
        var m = Recr1_V1_UpdateMetrics()
        m.loss = report.loss
        m.kl = report.metrics["kl"] ?? 0
        m.clipFraction = report.metrics["clip_fraction"] ?? 0
        m.entropy = report.metrics["entropy"] ?? 0
        m.gradNorm = Double(report.gradientNorm)
        m.learningRate = Double(report.learningRate)
        m.tokens = UInt64(report.tokens)
        m.sequences = UInt64(report.sequences)
        m.rewardMean = report.metrics["reward_mean"] ?? 0
        m.rewardStd = report.metrics["reward_std"] ?? 0
        m.chosenRewards = report.metrics["chosen_rewards"] ?? 0
        m.rejectedRewards = report.metrics["rejected_rewards"] ?? 0
        m.margin = report.metrics["margin"] ?? 0
        m.logRatioAbsMean = report.metrics["log_ratio_abs_mean"] ?? 0
        m.logRatioAbsMax = report.metrics["log_ratio_abs_max"] ?? 0
        m.groupsFlat = UInt32(report.metrics["groups_flat"] ?? 0)
        m.pairs = UInt32(report.metrics["pairs"] ?? 0)
        let elapsed = (ContinuousClock.now - started).components
        m.seconds = Double(elapsed.seconds) + Double(elapsed.attoseconds) * 1e-18
        reply.metrics = m
        return reply
    }

    // MARK: Reading the batches

    private func checkItems(_ count: Int, _ field: String) throws {
        if count == 0 { throw RPCError.invalidArgument(field, "at least one is needed") }
        if count > config.maxItemsPerUpdate {
            throw RPCError.invalidArgument(field, "\(count) items exceed max_items_per_update (\(config.maxItemsPerUpdate))")
        }
    }

    private func checkSequence(_ prompt: [Int32], _ completion: [Int32], field: String) throws {
        try reader.checkLength(prompt.count + completion.count, field: field,
                               what: "\(prompt.count) prompt + \(completion.count) completion tokens")
    }

    private func readGRPO(_ batch: Recr1_V1_GrpoBatch) throws -> ([[GRPOSample]], GRPOSettings) {
        let c = batch.config
        var s = GRPOSettings()
        func bounded(_ value: Float, _ field: String, _ range: ClosedRange<Float>) throws -> Float {
            guard value.isFinite, range.contains(value) else {
                throw RPCError.invalidArgument(field, "\(value) is outside \(range.lowerBound)...\(range.upperBound)")
            }
            return value
        }
        if c.hasEpsilonLow { s.epsilonLow = try bounded(c.epsilonLow.value, "grpo.config.epsilon_low", 0...1) }
        s.epsilonHigh = c.hasEpsilonHigh ? try bounded(c.epsilonHigh.value, "grpo.config.epsilon_high", 0...10) : s.epsilonLow
        if c.hasBeta { s.beta = try bounded(c.beta.value, "grpo.config.beta", 0...1000) }
        if c.hasAdvantageEpsilon { s.advantageEpsilon = try bounded(c.advantageEpsilon.value, "grpo.config.advantage_epsilon", 0...1) }
        s.entropyCoefficient = try bounded(c.entropyCoefficient, "grpo.config.entropy_coefficient", -10...10)
        s.dropFlatGroups = c.dropFlatGroups
        switch c.klEstimator {
        case .klK3: s.kl = .k3
        case .klK1: s.kl = .k1
        case .klK2: s.kl = .k2
        case .UNRECOGNIZED(let v): throw RPCError.invalidArgument("grpo.config.kl_estimator", "\(v) is not K3 (0), K1 (1) or K2 (2)")
        }
        switch c.objective {
        case .objectiveClippedToken: s.objective = .clippedToken
        case .objectiveClippedSequence: s.objective = .clippedSequence
        case .objectiveCispo: s.objective = .cispo
        case .UNRECOGNIZED(let v):
            throw RPCError.invalidArgument("grpo.config.objective", "\(v) is not CLIPPED_TOKEN (0), CLIPPED_SEQUENCE (1) or CISPO (2)")
        }
        switch c.advantageScaling {
        case .scaleByGroupStd: s.scaling = .group
        case .scaleByBatchStd: s.scaling = .batch
        case .scaleNone: s.scaling = .none
        case .UNRECOGNIZED(let v):
            throw RPCError.invalidArgument("grpo.config.advantage_scaling", "\(v) is not GROUP_STD (0), BATCH_STD (1) or NONE (2)")
        }

        if batch.groups.isEmpty { throw RPCError.invalidArgument("grpo.groups", "at least one group is needed") }
        try checkItems(batch.groups.reduce(0) { $0 + $1.samples.count }, "grpo.groups")
        let groups = try batch.groups.enumerated().map { g, group -> [GRPOSample] in
            if group.samples.count < 2 {
                throw RPCError.invalidArgument("grpo.groups[\(g)].samples", "a group needs at least 2 samples to compare, has \(group.samples.count)")
            }
            return try group.samples.enumerated().map { i, sample in try readSample(sample, field: "grpo.groups[\(g)].samples[\(i)]") }
        }
        switch c.aggregation {
        case .aggregationTokenMean: s.aggregation = .tokenMean
        case .aggregationSequenceMean: s.aggregation = .sequenceMean
        case .aggregationConstantNormalizer:
            let longest = groups.joined().map(\.completion.count).max() ?? 1
            if c.maxCompletionTokens != 0 && Int(c.maxCompletionTokens) < longest {
                throw RPCError.invalidArgument("grpo.config.max_completion_tokens",
                                               "\(c.maxCompletionTokens) is shorter than the longest completion (\(longest))")
            }
            s.aggregation = .constant(maxTokens: c.maxCompletionTokens == 0 ? longest : Int(c.maxCompletionTokens))
        case .UNRECOGNIZED(let v):
            throw RPCError.invalidArgument("grpo.config.aggregation", "\(v) is not TOKEN_MEAN (0), SEQUENCE_MEAN (1) or CONSTANT_NORMALIZER (2)")
        }
        return (groups, s)
    }

    /// One scored sample of a GRPO group or a DPO group: a rollout from the store or explicit tokens.
    private func readSample(_ sample: Recr1_V1_GrpoSample, field: String) throws -> GRPOSample {
        guard sample.reward.isFinite else { throw RPCError.invalidArgument("\(field).reward", "must be finite, got \(sample.reward)") }
        switch sample.source {
        case .rolloutID(let id):
            guard let rollout = rollouts.get(id) else {
                throw RPCError.notFound("\(field).rollout_id",
                                        "rollout '\(id)' is not in the store (evicted, never generated, or from an earlier run)")
            }
            if rollout.completion.isEmpty {
                throw RPCError.invalidArgument("\(field).rollout_id", "rollout '\(id)' has no completion tokens")
            }
            return GRPOSample(prompt: rollout.prompt, completion: rollout.completion, oldLogprobs: rollout.logprobs,
                              reward: sample.reward)
        case .explicit(let explicit):
            try reader.checkIds(explicit.promptTokens.ids, field: "\(field).explicit.prompt_tokens.ids")
            try reader.checkIds(explicit.completionTokens.ids, field: "\(field).explicit.completion_tokens.ids")
            let prompt = explicit.promptTokens.ids.map { Int32($0) }, completion = explicit.completionTokens.ids.map { Int32($0) }
            if prompt.isEmpty { throw RPCError.invalidArgument("\(field).explicit.prompt_tokens", "the prompt has no tokens") }
            if completion.isEmpty { throw RPCError.invalidArgument("\(field).explicit.completion_tokens", "the completion has no tokens") }
            if !explicit.oldLogprobs.isEmpty && explicit.oldLogprobs.count != completion.count {
                throw RPCError.invalidArgument("\(field).explicit.old_logprobs",
                                               "\(explicit.oldLogprobs.count) log-probs for \(completion.count) completion tokens")
            }
            if let bad = explicit.oldLogprobs.firstIndex(where: { !$0.isFinite || $0 > 0 }) {
                throw RPCError.invalidArgument("\(field).explicit.old_logprobs[\(bad)]",
                                               "a log-prob must be finite and <= 0, got \(explicit.oldLogprobs[bad])")
            }
            try checkSequence(prompt, completion, field: field)
            return GRPOSample(prompt: prompt, completion: completion,
                              oldLogprobs: explicit.oldLogprobs.isEmpty ? nil : explicit.oldLogprobs, reward: sample.reward)
        case nil:
            throw RPCError.invalidArgument(field, "a sample needs a rollout_id or an explicit sample")
        }
    }

    private func readDPO(_ batch: Recr1_V1_DpoBatch) throws -> ([PreferencePair], DPOSettings, flat: Int) {
        var s = DPOSettings()
        if batch.config.hasBeta {
            let beta = batch.config.beta.value
            guard beta.isFinite, beta > 0 else { throw RPCError.invalidArgument("dpo.config.beta", "must be > 0, got \(beta)") }
            s.beta = beta
        }
        let smoothing = batch.config.labelSmoothing
        guard smoothing.isFinite, (0..<0.5).contains(smoothing) else {
            throw RPCError.invalidArgument("dpo.config.label_smoothing", "must be in [0, 0.5), got \(smoothing)")
        }
        s.labelSmoothing = smoothing
        switch batch.config.loss {
        case .dpoSigmoid: s.kind = .sigmoid
        case .dpoIpo: s.kind = .ipo
        case .UNRECOGNIZED(let v): throw RPCError.invalidArgument("dpo.config.loss", "\(v) is not SIGMOID (0) or IPO (1)")
        }
        try checkItems(batch.pairs.count + batch.groups.reduce(0) { $0 + $1.samples.count },
                       batch.groups.isEmpty ? "dpo.pairs" : "dpo.groups")
        var pairs = try batch.pairs.enumerated().map { i, pair in
            let field = "dpo.pairs[\(i)]"
            let prompt = try reader.promptTokens(pair.prompt, field: "\(field).prompt")
            let chosen = try reader.continuationTokens(pair.chosen, field: "\(field).chosen")
            let rejected = try reader.continuationTokens(pair.rejected, field: "\(field).rejected")
            try checkSequence(prompt, chosen, field: "\(field).chosen")
            try checkSequence(prompt, rejected, field: "\(field).rejected")
            return PreferencePair(prompt: prompt, chosen: chosen, rejected: rejected)
        }
        var flat = 0
        for (g, group) in batch.groups.enumerated() {
            let samples = try group.samples.enumerated().map { i, sample in try readSample(sample, field: "dpo.groups[\(g)].samples[\(i)]") }
            guard let (best, worst) = DPO.bestAndWorst(samples.map(\.reward)) else { flat += 1; continue }
            pairs.append(PreferencePair(prompt: samples[best].prompt, chosen: samples[best].completion, rejected: samples[worst].completion))
        }
        return (pairs, s, flat)
    }

    private func readSFT(_ batch: Recr1_V1_SftBatch) throws -> [([Int32], [Int32])] {
        try checkItems(batch.pairs.count, "sft.pairs")
        return try batch.pairs.enumerated().map { i, pair in
            let prompt = try reader.promptTokens(pair.prompt, field: "sft.pairs[\(i)].prompt")
            let completion = try reader.continuationTokens(pair.completion, field: "sft.pairs[\(i)].completion")
            try checkSequence(prompt, completion, field: "sft.pairs[\(i)]")
            return (prompt, completion)
        }
    }
}
