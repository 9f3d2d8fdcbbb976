import CRecR1DNNL
import CRecR1Kernels
import CRecR1Support
import Dispatch
import Foundation

/// The process's OpenBLAS, loaded at run time so that its kernel set suits this CPU.
///
/// OpenBLAS 0.3.21 picks its kernels in a load-time constructor from `OPENBLAS_CORETYPE`, and does not
/// recognise recent Xeons (it falls back to "Prescott", 4x slower sgemm). Linking it would run that
/// constructor before `main`, so recr1 never links it: `BLAS.load()` sets the variable for this CPU
/// (unless the user set it) and then `dlopen`s the library. Every matrix product goes through `sgemm`.
public enum BLAS {
    public struct LoadError: Error, CustomStringConvertible {
        public let description: String
    }

    /// Loads OpenBLAS once per process; later calls return at once. `threads` > 0 sets its thread count.
    public static func load(threads: Int = 0) throws {
        var message = [CChar](repeating: 0, count: 256)
        if recr1_blas_load(&message, message.count) != 0 {
            throw LoadError(description: String(cString: message))
        }
        if threads > 0 { recr1_blas_set_threads(Int32(threads)) }
    }

    /// The kernel set OpenBLAS runs, e.g. "SkylakeX" ("unavailable" before `load`).
    public static var core: String { String(cString: recr1_blas_core()) }
    public static var threads: Int { Int(recr1_blas_threads()) }
    /// The core recr1 asks for on this CPU, or nil when OpenBLAS's own choice is right.
    public static var preferredCore: String? { recr1_blas_preferred_core().map { String(cString: $0) } }
    /// True when something loaded OpenBLAS before `load` could choose its core.
    public static var wasPreloaded: Bool { recr1_blas_was_preloaded() != 0 }

    /// Row-major C[m×n] = alpha · op(A) · op(B) + beta · C, where op(A) is m×k and op(B) is k×n.
    @inline(__always)
    public static func sgemm(
        transA: Bool, transB: Bool, m: Int, n: Int, k: Int, alpha: Float = 1,
        a: UnsafePointer<Float>, lda: Int, b: UnsafePointer<Float>, ldb: Int,
        beta: Float = 0, c: UnsafeMutablePointer<Float>, ldc: Int
    ) {
        recr1_parallel_park()  // OpenBLAS's threads need the cores our pool's workers would spin on
        WorkClock.measure(.products) {
            recr1_sgemm(transA ? 1 : 0, transB ? 1 : 0, Int32(m), Int32(n), Int32(k), alpha, a, Int32(lda),
                        b, Int32(ldb), beta, c, Int32(ldc))
        }
    }
}

/// The instruction-set extensions that matter to recr1's kernels, as this CPU and OS allow them.
public struct CPUFeatures: CustomStringConvertible {
    public let avx2, fma, avx512f, avx512bw, avx512dq, avx512vl, avx512bf16, amxTile, amxBF16: Bool
    /// cpuid's vendor string ("GenuineIntel", "AuthenticAMD").
    public let vendor: String

    public static let current = CPUFeatures(recr1_cpu_detect())

    init(_ f: recr1_cpu_features) {
        vendor = withUnsafeBytes(of: f.vendor) { String(decoding: $0.prefix(12).filter { $0 != 0 }, as: UTF8.self) }
        avx2 = f.avx2 != 0; fma = f.fma != 0
        avx512f = f.avx512f != 0; avx512bw = f.avx512bw != 0; avx512dq = f.avx512dq != 0
        avx512vl = f.avx512vl != 0; avx512bf16 = f.avx512_bf16 != 0
        amxTile = f.amx_tile != 0; amxBF16 = f.amx_bf16 != 0
    }

    public var description: String {
        let named: [(String, Bool)] = [
            ("avx2", avx2), ("fma", fma), ("avx512f", avx512f), ("avx512bw", avx512bw), ("avx512dq", avx512dq),
            ("avx512vl", avx512vl), ("avx512bf16", avx512bf16), ("amx-tile", amxTile), ("amx-bf16", amxBF16),
        ]
        return named.filter { $0.1 }.map { $0.0 }.joined(separator: " ")
    }
}

