import Foundation
import Logging

/// Every setting of `recr1d serve`. The config file (TOML) uses the same names as the flags, with `_`
/// for `-` (`--max-message-bytes` <-> `max_message_bytes`). Defaults, then the file, then flags; each
/// setting's type, range and help are declared once, in `ServerConfig.settings` (ServerSettings.swift).
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
}
