import Foundation
import Logging
import RecR1Formats
import RecR1Learning
import RecR1Policy
import RecR1Proto
import RecR1Tokenizer

/// Runs a training job step by step: sample the step's prompts, generate, ask the plugins for rewards,
/// update, append a metrics line, checkpoint. The job's directory holds
///
///     job.toml          the job as given
///     state.json        {"state", "step", "checkpoint", "error"}: where to resume
///     metrics.jsonl     one line per step (and per evaluation)
///     checkpoints/      step-N directories
///
/// After a restart the job continues from its last checkpoint; the steps after it are run again, and their
/// old metrics lines are dropped first, so the file never holds a step twice.
public final class JobRunner {
    public enum State: String { case pending, running, succeeded, failed, stopped }

    public let config: JobConfig
    private let policy: Policy
    private let logger: Logger
    private let plugins: [RewardClient]
    private let records: [JobRecord]
    private let evalRecords: [JobRecord]
    private let lock = NSLock()
    private var stopRequested = false
    private var status = (state: State.pending, step: 0, metrics: [String: Double](), error: "", checkpoint: "", checkpointStep: 0)
    private var lastPluginError: String?

    public init(config: JobConfig, policy: Policy, logger: Logger) throws {
        self.config = config
        self.policy = policy
        self.logger = logger
        plugins = try config.plugins.map(RewardClient.init(settings:))
        records = try JobRecord.read(config.prompts)
        evalRecords = try config.evalPrompts.map { Array(try JobRecord.read($0).prefix(config.evalLimit)) } ?? []
        if config.algorithm == .sft, let bad = records.firstIndex(where: { $0.completion == nil }) {
            throw ConfigError(key: "prompts", "SFT needs a \"completion\" in every record; record \(bad + 1) has none")
        }
    }

    public var snapshot: (state: State, step: Int, metrics: [String: Double], error: String, checkpoint: String, checkpointStep: Int) {
        lock.withLock { status }
    }

    /// Asks the job to stop after the step in progress.
    public func stop() { lock.withLock { stopRequested = true } }

    private var directory: String { config.outputDir }
    private var metricsPath: String { directory + "/metrics.jsonl" }

    /// Runs to the end (or a stop, or a failure); the final state is in `snapshot`.
    public func run() {
        do {
            try prepare()
            try loop()
        } catch {
            lock.withLock {
                status.state = .failed
                status.error = "\(error)"
            }
            logger.error("job \(config.name) failed: \(error)")
            try? writeState()
        }
    }

    private func prepare() throws {
        try FileManager.default.createDirectory(atPath: directory + "/checkpoints", withIntermediateDirectories: true)
        // Resume from the last checkpoint of an earlier run of this job.
        if let data = FileManager.default.contents(atPath: directory + "/state.json"),
           let saved = try? JSONSerialization.jsonObject(with: data) as? [String: Any],
           let checkpoint = saved["checkpoint"] as? String, !checkpoint.isEmpty,
           let step = saved["checkpoint_step"] as? Int, step > 0 {
            _ = try policy.loadCheckpoint(from: checkpoint)
            lock.withLock {
                status.step = step
                status.checkpoint = checkpoint
                status.checkpointStep = step
            }
            try dropMetrics(after: step)
            logger.notice("job \(config.name): resuming at step \(step) from \(checkpoint)")
        }
        lock.withLock { status.state = .running }
        try writeState()
        try preflight()
    }

    /// Before step 1 (and before a resumed step), one call to every plugin with one item of the job's
    /// own: a plugin that is down, hangs past its deadline, answers a status or the wrong number of
    /// results fails the job now, naming the plugin, rather than step after step.
    private func preflight() throws {
        guard config.algorithm != .sft, let record = records.first else { return }
        let prompt = try promptTokens(record)
        var item = Recr1_V1_RewardItem()
        item.prompt = prompt.text
        item.metadataJson = record.metadataJSON
        item.id = "preflight"
        for plugin in plugins {
            let results: [Recr1_V1_RewardResult]
            do {
                results = try plugin.score([item])
            } catch {
                throw JobError(description: "pre-flight: reward plugin '\(plugin.settings.name)' did not answer: \(error)")
            }
            guard results.count == 1 else {
                throw JobError(description: "pre-flight: reward plugin '\(plugin.settings.name)' answered \(results.count) results for 1 item")
            }
        }
        logger.notice("job \(config.name): pre-flight: \(plugins.count) reward plugin(s) answer")
    }

