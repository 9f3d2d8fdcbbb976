import ArgumentParser
import Foundation
import Logging
import RecR1Service

struct Serve: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Serve the Policy service over nng until SIGTERM or SIGINT.",
        usage: "recr1d serve [--config <file>] [--<setting> <value> ...]",
        discussion: """
            Settings come from the defaults, then --config FILE (TOML, the same names as the flags with \
            '_' for '-', e.g. max_new_tokens = 512), then the flags (--max-new-tokens 512 or \
            --max-new-tokens=512). `recr1d config --schema` prints them as JSON.

            SETTINGS:
            \(ServerConfig.settingsHelp)
            """
    )

    @Option(help: "A TOML file with the same settings as the flags below.")
    var config: String?

    @Option(help: .hidden)
    var debugHandlerDelayMs: Int = 0

    /// Every other argument: the settings' flags (ServerConfig.settings), and, for `recr1d train`, the job file.
    @Argument(parsing: .allUnrecognized, help: .hidden)
    var arguments: [String] = []

    /// Defaults, then the file, then the flags; and the arguments that are not settings.
    func resolved() throws -> (config: ServerConfig, rest: [String]) {
        var resolved = ServerConfig()
        do {
            if let config { try resolved.merge(file: config) }
            let rest = try resolved.apply(flags: arguments)
            return (resolved, rest)
        } catch let error as ConfigError {
            throw ValidationError(error.description)
        }
    }

    /// The settings of `recr1d serve`, which takes no other argument.
    func resolvedConfig() throws -> ServerConfig {
        let (config, rest) = try resolved()
        if let extra = rest.first { throw ValidationError("unexpected argument '\(extra)'") }
        return config
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
