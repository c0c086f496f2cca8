/*
 * runtime.h — the models an agent serves and the generations it runs on
 * them, as the HTTP API (and later the coordinator's data plane) sees them.
 *
 * Models are loaded from the store on first use and kept while they are
 * used and for keep_alive after (per request, as Ollama does); loading one
 * that would pass the memory budget or the loaded-model count unloads the
 * least recently used idle ones first, and a model that cannot fit at all
 * is refused with a sentence.
 *
 * Each loaded model has its own scheduler thread with `parallel` slots and
 * a bounded queue. Every step it feeds all running slots together, in one
 * engine_feed_batch — a new request's prompt (copying a shared prefix where
 * one exists) beside the others' next tokens — then samples each slot's
 * next token, so requests join and leave between steps (continuous
 * batching) and a step costs little more for sixteen requests than for
 * one. A full queue refuses at once (MLX_EBUSY: the HTTP layer answers 503
 * with Retry-After).
 *
 * A request produces events, in order, which its caller reads with
 * runtime_job_next from its own thread (an HTTP connection's): STARTED
 * once the model is loaded and the prompt admitted (or ERROR instead:
 * unknown model, prompt longer than the context, …), then TEXT events as
 * text becomes final (never half a UTF-8 character, never text that may
 * still turn out to be part of a stop string), then DONE with the finish
 * reason, the token counts and the timings. A caller that goes away
 * cancels: the slot is freed before the next token.
 *
 * Lifecycle:
 *   1. runtime_start; runtime_submit any number of times from any thread.
 *   2. For each job: runtime_job_next until DONE or ERROR (or
 *      runtime_job_cancel), then runtime_job_free.
 *   3. runtime_stop cancels what still runs, waits for the schedulers and
 *      unloads every model; jobs not yet freed get ERROR and must still be
 *      freed.
 *
 * Thread safety: every function may be called from any thread; a job
 * belongs to the thread that submitted it (next, cancel and free), but
 * runtime_job_cancel may be called from another.
 */
#ifndef MLX_AGENT_RUNTIME_H
#define MLX_AGENT_RUNTIME_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "agent/engine/engine.h"
#include "common/err.h"

typedef struct runtime runtime;

typedef struct runtime_config {
    const char *data_dir;     /* the store models are found in (borrowed) */
    uint64_t memory_budget;   /* bytes all loaded models may use; 0: 75% of RAM */
    int max_loaded;           /* models loaded at once; 0: 3 */
    int parallel;             /* slots per model decoded together; 0: 4 */
    int queue_limit;          /* requests waiting per model beyond the slots; 0: 64 */
    int64_t keep_alive_ms;    /* idle time before a model is unloaded; -1: 5 min */
    int threads;              /* engine threads; 0: one per performance core */
    uint32_t n_ctx;           /* tokens per slot; 0: the model's, at most 4096 */
    bool store_only;          /* models only by store name, never a file path
                                 (what a network API may name) */
    /* Called from a scheduler thread for each token a request generates:
     * first, with the seconds since the request was submitted (time to
     * first token); then with the seconds since its previous token. May
     * be NULL; must be quick and thread-safe. */
    void (*observe_token)(void *observer, const char *model, bool first, double seconds);
    void *observer;
} runtime_config;

/* *out: runtime_stop. */
int runtime_start(const runtime_config *cfg, runtime **out, mlx_err *err);
void runtime_stop(runtime *rt);

/* A generation. Strings and arrays are borrowed until runtime_submit
 * returns (it copies what it keeps). */
typedef struct runtime_request {
    const char *model;         /* a model of the store, or a GGUF path */
    const char *prompt;        /* a completion's text; NULL for a chat */
    const engine_msg *messages; /* a chat, rendered in the model's format */
    size_t n_messages;
    bool as_user;              /* prompt is a user's turn: rendered in the
                                  model's chat format (after system, when
                                  given) if the model has a chat template,
                                  else as is (Ollama's generate) */
    const char *system;        /* with as_user; may be NULL */
    engine_sampling sampling;
    int32_t max_tokens;        /* -1: until the model stops or the context ends;
                                  0: the prompt only (DONE with "length") */
    const char *const *stops;
    size_t n_stops;
    int32_t top_logprobs;      /* 0: no log probabilities; k > 0: each token's,
                                  with its k most likely alternatives (at most
                                  RUNTIME_MAX_TOP_LOGPROBS); -1: each token's
                                  alone */
    int64_t keep_alive_ms;     /* -1: the runtime's; 0: unload when done */
    const char *request_id;    /* for logs; may be NULL */
} runtime_request;

