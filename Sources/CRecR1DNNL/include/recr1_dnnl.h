#ifndef RECR1_DNNL_H
#define RECR1_DNNL_H

#ifdef __cplusplus
extern "C" {
#endif

// Matrix products through oneDNN's matmul primitive, with the same contract as cblas_sgemm (row-major):
// C[m×n] = alpha · op(A) · op(B) + beta · C, op(A) m×k, op(B) k×n. With bf16 != 0, A and B are rounded to
// bfloat16 (to nearest even) and multiplied with fp32 accumulation and output, which oneDNN runs on AMX
// where the CPU has it. Returns 0, or -1 with a message in `error` (size `error_size`).
int recr1_dnnl_gemm(int trans_a, int trans_b, int m, int n, int k, float alpha, const float *a, int lda,
                    const float *b, int ldb, float beta, float *c, int ldc, int bf16, char *error, int error_size);

// Whether oneDNN runs here (an engine can be made); fills `error` when not.
int recr1_dnnl_available(char *error, int error_size);

// The implementation oneDNN picks for a bf16 (or fp32) product of this shape, e.g. "brg:avx512_core_amx_bf16".
const char *recr1_dnnl_implementation(int m, int n, int k, int bf16);

// Rounds n floats to bfloat16 (nearest even), as uint16 bit patterns.
void recr1_f32_to_bf16(const float *in, unsigned short *out, long n);

#ifdef __cplusplus
}
#endif

#endif
