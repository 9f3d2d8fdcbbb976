import Dispatch
import Foundation

/// Row-parallel loops for the element-wise work of a pass (norms, SwiGLU, softmax, log-softmax); `threads`
/// also sets how many slices the skinny matrix kernels split their outputs into.
public enum Parallel {
    public static var threads = max(1, ProcessInfo.processInfo.activeProcessorCount)

    /// Splits 0..<n into one contiguous range per thread and runs them concurrently; small n runs inline.
    public static func rows(_ n: Int, minimumPerThread: Int = 8, _ body: (Range<Int>) -> Void) {
        let parts = min(threads, n / minimumPerThread)
        if parts <= 1 {
            body(0..<n)
            return
        }
        let chunk = (n + parts - 1) / parts
        DispatchQueue.concurrentPerform(iterations: parts) { part in
            let start = part * chunk
            if start < n { body(start..<min(start + chunk, n)) }
        }
    }
}
