import Foundation
import XCTest

@testable import RecR1Learning

/// The losses against values worked out by hand, and their gradients against finite differences.
final class LossTests: EngineTestCase {
    func testGroupAdvantages() {
        // [1, 0, 0, 1]: mean 0.5, sample std √(1/3) = 0.57735, so A = ±0.5 / 0.57735 = ±0.866025.
        let a = GRPO.advantages([[1, 0, 0, 1], [2, 2]], scaling: .group, epsilon: 0)
        XCTAssertEqual(a[0][0], 0.866025, accuracy: 1e-5)
        XCTAssertEqual(a[0][1], -0.866025, accuracy: 1e-5)
        XCTAssertEqual(a[1], [0, 0], "equal rewards carry no signal")
        let dr = GRPO.advantages([[1, 0, 0, 1]], scaling: .none, epsilon: 1e-4)
        XCTAssertEqual(dr[0], [0.5, -0.5, -0.5, 0.5])
    }

    func testClippedObjectiveByHand() {
        var s = GRPOSettings()
        s.beta = 0
        // ρ = 1.5 > 1 + ε: with A = 1 the clipped term (1.2) is the min: loss −1.2, gradient 0.
        let up = GRPO.loss([ScoredSequence(logprobs: [logf(1.5)], oldLogprobs: [0])], advantages: [1], settings: s)
        XCTAssertEqual(up.loss, -1.2, accuracy: 1e-6)
        XCTAssertEqual(up.gradients[0][0], 0)
        XCTAssertEqual(up.metrics["clip_fraction"], 1)
        // With A = −1 the unclipped term (−1.5) is the min: loss 1.5, gradient −ρA = 1.5.
        let down = GRPO.loss([ScoredSequence(logprobs: [logf(1.5)], oldLogprobs: [0])], advantages: [-1], settings: s)
        XCTAssertEqual(down.loss, 1.5, accuracy: 1e-6)
        XCTAssertEqual(down.gradients[0][0], 1.5, accuracy: 1e-6)
        XCTAssertEqual(down.metrics["clip_fraction"], 0)
        // DAPO clip-higher: ε_high = 0.6 lets ρ = 1.5 through for A = 1.
        s.epsilonHigh = 0.6
        let higher = GRPO.loss([ScoredSequence(logprobs: [logf(1.5)], oldLogprobs: [0])], advantages: [1], settings: s)
        XCTAssertEqual(higher.loss, -1.5, accuracy: 1e-6)
    }

    func testGSPOSequenceRatioByHand() {
        // s = exp(mean(log 2 − 0, 0 − 0)) = √2; A = 1. With ε = 0.2 the sequence is clipped at 1.2: every token's
        // loss is −1.2 and no gradient flows. With ε_high = 0.5 it is not: each token has loss −√2 and, by the
        // token mean over 2 tokens, gradient −√2 / 2.
        var s = GRPOSettings()
        s.objective = .clippedSequence
        let sequence = [ScoredSequence(logprobs: [logf(2), 0], oldLogprobs: [0, 0])]
        let clipped = GRPO.loss(sequence, advantages: [1], settings: s)
        XCTAssertEqual(clipped.loss, -1.2, accuracy: 1e-6)
        XCTAssertEqual(clipped.gradients, [[0, 0]])
        XCTAssertEqual(clipped.metrics["clip_fraction"], 1)
        s.epsilonHigh = 0.5
        // |log ρ| per token is log 2 and 0: the sampler–trainer check reports their mean and maximum.
        XCTAssertEqual(clipped.metrics["log_ratio_abs_mean"]!, Double(logf(2)) / 2, accuracy: 1e-6)
        XCTAssertEqual(clipped.metrics["log_ratio_abs_max"]!, Double(logf(2)), accuracy: 1e-6)
        let open = GRPO.loss(sequence, advantages: [1], settings: s)
        XCTAssertEqual(open.loss, -Double(2.0.squareRoot()), accuracy: 1e-6)
        XCTAssertEqual(open.gradients[0][0], -Float(2.0.squareRoot()) / 2, accuracy: 1e-6)
        XCTAssertEqual(open.gradients[0][1], -Float(2.0.squareRoot()) / 2, accuracy: 1e-6)
        // The token ratio would be 2 on the first token and 1 on the second: GRPO clips one token, GSPO neither.
        var token = s
        token.objective = .clippedToken
        XCTAssertEqual(GRPO.loss(sequence, advantages: [1], settings: token).gradients[0][0], 0)
    }

