import Foundation
import RecR1Policy

/// Admission to the engine, which runs one call at a time: a request that would wait behind more than
/// `maxQueued` others is refused at once with RESOURCE_EXHAUSTED and a retry hint (never left hanging),
/// and one whose deadline passes while it waits gets DEADLINE_EXCEEDED.
final class EngineAdmission {
    let maxQueued: Int
    private let lock = NSLock()
    private var inEngine = 0            // waiting or running
    private var averageSeconds = 1.0    // of recent engine calls, for the retry hint

    init(maxQueued: Int) {
        self.maxQueued = maxQueued
    }

    func run<T>(_ context: CallContext, _ body: (Date?) throws -> T) throws -> T {
        let queued: Int = try lock.withLock {
            if inEngine > maxQueued {
                let hint = UInt32(min(60_000, max(50, averageSeconds * 1000 * Double(inEngine - maxQueued))))
                throw RPCError(.resourceExhausted, field: "max_queued_requests",
                               "\(inEngine) requests are running or waiting for the engine (max_queued_requests \(maxQueued)); retry later",
                               retryAfterMs: hint)
            }
            inEngine += 1
            return inEngine
        }
        _ = queued
        let started = Date()
        defer {
            lock.withLock {
                inEngine -= 1
                averageSeconds = 0.8 * averageSeconds + 0.2 * Date().timeIntervalSince(started)
            }
        }
        do {
            return try body(context.deadlineDate)
        } catch is Policy.EngineBusy {
            throw RPCError(.deadlineExceeded, field: "timeout_ms", "the request's deadline passed while it waited for the engine")
        }
    }
}

extension CallContext {
    /// The deadline as a wall-clock date (what a timed lock takes).
    var deadlineDate: Date? {
        deadline.map { deadline in
            let remaining = (deadline - ContinuousClock.now).components
            return Date().addingTimeInterval(Double(remaining.seconds) + Double(remaining.attoseconds) * 1e-18)
        }
    }
}
