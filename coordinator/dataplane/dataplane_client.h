/*
 * dataplane_client.h — the coordinator's client of its agents' data planes
 * (proto/fleet.proto, "Data plane"): generations run on a node over NNG.
 *
 * A pool keeps one REQ socket per node, dialed lazily at the node's
 * data-plane address the first time a request goes there, in the
 * background and redialed with backoff, with the data plane's message
 * limit and a timeout on every exchange. Each stream (one generation)
 * opens its own NNG context on its node's socket, so any number of
 * generations run at once over one connection.
 *
 *   dpc_infer   Infer -> InferAccepted: the generation runs; *out streams it
 *   dpc_next    Next -> TokenChunk: one long poll, the text since the last
 *               one; done with finish reason, usage and timings at the end.
 *               The first comes with InferAccepted from an agent that has
 *               started generating (protocol 1.3), so a short answer takes
 *               one exchange; dpc_next then answers it without asking
 *   dpc_cancel  Cancel -> Ack, best effort; a later dpc_next ends the
 *               stream with finish reason "cancelled"
 *   dpc_load    LoadModel -> Loaded: a model loaded (or unloaded) on a
 *               node with nothing to generate, waiting as long as a load
 *               from disk may take
 *
 * Failures say who is at fault, because the caller acts on it:
 *   DPC_NODE_FAILED  unreachable, timed out, a malformed answer, the node's
 *                    5xx (busy, no memory, internal), or a generation the
 *                    node no longer knows: try another node (router.h)
 *   DPC_REFUSED      the request is bad (the node's 4xx): answer the
 *                    client with the status and sentence; never retry
 * Every reply's request id, body, text length, strings and log
 * probabilities (counts, piece lengths, finite values) are checked before
 * use; a reply that fails a check is the node's failure.
 *
 * Lifecycle:
 *   1. dpc_open, then any number of requests from any threads.
 *   2. dpc_forget when membership says a node is down or gone: its socket
 *      closes once the streams using it are freed; the next request to it
 *      dials afresh.
 *   3. dpc_stream_free every stream (after dpc_cancel when abandoning one
 *      unfinished; an agent also forgets a generation nobody polls).
 *   4. dpc_close after the last stream is freed.
 *
 * Thread safety: the pool is safe from any thread. One stream is used by
 * one thread at a time, except dpc_cancel, which may run from another
 * thread while a dpc_next waits (it uses a context of its own).
 */
#ifndef MLX_COORDINATOR_DATAPLANE_CLIENT_H
#define MLX_COORDINATOR_DATAPLANE_CLIENT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/err.h"
#include "common/limits.h"

typedef struct dpc_pool dpc_pool;
typedef struct dpc_stream dpc_stream;

typedef struct dpc_options {
    int timeout_ms;        /* one Infer or Cancel exchange; 0: 30 s */
    int cancel_timeout_ms; /* a Cancel's exchange; 0: 2 s */
    int load_timeout_ms;   /* a LoadModel's exchange, the whole load; 0: 5 min */
    size_t max_msg;        /* largest message either way; 0: MLX_MAX_DATA_MSG */
} dpc_options;

/* opt NULL: the defaults. *out: dpc_close. */
int dpc_open(const dpc_options *opt, dpc_pool **out, mlx_err *err);
void dpc_close(dpc_pool *pool); /* NULL is a no-op */

/* Drops the node's connection (see Lifecycle 2). Unknown ids are ignored. */
void dpc_forget(dpc_pool *pool, const char *node_id);

/* How many nodes the pool holds a connection to. */
size_t dpc_connections(dpc_pool *pool);

/* ---- requests ------------------------------------------------------------ */

typedef struct dpc_message {
    const char *role; /* "system", "user", "assistant" */
    const char *content;
} dpc_message;

/* Every value given (fleet.proto's Sampling says what turns each off). */
typedef struct dpc_sampling {
    float temperature;
    int32_t top_k;
    float top_p;
    float min_p;
    float repeat_penalty;
    int32_t repeat_last_n;
    float presence_penalty;
    float frequency_penalty;
    uint64_t seed;
} dpc_sampling;

/* One generation, mirroring fleet.Infer; every pointer borrowed for the
 * call. Exactly one of prompt and messages. */
typedef struct dpc_request {
    const char *request_id; /* NULL: one is generated (dpc_stream_id) */
    const char *model;
    const char *prompt;
    const dpc_message *messages;
    size_t n_messages;
    bool as_user;                 /* prompt is a user's turn (Ollama's generate) */
    const char *system;           /* with as_user; NULL: none */
    int32_t max_tokens;           /* 0: until the model stops */
    const dpc_sampling *sampling; /* NULL: the agent's (llama.cpp's) defaults */
    const char *const *stops;
    size_t n_stops;
    int64_t keep_alive_ms; /* 0: the agent's; -1: unload when done */
    bool whole;            /* the text is passed on whole: the agent answers at the end
                              (or after a chunk's worth, or a long poll), not at the
                              first text, which saves exchanges */
    int32_t top_logprobs;  /* 0: none; k > 0 (at most MLX_MAX_TOP_LOGPROBS):
                              each token's log probability and its k most
                              likely alternatives; -1: each token's alone */
} dpc_request;

