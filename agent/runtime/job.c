/*
 * job.c — one request's events, from the model's scheduler to the thread
 * that asked (an HTTP connection's).
 *
 * The scheduler appends final text and tokens as it makes them; the caller
 * takes whatever has gathered since its last call, so a slow reader gets
 * fewer, larger TEXT events and never holds the scheduler up. STARTED comes
 * first, then TEXT, then DONE or ERROR, which every later call returns
 * again.
 */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "agent/runtime/internal.h"
#include "common/alloc.h"

/* Text a job may gather unread: a reader that stopped reading for this long
 * is cancelled rather than buffered without end. */
#define JOB_MAX_PENDING (16u << 20)

int64_t rt_now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

int64_t rt_now_ms(void)
{
    return rt_now_ns() / 1000000;
}

static void job_free(runtime_job *job)
{
    mlx_free(job->model);
    mlx_free(job->prompt);
    mlx_free(job->system);
    for (size_t i = 0; i < job->n_messages; i++) {
        mlx_free((char *)job->messages[i].role);
        mlx_free((char *)job->messages[i].content);
    }
    mlx_free(job->messages);
    for (size_t i = 0; i < job->n_stops; i++)
        mlx_free(job->stops[i]);
    mlx_free(job->stops);
    mlx_buf_fini(&job->text);
    mlx_free(job->tokens);
    mlx_free(job->taken_text);
    mlx_free(job->taken_tokens);
    pthread_cond_destroy(&job->cond);
    pthread_mutex_destroy(&job->mtx);
    mlx_free(job);
}

static char *dup_or_null(const char *s, bool *failed)
{
    if (s == NULL)
        return NULL;
    char *d = mlx_strdup(s);
    *failed |= d == NULL;
    return d;
}

runtime_job *rt_job_new(const runtime_request *req)
{
    runtime_job *job = mlx_calloc(1, sizeof *job);
    if (job == NULL)
        return NULL;
    pthread_mutex_init(&job->mtx, NULL);
    pthread_cond_init(&job->cond, NULL);
    mlx_buf_init(&job->text, JOB_MAX_PENDING);
    job->refs = 1;
    bool failed = false;
    job->model = dup_or_null(req->model, &failed);
    job->prompt = dup_or_null(req->prompt, &failed);
    job->system = dup_or_null(req->system, &failed);
    if (req->n_messages > 0) {
        job->messages = mlx_calloc(req->n_messages, sizeof *job->messages);
        failed |= job->messages == NULL;
        for (size_t i = 0; job->messages != NULL && i < req->n_messages; i++) {
            job->messages[i].role = dup_or_null(req->messages[i].role, &failed);
            job->messages[i].content = dup_or_null(req->messages[i].content, &failed);
            job->n_messages = i + 1;
        }
    }
    if (req->n_stops > 0) {
        job->stops = mlx_calloc(req->n_stops, sizeof *job->stops);
        failed |= job->stops == NULL;
        for (size_t i = 0; job->stops != NULL && i < req->n_stops; i++) {
            job->stops[i] = dup_or_null(req->stops[i], &failed);
            job->n_stops = i + 1;
        }
    }
    if (failed) {
        job_free(job);
        return NULL;
    }
    job->as_user = req->as_user;
    job->sampling = req->sampling;
    job->max_tokens = req->max_tokens;
    job->top_logprobs = req->top_logprobs;
    job->keep_alive_ms = req->keep_alive_ms;
    snprintf(job->request_id, sizeof job->request_id, "%s",
             req->request_id != NULL ? req->request_id : "");
    job->submit_ns = rt_now_ns();
    return job;
}

void rt_job_release(runtime_job *job)
{
    pthread_mutex_lock(&job->mtx);
    bool last = --job->refs == 0;
    pthread_mutex_unlock(&job->mtx);
    if (last)
        job_free(job);
}

void rt_job_started(runtime_job *job, uint32_t prompt_tokens)
{
    pthread_mutex_lock(&job->mtx);
    job->started = true;
    job->prompt_tokens = prompt_tokens;
    pthread_cond_broadcast(&job->cond);
    pthread_mutex_unlock(&job->mtx);
}

