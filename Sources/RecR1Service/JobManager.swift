import Foundation
import Logging
import RecR1Policy
import RecR1Proto

/// StartJob, JobStatus and StopJob: one training job at a time, on its own thread. A job's file is kept in
/// its directory (`<state_dir>/jobs/<name>/job.toml`), so that a job that was running when recr1d stopped
/// resumes when it starts again (`resumeInterruptedJobs`).
public final class JobManager {
    private let policy: Policy
    private let config: ServerConfig
    private let logger: Logger
    private let lock = NSLock()
    private var jobs: [String: JobRunner] = [:]
    private var running: String?

    private let paths: RequestPaths

    public init(policy: Policy, config: ServerConfig, logger: Logger) {
        self.policy = policy
        self.config = config
        paths = config.requestPaths()
        self.logger = logger
    }

    public var runningJob: String? { lock.withLock { running } }

    func register(in table: inout MethodTable) {
        table.register(PolicyMethod.startJob.fullName, start)
        table.register(PolicyMethod.jobStatus.fullName, status)
        table.register(PolicyMethod.stopJob.fullName, stop)
    }

    func start(_ request: Recr1_V1_StartJobRequest, _: CallContext) throws -> Recr1_V1_StartJobReply {
        let field = request.configToml.isEmpty ? "config_path" : "config_toml"
        let job: JobConfig
        var source: (text: String, base: String)?
        do {
            switch request.config {
            case .configPath(let path):
                let full = try paths.resolve(path, field: "config_path")
                let read = try JobConfig.read(file: full, stateDir: config.stateDir, paths: paths)
                job = read.job
                source = (read.text, (full as NSString).deletingLastPathComponent)
            case .configToml(let text):
                job = try JobConfig(text: text, origin: "config_toml", baseDirectory: config.stateDir, stateDir: config.stateDir,
                                    paths: paths)
                source = (text, config.stateDir)
            case nil:
                throw RPCError.invalidArgument("config", "give config_path or config_toml")
            }
        } catch let error as ConfigError {
            throw RPCError.invalidArgument(field, "\(error)")
        } catch let error as RPCError where error.field != "config_path" && error.field != "config" {
            // A path the job file names: the field is the request's, then the file's key.
            throw RPCError(error.code, field: "\(field).\(error.field)", error.message)
        }
        var reply = Recr1_V1_StartJobReply()
        reply.job = try launch(job, source: source)
        return reply
    }

    /// Starts `job` on a thread; a job is refused while another runs.
    func launch(_ job: JobConfig, source: (text: String, base: String)?) throws -> Recr1_V1_JobStatusReply {
        let runner: JobRunner
        do {
            runner = try JobRunner(config: job, policy: policy, logger: logger)
        } catch let error as ConfigError {
            throw RPCError.invalidArgument("config", "\(error)")
        }
        try lock.withLock {
            if let running, jobs[running]?.snapshot.state == .running || jobs[running]?.snapshot.state == .pending {
                throw RPCError.failedPrecondition("job '\(running)' is running; stop it first (StopJob)")
            }
            jobs[job.name] = runner
            running = job.name
        }
        try FileManager.default.createDirectory(atPath: job.outputDir, withIntermediateDirectories: true)
        if let source {  // kept for a resume after a restart
            try? source.text.write(toFile: job.outputDir + "/job.toml", atomically: true, encoding: .utf8)
            try? source.base.write(toFile: job.outputDir + "/job.base", atomically: true, encoding: .utf8)
        }
        let thread = Thread { [weak self] in
            runner.run()
            self?.lock.withLock { if self?.running == job.name { self?.running = nil } }
        }
        thread.name = "job \(job.name)"
        thread.start()
        logger.notice("job \(job.name) started: \(job.algorithm.rawValue), \(job.steps) steps, output \(job.outputDir)")
        return describe(job.name, runner)
    }

    func status(_ request: Recr1_V1_JobStatusRequest, _: CallContext) throws -> Recr1_V1_JobStatusReply {
        try describe(request.jobID, find(request.jobID))
    }

    func stop(_ request: Recr1_V1_StopJobRequest, _: CallContext) throws -> Recr1_V1_StopJobReply {
        let runner = try find(request.jobID)
        runner.stop()
        var reply = Recr1_V1_StopJobReply()
        reply.job = describe(request.jobID, runner)
        return reply
    }

    private func find(_ id: String) throws -> JobRunner {
        let name = id.isEmpty ? (runningJob ?? "") : id
        guard let runner = lock.withLock({ jobs[name] }) else {
            throw RPCError.notFound("job_id", "no job '\(id)' in this run of recr1d")
        }
        return runner
    }

    private func describe(_ name: String, _ runner: JobRunner) -> Recr1_V1_JobStatusReply {
        let s = runner.snapshot
        var reply = Recr1_V1_JobStatusReply()
        reply.jobID = runner.config.name
        reply.state = switch s.state {
        case .pending: .jobPending
        case .running: .jobRunning
        case .succeeded: .jobSucceeded
        case .failed: .jobFailed
        case .stopped: .jobStopped
        }
        reply.step = UInt64(s.step)
        reply.totalSteps = UInt64(runner.config.steps)
        reply.lastMetrics = s.metrics.filter { $0.value.isFinite }
        reply.error = s.error
        reply.metricsPath = runner.config.outputDir + "/metrics.jsonl"
        reply.checkpointPath = s.checkpoint
        return reply
    }

    /// Starts the job in `path` (`recr1d train`); returns its runner, to watch and to stop.
    public func start(file path: String) throws -> JobRunner {
        let (job, text) = try JobConfig.read(file: path, stateDir: config.stateDir)
        _ = try launch(job, source: (text, (path as NSString).deletingLastPathComponent))
        return lock.withLock { jobs[job.name]! }
    }

    /// Restarts the jobs whose state.json says they were running when recr1d stopped.
    public func resumeInterruptedJobs() {
        let root = (config.stateDir as NSString).appendingPathComponent("jobs")
        for name in (try? FileManager.default.contentsOfDirectory(atPath: root))?.sorted() ?? [] {
            let directory = root + "/" + name
            guard let data = FileManager.default.contents(atPath: directory + "/state.json"),
                  let state = try? JSONSerialization.jsonObject(with: data) as? [String: Any],
                  state["state"] as? String == "running",
                  FileManager.default.fileExists(atPath: directory + "/job.toml") else { continue }
            do {
                let text = try String(contentsOfFile: directory + "/job.toml", encoding: .utf8)
                let base = (try? String(contentsOfFile: directory + "/job.base", encoding: .utf8)) ?? directory
                let job = try JobConfig(text: text, origin: directory + "/job.toml", baseDirectory: base, stateDir: config.stateDir,
                                        paths: paths)
                _ = try launch(job, source: nil)
                logger.notice("job \(name) was running when recr1d stopped: resuming")
            } catch {
                logger.error("job \(name) cannot resume: \(error)")
            }
        }
    }
}
