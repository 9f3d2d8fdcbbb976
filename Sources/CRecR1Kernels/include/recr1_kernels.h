// Hot loops in C, compiled for several instruction sets and chosen at run time (target_clones).
#ifndef RECR1_KERNELS_H
#define RECR1_KERNELS_H

#ifdef __cplusplus
extern "C" {
#endif

// Skinny matrix product for few rows (decoding): for n in [n0, n1) and each of the m rows,
//     out[r * ldo + n] = beta * out[r * ldo + n] + sum_k x[r * k + i] * w[n * k + i]
// w is [N x k] row-major (a linear layer's weight, out x in). Each weight row is read from memory once
// for all m rows, which is what decoding needs: GEMM libraries repack the whole weight on every call.
void recr1_linear_rows(int m, int n0, int n1, int k, const float *x, const float *w, float *out, int ldo,
                       float beta);

#ifdef __cplusplus
}
#endif

#endif