/// The one seam for matrix products: every linear layer calls this, so a faster backend (oneDNN, bf16)
/// replaces one function.
public enum MatMul {
    /// Who multiplies large matrices: OpenBLAS (fp32; the reference path), or oneDNN's matmul in fp32 or in
    /// bf16 (inputs rounded to bfloat16, fp32 accumulation and output; AMX where the CPU has it).
    public enum Backend: String, CaseIterable {
        case openblas, onednnF32 = "onednn-f32", onednnBF16 = "onednn-bf16"
    }

    /// The process's backend; the engine's tests run on OpenBLAS, recr1d picks `fastestBackend` unless told.
    public static var backend = Backend.openblas

    /// Chooses the backend and where few-row products hand over to it: on AMX, oneDNN's bf16 products of
    /// 8 rows run several times faster than the C kernel (measured on the Xeon where #6 was written), so
    /// products of more than 4 rows go to oneDNN there; elsewhere the C kernel keeps up to 16 rows (on AVX-512
    /// without AMX it decodes 8 rows faster than oneDNN bf16: `recr1d bench --skinny-rows` measures it).
    public static func use(_ chosen: Backend) {
        backend = chosen
        skinnyRowLimit = chosen == .onednnBF16 && CPUFeatures.current.amxBF16 ? 4 : 16
    }

    /// oneDNN bf16 where its bf16 products outrun fp32: with AMX-BF16, and with AVX512-BF16 on AMD (Zen 4 and
    /// later: 914–960 GFLOP/s against OpenBLAS fp32's 428 on the AMD EPYC of docs/performance.md). Intel's
    /// AVX512-BF16 without AMX ran slower than fp32 when #6 measured it on a Xeon, so there, and everywhere
    /// else, OpenBLAS.
    public static var fastestBackend: Backend {
        let cpu = CPUFeatures.current
        let bf16Pays = cpu.amxBF16 || (cpu.avx512bf16 && cpu.vendor == "AuthenticAMD")
        return bf16Pays && bf16Available == nil ? .onednnBF16 : .openblas
    }

    /// nil when oneDNN's bf16 products run on this CPU, else why not: oneDNN 2.6 has bf16 kernels for
    /// AVX-512 (avx512_core: F, BW, VL, DQ) and AMX only, and fails every bf16 product elsewhere (AVX2).
    public static var bf16Available: String? {
        if let problem = dnnlAvailable { return problem }
        let cpu = CPUFeatures.current
        return cpu.avx512f && cpu.avx512bw && cpu.avx512vl && cpu.avx512dq
            ? nil : "oneDNN's bf16 products need AVX-512 (avx512_core); this CPU has \(cpu)"
    }

    /// nil when oneDNN runs here, else why not.
    public static var dnnlAvailable: String? {
        var message = [CChar](repeating: 0, count: 256)
        return recr1_dnnl_available(&message, Int32(message.count)) != 0 ? nil : String(cString: message)
    }

    /// The implementation oneDNN picks for an m×k by k×n product (e.g. "brg:avx512_core_amx_bf16").
    public static func dnnlImplementation(m: Int, n: Int, k: Int, bf16: Bool) -> String {
        String(cString: recr1_dnnl_implementation(Int32(m), Int32(n), Int32(k), bf16 ? 1 : 0))
    }

    /// The last oneDNN failure (the product then ran on OpenBLAS instead), for Info and logs.
    public private(set) static var lastBackendError: String?

    /// Products the calling thread keeps ready on oneDNN (one per shape, made on first use).
    public static var dnnlProductsCached: Int { Int(recr1_dnnl_products_cached()) }

    /// Whether a packed copy serves a product on the current backend: its type must be the backend's
    /// (`fp32` products on a bf16 backend take the fp32 weights).
    static func usable(_ packed: PackedMatrix?, fp32: Bool) -> PackedMatrix? {
        guard let packed, backend != .openblas, packed.bf16 == (backend == .onednnBF16 && !fp32) else { return nil }
        return packed
    }

    /// y[rows × n] = x · op(W) + beta · y from W's packed copy (forward: x · Wᵀ, n = outDim; backward: x · W,
    /// n = inDim); false when it could not (the caller then multiplies by the fp32 weight).
    static func packedProduct(_ packed: PackedMatrix, _ role: PackedMatrix.Role, rows: Int, x: UnsafePointer<Float>,
                              beta: Float, y: UnsafeMutablePointer<Float>) -> Bool {
        let (k, n) = role == .forward ? (packed.inDim, packed.outDim) : (packed.outDim, packed.inDim)
        recr1_parallel_park()
        var error: String?
        let done = WorkClock.measure(.products) {
            packed.product(role, rows: rows, x: x, ldx: k, beta: beta, y: y, ldy: n, error: &error)
        }
        if let error { lastBackendError = error }
        return done
    }

