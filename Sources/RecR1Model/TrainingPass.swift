import Foundation
import RecR1Kernels

/// Gradients of every parameter of a decoder, laid out like `ModelWeights`.
public final class LayerGradients {
    public var attnNorm, wq, wk, wv, bq, bk, bv, wo, ffnNorm, wGate, wUp, wDown: [Float]

    init(_ c: ModelConfig) {
        func zeros(_ n: Int) -> [Float] { [Float](repeating: 0, count: n) }
        attnNorm = zeros(c.dim); ffnNorm = zeros(c.dim)
        wq = zeros(c.qDim * c.dim); wk = zeros(c.kvDim * c.dim); wv = zeros(c.kvDim * c.dim); wo = zeros(c.dim * c.qDim)
        bq = zeros(c.qkvBias ? c.qDim : 0); bk = zeros(c.qkvBias ? c.kvDim : 0); bv = zeros(c.qkvBias ? c.kvDim : 0)
        wGate = zeros(c.ffnDim * c.dim); wUp = zeros(c.ffnDim * c.dim); wDown = zeros(c.dim * c.ffnDim)
    }
}

public final class ModelGradients {
    public var tokenEmbedding: [Float]
    public var layers: [LayerGradients]
    public var finalNorm: [Float]
    /// Empty when the head is tied to the embedding (its gradient is added to `tokenEmbedding`).
    public var lmHead: [Float]

    public init(config c: ModelConfig) {
        tokenEmbedding = [Float](repeating: 0, count: c.vocabSize * c.dim)
        layers = (0..<c.layers).map { _ in LayerGradients(c) }
        finalNorm = [Float](repeating: 0, count: c.dim)
        lmHead = [Float](repeating: 0, count: c.tiedEmbeddings ? 0 : c.vocabSize * c.dim)
    }

    /// Sets every gradient to zero, in place.
    public func zero() {
        func clear(_ x: inout [Float]) { x.withUnsafeMutableBufferPointer { $0.update(repeating: 0) } }
        clear(&tokenEmbedding); clear(&finalNorm); clear(&lmHead)
        for layer in layers {
            for path in [\LayerGradients.attnNorm, \.wq, \.wk, \.wv, \.bq, \.bk, \.bv, \.wo, \.ffnNorm, \.wGate, \.wUp, \.wDown] {
                clear(&layer[keyPath: path])
            }
        }
    }
}

/// Sequences that begin with the same tokens (the G completions of one GRPO prompt): the pass runs the
/// shared prefix once, and each sequence's remaining tokens attend to it and to themselves.
public struct PrefixGroup: Equatable {
    public var sequences: Range<Int>
    /// Tokens every sequence of the group starts with; every scored token lies after them.
    public var length: Int

    public init(sequences: Range<Int>, length: Int) {
        self.sequences = sequences
        self.length = length
    }
}

/// The forward pass with every activation the backward pass needs, and the backward pass, layer by layer
/// in reverse. A batch is whole sequences, packed into units of rows with no cache: a lone sequence attends
/// causally within itself; a prefix group is one unit — the prefix's rows, then each member's own rows,
/// which attend causally to the prefix and to their own earlier rows, never to another member's. Gradients
/// from every member flow back into the one copy of the prefix, so they equal the unshared computation's.
/// The loss is the caller's: `forward` returns the log-probs of chosen tokens, and `backward` takes
/// dLoss/dlog-prob of each, so that GRPO, DPO and SFT all meet the engine at the same place.
public final class TrainingPass {
    public let decoder: Decoder
    private var config: ModelConfig { decoder.config }

