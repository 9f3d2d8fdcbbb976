/// A growable fp32 buffer owned by a workspace; `p` points at its first element. Growing discards the
/// contents (workspaces hold scratch that every pass overwrites).
final class Buffer {
    private(set) var p: UnsafeMutablePointer<Float> = .allocate(capacity: 1)
    private(set) var count = 0

    init() {}

    init(zeros count: Int) { resize(count) }

    func resize(_ newCount: Int) {
        guard newCount > count else { return }
        p.deallocate()
        p = .allocate(capacity: newCount)
        p.initialize(repeating: 0, count: newCount)
        count = newCount
    }

    func zero() { p.update(repeating: 0, count: count) }

    deinit { p.deallocate() }
}

extension UnsafeMutablePointer where Pointee == Float {
    /// Copies count values of an array from an offset.
    func update(from array: [Float], offset: Int, count: Int) {
        array.withUnsafeBufferPointer { update(from: $0.baseAddress! + offset, count: count) }
    }
}
