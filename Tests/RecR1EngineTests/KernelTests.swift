import Foundation
import XCTest

@testable import RecR1Kernels

/// The element-wise kernels against the same formulas in Double.
final class KernelTests: EngineTestCase {
    func values(_ n: Int, spread: Double, seed: UInt64) -> [Float] {
        var rng = SplitMix(seed: seed)
        return (0..<n).map { _ in Float(Double(rng.normal()) * spread) }
    }

    func testSoftmaxAndLogSumExp() {
        for (n, spread) in [(1, 1.0), (15, 3.0), (16, 10.0), (33, 40.0), (49152, 5.0), (1000, 200.0)] {
            var x = values(n, spread: spread, seed: UInt64(n))
            let maximum = Double(x.max()!)
            let sum = x.reduce(0.0) { $0 + exp(Double($1) - maximum) }
            let expected = maximum + log(sum)
            XCTAssertEqual(Double(Kernels.logSumExp(x, n)), expected, accuracy: 1e-5 * max(1, abs(expected)), "n \(n)")
            let reference = x.map { exp(Double($0) - maximum) / sum }
            x.withUnsafeMutableBufferPointer { Kernels.softmax($0.baseAddress!, n) }
            for i in 0..<n {
                XCTAssertEqual(Double(x[i]), reference[i], accuracy: 2e-5 * reference[i] + 1e-12, "n \(n), i \(i)")  // float sums of n terms
            }
        }
    }

    func testSwiGLU() {
        let n = 1037
        var gate = values(n, spread: 6, seed: 3) + [-100, 100, 0]
        let up = values(n + 3, spread: 2, seed: 4)
        let expected = zip(gate, up).map { g, u in Double(g) / (1 + exp(-Double(g))) * Double(u) }
        gate.withUnsafeMutableBufferPointer { Kernels.swiGLU($0.baseAddress!, up, n + 3) }
        for i in 0..<(n + 3) {
            XCTAssertEqual(Double(gate[i]), expected[i], accuracy: 1e-6 * abs(expected[i]) + 1e-7, "i \(i)")
        }
    }
}
