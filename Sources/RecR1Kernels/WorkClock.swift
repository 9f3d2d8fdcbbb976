import Foundation

/// Wall time by kind of work while switched on, for the benchmark's split of a step: matrix products with
/// the weights, attention over the cache, packing weights into the backend's layout, the optimiser; the
/// rest (norms, RoPE, SiLU, softmax and log-softmax over the vocabulary, sampling, bookkeeping) is what no
/// clock claims. Clocks nest: time inside an inner clock counts for the inner kind only. Meant for one
/// measuring thread (the benchmark's); off, a clock costs one lock.
public enum WorkClock {
    public enum Kind: String, CaseIterable {
        case products, attention, packing, optimizer
    }

    private static let lock = NSLock()
    private static var on = false
    private static var totals: [Kind: Duration] = [:]
    /// Time claimed by any clock since `start`: an outer clock subtracts what its inner ones claimed.
    private static var claimed = Duration.zero

    /// Starts counting from zero.
    public static func start() {
        lock.withLock {
            on = true
            totals = [:]
            claimed = .zero
        }
    }

    /// Stops counting; the seconds of each kind since `start`.
    public static func stop() -> [Kind: Double] {
        lock.withLock {
            on = false
            return totals.mapValues { Double($0.components.seconds) + Double($0.components.attoseconds) * 1e-18 }
        }
    }

    @inline(__always)
    public static func measure<T>(_ kind: Kind, _ body: () throws -> T) rethrows -> T {
        guard let claimedBefore = lock.withLock({ on ? claimed : nil }) else { return try body() }
        let start = ContinuousClock.now
        defer {
            let elapsed = ContinuousClock.now - start
            lock.withLock {
                let inner = claimed - claimedBefore
                totals[kind, default: .zero] += elapsed - inner
                claimed = claimedBefore + elapsed
            }
        }
        return try body()
    }
}
