import CRecR1Kernels

/// Element-wise kernels on contiguous fp32 rows: explicit Swift SIMD for the simple ones (they vectorise
/// without fast-math), C with a vectorised exp for the ones that need exp (CRecR1Kernels).
public enum Kernels {
    public typealias V = SIMD16<Float>

    @inline(__always)
    static func load(_ p: UnsafePointer<Float>) -> V { UnsafeRawPointer(p).loadUnaligned(as: V.self) }
    @inline(__always)
    static func store(_ v: V, _ p: UnsafeMutablePointer<Float>) { UnsafeMutableRawPointer(p).storeBytes(of: v, as: V.self) }

    /// Σ a[i]·b[i]
    @inline(__always)
    public static func dot(_ a: UnsafePointer<Float>, _ b: UnsafePointer<Float>, _ n: Int) -> Float {
        var acc = V(repeating: 0)
        var i = 0
        while i + 16 <= n {
            acc += load(a + i) * load(b + i)
            i += 16
        }
        var sum = acc.sum()
        while i < n {
            sum += a[i] * b[i]
            i += 1
        }
        return sum
    }

    /// y[i] += alpha · x[i]
    @inline(__always)
    public static func axpy(_ alpha: Float, _ x: UnsafePointer<Float>, _ y: UnsafeMutablePointer<Float>, _ n: Int) {
        let a = V(repeating: alpha)
        var i = 0
        while i + 16 <= n {
            store(load(y + i) + a * load(x + i), y + i)
            i += 16
        }
        while i < n {
            y[i] += alpha * x[i]
            i += 1
        }
    }

    /// out = x / sqrt(mean(x²) + eps) · weight, for one row of n. Returns 1 / rms (kept for the backward pass).
    @discardableResult
    public static func rmsNorm(_ out: UnsafeMutablePointer<Float>, _ x: UnsafePointer<Float>, _ weight: UnsafePointer<Float>,
                               _ n: Int, eps: Float) -> Float {
        let inverseRMS = 1 / (dot(x, x, n) / Float(n) + eps).squareRoot()
        let scale = V(repeating: inverseRMS)
        var i = 0
        while i + 16 <= n {
            store(load(x + i) * scale * load(weight + i), out + i)
            i += 16
        }
        while i < n {
            out[i] = x[i] * inverseRMS * weight[i]
            i += 1
        }
        return inverseRMS
    }

    /// One decoding row's attention for one query head (recr1_attend_head): softmax(scale · q·Kᵀ) · V over
    /// `length` cached positions `stride` floats apart; `scores` is scratch for `length` floats.
    public static func attendHead(query: UnsafePointer<Float>, keys: UnsafePointer<Float>, values: UnsafePointer<Float>,
                                  stride: Int, length: Int, headDim: Int, scale: Float, scores: UnsafeMutablePointer<Float>,
                                  out: UnsafeMutablePointer<Float>) {
        recr1_attend_head(query, keys, values, Int32(stride), Int32(length), Int32(headDim), scale, scores, out)
    }

    /// In-place softmax of n values.
    public static func softmax(_ x: UnsafeMutablePointer<Float>, _ n: Int) { recr1_softmax(x, Int32(n)) }

    /// log Σ exp(x[i]), stably.
    public static func logSumExp(_ x: UnsafePointer<Float>, _ n: Int) -> Float { recr1_logsumexp(x, Int32(n)) }

    /// gate[i] = silu(gate[i]) · up[i], where silu(g) = g / (1 + e^-g).
    public static func swiGLU(_ gate: UnsafeMutablePointer<Float>, _ up: UnsafePointer<Float>, _ n: Int) {
        recr1_swiglu(gate, up, Int32(n))
    }

