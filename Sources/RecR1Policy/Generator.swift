import RecR1Kernels
import RecR1Model

public enum FinishReason: Equatable {
    case stop         // an end-of-sequence or stop token was sampled (it is part of the completion)
    case length       // max new tokens, or the cache's capacity, was reached
    case stopString   // the decoded completion contains a stop string
}

public struct Completion: Equatable {
    public var tokens: [Int32] = []
    public var logprobs: [Float] = []
    public var finish: FinishReason = .length
}

/// Batched sampling with a KV cache: the n samples of a prompt share its prefill, and every unfinished
/// sample of every prompt advances in one forward pass per step.
public final class Generator {
    public let decoder: Decoder
    /// Tokens that end a completion whatever the request says (the model's end-of-sequence tokens).
    public let endTokens: Set<Int32>
    /// Turns completion tokens into text, for stop strings.
    public let detokenize: ([Int32]) -> String

    public init(decoder: Decoder, endTokens: Set<Int32>, detokenize: @escaping ([Int32]) -> String) {
        self.decoder = decoder
        self.endTokens = endTokens
        self.detokenize = detokenize
    }

    /// One Generate request: n completions of each prompt with the request's own sampling settings.
    /// `shouldStop` is asked between steps (deadline, shutdown): when it says yes, the request's
    /// unfinished completions end with `.length` and the other requests of the pass go on.
    public struct Request {
        public var prompts: [[Int32]]
        public var n: Int
        public var settings: SamplingSettings
        public var shouldStop: () -> Bool

        public init(prompts: [[Int32]], n: Int, settings: SamplingSettings, shouldStop: @escaping () -> Bool = { false }) {
            self.prompts = prompts
            self.n = n
            self.settings = settings
            self.shouldStop = shouldStop
        }
    }

    private struct Sample {
        let request: Int
        let prompt: Int            // within its request
        let slot: Int
        var position: Int          // where the next token goes
        var random: RandomStream
        var completion = Completion()
        var done = false
    }

    /// For each prompt, n completions.
    public func generate(prompts: [[Int32]], n: Int, settings: SamplingSettings,
                         shouldStop: @escaping () -> Bool = { false }) -> [[Completion]] {
        generate([Request(prompts: prompts, n: n, settings: settings, shouldStop: shouldStop)])[0]
    }

    /// Several requests in one pass: one prefill of all their prompts, then every unfinished sample of
    /// every request advances in the same forward pass each step. A request's samples draw from streams
    /// numbered within the request, so its completions do not depend on what else shares the pass.
    /// `finished(r, completions)` is called as soon as request r's samples are all done, before the pass ends.
    public func generate(_ requests: [Request], finished: (Int, [[Completion]]) -> Void = { _, _ in }) -> [[[Completion]]] {
        precondition(requests.allSatisfy { !$0.prompts.isEmpty && $0.n > 0 && $0.prompts.allSatisfy { !$0.isEmpty } })
        let vocab = decoder.config.vocabSize
        let capacity = requests.map { request in
            min(request.prompts.map(\.count).max()! + request.settings.maxNewTokens, decoder.config.contextLength)
        }
        let cache = KVCache(config: decoder.config, slots: requests.reduce(0) { $0 + $1.prompts.count * $1.n },
                            capacity: capacity.max()!)
        let seeds = requests.map { $0.settings.seed ?? UInt64.random(in: .min ... .max) }
        let stops = requests.map { ($0.settings.ignoreEndTokens ? [] : endTokens).union($0.settings.stopTokenIds) }

        // Prefill each prompt once, in the first slot of its group, then share the cache with the others.
        var rows: [Decoder.Row] = []
        var lastRows: [Int] = []
        var samples: [Sample] = []
        var logitRow: [Int] = []   // which row of `logits` each unfinished sample reads: at first its prompt's last
        var groups: [(first: Int, n: Int, length: Int)] = []  // each prompt's slots, for sharing its prefill
        var slot = 0
        for (r, request) in requests.enumerated() {
            for (p, prompt) in request.prompts.enumerated() {
                for (position, token) in prompt.enumerated() {
                    rows.append(Decoder.Row(token: token, slot: slot, position: position))
                }
                lastRows.append(rows.count - 1)
                groups.append((slot, request.n, prompt.count))
                for s in 0..<request.n {
                    samples.append(Sample(request: r, prompt: p, slot: slot + s, position: prompt.count,
                                          random: RandomStream(seed: seeds[r], stream: UInt64(p * request.n + s)),
                                          done: request.settings.maxNewTokens <= 0))
                    logitRow.append(lastRows.count - 1)
                }
                slot += request.n
            }
        }
        var logits = decoder.forward(rows, cache: cache, logitRows: lastRows)
        for group in groups where group.n > 1 {
            cache.copyPrefix(from: group.first, to: Array((group.first + 1)..<(group.first + group.n)), count: group.length)
        }

        func completions(_ r: Int) -> [[Completion]] {
            (0..<requests[r].prompts.count).map { p in samples.filter { $0.request == r && $0.prompt == p }.map(\.completion) }
        }
        var reported = [Bool](repeating: false, count: requests.count)
        func reportFinishedRequests() {
            var open = [Bool](repeating: false, count: requests.count)
            for sample in samples where !sample.done { open[sample.request] = true }
            for r in requests.indices where !reported[r] && !open[r] {
                reported[r] = true
                finished(r, completions(r))
            }
        }

        var scratch: [Float] = []
        while true {
            var next: [Decoder.Row] = []
            var owners: [Int] = []
            for i in samples.indices where !samples[i].done {
                let r = samples[i].request, settings = requests[r].settings
                let (token, logprob) = logits.withUnsafeBufferPointer { buffer in
                    Sampler.sample(buffer.baseAddress! + logitRow[i] * vocab, vocab: vocab, settings: settings,
                                   random: &samples[i].random, scratch: &scratch)
                }
                samples[i].completion.tokens.append(token)
                samples[i].completion.logprobs.append(logprob)
                if stops[r].contains(token) {
                    finish(&samples[i], .stop)
                } else if !settings.stopStrings.isEmpty, containsStopString(samples[i].completion.tokens, settings.stopStrings) {
                    finish(&samples[i], .stopString)
                } else if samples[i].completion.tokens.count >= settings.maxNewTokens || samples[i].position + 1 >= capacity[r] {
                    finish(&samples[i], .length)
                } else {
                    next.append(Decoder.Row(token: token, slot: samples[i].slot, position: samples[i].position))
                    samples[i].position += 1
                    owners.append(i)
                }
            }
            // Requests told to stop end their unfinished samples here; the rest of the pass goes on.
            let stopped = Set(requests.indices.filter { r in owners.contains { samples[$0].request == r } && requests[r].shouldStop() })
            if !stopped.isEmpty {
                let kept = zip(next, owners).filter { !stopped.contains(samples[$0.1].request) }
                for i in owners where stopped.contains(samples[i].request) { finish(&samples[i], .length) }
                next = kept.map(\.0)
                owners = kept.map(\.1)
            }
            reportFinishedRequests()
            if next.isEmpty { break }
            logits = decoder.forward(next, cache: cache, logitRows: Array(next.indices))
            for (row, i) in owners.enumerated() { logitRow[i] = row }
        }
        return requests.indices.map(completions)
    }

