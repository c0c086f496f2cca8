/*
 * internal.h — shared by the files of agent/dataplane; not included
 * elsewhere.
 *
 *   dataplane.c  the socket, its workers, dispatch, start and stop
 *   table.c      the table of generations: add, find, forget, reap
 *   exchange.c   the answers to Infer, Next and Cancel
 *   load.c       the answer to LoadModel
 *   logprobs.c   the log probabilities waiting for a Next
 */
#ifndef MLX_AGENT_DATAPLANE_INTERNAL_H
#define MLX_AGENT_DATAPLANE_INTERNAL_H

#include <nng/nng.h>
#include <nng/supplemental/util/platform.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "agent/dataplane/dataplane.h"
#include "common/buf.h"
#include "common/limits.h"
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
/* The endpoint label of the data plane's requests in the inference
 * metrics. */
#define METRICS_ENDPOINT "dataplane"

/* One generation the coordinator asked for. It is referenced by the table
 * and by each handler using it; the last reference frees it. Text taken
 * from the runtime job waits in pending until a Next sends it, at most
 * MLX_MAX_DATA_CHUNK bytes a chunk, cut between UTF-8 characters.
 *
 * With Infer.top_logprobs, each token's log probabilities wait beside it in
 * pending_lp, one record per token in the order made, until a Next sends
 * them, at most MLX_MAX_CHUNK_TOKENS a chunk. A record, packed:
 *
 *   float logprob | uint16 len | uint8 n_top | len bytes of its piece
 *   then n_top times: float logprob | uint16 len | len bytes of its piece
 *
 * Records are cut from the front as text is, but apart from it: a chunk's
 * tokens need not be those of its text, each is sent once, in order. */
struct gen {
    char id[MLX_MAX_REQUEST_ID + 1];
    char model[MLX_MAX_MODEL_NAME + 1];
    runtime_job *job;
    int refs;        /* guarded by dataplane.mtx */
    int64_t last_ms; /* when it was last asked about; dataplane.mtx */
    int64_t start_ns;
    bool whole;             /* Infer.whole: answer at the end, not the first text */
    _Atomic bool cancelled; /* the coordinator sent Cancel */
    pthread_mutex_t use;    /* one Next at a time; guards what follows */
    uint32_t prompt_tokens;
    mlx_buf pending;      /* text taken from the job, not yet sent */
    int32_t top_logprobs; /* Infer.top_logprobs; 0: no records */
    mlx_buf pending_lp;   /* token records, not yet sent (see above) */
    size_t n_pending_lp;  /* records in pending_lp */
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
    metrics_inference *inference; /* NULL: not counted */
    char *node_id;
    char *url;
    size_t max_msg;
    int idle_ms, poll_ms;
    nng_socket sock;
    struct worker workers[MLX_DATA_CONTEXTS];
    _Atomic bool stopping;
    _Atomic int loads; /* workers in a LoadModel now (at most MLX_DATA_LOADS) */

    pthread_mutex_t mtx; /* guards the table, refs, last_ms, last_reap_ms */
    struct gen *table[MLX_MAX_DATA_REQUESTS];
    size_t n_gens;
    int64_t last_reap_ms;
};

/* Everything a handler needs to build its reply. */
struct exchange {
    dataplane *dp;
    const wire_envelope *req;
    wire_envelope reply;
    Fleet__Error error;
    Fleet__Ack ack;
    Fleet__InferAccepted accepted;
    Fleet__TokenChunk chunk;
    Fleet__Loaded loaded;
    bool counted; /* the request is in the metrics already */
    char message[MLX_MAX_ERR_MSG];
};

/* ---- the table (table.c) ------------------------------------------------- */

/* Puts g in the table with its reference; MLX_EEXIST or MLX_EBUSY. */
int dp_gen_add(dataplane *dp, struct gen *g);
/* The generation named id, referenced (dp_gen_release), or NULL. */
struct gen *dp_gen_find(dataplane *dp, const char *id);
/* Drops a reference; the last one frees g (cancelling its job). */
void dp_gen_release(dataplane *dp, struct gen *g);
/* Drops g from the table (once; later calls do nothing). */
void dp_gen_forget(dataplane *dp, struct gen *g);
/* Cancels and forgets generations nobody has asked about for idle_ms. */
void dp_reap_idle(dataplane *dp);

/* ---- log probabilities (logprobs.c) -------------------------------------- */

/* Keeps the tokens' records in g->pending_lp. MLX_ETOOBIG past PENDING_MAX
 * or MLX_ENOMEM; every record waiting is then dropped. */
int dp_lp_keep(struct gen *g, const runtime_token *tokens, size_t n);
/* Moves the first waiting records into c (logprobs, n_logprobs; freed by
 * dp_chunk_free): at most MLX_MAX_CHUNK_TOKENS, whose encoded size fits
 * room, though one always goes when c has no text. MLX_ENOMEM leaves g and
 * c as they were. */
int dp_lp_take(struct gen *g, size_t room, Fleet__TokenChunk *c);

/* ---- the answers (exchange.c) -------------------------------------------- */

void dp_refuse(struct exchange *x, Fleet__Error__Code code, uint32_t status,
               const char *fmt, ...) __attribute__((format(printf, 4, 5)));
/* An MLX_E* code from the runtime as the Error the coordinator maps to an
 * HTTP answer (the same statuses as agent/http's). */
void dp_refuse_code(struct exchange *x, int code, const char *message);
void dp_on_infer(struct exchange *x);
/* The generation's text since the last answer, as x's TokenChunk (or its
 * Error), waiting until deadline_ms (monotonic) as Next's long poll does. */
void dp_answer_chunk(struct exchange *x, struct gen *g, int64_t deadline_ms);
/* Frees what a reply's TokenChunk holds (alone or in InferAccepted). */
void dp_chunk_free(Fleet__TokenChunk *c);
void dp_on_next(struct exchange *x);
void dp_on_cancel(struct exchange *x);

/* ---- loads (load.c) ------------------------------------------------------- */

/* MLX_EINVAL, with the sentence the HTTP API gives, unless model is a
 * model name: not empty, printable, at most MLX_MAX_MODEL_NAME bytes. */
int dp_check_model(const char *model, mlx_err *err);
void dp_on_load(struct exchange *x);

#endif
