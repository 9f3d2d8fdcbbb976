import RecR1Kernels

/// What one layer's forward pass writes, [rows × n] unless noted. A training pass keeps one set a layer,
/// read again by the backward pass; generation and scoring write every layer into the same set.
final class LayerActivations {
    let xIn = Buffer()                 // the layer's input, the residual stream (kept only for backward)
    let xn1 = Buffer(), r1 = Buffer()  // attention RMSNorm output, and 1/rms per row [rows]
    let q = Buffer(), k = Buffer(), v = Buffer()  // after RoPE (q, k)
    let probs = Buffer()               // training's attention weights: per unit, per head, [T × T]
    let att = Buffer()                 // attention output, before Wo
    let h = Buffer()                   // residual stream after attention (kept only for backward)
    let xn2 = Buffer(), r2 = Buffer()  // MLP RMSNorm output, and 1/rms
    let gate = Buffer(), up = Buffer() // before SiLU, and up
    let act = Buffer()                 // silu(gate) ⊙ up, apart from gate only when kept for backward
    /// scale · x·Aᵀ of each adapted projection [rows × rank].
    private var adapterHidden: [LoRATarget: Buffer] = [:]

    func hidden(_ target: LoRATarget) -> Buffer {
        if let buffer = adapterHidden[target] { return buffer }
        let buffer = Buffer()
        adapterHidden[target] = buffer
        return buffer
    }

    /// The saved hidden of `target`, when the forward pass applied an adapter there.
    func savedHidden(_ target: LoRATarget) -> Buffer? { adapterHidden[target] }
}

/// The one memory plan of the layers' forward pass: the residual stream, the RoPE tables of each row, and
/// the layers' activations — one set for all layers, or one set a layer when `keepsLayers` (the backward
/// pass reads them). Buffers grow to the largest pass seen and are then reused, so steady-state passes
/// allocate nothing.
final class ActivationPlan {
    let keepsLayers: Bool
    let x = Buffer()                   // [rows × dim] the residual stream
    let cos = Buffer(), sin = Buffer() // [rows × headDim/2] RoPE of each row's position
    private var sets: [LayerActivations] = []

    init(keepsLayers: Bool) { self.keepsLayers = keepsLayers }

    /// The buffers layer `l` writes.
    func layer(_ l: Int) -> LayerActivations { sets[keepsLayers ? l : 0] }

    /// Sizes every buffer for `rows` rows (and `probs` attention weights a kept layer), growing only.
    func ensure(rows: Int, probs: Int = 0, config c: ModelConfig) {
        while sets.count < (keepsLayers ? c.layers : 1) { sets.append(LayerActivations()) }
        x.resize(rows * c.dim)
        cos.resize(rows * c.headDim / 2); sin.resize(rows * c.headDim / 2)
        for a in sets {
            for b in [a.xn1, a.xn2] { b.resize(rows * c.dim) }
            for b in [a.q, a.att] { b.resize(rows * c.qDim) }
            for b in [a.k, a.v] { b.resize(rows * c.kvDim) }
            for b in [a.gate, a.up] { b.resize(rows * c.ffnDim) }
            a.r1.resize(rows); a.r2.resize(rows)
            if keepsLayers {
                a.xIn.resize(rows * c.dim); a.h.resize(rows * c.dim)
                a.act.resize(rows * c.ffnDim)
                a.probs.resize(probs)
            }
        }
    }
}
