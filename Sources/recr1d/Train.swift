import ArgumentParser
import Foundation
import Logging
import RecR1Service

/// `recr1d train JOB.toml`: a daemon that runs one training job and exits when it ends. It serves the
/// Policy service meanwhile (JobStatus, Generate, ...), with the same settings as `recr1d serve`.
struct Train: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Run a training job (TOML) to its end, serving meanwhile; SIGTERM/SIGINT stop it after the current step.",
        usage: "recr1d train <job.toml> [--config <file>] [--<setting> <value> ...]",
        discussion: """
            The job file names the prompts (JSONL), the algorithm (grpo, dpo, sft), the reward plugins, the \
            steps and the checkpoints; see docs/jobs.md. Metrics go to <output_dir>/metrics.jsonl and a \
            progress line per step to stderr. Run it again after a stop or a crash and it resumes from its \
            last checkpoint. The settings are those of `recr1d serve` (recr1d serve --help).
            """)

    @OptionGroup var serve: Serve

    func run() throws {
        var signals = sigset_t()
        sigemptyset(&signals)
        for signal in [SIGTERM, SIGINT] { sigaddset(&signals, signal) }
        pthread_sigmask(SIG_BLOCK, &signals, nil)

        let (config, rest) = try serve.resolved()
        guard rest.count == 1, let job = rest.first else {
            throw ValidationError(rest.isEmpty ? "give the job file: recr1d train JOB.toml" : "one job file, not \(rest.joined(separator: " "))")
        }
        LogLevel.shared.level = config.logLevel
        LoggingSystem.bootstrap(ReloadableLogHandler.init)
        let logger = Logger(label: "recr1d")
        let daemon = try Daemon(config: config, logger: logger)
        guard let jobs = daemon.jobs else { throw ValidationError("recr1d train needs a model (not --model none)") }
        try daemon.start()
        let runner: JobRunner
        do {
            runner = try jobs.start(file: job)
        } catch {
            daemon.stop()
            throw ValidationError("\(job): \(error)")
        }
        // A stop signal asks the job to stop after its step; a second one exits at once.
        let stopSignals = signals
        Thread.detachNewThread {
            var waitFor = stopSignals
            var received: Int32 = 0
            sigwait(&waitFor, &received)
            logger.notice("signal \(received): the job stops after its current step (again to exit now)")
            runner.stop()
            sigwait(&waitFor, &received)
            _exit(1)
        }
        while [.pending, .running].contains(runner.snapshot.state) { usleep(200_000) }
        let final = runner.snapshot
        daemon.stop()
        switch final.state {
        case .succeeded: logger.notice("job \(runner.config.name) succeeded: \(final.step) steps, metrics in \(runner.config.outputDir)/metrics.jsonl")
        case .stopped: logger.notice("job \(runner.config.name) stopped at step \(final.step); run it again to resume")
        default: throw ExitCode(1)
        }
    }
}
