/*
 * pool.c — the worker threads (see pool.h).
 *
 * A decode step runs a few hundred jobs of tens of microseconds each, so
 * handing a job over must cost far less than waking a sleeping thread
 * (several microseconds, more on a busy machine). Workers therefore spin
 * on the job counter for a while after each job, and only then sleep on a
 * condition variable; a job published while some sleep also wakes them.
 *
 *   generation  bumped (release) after the job's fields are written; a
 *               worker that sees a new value (acquire) reads them
 *   pending     workers still on the job; the last one out lets the caller
 *               return (it spins on it, the job being short)
 *   sleepers    how many workers sleep, so a publisher knows to wake them
 */
#include "agent/engine/pool.h"

#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdbool.h>
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

struct worker {
    pool *p;
    int index; /* 1..threads-1; the caller is 0 */
    pthread_t tid;
};

struct pool {
    int threads;
    struct worker *workers; /* [threads - 1] */
    /* The job: written by the caller before generation is bumped. */
    size_t n;
    pool_fn fn;
    void *ctx;
    atomic_ulong generation;
    atomic_int pending;
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

static void range(const pool *p, int index, size_t *begin, size_t *end)
{
    *begin = p->n * (size_t)index / (size_t)p->threads;
    *end = p->n * (size_t)(index + 1) / (size_t)p->threads;
}

/* Waits until generation differs from seen, or quit; returns the new one. */
static unsigned long await_job(pool *p, unsigned long seen)
{
    for (int i = 0; i < SPIN_ROUNDS; i++) {
        unsigned long g = atomic_load_explicit(&p->generation, memory_order_acquire);
        if (g != seen || atomic_load(&p->quit))
            return g;
        relax();
    }
    pthread_mutex_lock(&p->mtx);
    atomic_fetch_add(&p->sleepers, 1);
    unsigned long g;
    while ((g = atomic_load_explicit(&p->generation, memory_order_acquire)) == seen &&
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
    unsigned long seen = 0;
    for (;;) {
        seen = await_job(p, seen);
        if (atomic_load(&p->quit))
            break;
        size_t begin, end;
        range(p, w->index, &begin, &end);
        if (begin < end)
            p->fn(p->ctx, begin, end, w->index);
        atomic_fetch_sub_explicit(&p->pending, 1, memory_order_release);
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
    p->n = n;
    p->fn = fn;
    p->ctx = ctx;
    atomic_store_explicit(&p->pending, p->threads - 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&p->generation, 1, memory_order_release);
    if (atomic_load(&p->sleepers) > 0) {
        pthread_mutex_lock(&p->mtx);
        pthread_cond_broadcast(&p->wake);
        pthread_mutex_unlock(&p->mtx);
    }
    size_t begin, end;
    range(p, 0, &begin, &end);
    if (begin < end)
        fn(ctx, begin, end, 0);
    for (unsigned i = 0; atomic_load_explicit(&p->pending, memory_order_acquire) > 0; i++)
        if (i < SPIN_ROUNDS)
            relax();
        else
            sched_yield(); /* a worker was descheduled: let it run */
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
     * would hold the others back at every barrier. */
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
