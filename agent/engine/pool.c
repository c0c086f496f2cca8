/*
 * pool.c — the worker threads (see pool.h).
 *
 * A job over [0, n) is cut into chunks that threads claim one at a time
 * from a shared counter, the caller included. A thread the system has
 * descheduled (another program is busy on its core) then costs nothing:
 * the others take its chunks, where a fixed range per thread would make
 * every job wait for it. Each chunk is a fixed range of items, computed by
 * whichever thread claims it, so results do not depend on who runs.
 *
 * A decode step runs a few hundred jobs of tens of microseconds, so
 * handing one over must cost far less than waking a sleeping thread:
 * workers spin on the job word for a while after each job, and only then
 * sleep on a condition variable.
 *
 *   job       generation (high 32 bits) and the next chunk to claim (low
 *             32): a claim is a compare-and-swap on both, so a thread that
 *             saw an older job can never claim a chunk of a newer one
 *   done      chunks finished; the caller returns when all are
 *   fn, ctx, n, chunks   the job, written before its generation is
 *             published and not again until all its chunks are done
 */
#include "agent/engine/pool.h"

#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>
#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#endif
#ifdef __APPLE__
#include <sys/sysctl.h>
#endif

#include "common/alloc.h"
#include "common/limits.h"
#include "common/path.h"

/* Spins before a worker sleeps: ~50 µs, longer than the gap between the
 * jobs of one decode step, far shorter than the gap between requests. */
#define SPIN_ROUNDS 20000

/* Chunks per thread: enough that a late thread's share is small, few
 * enough that claiming stays cheap next to the work. */
#define CHUNKS_PER_THREAD 8

struct worker {
    pool *p;
    int index; /* 1..threads-1; the caller is 0 */
    pthread_t tid;
};

struct pool {
    int threads;
    struct worker *workers; /* [threads - 1] */
    _Atomic(pool_fn) fn;
    _Atomic(void *) ctx;
    atomic_size_t n;
    atomic_uint chunks;
    atomic_uint_fast64_t job; /* generation << 32 | next chunk */
    atomic_uint done;
    atomic_int sleepers;
    atomic_bool quit;
    pthread_mutex_t mtx; /* with wake: for sleeping only */
    pthread_cond_t wake;
};

static inline void relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
    _mm_pause();
#elif defined(__aarch64__)
    __asm__ __volatile__("yield");
#endif
}

/* Claims and runs chunks of the job of generation gen until none is left
 * (or a newer job was published). */
static void run_chunks(pool *p, uint32_t gen, int worker)
{
    pool_fn fn = atomic_load_explicit(&p->fn, memory_order_relaxed);
    void *ctx = atomic_load_explicit(&p->ctx, memory_order_relaxed);
    size_t n = atomic_load_explicit(&p->n, memory_order_relaxed);
    uint32_t chunks = atomic_load_explicit(&p->chunks, memory_order_relaxed);
    uint64_t word = atomic_load_explicit(&p->job, memory_order_acquire);
    for (;;) {
        uint32_t next = (uint32_t)word;
        if ((uint32_t)(word >> 32) != gen || next >= chunks)
            return;
        /* The fields read above are this job's: they change only after
         * all its chunks are done, and this one is not claimed yet. */
        if (!atomic_compare_exchange_weak_explicit(
                &p->job, &word, word + 1, memory_order_acquire, memory_order_acquire))
            continue;
        size_t begin = n * next / chunks, end = n * (next + 1) / chunks;
        if (begin < end)
            fn(ctx, begin, end, worker);
        atomic_fetch_add_explicit(&p->done, 1, memory_order_release);
        word = atomic_load_explicit(&p->job, memory_order_acquire);
    }
}

/* Waits until the generation differs from seen, or quit; returns it. */
static uint32_t await_job(pool *p, uint32_t seen)
{
    for (int i = 0; i < SPIN_ROUNDS; i++) {
        uint32_t g =
            (uint32_t)(atomic_load_explicit(&p->job, memory_order_acquire) >> 32);
        if (g != seen || atomic_load(&p->quit))
            return g;
        relax();
    }
    pthread_mutex_lock(&p->mtx);
    atomic_fetch_add(&p->sleepers, 1);
    uint32_t g;
    while ((g = (uint32_t)(atomic_load_explicit(&p->job, memory_order_acquire) >> 32)) ==
               seen &&
           !atomic_load(&p->quit))
        pthread_cond_wait(&p->wake, &p->mtx);
    atomic_fetch_sub(&p->sleepers, 1);
    pthread_mutex_unlock(&p->mtx);
    return g;
}

static void *work(void *arg)
{
    struct worker *w = arg;
    pool *p = w->p;
    uint32_t seen = 0;
    for (;;) {
        seen = await_job(p, seen);
        if (atomic_load(&p->quit))
            break;
        run_chunks(p, seen, w->index);
    }
    return NULL;
}

