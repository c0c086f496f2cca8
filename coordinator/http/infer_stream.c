/*
 * infer_stream.c — a streamed generation: the relay pushes, the HTTP
 * server pulls, and a bounded buffer joins the two.
 *
 * relay_run hands text to a sink as it comes; the server's stream asks for
 * bytes when the client can take them (a read callback on the connection's
 * thread). So relay_run runs on a thread of its own per streaming request,
 * turning each piece of text into the API's chunk (SSE or NDJSON, by
 * common/api) and appending it to a buffer that the read callback drains.
 * The buffer holds at most STREAM_BUFFER_MAX unread bytes: past that the
 * producer waits for the client, so a slow reader slows the node rather
 * than filling the coordinator's memory.
 *
 *   producer (relay thread)            consumer (connection thread)
 *   text → api_write_chunk → out  ──▶  read: copy out, wake the producer
 *   end  → api_write_end / _fail       read: 0 once ended and drained
 *   gone? ◀── flag ◀───────────────── close(completed = false)
 *
 * The answer's status waits for the first text or the end, as the agent's
 * does: a model no node holds, or a request every node refused, is a plain
 * 404 or 400 even for a streamed request. Once text went out, a failure
 * ends the stream with the API's error chunk (the text cannot be taken
 * back).
 *
 * A client that goes away sets the flag that the relay's gone() reports,
 * and the sink refuses the next text, so Cancel reaches the agent; close
 * then waits for the relay thread (at most one long poll) and frees.
 */
#include <nng/nng.h>
#include <nng/supplemental/util/platform.h>
#include <string.h>

#include "common/alloc.h"
#include "common/log.h"
#include "coordinator/http/internal.h"

#define MOD               "http"
#define STREAM_BUFFER_MAX (1u << 20) /* unread bytes the producer may run ahead */
#define STREAM_CHUNK_MAX  (4u << 20) /* one event's bytes; a chunk is far less */
#define GONE_POLL_MS      100        /* how often a waiting producer looks */

struct stream {
    infer_call *c;
    nng_thread *thread;
    nng_mtx *mtx; /* guards everything below */
    nng_cv *cv;   /* any change below */
    mlx_buf out;  /* formatted bytes; [pos, len) not yet read */
    size_t pos;
    bool texted;     /* some text reached out */
    bool ended;      /* the relay returned, its last bytes are in out */
    bool gone;       /* the client went away (or the stream broke) */
    bool failed;     /* the producer could not write a chunk: cut the stream */
    mlx_buf scratch; /* the producer's own, for one chunk */
    /* The producer's own, for one chunk's log probabilities. */
    api_token *tokens;
    size_t cap_tokens;
};

static void stream_free(struct stream *s)
{
    if (s->cv != NULL)
        nng_cv_free(s->cv);
    if (s->mtx != NULL)
        nng_mtx_free(s->mtx);
    mlx_buf_fini(&s->out);
    mlx_buf_fini(&s->scratch);
    mlx_free(s->tokens);
    infer_call_free(s->c);
    mlx_free(s);
}

/* Whether the client is gone; under s->mtx. */
static bool client_gone(struct stream *s)
{
    if (!s->gone && s->c->conn != NULL && mlx_http_client_gone(s->c->conn))
        s->gone = true;
    return s->gone;
}

/* Moves s->scratch into s->out, waiting while the client is behind.
 * Returns nonzero when the client is gone or memory ran out. */
static int publish(struct stream *s, bool text)
{
    nng_mtx_lock(s->mtx);
    while (!client_gone(s) && s->out.len - s->pos > STREAM_BUFFER_MAX)
        nng_cv_until(s->cv, nng_clock() + GONE_POLL_MS);
    int rc = s->gone ? 1 : 0;
    if (rc == 0 && mlx_buf_append(&s->out, s->scratch.data, s->scratch.len) != 0) {
        s->failed = true;
        rc = 1;
    }
    if (rc == 0 && text)
        s->texted = true;
    nng_cv_wake(s->cv);
    nng_mtx_unlock(s->mtx);
    mlx_buf_reset(&s->scratch);
    return rc;
}

/* The producer cannot go on (out of memory): the stream is cut. Returns
 * nonzero, as a sink does for a client gone. */
static int producer_failed(struct stream *s)
{
    nng_mtx_lock(s->mtx);
    s->failed = true;
    nng_cv_wake(s->cv);
    nng_mtx_unlock(s->mtx);
    return 1;
}

/* Writes a TEXT event as the API's chunk and publishes it. */
static int write_text(struct stream *s, const api_event *ev)
{
    if (api_write_chunk(&s->c->answer, ev, &s->scratch) != 0)
        return producer_failed(s);
    if (s->scratch.len == 0)
        return 0;
    return publish(s, true);
}

static int on_text(void *arg, const char *p, size_t n)
{
    api_event ev = {.kind = API_EVENT_TEXT, .text = p, .len = n};
    return write_text(arg, &ev);
}