    /// SwiGLU's backward: dUp = dAct·silu(gate), and dAct becomes d(gate) = dAct·up·σ·(1 + gate·(1 − σ)).
    public static func swiGLUBackward(gate: UnsafePointer<Float>, up: UnsafePointer<Float>, dAct: UnsafeMutablePointer<Float>,
                                      dUp: UnsafeMutablePointer<Float>, _ n: Int) {
        recr1_swiglu_backward(gate, up, dAct, dUp, Int32(n))
    }

    /// Σ p·x over a row of logits with p = e^(x − lse); the entropy of the row is lse minus this.
    public static func expectedLogit(_ x: UnsafePointer<Float>, _ n: Int, logSumExp: Float) -> Float {
        recr1_expected_logit(x, Int32(n), logSumExp)
    }

    /// A row of logits becomes its gradient for dLoss/dlog p(token) = d and dLoss/dH = dH (entropy H):
    /// x := −d·p − dH·p·(log p + H); the caller adds d at the token.
    public static func logitGradient(_ x: UnsafeMutablePointer<Float>, _ n: Int, logSumExp: Float, d: Float, dH: Float, entropy: Float) {
        recr1_logit_gradient(x, Int32(n), logSumExp, d, dH, entropy)
    }

    /// Σ x[i]² over n values, in float blocks added in double, on every thread when n is large.
    public static func sumOfSquares(_ x: UnsafePointer<Float>, _ n: Int) -> Double {
        let parts = max(1, min(Parallel.threads, n >> 16))
        var partial = [Double](repeating: 0, count: parts)
        partial.withUnsafeMutableBufferPointer { partial in
            let chunk = (n + parts - 1) / parts
            Parallel.forEach(parts) { part in
                let start = min(part * chunk, n), end = min(start + chunk, n)
                partial[part] = recr1_sum_squares(x + start, end - start)
            }
        }
        return partial.reduce(0, +)
    }

    /// One AdamW update of n elements (see `recr1_adamw`): g = gradient · gradientScale, m and v move toward
    /// g and g², p = p·decay − stepSize · m / (√v · inverseSqrtCorrection2 + ε).
    public static func adamW(_ p: UnsafeMutablePointer<Float>, gradient: UnsafePointer<Float>, m: UnsafeMutablePointer<Float>,
                             v: UnsafeMutablePointer<Float>, _ n: Int, gradientScale: Float, beta1: Float, beta2: Float,
                             decay: Float, stepSize: Float, inverseSqrtCorrection2: Float, epsilon: Float) {
        var step = recr1_adamw_step(gradient_scale: gradientScale, beta1: beta1, beta2: beta2, decay: decay,
                                    step_size: stepSize, inverse_sqrt_correction2: inverseSqrtCorrection2, epsilon: epsilon)
        recr1_adamw(p, gradient, m, v, n, &step)
    }

    /// The RoPE angles of a position: cos and sin of position · θ^(−2i/headDim) for i < headDim/2.
    public static func ropeAngles(position: Int, headDim: Int, theta: Float,
                                  cos: UnsafeMutablePointer<Float>, sin: UnsafeMutablePointer<Float>) {
        for i in 0..<(headDim / 2) {
            let angle = Float(position) * powf(theta, -Float(2 * i) / Float(headDim))
            cos[i] = cosf(angle)
            sin[i] = sinf(angle)
        }
    }

    /// Rotate-half RoPE on `heads` heads of `headDim` in place: for i < headDim/2, the pair
    /// (x[i], x[i + headDim/2]) turns by the angle whose cosine and sine are cos[i], sin[i].
    public static func rope(_ x: UnsafeMutablePointer<Float>, heads: Int, headDim: Int,
                            cos: UnsafePointer<Float>, sin: UnsafePointer<Float>) {
        let half = headDim / 2
        for h in 0..<heads {
            let head = x + h * headDim
            for i in 0..<half {
                let x1 = head[i], x2 = head[i + half]
                head[i] = x1 * cos[i] - x2 * sin[i]
                head[i + half] = x2 * cos[i] + x1 * sin[i]
            }
        }
    }
}

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
