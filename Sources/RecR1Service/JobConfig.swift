import Foundation
import RecR1Learning

/// A training job (`recr1d train JOB.toml`, or StartJob): prompts, sampling, the algorithm, the reward
/// plugins, how long, and where its metrics and checkpoints go. Errors name the key.
///
///     name = "fruit"
///     prompts = "train.jsonl"            # one record a line: {"messages": [...]} or {"prompt": "..."},
///                                        # optional "metadata": {...} for the plugins, "completion" for SFT
///     algorithm = "grpo"                 # grpo | dpo (best and worst of the samples) | sft
///     steps = 100
///     prompts_per_step = 4
///     samples_per_prompt = 8
///     max_new_tokens = 128
///     checkpoint_every = 10
///     eval_prompts = "validation.jsonl"  # optional, with eval_every = N
///     [[plugins]]
///     name = "bm25"
///     addresses = ["ipc:///tmp/bm25.sock"]
///     weight = 1.0
public struct JobConfig: Equatable {
    public enum Algorithm: String { case grpo, dpo, sft }

    public var name = ""
    public var prompts = ""
    public var evalPrompts: String?
    public var evalEvery = 0
    public var evalLimit = 32
    public var algorithm = Algorithm.grpo
    public var steps = 0
    public var promptsPerStep = 4
    public var samplesPerPrompt = 8
    public var temperature: Float = 1
    public var topP: Float = 1
    public var topK = 0
    public var maxNewTokens = 128
    public var stopStrings: [String] = []
    public var learningRate: Float = 0         // 0 = the daemon's schedule
    /// The losses' settings: their defaults are the losses' own (GRPOSettings, DPOSettings), the same as an
    /// Update request that leaves a field unset.
    public var grpo = GRPOSettings()
    public var dpo = DPOSettings()
    public var checkpointEvery = 0             // 0 = at the end only
    /// A step in which more than this fraction of the items got no reward fails the job (a plugin down,
    /// answering errors or NaN): a job that learns from nothing must not end "succeeded".
    public var maxFailedFraction = 0.5
    public var outputDir = ""                  // default <state_dir>/jobs/<name>
    public var seed: UInt64 = 0
    public var plugins: [RewardClient.Settings] = []

    public init() {}

    /// The keys of a job file that are plain values, declared once: the reader and
    /// `recr1d config --schema --job` come from this table. (name, the paths and [[plugins]] are read
    /// below: they are checked against the request's allowed paths.)
    public static let settings: [Setting<JobConfig>] = [
        .choice("algorithm", \.algorithm, ["grpo": .grpo, "dpo": .dpo, "sft": .sft],
                "grpo; dpo (the best and the worst of each prompt's samples); sft (the records' completions)."),
        .int("steps", \.steps, 1...100_000_000, "Steps to run (required)."),
        .int("prompts_per_step", \.promptsPerStep, 1...100_000, "Prompts per step."),
        .int("samples_per_prompt", \.samplesPerPrompt, 1...1024, "Samples per prompt: GRPO's group; DPO pairs the best and the worst."),
        .float("temperature", \.temperature, 0...100, "Sampling temperature."),
        .float("top_p", \.topP, 0...1, "Nucleus sampling's mass."),
        .int("top_k", \.topK, 0...1_000_000, "Sample among the k likeliest tokens; 0 = all."),
        .int("max_new_tokens", \.maxNewTokens, 1...100_000, "Most new tokens per sample."),
        .strings("stop_strings", \.stopStrings, "A sample ends after any of these."),
        .float("learning_rate", \.learningRate, 0...10, "0 = the daemon's schedule."),
        .float("beta", \.grpo.beta, 0...1000, "GRPO's KL coefficient; 0 skips the reference pass."),
        .choice("kl_estimator", \.grpo.kl, ["k3": .k3, "k1": .k1, "k2": .k2], "GRPO's KL estimator."),
        .float("epsilon_low", \.grpo.epsilonLow, 0...1, "The ratio's lower clip: 1 - epsilon_low."),
        .float("epsilon_high", \.grpo.epsilonHigh, 0...10, "The ratio's upper clip: 1 + epsilon_high (default epsilon_low; DAPO: 0.28)."),
        .choice("objective", \.grpo.objective, ["grpo": .clippedToken, "gspo": .clippedSequence, "cispo": .cispo],
                "GRPO's policy term: the token ratio (grpo), the sequence ratio (gspo) or CISPO's clipped weight."),
        .choice("advantage_scaling", \.grpo.scaling, ["group": .group, "batch": .batch, "none": .none],
                "Advantages divided by the group's reward std, the batch's, or not at all (Dr. GRPO)."),
        .float("entropy_coefficient", \.grpo.entropyCoefficient, -10...10, "A bonus on the policy's entropy; 0 = off."),
        .choice("flat_groups", \.grpo.dropFlatGroups, ["keep": false, "drop": true],
                "GRPO's groups whose rewards are all equal: kept (plain GRPO) or left out (DAPO's dynamic sampling)."),
        .float("dpo_beta", \.dpo.beta, 1e-6...1000, "DPO's beta."),
        .choice("dpo_loss", \.dpo.kind, ["sigmoid": .sigmoid, "ipo": .ipo], "DPO's loss."),
        .int("checkpoint_every", \.checkpointEvery, 0...100_000_000, "Steps between checkpoints; 0 = at the end only."),
        .number("max_failed_fraction", \.maxFailedFraction, 0...1,
                "A step in which more than this fraction of the items got no reward fails the job."),
        .int("eval_every", \.evalEvery, 0...1_000_000, "Steps between validations on eval_prompts; 0 = none."),
        .int("eval_limit", \.evalLimit, 1...100_000, "Prompts of eval_prompts each validation takes."),
        Setting("seed", .int(0...Int.max), "The order of the prompts, epoch by epoch.",
                get: { .int(Int($0.seed)) }, set: { job, value in if case .int(let v) = value { job.seed = UInt64(v) } }),
    ]

