/*
 * dataplane.c — Infer, Next and Cancel from the coordinator, answered from
 * the runtime (see dataplane.h for the exchange).
 *
 * Each worker thread owns one NNG context and a callback-less aio and runs
 * receive, handle, send in a loop. Receives time out every WAKE_MS so a
 * worker notices stopping, and the workers also forget idle generations
 * (at most every WAKE_MS, whichever worker gets there first), so no extra
 * thread is needed.
 *
 * A generation (struct gen) is referenced by the table and by each handler
 * using it; the last reference frees it. Text taken from the runtime job
 * waits in gen->pending until a Next sends it, at most MLX_MAX_DATA_CHUNK
 * bytes a chunk, cut between UTF-8 characters.
 */
#include "agent/dataplane/dataplane.h"

#include <nng/nng.h>
#include <nng/supplemental/util/platform.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>

#include "common/alloc.h"
#include "common/buf.h"
#include "common/clock.h"
#include "common/log.h"
#include "common/nng_util.h"
#include "common/parse.h"
#include "proto/wire.h"

#define MOD "dataplane"
/* How often an idle worker wakes to look at stopping and idle generations;
 * also the slice a long poll waits in. */
#define WAKE_MS 100
/* How long stopping waits for NNG to close the socket (see mlx_nng_close). */
#define CLOSE_TIMEOUT_MS 2000
#define DEFAULT_IDLE_MS  30000
#define DEFAULT_POLL_MS  1000
/* Text a generation may hold that its coordinator has not fetched; the job
 * itself cancels a reader that falls further behind. */
#define PENDING_MAX (64u << 20)

/* One generation the coordinator asked for. */
struct gen {
    char id[MLX_MAX_REQUEST_ID + 1];
    char model[MLX_MAX_MODEL_NAME + 1];
    runtime_job *job;
    int refs;        /* guarded by dataplane.mtx */
    int64_t last_ms; /* when it was last asked about; dataplane.mtx */
    int64_t start_ns;
    _Atomic bool cancelled; /* the coordinator sent Cancel */
    pthread_mutex_t use;    /* one Next at a time; guards what follows */
    uint32_t prompt_tokens;
    mlx_buf pending; /* text taken from the job, not yet sent */
};

struct worker {
    dataplane *dp;
    nng_ctx ctx;
    nng_aio *aio;
    nng_thread *thread;
};

struct dataplane {
    /* Set at start; read-only afterwards. */
    runtime *rt;
    char *node_id;
    char *url;
    size_t max_msg;
    int idle_ms, poll_ms;
    nng_socket sock;
    struct worker workers[MLX_DATA_CONTEXTS];
    _Atomic bool stopping;

    pthread_mutex_t mtx; /* guards the table, refs, last_ms, last_reap_ms */
    struct gen *table[MLX_MAX_DATA_REQUESTS];
    size_t n_gens;
    int64_t last_reap_ms;
};

/* ---- the table of generations ------------------------------------------ */

static void gen_release(dataplane *dp, struct gen *g)
{
    pthread_mutex_lock(&dp->mtx);
    bool last = --g->refs == 0;
    pthread_mutex_unlock(&dp->mtx);
    if (!last)
        return;
    runtime_job_free(g->job); /* cancels if still running */
    mlx_buf_fini(&g->pending);
    pthread_mutex_destroy(&g->use);
    mlx_free(g);
}

/* The generation named id, referenced (gen_release), or NULL. */
static struct gen *gen_find(dataplane *dp, const char *id)
{
    struct gen *found = NULL;
    pthread_mutex_lock(&dp->mtx);
    for (size_t i = 0; i < MLX_MAX_DATA_REQUESTS && found == NULL; i++) {
        if (dp->table[i] != NULL && strcmp(dp->table[i]->id, id) == 0) {
            found = dp->table[i];
            found->refs++;
            found->last_ms = mlx_time_mono_ms();
        }
    }
    pthread_mutex_unlock(&dp->mtx);
    return found;
}

