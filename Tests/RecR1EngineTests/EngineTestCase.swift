import RecR1Kernels
import XCTest

/// The engine's numeric tests run on the reference path: OpenBLAS loaded, fp32 products. Set before every
/// test, because the whole test bundle shares one process and a test that starts a daemon leaves
/// `MatMul.backend` at the fastest backend (bf16 on an AMX CPU).
class EngineTestCase: XCTestCase {
    override func setUp() {
        super.setUp()
        try? BLAS.load()
        MatMul.use(.openblas)
    }
}
