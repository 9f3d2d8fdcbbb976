#include "recr1_kernels.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <time.h>
#if defined(__x86_64__)
#include <immintrin.h>
#define CPU_RELAX() _mm_pause()
#else
#define CPU_RELAX() ((void)0)
#endif

// A fork-join pool for the engine's short parallel loops. A decoding step runs ~150 of them, each tens of
// microseconds long, and waking a sleeping thread costs about as much; so the workers spin for a while
// after each loop (catching the next one at once) and only then sleep on a condition variable.
//
// Parts are claimed from `cursor`, one 64-bit word holding (loop number << 32 | next part), by
// compare-and-swap. A loop's task, context and part count are written before its cursor is published and
// changed only after the caller has seen every part finish and closed the cursor, so a worker that comes
// late (still holding an old cursor value) fails its compare-and-swap instead of running a stale part.

enum { MAX_WORKERS = 63 };
static const long SPIN_NANOSECONDS = 100000;  // how long an idle worker spins before it sleeps
static const uint32_t CLOSED = 0xffffffffu;    // the cursor's part once a loop is over

static struct {
    pthread_once_t once;
    pthread_mutex_t run_lock;   // one loop at a time; a second caller runs its loop inline
    pthread_mutex_t sleep_lock;
    pthread_cond_t wake;
    _Atomic uint64_t cursor;    // (loop << 32) | next part to claim
    atomic_int sleepers;
    atomic_int parked;          // set before a BLAS call: spinning workers go to sleep at once
    atomic_int remaining;       // parts of the current loop not yet finished
    _Atomic int parts;
    recr1_task _Atomic task;
    void *_Atomic context;
    int workers;
} pool = {.once = PTHREAD_ONCE_INIT, .run_lock = PTHREAD_MUTEX_INITIALIZER,
          .sleep_lock = PTHREAD_MUTEX_INITIALIZER, .wake = PTHREAD_COND_INITIALIZER, .cursor = CLOSED};

static _Thread_local int inside_loop;  // a loop started from inside a loop runs inline

static uint32_t loop_of(uint64_t cursor) { return (uint32_t)(cursor >> 32); }
static uint32_t part_of(uint64_t cursor) { return (uint32_t)cursor; }

// Claims and runs parts of the open loop until none is left.
static void claim_parts(void) {
    uint64_t cursor = atomic_load(&pool.cursor);
    for (;;) {
        uint32_t part = part_of(cursor);
        if (part == CLOSED || part >= (uint32_t)atomic_load(&pool.parts)) return;
        if (!atomic_compare_exchange_weak(&pool.cursor, &cursor, cursor + 1)) continue;  // cursor reloaded
        // The loop stays open until this part is counted, so its task and context are the ones read here.
        atomic_load(&pool.task)(atomic_load(&pool.context), (int)part);
        atomic_fetch_sub_explicit(&pool.remaining, 1, memory_order_release);
        cursor = atomic_load(&pool.cursor);
    }
}

static long elapsed_nanoseconds(const struct timespec *since) {
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    return (now.tv_sec - since->tv_sec) * 1000000000L + (now.tv_nsec - since->tv_nsec);
}

static int has_new_loop(uint32_t seen) { return loop_of(atomic_load(&pool.cursor)) != seen; }

static void *worker(void *unused) {
    (void)unused;
    inside_loop = 1;
    uint32_t seen = loop_of(atomic_load(&pool.cursor));
    for (;;) {
        struct timespec start;
        clock_gettime(CLOCK_MONOTONIC, &start);
        for (int round = 1; !has_new_loop(seen) && !atomic_load_explicit(&pool.parked, memory_order_relaxed); round++) {
            CPU_RELAX();
            if (round % 64 == 0 && elapsed_nanoseconds(&start) > SPIN_NANOSECONDS) break;
        }
        if (!has_new_loop(seen)) {
            pthread_mutex_lock(&pool.sleep_lock);
            atomic_fetch_add(&pool.sleepers, 1);
            while (!has_new_loop(seen)) pthread_cond_wait(&pool.wake, &pool.sleep_lock);
            atomic_fetch_sub(&pool.sleepers, 1);
            pthread_mutex_unlock(&pool.sleep_lock);
        }
        seen = loop_of(atomic_load(&pool.cursor));
        claim_parts();
    }
    return NULL;
}

static int requested_workers;

static void start_workers(void) {
    int count = requested_workers > MAX_WORKERS ? MAX_WORKERS : requested_workers;
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
    // The pool's size is fixed by the first loop (recr1d sets its thread count once, at start).
    if (requested_workers == 0) requested_workers = threads - 1;
    pthread_once(&pool.once, start_workers);

    uint32_t loop = loop_of(atomic_load(&pool.cursor)) + 1;
    atomic_store(&pool.task, task);
    atomic_store(&pool.context, context);
    atomic_store(&pool.parts, parts);
    atomic_store(&pool.remaining, parts);
    atomic_store(&pool.parked, 0);
    atomic_store(&pool.cursor, (uint64_t)loop << 32);  // publishes the loop (seq_cst: before the read below)
    if (atomic_load(&pool.sleepers) > 0) {
        pthread_mutex_lock(&pool.sleep_lock);
        pthread_cond_broadcast(&pool.wake);
        pthread_mutex_unlock(&pool.sleep_lock);
    }
    inside_loop = 1;
    claim_parts();
    inside_loop = 0;
    while (atomic_load_explicit(&pool.remaining, memory_order_acquire) > 0) CPU_RELAX();
    atomic_store(&pool.cursor, ((uint64_t)loop << 32) | CLOSED);  // late claims for this loop now fail
    pthread_mutex_unlock(&pool.run_lock);
}

void recr1_parallel_park(void) {
    if (!atomic_load_explicit(&pool.parked, memory_order_relaxed)) atomic_store_explicit(&pool.parked, 1, memory_order_relaxed);
}
