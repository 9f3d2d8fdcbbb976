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
    X(dnnl_engine_create) X(dnnl_stream_create) X(dnnl_stream_destroy) X(dnnl_stream_wait) X(dnnl_memory_desc_init_by_strides)     \
    X(dnnl_matmul_desc_init) X(dnnl_primitive_attr_create) X(dnnl_primitive_attr_destroy)                    \
    X(dnnl_primitive_attr_set_output_scales) X(dnnl_post_ops_create) X(dnnl_post_ops_append_sum)              \
    X(dnnl_primitive_attr_set_post_ops) X(dnnl_post_ops_destroy) X(dnnl_primitive_desc_create)               \
    X(dnnl_primitive_desc_destroy) X(dnnl_primitive_desc_query) X(dnnl_primitive_desc_query_md)              \
    X(dnnl_primitive_create) X(dnnl_primitive_destroy) X(dnnl_primitive_execute) X(dnnl_memory_create)        \
    X(dnnl_memory_destroy) X(dnnl_memory_desc_init_by_tag) X(dnnl_memory_desc_equal) X(dnnl_memory_desc_get_size)   \
    X(dnnl_memory_set_data_handle) X(dnnl_reorder_primitive_desc_create)
#define DECLARE(name) static __typeof__(name) *p_##name;
DNNL_FUNCTIONS(DECLARE)

// One engine for the process; each thread has its own stream and table of products (below).
static dnnl_engine_t engine;
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

// --- products, described once per thread and shape -----------------------------------------------------

// Everything that tells one product apart. B is either a plain matrix (layout from trans_b and ldb) or a
// packed weight in one of its two roles, whose layout is fixed by its shape.
typedef struct {
    int b_kind;  // 0: plain B; 1 + role: a packed weight in that role
    int trans_a, trans_b, m, n, k, lda, ldb, ldc, bf16;
    float alpha, beta;
} product_key;

// A ready primitive and its memory objects (created without data; each call points them at its buffers).
typedef struct {
    product_key key;
    int used;
    dnnl_primitive_t primitive;
    dnnl_memory_t src, weights, dst;
} product;

enum { TABLE_SLOTS = 1024, TABLE_LIMIT = 768 };

// Per thread: a stream (streams are not shared between threads) and an open-addressing table of products.
// A thread's products are destroyed when it exits; a full table is emptied and refilled.
typedef struct {
    dnnl_stream_t stream;
    product slots[TABLE_SLOTS];
    int count;
} thread_state;

static pthread_key_t state_key;
static pthread_once_t state_once = PTHREAD_ONCE_INIT;

static void destroy_product(product *p) {
    p_dnnl_memory_destroy(p->src);
    p_dnnl_memory_destroy(p->weights);
    p_dnnl_memory_destroy(p->dst);
    p_dnnl_primitive_destroy(p->primitive);
    memset(p, 0, sizeof *p);
}

static void empty_table(thread_state *state) {
    for (int i = 0; i < TABLE_SLOTS; i++)
        if (state->slots[i].used) destroy_product(&state->slots[i]);
    state->count = 0;
}

static void destroy_state(void *value) {
    thread_state *state = value;
    empty_table(state);
    p_dnnl_stream_destroy(state->stream);
    free(state);
}

static void make_state_key(void) { pthread_key_create(&state_key, destroy_state); }

static thread_state *this_thread(void) {
    pthread_once(&state_once, make_state_key);
    thread_state *state = pthread_getspecific(state_key);
    if (state) return state;
    state = calloc(1, sizeof *state);
    if (!state) return NULL;
    if (p_dnnl_stream_create(&state->stream, engine, dnnl_stream_default_flags) != dnnl_success) {
        free(state);
        return NULL;
    }
    pthread_setspecific(state_key, state);
    return state;
}

static uint64_t hash_key(const product_key *key) {
    const unsigned char *bytes = (const unsigned char *)key;
    uint64_t h = 1469598103934665603ull;  // FNV-1a
    for (size_t i = 0; i < sizeof *key; i++) h = (h ^ bytes[i]) * 1099511628211ull;
    return h;
}

// op(X) is rows × cols logically; stored untransposed it is rows × cols with leading dimension ld, stored
// transposed it is cols × rows: element (i, j) sits at j·ld + i.
static dnnl_status_t describe(dnnl_memory_desc_t *md, int rows, int cols, int ld, int transposed, dnnl_data_type_t type) {
    dnnl_dims_t dims = {rows, cols};
    dnnl_dims_t strides = {transposed ? 1 : ld, transposed ? ld : 1};
    return p_dnnl_memory_desc_init_by_strides(md, 2, dims, type, strides);
}

