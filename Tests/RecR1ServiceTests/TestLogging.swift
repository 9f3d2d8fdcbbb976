import Logging

/// Tests log warnings and worse only (the daemon's info lines would drown the test output).
enum TestLogging {
    static let quiet: Void = LoggingSystem.bootstrap { label in
        var handler = StreamLogHandler.standardError(label: label)
        handler.logLevel = .warning
        return handler
    }
}
