/*
 * sampler.c — the 1 Hz sampling thread: system figures, model activity, a
 * local Ollama's loaded models; recorded in the history and kept for
 * heartbeats and /metrics.
 *
 * Ollama is asked less often than we sample (every ollama_every_ms) and
 * with a short timeout, and its answer is reused in between, so a missing
 * or slow Ollama never delays a sample by more than that timeout.
 */
#include <nng/nng.h>
#include <nng/supplemental/util/platform.h>
#include <pthread.h>
#include <string.h>

#include "agent/metrics/metrics.h"
#include "common/alloc.h"
#include "common/clock.h"
#include "common/log.h"

#define MOD               "metrics"
#define OLLAMA_TIMEOUT_MS 300
#define COMPACT_EVERY_MS  (60 * 1000)

struct metrics_sampler {
    metrics_sampler_config cfg;
    char *data_dir, *ollama_url; /* owned copies */
    metrics_history *history;    /* NULL when not recording */
    metrics_counters counters;

    metrics_model_activity ollama[METRICS_MAX_MODELS];
    size_t n_ollama;
    int64_t ollama_next_ms;
    bool ollama_was_up;
    int64_t compact_next_ms;

    pthread_t thread;
    nng_mtx *mtx; /* NNG's, for a monotonic timed wait on every platform */
    nng_cv *cv;
    bool stopping;
    metrics_snapshot latest; /* under mtx */
};

static void poll_ollama(metrics_sampler *s, int64_t now_ms)
{
    if (s->ollama_url == NULL || now_ms < s->ollama_next_ms)
        return;
    s->ollama_next_ms =
        now_ms + (s->cfg.ollama_every_ms > 0 ? s->cfg.ollama_every_ms : 5000);
    mlx_err err;
    mlx_err_clear(&err);
    size_t n = 0;
    int rc = metrics_ollama_ps(s->ollama_url, OLLAMA_TIMEOUT_MS, s->ollama,
                               METRICS_MAX_MODELS, &n, &err);
    s->n_ollama = rc == 0 ? n : 0;
    /* One line when Ollama appears or goes, not one per poll. */
    if (rc == 0 && !s->ollama_was_up)
        mlx_log_info(MOD, "Ollama found", "url=%s models=%zu", s->ollama_url, n);
    else if (rc != 0 && s->ollama_was_up)
        mlx_log_info(MOD, "Ollama gone", "url=%s err=\"%s\"", s->ollama_url, err.msg);
    s->ollama_was_up = rc == 0;
}

static void take_sample(metrics_sampler *s)
{
    metrics_snapshot snap;
    memset(&snap, 0, sizeof snap);
    mlx_err err;
    mlx_err_clear(&err);
    if (metrics_sample_system(s->data_dir, &s->counters, &snap.system, &err) != 0) {
        mlx_log_warn(MOD, "cannot sample the system", "err=\"%s\"", err.msg);
        return;
    }
    if (s->cfg.activity != NULL)
        snap.n_models =
            s->cfg.activity(s->cfg.activity_arg, snap.models, METRICS_MAX_MODELS);
    if (snap.n_models > METRICS_MAX_MODELS)
        snap.n_models = METRICS_MAX_MODELS;
    int64_t now_ms = mlx_time_mono_ms();
    poll_ollama(s, now_ms);
    for (size_t i = 0; i < s->n_ollama && snap.n_models < METRICS_MAX_MODELS; i++)
        snap.models[snap.n_models++] = s->ollama[i];

    double tokens_per_s = 0;
    for (size_t i = 0; i < snap.n_models; i++)
        tokens_per_s += snap.models[i].tokens_per_s;
    if (s->history != NULL) {
        if (metrics_history_add(s->history, &snap.system, tokens_per_s, &err) != 0)
            mlx_log_warn(MOD, "cannot record a sample", "err=\"%s\"", err.msg);
        if (now_ms >= s->compact_next_ms) {
            s->compact_next_ms = now_ms + COMPACT_EVERY_MS;
            if (metrics_history_compact(s->history, snap.system.unix_ms, &err) != 0)
                mlx_log_warn(MOD, "cannot compact the history", "err=\"%s\"", err.msg);
        }
    }

    nng_mtx_lock(s->mtx);
    snap.samples = s->latest.samples + 1;
    s->latest = snap;
    nng_mtx_unlock(s->mtx);
}

