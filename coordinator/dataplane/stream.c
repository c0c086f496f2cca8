/*
 * stream.c — Infer, Next and Cancel on a node's connection, each reply
 * checked and its failure classed (see dataplane_client.h); the exchanges
 * themselves are exchange.c's.
 */
#include <nng/nng.h>
#include <nng/supplemental/util/platform.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "common/alloc.h"
#include "common/log.h"
#include "common/nng_util.h"
#include "common/parse.h"
#include "common/rand.h"
#include "coordinator/dataplane/internal.h"
#include "proto/wire.h"

#define MOD "dpc"
/* Random hex digits of a generated request id (128 bits). */
#define ID_DIGITS 32

/* A stream's life: RUNNING until done or a failure, then OVER. */
enum stream_state {
    STREAM_RUNNING, /* the node generates; dpc_next may be called */
    STREAM_OVER,    /* done or failed; dpc_next answers MLX_ECLOSED */
};

struct dpc_stream {
    dpc_pool *pool;
    struct dpc_conn *conn; /* referenced */
    nng_ctx ctx;
    nng_aio *aio;
    char id[MLX_MAX_REQUEST_ID + 1];
    uint32_t prompt_tokens;
    int32_t top_logprobs; /* as asked: what a chunk's tokens may hold */
    enum stream_state state;
    wire_envelope *accepted; /* InferAccepted with its first chunk, until
                                dpc_next takes it */
    char *text;              /* the last chunk's text (dpc_chunk.text points here) */
    void *tokens;            /* the last chunk's tokens, their alternatives and
                                pieces, one block (dpc_chunk.tokens points here) */
};

/* ---- Infer ---------------------------------------------------------------- */

static bool request_id_ok(const char *id)
{
    size_t n = strlen(id);
    return n > 0 && n <= MLX_MAX_REQUEST_ID &&
           mlx_text_is_clean(id, MLX_MAX_REQUEST_ID) && strpbrk(id, " \"\\") == NULL;
}

static char *str(const char *s)
{
    return (char *)(s != NULL ? s : "");
}

/* The request's own checks, before anything goes on the wire. */
static int check_request(const dpc_request *req, dpc_error *e)
{
    if (req->model == NULL || req->model[0] == '\0')
        return dpc_fail(e, DPC_REFUSED, 400, MLX_EINVAL,
                        "'model' is empty; name one of the fleet's models");
    bool has_prompt = req->prompt != NULL && req->prompt[0] != '\0';
    if (has_prompt && req->n_messages > 0)
        return dpc_fail(e, DPC_REFUSED, 400, MLX_EINVAL,
                        "the request has both a prompt and messages; send one");
    if (req->n_messages > MLX_MAX_INFER_MESSAGES ||
        (req->n_messages > 0 && req->messages == NULL))
        return dpc_fail(e, DPC_REFUSED, 400, MLX_EINVAL,
                        "%zu messages are more than the %d allowed", req->n_messages,
                        MLX_MAX_INFER_MESSAGES);
    if (req->n_stops > MLX_MAX_INFER_STOPS || (req->n_stops > 0 && req->stops == NULL))
        return dpc_fail(e, DPC_REFUSED, 400, MLX_EINVAL,
                        "%zu stop strings are more than the %d allowed", req->n_stops,
                        MLX_MAX_INFER_STOPS);
    if (req->top_logprobs < -1 || req->top_logprobs > MLX_MAX_TOP_LOGPROBS)
        return dpc_fail(e, DPC_REFUSED, 400, MLX_EINVAL,
                        "top_logprobs %d is out of range; give 0 for none, -1 for each "
                        "token's log probability alone, or 1 to %d alternatives",
                        (int)req->top_logprobs, MLX_MAX_TOP_LOGPROBS);
    if (req->request_id != NULL && !request_id_ok(req->request_id))
        return dpc_fail(e, DPC_REFUSED, 400, MLX_EINVAL,
                        "request id '%.80s' is not fit for the data plane: give 1 to %d "
                        "printable characters without spaces or quotes",
                        req->request_id, MLX_MAX_REQUEST_ID);
    return 0;
}

