import Foundation

/// The rollouts Generate produced, kept so that Update can cite them by id. Bounded by count and by
/// bytes; the oldest go first. Ids carry a random prefix per daemon start, so that an id from an earlier
/// run is never mistaken for a new one.
public final class RolloutStore {
    public struct Rollout {
        public var prompt: [Int32]
        public var completion: [Int32]
        public var logprobs: [Float]
        public var policyVersion: UInt64

        var bytes: Int { 4 * (prompt.count + completion.count + logprobs.count) + 64 }
    }

    public let maxCount: Int
    public let maxBytes: Int
    private let prefix = String(UInt32.random(in: .min ... .max), radix: 16)
    private let lock = NSLock()
    private var rollouts: [String: Rollout] = [:]
    private var order: [String] = []   // oldest first; `head` skips the evicted ones
    private var head = 0
    private var counter: UInt64 = 0
    private var totalBytes = 0

    public init(maxCount: Int, maxBytes: Int) {
        self.maxCount = maxCount
        self.maxBytes = maxBytes
    }

    public func add(_ rollout: Rollout) -> String {
        lock.withLock {
            counter += 1
            let id = "\(prefix)-\(counter)"
            rollouts[id] = rollout
            order.append(id)
            totalBytes += rollout.bytes
            while rollouts.count > maxCount || (totalBytes > maxBytes && rollouts.count > 1) {
                let oldest = order[head]
                head += 1
                if let evicted = rollouts.removeValue(forKey: oldest) { totalBytes -= evicted.bytes }
            }
            if head > 4096 && head * 2 > order.count {  // compact the queue now and then
                order.removeFirst(head)
                head = 0
            }
            return id
        }
    }

    public func get(_ id: String) -> Rollout? { lock.withLock { rollouts[id] } }

    public var count: Int { lock.withLock { rollouts.count } }
    public var bytes: Int { lock.withLock { totalBytes } }
}
