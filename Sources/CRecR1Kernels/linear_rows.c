#include "recr1_kernels.h"

#include <stddef.h>
#if defined(__x86_64__)
#include <immintrin.h>
#endif

#if defined(__x86_64__) && defined(__clang__)
#define MULTI_ISA __attribute__((target_clones("avx512f", "avx2", "default")))
#else
#define MULTI_ISA
#endif

static inline void store(float *o, float value, float beta) { *o = beta == 0 ? value : beta * *o + value; }

// A 4 x 4 block: weight rows n..n+3 against x rows r..r+3. Each loaded x value serves four weight rows and
// each loaded weight value four x rows, so the loop does one load per two multiply-adds. The k loop is a
// plain reduction; -ffast-math lets the compiler vectorise it.
static inline void block4x4(int k, const float *x, const float *w, float *out, int ldo, float beta) {
    const float *x0 = x, *x1 = x0 + k, *x2 = x1 + k, *x3 = x2 + k;
    const float *w0 = w, *w1 = w0 + k, *w2 = w1 + k, *w3 = w2 + k;
    float a00 = 0, a01 = 0, a02 = 0, a03 = 0, a10 = 0, a11 = 0, a12 = 0, a13 = 0;
    float a20 = 0, a21 = 0, a22 = 0, a23 = 0, a30 = 0, a31 = 0, a32 = 0, a33 = 0;
    for (int i = 0; i < k; i++) {
        float v0 = w0[i], v1 = w1[i], v2 = w2[i], v3 = w3[i];
        float u = x0[i];
        a00 += u * v0; a01 += u * v1; a02 += u * v2; a03 += u * v3;
        u = x1[i];
        a10 += u * v0; a11 += u * v1; a12 += u * v2; a13 += u * v3;
        u = x2[i];
        a20 += u * v0; a21 += u * v1; a22 += u * v2; a23 += u * v3;
        u = x3[i];
        a30 += u * v0; a31 += u * v1; a32 += u * v2; a33 += u * v3;
    }
    float *o = out;
    store(o + 0, a00, beta); store(o + 1, a01, beta); store(o + 2, a02, beta); store(o + 3, a03, beta);
    o += ldo;
    store(o + 0, a10, beta); store(o + 1, a11, beta); store(o + 2, a12, beta); store(o + 3, a13, beta);
    o += ldo;
    store(o + 0, a20, beta); store(o + 1, a21, beta); store(o + 2, a22, beta); store(o + 3, a23, beta);
    o += ldo;
    store(o + 0, a30, beta); store(o + 1, a31, beta); store(o + 2, a32, beta); store(o + 3, a33, beta);
}

// One x row against weight rows n..n+3.
static inline void block1x4(int k, const float *x, const float *w, float *out, float beta) {
    const float *w0 = w, *w1 = w0 + k, *w2 = w1 + k, *w3 = w2 + k;
    float a0 = 0, a1 = 0, a2 = 0, a3 = 0;
    for (int i = 0; i < k; i++) {
        float u = x[i];
        a0 += u * w0[i]; a1 += u * w1[i]; a2 += u * w2[i]; a3 += u * w3[i];
    }
    store(out + 0, a0, beta); store(out + 1, a1, beta); store(out + 2, a2, beta); store(out + 3, a3, beta);
}

#if defined(__x86_64__)
// The same 4 x 4 block in AVX-512: 16 accumulators of 16 lanes; the tail of k is a masked load.
__attribute__((target("avx512f"))) static void block4x4_avx512(int k, const float *x, const float *w, float *out,
                                                                 int ldo, float beta) {
    __m512 acc[4][4];
    for (int r = 0; r < 4; r++)
        for (int c = 0; c < 4; c++) acc[r][c] = _mm512_setzero_ps();
    for (int i = 0; i < k; i += 16) {
        __mmask16 mask = k - i >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << (k - i)) - 1);
        __m512 v[4];
        for (int c = 0; c < 4; c++) v[c] = _mm512_maskz_loadu_ps(mask, w + (size_t)c * k + i);
        for (int r = 0; r < 4; r++) {
            __m512 u = _mm512_maskz_loadu_ps(mask, x + (size_t)r * k + i);
            for (int c = 0; c < 4; c++) acc[r][c] = _mm512_fmadd_ps(u, v[c], acc[r][c]);
        }
    }
    for (int r = 0; r < 4; r++)
        for (int c = 0; c < 4; c++) store(out + (size_t)r * ldo + c, _mm512_reduce_add_ps(acc[r][c]), beta);
}

#endif

typedef void (*block4x4_fn)(int k, const float *x, const float *w, float *out, int ldo, float beta);

// 4 x 4 blocks where they fit, then single rows, then single outputs.
MULTI_ISA
static void linear_rows_blocked(block4x4_fn block, int m, int n0, int n1, int k, const float *x, const float *w,
                                float *out, int ldo, float beta) {
    int n = n0;
    for (; n + 4 <= n1; n += 4) {
        const float *wn = w + (size_t)n * k;
        int r = 0;
        for (; r + 4 <= m; r += 4) block(k, x + (size_t)r * k, wn, out + (size_t)r * ldo + n, ldo, beta);
        for (; r < m; r++) block1x4(k, x + (size_t)r * k, wn, out + (size_t)r * ldo + n, beta);
    }
    for (; n < n1; n++) {  // the last few outputs, one at a time
        const float *wn = w + (size_t)n * k;
        for (int r = 0; r < m; r++) {
            const float *xr = x + (size_t)r * k;
            float a = 0;
            for (int i = 0; i < k; i++) a += xr[i] * wn[i];
            store(out + (size_t)r * ldo + n, a, beta);
        }
    }
}

void recr1_linear_rows(int m, int n0, int n1, int k, const float *x, const float *w, float *out, int ldo,
                       float beta) {
#if defined(__x86_64__)
    if (recr1_kernels_avx512()) {
        linear_rows_blocked(block4x4_avx512, m, n0, n1, k, x, w, out, ldo, beta);
        return;
    }
#endif
    linear_rows_blocked(block4x4, m, n0, n1, k, x, w, out, ldo, beta);
}
