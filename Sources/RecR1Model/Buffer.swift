/// A growable fp32 buffer owned by a workspace; `p` points at its first element. Resizing discards the
/// contents (workspaces hold scratch that every pass overwrites).
struct Buffer {
    private(set) var p: UnsafeMutablePointer<Float> = .allocate(capacity: 1)
    private(set) var count = 0

    mutating func resize(_ newCount: Int) {
        guard newCount > count else { return }
        p.deallocate()
        p = .allocate(capacity: newCount)
        p.initialize(repeating: 0, count: newCount)
        count = newCount
    }
}

extension UnsafeMutablePointer where Pointee == Float {
    /// Copies count values of an array from an offset.
    func update(from array: [Float], offset: Int, count: Int) {
        array.withUnsafeBufferPointer { update(from: $0.baseAddress! + offset, count: count) }
    }
}
