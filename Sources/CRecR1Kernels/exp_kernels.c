#include "recr1_kernels.h"

#include <float.h>
#include <math.h>
#if defined(__x86_64__)
#include <immintrin.h>
#endif

// Softmax, log-sum-exp and SwiGLU over rows, with a vectorised exp. The scalar libm expf costs several
// nanoseconds a call, and a forward pass of 1,024 rows makes about 10^8 of them (SwiGLU, log-softmax).

// σ(x) with e^-x kept finite: -ffast-math assumes no infinities, and 1 / (1 + inf) then gives NaN.
static inline float sigmoid(float x) { return 1.0f / (1.0f + expf(fminf(-x, 88.0f))); }

#if defined(__x86_64__)
#define AVX512 __attribute__((target("avx512f")))

// e^x = 2^n · e^r with n = round(x / ln 2) and |r| <= ln(2)/2; e^r by its degree-6 Taylor polynomial
// (relative error below 2e-7, about one float ulp); 2^n applied exactly by scalef. Inputs are clamped to
// [-87, 88], where e^x is a normal float.
AVX512 static inline __m512 exp512(__m512 x) {
    x = _mm512_min_ps(_mm512_max_ps(x, _mm512_set1_ps(-87.0f)), _mm512_set1_ps(88.0f));
    const __m512 n = _mm512_roundscale_ps(_mm512_mul_ps(x, _mm512_set1_ps(1.44269504f)),
                                          _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    __m512 r = _mm512_fnmadd_ps(n, _mm512_set1_ps(0.693145752f), x);  // ln 2 in two parts keeps r exact
    r = _mm512_fnmadd_ps(n, _mm512_set1_ps(1.42860677e-6f), r);
    __m512 p = _mm512_set1_ps(1.0f / 720);
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f / 120));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f / 24));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f / 6));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(0.5f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f));
    return _mm512_scalef_ps(p, n);
}

AVX512 static float max512(const float *x, int n) {
    __m512 m = _mm512_set1_ps(-FLT_MAX);
    int i = 0;
    for (; i + 16 <= n; i += 16) m = _mm512_max_ps(m, _mm512_loadu_ps(x + i));
    if (i < n) m = _mm512_mask_max_ps(m, (__mmask16)((1u << (n - i)) - 1), m, _mm512_maskz_loadu_ps((__mmask16)((1u << (n - i)) - 1), x + i));
    return _mm512_reduce_max_ps(m);
}

// Σ e^(x[i] - shift), and with out != NULL also out[i] = e^(x[i] - shift).
AVX512 static float sum_exp512(const float *x, float *out, int n, float shift) {
    const __m512 s = _mm512_set1_ps(shift);
    __m512 sum = _mm512_setzero_ps();
    int i = 0;
    for (; i + 16 <= n; i += 16) {
        __m512 e = exp512(_mm512_sub_ps(_mm512_loadu_ps(x + i), s));
        if (out) _mm512_storeu_ps(out + i, e);
        sum = _mm512_add_ps(sum, e);
    }
    if (i < n) {
        __mmask16 mask = (__mmask16)((1u << (n - i)) - 1);
        __m512 e = exp512(_mm512_sub_ps(_mm512_maskz_loadu_ps(mask, x + i), s));
        if (out) _mm512_mask_storeu_ps(out + i, mask, e);
        sum = _mm512_add_ps(sum, _mm512_maskz_mov_ps(mask, e));
    }
    return _mm512_reduce_add_ps(sum);
}

AVX512 static void swiglu512(float *gate, const float *up, int n) {
    const __m512 one = _mm512_set1_ps(1.0f);
    int i = 0;
    for (; i + 16 <= n; i += 16) {
        __m512 g = _mm512_loadu_ps(gate + i);
        __m512 silu = _mm512_div_ps(g, _mm512_add_ps(one, exp512(_mm512_sub_ps(_mm512_setzero_ps(), g))));
        _mm512_storeu_ps(gate + i, _mm512_mul_ps(silu, _mm512_loadu_ps(up + i)));
    }
    for (; i < n; i++) gate[i] = gate[i] * sigmoid(gate[i]) * up[i];
}

static int has_avx512(void) { return recr1_kernels_avx512(); }
#else
static int has_avx512(void) { return 0; }
#endif

void recr1_softmax(float *x, int n) {
    if (n <= 0) return;
#if defined(__x86_64__)
    if (has_avx512()) {
        float inverse = 1.0f / sum_exp512(x, x, n, max512(x, n));
        for (int i = 0; i < n; i++) x[i] *= inverse;
        return;
    }
#endif
    float maximum = -FLT_MAX, sum = 0;
    for (int i = 0; i < n; i++) maximum = x[i] > maximum ? x[i] : maximum;
    for (int i = 0; i < n; i++) sum += (x[i] = expf(x[i] - maximum));
    for (int i = 0; i < n; i++) x[i] /= sum;
}

