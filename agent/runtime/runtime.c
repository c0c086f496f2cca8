/*
 * runtime.c — the runtime's life and its front door: defaults, the janitor
 * that unloads models idle past their keep-alive, and runtime_submit,
 * which finds or loads the model and queues the request on it.
 */
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "agent/runtime/internal.h"
#include "common/alloc.h"

#define DEFAULT_MAX_LOADED 3
#define DEFAULT_PARALLEL 4
#define DEFAULT_QUEUE 64
#define DEFAULT_KEEP_ALIVE_MS (5 * 60 * 1000)

/* Three quarters of the machine's memory: the rest is the system's and
 * the other programs'. */
static uint64_t default_budget(void)
{
    long pages = sysconf(_SC_PHYS_PAGES), size = sysconf(_SC_PAGESIZE);
    uint64_t ram = pages > 0 && size > 0 ? (uint64_t)pages * (uint64_t)size : 8ull << 30;
    return ram / 4 * 3;
}

/* Wakes once a second to unload models idle past their keep-alive. */
static void *janitor(void *arg)
{
    runtime *rt = arg;
    pthread_mutex_lock(&rt->mtx);
    while (!rt->stopping) {
        struct timespec until;
        clock_gettime(CLOCK_REALTIME, &until);
        until.tv_sec += 1;
        pthread_cond_timedwait(&rt->janitor_wake, &rt->mtx, &until);
        if (!rt->stopping && rt->loading[0] == '\0')
            rt_models_expire(rt, rt_now_ms());
    }
    pthread_mutex_unlock(&rt->mtx);
    return NULL;
}

int runtime_start(const runtime_config *cfg, runtime **out, mlx_err *err)
{
    *out = NULL;
    if (cfg->data_dir == NULL)
        return mlx_err_set(err, MLX_EINVAL, "the runtime needs a data directory");
    if (cfg->parallel < 0 || cfg->parallel > 256 || cfg->queue_limit < 0 ||
        cfg->max_loaded < 0)
        return mlx_err_set(err, MLX_EINVAL,
                           "--parallel must be from 1 to 256, and the queue and model "
                           "limits positive");
    runtime *rt = mlx_calloc(1, sizeof *rt);
    if (rt == NULL)
        return mlx_err_set(err, MLX_ENOMEM, "out of memory");
    rt->cfg = *cfg;
    runtime_config *c = &rt->cfg;
    if (c->memory_budget == 0)
        c->memory_budget = default_budget();
    if (c->max_loaded == 0)
        c->max_loaded = DEFAULT_MAX_LOADED;
    if (c->parallel == 0)
        c->parallel = DEFAULT_PARALLEL;
    if (c->queue_limit == 0)
        c->queue_limit = DEFAULT_QUEUE;
    if (c->keep_alive_ms < 0)
        c->keep_alive_ms = DEFAULT_KEEP_ALIVE_MS;
    pthread_mutex_init(&rt->mtx, NULL);
    pthread_cond_init(&rt->loaded, NULL);
    pthread_cond_init(&rt->janitor_wake, NULL);
    if (pthread_create(&rt->janitor, NULL, janitor, rt) != 0) {
        pthread_cond_destroy(&rt->janitor_wake);
        pthread_cond_destroy(&rt->loaded);
        pthread_mutex_destroy(&rt->mtx);
        mlx_free(rt);
        return mlx_err_set(err, MLX_ENOMEM, "cannot start the runtime's janitor thread");
    }
    *out = rt;
    return 0;
}

void runtime_stop(runtime *rt)
{
    if (rt == NULL)
        return;
    pthread_mutex_lock(&rt->mtx);
    rt->stopping = true;
    while (rt->loading[0] != '\0')
        pthread_cond_wait(&rt->loaded, &rt->mtx);
    pthread_cond_broadcast(&rt->janitor_wake);
    pthread_mutex_unlock(&rt->mtx);
    pthread_join(rt->janitor, NULL);
    /* Nothing can be loaded or queued any more: unload everything. */
    while (rt->models != NULL) {
        rt_model *m = rt->models;
        rt->models = m->next;
        rt_model_unload(m);
    }
    pthread_cond_destroy(&rt->janitor_wake);
    pthread_cond_destroy(&rt->loaded);
    pthread_mutex_destroy(&rt->mtx);
    mlx_free(rt);
}

static int check_request(const runtime_request *req, mlx_err *err)
{
    if (req->model == NULL || req->model[0] == '\0')
        return mlx_err_set(err, MLX_EINVAL, "the request names no model");
    if ((req->prompt == NULL) == (req->n_messages == 0))
        return mlx_err_set(err, MLX_EINVAL,
                           "a request has either a prompt or messages, not %s",
                           req->prompt == NULL ? "neither" : "both");
    if (req->top_logprobs > RUNTIME_MAX_TOP_LOGPROBS || req->top_logprobs < -1)
        return mlx_err_set(err, MLX_EINVAL, "top_logprobs must be from 0 to %d",
                           RUNTIME_MAX_TOP_LOGPROBS);
    if (req->max_tokens < -1)
        return mlx_err_set(err, MLX_EINVAL, "max_tokens must be positive");
    /* The sampler and the stop matcher check their own settings, with a
     * sentence each: try them here so the caller learns at once. */
    engine_sampler *smp = NULL;
    engine_stop *stop = NULL;
    int rc = engine_sampler_new(&req->sampling, 1, &smp, err);
    if (rc == 0)
        rc = engine_stop_new(req->stops, req->n_stops, &stop, err);
    engine_sampler_free(smp);
    engine_stop_free(stop);
    return rc;
}

int runtime_submit(runtime *rt, const runtime_request *req, runtime_job **out,
                   mlx_err *err)
{
    *out = NULL;
    int rc = check_request(req, err);
    if (rc != 0)
        return rc;
    runtime_job *job = rt_job_new(req);
    if (job == NULL)
        return mlx_err_set(err, MLX_ENOMEM, "out of memory");
    mlx_err why;
    mlx_err_clear(&why);
    rc = rt_models_submit(rt, job, &why);
    if (rc == MLX_EBUSY || rc == MLX_ECLOSED) {
        /* Refused at once (a full queue, no room now, stopping): 503. */
        runtime_job_free(job);
        if (err != NULL)
            *err = why;
        return rc;
    }
    if (rc != 0) /* the model cannot be had: the caller reads why as ERROR */
        rt_job_fail(job, rc, "%s", mlx_err_text(&why, rc));
    *out = job;
    return 0;
}
