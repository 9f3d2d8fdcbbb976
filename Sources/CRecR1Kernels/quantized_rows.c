#include "recr1_kernels.h"

#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#if defined(__x86_64__)
#include <immintrin.h>
#endif

// Skinny products against weights kept in GGUF's block formats: each block of 32 weights is turned back
// into fp32 in registers (w = d*q + m for Q4_1, d*(q-8) for Q4_0, d*q for Q8_0) and used for every x row
// at once. The arithmetic is that of the dequantised fp32 matrix; only memory traffic shrinks (Q4_1 reads
// 0.625 bytes per weight instead of 4), which is what bounds decoding.

static inline float half_to_float(const uint8_t *p) {
    uint16_t h;
    memcpy(&h, p, 2);
    uint32_t sign = (uint32_t)(h >> 15) << 31, exponent = (h >> 10) & 31, mantissa = h & 1023, bits;
    if (exponent == 0) {
        if (mantissa == 0) {
            bits = sign;
        } else {  // subnormal: normalise
            int e = -1;
            do { e++; mantissa <<= 1; } while (!(mantissa & 1024));
            bits = sign | (uint32_t)(112 - e) << 23 | (mantissa & 1023) << 13;
        }
    } else if (exponent == 31) {
        bits = sign | 0x7f800000u | mantissa << 13;
    } else {
        bits = sign | (exponent + 112) << 23 | mantissa << 13;
    }
    float f;
    memcpy(&f, &bits, 4);
    return f;
}

// The 32 weights of block b of a row, as fp32 (portable path).
static void block_values(int type, const uint8_t *block, float *w) {
    switch (type) {
    case RECR1_Q4_1: {
        float d = half_to_float(block), m = half_to_float(block + 2);
        for (int j = 0; j < 16; j++) {
            w[j] = d * (float)(block[4 + j] & 15) + m;
            w[j + 16] = d * (float)(block[4 + j] >> 4) + m;
        }
        break;
    }
    case RECR1_Q4_0: {
        float d = half_to_float(block);
        for (int j = 0; j < 16; j++) {
            w[j] = d * (float)((block[2 + j] & 15) - 8);
            w[j + 16] = d * (float)((block[2 + j] >> 4) - 8);
        }
        break;
    }
    default: {  // Q8_0
        float d = half_to_float(block);
        for (int j = 0; j < 32; j++) w[j] = d * (float)(int8_t)block[2 + j];
    }
    }
}

int recr1_block_bytes(int type) { return type == RECR1_Q4_1 ? 20 : type == RECR1_Q4_0 ? 18 : 34; }

static void quantized_rows_portable(int type, int m, int n0, int n1, int k, const float *x, const uint8_t *w,
                                    float *out, int ldo, float beta) {
    const int blocks = k / 32, bytes = recr1_block_bytes(type);
    float values[32];
    for (int n = n0; n < n1; n++) {
        const uint8_t *row = w + (size_t)n * blocks * bytes;
        for (int r = 0; r < m; r++) {
            const float *xr = x + (size_t)r * k;
            float sum = 0;
            for (int b = 0; b < blocks; b++) {
                block_values(type, row + (size_t)b * bytes, values);
                for (int j = 0; j < 32; j++) sum += xr[b * 32 + j] * values[j];
            }
            float *o = out + (size_t)r * ldo + n;
            *o = beta == 0 ? sum : beta * *o + sum;
        }
    }
}

#if defined(__x86_64__)
#define AVX512 __attribute__((target("avx512f,avx512bw,f16c")))

