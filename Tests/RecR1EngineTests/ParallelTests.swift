import Dispatch
import Foundation
import XCTest

@testable import RecR1Kernels

/// The fork-join pool behind Parallel: every part runs once per loop, loops follow each other without
/// losing a part, a loop inside a loop and loops from several threads at once complete.
final class ParallelTests: XCTestCase {
    override func setUp() {
        super.setUp()
        Parallel.threads = max(2, ProcessInfo.processInfo.activeProcessorCount)
    }

    func testEveryPartRunsOnceInManyConsecutiveLoops() {
        let parts = 7
        let counts = UnsafeMutablePointer<Int>.allocate(capacity: parts)
        defer { counts.deallocate() }
        counts.initialize(repeating: 0, count: parts)
        for loop in 0..<20_000 {
            Parallel.forEach(parts) { part in counts[part] += 1 }  // each part owns its own counter
            if loop % 5_000 == 0 { Thread.sleep(forTimeInterval: 0.005) }  // let the workers fall asleep now and then
        }
        XCTAssertEqual(Array(UnsafeBufferPointer(start: counts, count: parts)), Array(repeating: 20_000, count: parts))
    }

    func testLoopsUseMoreThanOneThread() {
        let lock = NSLock()
        var threads = Set<UInt64>()
        for _ in 0..<200 {
            Parallel.forEach(8) { _ in
                var id: UInt64 = 0
                pthread_threadid(&id)
                lock.withLock { _ = threads.insert(id) }
                Thread.sleep(forTimeInterval: 0.0005)
            }
        }
        XCTAssertGreaterThan(threads.count, 1)
    }

    func testNestedAndConcurrentLoopsComplete() {
        let lock = NSLock()
        var total = 0
        DispatchQueue.concurrentPerform(iterations: 4) { _ in
            for _ in 0..<200 {
                Parallel.forEach(3) { _ in
                    Parallel.forEach(5) { _ in lock.withLock { total += 1 } }
                }
            }
        }
        XCTAssertEqual(total, 4 * 200 * 3 * 5)
    }

    func testRowsCoverTheRangeOnce() {
        for n in [0, 1, 7, 8, 9, 100, 1001] {
            var seen = [Int](repeating: 0, count: n)
            seen.withUnsafeMutableBufferPointer { seen in
                Parallel.rows(n, minimumPerThread: 1) { range in for i in range { seen[i] += 1 } }
            }
            XCTAssertEqual(seen, Array(repeating: 1, count: n), "n \(n)")
        }
    }
}

private func pthread_threadid(_ id: inout UInt64) {
    id = UInt64(pthread_self())
}