typedef enum dpc_failure {
    DPC_OK,
    DPC_NODE_FAILED, /* try another node */
    DPC_REFUSED,     /* the request is bad: answer the client, never retry */
} dpc_failure;

/* What went wrong, for the HTTP front. */
typedef struct dpc_error {
    dpc_failure failure;
    int status;  /* HTTP-like: the node's (400, 404, 409, 503, 507, 500), or
                    502 unreachable or malformed, 504 timed out */
    mlx_err err; /* code and sentence */
} dpc_error;

/* A generated token's log probability (dpc_request.top_logprobs), and
 * its most likely alternatives. A piece is the token's bytes, which may be
 * part of a UTF-8 character; at most MLX_MAX_TOKEN_PIECE bytes, not
 * NUL-terminated. Logprobs are finite. */
typedef struct dpc_alt {
    const char *text;
    size_t len;
    float logprob;
} dpc_alt;

typedef struct dpc_token {
    const char *text;
    size_t len;
    float logprob;
    const dpc_alt *top; /* n_top, most likely first; at most the k asked for */
    size_t n_top;
} dpc_token;

/* What one dpc_next brought. */
typedef struct dpc_chunk {
    const char *text; /* len bytes, UTF-8, not NUL-terminated; borrowed from
                         the stream until its next dpc_next or free */
    size_t len;
    /* With top_logprobs: the tokens made since the last chunk, in order,
     * at most MLX_MAX_CHUNK_TOKENS; borrowed as text is. They need not be
     * the tokens of this chunk's text: a chunk may have either alone. */
    const dpc_token *tokens;
    size_t n_tokens;
    bool done;              /* the last chunk: what follows is set */
    char finish_reason[16]; /* "stop", "length", "cancelled" */
    uint32_t prompt_tokens;
    uint32_t completion_tokens;
    int64_t load_ns, prompt_eval_ns, eval_ns, total_ns;
} dpc_chunk;

/* Starts a generation on node_id, dialing address (tcp://HOST:PORT) when
 * the pool has no connection to the node yet, or one to another address.
 * Waits up to the pool's timeout for InferAccepted. *out: dpc_stream_free.
 * On failure returns an MLX_E* code, fills e (may be NULL) and *out is
 * NULL. An invalid request (no model, a request id not fit for the wire) is
 * DPC_REFUSED with status 400 without asking the node. */
int dpc_infer(dpc_pool *pool, const char *node_id, const char *address,
              const dpc_request *req, dpc_stream **out, dpc_error *e);

/* One long poll: waits up to timeout_ms for the node's answer (the agent
 * answers within its poll interval, about a second, empty when nothing
 * came). After done, or after a failure, the stream is over and another
 * dpc_next is MLX_ECLOSED. */
int dpc_next(dpc_stream *s, int timeout_ms, dpc_chunk *out, dpc_error *e);

/* Sends Cancel and waits for Ack, at most the pool's cancel timeout;
 * failures are logged, not returned (the agent also forgets a generation
 * nobody polls). */
void dpc_cancel(dpc_stream *s);

void dpc_stream_free(dpc_stream *s); /* NULL is a no-op */

/* Loads model on node_id (dialing address as dpc_infer does) and waits up
 * to the pool's load timeout for it to be in memory; keep_alive_ms as the
 * wire has it (0: the agent's; -1: unload it now instead; more: stay
 * loaded that long once idle). *load_ns (may be NULL): the load's time, 0
 * when it was loaded already or for an unload. Failures as dpc_infer's:
 * 404 an unknown model and 400 a bad one are DPC_REFUSED (an empty model
 * or a keep-alive below -1 without asking the node); 503 (the node busy
 * with other loads), 507 (no memory) and the rest DPC_NODE_FAILED. */
int dpc_load(dpc_pool *pool, const char *node_id, const char *address, const char *model,
             int64_t keep_alive_ms, int64_t *load_ns, dpc_error *e);

const char *dpc_stream_id(const dpc_stream *s);         /* the request id */
const char *dpc_stream_node(const dpc_stream *s);       /* the node's id */
uint32_t dpc_stream_prompt_tokens(const dpc_stream *s); /* from InferAccepted */

const char *dpc_failure_name(dpc_failure f); /* "ok", "node_failed", "refused" */

#endif