// The matmul descriptor of a product whose B is described by `b_md`.
static dnnl_status_t build(const product_key *key, const dnnl_memory_desc_t *b_md, dnnl_primitive_desc_t *pd) {
    dnnl_data_type_t type = key->bf16 ? dnnl_bf16 : dnnl_f32;
    dnnl_memory_desc_t a_md, c_md;
    dnnl_status_t s;
    if ((s = describe(&a_md, key->m, key->k, key->lda, key->trans_a, type)) != dnnl_success) return s;
    if ((s = describe(&c_md, key->m, key->n, key->ldc, 0, dnnl_f32)) != dnnl_success) return s;
    dnnl_matmul_desc_t desc;
    if ((s = p_dnnl_matmul_desc_init(&desc, &a_md, b_md, NULL, &c_md)) != dnnl_success) return s;
    dnnl_primitive_attr_t attr;
    if ((s = p_dnnl_primitive_attr_create(&attr)) != dnnl_success) return s;
    if (key->alpha != 1.0f) s = p_dnnl_primitive_attr_set_output_scales(attr, 1, 0, &key->alpha);
    if (s == dnnl_success && key->beta != 0.0f) {
        dnnl_post_ops_t ops;
        s = p_dnnl_post_ops_create(&ops);
        if (s == dnnl_success) s = p_dnnl_post_ops_append_sum(ops, key->beta);
        if (s == dnnl_success) s = p_dnnl_primitive_attr_set_post_ops(attr, ops);
        p_dnnl_post_ops_destroy(ops);
    }
    if (s == dnnl_success) s = p_dnnl_primitive_desc_create(pd, &desc, attr, engine, NULL);
    p_dnnl_primitive_attr_destroy(attr);
    return s;
}

// The thread's product for `key` (B described by `b_md`), made on first use.
static product *find_product(thread_state *state, const product_key *key, const dnnl_memory_desc_t *b_md,
                             dnnl_status_t *status) {
    uint64_t slot = hash_key(key) % TABLE_SLOTS;
    while (state->slots[slot].used) {
        if (memcmp(&state->slots[slot].key, key, sizeof *key) == 0) return &state->slots[slot];
        slot = (slot + 1) % TABLE_SLOTS;
    }
    if (state->count >= TABLE_LIMIT) {  // many shapes seen (e.g. varied micro-batch sizes): start again
        empty_table(state);
        slot = hash_key(key) % TABLE_SLOTS;
    }
    dnnl_primitive_desc_t pd;
    if ((*status = build(key, b_md, &pd)) != dnnl_success) return NULL;
    product made = {.key = *key, .used = 1};
    *status = p_dnnl_primitive_create(&made.primitive, pd);
    if (*status == dnnl_success) {
        const dnnl_memory_desc_t *a = p_dnnl_primitive_desc_query_md(pd, dnnl_query_src_md, 0);
        const dnnl_memory_desc_t *b = p_dnnl_primitive_desc_query_md(pd, dnnl_query_weights_md, 0);
        const dnnl_memory_desc_t *c = p_dnnl_primitive_desc_query_md(pd, dnnl_query_dst_md, 0);
        *status = p_dnnl_memory_create(&made.src, a, engine, DNNL_MEMORY_NONE);
        if (*status == dnnl_success) *status = p_dnnl_memory_create(&made.weights, b, engine, DNNL_MEMORY_NONE);
        if (*status == dnnl_success) *status = p_dnnl_memory_create(&made.dst, c, engine, DNNL_MEMORY_NONE);
    }
    p_dnnl_primitive_desc_destroy(pd);
    if (*status != dnnl_success) {
        destroy_product(&made);
        return NULL;
    }
    state->slots[slot] = made;
    state->count++;
    return &state->slots[slot];
}

static dnnl_status_t run(thread_state *state, product *p, const void *a, const void *b, float *c) {
    dnnl_status_t s = p_dnnl_memory_set_data_handle(p->src, (void *)a);
    if (s == dnnl_success) s = p_dnnl_memory_set_data_handle(p->weights, (void *)b);
    if (s == dnnl_success) s = p_dnnl_memory_set_data_handle(p->dst, c);
    if (s != dnnl_success) return s;
    dnnl_exec_arg_t args[3] = {{DNNL_ARG_SRC, p->src}, {DNNL_ARG_WEIGHTS, p->weights}, {DNNL_ARG_DST, p->dst}};
    s = p_dnnl_primitive_execute(p->primitive, state->stream, 3, args);
    return s == dnnl_success ? p_dnnl_stream_wait(state->stream) : s;
}

