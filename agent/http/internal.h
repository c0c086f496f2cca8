/*
 * internal.h — shared by the files of agent/http; not included elsewhere.
 *
 *   server.c       routes, start and stop, /healthz
 *   blobs.c        /blobs/sha256/<hex>
 *   metrics.c      /metrics
 *   call.c         a generation from request to answer, whole or streamed:
 *                  common/api reads and writes, the runtime runs
 *   openai.c       /v1/chat/completions, /v1/completions, /v1/models
 *   ollama.c       /api/generate, /api/chat
 *   ollama_info.c  /api/tags, /api/ps, /api/show
 */
#ifndef MLX_AGENT_HTTP_INTERNAL_H
#define MLX_AGENT_HTTP_INTERNAL_H

#include "agent/http/http.h"
#include "agent/runtime/runtime.h"
#include "common/api/api.h"
#include "common/buf.h"
#include "common/http_server.h"
#include "common/json.h"
#include "common/prom.h"

struct agent_http {
    agent_http_config cfg; /* borrowed strings */
    char *blob_dir;        /* <data>/blobs/sha256, owned */
    mlx_http_server *srv;
};

void http_handle_blob(void *ctx, const mlx_http_req *req, mlx_http_resp *resp);
void http_handle_metrics(void *ctx, const mlx_http_req *req, mlx_http_resp *resp);

/* The node's and its models' series, as Prometheus text, appended to b. */
void http_write_node_metrics(mlx_buf *b, const char *node_name,
                             const metrics_snapshot *s);

/* ---- a generation (call.c) -------------------------------------------------- */

/* The request's reading and the answer's writing are common/api's, shared
 * with the coordinator; a call converts between them and the runtime. */
typedef struct api_call {
    agent_http *h;
    const api_spec *spec;
    api_request api;      /* what the body asks; owns what req borrows */
    runtime_request req;  /* api as the runtime takes it */
    engine_msg *msgs;     /* req.messages, owned (the texts are api's) */
    api_answer answer;    /* the answer being written */
    char id[48];          /* of the request: X-Request-Id, or a new one */
    int64_t created_s;    /* when it arrived, Unix seconds */
    int64_t arrived_ns;   /* monotonic */
    /* What came (a whole answer): the text, and the tokens when log
     * probabilities were asked for. */
    mlx_buf text;
    runtime_token *tokens;
    size_t n_tokens, cap_tokens;
    /* The tokens of what is being written, as api_tokens borrowing from
     * the runtime's. */
    api_token *scratch;
    size_t cap_scratch;
    /* While it runs. */
    runtime_job *job;
    struct MHD_Connection *conn;
    bool started, ended;
    int status; /* recorded in the metrics at the end */
    mlx_buf out;
    size_t out_pos;
} api_call;

/* The runtime's sampling settings for the API's. */
engine_sampling api_call_sampling(const api_sampling *s);

/* Reads req's body by spec into a new call (*out: api_call_free), with
 * the runtime's request filled and its sampling checked. MLX_EINVAL with a
 * sentence for a body that is not valid. */
int api_call_parse(agent_http *h, const mlx_http_req *req, const api_spec *spec,
                   api_call **out, mlx_err *err);

/* api_call_parse, answering what goes wrong: NULL when it was answered
 * already (no runtime, a body that is not valid, out of memory). */
api_call *api_call_read(agent_http *h, const mlx_http_req *req, mlx_http_resp *resp,
                        const api_spec *spec);
void api_call_free(api_call *c);

/* Runs the call and answers: an error before the first token, or the whole
 * answer, or a stream. Takes c (frees it, now or when the stream ends). */
void api_call_run(api_call *c, mlx_http_resp *resp);

/* Counts a request answered without api_call_run (refused, or only a
 * load); model is "" unless one was found. */
void api_count(agent_http *h, const char *endpoint, const char *model, int status);

/* ---- the endpoints ---------------------------------------------------------- */

void http_openai_chat(void *ctx, const mlx_http_req *req, mlx_http_resp *resp);
void http_openai_completions(void *ctx, const mlx_http_req *req, mlx_http_resp *resp);
void http_openai_models(void *ctx, const mlx_http_req *req, mlx_http_resp *resp);
void http_ollama_generate(void *ctx, const mlx_http_req *req, mlx_http_resp *resp);
void http_ollama_chat(void *ctx, const mlx_http_req *req, mlx_http_resp *resp);
void http_ollama_tags(void *ctx, const mlx_http_req *req, mlx_http_resp *resp);
void http_ollama_ps(void *ctx, const mlx_http_req *req, mlx_http_resp *resp);
void http_ollama_show(void *ctx, const mlx_http_req *req, mlx_http_resp *resp);
void http_ollama_version(void *ctx, const mlx_http_req *req, mlx_http_resp *resp);

#endif