    private func finish(_ sample: inout Sample, _ reason: FinishReason) {
        sample.completion.finish = reason
        sample.done = true
    }

    private func containsStopString(_ tokens: [Int32], _ stopStrings: [String]) -> Bool {
        let text = detokenize(tokens)
        return stopStrings.contains { !$0.isEmpty && text.contains($0) }
    }
}

/// Teacher-forced log-probs of completions after prompts.
public enum Scorer {
    /// For each (prompt, completion), the log-prob of every completion token given all tokens before it.
    /// Items are packed into forward passes of at most `maxRows` tokens (each item in its own cache slot).
    public static func score(_ decoder: Decoder, items: [(prompt: [Int32], completion: [Int32])], maxRows: Int = 512) -> [[Float]] {
        let vocab = decoder.config.vocabSize
        var results = [[Float]](repeating: [], count: items.count)
        var start = 0
        while start < items.count {
            // Take items while they fit (always at least one).
            var end = start, rows = 0
            while end < items.count, end == start || rows + items[end].prompt.count + items[end].completion.count <= maxRows {
                rows += items[end].prompt.count + items[end].completion.count
                end += 1
            }
            let batch = Array(items[start..<end])
            let capacity = batch.map { $0.prompt.count + $0.completion.count }.max()!
            let cache = KVCache(config: decoder.config, slots: batch.count, capacity: capacity)
            var forwardRows: [Decoder.Row] = []
            var predicting: [Int] = []   // rows whose logits predict a completion token
            for (slot, item) in batch.enumerated() {
                let sequence = item.prompt + item.completion
                for (position, token) in sequence.enumerated() {
                    if position >= item.prompt.count - 1 && position < sequence.count - 1 { predicting.append(forwardRows.count) }
                    forwardRows.append(Decoder.Row(token: token, slot: slot, position: position))
                }
            }
            // The target of logits row i is the token after the row it was computed at.
            let targets = batch.flatMap(\.completion)
            var values = [Float](repeating: 0, count: targets.count)
            values.withUnsafeMutableBufferPointer { out in
                decoder.forward(forwardRows, cache: cache, logitRows: predicting, chunk: 64) { chunk, logits in
                    Parallel.rows(chunk.count) { range in
                        for i in range {
                            let line = logits + i * vocab
                            out[chunk.lowerBound + i] = line[Int(targets[chunk.lowerBound + i])] - Kernels.logSumExp(line, vocab)
                        }
                    }
                }
            }
            var next = 0
            for (offset, item) in batch.enumerated() {
                results[start + offset] = Array(values[next..<(next + item.completion.count)])
                next += item.completion.count
            }
            start = end
        }
        return results
    }
}