    /// The forward pass's buffers, one set of activations a layer, read again by the backward pass.
    private let plan = ActivationPlan(keepsLayers: true)
    /// The backward pass's buffers, kept between calls (fresh pages cost page faults on every step).
    final class Scratch {
        let chunkRows = Buffer(), logits = Buffer()       // a chunk of final-norm rows, and their logits
        let dChunk = Buffer(), normedChunk = Buffer()
        let dNormed = Buffer(), dx = Buffer(), dxn = Buffer()     // [rows × dim]
        let dAct = Buffer(), dUp = Buffer()                       // [rows × ffnDim]
        let dAtt = Buffer(), dq = Buffer()                        // [rows × qDim]
        let dk = Buffer(), dv = Buffer()                          // [rows × kvDim]
        let negativeSin = Buffer()                                // [rows × headDim/2]
        let dScores = Buffer()                                    // [T × T] one head's dP, then dS
        let dHidden = Buffer()                                    // [rows × rank] an adapter's d(input·Aᵀ)
    }
    private let scratch = Scratch()
    private let normed = Buffer(), rFinal = Buffer()  // the final RMSNorm of plan.x, and its 1/rms
    /// Rows that attend to each other: `rows` rows from `start`; rows `prefix..<rows` belong to members.
    struct Unit {
        var start: Int, rows: Int, probsStart: Int
        var prefix: Int                   // shared rows at the front (0: a lone sequence)
    }
    private var units: [Unit] = []
    private var rowTokens: [Int32] = []   // the token each row embeds
    /// For each row, the first row (within its unit) of its own segment: 0 in a lone sequence and in a
    /// prefix, the member's first row otherwise. A row attends to rows 0..<min(prefix, i+1) and segment…i.
    private var segmentStarts: [Int] = []
    private var targets: [(row: Int, token: Int32)] = []  // the row whose logits predict the token
    private var logSumExps: [Float] = []
    private var entropyFlat: [Float] = []
    /// The adapters in use for this pass (the decoder's, when enabled).
    private var adapters: LoRAAdapters?
    private var rows = 0
    /// Rows of logits computed at once (vocab-wide rows are large).
    public var logitChunk = 128

    public init(decoder: Decoder) {
        self.decoder = decoder
    }

    /// The entropy of the next-token distribution at each scored token, from the last `forward(…, entropy: true)`.
    public private(set) var entropies: [[Float]] = []

    /// Log-probs of the tokens at `scored[s]` (indices ≥ 1 into `sequences[s]`), each given the tokens before it.
    /// With `entropy`, also the entropy of each of those next-token distributions (`entropies`), which the
    /// backward pass can then differentiate. `prefixGroups` (ascending, disjoint) run each group's shared
    /// prefix once. The decoder's adapters take part when it has them enabled.
    public func forward(sequences: [[Int32]], scored: [Range<Int>], prefixGroups: [PrefixGroup] = [],
                        entropy: Bool = false) -> [[Float]] {
        precondition(sequences.count == scored.count)
        let c = config, w = decoder.weights
        adapters = decoder.adaptersEnabled ? decoder.adapters : nil
        units = []; rowTokens = []; segmentStarts = []; targets = []
        var positions: [Int] = []
        var probsOffset = 0, s = 0, nextGroup = 0
        while s < sequences.count {
            // A unit: the next prefix group when it starts here, else the lone sequence s.
            var members = s..<(s + 1), prefix = 0
            if nextGroup < prefixGroups.count, prefixGroups[nextGroup].sequences.lowerBound == s {
                members = prefixGroups[nextGroup].sequences
                prefix = prefixGroups[nextGroup].length
                nextGroup += 1
                precondition(prefix >= 1 && members.upperBound <= sequences.count, "a prefix group within the batch")
            }
            let start = rowTokens.count
            for t in 0..<prefix {
                rowTokens.append(sequences[members.lowerBound][t]); positions.append(t); segmentStarts.append(0)
            }
            for m in members {
                let sequence = sequences[m], first = rowTokens.count - start
                precondition(scored[m].lowerBound >= max(1, prefix) && scored[m].upperBound <= sequence.count)
                precondition(prefix == 0 || sequence.starts(with: sequences[members.lowerBound][0..<prefix]),
                             "every sequence of a prefix group starts with its prefix")
                for t in prefix..<sequence.count {
                    rowTokens.append(sequence[t]); positions.append(t); segmentStarts.append(prefix == 0 ? 0 : first)
                }
                // Token t is predicted by the row of token t − 1: the prefix's own row, or this member's.
                for t in scored[m] {
                    let row = t - 1 < prefix ? start + t - 1 : start + first + (t - 1 - prefix)
                    targets.append((row, sequence[t]))
                }
            }
            let unitRows = rowTokens.count - start
            units.append(Unit(start: start, rows: unitRows, probsStart: probsOffset, prefix: prefix))
            probsOffset += c.heads * unitRows * unitRows
            s = members.upperBound
        }
        precondition(nextGroup == prefixGroups.count, "prefix groups ascending and disjoint")
        rows = rowTokens.count
        plan.ensure(rows: rows, probs: probsOffset, config: c)
        decoder.runLayers(plan, tokens: rowTokens, positions: positions, quantized: false) { _, a in attentionForward(a) }
        let x = plan.x

        normed.resize(rows * c.dim); rFinal.resize(rows)
        for r in 0..<rows { rFinal.p[r] = Kernels.rmsNorm(normed.p + r * c.dim, x.p + r * c.dim, w.finalNorm, c.dim, eps: c.normEps) }

        // log p(token) = logit[token] - logsumexp(logits), over chunks of target rows.
        // Entropy H = −Σ p·log p = lse − Σ p·z.
        logSumExps = [Float](repeating: 0, count: targets.count)
        entropyFlat = entropy ? [Float](repeating: 0, count: targets.count) : []
        var logprobs = [Float](repeating: 0, count: targets.count)
        logSumExps.withUnsafeMutableBufferPointer { lses in
            logprobs.withUnsafeMutableBufferPointer { logprobs in
                entropyFlat.withUnsafeMutableBufferPointer { entropies in
                    forEachLogitChunk { range, logits in
                        Parallel.rows(range.count, minimumPerThread: 4) { part in
                            for i in part.lowerBound + range.lowerBound..<part.upperBound + range.lowerBound {
                                let line = logits + (i - range.lowerBound) * c.vocabSize
                                let lse = Kernels.logSumExp(line, c.vocabSize)
                                lses[i] = lse
                                logprobs[i] = line[Int(targets[i].token)] - lse
                                if entropy { entropies[i] = lse - Kernels.expectedLogit(line, c.vocabSize, logSumExp: lse) }
                            }
                        }
                    }
                }
            }
        }
        entropies = entropy ? split(entropyFlat, like: scored) : []
        return split(logprobs, like: scored)
    }