    func testCISPOKeepsTheGradientOfClippedTokens() {
        // ρ = 1.5, clipped to 1.2 as a constant weight: ℓ = −1.2·A·log 1.5 and dℓ/dlog p = −1.2·A, where GRPO's
        // clipped term (A = 1) would give no gradient at all.
        var s = GRPOSettings()
        s.objective = .cispo
        let sequence = [ScoredSequence(logprobs: [logf(1.5)], oldLogprobs: [0])]
        let up = GRPO.loss(sequence, advantages: [1], settings: s)
        XCTAssertEqual(up.loss, -1.2 * Double(logf(1.5)), accuracy: 1e-6)
        XCTAssertEqual(up.gradients[0][0], -1.2, accuracy: 1e-6)
        XCTAssertEqual(up.metrics["clip_fraction"], 1)
        let down = GRPO.loss(sequence, advantages: [-1], settings: s)
        XCTAssertEqual(down.gradients[0][0], 1.2, accuracy: 1e-6)
        // Inside the bounds the weight is the ratio itself, so the gradient is GRPO's, −ρ·A.
        let inside = [ScoredSequence(logprobs: [logf(1.1)], oldLogprobs: [0])]
        XCTAssertEqual(GRPO.loss(inside, advantages: [0.5], settings: s).gradients[0][0], -1.1 * 0.5, accuracy: 1e-6)
        XCTAssertEqual(GRPO.loss(inside, advantages: [0.5], settings: GRPOSettings()).gradients[0][0], -1.1 * 0.5, accuracy: 1e-6)
    }

    func testKLEstimatorsByHand() {
        // log p = −1, log p_ref = −1.5, A = 0 (only the KL term), β = 1, one token.
        var s = GRPOSettings()
        s.beta = 1
        let sequence = [ScoredSequence(logprobs: [-1], oldLogprobs: [-1], referenceLogprobs: [-1.5])]
        s.kl = .k1
        XCTAssertEqual(GRPO.loss(sequence, advantages: [0], settings: s).loss, 0.5, accuracy: 1e-6)
        s.kl = .k2
        XCTAssertEqual(GRPO.loss(sequence, advantages: [0], settings: s).loss, 0.125, accuracy: 1e-6)
        s.kl = .k3  // e^−0.5 + 0.5 − 1
        let k3 = GRPO.loss(sequence, advantages: [0], settings: s)
        XCTAssertEqual(k3.loss, 0.1065307, accuracy: 1e-6)
        XCTAssertEqual(k3.gradients[0][0], 1 - expf(-0.5), accuracy: 1e-6)
    }

    func testAggregations() {
        // Two sequences of 1 and 3 tokens, ρ = 1, A = 1: every token's loss is −1.
        var s = GRPOSettings()
        s.beta = 0
        let seqs = [ScoredSequence(logprobs: [-1]), ScoredSequence(logprobs: [-1, -2, -3])]
        s.aggregation = .tokenMean
        XCTAssertEqual(GRPO.loss(seqs, advantages: [1, 1], settings: s).gradients, [[-0.25], [-0.25, -0.25, -0.25]])
        s.aggregation = .sequenceMean
        let sm = GRPO.loss(seqs, advantages: [1, 1], settings: s)
        XCTAssertEqual(sm.gradients[0][0], -0.5, accuracy: 1e-7)
        XCTAssertEqual(sm.gradients[1][0], -1.0 / 6, accuracy: 1e-7)
        s.aggregation = .constant(maxTokens: 4)
        XCTAssertEqual(GRPO.loss(seqs, advantages: [1, 1], settings: s).loss, -0.5, accuracy: 1e-6)  // −4 / (2·4)
    }

    func testEntropyBonusByHand() {
        // Token mean over 4 tokens, ρ = 1, A = 1: loss = −1 − c·mean(H) with H = [2, 1, 1, 0], c = 0.1 → −1.1.
        var s = GRPOSettings()
        s.beta = 0
        s.entropyCoefficient = 0.1
        let seqs = [ScoredSequence(logprobs: [-1]), ScoredSequence(logprobs: [-1, -2, -3])]
        let result = GRPO.loss(seqs, advantages: [1, 1], entropies: [[2], [1, 1, 0]], settings: s)
        XCTAssertEqual(result.loss, -1.1, accuracy: 1e-6)
        XCTAssertEqual(result.entropyGradients!, [[-0.025], [-0.025, -0.025, -0.025]])
        XCTAssertEqual(result.metrics["entropy"]!, 1.0, accuracy: 1e-9)
        s.entropyCoefficient = 0
        XCTAssertNil(GRPO.loss(seqs, advantages: [1, 1], entropies: [[2], [1, 1, 0]], settings: s).entropyGradients)
    }