/* Drops g from the table (once; later calls do nothing). */
static void gen_forget(dataplane *dp, struct gen *g)
{
    bool dropped = false;
    pthread_mutex_lock(&dp->mtx);
    for (size_t i = 0; i < MLX_MAX_DATA_REQUESTS; i++) {
        if (dp->table[i] == g) {
            dp->table[i] = NULL;
            dp->n_gens--;
            dropped = true;
            break;
        }
    }
    pthread_mutex_unlock(&dp->mtx);
    if (dropped)
        gen_release(dp, g);
}

/* Cancels and forgets generations nobody has asked about for idle_ms. */
static void reap_idle(dataplane *dp)
{
    struct gen *idle[64];
    size_t n = 0;
    int64_t now = mlx_time_mono_ms();
    pthread_mutex_lock(&dp->mtx);
    if (now - dp->last_reap_ms >= WAKE_MS) {
        dp->last_reap_ms = now;
        for (size_t i = 0; i < MLX_MAX_DATA_REQUESTS && n < 64; i++) {
            struct gen *g = dp->table[i];
            /* refs > 1: a handler is using it right now */
            if (g != NULL && g->refs == 1 && now - g->last_ms >= dp->idle_ms) {
                dp->table[i] = NULL;
                dp->n_gens--;
                idle[n++] = g;
            }
        }
    }
    pthread_mutex_unlock(&dp->mtx);
    for (size_t i = 0; i < n; i++) {
        mlx_log_warn(MOD, "generation forgotten: no Next came; cancelled",
                     "id=%s model=\"%s\" idle_ms=%d", idle[i]->id, idle[i]->model,
                     dp->idle_ms);
        gen_release(dp, idle[i]);
    }
}

/* ---- replies ------------------------------------------------------------ */

/* Everything a handler needs to build its reply. */
struct exchange {
    dataplane *dp;
    const wire_envelope *req;
    wire_envelope reply;
    Fleet__Error error;
    Fleet__Ack ack;
    Fleet__InferAccepted accepted;
    Fleet__TokenChunk chunk;
    char message[MLX_MAX_ERR_MSG];
};

static void refuse(struct exchange *x, Fleet__Error__Code code, uint32_t status,
                   const char *fmt, ...) __attribute__((format(printf, 4, 5)));

static void refuse(struct exchange *x, Fleet__Error__Code code, uint32_t status,
                   const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(x->message, sizeof x->message, fmt, ap);
    va_end(ap);
    wire_set_error(&x->reply, &x->error, code, x->message);
    x->error.status = status;
}

/* An MLX_E* code from the runtime as the Error the coordinator maps to an
 * HTTP answer (the same statuses as agent/http's). */
static void refuse_code(struct exchange *x, int code, const char *message)
{
    Fleet__Error__Code c;
    uint32_t status;
    switch (code) {
    case MLX_EINVAL:
    case MLX_ETOOBIG:
        c = FLEET__ERROR__CODE__BAD_REQUEST;
        status = 400;
        break;
    case MLX_ENOENT:
        c = FLEET__ERROR__CODE__NOT_FOUND;
        status = 404;
        break;
    case MLX_EBUSY:
    case MLX_ECLOSED:
        c = FLEET__ERROR__CODE__BUSY;
        status = 503;
        break;
    case MLX_ENOMEM:
        c = FLEET__ERROR__CODE__INTERNAL;
        status = 507;
        break;
    default:
        c = FLEET__ERROR__CODE__INTERNAL;
        status = 500;
        break;
    }
    refuse(x, c, status, "%s", message);
}

/* ---- Infer -------------------------------------------------------------- */

/* A request id fit for the table and the logs: printable, no spaces or
 * quotes, at most MLX_MAX_REQUEST_ID bytes. */
static bool request_id_ok(const char *id)
{
    size_t n = strlen(id);
    return n > 0 && n <= MLX_MAX_REQUEST_ID &&
           mlx_text_is_clean(id, MLX_MAX_REQUEST_ID) && strpbrk(id, " \"\\") == NULL;
}

