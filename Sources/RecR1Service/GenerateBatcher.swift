import Foundation
import RecR1Policy

/// Concurrent Generate requests share one engine pass. Requests queue here; the first one that finds no
/// pass being gathered leads: it waits for the engine, takes the queued requests in arrival order while
/// they fit the budget, runs them together and hands each its completions as soon as that request is done
/// (the leader's own reply waits for the whole pass). Requests that arrive while a pass runs form the next
/// one, so batches grow exactly when the engine is busy.
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
        var result: Result<Output, Error>?

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
    private var gathering = false

    init(policy: Policy, maxBatchTokens: Int) {
        self.policy = policy
        self.maxBatchTokens = maxBatchTokens
    }

    /// Runs `request` in the next pass; throws `Policy.EngineBusy` when the deadline passes before it is taken.
    func generate(_ request: Generator.Request, deadline: Date?) throws -> Output {
        let job = Job(request)
        condition.lock()
        defer { condition.unlock() }
        queue.append(job)
        while job.result == nil {
            if !gathering && !job.taken {
                gathering = true
                condition.unlock()
                lead(job, deadline: deadline)
                condition.lock()
                gathering = false
                condition.broadcast()
            } else if let deadline, !job.taken {
                if !condition.wait(until: deadline), job.result == nil, !job.taken {
                    queue.removeAll { $0 === job }
                    throw Policy.EngineBusy()
                }
            } else {
                condition.wait()
            }
        }
        return try job.result!.get()
    }

    /// Waits for the engine (until `own`'s deadline), gathers a pass and runs it. Called without the
    /// condition's lock.
    private func lead(_ own: Job, deadline: Date?) {
        do {
            try policy.exclusive(deadline: deadline) {
                let pass = condition.withLock { gather() }
                _ = policy.generateHoldingEngine(pass.map(\.request)) { index, completions, version in
                    condition.withLock {
                        pass[index].result = .success(Output(completions: completions, version: version, batchedRequests: pass.count))
                        condition.broadcast()
                    }
                }
            }
        } catch {
            // The deadline passed waiting for the engine: this request gives up; the queue stays for the next leader.
            condition.withLock {
                queue.removeAll { $0 === own }
                own.result = .failure(error)
            }
        }
    }

    /// Takes queued requests in arrival order while the pass stays within the budget (the first always), so
    /// that a large request is never passed over by later small ones. The leader's own may wait for the next.
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
        queue.removeAll { job in pass.contains { $0 === job } }
        return pass
    }
}
