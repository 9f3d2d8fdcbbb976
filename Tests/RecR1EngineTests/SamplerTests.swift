import Foundation
import XCTest

@testable import RecR1Policy

/// The sampler against distributions computed here, independently, in Double. Random draws use fixed seeds,
/// so every run sees the same numbers; the statistical bounds are still set at several standard deviations so
/// that they hold for any seed, yet far tighter than the errors a wrong truncation or temperature would make.
final class SamplerTests: EngineTestCase {
    // MARK: - Reference maths, in Double

    /// softmax(logits / temperature).
    static func softmax(_ logits: [Float], temperature: Double = 1) -> [Double] {
        let scaled = logits.map { Double($0) / temperature }
        let top = scaled.max()!
        let exps = scaled.map { exp($0 - top) }
        let sum = exps.reduce(0, +)
        return exps.map { $0 / sum }
    }

    /// log_softmax(logits) at temperature 1.
    static func logSoftmax(_ logits: [Float]) -> [Double] {
        let values = logits.map(Double.init)
        let top = values.max()!
        let logSum = top + log(values.reduce(0) { $0 + exp($1 - top) })
        return values.map { $0 - logSum }
    }

    /// Token indices by descending probability, lower index first among equals.
    static func ranked(_ probabilities: [Double]) -> [Int] {
        probabilities.indices.sorted { probabilities[$0] > probabilities[$1] || (probabilities[$0] == probabilities[$1] && $0 < $1) }
    }

    /// The smallest set of most likely tokens whose probability reaches p.
    static func nucleus(_ probabilities: [Double], p: Double) -> [Int] {
        var kept: [Int] = [], mass = 0.0
        for token in ranked(probabilities) where mass < p {
            kept.append(token)
            mass += probabilities[token]
        }
        return kept
    }

    /// `probabilities` restricted to `kept` and rescaled to sum to 1.
    static func renormalised(_ probabilities: [Double], to kept: [Int]) -> [Double] {
        let mass = kept.reduce(0) { $0 + probabilities[$1] }
        return probabilities.indices.map { kept.contains($0) ? probabilities[$0] / mass : 0 }
    }

    // MARK: - Drawing

    struct Draws {
        var tokens: [Int] = []
        var counts: [Int]
        /// The largest |reported logprob − log_softmax(logits)[token]| over all draws.
        var worstLogprobError: Double = 0
    }

    static func settings(temperature: Float = 1, topK: Int = 0, topP: Float = 1) -> SamplingSettings {
        var settings = SamplingSettings()
        settings.temperature = temperature
        settings.topK = topK
        settings.topP = topP
        return settings
    }

    static func draw(_ logits: [Float], _ settings: SamplingSettings, count: Int, seed: UInt64 = 1234, stream: UInt64 = 0,
                     scratch: [Float] = []) -> Draws {
        let reference = logSoftmax(logits)
        var random = RandomStream(seed: seed, stream: stream)
        var scratch = scratch
        var draws = Draws(counts: [Int](repeating: 0, count: logits.count))
        for _ in 0..<count {
            let (token, logprob) = Sampler.sample(logits, vocab: logits.count, settings: settings, random: &random, scratch: &scratch)
            let t = Int(token)
            precondition(t >= 0 && t < logits.count, "token \(t) outside the vocabulary")
            draws.tokens.append(t)
            draws.counts[t] += 1
            draws.worstLogprobError = max(draws.worstLogprobError, abs(Double(logprob) - reference[t]))
        }
        return draws
    }

    /// Every token's empirical frequency is within 5 standard deviations (plus a hair) of its expected
    /// probability; a token with probability 0 must never be drawn.
    func assertFrequencies(_ draws: Draws, match expected: [Double], _ label: String, file: StaticString = #filePath, line: UInt = #line) {
        let n = Double(draws.tokens.count)
        for (token, p) in expected.enumerated() {
            let frequency = Double(draws.counts[token]) / n
            if p == 0 {
                XCTAssertEqual(draws.counts[token], 0, "\(label): token \(token) has probability 0", file: file, line: line)
            } else {
                let bound = 5 * (p * (1 - p) / n).squareRoot() + 1e-4
                XCTAssertEqual(frequency, p, accuracy: bound, "\(label): token \(token)", file: file, line: line)
            }
        }
    }

    // Six tokens with distinct, well separated probabilities, the largest not first.
    let logits: [Float] = [1.0, 2.0, 0.5, -1.0, 3.0, 0.0]
    let draws = 20_000

    // MARK: - Greedy