/* Fills req from the Infer, refusing what the HTTP API would refuse.
 * msgs and stops are the caller's arrays, big enough. */
static int read_infer(const Fleet__Infer *in, runtime_request *req, engine_msg *msgs,
                      const char **stops, mlx_err *err)
{
    if (in->model[0] == '\0')
        return mlx_err_set(err, MLX_EINVAL,
                           "'model' is empty; name one of the models the agent's store "
                           "holds (mlx-agent cache list)");
    if (strlen(in->model) > MLX_MAX_MODEL_NAME ||
        !mlx_text_is_clean(in->model, MLX_MAX_MODEL_NAME))
        return mlx_err_set(err, MLX_EINVAL,
                           "'model' is not a model name (printable text of at most %d "
                           "bytes)",
                           MLX_MAX_MODEL_NAME);
    if (in->n_messages > 0 && in->prompt[0] != '\0')
        return mlx_err_set(err, MLX_EINVAL,
                           "the request has both a prompt and messages; send one");
    if (in->n_messages > MLX_MAX_INFER_MESSAGES)
        return mlx_err_set(err, MLX_EINVAL, "%zu messages are more than the %d allowed",
                           in->n_messages, MLX_MAX_INFER_MESSAGES);
    for (size_t i = 0; i < in->n_messages; i++) {
        const Fleet__ChatMessage *m = in->messages[i];
        if (m == NULL || m->role[0] == '\0')
            return mlx_err_set(err, MLX_EINVAL,
                               "message %zu has no role; give \"system\", \"user\" or "
                               "\"assistant\"",
                               i);
        msgs[i] = (engine_msg){.role = m->role, .content = m->content};
    }
    if (in->n_stop > MLX_MAX_INFER_STOPS)
        return mlx_err_set(err, MLX_EINVAL,
                           "%zu stop strings are more than the %d allowed", in->n_stop,
                           MLX_MAX_INFER_STOPS);
    for (size_t i = 0; i < in->n_stop; i++) {
        if (in->stop[i][0] == '\0')
            return mlx_err_set(err, MLX_EINVAL, "stop string %zu is empty; leave it out",
                               i);
        stops[i] = in->stop[i];
    }
    if (in->max_tokens < -1)
        return mlx_err_set(err, MLX_EINVAL,
                           "max_tokens %d is negative; give a count, or 0 for no limit",
                           (int)in->max_tokens);
    if (in->keep_alive_ms < -1)
        return mlx_err_set(err, MLX_EINVAL,
                           "keep_alive_ms %lld is below -1 (unload when done)",
                           (long long)in->keep_alive_ms);
    req->model = in->model;
    if (in->n_messages > 0) {
        req->messages = msgs;
        req->n_messages = in->n_messages;
    } else {
        req->prompt = in->prompt;
        req->as_user = in->as_user;
        req->system = in->system[0] != '\0' ? in->system : NULL;
    }
    req->max_tokens = in->max_tokens > 0 ? in->max_tokens : -1;
    req->stops = stops;
    req->n_stops = in->n_stop;
    req->keep_alive_ms = in->keep_alive_ms == 0    ? -1
                         : in->keep_alive_ms == -1 ? 0
                                                   : in->keep_alive_ms;
    req->sampling = engine_sampling_defaults();
    const Fleet__Sampling *s = in->sampling;
    if (s != NULL) {
        req->sampling.temperature = s->temperature;
        req->sampling.top_k = s->top_k;
        req->sampling.top_p = s->top_p;
        req->sampling.min_p = s->min_p;
        req->sampling.repeat_penalty = s->repeat_penalty;
        req->sampling.repeat_last_n = s->repeat_last_n;
        req->sampling.presence_penalty = s->presence_penalty;
        req->sampling.frequency_penalty = s->frequency_penalty;
        req->sampling.seed = s->seed;
    }
    return engine_sampling_check(&req->sampling, err);
}

