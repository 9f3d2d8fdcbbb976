#include "recr1_kernels.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#if defined(__x86_64__)
#include <immintrin.h>
#define CPU_RELAX() _mm_pause()
#else
#define CPU_RELAX() ((void)0)
#endif

// A fork-join pool for the engine's short parallel loops. A decoding step runs ~150 of them, each tens of
// microseconds long, and waking a sleeping thread costs about as much; so the workers spin for a while
// after each loop (catching the next one at once) and only then sleep on a condition variable.

enum { SPIN_ROUNDS = 20000, MAX_WORKERS = 63 };  // about 50-100 µs of pause instructions

static struct {
    pthread_once_t once;
    pthread_mutex_t run_lock;   // one loop at a time; a second caller runs its loop inline
    pthread_mutex_t sleep_lock;
    pthread_cond_t wake;
    atomic_uint generation;     // bumped for each loop
    atomic_int sleepers;
    atomic_int parked;          // set before a BLAS call: spinning workers go to sleep at once
    atomic_int next_part;       // parts are claimed by fetch-add
    atomic_int remaining;       // parts not yet finished
    int parts;
    recr1_task task;
    void *context;
    int workers;
} pool = {.once = PTHREAD_ONCE_INIT, .run_lock = PTHREAD_MUTEX_INITIALIZER,
          .sleep_lock = PTHREAD_MUTEX_INITIALIZER, .wake = PTHREAD_COND_INITIALIZER};

static _Thread_local int inside_loop;  // a loop started from inside a loop runs inline

static void claim_parts(void) {
    for (;;) {
        int part = atomic_fetch_add(&pool.next_part, 1);
        if (part >= pool.parts) return;
        pool.task(pool.context, part);
        atomic_fetch_sub_explicit(&pool.remaining, 1, memory_order_release);
    }
}

static void *worker(void *unused) {
    (void)unused;
    inside_loop = 1;
    unsigned seen = atomic_load(&pool.generation);
    for (;;) {
        int spins = 0;
        while (atomic_load_explicit(&pool.generation, memory_order_acquire) == seen && spins < SPIN_ROUNDS &&
               !atomic_load_explicit(&pool.parked, memory_order_relaxed)) {
            CPU_RELAX();
            spins++;
        }
        if (atomic_load(&pool.generation) == seen) {
            pthread_mutex_lock(&pool.sleep_lock);
            atomic_fetch_add(&pool.sleepers, 1);
            while (atomic_load(&pool.generation) == seen) pthread_cond_wait(&pool.wake, &pool.sleep_lock);
            atomic_fetch_sub(&pool.sleepers, 1);
            pthread_mutex_unlock(&pool.sleep_lock);
        }
        seen = atomic_load(&pool.generation);
        claim_parts();
    }
    return NULL;
}

static int requested_workers = -1;

static void start_workers(void) {
    int count = requested_workers;
    if (count > MAX_WORKERS) count = MAX_WORKERS;
    for (int i = 0; i < count; i++) {
        pthread_t thread;
        pthread_attr_t attributes;
        pthread_attr_init(&attributes);
        pthread_attr_setdetachstate(&attributes, PTHREAD_CREATE_DETACHED);
        if (pthread_create(&thread, &attributes, worker, NULL) == 0) pool.workers++;
        pthread_attr_destroy(&attributes);
    }
}

void recr1_parallel_for(int parts, int threads, recr1_task task, void *context) {
    if (parts <= 0) return;
    if (parts == 1 || threads <= 1 || inside_loop || pthread_mutex_trylock(&pool.run_lock) != 0) {
        for (int part = 0; part < parts; part++) task(context, part);
        return;
    }
    if (requested_workers < 0) requested_workers = threads - 1;  // fixed by the first loop
    pthread_once(&pool.once, start_workers);
    pool.task = task;
    pool.context = context;
    pool.parts = parts;
    atomic_store(&pool.remaining, parts);
    atomic_store(&pool.next_part, 0);
    atomic_store(&pool.parked, 0);
    atomic_fetch_add(&pool.generation, 1);  // seq_cst: ordered before the read of sleepers below
    if (atomic_load(&pool.sleepers) > 0) {
        pthread_mutex_lock(&pool.sleep_lock);
        pthread_cond_broadcast(&pool.wake);
        pthread_mutex_unlock(&pool.sleep_lock);
    }
    inside_loop = 1;
    claim_parts();
    inside_loop = 0;
    while (atomic_load_explicit(&pool.remaining, memory_order_acquire) > 0) CPU_RELAX();
    pthread_mutex_unlock(&pool.run_lock);
}

void recr1_parallel_park(void) {
    if (!atomic_load_explicit(&pool.parked, memory_order_relaxed)) atomic_store_explicit(&pool.parked, 1, memory_order_relaxed);
}