// Block b's 32 weights as two zmm vectors (weights 0..15 and 16..31).
AVX512 static inline void decode_block(int type, const uint8_t *block, __m512 *lo, __m512 *hi) {
    const __m512 d = _mm512_set1_ps(_cvtsh_ss(*(const uint16_t *)block));
    if (type == RECR1_Q8_0) {
        *lo = _mm512_mul_ps(d, _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(_mm_loadu_si128((const __m128i *)(block + 2)))));
        *hi = _mm512_mul_ps(d, _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(_mm_loadu_si128((const __m128i *)(block + 18)))));
        return;
    }
    const int offset = type == RECR1_Q4_1 ? 4 : 2;
    __m512i q = _mm512_cvtepu8_epi32(_mm_loadu_si128((const __m128i *)(block + offset)));
    __m512 ql = _mm512_cvtepi32_ps(_mm512_and_si512(q, _mm512_set1_epi32(15)));
    __m512 qh = _mm512_cvtepi32_ps(_mm512_srli_epi32(q, 4));
    if (type == RECR1_Q4_1) {
        const __m512 minimum = _mm512_set1_ps(_cvtsh_ss(*(const uint16_t *)(block + 2)));
        *lo = _mm512_fmadd_ps(d, ql, minimum);
        *hi = _mm512_fmadd_ps(d, qh, minimum);
    } else {
        const __m512 eight = _mm512_set1_ps(8);
        *lo = _mm512_mul_ps(d, _mm512_sub_ps(ql, eight));
        *hi = _mm512_mul_ps(d, _mm512_sub_ps(qh, eight));
    }
}

// One x row (decoding a single sample): four outputs at a time with separate accumulators for the two
// halves of each block, so that the adds of one output do not wait on each other.
AVX512 static void quantized_row1_avx512(int type, int n0, int n1, int k, const float *x, const uint8_t *w,
                                        float *out, float beta) {
    const int blocks = k / 32, bytes = recr1_block_bytes(type);
    const size_t stride = (size_t)blocks * bytes;
    int n = n0;
    for (; n + 4 <= n1; n += 4) {
        __m512 acc[8];
        for (int i = 0; i < 8; i++) acc[i] = _mm512_setzero_ps();
        for (int b = 0; b < blocks; b++) {
            const __m512 xlo = _mm512_loadu_ps(x + b * 32), xhi = _mm512_loadu_ps(x + b * 32 + 16);
            for (int c = 0; c < 4; c++) {
                __m512 lo, hi;
                decode_block(type, w + (n + c) * stride + (size_t)b * bytes, &lo, &hi);
                acc[2 * c] = _mm512_fmadd_ps(xlo, lo, acc[2 * c]);
                acc[2 * c + 1] = _mm512_fmadd_ps(xhi, hi, acc[2 * c + 1]);
            }
        }
        for (int c = 0; c < 4; c++) {
            float sum = _mm512_reduce_add_ps(_mm512_add_ps(acc[2 * c], acc[2 * c + 1]));
            out[n + c] = beta == 0 ? sum : beta * out[n + c] + sum;
        }
    }
    if (n < n1) quantized_rows_portable(type, 1, n, n1, k, x, w, out, 0, beta);
}

// R rows of x (R a constant after inlining, so the accumulators stay in registers) against outputs n0..<n1,
// two outputs at a time: each x vector loaded serves both, which halves the loads per multiply-add.
AVX512 static inline __attribute__((always_inline)) void quantized_block_rows(
    const int R, int type, int n0, int n1, int k, const float *xs, const uint8_t *w, float *out, int ldo, float beta) {
    const int blocks = k / 32, bytes = recr1_block_bytes(type);
    const size_t stride = (size_t)blocks * bytes;
    int n = n0;
    for (; n + 2 <= n1; n += 2) {
        const uint8_t *row0 = w + (size_t)n * stride, *row1 = row0 + stride;
        __m512 acc0[8], acc1[8];
        for (int r = 0; r < R; r++) acc0[r] = acc1[r] = _mm512_setzero_ps();
        for (int b = 0; b < blocks; b++) {
            __m512 lo0, hi0, lo1, hi1;
            decode_block(type, row0 + (size_t)b * bytes, &lo0, &hi0);
            decode_block(type, row1 + (size_t)b * bytes, &lo1, &hi1);
            for (int r = 0; r < R; r++) {
                const float *xb = xs + (size_t)r * k + b * 32;
                const __m512 xlo = _mm512_loadu_ps(xb), xhi = _mm512_loadu_ps(xb + 16);
                acc0[r] = _mm512_fmadd_ps(xhi, hi0, _mm512_fmadd_ps(xlo, lo0, acc0[r]));
                acc1[r] = _mm512_fmadd_ps(xhi, hi1, _mm512_fmadd_ps(xlo, lo1, acc1[r]));
            }
        }
        for (int r = 0; r < R; r++) {
            float *o = out + (size_t)r * ldo + n;
            float s0 = _mm512_reduce_add_ps(acc0[r]), s1 = _mm512_reduce_add_ps(acc1[r]);
            o[0] = beta == 0 ? s0 : beta * o[0] + s0;
            o[1] = beta == 0 ? s1 : beta * o[1] + s1;
        }
    }
    if (n < n1) quantized_rows_portable(type, R, n, n1, k, xs, w, out, ldo, beta);
}

