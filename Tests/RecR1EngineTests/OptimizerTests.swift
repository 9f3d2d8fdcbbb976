import XCTest

@testable import RecR1Learning

/// AdamW, clipping and schedules against values worked out by hand from their formulas (the AdamW and
/// clipping numbers agree with torch.optim.AdamW and clip_grad_norm_ to the digits shown).
final class OptimizerTests: EngineTestCase {
    func testAdamWTwoStepsByHand() {
        // p = [1, -2], lr 0.1, β = (0.9, 0.999), ε = 1e-8, λ = 0.01.
        // Step 1, g = [0.5, -1]: m̂ = g, v̂ = g², so p ← 0.999·p − 0.1·sign(g) = [0.899, -1.898].
        // Step 2, g = [0.5, 0]: m = [0.095, -0.09], v = [0.00049975, 0.000999], m̂ = m / 0.19,
        // v̂ = v / 0.001999, p ← 0.999·p − 0.1·m̂ / √v̂ = [0.798101, -1.829096].
        var p: [Float] = [1, -2]
        var moments = AdamWMoments(count: 2)
        let settings = AdamWSettings(beta1: 0.9, beta2: 0.999, epsilon: 1e-8, weightDecay: 0.01)
        AdamW.update(&p, gradient: [0.5, -1], moments: &moments, step: 1, learningRate: 0.1, settings: settings)
        XCTAssertEqual(p[0], 0.899, accuracy: 1e-6)
        XCTAssertEqual(p[1], -1.898, accuracy: 1e-6)
        AdamW.update(&p, gradient: [0.5, 0], moments: &moments, step: 2, learningRate: 0.1, settings: settings)
        XCTAssertEqual(p[0], 0.798101, accuracy: 1e-5)
        XCTAssertEqual(p[1], -1.829096, accuracy: 1e-5)
        XCTAssertEqual(moments.m[1], -0.09, accuracy: 1e-7)
        XCTAssertEqual(moments.v[0], 0.00049975, accuracy: 2e-8)  // float32: 1 − 0.999 is not exact
    }

    func testZeroGradientOnlyDecays() {
        var p: [Float] = [2]
        var moments = AdamWMoments(count: 1)
        AdamW.update(&p, gradient: [0], moments: &moments, step: 1, learningRate: 0.5, settings: AdamWSettings(weightDecay: 0.1))
        XCTAssertEqual(p[0], 2 * (1 - 0.05), accuracy: 1e-6)
    }

    /// The vectorised, threaded update on a tensor with a ragged tail, zero gradients (v = 0 must give a zero
    /// step, not NaN) and gradients across magnitudes, against PyTorch's formula evaluated in Double.
    func testAdamWOnALargeTensorMatchesTheFormula() {
        let count = 300_007
        var random = SystemRandomNumberGenerator()
        var p = (0..<count).map { _ in Float.random(in: -1...1, using: &random) }
        var moments = AdamWMoments(count: count)
        var (m, v) = ([Double](repeating: 0, count: count), [Double](repeating: 0, count: count))
        var expected = p.map(Double.init)
        let settings = AdamWSettings(weightDecay: 0.01)
        let (lr, scale) = (Float(1e-3), Float(0.5))
        for t in 1...3 {
            let gradient = (0..<count).map { i -> Float in
                i % 5 == 0 ? 0 : Float.random(in: -1...1, using: &random) * powf(10, Float(i % 7) - 4)
            }
            AdamW.update(&p, gradient: gradient, gradientScale: scale, moments: &moments, step: t, learningRate: lr, settings: settings)
            let (b1, b2, eps) = (Double(settings.beta1), Double(settings.beta2), Double(settings.epsilon))
            let c1 = 1 - pow(b1, Double(t)), c2 = 1 - pow(b2, Double(t))
            for i in 0..<count {
                let g = Double(gradient[i]) * Double(scale)
                m[i] = b1 * m[i] + (1 - b1) * g
                v[i] = b2 * v[i] + (1 - b2) * g * g
                expected[i] = expected[i] * (1 - Double(lr) * Double(settings.weightDecay))
                    - Double(lr) / c1 * m[i] / (v[i].squareRoot() / c2.squareRoot() + eps)
            }
        }
        var worst = 0.0
        for i in 0..<count {
            XCTAssert(p[i].isFinite, "element \(i)")
            worst = max(worst, abs(Double(p[i]) - expected[i]))
        }
        XCTAssertLessThan(worst, 1e-6, "three steps of lr 1e-3 move each weight by up to 3e-3")
        XCTAssertEqual(p[0], Float(expected[0]), accuracy: 1e-6, "a weight whose gradient was always 0 only decays")
    }

    func testSumOfSquaresOnALargeTensor() {
        let count = 1_000_003
        let x = (0..<count).map { Float($0 % 1000) / 1000 - 0.5 }
        let exact = x.reduce(0.0) { $0 + Double($1) * Double($1) }
        XCTAssertEqual(sumOfSquares(x), exact, accuracy: exact * 1e-6)
        XCTAssertEqual(sumOfSquares([]), 0)
        var bad = x
        bad[count - 1] = .nan
        XCTAssertFalse(sumOfSquares(bad).isFinite, "a NaN gradient must make the norm non-finite (the step is then skipped)")
        bad[count - 1] = .infinity
        XCTAssertFalse(sumOfSquares(bad).isFinite)
    }

    func testClipGradientNorm() {
        // Norm of [3, 4] and [12] is 13; clipping to 6.5 halves them (up to the 1e-6 guard).
        var gradients: [[Float]] = [[3, 4], [12]]
        XCTAssertEqual(clipGradientNorm(&gradients, maxNorm: 6.5), 13, accuracy: 1e-5)
        XCTAssertEqual(gradients[0][0], 1.5, accuracy: 1e-5)
        XCTAssertEqual(gradients[1][0], 6, accuracy: 1e-5)
        var small: [[Float]] = [[0.3, 0.4]]
        XCTAssertEqual(clipGradientNorm(&small, maxNorm: 1), 0.5, accuracy: 1e-6)
        XCTAssertEqual(small, [[0.3, 0.4]], "under the limit nothing changes")
    }

    func testSchedules() {
        XCTAssertEqual(LearningRateSchedule.constant(1e-3).rate(step: 77), 1e-3)
        let warm = LearningRateSchedule.warmupConstant(1, warmup: 4)
        XCTAssertEqual((0..<6).map { warm.rate(step: $0) }, [0.25, 0.5, 0.75, 1, 1, 1])
        let linear = LearningRateSchedule.warmupLinear(1, warmup: 2, total: 6)
        XCTAssertEqual((0..<7).map { linear.rate(step: $0) }, [0.5, 1, 1, 0.75, 0.5, 0.25, 0])
        let cosine = LearningRateSchedule.warmupCosine(2, warmup: 1, total: 5, minimum: 0.1)
        // After warm-up: 2·(0.1 + 0.9·(1 + cos(π·k/4))/2) for k = 0...4.
        let expected: [Float] = [2, 2, 2 * (0.1 + 0.45 * (1 + 0.70710678)), 1.1, 2 * (0.1 + 0.45 * (1 - 0.70710678)), 0.2]
        for (step, value) in expected.enumerated() {
            XCTAssertEqual(cosine.rate(step: step), value, accuracy: 1e-5, "step \(step)")
        }
        XCTAssertEqual(cosine.rate(step: 50), 0.2, accuracy: 1e-6, "stays at the minimum after the end")
    }
}
