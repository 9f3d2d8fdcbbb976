#include "recr1_support.h"

#include <cblas.h>
#include <dlfcn.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef void (*sgemm_fn)(const enum CBLAS_ORDER, const enum CBLAS_TRANSPOSE, const enum CBLAS_TRANSPOSE,
                         const blasint, const blasint, const blasint, const float, const float *, const blasint,
                         const float *, const blasint, const float, float *, const blasint);
typedef void (*sgemv_fn)(const enum CBLAS_ORDER, const enum CBLAS_TRANSPOSE, const blasint, const blasint,
                         const float, const float *, const blasint, const float *, const blasint, const float,
                         float *, const blasint);
typedef char *(*corename_fn)(void);
typedef int (*get_threads_fn)(void);
typedef void (*set_threads_fn)(int);

static struct {
    pthread_once_t once;
    int status;  // 0 ok, -1 failed
    int preloaded;
    char error[256];
    sgemm_fn sgemm;
    sgemv_fn sgemv;
    corename_fn corename;
    get_threads_fn get_threads;
    set_threads_fn set_threads;
} blas = {.once = PTHREAD_ONCE_INIT};

static const char *const library_names[] = {"libopenblas.so.0", "libopenblas.so", "libopenblas.dylib"};

const char *recr1_blas_preferred_core(void) {
    recr1_cpu_features f = recr1_cpu_detect();
    if (f.avx512f && f.avx512bw && f.avx512dq && f.avx512vl) return "SkylakeX";
    if (f.avx2 && f.fma) return "Haswell";
    return NULL;
}

static void load_once(void) {
    for (size_t i = 0; i < sizeof library_names / sizeof *library_names; i++) {
        if (dlopen(library_names[i], RTLD_NOW | RTLD_NOLOAD)) blas.preloaded = 1;
    }
    const char *core = recr1_blas_preferred_core();
    if (core && !getenv("OPENBLAS_CORETYPE")) setenv("OPENBLAS_CORETYPE", core, 0);

    void *lib = NULL;
    for (size_t i = 0; i < sizeof library_names / sizeof *library_names && !lib; i++) {
        lib = dlopen(library_names[i], RTLD_NOW | RTLD_GLOBAL);
    }
    if (!lib) {
        snprintf(blas.error, sizeof blas.error, "cannot load OpenBLAS (install libopenblas0 or libopenblas-dev): %s",
                 dlerror());
        blas.status = -1;
        return;
    }
    blas.sgemm = (sgemm_fn)dlsym(lib, "cblas_sgemm");
    blas.sgemv = (sgemv_fn)dlsym(lib, "cblas_sgemv");
    blas.corename = (corename_fn)dlsym(lib, "openblas_get_corename");
    blas.get_threads = (get_threads_fn)dlsym(lib, "openblas_get_num_threads");
    blas.set_threads = (set_threads_fn)dlsym(lib, "openblas_set_num_threads");
    if (!blas.sgemm || !blas.sgemv || !blas.corename || !blas.get_threads || !blas.set_threads) {
        snprintf(blas.error, sizeof blas.error, "the loaded BLAS library is not OpenBLAS (missing symbols)");
        blas.status = -1;
    }
}

int recr1_blas_load(char *err, size_t err_len) {
    pthread_once(&blas.once, load_once);
    if (blas.status != 0 && err && err_len) snprintf(err, err_len, "%s", blas.error);
    return blas.status;
}

int recr1_blas_was_preloaded(void) { return blas.preloaded; }

const char *recr1_blas_core(void) { return blas.corename ? blas.corename() : "unavailable"; }

int recr1_blas_threads(void) { return blas.get_threads ? blas.get_threads() : 0; }

void recr1_blas_set_threads(int threads) {
    if (blas.set_threads) blas.set_threads(threads);
}

void recr1_sgemm(int trans_a, int trans_b, int m, int n, int k, float alpha, const float *a, int lda,
                 const float *b, int ldb, float beta, float *c, int ldc) {
    blas.sgemm(CblasRowMajor, trans_a ? CblasTrans : CblasNoTrans, trans_b ? CblasTrans : CblasNoTrans, m, n, k,
               alpha, a, lda, b, ldb, beta, c, ldc);
}

void recr1_sgemv(int trans_a, int m, int n, float alpha, const float *a, int lda, const float *x, float beta,
                 float *y) {
    blas.sgemv(CblasRowMajor, trans_a ? CblasTrans : CblasNoTrans, m, n, alpha, a, lda, x, 1, beta, y, 1);
}