    /// The keys of a [[plugins]] table that are plain values (name, addresses and the files are read below).
    public static let pluginSettings: [Setting<RewardClient.Settings>] = [
        .float("weight", \.weight, -1e6...1e6, "The reward is the sum of weight x reward over the plugins."),
        .int("timeout_ms", \.timeoutMs, 1...3_600_000, "Each call's deadline (sent to the plugin, enforced here)."),
        .int("retries", \.retries, 0...100, "Retries of a failed call, on the next address."),
        .int("backoff_ms", \.backoffMs, 0...600_000, "The wait before the first retry, doubling after."),
        .int("batch_size", \.batchSize, 1...1_000_000, "Items per request; a larger batch is split."),
    ]

    /// Every key of a job file as JSON objects (key, type, range or choices, default, help), for tools;
    /// plugin keys are "plugins[].key".
    public static func schema() -> [[String: Any]] {
        func entry(_ key: String, _ type: String, _ help: String, required: Bool = false) -> [String: Any] {
            ["key": key, "type": type, "help": help, "required": required]
        }
        let defaults = JobConfig()
        let plugin = RewardClient.Settings(name: "", addresses: [])
        return [entry("name", "string", "The job's name: a folder under <state_dir>/jobs; letters, digits, - _ .", required: true),
                entry("prompts", "string", "The prompts file (JSONL), relative to the job file.", required: true),
                entry("eval_prompts", "string", "A validation prompts file (JSONL), with eval_every."),
                entry("output_dir", "string", "Where metrics and checkpoints go; default <state_dir>/jobs/<name>.")]
            + settings.map { $0.schemaEntry(defaults: defaults, withFlag: false) }
            + [entry("plugins[].name", "string", "The plugin's name in the metrics.", required: true),
               entry("plugins[].addresses", "array", "ipc:// or tcp:// (or tls+tcp://) addresses, round-robin.", required: true)]
            + pluginSettings.map { $0.schemaEntry(defaults: plugin, withFlag: false, prefix: "plugins[].") }
            + [entry("plugins[].token_file", "string", "A file with the plugin's shared token."),
               entry("plugins[].tls_ca_file", "string", "For tls+tcp://: the CA certificate(s) the plugin's certificate chains to."),
               entry("plugins[].tls_server_name", "string", "For tls+tcp://: the name the certificate must carry.")]
    }