// Rows of x are taken eight at a time; one zmm accumulator per x row and per output.
AVX512 static void quantized_rows_avx512(int type, int m, int n0, int n1, int k, const float *x, const uint8_t *w,
                                         float *out, int ldo, float beta) {
    for (int r0 = 0; r0 < m; r0 += 8) {
        const float *xs = x + (size_t)r0 * k;
        float *o = out + (size_t)r0 * ldo;
        switch (m - r0 < 8 ? m - r0 : 8) {
        case 8: quantized_block_rows(8, type, n0, n1, k, xs, w, o, ldo, beta); break;
        case 7: quantized_block_rows(7, type, n0, n1, k, xs, w, o, ldo, beta); break;
        case 6: quantized_block_rows(6, type, n0, n1, k, xs, w, o, ldo, beta); break;
        case 5: quantized_block_rows(5, type, n0, n1, k, xs, w, o, ldo, beta); break;
        case 4: quantized_block_rows(4, type, n0, n1, k, xs, w, o, ldo, beta); break;
        case 3: quantized_block_rows(3, type, n0, n1, k, xs, w, o, ldo, beta); break;
        case 2: quantized_block_rows(2, type, n0, n1, k, xs, w, o, ldo, beta); break;
        default: quantized_block_rows(1, type, n0, n1, k, xs, w, o, ldo, beta); break;
        }
    }
}
#endif

#if defined(__x86_64__)
// AVX2 + FMA (CPUs without AVX-512, e.g. AMD Zen 2/3): the same scheme with 8-wide vectors. A block's 32
// weights become four ymm vectors, decoded once per output and used for up to 8 x rows.
#define AVX2 __attribute__((target("avx2,fma,f16c")))

AVX2 static inline void decode_block8(int type, const uint8_t *block, __m256 v[4]) {
    const __m256 d = _mm256_set1_ps(_cvtsh_ss(*(const uint16_t *)block));
    if (type == RECR1_Q8_0) {
        for (int i = 0; i < 4; i++) {
            __m128i q = _mm_loadl_epi64((const __m128i *)(block + 2 + 8 * i));
            v[i] = _mm256_mul_ps(d, _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(q)));
        }
        return;
    }
    const int offset = type == RECR1_Q4_1 ? 4 : 2;
    const __m256i mask = _mm256_set1_epi32(15);
    // Weights 0..15 are the low nibbles of bytes 0..15, weights 16..31 their high nibbles.
    __m256i q0 = _mm256_cvtepu8_epi32(_mm_loadl_epi64((const __m128i *)(block + offset)));
    __m256i q1 = _mm256_cvtepu8_epi32(_mm_loadl_epi64((const __m128i *)(block + offset + 8)));
    __m256 f[4] = {_mm256_cvtepi32_ps(_mm256_and_si256(q0, mask)), _mm256_cvtepi32_ps(_mm256_and_si256(q1, mask)),
                   _mm256_cvtepi32_ps(_mm256_srli_epi32(q0, 4)), _mm256_cvtepi32_ps(_mm256_srli_epi32(q1, 4))};
    if (type == RECR1_Q4_1) {
        const __m256 minimum = _mm256_set1_ps(_cvtsh_ss(*(const uint16_t *)(block + 2)));
        for (int i = 0; i < 4; i++) v[i] = _mm256_fmadd_ps(d, f[i], minimum);
    } else {
        const __m256 eight = _mm256_set1_ps(8);
        for (int i = 0; i < 4; i++) v[i] = _mm256_mul_ps(d, _mm256_sub_ps(f[i], eight));
    }
}

