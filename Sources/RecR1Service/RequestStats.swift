import Foundation

/// Counts of the requests the dispatcher has seen, for Health. Thread-safe.
public final class RequestStats {
    public struct Snapshot {
        public var inFlight = 0
        /// The most requests ever in flight at once.
        public var peakInFlight = 0
        public var served: UInt64 = 0
        public var failed: UInt64 = 0
    }

    private let lock = NSLock()
    private var counts = Snapshot()

    public init() {}

    public var snapshot: Snapshot { lock.withLock { counts } }

    func begin() {
        lock.withLock {
            counts.inFlight += 1
            counts.peakInFlight = max(counts.peakInFlight, counts.inFlight)
        }
    }

    func end(ok: Bool) {
        lock.withLock {
            counts.inFlight -= 1
            counts.served += 1
            if !ok { counts.failed += 1 }
        }
    }
}
