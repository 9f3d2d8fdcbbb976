#include "recr1_kernels.h"

#include <math.h>

// AdamW's update and the gradient norm's sum of squares. Each body is written once as plain C and compiled
// twice, for AVX-512 and for the baseline: the compiler vectorises both (division and square root included,
// which Swift's loop kept scalar), and the loops become bound by memory (p, g, m, v streamed once).

static inline double sum_squares_body(const float *x, long n) {
    double total = 0;
    for (long start = 0; start < n; start += 4096) {  // float sums of 4,096 values, added in double
        const long end = start + 4096 < n ? start + 4096 : n;
        float block = 0;
        for (long i = start; i < end; i++) block += x[i] * x[i];
        total += block;
    }
    return total;
}

static inline void adamw_body(float *restrict p, const float *restrict g, float *restrict m, float *restrict v, long n,
                              const recr1_adamw_step *s) {
    // Exact square root and division: fast-math's estimates would make √0 (v = 0 where a gradient is 0) NaN
    // or move the update by an ulp against PyTorch's.
#pragma float_control(precise, on)
    const float b1 = s->beta1, b2 = s->beta2;
    for (long i = 0; i < n; i++) {
        const float gi = g[i] * s->gradient_scale;
        const float mi = b1 * m[i] + (1 - b1) * gi;
        const float vi = b2 * v[i] + (1 - b2) * gi * gi;
        m[i] = mi;
        v[i] = vi;
        p[i] = p[i] * s->decay - s->step_size * mi / (sqrtf(vi) * s->inverse_sqrt_correction2 + s->epsilon);
    }
}

#if defined(__x86_64__)
__attribute__((target("avx512f"))) static double sum_squares_avx512(const float *x, long n) {
    return sum_squares_body(x, n);
}
__attribute__((target("avx512f"))) static void adamw_avx512(float *restrict p, const float *restrict g, float *restrict m,
                                                            float *restrict v, long n, const recr1_adamw_step *s) {
    adamw_body(p, g, m, v, n, s);
}
#endif

double recr1_sum_squares(const float *x, long n) {
#if defined(__x86_64__)
    if (recr1_kernels_avx512()) return sum_squares_avx512(x, n);
#endif
    return sum_squares_body(x, n);
}

void recr1_adamw(float *p, const float *g, float *m, float *v, long n, const recr1_adamw_step *s) {
#if defined(__x86_64__)
    if (recr1_kernels_avx512()) {
        adamw_avx512(p, g, m, v, n, s);
        return;
    }
#endif
    adamw_body(p, g, m, v, n, s);
}
