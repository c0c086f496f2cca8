/*
 * internal.h — shared by the files of agent/http; not included elsewhere.
 *
 *   server.c       routes, start and stop, /healthz
 *   blobs.c        /blobs/sha256/<hex>
 *   metrics.c      /metrics
 *   call.c         a generation from request to answer, whole or streamed
 *   params.c       reading a request's JSON: fields, types, ranges
 *   openai.c       /v1/chat/completions, /v1/completions, /v1/models
 *   ollama.c       /api/generate, /api/chat
 *   ollama_info.c  /api/tags, /api/ps, /api/show
 */
#ifndef MLX_AGENT_HTTP_INTERNAL_H
#define MLX_AGENT_HTTP_INTERNAL_H

#include "agent/http/http.h"
#include "agent/runtime/runtime.h"
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

/* ---- the APIs' shared parts (call.c, params.c) ----------------------------- */

#define API_MAX_STOPS 16 /* stop strings a request may give */

/* Whose conventions an endpoint follows: errors, defaults, field names. */
typedef enum api_kind {
    API_OPENAI, /* {"error":{"message","type","code"}} */
    API_OLLAMA, /* {"error":"message"}, what Ollama's clients read */
} api_kind;

/* An error answer in kind's shape. code: a short machine-readable word. */
void api_error(mlx_http_resp *resp, api_kind kind, int status, const char *code,
               const char *fmt, ...) __attribute__((format(printf, 5, 6)));

/* The HTTP status and error code for an MLX_E* code: 400 for bad input,
 * 404 for an unknown model, 503 for a full queue, … */
int api_status_of(int mlx_code, const char **code);

/* The request's body as a JSON object. MLX_EINVAL with a sentence (where
 * the JSON breaks, by line and column) otherwise. *out: json_decref. */
int api_parse_object(const mlx_http_req *req, json_t **out, mlx_err *err);

/* MLX_EINVAL naming the first member of obj that is neither in known nor
 * in unsupported (both NULL-terminated), or that is in unsupported with a
 * value other than its neutral one (null, false, "", 1, an empty array or
 * object): such a field is understood, but this server cannot do it. */
int api_check_fields(const json_t *obj, const char *const *known,
                     const char *const *unsupported, mlx_err *err);

/* An optional number member within [min, max], into a float. */
int api_read_float(const json_t *obj, const char *key, double min, double max, float *out,
                   mlx_err *err);

/* Stop strings: a string or an array of at most max strings (NULL and
 * empty allowed). *out: mlx_free (the strings are borrowed from v). */
int api_read_stops(const json_t *v, const char *name, size_t max, const char ***out,
                   size_t *n, mlx_err *err);

/* Message content: a string, or OpenAI's array of {"type":"text","text":…}
 * parts, joined. *out: mlx_free. */
int api_read_content(const json_t *v, const char *name, char **out, mlx_err *err);

/* The messages of a chat (OpenAI's or Ollama's): objects with a role
 * (system — or developer —, user, assistant) and a content; they go to
 * c->req.messages. */
typedef struct api_call api_call;
int api_read_messages(const json_t *v, api_call *c, mlx_err *err);

/* A token's bytes as a JSON string: bytes that are not UTF-8 (half a
 * character) become U+FFFD. NULL when out of memory. */
json_t *api_lossy_string(const char *p, size_t n);

/* ---- a generation (call.c) -------------------------------------------------- */

/* How one API writes a generation's answer. */
typedef struct api_format {
    const char *stream_type; /* content type of a streamed answer */
    /* Streamed: the bytes for text as it comes, for the end, and for an
     * error after the answer began. */
    int (*chunk)(api_call *c, const runtime_event *text, mlx_buf *out);
    int (*end)(api_call *c, const runtime_event *done, mlx_buf *out);
    int (*fail)(api_call *c, const runtime_event *error, mlx_buf *out);
    /* Whole: the answer once done; c->text and c->tokens hold what came. */
    json_t *(*whole)(api_call *c, const runtime_event *done);
} api_format;

struct api_call {
    agent_http *h;
    api_kind kind;
    const api_format *fmt;
    const char *endpoint; /* for metrics */
    /* The request: strings of req and the arrays below borrow from body. */
    json_t *body;
    runtime_request req;
    engine_msg *msgs;
    char **contents; /* of msgs, owned */
    const char **stops;
    bool stream;
    bool chat;
    bool include_usage;  /* OpenAI's stream_options.include_usage */
    bool want_logprobs;  /* OpenAI: logprobs in the answer */
    bool said_role;      /* OpenAI: a chat stream's first delta had the role */
    char id[48];         /* of the answer: "chatcmpl-…", "cmpl-…" */
    int64_t created_s;   /* when it arrived, Unix seconds */
    int64_t arrived_ns;  /* monotonic */
    /* What came (a whole answer): the text, and the tokens when log
     * probabilities were asked for. */
    mlx_buf text;
    runtime_token *tokens;
    size_t n_tokens, cap_tokens;
    size_t text_offset; /* bytes of text before the next chunk (completions' text_offset) */
    /* While it runs. */
    runtime_job *job;
    struct MHD_Connection *conn;
    bool started, ended;
    int status; /* recorded in the metrics at the end */
    mlx_buf out;
    size_t out_pos;
};

/* A call for a request of kind on endpoint; the caller fills body, req,
 * stream and the rest. NULL when out of memory. */
api_call *api_call_new(agent_http *h, api_kind kind, const api_format *fmt,
                       const char *endpoint, const mlx_http_req *req);
void api_call_free(api_call *c);

/* An endpoint's way of reading its requests. */
typedef struct api_call_spec {
    api_kind kind;
    const api_format *format;
    const char *endpoint;
    bool chat;
    /* Fills c->req and the rest from c->body; MLX_EINVAL with a sentence. */
    int (*read)(api_call *c, mlx_err *err);
} api_call_spec;

/* The endpoints' specs (openai.c, ollama.c). */
extern const api_call_spec api_openai_chat, api_openai_completions;
extern const api_call_spec api_ollama_generate, api_ollama_chat;

/* Reads req's body by spec into a new call (*out: api_call_free).
 * MLX_EINVAL with a sentence for a body that is not valid. */
int api_call_parse(agent_http *h, const mlx_http_req *req, const api_call_spec *spec,
                   api_call **out, mlx_err *err);

/* api_call_parse, answering what goes wrong: NULL when it was answered
 * already (no runtime, a body that is not valid, out of memory). */
api_call *api_call_read(agent_http *h, const mlx_http_req *req, mlx_http_resp *resp,
                        const api_call_spec *spec);

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
