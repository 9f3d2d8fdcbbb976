import CRecR1Support
import Logging
import Foundation

/// The sd_notify protocol (`Type=notify` units): recr1d itself tells systemd it is ready or stopping, and
/// keeps its watchdog fed. Without `$NOTIFY_SOCKET` (not under systemd) every call is a no-op.
public enum Systemd {
    /// Sends e.g. "READY=1" or "STOPPING=1"; returns whether systemd was told.
    @discardableResult
    public static func notify(_ state: String) -> Bool { recr1_sd_notify(state) > 0 }

    /// The watchdog interval systemd asks for (`WatchdogSec=` sets `$WATCHDOG_USEC`), when it is meant for
    /// this process (`$WATCHDOG_PID` unset or ours).
    public static func watchdogInterval(environment: [String: String] = ProcessInfo.processInfo.environment) -> Duration? {
        guard let text = environment["WATCHDOG_USEC"], let usec = UInt64(text), usec > 0 else { return nil }
        if let pid = environment["WATCHDOG_PID"], pid != String(getpid()) { return nil }
        return .microseconds(Int64(usec))
    }

    /// Sends WATCHDOG=1 at half the interval from a thread of its own, for as long as `alive()` says the
    /// daemon is healthy (a daemon that stops answering then gets restarted by systemd).
    public static func startWatchdog(interval: Duration, alive: @escaping () -> Bool) {
        let period = interval / 2
        let seconds = Double(period.components.seconds) + Double(period.components.attoseconds) * 1e-18
        let thread = Thread {
            while true {
                if alive() { notify("WATCHDOG=1") }
                Thread.sleep(forTimeInterval: seconds)
            }
        }
        thread.name = "watchdog"
        thread.start()
    }
}

/// The process's log level, changeable at run time (SIGHUP reloads it): every log handler reads it.
public final class LogLevel: @unchecked Sendable {
    public static let shared = LogLevel()
    private let lock = NSLock()
    private var current = Logger.Level.info
    public var level: Logger.Level {
        get { lock.withLock { current } }
        set { lock.withLock { current = newValue } }
    }
}

/// swift-log's stderr handler with the shared, reloadable level.
public struct ReloadableLogHandler: LogHandler {
    private var inner: StreamLogHandler
    public init(label: String) { inner = StreamLogHandler.standardError(label: label) }
    public var logLevel: Logger.Level {
        get { LogLevel.shared.level }
        set { LogLevel.shared.level = newValue }
    }
    public var metadata: Logger.Metadata {
        get { inner.metadata }
        set { inner.metadata = newValue }
    }
    public subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { inner[metadataKey: key] }
        set { inner[metadataKey: key] = newValue }
    }
    public func log(level: Logger.Level, message: Logger.Message, metadata: Logger.Metadata?, source: String,
                    file: String, function: String, line: UInt) {
        guard level >= LogLevel.shared.level else { return }
        inner.log(level: level, message: message, metadata: metadata, source: source, file: file, function: function, line: line)
    }
}