    /// dx[rows × inDim] (=, or += with `accumulate`) dy[rows × outDim] · W: the input gradient of a linear
    /// layer whose weight W is [outDim × inDim].
    public static func linearBackward(_ dx: UnsafeMutablePointer<Float>, _ dy: UnsafePointer<Float>, _ w: UnsafePointer<Float>,
                                      packed: PackedMatrix? = nil, rows: Int, inDim: Int, outDim: Int, accumulate: Bool) {
        if let packed = usable(packed, fp32: false),
           packedProduct(packed, .backward, rows: rows, x: dy, beta: accumulate ? 1 : 0, y: dx) { return }
        gemm(transA: false, transB: false, m: rows, n: inDim, k: outDim, a: dy, lda: outDim, b: w, ldb: inDim,
             beta: accumulate ? 1 : 0, c: dx, ldc: inDim)
    }

    /// Row-major C[m×n] = alpha · op(A) · op(B) + beta · C on the chosen backend: every large product of the
    /// engine comes here (small ones and attention stay on OpenBLAS).
    public static func gemm(transA: Bool, transB: Bool, m: Int, n: Int, k: Int, alpha: Float = 1,
                            a: UnsafePointer<Float>, lda: Int, b: UnsafePointer<Float>, ldb: Int,
                            beta: Float = 0, c: UnsafeMutablePointer<Float>, ldc: Int, fp32: Bool = false) {
        if backend != .openblas {
            recr1_parallel_park()
            var message = [CChar](repeating: 0, count: 256)
            let status = WorkClock.measure(.products) {
                recr1_dnnl_gemm(transA ? 1 : 0, transB ? 1 : 0, Int32(m), Int32(n), Int32(k), alpha, a, Int32(lda), b,
                                Int32(ldb), beta, c, Int32(ldc), backend == .onednnBF16 && !fp32 ? 1 : 0, &message,
                                Int32(message.count))
            }
            if status == 0 { return }
            lastBackendError = String(cString: message)
        }
        BLAS.sgemm(transA: transA, transB: transB, m: m, n: n, k: k, alpha: alpha, a: a, lda: lda, b: b, ldb: ldb,
                   beta: beta, c: c, ldc: ldc)
    }

    /// Up to this many rows use the skinny C kernel (weights streamed once); more use OpenBLAS's GEMM,
    /// whose repacking of the weight pays off only when many rows share it.
    public static var skinnyRowLimit = 16
    /// Whether few-row products use a weight's block-format copy when it has one.
    public static var useQuantized = true

    /// out[rows × outDim] = x[rows × inDim] · wᵀ (+ bias), or with `accumulate` out += x · wᵀ, where w is
    /// [outDim × inDim] row-major. `quantized`, the same matrix in a GGUF block format, serves few rows;
    /// `packed`, its oneDNN copy, serves many on a oneDNN backend. `fp32` keeps a bf16 backend's product in fp32.
    public static func linear(_ out: UnsafeMutablePointer<Float>, _ x: UnsafePointer<Float>, _ w: UnsafePointer<Float>,
                              quantized: QuantizedMatrix? = nil, packed: PackedMatrix? = nil, bias: UnsafePointer<Float>? = nil,
                              rows: Int, inDim: Int, outDim: Int, accumulate: Bool = false, fp32: Bool = false) {
        let beta: Float = accumulate ? 1 : 0
        if rows <= skinnyRowLimit {
            WorkClock.measure(.products) {
                forEachOutputSlice(outDim) { slice in
                    fewRows(slice, out, x, w, quantized: quantized, rows: rows, inDim: inDim, outDim: outDim, beta: beta)
                }
            }
        } else if let packed = usable(packed, fp32: fp32), packedProduct(packed, .forward, rows: rows, x: x, beta: beta, y: out) {
            // done on the packed copy
        } else {
            gemm(transA: false, transB: true, m: rows, n: outDim, k: inDim, a: x, lda: inDim, b: w, ldb: inDim,
                 beta: beta, c: out, ldc: outDim, fp32: fp32)
        }
        if let bias {
            for r in 0..<rows { Kernels.axpy(1, bias, out + r * outDim, outDim) }
        }
    }

