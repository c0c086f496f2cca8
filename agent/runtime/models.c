/*
 * models.c — which models are loaded: loading on first use within the
 * memory budget and the loaded-model count, unloading the least recently
 * used idle ones to make room, and unloading models idle past their
 * keep-alive.
 *
 * A model's memory is its weights (mapped from the store; the kernel
 * pages them in as they are read), its forward-pass workspace and one KV
 * cache per slot, all known once the file is opened. A model is idle when
 * no request runs or waits on it; only idle models are unloaded to make
 * room, so a request never loses its model mid-answer.
 *
 * One model loads at a time (runtime.loading): a second request for the
 * same model waits for the first's load instead of loading it twice.
 */
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "agent/cache/cache.h"
#include "agent/runtime/internal.h"
#include "common/alloc.h"
#include "common/clock.h"
#include "common/log.h"

#define MOD "runtime"

static uint64_t used_bytes(const runtime *rt)
{
    uint64_t sum = 0;
    for (const rt_model *m = rt->models; m != NULL; m = m->next)
        sum += m->memory_bytes;
    return sum;
}

static size_t loaded_count(const runtime *rt)
{
    size_t n = 0;
    for (const rt_model *m = rt->models; m != NULL; m = m->next)
        n++;
    return n;
}

static bool idle(rt_model *m)
{
    pthread_mutex_lock(&m->mtx);
    bool yes = m->running == 0 && m->queued == 0;
    pthread_mutex_unlock(&m->mtx);
    return yes;
}

static void unlink_model(runtime *rt, rt_model *m)
{
    for (rt_model **p = &rt->models; *p != NULL; p = &(*p)->next)
        if (*p == m) {
            *p = m->next;
            return;
        }
}

void rt_model_unload(rt_model *m)
{
    if (m->thread_started) {
        pthread_mutex_lock(&m->mtx);
        m->stop = true;
        pthread_cond_broadcast(&m->cond);
        pthread_mutex_unlock(&m->mtx);
        pthread_join(m->thread, NULL);
        mlx_log_info(MOD, "unloaded a model", "model=\"%s\"", m->name);
    }
    engine_free(m->em);
    pthread_cond_destroy(&m->cond);
    pthread_mutex_destroy(&m->mtx);
    mlx_free(m);
}

/* The least recently used idle model, or NULL. */
static rt_model *lru_idle(runtime *rt)
{
    rt_model *pick = NULL;
    for (rt_model *m = rt->models; m != NULL; m = m->next)
        if (idle(m) && (pick == NULL || m->last_used_ms < pick->last_used_ms))
            pick = m;
    return pick;
}

void rt_models_expire(runtime *rt, int64_t now_ms)
{
    for (rt_model *m = rt->models, *next; m != NULL; m = next) {
        next = m->next;
        pthread_mutex_lock(&m->mtx);
        bool expired = m->running == 0 && m->queued == 0 &&
                       now_ms - m->last_used_ms >= m->keep_alive_ms;
        pthread_mutex_unlock(&m->mtx);
        if (expired) {
            unlink_model(rt, m);
            rt_model_unload(m);
        }
    }
}

static void gib(uint64_t bytes, char *out, size_t size)
{
    snprintf(out, size, "%.1f GiB", (double)bytes / (1u << 30));
}

/* Makes room for need bytes and one more model (runtime.mtx held),
 * unloading the least recently used idle models. */
static int make_room(runtime *rt, const char *name, uint64_t need, mlx_err *err)
{
    const runtime_config *c = &rt->cfg;
    char needs[32], budget[32], busy[32];
    gib(need, needs, sizeof needs);
    gib(c->memory_budget, budget, sizeof budget);
    if (need > c->memory_budget)
        return mlx_err_set(err, MLX_ENOMEM,
                           "'%s' needs %s (weights, workspace and %d KV caches) but the "
                           "memory budget is %s; raise --memory-budget, or serve it with "
                           "fewer --parallel slots or a smaller --ctx",
                           name, needs, c->parallel, budget);
    while (used_bytes(rt) + need > c->memory_budget ||
           loaded_count(rt) >= (size_t)c->max_loaded) {
        rt_model *victim = lru_idle(rt);
        if (victim == NULL) {
            gib(used_bytes(rt), busy, sizeof busy);
            return mlx_err_set(err, MLX_EBUSY,
                               "'%s' needs %s, but %s of the %s budget (or all %d model "
                               "places) are taken by models serving requests; try again "
                               "when they finish",
                               name, needs, busy, budget, c->max_loaded);
        }
        unlink_model(rt, victim);
        rt_model_unload(victim);
    }
    return 0;
}

static rt_model *find(runtime *rt, const char *name)
{
    for (rt_model *m = rt->models; m != NULL; m = m->next)
        if (strcmp(m->name, name) == 0)
            return m;
    return NULL;
}

/* Opens the model's file outside the lock (the slow part), then admits it
 * within the budget. */