    private func split(_ flat: [Float], like scored: [Range<Int>]) -> [[Float]] {
        var result: [[Float]] = []
        var next = 0
        for range in scored {
            result.append(Array(flat[next..<(next + range.count)]))
            next += range.count
        }
        return result
    }

    /// The packed copy of a layer's matrix for this pass's rows, when the backend uses one.
    private func packed(_ layer: Int, _ target: LoRATarget, _ role: PackedMatrix.Role) -> PackedMatrix? {
        decoder.packed(layer, target, rows: rows, role: role)
    }

    /// Computes the logits of chunks of target rows into a scratch buffer and hands each chunk over.
    private func forEachLogitChunk(_ body: (Range<Int>, UnsafeMutablePointer<Float>) -> Void) {
        let c = config
        let head = decoder.weights.lmHead ?? decoder.weights.tokenEmbedding
        let chunkRows = scratch.chunkRows, logits = scratch.logits
        chunkRows.resize(min(logitChunk, max(1, targets.count)) * c.dim)
        logits.resize(min(logitChunk, max(1, targets.count)) * c.vocabSize)
        var start = 0
        while start < targets.count {
            let range = start..<min(start + logitChunk, targets.count)
            for (i, target) in targets[range].enumerated() {
                (chunkRows.p + i * c.dim).update(from: normed.p + target.row * c.dim, count: c.dim)
            }
            // On bf16 as every other product (as under autocast); the log-softmax that follows stays fp32.
            let packedHead = decoder.packedWeights.matrix(.head, .forward, rows: range.count, weights: decoder.weights, config: c)
            MatMul.linear(logits.p, chunkRows.p, head, packed: packedHead, rows: range.count, inDim: c.dim, outDim: c.vocabSize)
            body(range, logits.p)
            start = range.upperBound
        }
    }