/* Sends the Infer of req as s->id and reads InferAccepted. */
static int send_infer(dpc_stream *s, const dpc_request *req, dpc_error *e)
{
    Fleet__ChatMessage *msgs = NULL;
    Fleet__ChatMessage **msg_ptrs = NULL;
    if (req->n_messages > 0) {
        msgs = mlx_calloc(req->n_messages, sizeof *msgs);
        msg_ptrs = mlx_calloc(req->n_messages, sizeof *msg_ptrs);
        if (msgs == NULL || msg_ptrs == NULL) {
            mlx_free(msgs);
            mlx_free(msg_ptrs);
            return dpc_fail(e, DPC_NODE_FAILED, 503, MLX_ENOMEM, "out of memory");
        }
        for (size_t i = 0; i < req->n_messages; i++) {
            fleet__chat_message__init(&msgs[i]);
            msgs[i].role = str(req->messages[i].role);
            msgs[i].content = str(req->messages[i].content);
            msg_ptrs[i] = &msgs[i];
        }
    }
    char *stops[MLX_MAX_INFER_STOPS];
    for (size_t i = 0; i < req->n_stops; i++)
        stops[i] = str(req->stops[i]);

    Fleet__Sampling sampling = FLEET__SAMPLING__INIT;
    if (req->sampling != NULL) {
        const dpc_sampling *p = req->sampling;
        sampling.temperature = p->temperature;
        sampling.top_k = p->top_k;
        sampling.top_p = p->top_p;
        sampling.min_p = p->min_p;
        sampling.repeat_penalty = p->repeat_penalty;
        sampling.repeat_last_n = p->repeat_last_n;
        sampling.presence_penalty = p->presence_penalty;
        sampling.frequency_penalty = p->frequency_penalty;
        sampling.seed = p->seed;
    }
    Fleet__Infer in = FLEET__INFER__INIT;
    in.model = str(req->model);
    in.prompt = str(req->prompt);
    in.n_messages = req->n_messages;
    in.messages = msg_ptrs;
    in.as_user = req->as_user;
    in.system = str(req->system);
    in.max_tokens = req->max_tokens;
    in.sampling = req->sampling != NULL ? &sampling : NULL;
    in.n_stop = req->n_stops;
    in.stop = req->n_stops > 0 ? stops : NULL;
    in.keep_alive_ms = req->keep_alive_ms;
    in.whole = req->whole;
    in.top_logprobs = req->top_logprobs;
    wire_envelope env = FLEET__ENVELOPE__INIT;
    env.request_id = s->id;
    env.body_case = FLEET__ENVELOPE__BODY_INFER;
    env.infer = &in;

    wire_envelope *r = NULL;
    int rc = dpc_exchange(s->pool, s->conn, s->ctx, s->aio, &env, s->pool->opt.timeout_ms,
                          &r, e);
    mlx_free(msgs);
    mlx_free(msg_ptrs);
    if (rc != 0)
        return rc;
    if (r->body_case == FLEET__ENVELOPE__BODY_INFER_ACCEPTED) {
        s->prompt_tokens = r->infer_accepted->prompt_tokens;
        if (r->infer_accepted->first != NULL) {
            s->accepted = r; /* the first dpc_next's answer */
            return 0;
        }
    } else if (r->body_case == FLEET__ENVELOPE__BODY_ERROR) {
        rc = dpc_from_error(s->conn, r->error, e);
    } else {
        rc = dpc_unexpected(s->conn, r, "infer", e);
    }
    wire_free(r);
    return rc;
}

int dpc_infer(dpc_pool *pool, const char *node_id, const char *address,
              const dpc_request *req, dpc_stream **out, dpc_error *e)
{
    *out = NULL;
    if (e != NULL)
        memset(e, 0, sizeof *e);
    int rc = check_request(req, e);
    if (rc != 0)
        return rc;
    dpc_stream *s = mlx_calloc(1, sizeof *s);
    if (s == NULL)
        return dpc_fail(e, DPC_NODE_FAILED, 503, MLX_ENOMEM, "out of memory");
    s->pool = pool;
    s->state = STREAM_RUNNING;
    s->top_logprobs = req->top_logprobs;
    if (req->request_id != NULL) {
        snprintf(s->id, sizeof s->id, "%s", req->request_id);
    } else {
        mlx_err err;
        mlx_err_clear(&err);
        if ((rc = mlx_rand_hex(s->id, ID_DIGITS, &err)) != 0) {
            mlx_free(s);
            return dpc_fail(e, DPC_NODE_FAILED, 500, rc, "%s", err.msg);
        }
    }
    rc = dpc_conn_get(pool, node_id, address, &s->conn, e);
    if (rc != 0) {
        mlx_free(s);
        return rc;
    }
    int rv = nng_aio_alloc(&s->aio, NULL, NULL);
    if (rv == 0) {
        rv = nng_ctx_open(&s->ctx, s->conn->sock);
        if (rv != 0) {
            nng_aio_free(s->aio);
            s->aio = NULL;
        }
    }
    if (rv != 0) {
        dpc_conn_release(s->conn);
        mlx_free(s);
        return dpc_fail(e, DPC_NODE_FAILED, 503, mlx_nng_code(rv),
                        "cannot open a context on node %s's connection: %s", node_id,
                        nng_strerror(rv));
    }
    rc = send_infer(s, req, e);
    if (rc != 0) {
        mlx_log_info(MOD, "infer failed",
                     "id=%s node=%s model=\"%.200s\" failure=%s err=\"%s\"", s->id,
                     node_id, req->model, e != NULL ? dpc_failure_name(e->failure) : "?",
                     e != NULL ? e->err.msg : mlx_strerror(rc));
        dpc_stream_free(s);
        return rc;
    }
    mlx_log_debug(MOD, "infer accepted",
                  "id=%s node=%s model=\"%.200s\" prompt_tokens=%u", s->id, node_id,
                  req->model, s->prompt_tokens);
    *out = s;
    return 0;
}

