#include "recr1_dnnl.h"

#include <oneapi/dnnl/dnnl.h>
#include <dlfcn.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#if defined(__x86_64__)
#include <immintrin.h>
#endif

// oneDNN is loaded at run time, like OpenBLAS (CRecR1Support/blas.c): its OpenMP runtime reads
// OMP_WAIT_POLICY when it loads, and with the default its idle threads keep spinning after every product,
// taking the cores from the rest of the step. recr1 asks for passive waiting unless the user chose.
// The functions it uses, resolved with dlsym into pointers of the same names (prefixed p_).
#define DNNL_FUNCTIONS(X)                                                                                   \
    X(dnnl_engine_create) X(dnnl_stream_create) X(dnnl_stream_wait) X(dnnl_memory_desc_init_by_strides)     \
    X(dnnl_matmul_desc_init) X(dnnl_primitive_attr_create) X(dnnl_primitive_attr_destroy)                    \
    X(dnnl_primitive_attr_set_output_scales) X(dnnl_post_ops_create) X(dnnl_post_ops_append_sum)              \
    X(dnnl_primitive_attr_set_post_ops) X(dnnl_post_ops_destroy) X(dnnl_primitive_desc_create)               \
    X(dnnl_primitive_desc_destroy) X(dnnl_primitive_desc_query) X(dnnl_primitive_desc_query_md)              \
    X(dnnl_primitive_create) X(dnnl_primitive_destroy) X(dnnl_primitive_execute) X(dnnl_memory_create)        \
    X(dnnl_memory_destroy)
#define DECLARE(name) static __typeof__(name) *p_##name;
DNNL_FUNCTIONS(DECLARE)

// One engine and one stream for the process. oneDNN's own primitive cache makes a repeated shape cheap
// (a few µs), so each call describes its product and lets the cache find the primitive.
static dnnl_engine_t engine;
static dnnl_stream_t stream;
static dnnl_status_t init_status = dnnl_runtime_error;
static char init_error[200] = "oneDNN was not loaded";
static pthread_once_t once = PTHREAD_ONCE_INIT;