    func testGreedyPicksTheArgmaxWithItsLogSoftmax() {
        var rng = SplitMix(seed: 99)
        let wide = (0..<1000).map { _ in rng.normal() * 3 }
        let cases: [[Float]] = [logits, [-5, -3, -4], [0.25], [7, 1, 2, 6.5], wide]
        for row in cases {
            // Index of the maximum, found independently.
            let expected = row.indices.max { row[$0] < row[$1] }!
            var random = RandomStream(seed: 1)
            var scratch: [Float] = []
            let (token, logprob) = Sampler.sample(row, vocab: row.count, settings: Self.settings(temperature: 0),
                                                  random: &random, scratch: &scratch)
            XCTAssertEqual(Int(token), expected, "vocab \(row.count)")
            // Float accumulation over 1000 terms costs a few ulps of the sum; 1e-4 is still far below any real error.
            XCTAssertEqual(Double(logprob), Self.logSoftmax(row)[expected], accuracy: row.count > 100 ? 1e-4 : 1e-5)
        }
    }

    func testGreedyIgnoresTruncationAndTheSeed() {
        // At temperature 0 neither top-k, top-p nor the seed may change the choice.
        for seed: UInt64 in [1, 2, 3] {
            var random = RandomStream(seed: seed)
            var scratch: [Float] = []
            let (token, _) = Sampler.sample(logits, vocab: logits.count, settings: Self.settings(temperature: 0, topK: 3, topP: 0.5),
                                            random: &random, scratch: &scratch)
            XCTAssertEqual(token, 4)
        }
    }

    // MARK: - Random streams

    func testRandomStreamFollowsXoshiro256StarStarSeededBySplitMix64() {
        // The reference generator, written from Vigna's published C code, seeded with the first four
        // SplitMix64 outputs of the seed (the recommended seeding); stream 0 is the plain seed.
        var zero = SplitMix(seed: 0)
        XCTAssertEqual(zero.next(), 0xE220_A839_7B1D_CDAF)  // SplitMix64's published first output for seed 0
        func rotl(_ x: UInt64, _ k: UInt64) -> UInt64 { (x << k) | (x >> (64 - k)) }
        for seed: UInt64 in [0, 42, 0xDEAD_BEEF] {
            var mixer = SplitMix(seed: seed)
            var s = [mixer.next(), mixer.next(), mixer.next(), mixer.next()]
            var stream = RandomStream(seed: seed)
            var twin = RandomStream(seed: seed)
            for i in 0..<1000 {
                let expected = rotl(s[1] &* 5, 7) &* 9
                let t = s[1] << 17
                s[2] ^= s[0]; s[3] ^= s[1]; s[1] ^= s[2]; s[0] ^= s[3]; s[2] ^= t; s[3] = rotl(s[3], 45)
                XCTAssertEqual(stream.next(), expected, "seed \(seed), output \(i)")
                // uniform() is the top 24 bits over 2^24: in [0, 1), on the same sequence.
                let u = twin.uniform()
                XCTAssertEqual(u, Float(expected >> 40) / 16_777_216)
                XCTAssertTrue(u >= 0 && u < 1)
            }
        }
    }

    func testSameSeedAndStreamRepeatDifferentStreamsDiffer() {
        let flat: [Float] = (0..<16).map { Float($0 % 5) * 0.1 }
        let settings = Self.settings(temperature: 1.3, topK: 12, topP: 0.95)
        let first = Self.draw(flat, settings, count: 500, seed: 42, stream: 0).tokens
        // A scratch left over from a bigger vocabulary, full of junk, must not matter.
        let again = Self.draw(flat, settings, count: 500, seed: 42, stream: 0,
                              scratch: [Float](repeating: 1e30, count: 100)).tokens
        XCTAssertEqual(first, again)
        let otherStream = Self.draw(flat, settings, count: 500, seed: 42, stream: 1).tokens
        let thirdStream = Self.draw(flat, settings, count: 500, seed: 42, stream: 2).tokens
        let otherSeed = Self.draw(flat, settings, count: 500, seed: 43, stream: 0).tokens
        // 500 draws over 12 tokens agreeing by chance is impossible in practice; require most positions to differ.
        func differing(_ a: [Int], _ b: [Int]) -> Int { zip(a, b).filter { $0 != $1 }.count }
        XCTAssertGreaterThan(differing(first, otherStream), 250)
        XCTAssertGreaterThan(differing(first, thirdStream), 250)
        XCTAssertGreaterThan(differing(otherStream, thirdStream), 250)
        XCTAssertGreaterThan(differing(first, otherSeed), 250)

        var a = RandomStream(seed: 7, stream: 3), b = RandomStream(seed: 7, stream: 3), c = RandomStream(seed: 7, stream: 4)
        let outputsA = (0..<64).map { _ in a.next() }
        XCTAssertEqual(outputsA, (0..<64).map { _ in b.next() })
        XCTAssertNotEqual(outputsA, (0..<64).map { _ in c.next() })
    }

    // MARK: - Distributions

