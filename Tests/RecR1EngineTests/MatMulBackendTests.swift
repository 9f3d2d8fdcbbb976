import Foundation
import RecR1Kernels
import XCTest

@testable import RecR1Learning
@testable import RecR1Model
@testable import RecR1Policy

/// oneDNN behind the matmul seam: the same products as OpenBLAS (fp32 to rounding, bf16 to bf16's precision),
/// and the decoder's log-probs in bf16 near the fp32 golden values.
final class MatMulBackendTests: XCTestCase {
    override class func setUp() { try? BLAS.load() }
    override func tearDown() { MatMul.use(.openblas) }

    func random(_ count: Int, _ rng: inout SplitMix) -> [Float] { (0..<count).map { _ in rng.normal() } }

    func testProductsAgreeWithOpenBLAS() throws {
        try XCTSkipIf(MatMul.dnnlAvailable != nil, "oneDNN is not available: \(MatMul.dnnlAvailable ?? "")")
        var rng = SplitMix(seed: 11)
        // Shapes of the engine (and odd ones), every transposition, alpha and beta, padded leading dimensions.
        let cases: [(m: Int, n: Int, k: Int, ta: Bool, tb: Bool, alpha: Float, beta: Float, pad: Int)] = [
            (37, 96, 64, false, true, 1, 0, 0), (64, 48, 128, false, false, 1, 1, 3), (96, 64, 37, true, false, 0.5, 0, 0),
            (17, 33, 65, true, true, 2, 0.5, 5), (128, 576, 1536, false, false, 1, 1, 0), (1, 5, 3, false, true, 1, 0, 1),
        ]
        for c in cases {
            let lda = (c.ta ? c.m : c.k) + c.pad, ldb = (c.tb ? c.k : c.n) + c.pad, ldc = c.n + c.pad
            let a = random((c.ta ? c.k : c.m) * lda, &rng), b = random((c.tb ? c.n : c.k) * ldb, &rng)
            let c0 = random(c.m * ldc, &rng)
            func run(_ backend: MatMul.Backend) -> [Float] {
                MatMul.backend = backend
                var out = c0
                MatMul.gemm(transA: c.ta, transB: c.tb, m: c.m, n: c.n, k: c.k, alpha: c.alpha, a: a, lda: lda, b: b, ldb: ldb,
                            beta: c.beta, c: &out, ldc: ldc)
                return out
            }
            let reference = run(.openblas)
            let scale = Float(c.k).squareRoot() * max(1, c.alpha)
            XCTAssertLessThan(maxAbsDifference(run(.onednnF32), reference), 1e-4 * scale, "\(c)")
            XCTAssertLessThan(maxAbsDifference(run(.onednnBF16), reference), 2e-2 * scale, "\(c)")
            XCTAssertNil(MatMul.lastBackendError)
            // Padding between rows is left alone.
            let out = run(.onednnBF16)
            for row in 0..<c.m { for j in c.n..<ldc { XCTAssertEqual(out[row * ldc + j], c0[row * ldc + j]) } }
        }
    }

    func testBF16LogprobsStayNearTheReference() throws {
        try XCTSkipIf(MatMul.dnnlAvailable != nil, "oneDNN is not available")
        let model = try XCTUnwrap(ParityTests.model)
        let data = try Data(contentsOf: ParityTests.golden.appendingPathComponent("logprobs-smollm2.json"))
        let pairs = try XCTUnwrap((JSONSerialization.jsonObject(with: data) as? [String: Any])?["pairs"] as? [[String: Any]])
        let items = pairs.map { pair in
            (prompt: (pair["prompt_ids"] as! [Int]).map(Int32.init), completion: (pair["completion_ids"] as! [Int]).map(Int32.init))
        }
        let golden = pairs.map { ($0["logprobs"] as! [Double]).map(Float.init) }
        var worst: [MatMul.Backend: Float] = [:]
        for backend in [MatMul.Backend.onednnF32, .onednnBF16] {
            MatMul.backend = backend
            // Whole sequences at once, so that the products have more rows than the skinny kernels take.
            let scored = TrainingPass(decoder: model).forward(sequences: items.map { $0.prompt + $0.completion },
                                                               scored: items.map { $0.prompt.count..<($0.prompt.count + $0.completion.count) })
            worst[backend] = zip(scored, golden).map { maxAbsDifference($0, $1) }.max()!
        }
        print("log-prob error against PyTorch fp32: onednn-f32 \(worst[.onednnF32]!), onednn-bf16 \(worst[.onednnBF16]!)")
        XCTAssertLessThan(worst[.onednnF32]!, 1e-3)
        XCTAssertLessThan(worst[.onednnBF16]!, 2e-2 * 10, "bf16 stays within bf16's reach")
    }
}
