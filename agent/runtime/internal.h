/*
 * internal.h — shared by the files of agent/runtime; not included elsewhere.
 *
 *   runtime.c   start, stop, submit: finding or loading the model, queueing
 *   models.c    loading and unloading: memory budget, LRU, keep-alive
 *   sched.c     a loaded model's scheduler thread: slots, steps, sampling
 *   job.c       a request's events, handed from the scheduler to its caller
 *
 * Locks, always taken in this order: runtime.mtx, then a model's mtx, then
 * a job's mtx. The scheduler never takes runtime.mtx.
 */
#ifndef MLX_AGENT_RUNTIME_INTERNAL_H
#define MLX_AGENT_RUNTIME_INTERNAL_H

#include <pthread.h>
#include <stdatomic.h>

#include "agent/runtime/runtime.h"
#include "common/buf.h"

/* A prompt fed in pieces of this many tokens per step, so one long prompt
 * does not stall the other slots' decoding for its whole length. */
#define RT_PREFILL_CHUNK 128

struct runtime_job {
    pthread_mutex_t mtx;
    pthread_cond_t cond;
    /* The request, copied. */
    char *model;
    char *prompt;
    engine_msg *messages; /* role and content owned */
    size_t n_messages;
    bool as_user;
    char *system;
    engine_sampling sampling;
    int32_t max_tokens;
    char **stops;
    size_t n_stops;
    int32_t top_logprobs;
    int64_t keep_alive_ms;
    char request_id[MLX_MAX_REQUEST_ID + 1];
    int64_t submit_ns; /* monotonic */
    int64_t load_ns;   /* spent loading the model for it, if it did */
    /* Produced by the scheduler, taken by the caller (under mtx). */
    bool started, started_taken;
    uint32_t prompt_tokens;
    mlx_buf text;          /* released, not yet taken */
    runtime_token *tokens; /* produced, not yet taken */
    size_t n_tokens, cap_tokens;
    bool finished;
    runtime_event end; /* DONE or ERROR */
    /* What the last runtime_job_next handed out, kept until the next call. */
    char *taken_text;
    runtime_token *taken_tokens;
    size_t n_taken;
    /* Lifetime: the caller's reference and, while queued or in a slot, the
     * scheduler's. The last to let go frees. */
    atomic_bool cancelled;
    int refs; /* under mtx */
    runtime_job *next; /* in a model's queue */
};

/* A model loaded for serving. */
typedef struct rt_model {
    runtime *rt;
    char name[MLX_MAX_MODEL_NAME + 1];
    char path[1024];
    engine_model *em;
    uint64_t memory_bytes; /* weights, workspace, and every slot's KV cache */
    int64_t loaded_unix_ms;
    int64_t load_ns;
    pthread_t thread;
    bool thread_started;
    /* Under mtx. */
    pthread_mutex_t mtx;
    pthread_cond_t cond;
    runtime_job *queue_head, *queue_tail;
    size_t queued, running;
    bool stop;
    int64_t last_used_ms;  /* monotonic: when it last had a request */
    int64_t keep_alive_ms; /* of the last request */
    double tokens_per_s;   /* decayed average of recent steps */
    struct rt_model *next;
} rt_model;

struct runtime {
    runtime_config cfg; /* defaults filled in */
    pthread_mutex_t mtx;
    pthread_cond_t loaded; /* a load finished (for others waiting on it) */
    rt_model *models;      /* loaded, most recently used first */
    char loading[MLX_MAX_MODEL_NAME + 1]; /* a model being loaded, or "" */
    bool stopping;
    pthread_t janitor;
    pthread_cond_t janitor_wake;
};

/* ---- job.c ---------------------------------------------------------------- */

/* A job for req with one reference (the caller's). NULL when out of memory. */
runtime_job *rt_job_new(const runtime_request *req);
/* Drops a reference; the last frees. */
void rt_job_release(runtime_job *job);
/* The scheduler's side: the prompt is in; text and tokens as they come;
 * the end (DONE or ERROR). */
void rt_job_started(runtime_job *job, uint32_t prompt_tokens);
int rt_job_emit(runtime_job *job, const char *text, size_t len, const runtime_token *tok);
void rt_job_finish(runtime_job *job, const runtime_event *end);
/* Ends job with an error (code and a sentence). */
void rt_job_fail(runtime_job *job, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* ---- models.c ------------------------------------------------------------- */

/* Queues job on its model, loading the model first when it is not loaded
 * (within the budget, unloading idle ones to make room); job->load_ns gets
 * the load's time when it loaded. MLX_EBUSY: the queue is full or there is
 * no room now; other errors say why the model cannot be had. */
int rt_models_submit(runtime *rt, runtime_job *job, mlx_err *err);
/* Unloads models whose keep-alive has passed (runtime.mtx held). */
void rt_models_expire(runtime *rt, int64_t now_ms);
/* Stops a model's scheduler and frees it (runtime.mtx held, model unlinked). */
void rt_model_unload(rt_model *m);

/* ---- sched.c -------------------------------------------------------------- */

/* Starts m's scheduler thread. */
int rt_sched_start(rt_model *m, mlx_err *err);
/* Queues job on m (takes a reference); MLX_EBUSY when the queue is full. */
int rt_sched_queue(rt_model *m, runtime_job *job, mlx_err *err);

/* Monotonic nanoseconds and milliseconds. */
int64_t rt_now_ns(void);
int64_t rt_now_ms(void);

#endif