AVX2 static inline float sum8(__m256 v) {
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}

// R rows of x against O outputs at a time (both constants after inlining, so the R·O accumulators stay
// in registers): each output's block is decoded once and serves every row.
AVX2 static inline __attribute__((always_inline)) void quantized_block_rows8(
    const int R, const int O, int type, int n0, int n1, int k, const float *xs, const uint8_t *w, float *out, int ldo,
    float beta) {
    const int blocks = k / 32, bytes = recr1_block_bytes(type);
    const size_t stride = (size_t)blocks * bytes;
    int n = n0;
    for (; n + O <= n1; n += O) {
        __m256 acc[4][8];
        for (int o = 0; o < O; o++)
            for (int r = 0; r < R; r++) acc[o][r] = _mm256_setzero_ps();
        for (int b = 0; b < blocks; b++) {
            for (int o = 0; o < O; o++) {
                __m256 v[4];
                decode_block8(type, w + (size_t)(n + o) * stride + (size_t)b * bytes, v);
                for (int r = 0; r < R; r++) {
                    const float *xb = xs + (size_t)r * k + b * 32;
                    __m256 a = _mm256_fmadd_ps(_mm256_loadu_ps(xb), v[0], acc[o][r]);
                    a = _mm256_fmadd_ps(_mm256_loadu_ps(xb + 8), v[1], a);
                    a = _mm256_fmadd_ps(_mm256_loadu_ps(xb + 16), v[2], a);
                    acc[o][r] = _mm256_fmadd_ps(_mm256_loadu_ps(xb + 24), v[3], a);
                }
            }
        }
        for (int o = 0; o < O; o++) {
            for (int r = 0; r < R; r++) {
                float *dst = out + (size_t)r * ldo + n + o;
                float sum = sum8(acc[o][r]);
                *dst = beta == 0 ? sum : beta * *dst + sum;
            }
        }
    }
    if (n < n1) quantized_rows_portable(type, R, n, n1, k, xs, w, out, ldo, beta);
}

AVX2 static void quantized_rows_avx2(int type, int m, int n0, int n1, int k, const float *x, const uint8_t *w,
                                     float *out, int ldo, float beta) {
    for (int r0 = 0; r0 < m; r0 += 4) {
        const float *xs = x + (size_t)r0 * k;
        float *o = out + (size_t)r0 * ldo;
        switch (m - r0 < 4 ? m - r0 : 4) {
        case 4: quantized_block_rows8(4, 2, type, n0, n1, k, xs, w, o, ldo, beta); break;
        case 3: quantized_block_rows8(3, 2, type, n0, n1, k, xs, w, o, ldo, beta); break;
        case 2: quantized_block_rows8(2, 4, type, n0, n1, k, xs, w, o, ldo, beta); break;
        default: quantized_block_rows8(1, 4, type, n0, n1, k, xs, w, o, ldo, beta); break;
        }
    }
}

int recr1_kernels_avx2(void) {
    static int cached = -1;
    if (cached < 0) {
        const char *choice = getenv("RECR1_KERNELS");
        int portable = choice && strcmp(choice, "portable") == 0;
        cached = !portable && __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") &&
                 __builtin_cpu_supports("f16c");
    }
    return cached;
}
#endif

void recr1_quantized_rows(int type, int m, int n0, int n1, int k, const float *x, const uint8_t *w, float *out,
                          int ldo, float beta) {
#if defined(__x86_64__)
    if (!recr1_kernels_avx512() && recr1_kernels_avx2()) {
        quantized_rows_avx2(type, m, n0, n1, k, x, w, out, ldo, beta);
        return;
    }
    if (recr1_kernels_avx512()) {
        if (m == 1)
            quantized_row1_avx512(type, n0, n1, k, x, w, out, beta);
        else
            quantized_rows_avx512(type, m, n0, n1, k, x, w, out, ldo, beta);
        return;
    }
#endif
    quantized_rows_portable(type, m, n0, n1, k, x, w, out, ldo, beta);
}