    /// Training's attention, per unit and head: P = softmax(Q·Kᵀ/√d) over the rows each row may
    /// see (kept for the backward pass, zero elsewhere), then out = P·V.
    private func attentionForward(_ a: LayerActivations) {
        let c = config, group = c.heads / c.kvHeads, hd = c.headDim
        let scale = 1 / Float(hd).squareRoot()
        for unit in units {
            let T = unit.rows, base = unit.start
            for h in 0..<c.heads {
                let kv = (h / group) * hd
                let P = a.probs.p + unit.probsStart + h * T * T
                BLAS.sgemm(transA: false, transB: true, m: T, n: T, k: hd, alpha: scale, a: a.q.p + base * c.qDim + h * hd,
                           lda: c.qDim, b: a.k.p + base * c.kvDim + kv, ldb: c.kvDim, c: P, ldc: T)
                Parallel.rows(T, minimumPerThread: 32) { range in
                    for i in range { self.maskedSoftmax(P + i * T, row: i, width: T, prefix: unit.prefix,
                                                        segment: self.segmentStarts[base + i]) }
                }
                BLAS.sgemm(transA: false, transB: false, m: T, n: hd, k: T, a: P, lda: T, b: a.v.p + base * c.kvDim + kv,
                           ldb: c.kvDim, c: a.att.p + base * c.qDim + h * hd, ldc: c.qDim)
            }
        }
    }

    /// Softmax of one row of scores over what row i sees — columns 0..<min(prefix, i+1) and segment...i —
    /// with every other column zero. The visible columns are moved together, so that the one softmax kernel
    /// serves, and moved back.
    private func maskedSoftmax(_ p: UnsafeMutablePointer<Float>, row i: Int, width T: Int, prefix: Int, segment: Int) {
        let gap = segment > prefix ? segment - prefix : 0   // other members' columns before this row's own
        if gap == 0 {
            Kernels.softmax(p, i + 1)
        } else {
            let own = i - segment + 1
            memmove(p + prefix, p + segment, own * MemoryLayout<Float>.size)
            Kernels.softmax(p, prefix + own)
            memmove(p + segment, p + prefix, own * MemoryLayout<Float>.size)
            (p + prefix).update(repeating: 0, count: gap)
        }
        (p + i + 1).update(repeating: 0, count: T - i - 1)
    }

