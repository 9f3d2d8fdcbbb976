import RecR1Kernels

/// The decoder's matrices in oneDNN's blocked layout, for products of many rows on a oneDNN backend
/// (prefill, scoring, training). A matrix is packed in a role on first use, and again on first use after the
/// weights change (an optimiser step, a restored checkpoint), into the same memory. With OpenBLAS, or for
/// few rows, nothing is packed.
public final class PackedWeights {
    public enum Matrix: Hashable {
        case layer(Int, LoRATarget)
        case head  // the output projection (or the tied embedding)
    }

    private var matrices: [Matrix: PackedMatrix] = [:]
    /// Bumped whenever the weights change; a copy packed at an older version is packed again before use.
    private var version = 0

    public init() {}

    /// Marks every packed copy out of date.
    public func weightsChanged() { version += 1 }

    /// Bytes held by the packed copies.
    public var bytes: Int { matrices.values.reduce(0) { $0 + $1.bytes } }

    /// `matrix`'s packed copy for `role`, up to date with `weights`, when the current backend uses one for
    /// `rows` rows; nil otherwise (and when packing fails: the product then takes the fp32 weight).
    func matrix(_ matrix: Matrix, _ role: PackedMatrix.Role, rows: Int, weights: ModelWeights, config: ModelConfig) -> PackedMatrix? {
        guard rows > MatMul.skinnyRowLimit, MatMul.backend != .openblas else { return nil }
        let bf16 = MatMul.backend == .onednnBF16
        let (w, inDim, outDim) = weights.matrix(matrix, config)
        var packed = matrices[matrix]
        if packed == nil || packed!.bf16 != bf16 {
            packed = PackedMatrix(outDim: outDim, inDim: inDim, bf16: bf16)
            matrices[matrix] = packed
        }
        guard let packed else { return nil }
        if packed.packedVersion[role] != version {
            do {
                try WorkClock.measure(.packing) { try w.withUnsafeBufferPointer { try packed.pack($0.baseAddress!, role: role) } }
                packed.packedVersion[role] = version
            } catch {
                matrices[matrix] = nil
                return nil
            }
        }
        return packed
    }
}

extension ModelWeights {
    /// A matrix by name, with its (inputs, outputs).
    func matrix(_ matrix: PackedWeights.Matrix, _ c: ModelConfig) -> (weight: [Float], inDim: Int, outDim: Int) {
        switch matrix {
        case .head:
            return (lmHead ?? tokenEmbedding, c.dim, c.vocabSize)
        case .layer(let l, let target):
            let layer = layers[l], (inDim, outDim) = target.shape(c)
            switch target {
            case .q: return (layer.wq, inDim, outDim)
            case .k: return (layer.wk, inDim, outDim)
            case .v: return (layer.wv, inDim, outDim)
            case .o: return (layer.wo, inDim, outDim)
            case .gate: return (layer.wGate, inDim, outDim)
            case .up: return (layer.wUp, inDim, outDim)
            case .down: return (layer.wDown, inDim, outDim)
            }
        }
    }
}