/* Puts g in the table with its reference; MLX_EEXIST or MLX_EBUSY. */
static int gen_add(dataplane *dp, struct gen *g)
{
    int rc = MLX_EBUSY;
    pthread_mutex_lock(&dp->mtx);
    size_t free_at = MLX_MAX_DATA_REQUESTS;
    for (size_t i = 0; i < MLX_MAX_DATA_REQUESTS; i++) {
        if (dp->table[i] == NULL) {
            if (free_at == MLX_MAX_DATA_REQUESTS)
                free_at = i;
        } else if (strcmp(dp->table[i]->id, g->id) == 0) {
            rc = MLX_EEXIST;
            free_at = MLX_MAX_DATA_REQUESTS;
            break;
        }
    }
    if (free_at < MLX_MAX_DATA_REQUESTS) {
        dp->table[free_at] = g;
        dp->n_gens++;
        g->refs++;
        g->last_ms = mlx_time_mono_ms();
        rc = 0;
    }
    pthread_mutex_unlock(&dp->mtx);
    return rc;
}

static void on_infer(struct exchange *x)
{
    dataplane *dp = x->dp;
    const char *id = x->req->request_id;
    if (!request_id_ok(id)) {
        refuse(x, FLEET__ERROR__CODE__BAD_MESSAGE, 400,
               "an Infer needs a request id of 1 to %d printable characters without "
               "spaces or quotes",
               MLX_MAX_REQUEST_ID);
        return;
    }
    engine_msg *msgs = NULL;
    const char **stops = NULL;
    runtime_request req = {.top_logprobs = 0, .request_id = id};
    mlx_err err;
    mlx_err_clear(&err);
    const Fleet__Infer *in = x->req->infer;
    size_t n_msgs = in->n_messages <= MLX_MAX_INFER_MESSAGES ? in->n_messages : 0;
    if (n_msgs > 0)
        msgs = mlx_calloc(n_msgs, sizeof *msgs);
    stops = mlx_calloc(MLX_MAX_INFER_STOPS + 1, sizeof *stops);
    int rc = (n_msgs > 0 && msgs == NULL) || stops == NULL
                 ? mlx_err_set(&err, MLX_ENOMEM, "out of memory")
                 : read_infer(in, &req, msgs, stops, &err);
    struct gen *g = NULL;
    if (rc == 0) {
        g = mlx_calloc(1, sizeof *g);
        if (g == NULL)
            rc = mlx_err_set(&err, MLX_ENOMEM, "out of memory");
    }
    if (rc == 0) {
        snprintf(g->id, sizeof g->id, "%s", id);
        snprintf(g->model, sizeof g->model, "%s", in->model);
        pthread_mutex_init(&g->use, NULL);
        mlx_buf_init(&g->pending, PENDING_MAX);
        g->refs = 1; /* ours, while we answer */
        g->start_ns = mlx_time_mono_ns();
        rc = runtime_submit(dp->rt, &req, &g->job, &err);
        if (rc != 0) {
            g->refs = 0;
            mlx_buf_fini(&g->pending);
            pthread_mutex_destroy(&g->use);
            mlx_free(g);
            g = NULL;
        }
    }
    mlx_free(msgs);
    mlx_free(stops);
    if (rc != 0) {
        mlx_log_info(MOD, "infer refused", "id=%s model=\"%.200s\" err=\"%s\"", id,
                     in->model, mlx_err_text(&err, rc));
        refuse_code(x, rc, mlx_err_text(&err, rc));
        return;
    }
    rc = gen_add(dp, g);
    if (rc != 0) {
        if (rc == MLX_EEXIST)
            refuse(x, FLEET__ERROR__CODE__BAD_REQUEST, 409,
                   "request id %s is already running on this agent; give each "
                   "generation its own id",
                   id);
        else
            refuse(x, FLEET__ERROR__CODE__BUSY, 503,
                   "the agent already tracks %d generations; retry when some finish",
                   MLX_MAX_DATA_REQUESTS);
        gen_release(dp, g);
        return;
    }
    /* Wait for the model to load and the prompt to be admitted, so that an
     * unknown model or a prompt past the context is this Infer's answer. */
    runtime_event ev;
    pthread_mutex_lock(&g->use);
    int64_t deadline = mlx_time_mono_ms() + dp->poll_ms;
    bool got = false;
    while (!got && !atomic_load(&dp->stopping) && mlx_time_mono_ms() < deadline)
        got = runtime_job_next(g->job, &ev, WAKE_MS) == 0;
    if (got && ev.kind == RUNTIME_STARTED)
        g->prompt_tokens = ev.prompt_tokens;
    pthread_mutex_unlock(&g->use);
    /* STARTED or ERROR comes first, nothing else; none yet: still loading. */
    if (got && ev.kind == RUNTIME_ERROR) {
        mlx_log_info(MOD, "infer refused", "id=%s model=\"%s\" err=\"%s\"", id, g->model,
                     ev.message);
        refuse_code(x, ev.error, ev.message);
        gen_forget(dp, g);
        gen_release(dp, g);
        return;
    }
    fleet__infer_accepted__init(&x->accepted);
    x->accepted.prompt_tokens = g->prompt_tokens;
    x->reply.body_case = FLEET__ENVELOPE__BODY_INFER_ACCEPTED;
    x->reply.infer_accepted = &x->accepted;
    mlx_log_debug(MOD, "infer accepted", "id=%s model=\"%s\" prompt_tokens=%u", id,
                  g->model, g->prompt_tokens);
    gen_release(dp, g);
}