/* ---- Next ----------------------------------------------------------------- */

/* Why a piece is malformed, or NULL. */
static const char *bad_piece(const ProtobufCBinaryData *b)
{
    if (b->len > MLX_MAX_TOKEN_PIECE)
        return "a piece longer than a token's bytes may be";
    if (b->len > 0 && b->data == NULL)
        return "a piece without bytes";
    return NULL;
}

/* Why a token's entry is malformed, or NULL; *n_alts and *bytes grow by
 * what it holds. k: the alternatives asked for. */
static const char *bad_token(const Fleet__TokenLogprob *t, size_t k, size_t *n_alts,
                             size_t *bytes)
{
    if (t == NULL)
        return "an empty entry";
    const char *why = bad_piece(&t->text);
    if (why != NULL)
        return why;
    if (!isfinite(t->logprob))
        return "a log probability that is not a finite number";
    if (t->n_top > k || (t->n_top > 0 && t->top == NULL))
        return "more alternatives than were asked for";
    *bytes += t->text.len;
    for (size_t j = 0; j < t->n_top; j++) {
        const Fleet__TokenAlternative *a = t->top[j];
        if (a == NULL)
            return "an empty alternative";
        if ((why = bad_piece(&a->text)) != NULL)
            return why;
        if (!isfinite(a->logprob))
            return "an alternative's log probability that is not a finite number";
        *bytes += a->text.len;
    }
    *n_alts += t->n_top;
    return NULL;
}

/* Checks the chunk's log probabilities and copies them into out (their
 * block into s->tokens). */
static int read_tokens(dpc_stream *s, const Fleet__TokenChunk *c, dpc_chunk *out,
                       dpc_error *e)
{
    if (c->n_logprobs == 0)
        return 0;
    if (s->top_logprobs == 0)
        return dpc_fail(e, DPC_NODE_FAILED, 502, MLX_EPROTO,
                        "node %s sent log probabilities for generation %s, which asked "
                        "for none",
                        s->conn->node_id, s->id);
    if (c->n_logprobs > MLX_MAX_CHUNK_TOKENS || c->logprobs == NULL)
        return dpc_fail(e, DPC_NODE_FAILED, 502, MLX_EPROTO,
                        "node %s sent %zu tokens' log probabilities in one chunk, more "
                        "than the %d allowed",
                        s->conn->node_id, c->n_logprobs, MLX_MAX_CHUNK_TOKENS);
    size_t k = s->top_logprobs > 0 ? (size_t)s->top_logprobs : 0;
    size_t n_alts = 0, bytes = 0;
    for (size_t i = 0; i < c->n_logprobs; i++) {
        const char *why = bad_token(c->logprobs[i], k, &n_alts, &bytes);
        if (why != NULL)
            return dpc_fail(e, DPC_NODE_FAILED, 502, MLX_EPROTO,
                            "node %s sent a malformed log probability for generation %s "
                            "(token %zu of the chunk has %s)",
                            s->conn->node_id, s->id, i, why);
    }
    /* One block: the tokens, the alternatives, then their pieces. */
    size_t n = c->n_logprobs;
    size_t at_alts = n * sizeof(dpc_token);
    size_t at_bytes = at_alts + n_alts * sizeof(dpc_alt);
    char *block = mlx_malloc(at_bytes + bytes + 1);
    if (block == NULL)
        return dpc_fail(e, DPC_NODE_FAILED, 503, MLX_ENOMEM, "out of memory");
    dpc_token *toks = (dpc_token *)block;
    dpc_alt *alts = (dpc_alt *)(block + at_alts);
    char *p = block + at_bytes;
    size_t a = 0;
    for (size_t i = 0; i < n; i++) {
        const Fleet__TokenLogprob *t = c->logprobs[i];
        toks[i] = (dpc_token){.text = p,
                              .len = t->text.len,
                              .logprob = t->logprob,
                              .top = &alts[a],
                              .n_top = t->n_top};
        if (t->text.len > 0)
            memcpy(p, t->text.data, t->text.len);
        p += t->text.len;
        for (size_t j = 0; j < t->n_top; j++, a++) {
            const Fleet__TokenAlternative *alt = t->top[j];
            alts[a] = (dpc_alt){.text = p, .len = alt->text.len, .logprob = alt->logprob};
            if (alt->text.len > 0)
                memcpy(p, alt->text.data, alt->text.len);
            p += alt->text.len;
        }
    }
    s->tokens = block;
    out->tokens = toks;
    out->n_tokens = n;
    return 0;
}