int rt_job_emit(runtime_job *job, const char *text, size_t len, const runtime_token *tok)
{
    int rc = 0;
    pthread_mutex_lock(&job->mtx);
    if (len > 0)
        rc = mlx_buf_append(&job->text, text, len);
    if (rc == 0 && tok != NULL) {
        if (job->n_tokens == job->cap_tokens) {
            size_t cap = job->cap_tokens ? job->cap_tokens * 2 : 8;
            runtime_token *grown = mlx_realloc(job->tokens, cap * sizeof *grown);
            if (grown == NULL)
                rc = MLX_ENOMEM;
            else {
                job->tokens = grown;
                job->cap_tokens = cap;
            }
        }
        if (rc == 0)
            job->tokens[job->n_tokens++] = *tok;
    }
    pthread_cond_broadcast(&job->cond);
    pthread_mutex_unlock(&job->mtx);
    return rc;
}

void rt_job_finish(runtime_job *job, const runtime_event *end)
{
    pthread_mutex_lock(&job->mtx);
    if (!job->finished) {
        job->end = *end;
        job->finished = true;
    }
    pthread_cond_broadcast(&job->cond);
    pthread_mutex_unlock(&job->mtx);
}

void rt_job_fail(runtime_job *job, int code, const char *fmt, ...)
{
    runtime_event ev;
    memset(&ev, 0, sizeof ev);
    ev.kind = RUNTIME_ERROR;
    ev.error = code;
    ev.model = job->model;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(ev.message, sizeof ev.message, fmt, ap);
    va_end(ap);
    rt_job_finish(job, &ev);
}

/* Hands out what gathered (under mtx): the text and tokens move to the
 * taken buffers, which live until the next call. */
static void take_text(runtime_job *job, runtime_event *ev)
{
    mlx_free(job->taken_text);
    mlx_free(job->taken_tokens);
    job->taken_text = NULL;
    job->n_taken = job->n_tokens;
    job->taken_tokens = job->tokens;
    job->tokens = NULL;
    job->n_tokens = job->cap_tokens = 0;
    size_t len = job->text.len;
    job->taken_text = mlx_buf_take(&job->text);
    memset(ev, 0, sizeof *ev);
    ev->kind = RUNTIME_TEXT;
    ev->model = job->model;
    ev->text = job->taken_text != NULL ? job->taken_text : "";
    ev->len = job->taken_text != NULL ? len : 0;
    ev->tokens = job->taken_tokens;
    ev->n_tokens = job->n_taken;
}

int runtime_job_next(runtime_job *job, runtime_event *ev, int timeout_ms)
{
    struct timespec until;
    clock_gettime(CLOCK_REALTIME, &until);
    if (timeout_ms >= 0) {
        until.tv_sec += timeout_ms / 1000;
        until.tv_nsec += (long)(timeout_ms % 1000) * 1000000;
        if (until.tv_nsec >= 1000000000) {
            until.tv_sec++;
            until.tv_nsec -= 1000000000;
        }
    }
    int rc = 0;
    pthread_mutex_lock(&job->mtx);
    for (;;) {
        if (job->started && !job->started_taken) {
            job->started_taken = true;
            memset(ev, 0, sizeof *ev);
            ev->kind = RUNTIME_STARTED;
            ev->model = job->model;
            ev->prompt_tokens = job->prompt_tokens;
            break;
        }
        if (job->text.len > 0 || job->n_tokens > 0) {
            take_text(job, ev);
            break;
        }
        if (job->finished) {
            *ev = job->end;
            break;
        }
        int w = timeout_ms < 0 ? pthread_cond_wait(&job->cond, &job->mtx)
                               : pthread_cond_timedwait(&job->cond, &job->mtx, &until);
        if (w != 0 && !(job->text.len > 0 || job->n_tokens > 0 || job->finished ||
                        (job->started && !job->started_taken))) {
            rc = MLX_ETIMEDOUT;
            break;
        }
    }
    pthread_mutex_unlock(&job->mtx);
    return rc;
}

void runtime_job_cancel(runtime_job *job)
{
    atomic_store(&job->cancelled, true);
}

void runtime_job_free(runtime_job *job)
{
    if (job == NULL)
        return;
    runtime_job_cancel(job);
    rt_job_release(job);
}
