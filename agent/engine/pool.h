/*
 * pool.h — persistent worker threads that split one piece of work (the rows
 * of a matrix, the heads of attention) across cores (engine-internal).
 *
 * Threads are made once, with the model, and wait between jobs: a decode
 * step runs hundreds of jobs, far too many to start a thread for each;
 * between jobs they spin a little before they sleep. A job over [0, n) is
 * cut into chunks that the threads, the caller's included, claim in turn,
 * so a thread the system deschedules delays no one. Each item is computed
 * by exactly one thread, whichever, so results do not depend on the number
 * of threads or on who ran what.
 *
 * Lifecycle: pool_new, any number of pool_run, pool_free.
 * Thread safety: one pool_run at a time (callers serialise); fn runs on
 * several threads at once over disjoint ranges.
 */
#ifndef MLX_AGENT_ENGINE_POOL_H
#define MLX_AGENT_ENGINE_POOL_H

#include <stddef.h>

#include "common/err.h"

typedef struct pool pool;

/* Works on [begin, end) of a job; worker is the thread's index in
 * [0, pool_threads), for per-thread scratch space (0 is the caller). */
typedef void (*pool_fn)(void *ctx, size_t begin, size_t end, int worker);

/* threads counts the caller: 1 makes no thread. *out: pool_free. */
int pool_new(int threads, pool **out, mlx_err *err);
void pool_free(pool *p);
int pool_threads(const pool *p);

/* The threads a forward pass should use here: the performance cores
 * (Apple silicon), or the physical cores (SMT siblings add nothing to
 * matrix work). */
int pool_default_threads(void);

/* Runs fn over [0, n) on every thread and returns when all are done. */
void pool_run(pool *p, size_t n, pool_fn fn, void *ctx);

#endif
