/// Keys and values of past positions, for `slots` sequences of up to `capacity` tokens each.
/// Layout: [layer][slot][position][kvDim], so one sequence's keys of one layer are contiguous.
public final class KVCache {
    public let layers: Int
    public let slots: Int
    public let capacity: Int
    public let kvDim: Int
    let keys: UnsafeMutablePointer<Float>
    let values: UnsafeMutablePointer<Float>

    public init(config: ModelConfig, slots: Int, capacity: Int) {
        layers = config.layers
        self.slots = slots
        self.capacity = capacity
        kvDim = config.kvDim
        let count = layers * slots * capacity * kvDim
        keys = .allocate(capacity: count)
        keys.initialize(repeating: 0, count: count)
        values = .allocate(capacity: count)
        values.initialize(repeating: 0, count: count)
    }

    deinit {
        keys.deallocate()
        values.deallocate()
    }

    @inline(__always)
    func offset(layer: Int, slot: Int, position: Int) -> Int {
        ((layer * slots + slot) * capacity + position) * kvDim
    }

    /// Copies positions 0..<count of one slot to others (the samples of a prompt share its prefill).
    public func copyPrefix(from source: Int, to targets: [Int], count: Int) {
        precondition(count <= capacity)
        let length = count * kvDim
        for layer in 0..<layers {
            let from = offset(layer: layer, slot: source, position: 0)
            for target in targets where target != source {
                let to = offset(layer: layer, slot: target, position: 0)
                (keys + to).update(from: keys + from, count: length)
                (values + to).update(from: values + from, count: length)
            }
        }
    }
}