    /// Adds to `gradients` the gradient of the loss whose derivatives with respect to the log-probs that
    /// `forward` returned are `dLogprobs` (same shape), and with respect to the entropies `dEntropies`
    /// (when the forward pass computed them). Full fine-tuning passes `ModelGradients`; LoRA passes the
    /// adapters' gradients (`adapterGradients`) and nil, which skips the base weights' gradients.
    public func backward(_ dLogprobs: [[Float]], dEntropies: [[Float]]? = nil, into g: ModelGradients?,
                         adapterGradients ga: LoRAAdapters? = nil) {
        let c = config, w = decoder.weights
        let dFlat = dLogprobs.flatMap { $0 }
        let dEntropyFlat = dEntropies?.flatMap { $0 }
        precondition(dFlat.count == targets.count, "one derivative per scored token")
        precondition(dEntropyFlat == nil || (dEntropyFlat!.count == targets.count && entropyFlat.count == targets.count),
                     "entropy derivatives need a forward pass with entropy")
        precondition(ga == nil || adapters != nil, "adapter gradients need a forward pass with adapters")

        // Head: dlogits = dlogp · (onehot(token) - softmax(logits)).
        let b = scratch
        for (buffer, count) in [(b.dNormed, rows * c.dim), (b.dx, rows * c.dim), (b.dxn, rows * c.dim),
                                (b.dAct, rows * c.ffnDim), (b.dUp, rows * c.ffnDim), (b.dAtt, rows * c.qDim),
                                (b.dq, rows * c.qDim), (b.dk, rows * c.kvDim), (b.dv, rows * c.kvDim),
                                (b.negativeSin, rows * c.headDim / 2),
                                (b.dChunk, min(logitChunk, max(1, targets.count)) * c.dim),
                                (b.normedChunk, min(logitChunk, max(1, targets.count)) * c.dim)] {
            buffer.resize(count)
        }
        let dNormed = b.dNormed, dChunk = b.dChunk, normedChunk = b.normedChunk
        dNormed.p.update(repeating: 0, count: rows * c.dim)
        let head = w.lmHead ?? w.tokenEmbedding
        forEachLogitChunk { range, logits in
            Parallel.rows(range.count, minimumPerThread: 4) { part in
                for i in part.lowerBound + range.lowerBound..<part.upperBound + range.lowerBound {
                    let target = targets[i]
                    let line = logits + (i - range.lowerBound) * c.vocabSize
                    // dlogits = dlogp · (onehot(token) − p) − dH · p ⊙ (log p + H)
                    let d = dFlat[i], dH = dEntropyFlat?[i] ?? 0
                    Kernels.logitGradient(line, c.vocabSize, logSumExp: logSumExps[i], d: d, dH: dH,
                                          entropy: dH == 0 ? 0 : entropyFlat[i])
                    line[Int(target.token)] += d
                    (normedChunk.p + (i - range.lowerBound) * c.dim).update(from: normed.p + target.row * c.dim, count: c.dim)
                }
            }
            // dNormed[rows] = dlogits · W;  dW += dlogitsᵀ · normed
            let packedHead = decoder.packedWeights.matrix(.head, .backward, rows: range.count, weights: w, config: c)
            MatMul.linearBackward(dChunk.p, logits, head, packed: packedHead, rows: range.count, inDim: c.dim,
                                  outDim: c.vocabSize, accumulate: false)
            for (i, target) in targets[range].enumerated() {
                Kernels.axpy(1, dChunk.p + i * c.dim, dNormed.p + target.row * c.dim, c.dim)
            }
            guard let g else { return }
            if c.tiedEmbeddings {
                MatMul.gemm(transA: true, transB: false, m: c.vocabSize, n: c.dim, k: range.count, a: logits, lda: c.vocabSize,
                           b: normedChunk.p, ldb: c.dim, beta: 1, c: &g.tokenEmbedding, ldc: c.dim)
            } else {
                MatMul.gemm(transA: true, transB: false, m: c.vocabSize, n: c.dim, k: range.count, a: logits, lda: c.vocabSize,
                           b: normedChunk.p, ldb: c.dim, beta: 1, c: &g.lmHead, ldc: c.dim)
            }
        }
        let dx = b.dx
        withGradient(g, \.finalNorm) { dWeight in
            rmsNormBackward(dx: dx.p, dWeight: dWeight, dy: dNormed.p, x: plan.x.p, weight: w.finalNorm, inverseRMS: rFinal.p, accumulate: false)
        }

        let dxn = b.dxn, dAct = b.dAct, dUp = b.dUp, dAtt = b.dAtt, dq = b.dq, dk = b.dk, dv = b.dv
        // RoPE's backward is the rotation by the opposite angle.
        let half = c.headDim / 2
        let negativeSin = b.negativeSin
        for i in 0..<(rows * half) { negativeSin.p[i] = -plan.sin.p[i] }
        for l in (0..<c.layers).reversed() {
            let a = plan.layer(l), lw = w.layers[l], lg = g?.layers[l]
            func linear(_ target: LoRATarget, _ weightGradient: ReferenceWritableKeyPath<LayerGradients, [Float]>,
                        dIn: UnsafeMutablePointer<Float>, dOut: UnsafePointer<Float>, input: UnsafePointer<Float>,
                        weight: [Float], accumulateInput: Bool = false) {
                withGradient(lg, weightGradient) { dWeight in
                    linearBackward(dIn: dIn, dWeight: dWeight, dOut: dOut, input: input, weight: weight,
                                   packed: packed(l, target, .backward), shape: target.shape(c), accumulateInput: accumulateInput)
                }
                if let ga, let pair = adapters?.layers[l][target], let gradient = ga.layers[l][target], let hidden = a.savedHidden(target) {
                    adapterBackward(pair, gradient: gradient, dIn: dIn, dOut: dOut, input: input, hidden: hidden.p)
                }
            }
            // MLP: x = h + act · Wdownᵀ, act = silu(gate) ⊙ up.
            linear(.down, \.wDown, dIn: dAct.p, dOut: dx.p, input: a.act.p, weight: lw.wDown)
            Parallel.rows(rows) { range in  // dAct becomes d(gate)
                let offset = range.lowerBound * c.ffnDim
                Kernels.swiGLUBackward(gate: a.gate.p + offset, up: a.up.p + offset, dAct: dAct.p + offset,
                                       dUp: dUp.p + offset, range.count * c.ffnDim)
            }
            linear(.gate, \.wGate, dIn: dxn.p, dOut: dAct.p, input: a.xn2.p, weight: lw.wGate)
            linear(.up, \.wUp, dIn: dxn.p, dOut: dUp.p, input: a.xn2.p, weight: lw.wUp, accumulateInput: true)
            withGradient(lg, \.ffnNorm) { dWeight in
                rmsNormBackward(dx: dx.p, dWeight: dWeight, dy: dxn.p, x: a.h.p, weight: lw.ffnNorm, inverseRMS: a.r2.p, accumulate: true)
            }

            // Attention: h = xIn + att · Woᵀ.
            linear(.o, \.wo, dIn: dAtt.p, dOut: dx.p, input: a.att.p, weight: lw.wo)
            WorkClock.measure(.attention) { attentionBackward(a, dAtt: dAtt.p, dq: dq.p, dk: dk.p, dv: dv.p) }
            Parallel.rows(rows) { range in
                for r in range {
                    Kernels.rope(dq.p + r * c.qDim, heads: c.heads, headDim: c.headDim, cos: plan.cos.p + r * half, sin: negativeSin.p + r * half)
                    Kernels.rope(dk.p + r * c.kvDim, heads: c.kvHeads, headDim: c.headDim, cos: plan.cos.p + r * half, sin: negativeSin.p + r * half)
                }
            }
            if c.qkvBias, let lg {
                for r in 0..<rows {
                    Kernels.axpy(1, dq.p + r * c.qDim, &lg.bq, c.qDim)
                    Kernels.axpy(1, dk.p + r * c.kvDim, &lg.bk, c.kvDim)
                    Kernels.axpy(1, dv.p + r * c.kvDim, &lg.bv, c.kvDim)
                }
            }
            linear(.q, \.wq, dIn: dxn.p, dOut: dq.p, input: a.xn1.p, weight: lw.wq)
            linear(.k, \.wk, dIn: dxn.p, dOut: dk.p, input: a.xn1.p, weight: lw.wk, accumulateInput: true)
            linear(.v, \.wv, dIn: dxn.p, dOut: dv.p, input: a.xn1.p, weight: lw.wv, accumulateInput: true)
            withGradient(lg, \.attnNorm) { dWeight in
                rmsNormBackward(dx: dx.p, dWeight: dWeight, dy: dxn.p, x: a.xIn.p, weight: lw.attnNorm, inverseRMS: a.r1.p, accumulate: true)
            }
        }
        // Embedding: each row's gradient goes to its token's row.
        guard let g else { return }
        g.tokenEmbedding.withUnsafeMutableBufferPointer { e in
            for (r, token) in rowTokens.enumerated() {
                Kernels.axpy(1, dx.p + r * c.dim, e.baseAddress! + Int(token) * c.dim, c.dim)
            }
        }
    }

