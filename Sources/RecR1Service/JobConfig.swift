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
    public var beta: Float = 0                 // GRPO's KL coefficient (0 skips the reference)
    public var epsilonLow: Float = 0.2
    public var epsilonHigh: Float = 0.2
    public var objective = GRPOSettings.Objective.clippedToken   // TOML: "grpo", "gspo" or "cispo"
    public var dpoBeta: Float = 0.1
    public var checkpointEvery = 0             // 0 = at the end only
    /// A step in which more than this fraction of the items got no reward fails the job (a plugin down,
    /// answering errors or NaN): a job that learns from nothing must not end "succeeded".
    public var maxFailedFraction = 0.5
    public var outputDir = ""                  // default <state_dir>/jobs/<name>
    public var seed: UInt64 = 0
    public var plugins: [RewardClient.Settings] = []

    public init() {}

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
        if let v = try toml.int("eval_every", in: 0...1_000_000) { evalEvery = v }
        if let v = try toml.int("eval_limit", in: 1...100_000) { evalLimit = v }
        if let v = try toml.string("algorithm") {
            guard let algorithm = Algorithm(rawValue: v) else { throw ConfigError(key: "algorithm", "'\(v)' is not grpo, dpo or sft") }
            self.algorithm = algorithm
        }
        guard let steps = try toml.int("steps", in: 1...100_000_000) else { throw ConfigError(key: "steps", "a job needs steps") }
        self.steps = steps
        if let v = try toml.int("prompts_per_step", in: 1...100_000) { promptsPerStep = v }
        if let v = try toml.int("samples_per_prompt", in: 1...1024) { samplesPerPrompt = v }
        if let v = try toml.double("temperature", in: 0...100) { temperature = Float(v) }
        if let v = try toml.double("top_p", in: 0...1) { topP = Float(v) }
        if let v = try toml.int("top_k", in: 0...1_000_000) { topK = v }
        if let v = try toml.int("max_new_tokens", in: 1...100_000) { maxNewTokens = v }
        if let v = try toml.strings("stop_strings") { stopStrings = v }
        if let v = try toml.double("learning_rate", in: 0...10) { learningRate = Float(v) }
        if let v = try toml.double("beta", in: 0...1000) { beta = Float(v) }
        if let v = try toml.double("epsilon_low", in: 0...1) { epsilonLow = Float(v) }
        epsilonHigh = try toml.double("epsilon_high", in: 0...10).map(Float.init) ?? epsilonLow
        if let v = try toml.string("objective") {
            let objectives: [String: GRPOSettings.Objective] = ["grpo": .clippedToken, "gspo": .clippedSequence, "cispo": .cispo]
            guard let objective = objectives[v] else { throw ConfigError(key: "objective", "'\(v)' is not grpo, gspo or cispo") }
            self.objective = objective
        }
        if let v = try toml.double("dpo_beta", in: 1e-6...1000) { dpoBeta = Float(v) }
        if let v = try toml.int("checkpoint_every", in: 0...100_000_000) { checkpointEvery = v }
        if let v = try toml.double("max_failed_fraction", in: 0...1) { maxFailedFraction = v }
        outputDir = try toml.string("output_dir").map { try resolve($0, "output_dir") } ?? (stateDir as NSString).appendingPathComponent("jobs/\(name)")
        if let v = try toml.int("seed", in: 0...Int.max) { seed = UInt64(v) }
        for (index, var table) in (try toml.tables("plugins") ?? []).enumerated() {
            let key = "plugins[\(index)]"
            guard let pluginName = try table.string("name") else { throw ConfigError(key: "\(key).name", "a plugin needs a name") }
            guard let addresses = try table.strings("addresses"), !addresses.isEmpty else {
                throw ConfigError(key: "\(key).addresses", "a plugin needs at least one address (ipc://, tcp://)")
            }
            var plugin = RewardClient.Settings(name: pluginName, addresses: addresses)
            if let v = try table.double("weight", in: -1e6...1e6) { plugin.weight = Float(v) }
            if let v = try table.int("timeout_ms", in: 1...3_600_000) { plugin.timeoutMs = v }
            if let v = try table.int("retries", in: 0...100) { plugin.retries = v }
            if let v = try table.int("backoff_ms", in: 0...600_000) { plugin.backoffMs = v }
            if let v = try table.int("batch_size", in: 1...1_000_000) { plugin.batchSize = v }
            plugin.tlsCAFile = try table.string("tls_ca_file").map { try resolve($0, "\(key).tls_ca_file") }
            plugin.tlsServerName = try table.string("tls_server_name")
            if plugin.addresses.contains(where: { $0.hasPrefix("tls+tcp://") }) && plugin.tlsCAFile == nil {
                throw ConfigError(key: "\(key).tls_ca_file", "tls+tcp addresses need the CA certificate that verifies the plugin")
            }
            if let path = try table.string("token_file") {
                plugin.token = try String(contentsOfFile: resolve(path, "\(key).token_file"), encoding: .utf8).trimmingCharacters(in: .whitespacesAndNewlines)
            }
            do {
                try table.rejectUnknownKeys()
            } catch let error as ConfigError {
                throw ConfigError(key: "\(key).\(error.key)", error.message)
            }
            plugins.append(plugin)
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