/* ---- Next ----------------------------------------------------------------- */

/* Bytes of text to send now: at most max, cut before a UTF-8 character. */
static size_t chunk_len(const char *text, size_t len, size_t max)
{
    if (len <= max)
        return len;
    size_t cut = max;
    for (int back = 0; back < 3 && cut > 0 && ((unsigned char)text[cut] & 0xc0) == 0x80;
         back++)
        cut--;
    return cut > 0 ? cut : max;
}

/* Reads what the job has now, into g->pending; true with *end set when the
 * generation is over. Waits up to wait_ms for the first event. */
static bool gather(dataplane *dp, struct gen *g, int wait_ms, runtime_event *end)
{
    int64_t deadline = mlx_time_mono_ms() + wait_ms;
    for (;;) {
        int64_t left = deadline - mlx_time_mono_ms();
        int wait = g->pending.len > 0 || left <= 0 ? 0
                   : left < WAKE_MS                ? (int)left
                                                   : WAKE_MS;
        runtime_event ev;
        if (runtime_job_next(g->job, &ev, wait) != 0) {
            if (g->pending.len > 0 || left <= 0 || atomic_load(&dp->stopping))
                return false;
            continue;
        }
        switch (ev.kind) {
        case RUNTIME_STARTED:
            g->prompt_tokens = ev.prompt_tokens;
            break;
        case RUNTIME_TEXT:
            if (mlx_buf_append(&g->pending, ev.text, ev.len) != 0) {
                /* the coordinator fell far behind: stop rather than grow */
                runtime_job_cancel(g->job);
                memset(end, 0, sizeof *end);
                end->kind = RUNTIME_ERROR;
                end->error = MLX_ENOMEM;
                snprintf(end->message, sizeof end->message,
                         "more than %u bytes of text waited unfetched; the generation "
                         "was stopped",
                         PENDING_MAX);
                return true;
            }
            if (g->pending.len >= MLX_MAX_DATA_CHUNK)
                return false;
            break;
        case RUNTIME_DONE:
        case RUNTIME_ERROR:
            *end = ev;
            return true;
        }
    }
}