    /// Runs `body` with a pointer to one of the layer's gradient tensors, or nil when the base weights are frozen.
    private func withGradient<G: AnyObject>(_ gradients: G?, _ path: ReferenceWritableKeyPath<G, [Float]>,
                                            _ body: (UnsafeMutablePointer<Float>?) -> Void) {
        guard let gradients else { return body(nil) }
        gradients[keyPath: path].withUnsafeMutableBufferPointer { body($0.baseAddress!) }
    }

    /// For out = input · Wᵀ ([rows × outDim]): dInput (=, or += with accumulateInput) dOut · W, and dW += dOutᵀ · input
    /// unless the weight is frozen (dWeight nil).
    private func linearBackward(dIn: UnsafeMutablePointer<Float>, dWeight: UnsafeMutablePointer<Float>?, dOut: UnsafePointer<Float>,
                                input: UnsafePointer<Float>, weight: [Float], packed: PackedMatrix?,
                                shape: (inDim: Int, outDim: Int), accumulateInput: Bool) {
        let (inDim, outDim) = shape
        MatMul.linearBackward(dIn, dOut, weight, packed: packed, rows: rows, inDim: inDim, outDim: outDim,
                              accumulate: accumulateInput)
        guard let dWeight else { return }
        MatMul.gemm(transA: true, transB: false, m: outDim, n: inDim, k: rows, a: dOut, lda: outDim, b: input, ldb: inDim,
                   beta: 1, c: dWeight, ldc: inDim)
    }