    func testTemperatureOneMatchesSoftmax() {
        let result = Self.draw(logits, Self.settings(temperature: 1, topK: 0, topP: 1), count: draws)
        assertFrequencies(result, match: Self.softmax(logits), "T = 1")
        XCTAssertLessThan(result.worstLogprobError, 1e-5)
    }

    func testTopKTwoKeepsTheTwoLargest() {
        let result = Self.draw(logits, Self.settings(topK: 2), count: draws)
        // The two largest logits are 3.0 (token 4) and 2.0 (token 1).
        let allowed: Set<Int> = [4, 1]
        XCTAssertTrue(Set(result.tokens).isSubset(of: allowed), "drew \(Set(result.tokens))")
        assertFrequencies(result, match: Self.renormalised(Self.softmax(logits), to: [4, 1]), "top-k 2")
        XCTAssertLessThan(result.worstLogprobError, 1e-5)
    }

    func testTopPKeepsTheNucleusWithRenormalisedFrequencies() {
        // Probabilities 0.40, 0.25, 0.15, 0.09, 0.06, 0.03, 0.012, 0.008 in shuffled order. Sorted cumulative mass:
        // 0.40, 0.65, 0.80, 0.89, 0.95, so the 0.9 nucleus is the five largest: tokens 1, 5, 3, 7, 0.
        let probabilities: [Double] = [0.06, 0.40, 0.012, 0.15, 0.008, 0.25, 0.03, 0.09]
        let row = probabilities.map { Float(log($0)) }
        let nucleus = Self.nucleus(Self.softmax(row), p: 0.9)
        XCTAssertEqual(Set(nucleus), [1, 5, 3, 7, 0])

        let result = Self.draw(row, Self.settings(topP: 0.9), count: draws)
        XCTAssertTrue(Set(result.tokens).isSubset(of: Set(nucleus)), "drew \(Set(result.tokens))")
        assertFrequencies(result, match: Self.renormalised(Self.softmax(row), to: nucleus), "top-p 0.9")
        XCTAssertLessThan(result.worstLogprobError, 1e-5)
    }

    func testTopPOnAManyTokenDistribution() {
        // 200 tokens with a long tail: the nucleus is large and the tail below it is made of many small tokens.
        var rng = SplitMix(seed: 5)
        let row = (0..<200).map { _ in rng.normal() * 1.5 }
        let probabilities = Self.softmax(row)
        for p in [0.5, 0.9] {
            let nucleus = Self.nucleus(probabilities, p: p)
            let result = Self.draw(row, Self.settings(topP: Float(p)), count: draws, seed: 77)
            XCTAssertTrue(Set(result.tokens).isSubset(of: Set(nucleus)), "p \(p): drew tokens outside the nucleus")
            assertFrequencies(result, match: Self.renormalised(probabilities, to: nucleus), "top-p \(p)")
            XCTAssertLessThan(result.worstLogprobError, 1e-5)
        }
    }

    func testTopKThenTopP() {
        // Top-k 3 keeps 0.40, 0.25, 0.15 (mass 0.80); renormalised 0.5, 0.3125, 0.1875. Cumulative 0.5 then
        // 0.8125 reaches 0.8, so top-p 0.8 keeps tokens 1 and 5.
        let probabilities: [Double] = [0.06, 0.40, 0.012, 0.15, 0.008, 0.25, 0.03, 0.09]
        let row = probabilities.map { Float(log($0)) }
        let result = Self.draw(row, Self.settings(topK: 3, topP: 0.8), count: draws)
        XCTAssertEqual(Set(result.tokens), [1, 5])
        assertFrequencies(result, match: Self.renormalised(Self.softmax(row), to: [1, 5]), "top-k 3, top-p 0.8")
        XCTAssertLessThan(result.worstLogprobError, 1e-5)

        // Top-k 7 drops only the 0.008 token (mass 0.992). Renormalised cumulative: 0.89 / 0.992 = 0.897 is
        // short of 0.9, 0.95 / 0.992 = 0.958 reaches it, so top-p 0.9 keeps five tokens: 1, 5, 3, 7, 0.
        let wide = Self.draw(row, Self.settings(topK: 7, topP: 0.9), count: draws, seed: 31)
        XCTAssertEqual(Set(wide.tokens), [1, 5, 3, 7, 0])
        assertFrequencies(wide, match: Self.renormalised(Self.softmax(row), to: [1, 5, 3, 7, 0]), "top-k 7, top-p 0.9")
    }

