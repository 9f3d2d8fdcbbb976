import Foundation

/// Byte-level BPE on one piece at a time. A piece starts as one token per byte; then, again and
/// again, the adjacent pair whose merge has the best (lowest) rank is merged, the leftmost one on a
/// tie, until no adjacent pair has a merge. Results are cached per piece, since words repeat.
final class BytePairEncoder: @unchecked Sendable {  // the cache is guarded by cacheLock
    struct Merge {
        let rank: Int32
        let result: Int32
    }

    /// Token ids by the bytes they stand for.
    let tokenForBytes: [[UInt8]: Int32]
    /// Merges by the pair they join, (left << 32 | right).
    private let merges: [UInt64: Merge]
    /// The token for each single byte; -1 where there is none, and the byte is dropped (as HF's BPE
    /// does when it has no unknown token).
    private let byteTokens: [Int32]
    /// Llama 3's `ignore_merges`: a piece that is a whole token in the vocabulary is that token.
    private let ignoreMerges: Bool

    private var cache: [[UInt8]: [Int32]] = [:]
    private let cacheLock = NSLock()
    private static let cacheLimit = 200_000

    init(tokenForBytes: [[UInt8]: Int32], merges: [UInt64: Merge], byteTokens: [Int32], ignoreMerges: Bool) {
        self.tokenForBytes = tokenForBytes
        self.merges = merges
        self.byteTokens = byteTokens
        self.ignoreMerges = ignoreMerges
    }

    static func pairKey(_ left: Int32, _ right: Int32) -> UInt64 {
        UInt64(UInt32(bitPattern: left)) << 32 | UInt64(UInt32(bitPattern: right))
    }

    /// Appends the tokens of one piece.
    func encode(_ piece: UnsafeBufferPointer<UInt8>, into ids: inout [Int]) {
        let key = Array(piece)
        cacheLock.lock()
        let cached = cache[key]
        cacheLock.unlock()
        if let cached {
            for id in cached { ids.append(Int(id)) }
            return
        }
        let tokens = tokenize(key)
        cacheLock.lock()
        if cache.count < Self.cacheLimit { cache[key] = tokens }
        cacheLock.unlock()
        for id in tokens { ids.append(Int(id)) }
    }

    private func tokenize(_ bytes: [UInt8]) -> [Int32] {
        if ignoreMerges, let whole = tokenForBytes[bytes] { return [whole] }
        var symbols: [Int32] = []
        symbols.reserveCapacity(bytes.count)
        for byte in bytes where byteTokens[Int(byte)] >= 0 { symbols.append(byteTokens[Int(byte)]) }
        mergeAll(&symbols)
        return symbols
    }

    /// Applies merges best rank first. Symbols form a linked list over their starting positions;
    /// candidate pairs wait in a min-heap keyed (rank << 32 | position), so ties go to the leftmost.
    /// A heap entry is stale when its pair has changed since it was pushed; it is then skipped.
    private func mergeAll(_ symbols: inout [Int32]) {
        let count = symbols.count
        guard count > 1 else { return }
        var next = [Int](1...count)
        next[count - 1] = -1
        var previous = [Int](-1..<(count - 1))
        var heap = MinHeap()
        for position in 0..<(count - 1) {
            if let merge = merges[Self.pairKey(symbols[position], symbols[position + 1])] {
                heap.push(UInt64(merge.rank) << 32 | UInt64(position))
            }
        }
        while let entry = heap.pop() {
            let rank = Int32(entry >> 32)
            let position = Int(entry & 0xFFFF_FFFF)
            let right = next[position]
            guard symbols[position] >= 0, right >= 0,
                  let merge = merges[Self.pairKey(symbols[position], symbols[right])], merge.rank == rank
            else { continue }
            symbols[position] = merge.result
            symbols[right] = -1  // merged into its left neighbour
            next[position] = next[right]
            if next[right] >= 0 { previous[next[right]] = position }
            let before = previous[position]
            if before >= 0, let merge = merges[Self.pairKey(symbols[before], symbols[position])] {
                heap.push(UInt64(merge.rank) << 32 | UInt64(before))
            }
            let after = next[position]
            if after >= 0, let merge = merges[Self.pairKey(symbols[position], symbols[after])] {
                heap.push(UInt64(merge.rank) << 32 | UInt64(position))
            }
        }
        symbols.removeAll { $0 < 0 }
    }
}

/// A binary min-heap of UInt64 keys.
private struct MinHeap {
    private var keys: [UInt64] = []

    mutating func push(_ key: UInt64) {
        keys.append(key)
        var child = keys.count - 1
        while child > 0 {
            let parent = (child - 1) / 2
            guard keys[child] < keys[parent] else { break }
            keys.swapAt(child, parent)
            child = parent
        }
    }

    mutating func pop() -> UInt64? {
        guard let last = keys.popLast() else { return nil }
        guard !keys.isEmpty else { return last }
        let top = keys[0]
        keys[0] = last
        var parent = 0
        while true {
            let left = 2 * parent + 1, right = left + 1
            var smallest = parent
            if left < keys.count && keys[left] < keys[smallest] { smallest = left }
            if right < keys.count && keys[right] < keys[smallest] { smallest = right }
            guard smallest != parent else { break }
            keys.swapAt(parent, smallest)
            parent = smallest
        }
        return top
    }
}
