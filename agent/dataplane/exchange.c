/* exchange.c — the data plane's answers: Infer checked as the HTTP API checks
 * a request and handed to the runtime, Next's long poll for the text made
 * since the last one, Cancel; refusals as Errors with an HTTP-like status. */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "agent/dataplane/internal.h"
#include "common/alloc.h"
#include "common/clock.h"
#include "common/log.h"
#include "common/parse.h"

void dp_refuse(struct exchange *x, Fleet__Error__Code code, uint32_t status,
               const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(x->message, sizeof x->message, fmt, ap);
    va_end(ap);
    wire_set_error(&x->reply, &x->error, code, x->message);
    x->error.status = status;
}

void dp_refuse_code(struct exchange *x, int code, const char *message)
{
    Fleet__Error__Code c;
    uint32_t status;
    switch (code) {
    case MLX_EINVAL:
        c = FLEET__ERROR__CODE__BAD_REQUEST;
        status = 400;
        break;
    case MLX_ETOOBIG: /* the coordinator answers it as the API's own code */
        c = FLEET__ERROR__CODE__CONTEXT_EXCEEDED;
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
    dp_refuse(x, c, status, "%s", message);
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
    int rc = dp_check_model(in->model, err);
    if (rc != 0)
        return rc;
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
    if (in->top_logprobs < -1 || in->top_logprobs > RUNTIME_MAX_TOP_LOGPROBS)
        return mlx_err_set(
            err, MLX_EINVAL,
            "top_logprobs %d is out of range; give 0 for none, -1 for each "
            "token's log probability alone, or 1 to %d alternatives",
            (int)in->top_logprobs, RUNTIME_MAX_TOP_LOGPROBS);
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
    req->top_logprobs = in->top_logprobs;
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

/* One request answered, with its status; a model no store has is counted
 * as "", as the HTTP API counts it. */
static void count(dataplane *dp, const char *model, int status)
{
    if (dp->inference != NULL)
        metrics_inference_request(dp->inference, METRICS_ENDPOINT,
                                  status == 404 || model == NULL ? "" : model, status);
}

static void answer_infer(struct exchange *x)
{
    dataplane *dp = x->dp;
    const char *id = x->req->request_id;
    if (!request_id_ok(id)) {
        dp_refuse(x, FLEET__ERROR__CODE__BAD_MESSAGE, 400,
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
        mlx_buf_init(&g->pending_lp, PENDING_MAX);
        g->refs = 1; /* ours, while we answer */
        g->start_ns = mlx_time_mono_ns();
        g->whole = in->whole;
        g->top_logprobs = req.top_logprobs;
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
        dp_refuse_code(x, rc, mlx_err_text(&err, rc));
        return;
    }
    rc = dp_gen_add(dp, g);
    if (rc != 0) {
        if (rc == MLX_EEXIST)
            dp_refuse(x, FLEET__ERROR__CODE__BAD_REQUEST, 409,
                      "request id %s is already running on this agent; give each "
                      "generation its own id",
                      id);
        else
            dp_refuse(x, FLEET__ERROR__CODE__BUSY, 503,
                      "the agent already tracks %d generations; retry when some finish",
                      MLX_MAX_DATA_REQUESTS);
        dp_gen_release(dp, g);
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
        dp_refuse_code(x, ev.error, ev.message);
        dp_gen_forget(dp, g);
        dp_gen_release(dp, g);
        return;
    }
    fleet__infer_accepted__init(&x->accepted);
    x->accepted.prompt_tokens = g->prompt_tokens;
    if (got) {
        /* Started: the rest of the poll window goes to the first chunk, so
         * a short answer takes this one exchange and no Next. */
        dp_answer_chunk(x, g, deadline);
        if (x->reply.body_case == FLEET__ENVELOPE__BODY_ERROR) {
            dp_gen_release(dp, g);
            return;
        }
        x->accepted.first = &x->chunk;
    }
    x->reply.body_case = FLEET__ENVELOPE__BODY_INFER_ACCEPTED;
    x->reply.infer_accepted = &x->accepted;
    mlx_log_debug(MOD, "infer accepted", "id=%s model=\"%s\" prompt_tokens=%u", id,
                  g->model, g->prompt_tokens);
    dp_gen_release(dp, g);
}

/* An accepted generation is counted when it ends (dp_on_next); a refused
 * one here. */
void dp_on_infer(struct exchange *x)
{
    answer_infer(x);
    if (x->reply.body_case == FLEET__ENVELOPE__BODY_ERROR && !x->counted)
        count(x->dp, x->req->infer->model, (int)x->error.status);
}

/* ---- Next ----------------------------------------------------------------- */

/* Bytes of a TokenChunk's envelope and fields but its text and tokens, at
 * most: ids, the finish reason, usage and timings. */
#define CHUNK_ENVELOPE_MAX 4096

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

/* Reads what the job has made into g->pending (and its tokens' log
 * probabilities into g->pending_lp); true with *end set when the
 * generation is over. Waits until deadline_ms for the first text of a
 * streamed generation, for the end of one read whole; either way no longer
 * than a chunk's worth of text or tokens. */
static bool gather(dataplane *dp, struct gen *g, int64_t deadline_ms, runtime_event *end)
{
    for (;;) {
        int64_t left = deadline_ms - mlx_time_mono_ms();
        bool enough = (g->pending.len > 0 || g->n_pending_lp > 0) && !g->whole;
        int wait = enough || left <= 0 ? 0 : left < WAKE_MS ? (int)left : WAKE_MS;
        runtime_event ev;
        if (runtime_job_next(g->job, &ev, wait) != 0) {
            if (enough || left <= 0 || atomic_load(&dp->stopping))
                return false;
            continue;
        }
        switch (ev.kind) {
        case RUNTIME_STARTED:
            g->prompt_tokens = ev.prompt_tokens;
            break;
        case RUNTIME_TEXT:
            if (mlx_buf_append(&g->pending, ev.text, ev.len) != 0 ||
                (g->top_logprobs != 0 && dp_lp_keep(g, ev.tokens, ev.n_tokens) != 0)) {
                /* the coordinator fell far behind: stop rather than grow,
                 * and drop what waits, so the error is the next answer */
                runtime_job_cancel(g->job);
                mlx_buf_fini(&g->pending);
                mlx_buf_fini(&g->pending_lp);
                g->n_pending_lp = 0;
                memset(end, 0, sizeof *end);
                end->kind = RUNTIME_ERROR;
                end->error = MLX_ENOMEM;
                snprintf(end->message, sizeof end->message,
                         "more than %u bytes of text or log probabilities waited "
                         "unfetched; the generation was stopped",
                         PENDING_MAX);
                return true;
            }
            if (g->pending.len >= MLX_MAX_DATA_CHUNK ||
                g->n_pending_lp >= MLX_MAX_CHUNK_TOKENS)
                return false;
            break;
        case RUNTIME_DONE:
        case RUNTIME_ERROR:
            *end = ev;
            return true;
        }
    }
}

void dp_answer_chunk(struct exchange *x, struct gen *g, int64_t deadline_ms)
{
    dataplane *dp = x->dp;
    pthread_mutex_lock(&g->use);
    runtime_event end;
    bool over = gather(dp, g, deadline_ms, &end);
    size_t n = chunk_len(g->pending.data != NULL ? g->pending.data : "", g->pending.len,
                         MLX_MAX_DATA_CHUNK);
    bool forget = false;
    if (over && end.kind == RUNTIME_ERROR && n == 0 && g->n_pending_lp == 0) {
        mlx_log_info(MOD, "generation failed", "id=%s model=\"%s\" err=\"%s\"", g->id,
                     g->model, end.message);
        dp_refuse_code(x, end.error, end.message);
        count(dp, g->model, (int)x->error.status);
        x->counted = true;
        forget = true;
    } else {
        fleet__token_chunk__init(&x->chunk);
        x->chunk.prompt_tokens = g->prompt_tokens;
        if (n > 0) {
            x->chunk.text.data = mlx_malloc(n);
            if (x->chunk.text.data != NULL) {
                memcpy(x->chunk.text.data, g->pending.data, n);
                x->chunk.text.len = n;
            }
        }
        /* The text leaves pending only once the tokens are taken too, so
         * that running out of memory for either loses neither. */
        size_t room = dp->max_msg > n + CHUNK_ENVELOPE_MAX
                          ? dp->max_msg - n - CHUNK_ENVELOPE_MAX
                          : 0;
        if ((n > 0 && x->chunk.text.data == NULL) ||
            (g->n_pending_lp > 0 && dp_lp_take(g, room, &x->chunk) != 0)) {
            dp_refuse(x, FLEET__ERROR__CODE__INTERNAL, 507, "out of memory");
            pthread_mutex_unlock(&g->use);
            return;
        }
        if (n > 0) {
            memmove(g->pending.data, g->pending.data + n, g->pending.len - n);
            g->pending.len -= n;
        }
        /* The end goes out once every byte and token before it has; an
         * error after them is answered to the next Next (the job repeats
         * its end). */
        if (over && end.kind == RUNTIME_DONE && g->pending.len == 0 &&
            g->n_pending_lp == 0) {
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
            count(dp, g->model, cancelled ? 499 : 200);
            if (dp->inference != NULL)
                metrics_inference_generation(
                    dp->inference, g->model, x->chunk.prompt_tokens,
                    (double)end.prompt_ns / 1e9, end.completion_tokens,
                    (double)end.gen_ns / 1e9);
            forget = true;
        }
        x->reply.body_case = FLEET__ENVELOPE__BODY_TOKEN_CHUNK;
        x->reply.token_chunk = &x->chunk;
    }
    pthread_mutex_unlock(&g->use);
    if (forget)
        dp_gen_forget(dp, g);
}

void dp_chunk_free(Fleet__TokenChunk *c)
{
    mlx_free(c->text.data);
    mlx_free(c->logprobs); /* the block of dp_lp_take */
    c->text.data = NULL;
    c->logprobs = NULL;
}

void dp_on_next(struct exchange *x)
{
    dataplane *dp = x->dp;
    struct gen *g = dp_gen_find(dp, x->req->request_id);
    if (g == NULL) {
        dp_refuse(x, FLEET__ERROR__CODE__NOT_FOUND, 404,
                  "no generation '%.64s' on this agent: it finished, failed, or was "
                  "forgotten after %d ms without a Next",
                  x->req->request_id, dp->idle_ms);
        return;
    }
    dp_answer_chunk(x, g, mlx_time_mono_ms() + dp->poll_ms);
    dp_gen_release(dp, g);
}

/* ---- Cancel --------------------------------------------------------------- */

void dp_on_cancel(struct exchange *x)
{
    struct gen *g = dp_gen_find(x->dp, x->req->request_id);
    if (g != NULL) { /* an unknown id is acked too: cancelling is idempotent */
        atomic_store(&g->cancelled, true);
        runtime_job_cancel(g->job);
        mlx_log_info(MOD, "generation cancelled", "id=%s model=\"%s\"", g->id, g->model);
        dp_gen_release(x->dp, g);
    }
    fleet__ack__init(&x->ack);
    x->reply.body_case = FLEET__ENVELOPE__BODY_ACK;
    x->reply.ack = &x->ack;
}