    private func loop() throws {
        let started = Date()
        let first = snapshot.step
        while snapshot.step < config.steps {
            if lock.withLock({ stopRequested }) {
                lock.withLock { status.state = .stopped }
                try writeState()
                logger.notice("job \(config.name) stopped at step \(snapshot.step)")
                return
            }
            let step = snapshot.step + 1
            let stepStart = Date()
            var metrics = try runStep(step)
            metrics["seconds"] = Date().timeIntervalSince(stepStart)
            if config.evalEvery > 0 && step % config.evalEvery == 0 && !evalRecords.isEmpty {
                metrics["eval_reward_mean"] = try evaluate()
            }
            lock.withLock {
                status.step = step
                status.metrics = metrics
            }
            try appendMetrics(step: step, metrics)
            if (config.checkpointEvery > 0 && step % config.checkpointEvery == 0) || step == config.steps {
                let path = directory + "/checkpoints/step-\(step)"
                _ = try policy.saveCheckpoint(to: path)
                lock.withLock {
                    status.checkpoint = path
                    status.checkpointStep = step
                }
            }
            try writeState()
            let done = step - first, perStep = Date().timeIntervalSince(started) / Double(done)
            let timing = String(format: "%.1f s/step, ETA %.0f s", perStep, perStep * Double(config.steps - step))
            let line: String
            if metrics["skipped"] != nil {
                let why = metrics["reward_mean"] == nil ? "no rewards" : "no pair with unequal rewards"
                line = "job \(config.name) step \(step)/\(config.steps) skipped: \(why) (failed items \(Int(metrics["failed_items"] ?? 0)))  \(timing)"
            } else if config.algorithm == .sft {
                line = String(format: "job %@ step %d/%d loss %.4f  ", config.name, step, config.steps, metrics["loss"] ?? 0) + timing
            } else {
                line = String(format: "job %@ step %d/%d reward %.3f loss %.4f kl %.4f failed items %d  ", config.name, step, config.steps,
                              metrics["reward_mean"] ?? 0, metrics["loss"] ?? 0, metrics["kl"] ?? 0, Int(metrics["failed_items"] ?? 0)) + timing
            }
            FileHandle.standardError.write(Data((line + "\n").utf8))
        }
        lock.withLock { status.state = .succeeded }
        try writeState()
    }

    // MARK: One step

    private func promptTokens(_ record: JobRecord) throws -> (tokens: [Int32], text: String) {
        let tokenizer = policy.tokenizer
        if let messages = record.messages {
            let text = try tokenizer.applyChatTemplate(messages.map { ChatMessage(role: $0.role, content: $0.content) },
                                                       addGenerationPrompt: true)
            return (tokenizer.encode(text, addSpecialTokens: false, parseSpecial: true).map(Int32.init), text)
        }
        let text = record.prompt ?? ""
        return (tokenizer.encode(text, addSpecialTokens: true, parseSpecial: true).map(Int32.init), text)
    }

    /// The step's records: the file in a seeded order, epoch after epoch.
    private func batch(for step: Int) -> [JobRecord] {
        var order = Array(records.indices)
        var random = RandomStream(seed: config.seed, stream: UInt64((step - 1) * config.promptsPerStep / records.count))
        for i in stride(from: order.count - 1, to: 0, by: -1) { order.swapAt(i, Int(random.next() % UInt64(i + 1))) }
        return (0..<config.promptsPerStep).map { k in
            records[order[((step - 1) * config.promptsPerStep + k) % records.count]]
        }
    }

