// Small C glue for recr1: CPU features, the OpenBLAS loader, systemd notification.
#ifndef RECR1_SUPPORT_H
#define RECR1_SUPPORT_H

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

// ---- CPU features (cpuid + xgetbv: the instruction set and the OS's consent to use its registers) ----
typedef struct {
    int avx2, fma, avx512f, avx512bw, avx512dq, avx512vl, avx512_bf16, amx_tile, amx_bf16;
    char vendor[13];  // "GenuineIntel", "AuthenticAMD", ...
} recr1_cpu_features;

recr1_cpu_features recr1_cpu_detect(void);

// ---- OpenBLAS ----
// OpenBLAS reads OPENBLAS_CORETYPE in its load-time constructor, and 0.3.21 mistakes recent Xeons for
// "Prescott" (4x slower sgemm). So recr1 never links it: recr1_blas_load() sets OPENBLAS_CORETYPE for this
// CPU (unless the user set it) and only then dlopen()s the library. Safe to call many times.
// Returns 0 on success, or -1 with a message in err.
int recr1_blas_load(char *err, size_t err_len);

// The core OPENBLAS_CORETYPE is set to for this CPU, or NULL to let OpenBLAS decide.
const char *recr1_blas_preferred_core(void);
// 1 when libopenblas was already in the process before recr1_blas_load (the core choice came too late).
int recr1_blas_was_preloaded(void);
const char *recr1_blas_core(void);        // openblas_get_corename(), after a successful load
int recr1_blas_threads(void);
void recr1_blas_set_threads(int threads);

// Row-major single-precision GEMM: C = alpha * op(A) op(B) + beta * C (cblas_sgemm's meaning).
void recr1_sgemm(int trans_a, int trans_b, int m, int n, int k, float alpha, const float *a, int lda,
                 const float *b, int ldb, float beta, float *c, int ldc);
// Row-major y = alpha * op(A) x + beta * y.
void recr1_sgemv(int trans_a, int m, int n, float alpha, const float *a, int lda, const float *x,
                 float beta, float *y);

// ---- systemd ----
// Sends a state string ("READY=1", "STOPPING=1", "WATCHDOG=1", ...) to $NOTIFY_SOCKET.
// Returns 1 when sent, 0 when NOTIFY_SOCKET is unset, -errno on failure.
int recr1_sd_notify(const char *state);

#ifdef __cplusplus
}
#endif

#endif