static int no_state(char *error, int error_size) {
    if (error && error_size > 0) snprintf(error, (size_t)error_size, "oneDNN: out of memory for the thread's products");
    return -1;
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
    thread_state *state = this_thread();
    if (!state) return no_state(error, error_size);
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
    product_key key = {0, trans_a, trans_b, m, n, k, lda, ldb, ldc, bf16 != 0, alpha, beta};
    dnnl_status_t s = dnnl_success;
    dnnl_memory_desc_t b_md;
    product *p = NULL;
    if ((s = describe(&b_md, k, n, ldb, trans_b, bf16 ? dnnl_bf16 : dnnl_f32)) == dnnl_success) p = find_product(state, &key, &b_md, &s);
    if (!p) return fail(error, error_size, "matmul primitive", s);
    s = run(state, p, a_data, b_data, c);
    return s == dnnl_success ? 0 : fail(error, error_size, "matmul execution", s);
}

const char *recr1_dnnl_implementation(int m, int n, int k, int bf16) {
    static __thread char name[128];
    if (!recr1_dnnl_available(NULL, 0)) return "unavailable";
    product_key key = {0, 0, 1, m, n, k, k, k, n, bf16 != 0, 1.0f, 0.0f};
    dnnl_memory_desc_t b_md;
    dnnl_primitive_desc_t pd;
    if (describe(&b_md, k, n, k, 1, bf16 ? dnnl_bf16 : dnnl_f32) != dnnl_success || build(&key, &b_md, &pd) != dnnl_success)
        return "none";
    const char *impl = "unknown";
    p_dnnl_primitive_desc_query(pd, dnnl_query_impl_info_str, 0, &impl);
    snprintf(name, sizeof name, "%s", impl);
    p_dnnl_primitive_desc_destroy(pd);
    return name;
}

// --- packed weights ----------------------------------------------------------------------------------

// The layout oneDNN wants for a weight is the one it picks for this many rows; the same copy then serves
// products of any number of rows.
enum { LAYOUT_ROWS = 64 };

struct recr1_packed {
    int out_dim, in_dim, bf16;
    int has_layout[2];
    dnnl_memory_desc_t layout[2];  // [forward] B = Wᵀ (in × out); [backward] B = W (out × in)
    void *data[2];
    size_t bytes[2];
};

recr1_packed *recr1_packed_create(int out_dim, int in_dim, int bf16) {
    if (out_dim <= 0 || in_dim <= 0) return NULL;
    recr1_packed *p = calloc(1, sizeof *p);
    if (!p) return NULL;
    p->out_dim = out_dim;
    p->in_dim = in_dim;
    p->bf16 = bf16 != 0;
    return p;
}

void recr1_packed_destroy(recr1_packed *p) {
    if (!p) return;
    free(p->data[0]);
    free(p->data[1]);
    free(p);
}

long recr1_packed_bytes(const recr1_packed *p) { return p ? (long)(p->bytes[0] + p->bytes[1]) : 0; }

// The role's product: forward y[m × out] = x[m × in] · Wᵀ, backward y[m × in] = x[m × out] · W.
static void role_shape(const recr1_packed *p, int role, int *k, int *n) {
    *k = role == RECR1_PACKED_FORWARD ? p->in_dim : p->out_dim;
    *n = role == RECR1_PACKED_FORWARD ? p->out_dim : p->in_dim;
}

// W as it is stored (out × in, row-major), seen as the role's B.
static dnnl_status_t describe_stored(const recr1_packed *p, int role, dnnl_memory_desc_t *md) {
    int k, n;
    role_shape(p, role, &k, &n);
    return describe(md, k, n, p->in_dim, role == RECR1_PACKED_FORWARD, dnnl_f32);
}

