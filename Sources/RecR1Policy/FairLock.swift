import Foundation

/// The engine's lock: granted in the order it was asked for. A plain mutex lets whoever is running take it
/// again, so under load one kind of request (Score, Update) could keep the engine while a Generate waited
/// for ever; first come, first served bounds every wait by the work queued ahead of it.
public final class FairLock {
    private let condition = NSCondition()
    private var held = false
    private var waiting: [UInt64] = []   // tickets, oldest first
    private var nextTicket: UInt64 = 0

    public init() {}

    /// Waits for the lock until `deadline` (nil: for ever); false when the deadline passed first.
    @discardableResult
    public func lock(before deadline: Date? = nil) -> Bool {
        condition.lock()
        defer { condition.unlock() }
        let ticket = nextTicket
        nextTicket += 1
        waiting.append(ticket)
        while held || waiting.first != ticket {
            if let deadline {
                if !condition.wait(until: deadline), held || waiting.first != ticket {
                    waiting.removeAll { $0 == ticket }
                    condition.broadcast()   // the one behind may be first now
                    return false
                }
            } else {
                condition.wait()
            }
        }
        waiting.removeFirst()
        held = true
        return true
    }

    /// Threads waiting for the lock now (for tests).
    var waitingCount: Int { condition.lock(); defer { condition.unlock() }; return waiting.count }

    public func unlock() {
        condition.lock()
        held = false
        condition.broadcast()
        condition.unlock()
    }

    public func withLock<T>(_ body: () throws -> T) rethrows -> T {
        lock()
        defer { unlock() }
        return try body()
    }
}
