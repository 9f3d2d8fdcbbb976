import Foundation
import XCTest

@testable import RecR1Policy

/// The engine's lock serves its waiters in arrival order, and one that gives up at its deadline leaves the
/// order of the others intact.
final class FairLockTests: XCTestCase {
    /// Starts a thread that waits for `lock` and, once it has it, appends `index` to `order`; returns when the
    /// thread is in the queue, so that arrival order is the order of these calls.
    func startWaiter(_ lock: FairLock, _ index: Int, deadline: Date? = nil, order: Locked<[Int]>, done: DispatchGroup,
                     gotLock: Locked<[Int: Bool]>? = nil) {
        let before = lock.waitingCount
        done.enter()
        Thread.detachNewThread {
            let got = lock.lock(before: deadline)
            gotLock?.update { $0[index] = got }
            if got {
                order.update { $0.append(index) }
                lock.unlock()
            }
            done.leave()
        }
        while lock.waitingCount == before { usleep(100) }
    }

    func testWaitersGetTheLockInArrivalOrder() {
        let lock = FairLock(), order = Locked<[Int]>([]), done = DispatchGroup()
        lock.lock()
        for index in 0..<12 { startWaiter(lock, index, order: order, done: done) }
        XCTAssertEqual(lock.waitingCount, 12)
        XCTAssertTrue(order.value.isEmpty, "nobody gets a held lock")
        lock.unlock()
        XCTAssertEqual(done.wait(timeout: .now() + 30), .success)
        XCTAssertEqual(order.value, Array(0..<12))
        XCTAssertEqual(lock.waitingCount, 0)
    }

    func testAWaiterThatTimesOutLeavesTheQueueInOrder() {
        let lock = FairLock(), order = Locked<[Int]>([]), done = DispatchGroup(), got = Locked<[Int: Bool]>([:])
        lock.lock()
        startWaiter(lock, 0, order: order, done: done)
        startWaiter(lock, 1, deadline: Date().addingTimeInterval(0.05), order: order, done: done, gotLock: got)
        startWaiter(lock, 2, order: order, done: done)
        while got.value[1] == nil { usleep(1000) }   // the lock is still held: waiter 1's deadline passes
        XCTAssertEqual(got.value[1], false)
        XCTAssertEqual(lock.waitingCount, 2)
        lock.unlock()
        XCTAssertEqual(done.wait(timeout: .now() + 30), .success)
        XCTAssertEqual(order.value, [0, 2])
        XCTAssertTrue(lock.lock(before: Date().addingTimeInterval(1)), "a free lock is taken at once")
        lock.unlock()
    }
}

/// A value shared between test threads.
final class Locked<Value>: @unchecked Sendable {
    private let lock = NSLock()
    private var stored: Value
    init(_ value: Value) { stored = value }
    var value: Value { lock.withLock { stored } }
    func update(_ body: (inout Value) -> Void) { lock.withLock { body(&stored) } }
}