static void on_next(struct exchange *x)
{
    dataplane *dp = x->dp;
    struct gen *g = gen_find(dp, x->req->request_id);
    if (g == NULL) {
        refuse(x, FLEET__ERROR__CODE__NOT_FOUND, 404,
               "no generation '%.64s' on this agent: it finished, failed, or was "
               "forgotten after %d ms without a Next",
               x->req->request_id, dp->idle_ms);
        return;
    }
    pthread_mutex_lock(&g->use);
    runtime_event end;
    bool over = gather(dp, g, dp->poll_ms, &end);
    size_t n = chunk_len(g->pending.data != NULL ? g->pending.data : "", g->pending.len,
                         MLX_MAX_DATA_CHUNK);
    bool forget = false;
    if (over && end.kind == RUNTIME_ERROR && n == 0) {
        mlx_log_info(MOD, "generation failed", "id=%s model=\"%s\" err=\"%s\"", g->id,
                     g->model, end.message);
        refuse_code(x, end.error, end.message);
        forget = true;
    } else {
        fleet__token_chunk__init(&x->chunk);
        x->chunk.prompt_tokens = g->prompt_tokens;
        if (n > 0) {
            x->chunk.text.data = mlx_malloc(n);
            if (x->chunk.text.data == NULL) {
                refuse(x, FLEET__ERROR__CODE__INTERNAL, 507, "out of memory");
                pthread_mutex_unlock(&g->use);
                gen_release(dp, g);
                return;
            }
            memcpy(x->chunk.text.data, g->pending.data, n);
            x->chunk.text.len = n;
            memmove(g->pending.data, g->pending.data + n, g->pending.len - n);
            g->pending.len -= n;
        }
        /* The end goes out once every byte before it has; an error after
         * text is answered to the next Next (the job repeats its end). */
        if (over && end.kind == RUNTIME_DONE && g->pending.len == 0) {
            bool cancelled = atomic_load(&g->cancelled);
            x->chunk.done = true;
            x->chunk.finish_reason =
                (char *)(cancelled ? "cancelled" : end.finish_reason);
            if (end.prompt_tokens > 0)
                x->chunk.prompt_tokens = end.prompt_tokens;
            x->chunk.completion_tokens = end.completion_tokens;
            x->chunk.load_ns = end.load_ns;
            x->chunk.prompt_eval_ns = end.prompt_ns;
            x->chunk.eval_ns = end.gen_ns;
            x->chunk.total_ns = end.total_ns;
            mlx_log_info(MOD, "generation",
                         "id=%s model=\"%s\" finish=%s prompt=%u "
                         "completion=%u ms=%lld",
                         g->id, g->model, x->chunk.finish_reason, x->chunk.prompt_tokens,
                         end.completion_tokens,
                         (long long)((mlx_time_mono_ns() - g->start_ns) / 1000000));
            forget = true;
        }
        x->reply.body_case = FLEET__ENVELOPE__BODY_TOKEN_CHUNK;
        x->reply.token_chunk = &x->chunk;
    }
    pthread_mutex_unlock(&g->use);
    if (forget)
        gen_forget(dp, g);
    gen_release(dp, g);
}

/* ---- Cancel --------------------------------------------------------------- */

static void on_cancel(struct exchange *x)
{
    struct gen *g = gen_find(x->dp, x->req->request_id);
    if (g != NULL) { /* an unknown id is acked too: cancelling is idempotent */
        atomic_store(&g->cancelled, true);
        runtime_job_cancel(g->job);
        mlx_log_info(MOD, "generation cancelled", "id=%s model=\"%s\"", g->id, g->model);
        gen_release(x->dp, g);
    }
    fleet__ack__init(&x->ack);
    x->reply.body_case = FLEET__ENVELOPE__BODY_ACK;
    x->reply.ack = &x->ack;
}

/* ---- dispatch ------------------------------------------------------------- */

static Fleet__Error__Code refusal_code(int rc)
{
    if (rc == MLX_EVERSION)
        return FLEET__ERROR__CODE__VERSION;
    if (rc == MLX_ETOOBIG)
        return FLEET__ERROR__CODE__TOO_BIG;
    return FLEET__ERROR__CODE__BAD_MESSAGE;
}

