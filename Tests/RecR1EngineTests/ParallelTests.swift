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

    /// Loops of varied sizes back to back, some nested: every part of every loop runs exactly once, and none
    /// runs after its loop returned (each loop's state is marked dead on return).
    func testEveryPartRunsOnceInManyConsecutiveLoops() {
        let lock = NSLock()
        var duplicates = 0, missing = 0, late = 0
        var random = SplitMix(seed: 11)
        for loop in 0..<200_000 {
            let parts = 1 + Int(random.next() % 40)
            let counts = UnsafeMutablePointer<Int32>.allocate(capacity: parts + 1)  // the last slot: 1 while alive
            counts.initialize(repeating: 0, count: parts + 1)
            counts[parts] = 1
            Parallel.forEach(parts) { part in
                if counts[parts] != 1 { lock.withLock { late += 1 } }
                lock.withLock {
                    counts[part] += 1
                    if counts[part] != 1 { duplicates += 1 }
                }
                if part % 13 == 5 { Parallel.forEach(3) { _ in } }  // nested: runs inline
            }
            counts[parts] = 0
            missing += (0..<parts).filter { counts[$0] == 0 }.count
            if loop % 50_000 == 0 { Thread.sleep(forTimeInterval: 0.005) }  // let the workers fall asleep now and then
            leftovers.append(counts)  // freed at the end: a part that ran after its loop returned finds the marker at 0
        }
        leftovers.forEach { $0.deallocate() }
        leftovers.removeAll()
        XCTAssertEqual(duplicates, 0)
        XCTAssertEqual(missing, 0)
        XCTAssertEqual(late, 0)
    }
    private var leftovers: [UnsafeMutablePointer<Int32>] = []

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