    /// For out += hidden · Bᵀ with hidden = s · input · Aᵀ (kept by the forward pass):
    /// dB += dOutᵀ · hidden, dHidden = s · dOut · B, dA += dHiddenᵀ · input, dInput += dHidden · A.
    private func adapterBackward(_ pair: LoRAPair, gradient: LoRAPair, dIn: UnsafeMutablePointer<Float>,
                                 dOut: UnsafePointer<Float>, input: UnsafePointer<Float>, hidden: UnsafePointer<Float>) {
        let rank = adapters!.settings.rank, scale = adapters!.settings.scale
        let (inDim, outDim) = (pair.inDim, pair.outDim)
        BLAS.sgemm(transA: true, transB: false, m: outDim, n: rank, k: rows, a: dOut, lda: outDim, b: hidden, ldb: rank,
                   beta: 1, c: &gradient.b, ldc: rank)
        let dHidden = scratch.dHidden
        dHidden.resize(rows * rank)
        BLAS.sgemm(transA: false, transB: false, m: rows, n: rank, k: outDim, alpha: scale, a: dOut, lda: outDim,
                   b: pair.b, ldb: rank, c: dHidden.p, ldc: rank)
        BLAS.sgemm(transA: true, transB: false, m: rank, n: inDim, k: rows, a: dHidden.p, lda: rank, b: input, ldb: inDim,
                   beta: 1, c: &gradient.a, ldc: inDim)
        BLAS.sgemm(transA: false, transB: false, m: rows, n: inDim, k: rank, a: dHidden.p, lda: rank, b: pair.a, ldb: inDim,
                   beta: 1, c: dIn, ldc: inDim)
    }

    /// y = x · r · w with r = 1/rms(x): dw += Σ dy ⊙ x · r (unless frozen), and dx (= or +=) r · g − r³ · x · Σ(g ⊙ x) / n
    /// with g = dy ⊙ w.
    private func rmsNormBackward(dx: UnsafeMutablePointer<Float>, dWeight: UnsafeMutablePointer<Float>?, dy: UnsafePointer<Float>,
                                 x: UnsafePointer<Float>, weight: [Float], inverseRMS: UnsafePointer<Float>, accumulate: Bool) {
        let n = config.dim
        if let dWeight {  // a sum over rows: one thread, in row order
            for r in 0..<rows {
                let dyRow = dy + r * n, xRow = x + r * n, inv = inverseRMS[r]
                for i in 0..<n { dWeight[i] += dyRow[i] * xRow[i] * inv }
            }
        }
        Parallel.rows(rows) { range in
            for r in range {
                let dyRow = dy + r * n, xRow = x + r * n, dxRow = dx + r * n, inv = inverseRMS[r]
                var gx: Float = 0
                for i in 0..<n { gx += dyRow[i] * weight[i] * xRow[i] }
                let correction = inv * inv * inv * gx / Float(n)
                for i in 0..<n {
                    let value = inv * dyRow[i] * weight[i] - correction * xRow[i]
                    dxRow[i] = accumulate ? dxRow[i] + value : value
                }
            }
        }
    }