#define RUNTIME_MAX_TOP_LOGPROBS 20

typedef enum runtime_event_kind {
    RUNTIME_STARTED, /* model loaded, prompt admitted */
    RUNTIME_TEXT,    /* text that is final */
    RUNTIME_DONE,    /* the end, with usage and timings */
    RUNTIME_ERROR,   /* the end, with a code and a sentence */
} runtime_event_kind;

/* Bytes kept for the text of a token's alternatives, one after another. */
#define RUNTIME_TOP_TEXT_MAX 2048

/* One generated token and its log probabilities (when asked for). */
typedef struct runtime_token {
    int32_t id;
    char text[ENGINE_MAX_PIECE]; /* its piece, NUL-terminated (may be a part
                                    of a UTF-8 character) */
    size_t len;                  /* of text (a piece may hold a NUL byte) */
    float logprob;
    engine_logprob top[RUNTIME_MAX_TOP_LOGPROBS];
    size_t n_top;
    /* The pieces of top[i], top_len[i] bytes each, one after another in
     * top_text; a piece past RUNTIME_TOP_TEXT_MAX is cut short. */
    uint16_t top_len[RUNTIME_MAX_TOP_LOGPROBS];
    char top_text[RUNTIME_TOP_TEXT_MAX];
} runtime_token;

typedef struct runtime_event {
    runtime_event_kind kind;
    /* RUNTIME_STARTED */
    const char *model;        /* the name asked for */
    uint32_t prompt_tokens;   /* also set for DONE */
    /* RUNTIME_TEXT: the text, and the tokens it came from when log
     * probabilities were asked for; borrowed until the next call. */
    const char *text;
    size_t len;
    const runtime_token *tokens;
    size_t n_tokens;
    /* RUNTIME_DONE */
    const char *finish_reason; /* "stop" (end of generation or a stop
                                  string) or "length" (max_tokens or the
                                  context) */
    uint32_t completion_tokens;
    int64_t load_ns, prompt_ns, gen_ns, total_ns; /* Ollama's durations */
    /* RUNTIME_ERROR: MLX_ENOENT (unknown model), MLX_ETOOBIG (prompt past
     * the context: the sentence says by how much), MLX_EINVAL, MLX_ENOMEM
     * (the model cannot fit), MLX_ECLOSED (the runtime stopped), … */
    int error;
    char message[MLX_MAX_ERR_MSG];
} runtime_event;

typedef struct runtime_job runtime_job;

/* Queues a request. Fails at once, with a sentence, for a full queue
 * (MLX_EBUSY) or invalid settings (MLX_EINVAL); everything else arrives as
 * an ERROR event. *out: runtime_job_free. */
int runtime_submit(runtime *rt, const runtime_request *req, runtime_job **out,
                   mlx_err *err);

/* Waits up to timeout_ms (-1: no limit) for the next event. Returns 0 with
 * *ev filled, MLX_ETIMEDOUT when none came in time. After DONE or ERROR
 * every call returns that event again. */
int runtime_job_next(runtime_job *job, runtime_event *ev, int timeout_ms);

/* The caller is gone: stop generating (within one token) and free the
 * slot. Safe from any thread, any number of times. */
void runtime_job_cancel(runtime_job *job);

/* Cancels if still running, and frees. */
void runtime_job_free(runtime_job *job);

/* ---- what is loaded and what runs, for /api/ps, /metrics, heartbeats ----- */

typedef struct runtime_model_status {
    char name[MLX_MAX_MODEL_NAME + 1];
    char path[1024];
    engine_info info;         /* arch, sizes, context, chat format… */
    uint64_t memory_bytes;    /* weights and KV caches */
    int64_t loaded_unix_ms;
    int64_t expires_unix_ms;  /* when it will be unloaded if it stays idle; 0
                                 while it has requests */
    uint32_t running, queued;
    double tokens_per_s;      /* generation, over the last few seconds */
} runtime_model_status;

typedef struct runtime_status {
    runtime_model_status *models; /* mlx_free */
    size_t n_models;
    uint64_t memory_budget;
} runtime_status;

int runtime_get_status(runtime *rt, runtime_status *out, mlx_err *err);
void runtime_status_free(runtime_status *s);

/* Loads model now if it is not loaded (Ollama's request without a
 * prompt), and sets how long it stays once idle: keep_alive_ms -1 leaves
 * it as it is, 0 unloads it at once unless requests use it. *load_ns (may
 * be NULL): the load's time, 0 when it was loaded already. */
int runtime_load(runtime *rt, const char *model, int64_t keep_alive_ms, int64_t *load_ns,
                 mlx_err *err);

#endif