/* Turns one request into its reply message; NULL only when out of memory
 * (the request then goes unanswered and the coordinator times out). */
static nng_msg *handle(dataplane *dp, nng_msg *msg)
{
    struct exchange x = {.dp = dp};
    fleet__envelope__init(&x.reply);
    mlx_err err;
    mlx_err_clear(&err);
    wire_envelope *req = NULL;
    int rc = wire_unpack(nng_msg_body(msg), nng_msg_len(msg), dp->max_msg, &req, &err);
    if (req != NULL)
        x.reply.request_id = req->request_id;
    x.req = req;

    if (rc != 0) {
        mlx_log_warn(MOD, "refused message", "bytes=%zu err=\"%s\"", nng_msg_len(msg),
                     err.msg);
        refuse(&x, refusal_code(rc), 400, "%s", err.msg);
    } else if (req->body_case == FLEET__ENVELOPE__BODY_INFER) {
        on_infer(&x);
    } else if (req->body_case == FLEET__ENVELOPE__BODY_NEXT) {
        on_next(&x);
    } else if (req->body_case == FLEET__ENVELOPE__BODY_CANCEL) {
        on_cancel(&x);
    } else {
        mlx_log_warn(MOD, "refused message", "body=%s", wire_body_name(req));
        refuse(&x, FLEET__ERROR__CODE__BAD_MESSAGE, 400,
               "the agent's data plane does not accept %s requests; send infer, next "
               "or cancel",
               wire_body_name(req));
    }
    x.reply.node_id = dp->node_id;

    uint8_t *buf = NULL;
    size_t len = 0;
    nng_msg *out = NULL;
    if (wire_pack(&x.reply, dp->max_msg, &buf, &len, &err) == 0 &&
        nng_msg_alloc(&out, len) == 0)
        memcpy(nng_msg_body(out), buf, len);
    else
        mlx_log_error(MOD, "cannot answer", "body=%s err=\"%s\"",
                      wire_body_name(&x.reply), err.msg);
    mlx_free(buf);
    if (x.reply.body_case == FLEET__ENVELOPE__BODY_TOKEN_CHUNK)
        mlx_free(x.chunk.text.data);
    wire_free(req);
    return out;
}

/* ---- NNG plumbing --------------------------------------------------------- */

static void worker_run(void *arg)
{
    struct worker *w = arg;
    dataplane *dp = w->dp;
    while (!atomic_load(&dp->stopping)) {
        nng_ctx_recv(w->ctx, w->aio);
        nng_aio_wait(w->aio);
        int rv = nng_aio_result(w->aio);
        if (rv == NNG_ECLOSED)
            break;
        if (rv != 0) { /* NNG_ETIMEDOUT: a wake-up to look around */
            reap_idle(dp);
            continue;
        }
        nng_msg *req = nng_aio_get_msg(w->aio);
        if (atomic_load(&dp->stopping)) { /* goes unanswered */
            nng_msg_free(req);
            break;
        }
        nng_msg *reply = handle(dp, req);
        nng_msg_free(req);
        if (reply != NULL) {
            nng_aio_set_msg(w->aio, reply);
            nng_ctx_send(w->ctx, w->aio);
            nng_aio_wait(w->aio);
            if (nng_aio_result(w->aio) != 0)
                nng_msg_free(reply); /* a failed send leaves it with us */
        }
        reap_idle(dp);
    }
}

static void free_dataplane(dataplane *dp)
{
    for (size_t i = 0; i < MLX_MAX_DATA_REQUESTS; i++) {
        if (dp->table[i] != NULL) {
            struct gen *g = dp->table[i];
            dp->table[i] = NULL;
            gen_release(dp, g);
        }
    }
    pthread_mutex_destroy(&dp->mtx);
    mlx_free(dp->node_id);
    mlx_free(dp->url);
    mlx_free(dp);
}

