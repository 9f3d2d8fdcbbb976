// Hot loops in C, compiled for several instruction sets and chosen at run time (target_clones).
#ifndef RECR1_KERNELS_H
#define RECR1_KERNELS_H

#ifdef __cplusplus
extern "C" {
#endif

// 1 when the kernels below take their AVX-512 paths: the CPU has AVX-512 (F, BW, F16C) and RECR1_KERNELS is
// not "portable".
int recr1_kernels_avx512(void);
// AVX2 + FMA + F16C (the quantised few-row products), unless RECR1_KERNELS=portable.
int recr1_kernels_avx2(void);

// Runs task(context, part) for part in 0..<parts on up to `threads` threads (the caller and a pool of
// threads - 1 workers, made by the first call, that spin briefly between loops before they sleep) and
// returns when all are done. A call from inside a task, or while another thread's loop runs, runs inline.
typedef void (*recr1_task)(void *context, int part);
void recr1_parallel_for(int parts, int threads, recr1_task task, void *context);
// Sends spinning workers to sleep now: called before a BLAS or oneDNN product, whose own threads need the
// cores. The next loop wakes them.
void recr1_parallel_park(void);

// Skinny matrix product for few rows (decoding): for n in [n0, n1) and each of the m rows,
//     out[r * ldo + n] = beta * out[r * ldo + n] + sum_k x[r * k + i] * w[n * k + i]
// w is [N x k] row-major (a linear layer's weight, out x in). Each weight row is read from memory once
// for all m rows, which is what decoding needs: GEMM libraries repack the whole weight on every call.
void recr1_linear_rows(int m, int n0, int n1, int k, const float *x, const float *w, float *out, int ldo,
                       float beta);

// GGUF block formats the quantised kernel reads (ggml's type numbers).
enum { RECR1_Q4_0 = 2, RECR1_Q4_1 = 3, RECR1_Q8_0 = 8 };

// Bytes of one 32-weight block of a type.
int recr1_block_bytes(int type);

// The same product as recr1_linear_rows with w in a GGUF block format: row n of w is k / 32 blocks
// (k must be a multiple of 32). Blocks become fp32 in registers, so the result equals the product with the
// dequantised matrix up to the order of additions.
void recr1_quantized_rows(int type, int m, int n0, int n1, int k, const float *x, const unsigned char *w,
                          float *out, int ldo, float beta);

// In-place softmax of n values; log(sum(exp(x))) computed stably; gate[i] = silu(gate[i]) * up[i].
// Vectorised exp (relative error about 1e-7) where AVX-512 exists, libm's expf elsewhere.
void recr1_softmax(float *x, int n);
float recr1_logsumexp(const float *x, int n);
void recr1_swiglu(float *gate, const float *up, int n);

// Decoding attention, one row and one query head: scores[j] = scale · q·k_j for the cached positions
// j < length (k_j = keys + j·stride, likewise v_j), softmax, out = Σ_j scores[j]·v_j. `scores` holds
// `length` floats of scratch.
void recr1_attend_head(const float *q, const float *keys, const float *values, int stride, int length, int head_dim,
                       float scale, float *scores, float *out);

// The training pass. Σ p·x with p = e^(x − lse) (the entropy is lse minus this); the gradient of a row of
// logits in place, x := −d·p − dh·p·(log p + h) (the caller adds d at the chosen token); and SwiGLU's
// backward: d_up = d_act·silu(gate), d_act := d_act·up·σ(gate)·(1 + gate·(1 − σ(gate))).
float recr1_expected_logit(const float *x, int n, float lse);
void recr1_logit_gradient(float *x, int n, float lse, float d, float dh, float h);
void recr1_swiglu_backward(const float *gate, const float *up, float *d_act, float *d_up, int n);

// AdamW as torch.optim.AdamW computes it, over elements [0, n) of a tensor: with g = gradient · gradient_scale,
//     m = β1·m + (1 − β1)·g,   v = β2·v + (1 − β2)·g²,
//     p = p·decay − step_size · m / (√v / √(1 − β2ᵗ) + ε),
// decay = 1 − lr·λ, step_size = lr / (1 − β1ᵗ). And Σ x², in float blocks added in double (the global norm).
typedef struct {
    float gradient_scale, beta1, beta2, decay, step_size, inverse_sqrt_correction2, epsilon;
} recr1_adamw_step;
void recr1_adamw(float *p, const float *g, float *m, float *v, long n, const recr1_adamw_step *s);
double recr1_sum_squares(const float *x, long n);

#ifdef __cplusplus
}
#endif

#endif
