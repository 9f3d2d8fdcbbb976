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

    private struct Sample {
        let prompt: Int
        let slot: Int
        var position: Int          // where the next token goes
        var random: RandomStream
        var completion = Completion()
        var done = false
    }

    /// For each prompt, n completions. `shouldStop` is asked between steps (deadlines, shutdown); when it
    /// says yes, the unfinished completions end with `.length`.
    public func generate(prompts: [[Int32]], n: Int, settings: SamplingSettings,
                         shouldStop: () -> Bool = { false }) -> [[Completion]] {
        precondition(!prompts.isEmpty && n > 0 && prompts.allSatisfy { !$0.isEmpty })
        let vocab = decoder.config.vocabSize
        let longest = prompts.map(\.count).max()!
        let capacity = min(longest + settings.maxNewTokens, decoder.config.contextLength)
        let cache = KVCache(config: decoder.config, slots: prompts.count * n, capacity: capacity)
        let seed = settings.seed ?? UInt64.random(in: .min ... .max)
        let stops = endTokens.union(settings.stopTokenIds)

        // Prefill each prompt once, in the first slot of its group, then share the cache with the others.
        var rows: [Decoder.Row] = []
        var lastRows: [Int] = []
        for (p, prompt) in prompts.enumerated() {
            for (position, token) in prompt.enumerated() {
                rows.append(Decoder.Row(token: token, slot: p * n, position: position))
            }
            lastRows.append(rows.count - 1)
        }
        var logits = decoder.forward(rows, cache: cache, logitRows: lastRows)
        for (p, prompt) in prompts.enumerated() where n > 1 {
            cache.copyPrefix(from: p * n, to: Array((p * n + 1)..<(p * n + n)), count: prompt.count)
        }

        var samples: [Sample] = []
        for (p, prompt) in prompts.enumerated() {
            for s in 0..<n {
                samples.append(Sample(prompt: p, slot: p * n + s, position: prompt.count,
                                      random: RandomStream(seed: seed, stream: UInt64(p * n + s))))
            }
        }
        // Which row of `logits` each unfinished sample reads: at first its prompt's last row.
        var logitRow = samples.map(\.prompt)
        var scratch: [Float] = []
        for _ in 0..<settings.maxNewTokens {
            var next: [Decoder.Row] = []
            var owners: [Int] = []
            for i in samples.indices where !samples[i].done {
                let (token, logprob) = logits.withUnsafeBufferPointer { buffer in
                    Sampler.sample(buffer.baseAddress! + logitRow[i] * vocab, vocab: vocab, settings: settings,
                                   random: &samples[i].random, scratch: &scratch)
                }
                samples[i].completion.tokens.append(token)
                samples[i].completion.logprobs.append(logprob)
                if stops.contains(token) {
                    finish(&samples[i], .stop)
                } else if !settings.stopStrings.isEmpty, containsStopString(samples[i].completion.tokens, settings.stopStrings) {
                    finish(&samples[i], .stopString)
                } else if samples[i].completion.tokens.count >= settings.maxNewTokens || samples[i].position + 1 >= capacity {
                    finish(&samples[i], .length)
                } else {
                    next.append(Decoder.Row(token: token, slot: samples[i].slot, position: samples[i].position))
                    samples[i].position += 1
                    owners.append(i)
                }
            }
            if next.isEmpty || shouldStop() { break }
            logits = decoder.forward(next, cache: cache, logitRows: Array(next.indices))
            for (row, i) in owners.enumerated() { logitRow[i] = row }
        }
        return (0..<prompts.count).map { p in samples.filter { $0.prompt == p }.map(\.completion) }
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
            let logits = decoder.forward(forwardRows, cache: cache, logitRows: predicting)
            // The target of logits row i is the token after the row it was computed at.
            let targets = batch.flatMap(\.completion)
            var values = [Float](repeating: 0, count: targets.count)
            logits.withUnsafeBufferPointer { buffer in
                values.withUnsafeMutableBufferPointer { out in
                    Parallel.rows(targets.count) { range in
                        for i in range {
                            let line = buffer.baseAddress! + i * vocab
                            out[i] = line[Int(targets[i])] - Kernels.logSumExp(line, vocab)
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
