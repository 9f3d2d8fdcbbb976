import RecR1Kernels

/// Settings of one Generate request's sampling.
public struct SamplingSettings: Equatable {
    public var temperature: Float = 1     // 0 = greedy
    public var topK: Int = 0              // 0 = off
    public var topP: Float = 1            // 1 = off
    public var seed: UInt64? = nil        // nil = a random seed
    public var maxNewTokens: Int = 256
    public var stopTokenIds: Set<Int32> = []
    public var stopStrings: [String] = []
    public var ignoreEndTokens = false    // the model's end tokens do not end a sample (benchmarks)

    public init() {}
}

/// xoshiro256**: small, fast, and the same sequence on every machine for the same seed.
public struct RandomStream {
    private var s: (UInt64, UInt64, UInt64, UInt64)

    /// A stream for (seed, stream): the samples of a request each get their own, so that one sample's
    /// draws do not depend on how many others there are.
    public init(seed: UInt64, stream: UInt64 = 0) {
        var mix = seed ^ (stream &* 0x9E37_79B9_7F4A_7C15)
        func next() -> UInt64 {  // SplitMix64 spreads the seed over the state
            mix &+= 0x9E37_79B9_7F4A_7C15
            var z = mix
            z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
            z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
            return z ^ (z >> 31)
        }
        s = (next(), next(), next(), next())
    }

    public mutating func next() -> UInt64 {
        let result = ((s.1 &* 5) << 7 | (s.1 &* 5) >> 57) &* 9
        let t = s.1 << 17
        s.2 ^= s.0
        s.3 ^= s.1
        s.1 ^= s.2
        s.0 ^= s.3
        s.2 ^= t
        s.3 = s.3 << 45 | s.3 >> 19
        return result
    }

    /// The generator's whole state (checkpoints save it, so that a resumed run draws the same numbers).
    public var state: [UInt64] {
        get { [s.0, s.1, s.2, s.3] }
        set {
            precondition(newValue.count == 4)
            s = (newValue[0], newValue[1], newValue[2], newValue[3])
        }
    }

    /// Uniform in [0, 1).
    public mutating func uniform() -> Float { Float(next() >> 40) * (1 / Float(1 << 24)) }
}

/// Picks the next token from a row of logits.
public enum Sampler {
    /// The chosen token and its log-probability under the model's own distribution (temperature 1, no
    /// truncation): the number Score reports for the same token, and the one GRPO's ratios start from.
    public static func sample(_ logits: UnsafePointer<Float>, vocab: Int, settings: SamplingSettings,
                              random: inout RandomStream, scratch: inout [Float]) -> (token: Int32, logprob: Float) {
        let token = settings.temperature <= 0 ? argmax(logits, vocab)
            : draw(logits, vocab: vocab, settings: settings, random: &random, scratch: &scratch)
        return (Int32(token), logits[token] - Kernels.logSumExp(logits, vocab))
    }

    static func argmax(_ x: UnsafePointer<Float>, _ n: Int) -> Int {
        var best = 0
        for i in 1..<n where x[i] > x[best] { best = i }
        return best
    }

    /// Temperature, then top-k, then top-p (nucleus), then a draw.
    static func draw(_ logits: UnsafePointer<Float>, vocab: Int, settings: SamplingSettings,
                     random: inout RandomStream, scratch probabilities: inout [Float]) -> Int {
        if probabilities.count < vocab { probabilities = [Float](repeating: 0, count: vocab) }
        let inverseT = 1 / settings.temperature
        for i in 0..<vocab { probabilities[i] = logits[i] * inverseT }
        probabilities.withUnsafeMutableBufferPointer { Kernels.softmax($0.baseAddress!, vocab) }

        let topP = settings.topP > 0 && settings.topP < 1 ? settings.topP : 1
        let topK = settings.topK > 0 && settings.topK < vocab ? settings.topK : vocab
        if topP >= 1 && topK >= vocab {
            return drawFrom(probabilities, indices: nil, count: vocab, total: 1, random: &random)
        }
        // Only tokens that can be in the result are sorted. For top-p alone: a token with probability below
        // (1 - p) / (vocab - 1) can never be needed, since all the tokens at or below it together hold
        // less than 1 - p; the most likely token is always needed, so the cut-off never exceeds its
        // probability (a small p over a flat distribution, or a vocabulary of one). With top-k every token
        // is a candidate: top-p's fractions are of the top-k mass, which needs all of the top k.
        var cutoff: Float = 0
        if topP < 1 && topK >= vocab {
            var largest: Float = 0
            for i in 0..<vocab { largest = max(largest, probabilities[i]) }
            cutoff = min((1 - topP) / Float(vocab - 1), largest)
        }
        var candidates: [Int] = []
        candidates.reserveCapacity(min(vocab, 4096))
        for i in 0..<vocab where probabilities[i] >= cutoff { candidates.append(i) }
        candidates.sort { probabilities[$0] > probabilities[$1] || (probabilities[$0] == probabilities[$1] && $0 < $1) }
        var keep = min(topK, candidates.count)
        var mass: Float = 0
        for i in 0..<keep { mass += probabilities[candidates[i]] }
        if topP < 1 {
            // Renormalise over the top-k first (top-k then top-p, as Hugging Face applies them). Without
            // top-k that is the whole distribution, not just the candidates above the cut-off.
            let topKMass: Float = topK >= vocab ? 1 : mass
            var cumulative: Float = 0
            for i in 0..<keep {
                cumulative += probabilities[candidates[i]] / topKMass
                if cumulative >= topP {
                    keep = i + 1
                    break
                }
            }
            mass = 0
            for i in 0..<keep { mass += probabilities[candidates[i]] }
        }
        return drawFrom(probabilities, indices: candidates, count: keep, total: mass, random: &random)
    }

    private static func drawFrom(_ p: [Float], indices: [Int]?, count: Int, total: Float, random: inout RandomStream) -> Int {
        let target = random.uniform() * total
        var cumulative: Float = 0
        for i in 0..<count {
            let token = indices?[i] ?? i
            cumulative += p[token]
            if target < cumulative { return token }
        }
        return indices?[count - 1] ?? (count - 1)  // rounding left the target just past the end
    }
}