static int on_tokens(void *arg, const dpc_chunk *chunk)
{
    struct stream *s = arg;
    if (infer_tokens_of(chunk->tokens, chunk->n_tokens, &s->tokens, &s->cap_tokens) != 0)
        return producer_failed(s);
    api_event ev = {.kind = API_EVENT_TEXT,
                    .text = chunk->text,
                    .len = chunk->len,
                    .tokens = s->tokens,
                    .n_tokens = chunk->n_tokens};
    return write_text(s, &ev);
}

static bool on_gone(void *arg)
{
    struct stream *s = arg;
    nng_mtx_lock(s->mtx);
    bool gone = client_gone(s) || s->failed;
    nng_mtx_unlock(s->mtx);
    return gone;
}

static void produce(void *arg)
{
    struct stream *s = arg;
    infer_call *c = s->c;
    relay_sink sink = {.text = on_text,
                       .gone = on_gone,
                       .arg = s,
                       .tokens = c->api.logprobs ? on_tokens : NULL};
    infer_relay(c, &sink);
    int rc = 0;
    if (c->res.status == 200) {
        api_event done;
        infer_done_event(c, &done);
        rc = api_write_end(&c->answer, &done, &s->scratch);
    } else if (c->res.streamed && c->res.status != 499) {
        const char *code, *message;
        api_event fail = {.kind = API_EVENT_ERROR};
        fail.status = infer_failure(c, &code, &message);
        fail.code = code;
        fail.message = message;
        rc = api_write_fail(&c->answer, &fail, &s->scratch);
    }
    /* The books close before the last bytes go out: a client that sends
     * its next request the moment it reads the end finds the slot free and
     * its tokens charged. */
    infer_call_end(c);
    if (rc == 0 && s->scratch.len > 0)
        publish(s, false);
    nng_mtx_lock(s->mtx);
    s->ended = true;
    nng_cv_wake(s->cv);
    nng_mtx_unlock(s->mtx);
}

static long stream_read(void *arg, char *buf, size_t max)
{
    struct stream *s = arg;
    nng_mtx_lock(s->mtx);
    while (s->pos == s->out.len && !s->ended && !s->gone && !s->failed)
        nng_cv_wait(s->cv);
    long n;
    if (s->failed) {
        n = -1;
    } else if (s->pos < s->out.len) {
        size_t k = s->out.len - s->pos;
        if (k > max)
            k = max;
        memcpy(buf, s->out.data + s->pos, k);
        s->pos += k;
        if (s->pos == s->out.len) {
            mlx_buf_reset(&s->out);
            s->pos = 0;
        }
        nng_cv_wake(s->cv);
        n = (long)k;
    } else {
        n = s->ended ? 0 : -1;
    }
    nng_mtx_unlock(s->mtx);
    return n;
}

static void stream_close(void *arg, bool completed)
{
    struct stream *s = arg;
    nng_mtx_lock(s->mtx);
    if (!s->ended)
        s->gone = true; /* the relay cancels before its next token */
    nng_cv_wake(s->cv);
    nng_mtx_unlock(s->mtx);
    nng_thread_destroy(s->thread); /* waits for relay_run to return */
    stream_free(s);
}

void infer_stream_run(infer_call *c, mlx_http_resp *resp)
{
    struct stream *s = mlx_calloc(1, sizeof *s);
    if (s == NULL) {
        api_error(resp, c->spec->kind, 507, "insufficient_memory", "out of memory");
        infer_call_free(c);
        return;
    }
    s->c = c;
    mlx_buf_init(&s->out, STREAM_BUFFER_MAX + STREAM_CHUNK_MAX);
    mlx_buf_init(&s->scratch, STREAM_CHUNK_MAX);
    if (nng_mtx_alloc(&s->mtx) != 0 || nng_cv_alloc(&s->cv, s->mtx) != 0 ||
        nng_thread_create(&s->thread, produce, s) != 0) {
        api_error(resp, c->spec->kind, 507, "insufficient_memory",
                  "cannot start the stream: out of memory");
        stream_free(s);
        return;
    }
    /* The status waits for the first text or the end. */
    nng_mtx_lock(s->mtx);
    while (!s->texted && !s->ended)
        nng_cv_wait(s->cv);
    bool plain = s->ended && !c->res.streamed && c->res.status != 200;
    nng_mtx_unlock(s->mtx);
    if (plain) {
        nng_thread_destroy(s->thread);
        const char *code, *message;
        int status = infer_failure(c, &code, &message);
        if (status == 499) {
            resp->status = 499;
        } else {
            if (status == 503)
                mlx_http_resp_header(resp, "Retry-After", "1");
            api_error(resp, c->spec->kind, status, code, "%s", message);
        }
        stream_free(s);
        return;
    }
    resp->status = 200;
    resp->content_type = api_stream_type(c->spec->kind);
    mlx_http_resp_header(resp, "Cache-Control", "no-cache");
    resp->stream =
        (mlx_http_stream){.read = stream_read, .close = stream_close, .arg = s};
}