    /// Reads and checks a job file's text; relative paths are taken from `baseDirectory`. With `paths`
    /// (a job from a request), every file the job names must lie where `paths` allows: the error is an
    /// RPCError whose field is the job file's key.
    public init(text: String, origin: String, baseDirectory: String, stateDir: String, paths: RequestPaths? = nil) throws {
        var toml = try TOMLReader(text: text, origin: origin)
        func resolve(_ path: String, _ key: String) throws -> String {
            guard let paths else { return RequestPaths.absolute(path, from: baseDirectory) }
            return try paths.resolve(path, field: key, from: baseDirectory)
        }
        // The name is a folder under <state_dir>/jobs: it starts with a letter or digit, so that it is
        // never "." or "..".
        guard let name = try toml.string("name"), let first = name.first, first.isLetter || first.isNumber, name.utf8.count <= 128,
              name.allSatisfy({ $0.isASCII && ($0.isLetter || $0.isNumber || $0 == "-" || $0 == "_" || $0 == ".") }) else {
            throw ConfigError(key: "name", "a job needs a name of at most 128 ASCII letters, digits, '-', '_' or '.', starting with a letter or digit")
        }
        self.name = name
        guard let prompts = try toml.string("prompts") else { throw ConfigError(key: "prompts", "a job needs a prompts file (JSONL)") }
        self.prompts = try resolve(prompts, "prompts")
        evalPrompts = try toml.string("eval_prompts").map { try resolve($0, "eval_prompts") }
        let present = try Setting.read(Self.settings, from: &toml, into: &self)
        guard present.contains("steps") else { throw ConfigError(key: "steps", "a job needs steps") }
        // As in an Update request: the upper clip is the lower one unless given.
        if !present.contains("epsilon_high") { grpo.epsilonHigh = grpo.epsilonLow }
        outputDir = try toml.string("output_dir").map { try resolve($0, "output_dir") } ?? (stateDir as NSString).appendingPathComponent("jobs/\(name)")
        for (index, var table) in (try toml.tables("plugins") ?? []).enumerated() {
            let key = "plugins[\(index)]"
            do {
                guard let pluginName = try table.string("name") else { throw ConfigError(key: "name", "a plugin needs a name") }
                guard let addresses = try table.strings("addresses"), !addresses.isEmpty else {
                    throw ConfigError(key: "addresses", "a plugin needs at least one address (ipc://, tcp://)")
                }
                var plugin = RewardClient.Settings(name: pluginName, addresses: addresses)
                try Setting.read(Self.pluginSettings, from: &table, into: &plugin)
                plugin.tlsCAFile = try table.string("tls_ca_file").map { try resolve($0, "\(key).tls_ca_file") }
                plugin.tlsServerName = try table.string("tls_server_name")
                if plugin.addresses.contains(where: { $0.hasPrefix("tls+tcp://") }) && plugin.tlsCAFile == nil {
                    throw ConfigError(key: "tls_ca_file", "tls+tcp addresses need the CA certificate that verifies the plugin")
                }
                if let path = try table.string("token_file") {
                    plugin.token = try String(contentsOfFile: resolve(path, "\(key).token_file"), encoding: .utf8).trimmingCharacters(in: .whitespacesAndNewlines)
                }
                try table.rejectUnknownKeys()
                plugins.append(plugin)
            } catch let error as ConfigError {
                throw ConfigError(key: "\(key).\(error.key)", error.message)
            }
        }
        try toml.rejectUnknownKeys()
        if algorithm != .sft && plugins.isEmpty {
            throw ConfigError(key: "plugins", "\(algorithm.rawValue) needs at least one reward plugin ([[plugins]])")
        }
        if algorithm == .grpo && samplesPerPrompt < 2 {
            throw ConfigError(key: "samples_per_prompt", "GRPO compares samples: at least 2")
        }
        if algorithm == .dpo && samplesPerPrompt < 2 {
            throw ConfigError(key: "samples_per_prompt", "DPO takes the best and worst of several samples: at least 2")
        }
    }

    /// Reads and checks the job file at `path`; its text comes back too, kept beside the job for a resume.
    public static func read(file path: String, stateDir: String, paths: RequestPaths? = nil) throws -> (job: JobConfig, text: String) {
        let text: String
        do {
            text = try String(contentsOfFile: path, encoding: .utf8)
        } catch {
            throw ConfigError(key: "", "cannot read \(path): \(error.localizedDescription)")
        }
        let job = try JobConfig(text: text, origin: path, baseDirectory: (path as NSString).deletingLastPathComponent,
                                stateDir: stateDir, paths: paths)
        return (job, text)
    }
}

/// One line of a job's prompt file.
public struct JobRecord {
    public var messages: [(role: String, content: String)]?
    public var prompt: String?
    public var completion: String?
    public var metadataJSON: String

    /// Reads a JSONL file; a bad line is an error naming the file and line.
    public static func read(_ path: String) throws -> [JobRecord] {
        let text: String
        do {
            text = try String(contentsOfFile: path, encoding: .utf8)
        } catch {
            throw ConfigError(key: "prompts", "cannot read \(path): \(error.localizedDescription)")
        }
        var records: [JobRecord] = []
        for (index, line) in text.split(separator: "\n", omittingEmptySubsequences: false).enumerated() {
            let trimmed = line.trimmingCharacters(in: .whitespaces)
            if trimmed.isEmpty { continue }
            let place = "\((path as NSString).lastPathComponent):\(index + 1)"
            guard let object = try? JSONSerialization.jsonObject(with: Data(trimmed.utf8)) as? [String: Any] else {
                throw ConfigError(key: "prompts", "\(place) is not a JSON object")
            }
            var record = JobRecord(messages: nil, prompt: object["prompt"] as? String,
                                   completion: object["completion"] as? String, metadataJSON: "{}")
            if let messages = object["messages"] as? [[String: Any]] {
                record.messages = try messages.map { message in
                    guard let role = message["role"] as? String, let content = message["content"] as? String else {
                        throw ConfigError(key: "prompts", "\(place): each message needs a role and a content")
                    }
                    return (role, content)
                }
            }
            if record.messages == nil && record.prompt == nil {
                throw ConfigError(key: "prompts", "\(place) has neither \"messages\" nor \"prompt\"")
            }
            if let metadata = object["metadata"] {
                guard JSONSerialization.isValidJSONObject(metadata) else {
                    throw ConfigError(key: "prompts", "\(place): \"metadata\" must be a JSON object")
                }
                record.metadataJSON = String(decoding: try JSONSerialization.data(withJSONObject: metadata, options: [.sortedKeys]), as: UTF8.self)
            }
            records.append(record)
        }
        if records.isEmpty { throw ConfigError(key: "prompts", "\(path) holds no records") }
        return records
    }
}