    func testDPOByHand() {
        // h = (π_c − ref_c) − (π_r − ref_r) = 1 − (−1) = 2, β = 0.1: z = 0.2, loss = −log σ(0.2) = 0.598139.
        let chosen = [ScoredSequence(logprobs: [-1, -1], referenceLogprobs: [-1.5, -1.5])]
        let rejected = [ScoredSequence(logprobs: [-3], referenceLogprobs: [-2])]
        let result = DPO.loss(chosen: chosen, rejected: rejected, settings: DPOSettings())
        XCTAssertEqual(result.loss, 0.598139, accuracy: 1e-5)
        XCTAssertEqual(result.metrics["margin"]!, 0.2, accuracy: 1e-6)
        // dℓ/dlog π(chosen token) = β·(−σ(−z)) = −0.0450166.
        XCTAssertEqual(result.gradients[0][0], -0.0450166, accuracy: 1e-6)
        XCTAssertEqual(result.gradients[1][0], 0.0450166, accuracy: 1e-6)
        // IPO on mean token log-probs: h = (−1 − (−1.5)) − (−3 − (−2)) = 0.5 + 1 = 1.5; (1.5 − 1/0.2)² = 12.25;
        // dℓ/dlog π(chosen token) = 2·(1.5 − 5)/2 = −3.5, dℓ/dlog π(rejected token) = +7.
        var ipo = DPOSettings()
        ipo.kind = .ipo
        let ipoResult = DPO.loss(chosen: chosen, rejected: rejected, settings: ipo)
        XCTAssertEqual(ipoResult.loss, 12.25, accuracy: 1e-5)
        XCTAssertEqual(ipoResult.gradients, [[-3.5, -3.5], [7]])
    }

    func testSFT() {
        let result = SFT.loss([ScoredSequence(logprobs: [-1, -2]), ScoredSequence(logprobs: [-3])])
        XCTAssertEqual(result.loss, 2, accuracy: 1e-9)
        XCTAssertEqual(result.gradients, [[-1.0 / 3, -1.0 / 3], [-1.0 / 3]])
    }

    /// Every loss's gradient against central differences in each log-prob.
    func testGradientsMatchFiniteDifferences() {
        var s = GRPOSettings()
        s.beta = 0.05
        s.epsilonHigh = 0.28
        let base = [ScoredSequence(logprobs: [-1.1, -0.4, -2.3], oldLogprobs: [-1.0, -0.6, -2.0], referenceLogprobs: [-1.3, -0.5, -2.2]),
                    ScoredSequence(logprobs: [-0.2, -3.0], oldLogprobs: [-0.25, -2.9], referenceLogprobs: [-0.1, -3.1])]
        for kl in [GRPOSettings.KL.k1, .k2, .k3] {
            s.kl = kl
            check(base) { GRPO.loss($0, advantages: [0.7, -1.3], settings: s) }
        }
        // GSPO, every aggregation: the first two sequences inside their bounds (s ≈ 0.94, 0.98), the third outside
        // (s = e^0.5), clipped when its advantage is positive and not when it is negative.
        s.objective = .clippedSequence
        let gspo = base + [ScoredSequence(logprobs: [-0.5, -0.5], oldLogprobs: [-1, -1], referenceLogprobs: [-0.6, -0.4])]
        for aggregation in [GRPOSettings.Aggregation.tokenMean, .sequenceMean, .constant(maxTokens: 4)] {
            s.aggregation = aggregation
            check(gspo) { GRPO.loss($0, advantages: [0.7, -1.3, 0.9], settings: s) }
            check(gspo) { GRPO.loss($0, advantages: [-0.7, 1.3, -0.9], settings: s) }
        }
        // CISPO's weight carries no gradient: the difference quotient moves log p and log p_old together, so the
        // ratio (and the weight) stays fixed while log p and the KL term move.
        s.objective = .cispo
        s.aggregation = .tokenMean
        s.epsilonLow = 0.05
        s.epsilonHigh = 0.1
        check(base, holdingRatio: true) { GRPO.loss($0, advantages: [0.7, -1.3], settings: s) }
        var dpo = DPOSettings()
        dpo.labelSmoothing = 0.1
        check(base) { DPO.loss(chosen: [$0[0]], rejected: [$0[1]], settings: dpo) }
        dpo.kind = .ipo
        check(base) { DPO.loss(chosen: [$0[0]], rejected: [$0[1]], settings: dpo) }
        check(base) { SFT.loss($0) }
    }

    private func check(_ sequences: [ScoredSequence], holdingRatio: Bool = false, _ loss: ([ScoredSequence]) -> LossResult) {
        let analytic = loss(sequences).gradients
        let epsilon: Float = 1e-3
        for i in sequences.indices {
            for t in sequences[i].logprobs.indices {
                var up = sequences, down = sequences
                up[i].logprobs[t] += epsilon
                down[i].logprobs[t] -= epsilon
                if holdingRatio {
                    up[i].oldLogprobs?[t] += epsilon
                    down[i].oldLogprobs?[t] -= epsilon
                }
                let numeric = (loss(up).loss - loss(down).loss) / Double(2 * epsilon)
                XCTAssertEqual(Double(analytic[i][t]), numeric, accuracy: 2e-4 + 1e-3 * abs(numeric), "sequence \(i), token \(t)")
            }
        }
    }
}