void pool_free(pool *p)
{
    if (p == NULL)
        return;
    pthread_mutex_lock(&p->mtx);
    atomic_store(&p->quit, true);
    pthread_cond_broadcast(&p->wake);
    pthread_mutex_unlock(&p->mtx);
    for (int i = 0; i < p->threads - 1; i++)
        if (p->workers[i].p != NULL)
            pthread_join(p->workers[i].tid, NULL);
    pthread_cond_destroy(&p->wake);
    pthread_mutex_destroy(&p->mtx);
    mlx_free(p->workers);
    mlx_free(p);
}

int pool_new(int threads, pool **out, mlx_err *err)
{
    *out = NULL;
    if (threads < 1 || threads > MLX_MAX_ENGINE_THREADS)
        return mlx_err_set(err, MLX_EINVAL, "--threads must be from 1 to %d, not %d",
                           MLX_MAX_ENGINE_THREADS, threads);
    pool *p = mlx_calloc(1, sizeof *p);
    struct worker *w = mlx_calloc((size_t)threads, sizeof *w);
    if (p == NULL || w == NULL) {
        mlx_free(p);
        mlx_free(w);
        return mlx_err_set(err, MLX_ENOMEM, "out of memory");
    }
    p->threads = threads;
    p->workers = w;
    pthread_mutex_init(&p->mtx, NULL);
    pthread_cond_init(&p->wake, NULL);
    for (int i = 0; i < threads - 1; i++) {
        /* Filled in before the thread starts: it reads them at once. */
        w[i].index = i + 1;
        w[i].p = p;
        if (pthread_create(&w[i].tid, NULL, work, &w[i]) != 0) {
            w[i].p = NULL;
            p->threads = i + 1; /* the ones started are joined by pool_free */
            pool_free(p);
            return mlx_err_set(err, MLX_ENOMEM, "cannot start worker thread %d of %d",
                               i + 2, threads);
        }
    }
    *out = p;
    return 0;
}

int pool_threads(const pool *p)
{
    return p->threads;
}

void pool_run(pool *p, size_t n, pool_fn fn, void *ctx)
{
    if (p->threads == 1 || n < 2) {
        fn(ctx, 0, n, 0);
        return;
    }
    size_t most = (size_t)p->threads * CHUNKS_PER_THREAD;
    uint32_t chunks = (uint32_t)(n < most ? n : most);
    atomic_store_explicit(&p->fn, fn, memory_order_relaxed);
    atomic_store_explicit(&p->ctx, ctx, memory_order_relaxed);
    atomic_store_explicit(&p->n, n, memory_order_relaxed);
    atomic_store_explicit(&p->chunks, chunks, memory_order_relaxed);
    atomic_store_explicit(&p->done, 0, memory_order_relaxed);
    uint32_t gen = (uint32_t)(atomic_load(&p->job) >> 32) + 1;
    atomic_store_explicit(&p->job, (uint64_t)gen << 32, memory_order_release);
    if (atomic_load(&p->sleepers) > 0) {
        pthread_mutex_lock(&p->mtx);
        pthread_cond_broadcast(&p->wake);
        pthread_mutex_unlock(&p->mtx);
    }
    run_chunks(p, gen, 0);
    /* What is left is chunks other threads claimed and are finishing. */
    for (unsigned i = 0; atomic_load_explicit(&p->done, memory_order_acquire) < chunks;
         i++)
        if (i < SPIN_ROUNDS)
            relax();
        else
            sched_yield(); /* a worker was descheduled mid-chunk: let it run */
}

/* Physical cores, not SMT siblings: two threads on one core share its
 * arithmetic units and gain nothing on matrix work. Linux lists each
 * CPU's siblings; a CPU is counted when it is the first of its list. */
static int physical_cores_linux(void)
{
    long online = sysconf(_SC_NPROCESSORS_ONLN);
    int cores = 0;
    for (long cpu = 0; cpu < online && cpu < 4096; cpu++) {
        char path[128], *text = NULL;
        snprintf(path, sizeof path,
                 "/sys/devices/system/cpu/cpu%ld/topology/thread_siblings_list", cpu);
        if (mlx_path_read_small(path, 256, &text, NULL) != 0)
            return (int)online; /* no topology: count them all */
        long first = 0;
        for (const char *c = text; *c >= '0' && *c <= '9'; c++)
            first = first * 10 + (*c - '0');
        cores += first == cpu;
        mlx_free(text);
    }
    return cores > 0 ? cores : (int)online;
}

int pool_default_threads(void)
{
#ifdef __APPLE__
    /* Apple silicon: the performance cores (perflevel0); efficiency cores
     * would hold the others back. */
    int n = 0;
    size_t len = sizeof n;
    if (sysctlbyname("hw.perflevel0.physicalcpu", &n, &len, NULL, 0) == 0 && n > 0)
        return n;
    if (sysctlbyname("hw.physicalcpu", &n, &len, NULL, 0) == 0 && n > 0)
        return n;
    return 1;
#else
    int n = physical_cores_linux();
    return n < 1 ? 1 : n > MLX_MAX_ENGINE_THREADS ? MLX_MAX_ENGINE_THREADS : n;
#endif
}
