import Foundation
import RecR1Policy

/// Concurrent Generate requests share one engine pass. Request threads queue their requests here and
/// wait; one generation thread takes the engine, gathers the queued requests in arrival order while they
/// fit the budget, runs them together and hands each its completions as soon as that request's samples are
/// done. Requests that arrive while a pass runs form the next one, so passes grow exactly when the engine
/// is busy. Score, Update and the rest take the same engine lock, so they interleave between passes.
final class GenerateBatcher {
    struct Output {
        var completions: [[Completion]]
        var version: UInt64
        /// Requests in the pass, this one included.
        var batchedRequests: Int
    }

    private final class Job {
        let request: Generator.Request
        /// KV-cache positions the request needs: sequences × (longest prompt + max new tokens).
        let sequences: Int
        let length: Int
        var taken = false
        var result: Output?

        init(_ request: Generator.Request) {
            self.request = request
            sequences = request.prompts.count * request.n
            length = request.prompts.map(\.count).max()! + request.settings.maxNewTokens
        }
    }

    private let policy: Policy
    /// A pass's KV cache holds sequences × its longest (prompt + max new tokens); requests join a pass
    /// while that stays within this many positions. 0 = every request runs alone.
    let maxBatchTokens: Int
    private let condition = NSCondition()
    private var queue: [Job] = []

    /// Starts the generation thread; it sleeps while nothing is queued and ends within a second of the
    /// batcher's release.
    init(policy: Policy, maxBatchTokens: Int) {
        self.policy = policy
        self.maxBatchTokens = maxBatchTokens
        let thread = Thread { [weak self] in
            while let batcher = self { batcher.runNextPass(waitingAtMost: 1) }
        }
        thread.name = "recr1d.generate"
        thread.start()
    }

    /// Runs `request` in the next pass that has room; throws `Policy.EngineBusy` when the deadline passes
    /// before a pass takes it (once taken, the request's own `shouldStop` ends it at its deadline).
    func generate(_ request: Generator.Request, deadline: Date?) throws -> Output {
        let job = Job(request)
        condition.lock()
        defer { condition.unlock() }
        queue.append(job)
        condition.broadcast()
        while job.result == nil {
            if let deadline, !job.taken {
                if !condition.wait(until: deadline), job.result == nil, !job.taken {
                    queue.removeAll { $0 === job }
                    throw Policy.EngineBusy()
                }
            } else {
                condition.wait()
            }
        }
        return job.result!
    }

    /// The generation thread's work: waits (at most `seconds`) for a queued request, then for the engine,
    /// then runs a pass.
    private func runNextPass(waitingAtMost seconds: Double) {
        let queued = condition.withLock {
            if queue.isEmpty { condition.wait(until: Date().addingTimeInterval(seconds)) }
            return !queue.isEmpty
        }
        guard queued else { return }
        try? policy.exclusive {  // no deadline: waits while Score or Update has the engine
            let pass = condition.withLock { gather() }
            guard !pass.isEmpty else { return }  // every queued request gave up while the engine was busy
            _ = policy.generateHoldingEngine(pass.map(\.request)) { index, completions, version in
                condition.withLock {
                    pass[index].result = Output(completions: completions, version: version, batchedRequests: pass.count)
                    condition.broadcast()
                }
            }
        }
    }

    /// Takes queued requests in arrival order while the pass stays within the budget (the first always), so
    /// that a large request is never passed over by later small ones.
    private func gather() -> [Job] {
        var pass: [Job] = []
        var sequences = 0, length = 0
        for job in queue {
            let grown = (sequences + job.sequences) * max(length, job.length)
            guard pass.isEmpty || (maxBatchTokens > 0 && grown <= maxBatchTokens) else { break }
            pass.append(job)
            sequences += job.sequences
            length = max(length, job.length)
        }
        for job in pass { job.taken = true }
        queue.removeFirst(pass.count)
        return pass
    }
}
