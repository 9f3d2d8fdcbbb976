import CRecR1Kernels
import Foundation

/// Parallel loops of the engine (norms, SwiGLU, softmax, attention rows, the slices of few-row products) on
/// a small fork-join pool (recr1_parallel_for): its workers spin briefly between loops, because a decoding
/// step runs about 150 loops of tens of microseconds and waking a sleeping thread costs as much.
public enum Parallel {
    public static var threads = max(1, ProcessInfo.processInfo.activeProcessorCount)

    /// Runs body(part) for part in 0..<parts across the threads; returns when all are done.
    public static func forEach(_ parts: Int, _ body: (Int) -> Void) {
        if parts <= 1 || threads <= 1 {
            for part in 0..<parts { body(part) }
            return
        }
        withoutActuallyEscaping(body) { body in
            var task = body
            withUnsafeMutablePointer(to: &task) { pointer in
                recr1_parallel_for(Int32(parts), Int32(threads), { context, part in
                    context!.assumingMemoryBound(to: ((Int) -> Void).self).pointee(Int(part))
                }, pointer)
            }
        }
    }

    /// Splits 0..<n into one contiguous range per thread and runs them concurrently; small n runs inline.
    public static func rows(_ n: Int, minimumPerThread: Int = 8, _ body: (Range<Int>) -> Void) {
        let parts = min(threads, n / minimumPerThread)
        if parts <= 1 {
            body(0..<n)
            return
        }
        let chunk = (n + parts - 1) / parts
        forEach(parts) { part in
            let start = part * chunk
            if start < n { body(start..<min(start + chunk, n)) }
        }
    }
}
