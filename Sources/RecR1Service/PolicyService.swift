import Foundation
import Logging
import RecR1Kernels
import RecR1Policy
import RecR1Proto

public enum RecR1Version {
    public static let current = "0.1.0"
}

/// The methods of `service Policy` in proto/recr1/v1/policy.proto.
public enum PolicyMethod: String, CaseIterable {
    case info = "Info", health = "Health"
    case tokenize = "Tokenize", detokenize = "Detokenize", applyChatTemplate = "ApplyChatTemplate"
    case generate = "Generate", score = "Score", update = "Update"
    case saveCheckpoint = "SaveCheckpoint", loadCheckpoint = "LoadCheckpoint", export = "Export"
    case startJob = "StartJob", jobStatus = "JobStatus", stopJob = "StopJob"

    public static let service = "recr1.v1.Policy"
    public var fullName: String { "\(Self.service)/\(rawValue)" }
}

/// The Policy service's handlers. Each is a small function of its request; the transport, the
/// envelope and the counting live elsewhere (NNGServer, Dispatcher, RequestStats).
public final class PolicyService {
    private let config: ServerConfig
    private let policy: Policy?
    private let listening: [ListenAddress]
    private let stats: RequestStats
    private let rollouts: RolloutStore
    public let jobs: JobManager?
    private let startedAt = ContinuousClock.now
    private let lock = NSLock()
    private var stopping = false

    public init(config: ServerConfig, policy: Policy?, listening: [ListenAddress], stats: RequestStats) {
        self.config = config
        self.policy = policy
        self.listening = listening
        self.stats = stats
        rollouts = RolloutStore(maxCount: config.training.rolloutStoreCount, maxBytes: config.training.rolloutStoreBytes)
        jobs = policy.map { JobManager(policy: $0, config: config, logger: Logger(label: "recr1d.jobs")) }
    }

    private static let engineMethods: [PolicyMethod] = [
        .tokenize, .detokenize, .applyChatTemplate, .generate, .score, .update, .saveCheckpoint, .loadCheckpoint, .export,
        .startJob, .jobStatus, .stopJob,
    ]

    /// Health reports STOPPING from now on.
    public func markStopping() { lock.withLock { stopping = true } }

    public func methodTable() -> MethodTable {
        var table = MethodTable()
        table.register(PolicyMethod.info.fullName) { [unowned self] (_: Recr1_V1_InfoRequest, _) in info() }
        table.register(PolicyMethod.health.fullName) { [unowned self] (_: Recr1_V1_HealthRequest, _) in health() }
        if let policy {
            let admission = EngineAdmission(maxQueued: config.maxQueuedRequests)
            let batcher = GenerateBatcher(policy: policy, maxBatchTokens: config.maxBatchTokens)
            EngineHandlers(policy: policy, config: config, rollouts: rollouts, admission: admission, batcher: batcher)
                .register(in: &table)
            UpdateHandler(policy: policy, config: config, rollouts: rollouts, admission: admission).register(in: &table)
            CheckpointHandlers(policy: policy, config: config).register(in: &table)
            jobs?.register(in: &table)
        } else {
            for method in Self.engineMethods {
                table.register(method.fullName, raw: { _, _ in
                    throw RPCError.failedPrecondition("\(method.rawValue) needs a model, and recr1d runs with --model none")
                })
            }
        }
        return table
    }

    func info() -> Recr1_V1_InfoReply {
        var reply = Recr1_V1_InfoReply()
        reply.serverVersion = RecR1Version.current
        if let policy {
            let c = policy.config
            reply.model.loaded = true
            reply.model.name = policy.description.name
            reply.model.source = policy.description.source
            reply.model.architecture = c.architecture.rawValue
            reply.model.parameters = UInt64(c.parameterCount)
            reply.model.layers = UInt32(c.layers)
            reply.model.hiddenSize = UInt32(c.dim)
            reply.model.heads = UInt32(c.heads)
            reply.model.kvHeads = UInt32(c.kvHeads)
            reply.model.vocabSize = UInt32(c.vocabSize)
            reply.model.contextLength = UInt32(c.contextLength)
            reply.model.computeType = MatMul.backend == .onednnBF16 ? "bf16" : "f32"
            reply.model.weightsType = policy.description.weightsType
            if let trainer = policy.trainer {
                reply.model.trainingMode = trainer.mode
                reply.model.trainableParameters = UInt64(trainer.trainableParameters)
            }
            reply.policyVersion = policy.version
        }
        reply.blasCore = BLAS.core
        reply.blasThreads = UInt32(BLAS.threads)
        reply.matmulBackend = MatMul.backend.rawValue
        reply.cpuFeatures = CPUFeatures.current.description
        reply.limits.maxMessageBytes = UInt64(config.maxMessageBytes)
        reply.limits.maxPromptsPerRequest = UInt32(config.maxPromptsPerRequest)
        reply.limits.maxSamplesPerPrompt = UInt32(config.maxSamplesPerPrompt)
        reply.limits.maxNewTokens = UInt32(config.maxNewTokens)
        reply.limits.maxSequenceTokens = UInt32(config.maxSequenceTokens)
        reply.limits.maxItemsPerUpdate = UInt32(config.maxItemsPerUpdate)
        reply.listen = listening.map(\.url)
        reply.workers = UInt32(config.workers)
        reply.authRequired = config.tokenFile != nil
        reply.pid = UInt64(getpid())
        return reply
    }

    func health() -> Recr1_V1_HealthReply {
        let counts = stats.snapshot
        var reply = Recr1_V1_HealthReply()
        reply.status = lock.withLock { stopping } ? .stopping : .serving
        let elapsed = ContinuousClock.now - startedAt
        reply.uptimeSeconds = Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) * 1e-18
        reply.policyVersion = policy?.version ?? 0
        reply.inFlight = UInt32(max(0, counts.inFlight))
        reply.requestsServed = counts.served
        reply.requestsFailed = counts.failed
        reply.runningJob = jobs?.runningJob ?? ""
        return reply
    }
}