static int load(runtime *rt, const char *name, rt_model **out, mlx_err *err)
{
    char *path = NULL;
    int rc = rt->cfg.store_only ? cache_resolve_model(rt->cfg.data_dir, name, &path, err)
                                : cache_locate_model(rt->cfg.data_dir, name, &path, err);
    rt_model *m = rc == 0 ? mlx_calloc(1, sizeof *m) : NULL;
    if (rc == 0 && m == NULL)
        rc = mlx_err_set(err, MLX_ENOMEM, "out of memory");
    int64_t t0 = rt_now_ns();
    engine_opts eo = {.threads = rt->cfg.threads, .n_ctx = rt->cfg.n_ctx};
    if (rc == 0)
        rc = engine_load(path, &eo, &m->em, err);
    if (rc != 0) {
        mlx_free(path);
        mlx_free(m);
        return rc;
    }
    m->rt = rt;
    snprintf(m->name, sizeof m->name, "%s", name);
    snprintf(m->path, sizeof m->path, "%s", path);
    mlx_free(path);
    const engine_info *info = engine_model_info(m->em);
    m->memory_bytes =
        info->weight_bytes + info->work_bytes + (uint64_t)rt->cfg.parallel * info->seq_bytes;
    m->load_ns = rt_now_ns() - t0;
    m->loaded_unix_ms = mlx_time_wall_ms();
    m->last_used_ms = rt_now_ms();
    m->keep_alive_ms = rt->cfg.keep_alive_ms;
    pthread_mutex_init(&m->mtx, NULL);
    pthread_cond_init(&m->cond, NULL);
    *out = m;
    return 0;
}

/* Finds the model called name, loading it when it is not loaded; returns
 * with runtime.mtx held (also on failure) and the model first in the list,
 * so the janitor cannot unload it before the caller uses it. *load_ns gets
 * the load's time, 0 when it was loaded already. */
static int acquire(runtime *rt, const char *name, rt_model **out, int64_t *load_ns,
                   mlx_err *err)
{
    *load_ns = 0;
    pthread_mutex_lock(&rt->mtx);
    for (;;) {
        if (rt->stopping)
            return mlx_err_set(err, MLX_ECLOSED, "the agent is stopping");
        rt_model *m = find(rt, name);
        if (m != NULL) {
            unlink_model(rt, m);
            m->next = rt->models;
            rt->models = m;
            *out = m;
            return 0;
        }
        if (rt->loading[0] == '\0')
            break;
        pthread_cond_wait(&rt->loaded, &rt->mtx); /* one load at a time */
    }
    snprintf(rt->loading, sizeof rt->loading, "%s", name);
    pthread_mutex_unlock(&rt->mtx);

    rt_model *m = NULL;
    int rc = load(rt, name, &m, err);
    pthread_mutex_lock(&rt->mtx);
    if (rc == 0 && (rc = make_room(rt, name, m->memory_bytes, err)) == 0 &&
        (rc = rt_sched_start(m, err)) == 0) {
        m->next = rt->models;
        rt->models = m;
        *load_ns = m->load_ns;
        *out = m;
        char mem[32];
        gib(m->memory_bytes, mem, sizeof mem);
        mlx_log_info(MOD, "loaded a model", "model=\"%s\" path=\"%s\" memory=\"%s\" ms=%lld",
                     name, m->path, mem, (long long)(m->load_ns / 1000000));
    } else if (m != NULL) {
        rt_model_unload(m);
    }
    rt->loading[0] = '\0';
    pthread_cond_broadcast(&rt->loaded);
    return rc;
}

int rt_models_submit(runtime *rt, runtime_job *job, mlx_err *err)
{
    rt_model *m;
    int rc = acquire(rt, job->model, &m, &job->load_ns, err);
    if (rc == 0)
        rc = rt_sched_queue(m, job, err);
    pthread_mutex_unlock(&rt->mtx);
    return rc;
}

int runtime_load(runtime *rt, const char *model, int64_t keep_alive_ms, int64_t *load_ns,
                 mlx_err *err)
{
    int64_t spent;
    rt_model *m;
    int rc = acquire(rt, model, &m, &spent, err);
    if (rc == 0) {
        pthread_mutex_lock(&m->mtx);
        m->last_used_ms = rt_now_ms();
        if (keep_alive_ms >= 0)
            m->keep_alive_ms = keep_alive_ms;
        pthread_mutex_unlock(&m->mtx);
        if (keep_alive_ms == 0)
            rt_models_expire(rt, rt_now_ms()); /* unloads it now if idle */
    }
    pthread_mutex_unlock(&rt->mtx);
    if (load_ns != NULL)
        *load_ns = spent;
    return rc;
}

int runtime_get_status(runtime *rt, runtime_status *out, mlx_err *err)
{
    memset(out, 0, sizeof *out);
    out->memory_budget = rt->cfg.memory_budget;
    pthread_mutex_lock(&rt->mtx);
    size_t n = loaded_count(rt);
    out->models = mlx_calloc(n > 0 ? n : 1, sizeof *out->models);
    if (out->models == NULL) {
        pthread_mutex_unlock(&rt->mtx);
        return mlx_err_set(err, MLX_ENOMEM, "out of memory");
    }
    int64_t now_mono = rt_now_ms(), now_wall = mlx_time_wall_ms();
    for (rt_model *m = rt->models; m != NULL; m = m->next) {
        runtime_model_status *s = &out->models[out->n_models++];
        snprintf(s->name, sizeof s->name, "%s", m->name);
        snprintf(s->path, sizeof s->path, "%s", m->path);
        s->info = *engine_model_info(m->em);
        s->memory_bytes = m->memory_bytes;
        s->loaded_unix_ms = m->loaded_unix_ms;
        pthread_mutex_lock(&m->mtx);
        s->running = (uint32_t)m->running;
        s->queued = (uint32_t)m->queued;
        s->tokens_per_s = m->tokens_per_s;
        s->expires_unix_ms = m->running > 0 || m->queued > 0
                                 ? 0
                                 : now_wall + (m->last_used_ms + m->keep_alive_ms - now_mono);
        pthread_mutex_unlock(&m->mtx);
    }
    pthread_mutex_unlock(&rt->mtx);
    return 0;
}

void runtime_status_free(runtime_status *s)
{
    mlx_free(s->models);
    memset(s, 0, sizeof *s);
}
