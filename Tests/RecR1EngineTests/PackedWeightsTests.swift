import Foundation
import RecR1Kernels
import XCTest

@testable import RecR1Learning
@testable import RecR1Model

/// Weights packed into oneDNN's layout: the same products as the plain weights, re-packed when the weights
/// change, primitives made once per shape; and mixed-precision training's gradients near fp32's.
final class PackedWeightsTests: EngineTestCase {
    override func setUpWithError() throws {
        try XCTSkipIf(MatMul.dnnlAvailable != nil, "oneDNN is not available: \(MatMul.dnnlAvailable ?? "")")
    }

    func testPackedProductsEqualThePlainOnes() throws {
        var rng = SplitMix(seed: 3)
        for backend in MatMul.dnnlBackendsHere {
            for (outDim, inDim) in [(48, 32), (50, 37), (96, 40)] {
                let w = (0..<(outDim * inDim)).map { _ in rng.normal() }
                let packed = try XCTUnwrap(PackedMatrix(outDim: outDim, inDim: inDim, bf16: backend == .onednnBF16))
                try w.withUnsafeBufferPointer {
                    try packed.pack($0.baseAddress!, role: .forward)
                    try packed.pack($0.baseAddress!, role: .backward)
                }
                for rows in [17, 40] {
                    for role in [PackedMatrix.Role.forward, .backward] {
                        let (k, n) = role == .forward ? (inDim, outDim) : (outDim, inDim)
                        let x = (0..<(rows * k)).map { _ in rng.normal() }
                        let y0 = (0..<(rows * n)).map { _ in rng.normal() }
                        for accumulate in [false, true] {
                            // The plain product on the same backend, and OpenBLAS's in fp32.
                            func plain(_ on: MatMul.Backend) -> [Float] {
                                MatMul.backend = on
                                var y = y0
                                MatMul.gemm(transA: false, transB: role == .forward, m: rows, n: n, k: k, a: x, lda: k, b: w,
                                            ldb: inDim, beta: accumulate ? 1 : 0, c: &y, ldc: n)
                                return y
                            }
                            let same = plain(backend), reference = plain(.openblas)
                            MatMul.backend = backend
                            var y = y0
                            if role == .forward {
                                MatMul.linear(&y, x, w, packed: packed, rows: rows, inDim: inDim, outDim: outDim, accumulate: accumulate)
                            } else {
                                MatMul.linearBackward(&y, x, w, packed: packed, rows: rows, inDim: inDim, outDim: outDim,
                                                      accumulate: accumulate)
                            }
                            XCTAssertNil(MatMul.lastBackendError)
                            let scale = Float(k).squareRoot()
                            let what = "\(backend) \(outDim)x\(inDim) rows \(rows) \(role) accumulate \(accumulate)"
                            XCTAssertLessThan(maxAbsDifference(y, same), 1e-4 * scale, what)
                            XCTAssertLessThan(maxAbsDifference(y, reference), (backend == .onednnBF16 ? 2e-2 : 1e-4) * scale, what)
                        }
                    }
                }
            }
        }
    }

    /// Sequences long enough (> 16 rows) that the products take the packed copies.
    let sequences: [[Int32]] = [Array(0..<24).map { Int32($0 * 7 % 50) }, Array(0..<20).map { Int32($0 * 3 % 50) }]
    let scored = [4..<24, 2..<20]

    func logprobs(_ model: Decoder) -> [Float] {
        TrainingPass(decoder: model).forward(sequences: sequences, scored: scored).flatMap { $0 }
    }

    func testPackedCopiesFollowEveryChangeOfTheWeights() {
        for backend in MatMul.dnnlBackendsHere {
            MatMul.backend = backend
            let model = DecoderTests.randomModel(seed: 8, qkvBias: true, tied: true)
            let before = logprobs(model)
            XCTAssertGreaterThan(model.packedWeights.bytes, 0, "the products used packed copies")
            // An optimiser step (full fine-tuning) changes every matrix.
            let pass = TrainingPass(decoder: model)
            let result = SFT.loss(pass.forward(sequences: sequences, scored: scored).map { ScoredSequence(logprobs: $0) })
            let gradients = ModelGradients(config: model.config)
            pass.backward(result.gradients, into: gradients)
            XCTAssertTrue(AdamWOptimizer(schedule: .constant(0.05)).apply(gradients, to: model).applied)
            let after = logprobs(model)
            XCTAssertGreaterThan(maxAbsDifference(after, before), 1e-3, "the step changed the policy")
            // A decoder made fresh from the stepped weights packs them anew: the same numbers, bit for bit.
            XCTAssertEqual(after, logprobs(Decoder(config: model.config, weights: model.weights)), "\(backend)")
            // Replacing the weights (a restored checkpoint) re-packs too.
            let other = DecoderTests.randomModel(seed: 9, qkvBias: true, tied: true)
            model.updateWeights { $0 = other.weights }
            XCTAssertEqual(logprobs(model), logprobs(other), "\(backend)")
        }
    }

    func testProductsAreMadeOncePerShape() throws {
        try XCTSkipIf(MatMul.bf16Available != nil, "bf16: \(MatMul.bf16Available ?? "")")
        MatMul.backend = .onednnBF16
        let model = DecoderTests.randomModel(seed: 4)
        _ = logprobs(model)
        let made = MatMul.dnnlProductsCached
        XCTAssertGreaterThan(made, 0)
        for _ in 0..<3 { _ = logprobs(model) }
        XCTAssertEqual(MatMul.dnnlProductsCached, made, "the same shapes reuse their primitives")
    }

    /// Mixed precision: bf16 products, fp32 everything else. The gradient stays near the fp32 one.
    func testBF16GradientsStayNearFP32() throws {
        try XCTSkipIf(MatMul.bf16Available != nil, "bf16: \(MatMul.bf16Available ?? "")")
        let model = DecoderTests.randomModel(seed: 12, qkvBias: false, tied: false)
        func gradient(_ backend: MatMul.Backend) -> [Float] {
            MatMul.backend = backend
            let pass = TrainingPass(decoder: model)
            let result = SFT.loss(pass.forward(sequences: sequences, scored: scored).map { ScoredSequence(logprobs: $0) })
            let gradients = ModelGradients(config: model.config)
            pass.backward(result.gradients, into: gradients)
            var flat: [Float] = []
            var weights = model.weights
            weights.forEachParameter(gradients) { _, g in flat += g }
            return flat
        }
        let fp32 = gradient(.openblas), bf16 = gradient(.onednnBF16)
        let norm = fp32.reduce(0) { $0 + $1 * $1 }.squareRoot()
        let error = zip(fp32, bf16).reduce(0) { $0 + ($1.0 - $1.1) * ($1.0 - $1.1) }.squareRoot()
        print("bf16 gradient: relative error \(error / norm)")
        XCTAssertGreaterThan(error, 0, "bf16 products were used")
        XCTAssertLessThan(error / norm, 0.03)
    }
}

extension MatMul {
    /// The oneDNN backends this CPU runs: fp32 everywhere oneDNN loads, bf16 where it has kernels for it.
    static var dnnlBackendsHere: [Backend] { bf16Available == nil ? [.onednnF32, .onednnBF16] : [.onednnF32] }
}