static void *run(void *arg)
{
    metrics_sampler *s = arg;
    nng_time next = nng_clock() + (nng_time)s->cfg.interval_ms;
    nng_mtx_lock(s->mtx);
    while (!s->stopping) {
        if (nng_cv_until(s->cv, next) != NNG_ETIMEDOUT)
            continue; /* woken: stopping, or spurious */
        nng_time now = nng_clock();
        next += (nng_time)s->cfg.interval_ms;
        if (next < now) /* fell behind (a slow disk): do not burst */
            next = now + (nng_time)s->cfg.interval_ms;
        nng_mtx_unlock(s->mtx);
        take_sample(s);
        nng_mtx_lock(s->mtx);
    }
    nng_mtx_unlock(s->mtx);
    return NULL;
}

static void sampler_free(metrics_sampler *s)
{
    if (s->cv != NULL)
        nng_cv_free(s->cv);
    if (s->mtx != NULL)
        nng_mtx_free(s->mtx);
    metrics_history_close(s->history);
    mlx_free(s->data_dir);
    mlx_free(s->ollama_url);
    mlx_free(s);
}

int metrics_sampler_start(const metrics_sampler_config *cfg, metrics_sampler **out,
                          mlx_err *err)
{
    *out = NULL;
    if (cfg->interval_ms <= 0)
        return mlx_err_set(err, MLX_EINVAL, "the sampling interval must be positive");
    metrics_sampler *s = mlx_calloc(1, sizeof *s);
    if (s == NULL)
        return mlx_err_set(err, MLX_ENOMEM, "out of memory");
    s->cfg = *cfg;
    s->data_dir = mlx_strdup(cfg->data_dir);
    if (cfg->ollama_url != NULL && cfg->ollama_url[0] != '\0')
        s->ollama_url = mlx_strdup(cfg->ollama_url);
    if (s->data_dir == NULL || (cfg->ollama_url != NULL && cfg->ollama_url[0] != '\0' &&
                                s->ollama_url == NULL)) {
        sampler_free(s);
        return mlx_err_set(err, MLX_ENOMEM, "out of memory");
    }
    int rc = cfg->record ? metrics_history_open(s->data_dir, &s->history, err) : 0;
    if (rc == 0 && (nng_mtx_alloc(&s->mtx) != 0 || nng_cv_alloc(&s->cv, s->mtx) != 0))
        rc = mlx_err_set(err, MLX_ENOMEM, "out of memory");
    if (rc != 0) {
        sampler_free(s);
        return rc;
    }
    /* Prime the counters, so the first sample shows recent CPU use rather
     * than the average since boot, and have a sample before we return. */
    metrics_sample discard;
    metrics_sample_system(s->data_dir, &s->counters, &discard, NULL);
    take_sample(s);
    if (pthread_create(&s->thread, NULL, run, s) != 0) {
        sampler_free(s);
        return mlx_err_set(err, MLX_ENOMEM, "cannot start the metrics sampler");
    }
    *out = s;
    return 0;
}

void metrics_sampler_latest(metrics_sampler *s, metrics_snapshot *out)
{
    nng_mtx_lock(s->mtx);
    *out = s->latest;
    nng_mtx_unlock(s->mtx);
}

void metrics_sampler_stop(metrics_sampler *s)
{
    if (s == NULL)
        return;
    nng_mtx_lock(s->mtx);
    s->stopping = true;
    nng_cv_wake(s->cv);
    nng_mtx_unlock(s->mtx);
    pthread_join(s->thread, NULL);
    sampler_free(s);
}