    /// Per unit and head, with P the saved weights, as matrix products: dP = dOut · Vᵀ, dV += Pᵀ · dOut,
    /// dS = P ⊙ (dP − rowsum(P ⊙ dP)) / √d, dQ = dS · K, dK += dSᵀ · Q. P is zero where a row sees nothing,
    /// so dS is too, and the masks need no second look.
    private func attentionBackward(_ a: LayerActivations, dAtt: UnsafePointer<Float>, dq: UnsafeMutablePointer<Float>,
                                   dk: UnsafeMutablePointer<Float>, dv: UnsafeMutablePointer<Float>) {
        let c = config, group = c.heads / c.kvHeads, hd = c.headDim
        let scale = 1 / Float(hd).squareRoot()
        dk.update(repeating: 0, count: rows * c.kvDim)
        dv.update(repeating: 0, count: rows * c.kvDim)
        for unit in units {
            let T = unit.rows, base = unit.start
            scratch.dScores.resize(T * T)
            let dS = scratch.dScores.p
            for h in 0..<c.heads {
                let kv = (h / group) * hd
                let P = a.probs.p + unit.probsStart + h * T * T
                let dOut = dAtt + base * c.qDim + h * hd, query = a.q.p + base * c.qDim + h * hd
                let key = a.k.p + base * c.kvDim + kv, value = a.v.p + base * c.kvDim + kv
                BLAS.sgemm(transA: false, transB: true, m: T, n: T, k: hd, a: dOut, lda: c.qDim, b: value, ldb: c.kvDim,
                           c: dS, ldc: T)
                BLAS.sgemm(transA: true, transB: false, m: T, n: hd, k: T, a: P, lda: T, b: dOut, ldb: c.qDim,
                           beta: 1, c: dv + base * c.kvDim + kv, ldc: c.kvDim)
                Parallel.rows(T, minimumPerThread: 32) { range in
                    for i in range {
                        let p = P + i * T, d = dS + i * T
                        var weighted: Float = 0
                        for j in 0...i { weighted += p[j] * d[j] }
                        for j in 0...i { d[j] = p[j] * (d[j] - weighted) * scale }
                        (d + i + 1).update(repeating: 0, count: T - i - 1)
                    }
                }
                BLAS.sgemm(transA: false, transB: false, m: T, n: hd, k: T, a: dS, lda: T, b: key, ldb: c.kvDim,
                           c: dq + base * c.qDim + h * hd, ldc: c.qDim)
                BLAS.sgemm(transA: true, transB: false, m: T, n: hd, k: T, a: dS, lda: T, b: query, ldb: c.qDim,
                           beta: 1, c: dk + base * c.kvDim + kv, ldc: c.kvDim)
            }
        }
    }
}

extension ModelWeights {
    /// Visits every trainable tensor with its gradient, in a fixed order (the order optimiser state is kept in).
    public mutating func forEachParameter(_ gradients: ModelGradients, _ body: (inout [Float], [Float]) -> Void) {
        body(&tokenEmbedding, gradients.tokenEmbedding)
        body(&finalNorm, gradients.finalNorm)
        if lmHead != nil { body(&lmHead!, gradients.lmHead) }
        for l in layers.indices {
            let g = gradients.layers[l]
            body(&layers[l].attnNorm, g.attnNorm)
            body(&layers[l].wq, g.wq); body(&layers[l].wk, g.wk); body(&layers[l].wv, g.wv)
            if layers[l].bq != nil { body(&layers[l].bq!, g.bq) }
            if layers[l].bk != nil { body(&layers[l].bk!, g.bk) }
            if layers[l].bv != nil { body(&layers[l].bv!, g.bv) }
            body(&layers[l].wo, g.wo)
            body(&layers[l].ffnNorm, g.ffnNorm)
            body(&layers[l].wGate, g.wGate); body(&layers[l].wUp, g.wUp); body(&layers[l].wDown, g.wDown)
        }
    }

    /// The sizes of the tensors `forEachParameter` visits, in its order (without allocating gradients).
    public var parameterSizes: [Int] {
        var sizes = [tokenEmbedding.count, finalNorm.count] + (lmHead.map { [$0.count] } ?? [])
        for layer in layers {
            sizes += [layer.attnNorm.count, layer.wq.count, layer.wk.count, layer.wv.count]
            sizes += [layer.bq, layer.bk, layer.bv].compactMap { $0?.count }
            sizes += [layer.wo.count, layer.ffnNorm.count, layer.wGate.count, layer.wUp.count, layer.wDown.count]
        }
        return sizes
    }

    /// Drops the file's block-format copies: after an update they no longer hold these weights.
    public mutating func dropQuantizedCopies() {
        for l in layers.indices { layers[l].quantized = QuantizedLayer() }
        quantizedHead = nil
    }
}
