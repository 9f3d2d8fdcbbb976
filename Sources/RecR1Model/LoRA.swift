import Foundation
import RecR1Kernels

/// The linear layers LoRA can adapt, named as PEFT's target modules (q_proj, …, down_proj).
public enum LoRATarget: String, CaseIterable, Codable {
    case q, k, v, o, gate, up, down

    /// The Hugging Face / PEFT module name.
    public var moduleName: String {
        switch self {
        case .q: return "q_proj"
        case .k: return "k_proj"
        case .v: return "v_proj"
        case .o: return "o_proj"
        case .gate: return "gate_proj"
        case .up: return "up_proj"
        case .down: return "down_proj"
        }
    }

    /// Accepts "q" or "q_proj" and so on.
    public init?(name: String) {
        if let target = LoRATarget(rawValue: name) { self = target; return }
        guard let target = LoRATarget.allCases.first(where: { $0.moduleName == name }) else { return nil }
        self = target
    }

    /// The parent module's path in Hugging Face's Llama / Qwen2 naming.
    public var parentPath: String { self == .gate || self == .up || self == .down ? "mlp" : "self_attn" }

    /// (inputs, outputs) of the adapted matrix.
    public func shape(_ c: ModelConfig) -> (inDim: Int, outDim: Int) {
        switch self {
        case .q: return (c.dim, c.qDim)
        case .k, .v: return (c.dim, c.kvDim)
        case .o: return (c.qDim, c.dim)
        case .gate, .up: return (c.dim, c.ffnDim)
        case .down: return (c.ffnDim, c.dim)
        }
    }
}

public struct LoRASettings: Equatable, Codable {
    public var rank: Int
    public var alpha: Float
    public var targets: [LoRATarget]

    public init(rank: Int = 16, alpha: Float = 32, targets: [LoRATarget] = LoRATarget.allCases) {
        self.rank = rank
        self.alpha = alpha
        self.targets = LoRATarget.allCases.filter(targets.contains)  // one fixed order
    }

    /// The update's scale, alpha / rank (PEFT's default, not rsLoRA).
    public var scale: Float { alpha / Float(rank) }
}

/// One adapted matrix: W + scale · B·A, with A [rank × in] and B [out × rank] row-major.
public final class LoRAPair {
    public var a: [Float]
    public var b: [Float]
    public let inDim: Int, outDim: Int

    init(a: [Float], b: [Float], inDim: Int, outDim: Int) {
        self.a = a
        self.b = b
        self.inDim = inDim
        self.outDim = outDim
    }
}

/// Low-rank adapters for every target of every layer (Hu et al., 2021): y = x·Wᵀ + scale · (x·Aᵀ)·Bᵀ.
/// The base weights stay as they are, so the reference policy is the same decoder with adapters off.
/// The same type holds the adapters' gradients.
public final class LoRAAdapters {
    public let settings: LoRASettings
    public let layers: [[LoRATarget: LoRAPair]]

    /// A fresh adapter as PEFT makes one: A ~ U(−1/√in, 1/√in) (Kaiming-uniform with a = √5), B = 0, so
    /// that the adapted model starts equal to the base.
    public init(config c: ModelConfig, settings: LoRASettings, seed: UInt64) {
        self.settings = settings
        var state = seed
        func uniform() -> Float {  // splitmix64 → [0, 1)
            state &+= 0x9E37_79B9_7F4A_7C15
            var z = state
            z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
            z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
            return Float((z ^ (z >> 31)) >> 40) / Float(1 << 24)
        }
        layers = (0..<c.layers).map { _ in
            var adapters: [LoRATarget: LoRAPair] = [:]
            for target in settings.targets {
                let (inDim, outDim) = target.shape(c)
                let bound = 1 / Float(inDim).squareRoot()
                let a = (0..<(settings.rank * inDim)).map { _ in (2 * uniform() - 1) * bound }
                adapters[target] = LoRAPair(a: a, b: [Float](repeating: 0, count: outDim * settings.rank),
                                            inDim: inDim, outDim: outDim)
            }
            return adapters
        }
    }

    /// Zeros shaped like `other` (a gradient accumulator).
    public init(zerosLike other: LoRAAdapters) {
        settings = other.settings
        layers = other.layers.map { layer in
            layer.mapValues { pair in
                LoRAPair(a: [Float](repeating: 0, count: pair.a.count), b: [Float](repeating: 0, count: pair.b.count),
                         inDim: pair.inDim, outDim: pair.outDim)
            }
        }
    }

    /// A copy of `other` that later steps on `other` do not change (a reference policy's adapters).
    public init(copying other: LoRAAdapters) {
        settings = other.settings
        layers = other.layers.map { layer in
            layer.mapValues { LoRAPair(a: $0.a, b: $0.b, inDim: $0.inDim, outDim: $0.outDim) }
        }
    }

    /// Every tensor in a fixed order (layer, target, A then B), with its name in PEFT's layout.
    public func forEachTensor(_ body: (String, LoRAPair, WritableKeyPath<LoRAPair, [Float]>) throws -> Void) rethrows {
        for (l, layer) in layers.enumerated() {
            for target in settings.targets {
                guard let pair = layer[target] else { continue }
                let base = "base_model.model.model.layers.\(l).\(target.parentPath).\(target.moduleName)"
                try body(base + ".lora_A.weight", pair, \.a)
                try body(base + ".lora_B.weight", pair, \.b)
            }
        }
    }

    /// Pairs each adapter tensor with the same tensor of `gradients`, in `forEachTensor`'s order.
    public func forEachParameter(_ gradients: LoRAAdapters, _ body: (inout [Float], [Float]) -> Void) {
        for (layer, gradientLayer) in zip(layers, gradients.layers) {
            for target in settings.targets {
                guard let pair = layer[target], let g = gradientLayer[target] else { continue }
                body(&pair.a, g.a)
                body(&pair.b, g.b)
            }
        }
    }

    public var parameterCount: Int {
        layers.reduce(0) { $0 + $1.values.reduce(0) { $0 + $1.a.count + $1.b.count } }
    }

    /// Sets every tensor to zero (a gradient accumulator's fresh start).
    public func zero() {
        for layer in layers {
            for pair in layer.values {
                pair.a.withUnsafeMutableBufferPointer { $0.update(repeating: 0) }
                pair.b.withUnsafeMutableBufferPointer { $0.update(repeating: 0) }
            }
        }
    }

    /// out += scale · (x·Aᵀ)·Bᵀ for `rows` rows; `hidden` [rows × rank] receives scale · x·Aᵀ (the training
    /// pass keeps it for the backward pass).
    static func apply(_ pair: LoRAPair, scale: Float, out: UnsafeMutablePointer<Float>, input: UnsafePointer<Float>,
                      hidden: UnsafeMutablePointer<Float>, rows: Int, rank: Int) {
        MatMul.linear(hidden, input, pair.a, rows: rows, inDim: pair.inDim, outDim: rank)
        for i in 0..<(rows * rank) { hidden[i] *= scale }
        MatMul.linear(out, hidden, pair.b, rows: rows, inDim: rank, outDim: pair.outDim, accumulate: true)
    }

    /// The weights with the adapters folded in: W + scale · B·A (for export).
    public func merged(_ weight: [Float], _ pair: LoRAPair) -> [Float] {
        var w = weight
        BLAS.sgemm(transA: false, transB: false, m: pair.outDim, n: pair.inDim, k: settings.rank, alpha: settings.scale,
                   a: pair.b, lda: settings.rank, b: pair.a, ldb: pair.inDim, beta: 1, c: &w, ldc: pair.inDim)
        return w
    }
}