    private func runStep(_ step: Int) throws -> [String: Double] {
        let chosen = batch(for: step)
        let prompts = try chosen.map(promptTokens)
        var metrics: [String: Double] = [:]
        let report: Trainer.Report
        switch config.algorithm {
        case .sft:
            let completions = chosen.map { policy.tokenizer.encode($0.completion ?? "", addSpecialTokens: false, parseSpecial: true).map(Int32.init) }
            report = try policy.train { $0.sft(prompts: prompts.map(\.tokens), completions: completions,
                                           learningRate: config.learningRate > 0 ? config.learningRate : nil) }.report
        case .grpo, .dpo:
            var sampling = SamplingSettings()
            sampling.temperature = config.temperature
            sampling.topP = config.topP
            sampling.topK = config.topK
            sampling.maxNewTokens = config.maxNewTokens
            sampling.stopStrings = config.stopStrings
            let generated = try policy.generate(prompts: prompts.map(\.tokens), n: config.samplesPerPrompt, settings: sampling).completions
            var items: [Recr1_V1_RewardItem] = []
            for (p, samples) in generated.enumerated() {
                for (s, sample) in samples.enumerated() {
                    items.append(rewardItem(chosen[p], prompt: prompts[p].text, completion: sample, id: "s\(step)-p\(p)-\(s)"))
                }
            }
            let rewards = score(items, into: &metrics)
            let failed = rewards.filter { $0 == nil }.count
            metrics["failed_items"] = Double(failed)
            if Double(failed) > config.maxFailedFraction * Double(items.count) {
                let fraction = String(format: "%.0f%%", 100 * Double(failed) / Double(max(1, items.count)))
                throw JobError(description: "step \(step): \(failed) of \(items.count) items (\(fraction)) got no reward, above "
                               + "max_failed_fraction \(config.maxFailedFraction)\(lastPluginError.map { "; last plugin error: \($0)" } ?? "")")
            }
            var groups: [[GRPOSample]] = []
            for (p, samples) in generated.enumerated() {
                let group = samples.enumerated().compactMap { s, sample -> GRPOSample? in
                    guard let reward = rewards[p * config.samplesPerPrompt + s], !sample.tokens.isEmpty else { return nil }
                    return GRPOSample(prompt: prompts[p].tokens, completion: sample.tokens, oldLogprobs: sample.logprobs, reward: reward)
                }
                if group.count >= 2 { groups.append(group) }
            }
            let scored = groups.flatMap { $0 }.map { Double($0.reward) }
            if !scored.isEmpty { metrics["reward_mean"] = scored.reduce(0, +) / Double(scored.count) }
            let rate = config.learningRate > 0 ? config.learningRate : nil
            if config.algorithm == .grpo {
                guard !groups.isEmpty else {
                    metrics["skipped"] = 1
                    return metrics
                }
                report = try policy.train { $0.grpo(groups: groups, settings: config.grpo, learningRate: rate) }.report
            } else {
                let pairs = groups.compactMap { group -> PreferencePair? in
                    DPO.bestAndWorst(group.map(\.reward)).map { best, worst in
                        PreferencePair(prompt: group[best].prompt, chosen: group[best].completion, rejected: group[worst].completion)
                    }
                }
                metrics["pairs"] = Double(pairs.count)
                guard !pairs.isEmpty else {
                    metrics["skipped"] = 1
                    return metrics
                }
                report = try policy.train { $0.dpo(pairs: pairs, settings: config.dpo, learningRate: rate) }.report
            }
        }
        metrics["loss"] = report.loss
        metrics["grad_norm"] = Double(report.gradientNorm)
        metrics["learning_rate"] = Double(report.learningRate)
        metrics["applied"] = report.applied ? 1 : 0
        metrics["policy_version"] = Double(policy.version)
        for (key, value) in report.metrics where metrics[key] == nil { metrics[key] = value }
        return metrics
    }

    private func rewardItem(_ record: JobRecord, prompt: String, completion: Completion, id: String) -> Recr1_V1_RewardItem {
        var item = Recr1_V1_RewardItem()
        item.prompt = prompt
        item.promptMessages = (record.messages ?? []).map { message in
            var m = Recr1_V1_ChatMessage()
            m.role = message.role
            m.content = message.content
            return m
        }
        let visible = completion.finish == .stop ? completion.tokens.dropLast() : completion.tokens[...]
        item.completion = policy.tokenizer.decode(visible.map(Int.init))
        item.metadataJson = record.metadataJSON
        item.id = id
        return item
    }

