#ifndef RECR1_DNNL_H
#define RECR1_DNNL_H

#ifdef __cplusplus
extern "C" {
#endif

// Matrix products through oneDNN's matmul primitive, with the same contract as cblas_sgemm (row-major):
// C[m×n] = alpha · op(A) · op(B) + beta · C, op(A) m×k, op(B) k×n. With bf16 != 0, A and B are rounded to
// bfloat16 (to nearest even) and multiplied with fp32 accumulation and output, which oneDNN runs on AMX
// where the CPU has it. Each thread makes a product's primitive once per shape and reuses it; the bf16
// copies go to per-thread buffers that only grow. Returns 0, or -1 with a message in `error`.
int recr1_dnnl_gemm(int trans_a, int trans_b, int m, int n, int k, float alpha, const float *a, int lda,
                    const float *b, int ldb, float beta, float *c, int ldc, int bf16, char *error, int error_size);

// Whether oneDNN runs here (an engine can be made); fills `error` when not.
int recr1_dnnl_available(char *error, int error_size);

// The implementation oneDNN picks for a bf16 (or fp32) product of this shape, e.g. "brg:avx512_core_amx_bf16".
const char *recr1_dnnl_implementation(int m, int n, int k, int bf16);

// A weight matrix W [out_dim × in_dim] (row-major fp32, as the engine stores it) copied into the blocked
// layout oneDNN's matmul reads fastest, in bf16 or fp32, for its two products: forward y = x · Wᵀ and
// backward y = x · W. Each role is packed on its own (`recr1_packed_pack` again after W changes writes into
// the same memory); one copy serves products of any number of rows.
typedef struct recr1_packed recr1_packed;
enum { RECR1_PACKED_FORWARD = 0, RECR1_PACKED_BACKWARD = 1 };

// NULL on bad sizes or no memory. Nothing is packed yet.
recr1_packed *recr1_packed_create(int out_dim, int in_dim, int bf16);
void recr1_packed_destroy(recr1_packed *p);
// Packs W for `role`. Returns 0, or -1 with a message.
int recr1_packed_pack(recr1_packed *p, int role, const float *w, char *error, int error_size);
// Forward: y[m × out] = x[m × in] · Wᵀ + beta · y; backward: y[m × in] = x[m × out] · W + beta · y. Rows of x
// are ldx apart, rows of y ldy apart. Returns 0, or -1 with a message (also when the role is not packed).
int recr1_packed_linear(const recr1_packed *p, int role, int m, const float *x, int ldx, float beta, float *y, int ldy,
                        char *error, int error_size);
// The bytes the packed copies hold.
long recr1_packed_bytes(const recr1_packed *p);

// How many products the calling thread has ready (primitives made once per shape and reused).
int recr1_dnnl_products_cached(void);

// Rounds n floats to bfloat16 (nearest even), as uint16 bit patterns.
void recr1_f32_to_bf16(const float *in, unsigned short *out, long n);

#ifdef __cplusplus
}
#endif

#endif
