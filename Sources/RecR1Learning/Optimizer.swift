import Dispatch
import Foundation
import RecR1Kernels

/// AdamW (Loshchilov & Hutter), as PyTorch's `torch.optim.AdamW` computes it:
///
///     p ← p − lr·λ·p
///     m ← β1·m + (1 − β1)·g          v ← β2·v + (1 − β2)·g²
///     p ← p − lr · (m / (1 − β1ᵗ)) / (√(v / (1 − β2ᵗ)) + ε)
public struct AdamWSettings: Equatable {
    public var beta1: Float = 0.9
    public var beta2: Float = 0.999
    public var epsilon: Float = 1e-8
    public var weightDecay: Float = 0.0

    public init(beta1: Float = 0.9, beta2: Float = 0.999, epsilon: Float = 1e-8, weightDecay: Float = 0) {
        self.beta1 = beta1
        self.beta2 = beta2
        self.epsilon = epsilon
        self.weightDecay = weightDecay
    }
}

/// The moments of one parameter tensor.
public struct AdamWMoments: Equatable {
    public var m: [Float]
    public var v: [Float]
    public init(count: Int) {
        m = [Float](repeating: 0, count: count)
        v = m
    }
}

public enum AdamW {
    /// One update of `parameter` from `gradient` · `gradientScale` (the clipping factor) at step t (1-based),
    /// learning rate lr, in PyTorch's arrangement: step size lr / (1 − β1ᵗ), denominator √v / √(1 − β2ᵗ) + ε.
    /// Large tensors are updated in slices on every thread (each element on its own).
    public static func update(_ parameter: inout [Float], gradient: [Float], gradientScale: Float = 1,
                              moments: inout AdamWMoments, step t: Int, learningRate lr: Float, settings s: AdamWSettings) {
        precondition(parameter.count == gradient.count && moments.m.count == parameter.count && t >= 1)
        let correction1 = 1 - powf(s.beta1, Float(t)), correction2 = 1 - powf(s.beta2, Float(t))
        let decay = 1 - lr * s.weightDecay, stepSize = lr / correction1, inverseSqrtCorrection2 = 1 / correction2.squareRoot()
        let count = parameter.count
        parameter.withUnsafeMutableBufferPointer { p in
            moments.m.withUnsafeMutableBufferPointer { m in
                moments.v.withUnsafeMutableBufferPointer { v in
                    gradient.withUnsafeBufferPointer { gradient in
                        let (p, m, v, gradient) = (p.baseAddress!, m.baseAddress!, v.baseAddress!, gradient.baseAddress!)
                        Parallel.rows(count, minimumPerThread: 1 << 16) { range in
                            let i = range.lowerBound
                            Kernels.adamW(p + i, gradient: gradient + i, m: m + i, v: v + i, range.count,
                                          gradientScale: gradientScale, beta1: s.beta1, beta2: s.beta2, decay: decay,
                                          stepSize: stepSize, inverseSqrtCorrection2: inverseSqrtCorrection2, epsilon: s.epsilon)
                        }
                    }
                }
            }
        }
    }
}

/// Σ g² over a tensor, in Double (float blocks added in double: fast and accurate enough for a norm).
public func sumOfSquares(_ tensor: [Float]) -> Double {
    tensor.withUnsafeBufferPointer { $0.isEmpty ? 0 : Kernels.sumOfSquares($0.baseAddress!, $0.count) }
}

/// The factor `torch.nn.utils.clip_grad_norm_` scales every gradient by: maxNorm / (norm + 1e-6) when the
/// norm exceeds maxNorm (> 0), else 1.
public func clipScale(norm: Float, maxNorm: Float) -> Float {
    maxNorm > 0 && norm > maxNorm ? maxNorm / (norm + 1e-6) : 1
}

/// Gradient-norm clipping, as `torch.nn.utils.clip_grad_norm_`: the global L2 norm over every tensor; when
/// it exceeds `maxNorm`, every gradient is scaled by maxNorm / (norm + 1e-6). Returns the norm before clipping.
@discardableResult
public func clipGradientNorm(_ gradients: inout [[Float]], maxNorm: Float) -> Float {
    let norm = Float(gradients.reduce(0.0) { $0 + sumOfSquares($1) }.squareRoot())
    let scale = clipScale(norm: norm, maxNorm: maxNorm)
    if scale != 1 {
        for t in gradients.indices { for i in gradients[t].indices { gradients[t][i] *= scale } }
    }
    return norm
}

/// Learning rate as a function of the optimiser step (0-based: the rate used by the first step is rate(0)).
public enum LearningRateSchedule: Equatable {
    case constant(Float)
    /// Linear warm-up from 0 over `warmup` steps, then constant.
    case warmupConstant(Float, warmup: Int)
    /// Linear warm-up, then linear decay to 0 at `total`.
    case warmupLinear(Float, warmup: Int, total: Int)
    /// Linear warm-up, then half a cosine down to `minimum` × peak at `total`.
    case warmupCosine(Float, warmup: Int, total: Int, minimum: Float)

    public func rate(step: Int) -> Float {
        switch self {
        case .constant(let peak):
            return peak
        case .warmupConstant(let peak, let warmup):
            return step < warmup ? peak * Float(step + 1) / Float(warmup) : peak
        case .warmupLinear(let peak, let warmup, let total):
            if step < warmup { return peak * Float(step + 1) / Float(warmup) }
            return peak * max(0, Float(total - step) / Float(max(1, total - warmup)))
        case .warmupCosine(let peak, let warmup, let total, let minimum):
            if step < warmup { return peak * Float(step + 1) / Float(warmup) }
            let progress = min(1, Float(step - warmup) / Float(max(1, total - warmup)))
            return peak * (minimum + (1 - minimum) * 0.5 * (1 + cosf(.pi * progress)))
        }
    }
}