float recr1_logsumexp(const float *x, int n) {
    if (n <= 0) return -FLT_MAX;
#if defined(__x86_64__)
    if (has_avx512()) {
        float maximum = max512(x, n);
        return maximum + logf(sum_exp512(x, 0, n, maximum));
    }
#endif
    float maximum = -FLT_MAX, sum = 0;
    for (int i = 0; i < n; i++) maximum = x[i] > maximum ? x[i] : maximum;
    for (int i = 0; i < n; i++) sum += expf(x[i] - maximum);
    return maximum + logf(sum);
}

void recr1_swiglu(float *gate, const float *up, int n) {
#if defined(__x86_64__)
    if (has_avx512()) {
        swiglu512(gate, up, n);
        return;
    }
#endif
    for (int i = 0; i < n; i++) gate[i] = gate[i] * sigmoid(gate[i]) * up[i];
}

// --- The training pass's element-wise work ----------------------------------------------------------

#if defined(__x86_64__)
// Σ p·x with p = e^(x − lse): the expected logit, from which the entropy is lse − Σ p·x.
AVX512 static float expected512(const float *x, int n, float lse) {
    const __m512 s = _mm512_set1_ps(lse);
    __m512 sum = _mm512_setzero_ps();
    int i = 0;
    for (; i + 16 <= n; i += 16) {
        __m512 v = _mm512_loadu_ps(x + i);
        sum = _mm512_fmadd_ps(exp512(_mm512_sub_ps(v, s)), v, sum);
    }
    float tail = 0;
    for (; i < n; i++) tail += expf(x[i] - lse) * x[i];
    return _mm512_reduce_add_ps(sum) + tail;
}

AVX512 static void logit_gradient512(float *x, int n, float lse, float d, float dh, float h) {
    const __m512 s = _mm512_set1_ps(lse), vd = _mm512_set1_ps(-d), vdh = _mm512_set1_ps(-dh), vh = _mm512_set1_ps(h);
    int i = 0;
    for (; i + 16 <= n; i += 16) {
        __m512 logp = _mm512_sub_ps(_mm512_loadu_ps(x + i), s);
        __m512 p = exp512(logp);
        // −d·p − dH·p·(log p + H)
        __m512 g = _mm512_fmadd_ps(_mm512_mul_ps(vdh, p), _mm512_add_ps(logp, vh), _mm512_mul_ps(vd, p));
        _mm512_storeu_ps(x + i, g);
    }
    for (; i < n; i++) {
        float logp = x[i] - lse, p = expf(logp);
        x[i] = -d * p - dh * p * (logp + h);
    }
}

AVX512 static void swiglu_backward512(const float *gate, const float *up, float *d_act, float *d_up, int n) {
    const __m512 one = _mm512_set1_ps(1.0f);
    int i = 0;
    for (; i + 16 <= n; i += 16) {
        __m512 g = _mm512_loadu_ps(gate + i), u = _mm512_loadu_ps(up + i), da = _mm512_loadu_ps(d_act + i);
        __m512 sig = _mm512_div_ps(one, _mm512_add_ps(one, exp512(_mm512_sub_ps(_mm512_setzero_ps(), g))));
        _mm512_storeu_ps(d_up + i, _mm512_mul_ps(da, _mm512_mul_ps(g, sig)));
        // d gate = da · up · σ · (1 + g·(1 − σ))
        __m512 inner = _mm512_fmadd_ps(g, _mm512_sub_ps(one, sig), one);
        _mm512_storeu_ps(d_act + i, _mm512_mul_ps(_mm512_mul_ps(da, u), _mm512_mul_ps(sig, inner)));
    }
    for (; i < n; i++) {
        float g = gate[i], sig = sigmoid(g);
        d_up[i] = d_act[i] * g * sig;
        d_act[i] = d_act[i] * up[i] * sig * (1.0f + g * (1.0f - sig));
    }
}
#endif

float recr1_expected_logit(const float *x, int n, float lse) {
#if defined(__x86_64__)
    if (has_avx512()) return expected512(x, n, lse);
#endif
    float sum = 0;
    for (int i = 0; i < n; i++) sum += expf(x[i] - lse) * x[i];
    return sum;
}

void recr1_logit_gradient(float *x, int n, float lse, float d, float dh, float h) {
#if defined(__x86_64__)
    if (has_avx512()) {
        logit_gradient512(x, n, lse, d, dh, h);
        return;
    }
#endif
    for (int i = 0; i < n; i++) {
        float logp = x[i] - lse, p = expf(logp);
        x[i] = -d * p - dh * p * (logp + h);
    }
}

void recr1_swiglu_backward(const float *gate, const float *up, float *d_act, float *d_up, int n) {
#if defined(__x86_64__)
    if (has_avx512()) {
        swiglu_backward512(gate, up, d_act, d_up, n);
        return;
    }
#endif
    for (int i = 0; i < n; i++) {
        float g = gate[i], sig = sigmoid(g);
        d_up[i] = d_act[i] * g * sig;
        d_act[i] = d_act[i] * up[i] * sig * (1.0f + g * (1.0f - sig));
    }
}