    /// Σ weight · reward over the plugins; an item that any plugin could not score gets none (nil). A
    /// plugin whose whole call fails leaves all its items without reward.
    private func score(_ items: [Recr1_V1_RewardItem], into metrics: inout [String: Double]) -> [Float?] {
        var totals = [Float?](repeating: 0, count: items.count)
        for plugin in plugins {
            do {
                let results = try plugin.score(items)
                for (i, result) in results.enumerated() {
                    if result.hasReward_p && result.reward.isFinite {
                        totals[i] = totals[i].map { $0 + plugin.settings.weight * result.reward }
                    } else {
                        totals[i] = nil
                        if result.hasReward_p { lastPluginError = "\(plugin.settings.name): a non-finite reward (\(result.reward))" }
                    }
                    for (key, value) in result.details { metrics["\(plugin.settings.name).\(key)", default: 0] += value / Double(items.count) }
                }
            } catch {
                lastPluginError = "\(plugin.settings.name): \(error)"
                logger.warning("job \(config.name): plugin \(plugin.settings.name): \(error)")
                metrics["\(plugin.settings.name).failed_calls", default: 0] += 1
                totals = totals.map { _ in nil }
            }
        }
        return totals
    }

    /// Greedy completions of the held-out prompts, scored by the plugins: their mean reward.
    private func evaluate() throws -> Double {
        let prompts = try evalRecords.map(promptTokens)
        var sampling = SamplingSettings()
        sampling.temperature = 0
        sampling.maxNewTokens = config.maxNewTokens
        sampling.stopStrings = config.stopStrings
        let generated = try policy.generate(prompts: prompts.map(\.tokens), n: 1, settings: sampling).completions
        let items = generated.enumerated().map { p, samples in
            rewardItem(evalRecords[p], prompt: prompts[p].text, completion: samples[0], id: "eval-\(p)")
        }
        var ignored: [String: Double] = [:]
        let rewards = score(items, into: &ignored).compactMap { $0 }
        return rewards.isEmpty ? .nan : Double(rewards.reduce(0, +)) / Double(rewards.count)   // NaN: left out of the line
    }

    // MARK: Files

    private func appendMetrics(step: Int, _ metrics: [String: Double]) throws {
        var line: [String: Any] = ["step": step, "job": config.name, "time": ISO8601DateFormatter().string(from: Date())]
        for (key, value) in metrics { line[key] = value.isFinite ? value : nil }
        var data = try JSONSerialization.data(withJSONObject: line, options: [.sortedKeys])
        data.append(0x0A)
        if !FileManager.default.fileExists(atPath: metricsPath) { FileManager.default.createFile(atPath: metricsPath, contents: nil) }
        let handle = try FileHandle(forWritingTo: URL(fileURLWithPath: metricsPath))
        defer { try? handle.close() }
        try handle.seekToEnd()
        try handle.write(contentsOf: data)
        try handle.synchronize()
    }

    private func dropMetrics(after step: Int) throws {
        guard let text = try? String(contentsOfFile: metricsPath, encoding: .utf8) else { return }
        let kept = text.split(separator: "\n").filter { line in
            guard let object = try? JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any],
                  let lineStep = object["step"] as? Int else { return false }
            return lineStep <= step
        }
        try DurableFile.write(Data((kept.joined(separator: "\n") + (kept.isEmpty ? "" : "\n")).utf8), to: metricsPath)
    }

    private func writeState() throws {
        let s = snapshot
        let object: [String: Any] = ["state": s.state.rawValue, "step": s.step, "checkpoint": s.checkpoint,
                                     "checkpoint_step": s.checkpointStep, "error": s.error, "steps": config.steps]
        let data = try JSONSerialization.data(withJSONObject: object, options: [.sortedKeys, .prettyPrinted])
        try DurableFile.write(data, to: directory + "/state.json.partial")
        guard rename(directory + "/state.json.partial", directory + "/state.json") == 0 else {
            throw ConfigError(key: "output_dir", "cannot write \(directory)/state.json")
        }
    }
}

/// Why a job stopped failing: its message is the job's `error`.
struct JobError: Error, CustomStringConvertible {
    let description: String
}
