#include "recr1_kernels.h"

#if defined(__x86_64__)
#include <immintrin.h>
#endif

// One decoding row's attention for one query head; see recr1_kernels.h.

static void attend_head_portable(const float *q, const float *keys, const float *values, int stride, int length,
                                 int head_dim, float scale, float *scores, float *out) {
    for (int j = 0; j < length; j++) {
        const float *k = keys + (long)j * stride;
        float dot = 0;
        for (int d = 0; d < head_dim; d++) dot += q[d] * k[d];
        scores[j] = dot * scale;
    }
    recr1_softmax(scores, length);
    for (int d = 0; d < head_dim; d++) out[d] = 0;
    for (int j = 0; j < length; j++) {
        const float *v = values + (long)j * stride;
        for (int d = 0; d < head_dim; d++) out[d] += scores[j] * v[d];
    }
}

#if defined(__x86_64__)
enum { MAX_CHUNKS = 8 };  // head_dim up to 128 in registers

// The query and the output stay in registers (head_dim / 16 vectors each); keys and values stream once.
// Inlined with a constant `chunks` (SmolLM2's head_dim 64), the accumulators are registers: with a run-time
// count they lived on the stack and each value's FMA waited for the previous store.
__attribute__((target("avx512f"), always_inline)) static inline void
attend_head_avx512_body(const float *q, const float *keys, const float *values, int stride, int length, float scale,
                        float *scores, float *out, const int chunks) {
    __m512 query[MAX_CHUNKS], acc[MAX_CHUNKS];
    for (int c = 0; c < chunks; c++) query[c] = _mm512_loadu_ps(q + 16 * c);
    for (int j = 0; j < length; j++) {
        const float *k = keys + (long)j * stride;
        __m512 dot = _mm512_mul_ps(query[0], _mm512_loadu_ps(k));
        for (int c = 1; c < chunks; c++) dot = _mm512_fmadd_ps(query[c], _mm512_loadu_ps(k + 16 * c), dot);
        scores[j] = _mm512_reduce_add_ps(dot) * scale;
    }
    recr1_softmax(scores, length);
    for (int c = 0; c < chunks; c++) acc[c] = _mm512_setzero_ps();
    for (int j = 0; j < length; j++) {
        const float *v = values + (long)j * stride;
        const __m512 p = _mm512_set1_ps(scores[j]);
        for (int c = 0; c < chunks; c++) acc[c] = _mm512_fmadd_ps(p, _mm512_loadu_ps(v + 16 * c), acc[c]);
    }
    for (int c = 0; c < chunks; c++) _mm512_storeu_ps(out + 16 * c, acc[c]);
}

__attribute__((target("avx512f"))) static void attend_head_avx512(const float *q, const float *keys,
                                                                    const float *values, int stride, int length,
                                                                    int head_dim, float scale, float *scores,
                                                                    float *out) {
    if (head_dim == 64)
        attend_head_avx512_body(q, keys, values, stride, length, scale, scores, out, 4);
    else
        attend_head_avx512_body(q, keys, values, stride, length, scale, scores, out, head_dim / 16);
}
#endif

void recr1_attend_head(const float *q, const float *keys, const float *values, int stride, int length, int head_dim,
                       float scale, float *scores, float *out) {
#if defined(__x86_64__)
    if (recr1_kernels_avx512() && head_dim % 16 == 0 && head_dim / 16 <= MAX_CHUNKS) {
        attend_head_avx512(q, keys, values, stride, length, head_dim, scale, scores, out);
        return;
    }
#endif
    attend_head_portable(q, keys, values, stride, length, head_dim, scale, scores, out);
}