/* Copies a checked TokenChunk into out (text into s->text, tokens into
 * s->tokens). */
static int read_chunk(dpc_stream *s, const Fleet__TokenChunk *c, dpc_chunk *out,
                      dpc_error *e)
{
    size_t max_text = MLX_MAX_DATA_CHUNK < s->pool->opt.max_msg ? MLX_MAX_DATA_CHUNK
                                                                : s->pool->opt.max_msg;
    if (c->text.len > max_text || (c->text.len > 0 && c->text.data == NULL))
        return dpc_fail(e, DPC_NODE_FAILED, 502, MLX_EPROTO,
                        "node %s sent %zu bytes of text in one chunk, more than the %zu "
                        "allowed",
                        s->conn->node_id, c->text.len, max_text);
    const char *finish = c->finish_reason != NULL ? c->finish_reason : "";
    if (c->done && (finish[0] == '\0' || strlen(finish) >= sizeof out->finish_reason ||
                    !mlx_text_is_clean(finish, sizeof out->finish_reason)))
        return dpc_fail(e, DPC_NODE_FAILED, 502, MLX_EPROTO,
                        "node %s ended generation %s without a valid finish reason",
                        s->conn->node_id, s->id);
    int rc = read_tokens(s, c, out, e);
    if (rc != 0)
        return rc;
    if (c->text.len > 0) {
        char *text = mlx_malloc(c->text.len);
        if (text == NULL)
            return dpc_fail(e, DPC_NODE_FAILED, 503, MLX_ENOMEM, "out of memory");
        memcpy(text, c->text.data, c->text.len);
        s->text = text;
    }
    out->text = s->text != NULL ? s->text : "";
    out->len = c->text.len;
    out->done = c->done;
    if (c->done)
        snprintf(out->finish_reason, sizeof out->finish_reason, "%s", finish);
    out->prompt_tokens = c->prompt_tokens;
    out->completion_tokens = c->completion_tokens;
    out->load_ns = c->load_ns;
    out->prompt_eval_ns = c->prompt_eval_ns;
    out->eval_ns = c->eval_ns;
    out->total_ns = c->total_ns;
    return 0;
}

/* Asks the node for the next chunk. */
static int poll_next(dpc_stream *s, int timeout_ms, dpc_chunk *out, dpc_error *e)
{
    Fleet__Next next = FLEET__NEXT__INIT;
    wire_envelope env = FLEET__ENVELOPE__INIT;
    env.request_id = s->id;
    env.body_case = FLEET__ENVELOPE__BODY_NEXT;
    env.next = &next;
    wire_envelope *r = NULL;
    int rc = dpc_exchange(s->pool, s->conn, s->ctx, s->aio, &env,
                          timeout_ms > 0 ? timeout_ms : s->pool->opt.timeout_ms, &r, e);
    if (rc != 0)
        return rc;
    if (r->body_case == FLEET__ENVELOPE__BODY_TOKEN_CHUNK) {
        rc = read_chunk(s, r->token_chunk, out, e);
    } else if (r->body_case == FLEET__ENVELOPE__BODY_ERROR &&
               r->error->code == FLEET__ERROR__CODE__NOT_FOUND) {
        /* the node lost it (restarted, or forgot it unpolled): not the
         * request's fault, and another node may run it */
        rc = dpc_fail(e, DPC_NODE_FAILED, 502, MLX_ENOENT,
                      "node %s no longer knows generation %s: it restarted or gave "
                      "up waiting for the coordinator",
                      s->conn->node_id, s->id);
    } else if (r->body_case == FLEET__ENVELOPE__BODY_ERROR) {
        rc = dpc_from_error(s->conn, r->error, e);
    } else {
        rc = dpc_unexpected(s->conn, r, "next", e);
    }
    wire_free(r);
    return rc;
}

