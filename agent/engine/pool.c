/*
 * pool.c — the worker threads (see pool.h).
 *
 * A job is published by bumping a generation number under the lock and
 * waking everyone; each worker runs its range of the newest job and counts
 * itself done; the caller waits for the count. Workers never see a job
 * twice: each remembers the generation it last ran.
 */
#include "agent/engine/pool.h"

#include <pthread.h>
#include <stdbool.h>
#include <string.h>

#include "common/alloc.h"
#include "common/limits.h"

struct worker {
    pool *p;
    int index; /* 1..threads-1; the caller is 0 */
    pthread_t tid;
};

struct pool {
    int threads;
    struct worker *workers; /* [threads - 1] */
    pthread_mutex_t mtx;
    pthread_cond_t wake, done;
    /* The job, under mtx. */
    unsigned long generation;
    size_t n;
    pool_fn fn;
    void *ctx;
    int pending; /* workers still on the current job */
    bool quit;
};

static void range(const pool *p, int index, size_t *begin, size_t *end)
{
    *begin = p->n * (size_t)index / (size_t)p->threads;
    *end = p->n * (size_t)(index + 1) / (size_t)p->threads;
}

static void *work(void *arg)
{
    struct worker *w = arg;
    pool *p = w->p;
    unsigned long seen = 0;
    pthread_mutex_lock(&p->mtx);
    for (;;) {
        while (!p->quit && p->generation == seen)
            pthread_cond_wait(&p->wake, &p->mtx);
        if (p->quit)
            break;
        seen = p->generation;
        size_t begin, end;
        range(p, w->index, &begin, &end);
        pool_fn fn = p->fn;
        void *ctx = p->ctx;
        pthread_mutex_unlock(&p->mtx);
        if (begin < end)
            fn(ctx, begin, end);
        pthread_mutex_lock(&p->mtx);
        if (--p->pending == 0)
            pthread_cond_signal(&p->done);
    }
    pthread_mutex_unlock(&p->mtx);
    return NULL;
}

void pool_free(pool *p)
{
    if (p == NULL)
        return;
    pthread_mutex_lock(&p->mtx);
    p->quit = true;
    pthread_cond_broadcast(&p->wake);
    pthread_mutex_unlock(&p->mtx);
    for (int i = 0; i < p->threads - 1; i++)
        if (p->workers[i].p != NULL)
            pthread_join(p->workers[i].tid, NULL);
    pthread_cond_destroy(&p->wake);
    pthread_cond_destroy(&p->done);
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
    pthread_cond_init(&p->done, NULL);
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
        fn(ctx, 0, n);
        return;
    }
    pthread_mutex_lock(&p->mtx);
    p->n = n;
    p->fn = fn;
    p->ctx = ctx;
    p->pending = p->threads - 1;
    p->generation++;
    pthread_cond_broadcast(&p->wake);
    pthread_mutex_unlock(&p->mtx);
    size_t begin, end;
    range(p, 0, &begin, &end);
    if (begin < end)
        fn(ctx, begin, end);
    pthread_mutex_lock(&p->mtx);
    while (p->pending > 0)
        pthread_cond_wait(&p->done, &p->mtx);
    pthread_mutex_unlock(&p->mtx);
}