static void init(void) {
    setenv("OMP_WAIT_POLICY", "passive", 0);
    void *library = dlopen("libdnnl.so.2", RTLD_NOW | RTLD_LOCAL);
    if (!library) library = dlopen("libdnnl.so", RTLD_NOW | RTLD_LOCAL);
    if (!library) {
        snprintf(init_error, sizeof init_error, "cannot load libdnnl.so.2 (apt install libdnnl-dev): %s", dlerror());
        return;
    }
#define RESOLVE(name)                                                                                       \
    if (!(p_##name = (__typeof__(name) *)dlsym(library, #name))) {                                          \
        snprintf(init_error, sizeof init_error, "libdnnl has no %s", #name);                               \
        return;                                                                                             \
    }
    DNNL_FUNCTIONS(RESOLVE)
    init_status = p_dnnl_engine_create(&engine, dnnl_cpu, 0);
    if (init_status == dnnl_success) init_status = p_dnnl_stream_create(&stream, engine, dnnl_stream_default_flags);
    if (init_status != dnnl_success) snprintf(init_error, sizeof init_error, "oneDNN: no CPU engine (status %d)", (int)init_status);
}

static int fail(char *error, int size, const char *what, dnnl_status_t status) {
    if (error && size > 0) snprintf(error, (size_t)size, "oneDNN: %s failed (status %d)", what, (int)status);
    return -1;
}

int recr1_dnnl_available(char *error, int error_size) {
    pthread_once(&once, init);
    if (init_status == dnnl_success) return 1;
    if (error && error_size > 0) snprintf(error, (size_t)error_size, "%s", init_error);
    return 0;
}

// --- bfloat16 rounding ---------------------------------------------------------------------------------

static unsigned short bf16_of(float x) {
    uint32_t bits;
    memcpy(&bits, &x, 4);
    if ((bits & 0x7f800000u) == 0x7f800000u) return (unsigned short)((bits >> 16) | ((bits & 0xffff) ? 0x40 : 0));  // inf, nan
    return (unsigned short)((bits + 0x7fffu + ((bits >> 16) & 1u)) >> 16);
}

#if defined(__x86_64__)
__attribute__((target("avx512f,avx512bf16,avx512vl")))
static void to_bf16_avx512(const float *in, unsigned short *out, long n) {
    long i = 0;
    for (; i + 16 <= n; i += 16) {
        __m256bh v = _mm512_cvtneps_pbh(_mm512_loadu_ps(in + i));
        _mm256_storeu_si256((__m256i *)(out + i), (__m256i)v);
    }
    for (; i < n; i++) out[i] = bf16_of(in[i]);
}
#endif

void recr1_f32_to_bf16(const float *in, unsigned short *out, long n) {
#if defined(__x86_64__)
    if (__builtin_cpu_supports("avx512bf16")) {
        to_bf16_avx512(in, out, n);
        return;
    }
#endif
    for (long i = 0; i < n; i++) out[i] = bf16_of(in[i]);
}

// A stored matrix of `rows` rows of `cols` values, `ld` apart, rounded into a bf16 copy with the same
// layout. The copy lives in a per-thread buffer that grows as needed (index 0 for A, 1 for B).
static unsigned short *bf16_copy(const float *x, int rows, int cols, int ld, int which) {
    static __thread unsigned short *buffers[2];
    static __thread size_t capacity[2];
    size_t need = (size_t)(rows - 1) * (size_t)ld + (size_t)cols;
    if (need > capacity[which]) {
        free(buffers[which]);
        buffers[which] = aligned_alloc(64, (need * 2 + 63) / 64 * 64);
        capacity[which] = buffers[which] ? need : 0;
        if (!buffers[which]) return NULL;
    }
    unsigned short *out = buffers[which];
    if (ld == cols) {
        recr1_f32_to_bf16(x, out, (long)rows * cols);
    } else {
        for (int r = 0; r < rows; r++) recr1_f32_to_bf16(x + (size_t)r * ld, out + (size_t)r * ld, cols);
    }
    return out;
}

// --- the product -----------------------------------------------------------------------------------------

// op(X) is rows × cols logically; stored untransposed it is rows × cols with leading dimension ld, stored
// transposed it is cols × rows: element (i, j) sits at j·ld + i.
static dnnl_status_t describe(dnnl_memory_desc_t *md, int rows, int cols, int ld, int transposed, dnnl_data_type_t type) {
    dnnl_dims_t dims = {rows, cols};
    dnnl_dims_t strides = {transposed ? 1 : ld, transposed ? ld : 1};
    return p_dnnl_memory_desc_init_by_strides(md, 2, dims, type, strides);
}

static dnnl_status_t build(int trans_a, int trans_b, int m, int n, int k, float alpha, int lda, int ldb, float beta,
                           int ldc, int bf16, dnnl_primitive_desc_t *pd) {
    dnnl_data_type_t type = bf16 ? dnnl_bf16 : dnnl_f32;
    dnnl_memory_desc_t a_md, b_md, c_md;
    dnnl_status_t s;
    if ((s = describe(&a_md, m, k, lda, trans_a, type)) != dnnl_success) return s;
    if ((s = describe(&b_md, k, n, ldb, trans_b, type)) != dnnl_success) return s;
    if ((s = describe(&c_md, m, n, ldc, 0, dnnl_f32)) != dnnl_success) return s;
    dnnl_matmul_desc_t desc;
    if ((s = p_dnnl_matmul_desc_init(&desc, &a_md, &b_md, NULL, &c_md)) != dnnl_success) return s;
    dnnl_primitive_attr_t attr;
    if ((s = p_dnnl_primitive_attr_create(&attr)) != dnnl_success) return s;
    if (alpha != 1.0f) s = p_dnnl_primitive_attr_set_output_scales(attr, 1, 0, &alpha);
    if (s == dnnl_success && beta != 0.0f) {
        dnnl_post_ops_t ops;
        s = p_dnnl_post_ops_create(&ops);
        if (s == dnnl_success) s = p_dnnl_post_ops_append_sum(ops, beta);
        if (s == dnnl_success) s = p_dnnl_primitive_attr_set_post_ops(attr, ops);
        p_dnnl_post_ops_destroy(ops);
    }
    if (s == dnnl_success) s = p_dnnl_primitive_desc_create(pd, &desc, attr, engine, NULL);
    p_dnnl_primitive_attr_destroy(attr);
    return s;
}

int recr1_dnnl_gemm(int trans_a, int trans_b, int m, int n, int k, float alpha, const float *a, int lda,
                    const float *b, int ldb, float beta, float *c, int ldc, int bf16, char *error, int error_size) {
    if (m <= 0 || n <= 0) return 0;
    if (!recr1_dnnl_available(error, error_size)) return -1;
    if (k <= 0) {  // nothing to multiply: C = beta · C
        for (int i = 0; i < m; i++)
            for (int j = 0; j < n; j++) c[(size_t)i * ldc + j] = beta == 0.0f ? 0.0f : beta * c[(size_t)i * ldc + j];
        return 0;
    }
    const void *a_data = a, *b_data = b;
    if (bf16) {
        // Stored shapes: A is m × k (or k × m transposed), B is k × n (or n × k).
        a_data = bf16_copy(a, trans_a ? k : m, trans_a ? m : k, lda, 0);
        b_data = bf16_copy(b, trans_b ? n : k, trans_b ? k : n, ldb, 1);
        if (!a_data || !b_data) {
            if (error && error_size > 0) snprintf(error, (size_t)error_size, "oneDNN: out of memory for bf16 copies");
            return -1;
        }
    }
    dnnl_primitive_desc_t pd;
    dnnl_status_t s = build(trans_a, trans_b, m, n, k, alpha, lda, ldb, beta, ldc, bf16, &pd);
    if (s != dnnl_success) return fail(error, error_size, "matmul description", s);
    dnnl_primitive_t primitive;
    s = p_dnnl_primitive_create(&primitive, pd);
    if (s != dnnl_success) {
        p_dnnl_primitive_desc_destroy(pd);
        return fail(error, error_size, "matmul primitive", s);
    }
    const dnnl_memory_desc_t *a_md = p_dnnl_primitive_desc_query_md(pd, dnnl_query_src_md, 0);
    const dnnl_memory_desc_t *b_md = p_dnnl_primitive_desc_query_md(pd, dnnl_query_weights_md, 0);
    const dnnl_memory_desc_t *c_md = p_dnnl_primitive_desc_query_md(pd, dnnl_query_dst_md, 0);
    dnnl_memory_t a_mem = NULL, b_mem = NULL, c_mem = NULL;
    s = p_dnnl_memory_create(&a_mem, a_md, engine, (void *)a_data);
    if (s == dnnl_success) s = p_dnnl_memory_create(&b_mem, b_md, engine, (void *)b_data);
    if (s == dnnl_success) s = p_dnnl_memory_create(&c_mem, c_md, engine, c);
    if (s == dnnl_success) {  // (oneDNN keeps its own scratchpad: the default "library" mode)
        dnnl_exec_arg_t args[3] = {{DNNL_ARG_SRC, a_mem}, {DNNL_ARG_WEIGHTS, b_mem}, {DNNL_ARG_DST, c_mem}};
        s = p_dnnl_primitive_execute(primitive, stream, 3, args);
        if (s == dnnl_success) s = p_dnnl_stream_wait(stream);
    }
    p_dnnl_memory_destroy(a_mem);
    p_dnnl_memory_destroy(b_mem);
    p_dnnl_memory_destroy(c_mem);
    p_dnnl_primitive_destroy(primitive);
    p_dnnl_primitive_desc_destroy(pd);
    return s == dnnl_success ? 0 : fail(error, error_size, "matmul execution", s);
}

const char *recr1_dnnl_implementation(int m, int n, int k, int bf16) {
    static __thread char name[128];
    if (!recr1_dnnl_available(NULL, 0)) return "unavailable";
    dnnl_primitive_desc_t pd;
    if (build(0, 1, m, n, k, 1.0f, k, k, 0.0f, n, bf16, &pd) != dnnl_success) return "none";
    const char *impl = "unknown";
    p_dnnl_primitive_desc_query(pd, dnnl_query_impl_info_str, 0, &impl);
    snprintf(name, sizeof name, "%s", impl);
    p_dnnl_primitive_desc_destroy(pd);
    return name;
}