    /// One weight of `linear(many:)`: out[rows × outDim] = x · wᵀ (+ bias).
    public struct Projection {
        public var out: UnsafeMutablePointer<Float>
        public var weight: [Float]
        public var quantized: QuantizedMatrix?
        public var packed: PackedMatrix?
        public var bias: [Float]?
        public var outDim: Int

        public init(out: UnsafeMutablePointer<Float>, weight: [Float], quantized: QuantizedMatrix?, packed: PackedMatrix? = nil,
                    bias: [Float]?, outDim: Int) {
            (self.out, self.weight, self.quantized, self.packed, self.bias, self.outDim) = (out, weight, quantized, packed, bias, outDim)
        }
    }

    /// Several products of the same input (Q, K and V; gate and up). Few rows take them in one parallel
    /// pass, each thread its slice of every output: a decoding step then wakes the threads once, not once
    /// a matrix. More rows go to `linear` one by one.
    public static func linear(many projections: [Projection], _ x: UnsafePointer<Float>, rows: Int, inDim: Int) {
        guard rows <= skinnyRowLimit, projections.count > 1, Parallel.threads > 1 else {
            for p in projections {
                linear(p.out, x, p.weight, quantized: p.quantized, packed: p.packed, bias: p.bias, rows: rows, inDim: inDim,
                       outDim: p.outDim)
            }
            return
        }
        let parts = Parallel.threads
        WorkClock.measure(.products) {
            Parallel.forEach(parts) { part in
                for p in projections {
                    let slice = outputSlice(part, of: parts, p.outDim)
                    guard !slice.isEmpty else { continue }
                    p.weight.withUnsafeBufferPointer { w in
                        fewRows(slice, p.out, x, w.baseAddress!, quantized: p.quantized, rows: rows, inDim: inDim,
                                outDim: p.outDim, beta: 0)
                    }
                }
            }
        }
        for p in projections {
            guard let bias = p.bias else { continue }
            for r in 0..<rows { Kernels.axpy(1, bias, p.out + r * p.outDim, p.outDim) }
        }
    }

    /// Outputs `slice` of a few-row product, out = x · wᵀ + beta · out: from the weight's block-format copy
    /// when it has one (and `useQuantized`), else from the fp32 weight.
    private static func fewRows(_ slice: Range<Int>, _ out: UnsafeMutablePointer<Float>, _ x: UnsafePointer<Float>,
                                _ w: UnsafePointer<Float>, quantized: QuantizedMatrix?, rows: Int, inDim: Int, outDim: Int,
                                beta: Float) {
        if useQuantized, let quantized {
            precondition(quantized.rows == outDim && quantized.cols == inDim)
            quantized.blocks.withUnsafeBufferPointer { blocks in
                recr1_quantized_rows(quantized.type.rawValue, Int32(rows), Int32(slice.lowerBound), Int32(slice.upperBound),
                                     Int32(inDim), x, blocks.baseAddress!, out, Int32(outDim), beta)
            }
        } else {
            recr1_linear_rows(Int32(rows), Int32(slice.lowerBound), Int32(slice.upperBound), Int32(inDim), x, w, out,
                              Int32(outDim), beta)
        }
    }

    /// Thread `part` of `parts`'s share of the outputs 0..<n: a multiple of 4 (the kernels block by 4); the
    /// shares together cover n.
    private static func outputSlice(_ part: Int, of parts: Int, _ n: Int) -> Range<Int> {
        let chunk = ((n + parts - 1) / parts + 3) / 4 * 4
        let start = min(part * chunk, n)
        return start..<min(start + chunk, n)
    }

    /// Splits the outputs 0..<n into one slice per thread and runs them concurrently; small n runs inline.
    private static func forEachOutputSlice(_ n: Int, _ body: (Range<Int>) -> Void) {
        let parts = n >= 256 ? Parallel.threads : 1
        if parts == 1 {
            body(0..<n)
            return
        }
        Parallel.forEach(parts) { part in
            let slice = outputSlice(part, of: parts, n)
            if !slice.isEmpty { body(slice) }
        }
    }
}
