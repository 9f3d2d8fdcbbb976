import Foundation
import Logging
import RecR1Formats
import RecR1Kernels
import RecR1Policy
import RecR1Proto

/// recr1d assembled: configuration -> BLAS -> Policy handlers -> dispatcher -> nng transport.
/// `recr1d serve` drives it with signals; tests start it in-process.
public final class Daemon {
    public let config: ServerConfig
    public let addresses: [ListenAddress]
    private let service: PolicyService
    private let dispatcher: Dispatcher
    private let server: NNGServer
    private let logger: Logger

    /// Checks the configuration and loads what serving needs; listens only in `start`.
    public init(config: ServerConfig, handlerDelayMs: Int = 0, stats: RequestStats = RequestStats(),
                logger: Logger = Logger(label: "recr1d")) throws {
        self.config = config
        self.logger = logger
        addresses = try config.listenAddresses()
        var options = Dispatcher.Options(maxMessageBytes: config.maxMessageBytes, authToken: try config.authToken())
        options.handlerDelayMs = handlerDelayMs

        try BLAS.load(threads: config.blasThreads > 0 ? config.blasThreads : ProcessInfo.processInfo.activeProcessorCount)
        if BLAS.wasPreloaded {
            logger.warning("OpenBLAS was loaded before recr1d could choose its kernels; it runs \(BLAS.core)")
        }
        if config.matmulBackend.isEmpty {
            MatMul.use(MatMul.fastestBackend)
        } else {
            guard let backend = MatMul.Backend(rawValue: config.matmulBackend) else {
                throw ConfigError(key: "matmul_backend", "'\(config.matmulBackend)' is not one of \(MatMul.Backend.allCases.map(\.rawValue).joined(separator: ", "))")
            }
            if backend != .openblas, let problem = MatMul.dnnlAvailable {
                throw ConfigError(key: "matmul_backend", "\(backend.rawValue) needs oneDNN: \(problem)")
            }
            if backend == .onednnBF16, let problem = MatMul.bf16Available {
                throw ConfigError(key: "matmul_backend", "onednn-bf16 does not run here: \(problem)")
            }
            MatMul.use(backend)
        }
        logger.info("OpenBLAS core \(BLAS.core), \(BLAS.threads) threads; large products on \(MatMul.backend.rawValue); CPU: \(CPUFeatures.current)")

        let trainerSettings = try config.training.trainerSettings()
        let policy = try Self.loadPolicy(config.model, logger: logger)
        if let policy {
            policy.enableTraining(trainerSettings)
            let trainable = policy.trainer!.trainableParameters
            let t = config.training
            logger.info("training: \(t.mode), \(trainable) trainable parameters, learning rate \(t.learningRate > 0 ? t.learningRate : t.defaultLearningRate) (\(t.lrSchedule))")
        }
        service = PolicyService(config: config, policy: policy, listening: addresses, stats: stats)
        dispatcher = Dispatcher(table: service.methodTable(), options: options, stats: stats)
        server = NNGServer()
    }

    /// "" = the default model, "none" = no model.
    static func loadPolicy(_ model: String, logger: Logger) throws -> Policy? {
        if model == "none" { return nil }
        let path = model.isEmpty ? try DefaultModel.locate() : model
        let started = ContinuousClock.now
        let policy: Policy
        do {
            policy = try Policy.load(path: path)
        } catch {
            throw ConfigError(key: "model", "cannot load \(path): \(error)")
        }
        let c = policy.config
        logger.info("model \(policy.description.name) (\(c.architecture.rawValue), \(c.parameterCount) parameters, \(policy.description.weightsType) -> f32) loaded in \(ContinuousClock.now - started)")
        return policy
    }

    /// Health through the dispatcher, in process: the watchdog's sign of life.
    public func answersHealth() -> Bool {
        var request = Recr1_V1_Request()
        request.method = PolicyMethod.health.fullName
        request.authToken = dispatcher.options.authToken ?? ""
        guard let frame = try? request.serializedData(),
              let reply = try? Recr1_V1_Reply(serializedBytes: dispatcher.handle(frame: frame)) else { return false }
        return reply.status.code == .ok
    }

    /// Applies what can change without a restart (SIGHUP): the log level, the shared token, the message
    /// size limit. Returns the settings that differ but need a restart.
    public func reload(_ new: ServerConfig) throws -> [String] {
        var options = dispatcher.options
        options.authToken = try new.authToken()
        options.maxMessageBytes = new.maxMessageBytes
        dispatcher.options = options
        LogLevel.shared.level = new.logLevel
        var restart: [String] = []
        if new.model != config.model { restart.append("model") }
        if new.listen != config.listen { restart.append("listen") }
        if new.workers != config.workers { restart.append("workers") }
        if new.training != config.training { restart.append("training settings") }
        if new.matmulBackend != config.matmulBackend { restart.append("matmul_backend") }
        if new.stateDir != config.stateDir { restart.append("state_dir") }
        return restart
    }

    /// The training jobs (nil without a model).
    public var jobs: JobManager? { service.jobs }

    public func start() throws {
        // Interrupted jobs are registered before the sockets open, so the first JobStatus a client sends
        // after a restart already finds them (it answered NOT_FOUND in the gap before).
        service.jobs?.resumeInterruptedJobs()
        try server.start(addresses: addresses, workers: config.workers, maxFrameBytes: config.transportMaxBytes,
                         tlsCertKeyFile: config.tlsCertKeyFile,
                         handler: dispatcher.handle(frame:))
        logger.info("recr1d \(RecR1Version.current) serving with \(config.workers) workers")
    }

    /// Stops accepting, answers the requests in flight, closes the sockets.
    public func stop() {
        service.markStopping()
        server.stop()
        logger.info("stopped")
    }
}