    func testLowTemperatureConcentratesMass() {
        let softened = Self.softmax(logits, temperature: 0.5)
        let result = Self.draw(logits, Self.settings(temperature: 0.5), count: draws)
        assertFrequencies(result, match: softened, "T = 0.5")
        // At T = 0.5 the top token's share grows from softmax(x) to softmax(2x).
        XCTAssertGreaterThan(Double(result.counts[4]) / Double(draws), Self.softmax(logits)[4] + 0.1)
        // The logprob stays the model's own, untempered.
        XCTAssertLessThan(result.worstLogprobError, 1e-5)

        // At T = 0.02 the runner-up is e^-50 times less likely: essentially every draw is the argmax.
        let cold = Self.draw(logits, Self.settings(temperature: 0.02), count: draws, seed: 8)
        XCTAssertGreaterThanOrEqual(cold.counts[4], draws - 2)
        XCTAssertLessThan(cold.worstLogprobError, 1e-5)

        // And a high temperature flattens it: T = 3 matches softmax(x / 3).
        let hot = Self.draw(logits, Self.settings(temperature: 3), count: draws, seed: 9)
        assertFrequencies(hot, match: Self.softmax(logits, temperature: 3), "T = 3")
        XCTAssertLessThan(hot.worstLogprobError, 1e-5)
    }

    // MARK: - Edge cases

    func testDisabledAndOversizedTruncationIsTheFullDistribution() {
        // top-k 0, top-k ≥ vocab and top-p 1 all mean "no truncation": the very same draws for the same seed.
        let reference = Self.draw(logits, Self.settings(topK: 0, topP: 1), count: 2000, seed: 11).tokens
        for (topK, topP) in [(6, Float(1)), (7, 1), (1000, 1), (0, 1)] {
            let other = Self.draw(logits, Self.settings(topK: topK, topP: topP), count: 2000, seed: 11).tokens
            XCTAssertEqual(other, reference, "top-k \(topK), top-p \(topP)")
        }
        // ... and that is the full distribution: every token appears.
        XCTAssertEqual(Set(reference), Set(0..<6))
    }

    func testTopKOneIsGreedy() {
        let result = Self.draw(logits, Self.settings(temperature: 2, topK: 1), count: 2000)
        XCTAssertEqual(result.counts[4], 2000)
        XCTAssertLessThan(result.worstLogprobError, 1e-5)
    }

    func testTinyTopPKeepsOnlyTheMostLikelyToken() {
        // Nearly uniform: every probability is ~0.25, so p = 0.05 is reached by the single most likely token.
        let row: [Float] = [0, 0.1, 0.2, 0.05]
        let result = Self.draw(row, Self.settings(topP: 0.05), count: 2000)
        XCTAssertEqual(result.counts[2], 2000)
        XCTAssertLessThan(result.worstLogprobError, 1e-5)
    }

    func testSingleTokenVocabulary() {
        for settings in [Self.settings(), Self.settings(topP: 0.5), Self.settings(topK: 1), Self.settings(temperature: 0)] {
            let result = Self.draw([1.5], settings, count: 10)
            XCTAssertEqual(result.counts, [10])
            XCTAssertLessThan(result.worstLogprobError, 1e-6)  // log_softmax of a single logit is 0
        }
    }

    func testTies() {
        // Greedy: the first of the tied maxima.
        var random = RandomStream(seed: 3)
        var scratch: [Float] = []
        let (token, logprob) = Sampler.sample([0, 5, 5, 1], vocab: 4, settings: Self.settings(temperature: 0),
                                              random: &random, scratch: &scratch)
        XCTAssertEqual(token, 1)
        XCTAssertEqual(Double(logprob), Self.logSoftmax([0, 5, 5, 1])[1], accuracy: 1e-5)

        // Sampling: tied tokens are equally likely.
        let tied: [Float] = [2, 2, 0]
        let free = Self.draw(tied, Self.settings(), count: draws)
        assertFrequencies(free, match: Self.softmax(tied), "tied, no truncation")

        // Top-k cutting through a three-way tie keeps exactly two of the tied tokens, the lower indices
        // (the same convention as greedy), each drawn half the time.
        let threeWay: [Float] = [1, 3, 3, 3, 0]
        let cut = Self.draw(threeWay, Self.settings(topK: 2), count: draws)
        XCTAssertEqual(Set(cut.tokens), [1, 2])
        assertFrequencies(cut, match: [0, 0.5, 0.5, 0, 0], "top-k 2 through a tie")

        // Top-p through a tie: [3, 3, 3, 0] has probabilities ~0.322 ×3 and ~0.016, so p = 0.5 needs two tokens.
        let nucleusTie: [Float] = [3, 3, 3, 0]
        XCTAssertEqual(Self.nucleus(Self.softmax(nucleusTie), p: 0.5), [0, 1])
        let nucleus = Self.draw(nucleusTie, Self.settings(topP: 0.5), count: draws)
        XCTAssertEqual(Set(nucleus.tokens), [0, 1])
        assertFrequencies(nucleus, match: [0.5, 0.5, 0, 0], "top-p 0.5 through a tie")
        XCTAssertLessThan(nucleus.worstLogprobError, 1e-5)
    }
}