int dataplane_start(const dataplane_config *cfg, dataplane **out, mlx_err *err)
{
    if (cfg->rt == NULL || cfg->listen == NULL || cfg->node_id == NULL)
        return mlx_err_set(err, MLX_EINVAL,
                           "the data plane needs a runtime, an address and a node id");
    dataplane *dp = mlx_calloc(1, sizeof *dp);
    if (dp == NULL)
        return mlx_err_set(err, MLX_ENOMEM, "out of memory");
    pthread_mutex_init(&dp->mtx, NULL);
    dp->rt = cfg->rt;
    dp->node_id = mlx_strdup(cfg->node_id);
    dp->url = mlx_strdup(cfg->listen);
    dp->max_msg = cfg->max_msg > 0 ? cfg->max_msg : MLX_MAX_DATA_MSG;
    dp->idle_ms = cfg->idle_timeout_ms > 0 ? cfg->idle_timeout_ms : DEFAULT_IDLE_MS;
    dp->poll_ms = cfg->poll_ms > 0 ? cfg->poll_ms : DEFAULT_POLL_MS;
    if (dp->node_id == NULL || dp->url == NULL) {
        free_dataplane(dp);
        return mlx_err_set(err, MLX_ENOMEM, "out of memory");
    }
    /* Frames up to twice the limit are read, so a larger message is
     * answered with TOO_BIG rather than dropped with its connection. */
    int rc = mlx_nng_rep_listen(dp->url, 2 * dp->max_msg, "--listen", &dp->sock, err);
    if (rc != 0) {
        free_dataplane(dp);
        return rc;
    }
    size_t ready = 0;
    for (; ready < MLX_DATA_CONTEXTS; ready++) {
        struct worker *w = &dp->workers[ready];
        w->dp = dp;
        if (nng_aio_alloc(&w->aio, NULL, NULL) != 0)
            break;
        if (nng_ctx_open(&w->ctx, dp->sock) != 0) {
            nng_aio_free(w->aio);
            break;
        }
        nng_aio_set_timeout(w->aio, WAKE_MS);
    }
    size_t running = 0;
    if (ready == MLX_DATA_CONTEXTS) {
        for (; running < MLX_DATA_CONTEXTS; running++) {
            struct worker *w = &dp->workers[running];
            if (nng_thread_create(&w->thread, worker_run, w) != 0)
                break;
        }
    }
    if (running < MLX_DATA_CONTEXTS) {
        atomic_store(&dp->stopping, true);
        for (size_t i = 0; i < running; i++)
            nng_thread_destroy(dp->workers[i].thread);
        mlx_nng_close(dp->sock, CLOSE_TIMEOUT_MS);
        for (size_t i = 0; i < ready; i++)
            nng_aio_free(dp->workers[i].aio);
        free_dataplane(dp);
        return mlx_err_set(err, MLX_ENOMEM, "cannot start the data plane's workers");
    }
    mlx_log_info(MOD, "data plane listening", "url=%s contexts=%d max_msg=%zu idle_ms=%d",
                 dp->url, MLX_DATA_CONTEXTS, dp->max_msg, dp->idle_ms);
    *out = dp;
    return 0;
}

void dataplane_stop(dataplane *dp)
{
    if (dp == NULL)
        return;
    /* Workers notice within WAKE_MS (a receive's timeout, a long poll's
     * slice); joining them first means no operation is in flight when the
     * socket closes, which NNG 1.5 needs (see coordinator/control). */
    atomic_store(&dp->stopping, true);
    for (size_t i = 0; i < MLX_DATA_CONTEXTS; i++)
        nng_thread_destroy(dp->workers[i].thread);
    if (mlx_nng_close(dp->sock, CLOSE_TIMEOUT_MS) != 0)
        mlx_log_warn(MOD,
                     "the data-plane socket did not close in time; leaving it to exit",
                     "timeout_ms=%d", CLOSE_TIMEOUT_MS);
    for (size_t i = 0; i < MLX_DATA_CONTEXTS; i++)
        nng_aio_free(dp->workers[i].aio);
    free_dataplane(dp);
}