int dpc_next(dpc_stream *s, int timeout_ms, dpc_chunk *out, dpc_error *e)
{
    memset(out, 0, sizeof *out);
    if (e != NULL)
        memset(e, 0, sizeof *e);
    mlx_free(s->text);
    mlx_free(s->tokens);
    s->text = NULL;
    s->tokens = NULL;
    if (s->state != STREAM_RUNNING)
        return dpc_fail(e, DPC_REFUSED, 500, MLX_ECLOSED,
                        "generation %s is over; it takes no more polls", s->id);
    int rc;
    if (s->accepted != NULL) {
        rc = read_chunk(s, s->accepted->infer_accepted->first, out, e);
        wire_free(s->accepted);
        s->accepted = NULL;
    } else {
        rc = poll_next(s, timeout_ms, out, e);
    }
    if (rc != 0 || out->done)
        s->state = STREAM_OVER;
    if (rc != 0)
        mlx_log_info(MOD, "generation failed", "id=%s node=%s failure=%s err=\"%s\"",
                     s->id, s->conn->node_id,
                     e != NULL ? dpc_failure_name(e->failure) : "?",
                     e != NULL ? e->err.msg : mlx_strerror(rc));
    return rc;
}

/* ---- Cancel and the rest -------------------------------------------------- */

void dpc_cancel(dpc_stream *s)
{
    if (s == NULL)
        return;
    /* A context of its own: the stream's may be waiting in a dpc_next on
     * another thread, and a REQ context has one request at a time. */
    nng_ctx ctx;
    nng_aio *aio = NULL;
    int rv = nng_aio_alloc(&aio, NULL, NULL);
    if (rv == 0 && (rv = nng_ctx_open(&ctx, s->conn->sock)) != 0)
        nng_aio_free(aio);
    if (rv != 0) {
        mlx_log_warn(MOD, "cannot send cancel", "id=%s node=%s err=\"%s\"", s->id,
                     s->conn->node_id, nng_strerror(rv));
        return;
    }
    Fleet__Cancel cancel = FLEET__CANCEL__INIT;
    wire_envelope env = FLEET__ENVELOPE__INIT;
    env.request_id = s->id;
    env.body_case = FLEET__ENVELOPE__BODY_CANCEL;
    env.cancel = &cancel;
    wire_envelope *r = NULL;
    dpc_error e;
    memset(&e, 0, sizeof e);
    int rc = dpc_exchange(s->pool, s->conn, ctx, aio, &env,
                          s->pool->opt.cancel_timeout_ms, &r, &e);
    if (rc == 0 && r->body_case != FLEET__ENVELOPE__BODY_ACK)
        rc = dpc_unexpected(s->conn, r, "cancel", &e);
    wire_free(r);
    nng_ctx_close(ctx);
    nng_aio_free(aio);
    if (rc != 0)
        mlx_log_warn(MOD,
                     "cancel failed; the node forgets the generation when nobody polls",
                     "id=%s node=%s err=\"%s\"", s->id, s->conn->node_id, e.err.msg);
    else
        mlx_log_debug(MOD, "cancelled", "id=%s node=%s", s->id, s->conn->node_id);
}

void dpc_stream_free(dpc_stream *s)
{
    if (s == NULL)
        return;
    if (s->aio != NULL) {
        nng_ctx_close(s->ctx);
        nng_aio_free(s->aio);
    }
    dpc_conn_release(s->conn);
    wire_free(s->accepted);
    mlx_free(s->text);
    mlx_free(s->tokens);
    mlx_free(s);
}

const char *dpc_stream_id(const dpc_stream *s)
{
    return s->id;
}

const char *dpc_stream_node(const dpc_stream *s)
{
    return s->conn->node_id;
}

uint32_t dpc_stream_prompt_tokens(const dpc_stream *s)
{
    return s->prompt_tokens;
}