int recr1_packed_pack(recr1_packed *p, int role, const float *w, char *error, int error_size) {
    if (role != RECR1_PACKED_FORWARD && role != RECR1_PACKED_BACKWARD) return fail(error, error_size, "packing (bad role)", dnnl_invalid_arguments);
    if (!recr1_dnnl_available(error, error_size)) return -1;
    thread_state *state = this_thread();
    if (!state) return no_state(error, error_size);
    int k, n;
    role_shape(p, role, &k, &n);
    dnnl_status_t s;
    if (!p->has_layout[role]) {
        // Ask for any weights layout and keep the one oneDNN chooses.
        dnnl_memory_desc_t any;
        dnnl_dims_t dims = {k, n};
        if ((s = p_dnnl_memory_desc_init_by_tag(&any, 2, dims, p->bf16 ? dnnl_bf16 : dnnl_f32, dnnl_format_tag_any)) != dnnl_success)
            return fail(error, error_size, "weight layout", s);
        product_key key = {1 + role, 0, 0, LAYOUT_ROWS, n, k, k, 0, n, p->bf16, 1.0f, 0.0f};
        dnnl_primitive_desc_t pd;
        if ((s = build(&key, &any, &pd)) != dnnl_success) return fail(error, error_size, "weight layout", s);
        p->layout[role] = *p_dnnl_primitive_desc_query_md(pd, dnnl_query_weights_md, 0);
        p_dnnl_primitive_desc_destroy(pd);
        p->bytes[role] = p_dnnl_memory_desc_get_size(&p->layout[role]);
        p->data[role] = aligned_alloc(64, (p->bytes[role] + 63) / 64 * 64);
        if (!p->data[role]) {
            p->bytes[role] = 0;
            if (error && error_size > 0) snprintf(error, (size_t)error_size, "oneDNN: out of memory for a packed weight");
            return -1;
        }
        p->has_layout[role] = 1;
    }
    // One reorder: fp32 rows → the packed layout (and bf16).
    dnnl_memory_desc_t stored;
    if ((s = describe_stored(p, role, &stored)) != dnnl_success) return fail(error, error_size, "packing", s);
    dnnl_primitive_desc_t pd;
    if ((s = p_dnnl_reorder_primitive_desc_create(&pd, &stored, engine, &p->layout[role], engine, NULL)) != dnnl_success)
        return fail(error, error_size, "packing", s);
    dnnl_primitive_t reorder;
    s = p_dnnl_primitive_create(&reorder, pd);
    p_dnnl_primitive_desc_destroy(pd);
    if (s != dnnl_success) return fail(error, error_size, "packing", s);
    dnnl_memory_t from = NULL, to = NULL;
    s = p_dnnl_memory_create(&from, &stored, engine, (void *)w);
    if (s == dnnl_success) s = p_dnnl_memory_create(&to, &p->layout[role], engine, p->data[role]);
    if (s == dnnl_success) {
        dnnl_exec_arg_t args[2] = {{DNNL_ARG_FROM, from}, {DNNL_ARG_TO, to}};
        s = p_dnnl_primitive_execute(reorder, state->stream, 2, args);
        if (s == dnnl_success) s = p_dnnl_stream_wait(state->stream);
    }
    p_dnnl_memory_destroy(from);
    p_dnnl_memory_destroy(to);
    p_dnnl_primitive_destroy(reorder);
    return s == dnnl_success ? 0 : fail(error, error_size, "packing", s);
}

int recr1_packed_linear(const recr1_packed *p, int role, int m, const float *x, int ldx, float beta, float *y, int ldy,
                        char *error, int error_size) {
    if (m <= 0) return 0;
    if (role != RECR1_PACKED_FORWARD && role != RECR1_PACKED_BACKWARD) return fail(error, error_size, "product (bad role)", dnnl_invalid_arguments);
    if (!p->has_layout[role]) return fail(error, error_size, "product (weight not packed)", dnnl_invalid_arguments);
    if (!recr1_dnnl_available(error, error_size)) return -1;
    thread_state *state = this_thread();
    if (!state) return no_state(error, error_size);
    int k, n;
    role_shape(p, role, &k, &n);
    const void *x_data = x;
    if (p->bf16 && !(x_data = bf16_copy(x, m, k, ldx, 0))) {
        if (error && error_size > 0) snprintf(error, (size_t)error_size, "oneDNN: out of memory for bf16 copies");
        return -1;
    }
    product_key key = {1 + role, 0, 0, m, n, k, ldx, 0, ldy, p->bf16, 1.0f, beta};
    dnnl_status_t s = dnnl_success;
    product *product = find_product(state, &key, &p->layout[role], &s);
    if (!product) return fail(error, error_size, "matmul primitive (packed)", s);
    s = run(state, product, x_data, p->data[role], y);
    return s == dnnl_success ? 0 : fail(error, error_size, "matmul execution (packed)", s);
}

int recr1_dnnl_products_cached(void) {
    thread_state *state = recr1_dnnl_available(NULL, 0) ? this_thread() : NULL;
    return state ? state->count : 0;
}
