import Foundation
import Logging

/// Every setting of `recr1d serve`. The config file (TOML) uses the same names as the flags, with `_`
/// for `-` (`--max-message-bytes` <-> `max_message_bytes`). Defaults, then the file, then flags.
public struct ServerConfig: Equatable {
    /// The policy: a GGUF file or a Hugging Face directory. Empty = SmolLM2-135M-Instruct from its Python
    /// package (`DefaultModel`); "none" = serve without a model (Info and Health only).
    public var model = ""
    /// Addresses to listen on; empty means the default ipc socket (`ListenAddress.defaultIPCPath`).
    public var listen: [String] = []
    /// Concurrent requests: one nng context and one thread each.
    public var workers = 4
    public var maxMessageBytes = 16 << 20
    public var maxPromptsPerRequest = 256
    public var maxSamplesPerPrompt = 64
    public var maxNewTokens = 2048
    public var maxSequenceTokens = 8192
    public var maxItemsPerUpdate = 4096
    /// Requests that may wait for the engine behind the one it runs; more get RESOURCE_EXHAUSTED.
    public var maxQueuedRequests = 64
    /// Concurrent Generate requests share an engine pass while sequences × (longest prompt + max new
    /// tokens) stays within this many KV-cache positions (46 KB each with SmolLM2); 0 = one request a pass.
    public var maxBatchTokens = 32768
    /// A file holding the shared token that every request must carry; nil = no token.
    public var tokenFile: String?
    /// A PEM file with the certificate and private key for tls+tcp listen addresses.
    public var tlsCertKeyFile: String?
    /// Where checkpoints, job state and metrics go.
    public var stateDir = ServerConfig.defaultStateDir()
    /// Directories beyond the state dir that request paths may name: checkpoints, exports, job files and
    /// the files they name (RequestPaths). Empty = the state dir alone.
    public var allowedDirs: [String] = []
    public var logLevel = Logger.Level.info
    /// OpenBLAS threads; 0 = one per core.
    public var blasThreads = 0
    /// openblas, onednn-f32 or onednn-bf16 for large products; empty = the fastest this CPU supports.
    public var matmulBackend = ""
    /// Training: mode, optimiser, schedule, memory budget, seed, rollout store.
    public var training = TrainingConfig()

    public init() {}

    public static func defaultStateDir(environment: [String: String] = ProcessInfo.processInfo.environment) -> String {
        if let state = environment["STATE_DIRECTORY"], !state.isEmpty { return state }  // systemd StateDirectory=
        if let home = environment["HOME"], !home.isEmpty { return "\(home)/.local/state/recr1d" }
        return "/tmp/recr1d-\(getuid())/state"
    }

    /// The listen addresses, parsed and normalised (tcp without a host binds to loopback).
    public func listenAddresses() throws -> [ListenAddress] {
        listen.isEmpty ? [ListenAddress.defaultAddress] : try listen.map(ListenAddress.init(parsing:))
    }

    /// Where request paths may point: the state dir and `allowedDirs`, resolved now.
    public func requestPaths() -> RequestPaths {
        RequestPaths(stateDir: stateDir, allowedDirs: allowedDirs)
    }

    /// The token from `tokenFile`, with surrounding whitespace removed.
    public func authToken() throws -> String? {
        guard let tokenFile else { return nil }
        let token: String
        do {
            token = try String(contentsOfFile: tokenFile, encoding: .utf8)
                .trimmingCharacters(in: .whitespacesAndNewlines)
        } catch {
            throw ConfigError(key: "token_file", "cannot read \(tokenFile): \(error.localizedDescription)")
        }
        if token.isEmpty { throw ConfigError(key: "token_file", "\(tokenFile) is empty") }
        return token
    }

    /// Transport-level cap: frames up to this size reach the dispatcher, which answers the ones above
    /// `maxMessageBytes` with a status; nng drops the connection of anything larger still.
    public var transportMaxBytes: Int { max(2 * maxMessageBytes, maxMessageBytes + (16 << 20)) }

    /// Applies the settings present in a TOML file.
    public mutating func merge(file path: String) throws {
        var toml = try TOMLReader(file: path)
        if let v = try toml.string("model") { model = v }
        if let v = try toml.strings("listen") { listen = v }
        if let v = try toml.int("workers", in: 1...256) { workers = v }
        if let v = try toml.int("max_message_bytes", in: 1024...(1 << 31)) { maxMessageBytes = v }
        if let v = try toml.int("max_prompts_per_request", in: 1...1_000_000) { maxPromptsPerRequest = v }
        if let v = try toml.int("max_samples_per_prompt", in: 1...100_000) { maxSamplesPerPrompt = v }
        if let v = try toml.int("max_new_tokens", in: 1...1_000_000) { maxNewTokens = v }
        if let v = try toml.int("max_sequence_tokens", in: 1...1_000_000) { maxSequenceTokens = v }
        if let v = try toml.int("max_items_per_update", in: 1...1_000_000) { maxItemsPerUpdate = v }
        if let v = try toml.int("max_queued_requests", in: 0...1_000_000) { maxQueuedRequests = v }
        if let v = try toml.int("max_batch_tokens", in: 0...100_000_000) { maxBatchTokens = v }
        if let v = try toml.string("token_file") { tokenFile = v }
        if let v = try toml.string("tls_cert_key_file") { tlsCertKeyFile = v }
        if let v = try toml.string("state_dir") { stateDir = v }
        if let v = try toml.strings("allowed_dirs") { allowedDirs = v }
        if let v = try toml.string("log_level") { logLevel = try Self.parseLogLevel(v) }
        if let v = try toml.int("blas_threads", in: 0...1024) { blasThreads = v }
        if let v = try toml.string("matmul_backend") { matmulBackend = v }
        try training.merge(&toml)
        try toml.rejectUnknownKeys()
    }

    public static func parseLogLevel(_ text: String) throws -> Logger.Level {
        guard let level = Logger.Level(rawValue: text.lowercased()) else {
            let names = Logger.Level.allCases.map(\.rawValue).joined(separator: ", ")
            throw ConfigError(key: "log_level", "'\(text)' is not one of \(names)")
        }
        return level
    }
}
