/*
 * api.h — OpenAI's and Ollama's generation APIs as data: reading a request
 * body into a neutral api_request, and writing an answer from neutral
 * api_events, whole (one JSON object), streamed (OpenAI's Server-Sent
 * Events, Ollama's NDJSON lines) or as an error in each API's shape.
 *
 * The agent serves these endpoints from its own runtime and the
 * coordinator serves the same endpoints by routing to agents; both must
 * refuse the same bodies with the same sentences and write the same bytes,
 * so the reading and the writing live here, in neither. Nothing here knows
 * a runtime or an engine: the caller converts api_request into what runs
 * it, and what comes back into api_events.
 *
 * Part of libmlxcommon rather than a library of its own: it needs only
 * jansson and common's helpers, both binaries already link libmlxcommon,
 * and a static library's unused objects stay out of mlxctl.
 *
 * Reading: every member must be one the endpoint knows, of the right type
 * and within range; an unknown member, or an understood one asking for
 * what this server cannot do, is refused with a sentence naming it, never
 * silently ignored (a typo in a field name must not change an answer).
 *
 * Lifecycle of a request: api_request_parse fills it (on failure it is left
 * empty, needing no fini); api_request_fini frees it. Its strings borrow
 * from its own body, so they live until api_request_fini.
 * Lifecycle of an answer: api_answer_init once per request; then, for a
 * stream, api_write_chunk per TEXT event and api_write_end or
 * api_write_fail once; or api_answer_whole once.
 *
 * Thread safety: no shared state; a request and an answer belong to one
 * thread at a time.
 */
#ifndef MLX_COMMON_API_H
#define MLX_COMMON_API_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/buf.h"
#include "common/err.h"
#include "common/http_server.h"
#include "common/limits.h"

#define API_MAX_STOPS MLX_MAX_STOPS /* stop strings a request may give */
/* Alternatives a chat request may ask for per token (top_logprobs); the
 * agent's runtime keeps as many (RUNTIME_MAX_TOP_LOGPROBS). */
#define API_MAX_TOP_LOGPROBS 20
/* Bytes of one token's piece (the engine's ENGINE_MAX_PIECE): longer
 * pieces are cut when written as a JSON string. */
#define API_MAX_PIECE 512

/* Whose conventions an endpoint follows: errors, defaults, field names. */
typedef enum api_kind {
    API_OPENAI, /* {"error":{"message","type","code"}}, SSE streams */
    API_OLLAMA, /* {"error":"message"}, what Ollama's clients read; NDJSON */
} api_kind;

/* ---- requests ---------------------------------------------------------------- */

/* Sampling settings, with the API's defaults where the body is silent:
 * OpenAI's endpoints take llama.cpp's server's (temperature 0.8, top_k 40,
 * top_p 0.95, min_p 0.05, repeat_penalty 1 over 64 tokens), Ollama's its
 * own (api/types.go: top_p 0.9, min_p 0, repeat_penalty 1.1). */
typedef struct api_sampling {
    float temperature;     /* 0: greedy */
    int32_t top_k;         /* 0: off */
    float top_p;           /* 1: off */
    float min_p;           /* 0: off */
    float repeat_penalty;  /* 1: off; over the last repeat_last_n tokens */
    int32_t repeat_last_n; /* 0: off */
    float presence_penalty, frequency_penalty; /* 0: off */
    uint64_t seed;         /* the body's, else drawn at random per request */
} api_sampling;

typedef struct api_message {
    const char *role;    /* "system" (OpenAI's "developer" too), "user", "assistant" */
    char *content;       /* text parts joined; owned by the request */
} api_message;

typedef struct api_request {
    api_kind kind;
    bool chat;              /* messages, not a prompt */
    json_t *body;           /* the parsed body, owned; strings below borrow from it */
    const char *model;      /* never empty */
    const char *prompt;     /* a completion's (or generate's) text, or NULL */
    api_message *messages;  /* a chat's, in order; owned (contents too) */
    size_t n_messages;      /* 0 for an Ollama chat that only loads */
    const char *system;     /* Ollama's generate; may be NULL */
    bool as_user;           /* Ollama's generate without raw: the prompt is a
                               user's turn, rendered in the chat format */
    api_sampling sampling;
    const char **stops;     /* n_stops non-empty strings; array owned */
    size_t n_stops;
    int32_t max_tokens;     /* -1: until the model stops or the context ends */
    int64_t keep_alive_ms;  /* Ollama's; -1: the server's; 0: unload when done */
    bool stream;            /* OpenAI: false unless asked; Ollama: true unless not */
    bool include_usage;     /* OpenAI's stream_options.include_usage */
    bool logprobs;          /* OpenAI: log probabilities in the answer */
    int32_t top_logprobs;   /* 0: none; k > 0: k alternatives per token; -1:
                               each token's own alone */
    const char *affinity;   /* OpenAI's prompt_cache_key, else its user:
                               requests that share it may share a node (and
                               its prompt cache); NULL when absent */
} api_request;

/* An endpoint's way of reading its requests. */
typedef struct api_spec {
    api_kind kind;
    bool chat;
    const char *endpoint; /* "/v1/chat/completions", … */
    /* Fills r from r->body; MLX_EINVAL with a sentence. */
    int (*read)(api_request *r, mlx_err *err);
} api_spec;

extern const api_spec api_openai_chat, api_openai_completions; /* openai.c */
extern const api_spec api_ollama_generate, api_ollama_chat;   /* ollama.c */

/* Reads body (len bytes, as the HTTP server hands it) by spec into *out.
 * MLX_EINVAL with a sentence for a body that is not valid, MLX_ENOMEM,
 * MLX_EINTERNAL when no random seed could be drawn; *out is then empty.
 * Borrows body only during the call. */
int api_request_parse(const api_spec *spec, const char *body, size_t len, api_request *out,
                      mlx_err *err);
void api_request_fini(api_request *r);

/* The body as a JSON object: MLX_EINVAL with a sentence (where the JSON
 * breaks, by line and column) otherwise. *out: json_decref. */
int api_parse_object(const char *body, size_t len, json_t **out, mlx_err *err);

/* A field this server understands but cannot serve. It is accepted only
 * with the value that asks for nothing: null, false, "", [] or {}, or, for
 * a number, off (n and best_of 1, mirostat 0, typical_p 1). */
typedef struct api_unsupported {
    const char *name; /* NULL ends a table */
    double off;
} api_unsupported;

/* MLX_EINVAL naming the first member of obj that is neither in known
 * (NULL-terminated) nor in unsupported (may be NULL), or that is in
 * unsupported with a value other than the one that asks for nothing. */
int api_check_fields(const json_t *obj, const char *const *known,
                     const api_unsupported *unsupported, mlx_err *err);

/* ---- answers ----------------------------------------------------------------- */

/* One generated token, for OpenAI's logprobs. Strings are borrowed. */
typedef struct api_alt {
    const char *text; /* its piece (may be half a UTF-8 character) */
    size_t len;
    float logprob;
} api_alt;

typedef struct api_token {
    const char *text; /* its piece, len bytes (may hold a NUL) */
    size_t len;
    float logprob;
    api_alt top[API_MAX_TOP_LOGPROBS]; /* most likely first */
    size_t n_top;
} api_token;

typedef enum api_event_kind {
    API_EVENT_TEXT,  /* text that is final */
    API_EVENT_DONE,  /* the end, with usage and timings */
    API_EVENT_ERROR, /* the end, after the answer began */
} api_event_kind;

/* What a generation produced; every pointer is borrowed for the call that
 * takes the event. */
typedef struct api_event {
    api_event_kind kind;
    /* TEXT: the text, and its tokens when log probabilities were asked for. */
    const char *text;
    size_t len;
    const api_token *tokens;
    size_t n_tokens;
    /* DONE */
    const char *finish_reason; /* "stop" or "length" */
    uint32_t prompt_tokens, completion_tokens;
    /* Ollama's durations, ns: loading the model, reading the prompt,
     * generating, and the whole request. */
    int64_t load_ns, prompt_eval_ns, eval_ns, total_ns;
    /* ERROR: the HTTP status and code word (api_status_of) and a sentence. */
    int status;
    const char *code;
    const char *message;
} api_event;

/* An answer being written for one request: what every chunk repeats, and
 * the state a stream carries from chunk to chunk. */
typedef struct api_answer {
    api_kind kind;
    bool chat;
    const char *model;   /* borrowed, as the request named it */
    const char *id;      /* the request's id, borrowed: OpenAI's "chatcmpl-<id>" */
    int64_t created_s;   /* when it arrived, Unix seconds */
    bool include_usage;
    bool logprobs;
    bool said_role;      /* OpenAI: a chat stream's first delta had the role */
    size_t text_offset;  /* bytes streamed so far (completions' text_offset) */
} api_answer;

/* r, id and what they point to must outlive the answer. */
void api_answer_init(api_answer *a, const api_request *r, const char *id, int64_t created_s);

/* The content type of a streamed answer: text/event-stream or
 * application/x-ndjson. Static. */
const char *api_stream_type(api_kind kind);

/* A streamed answer's bytes, appended to out: for a TEXT event (nothing
 * for an Ollama one without text), for DONE (OpenAI: the last chunk with
 * the finish reason, the usage chunk when asked for, "data: [DONE]";
 * Ollama: the last line with the durations), for an ERROR after the
 * stream began (the error in the API's shape as one chunk). MLX_ENOMEM, or
 * the buffer's MLX_ETOOBIG. */
int api_write_chunk(api_answer *a, const api_event *text, mlx_buf *out);
int api_write_end(api_answer *a, const api_event *done, mlx_buf *out);
int api_write_fail(api_answer *a, const api_event *error, mlx_buf *out);

/* The whole answer once done: text (len bytes) and the tokens that made
 * it (when log probabilities were asked for), all borrowed. Caller
 * json_decrefs; NULL when out of memory. */
json_t *api_answer_whole(api_answer *a, const char *text, size_t len, const api_token *tokens,
                         size_t n_tokens, const api_event *done);

/* Ollama's answer to a request that only loads (or, done_reason "unload",
 * unloads) its model. Caller json_decrefs; NULL when out of memory. */
json_t *api_answer_load(api_answer *a, const char *done_reason, int64_t load_ns);

/* ---- errors ------------------------------------------------------------------ */

/* The HTTP status and error code word for an MLX_E* code: 400 for bad
 * input, 404 for an unknown model, 503 for a full queue, … *code: static. */
int api_status_of(int mlx_code, const char **code);

/* Fills an ERROR event from an MLX_E* code and a sentence (borrowed). */
void api_event_error(api_event *ev, int mlx_code, const char *message);

/* An error in kind's shape: OpenAI's {"error":{"message","type","code"}}
 * (type server_error from 500 on, else invalid_request_error), Ollama's
 * {"error":"message"}. Caller json_decrefs; NULL when out of memory. */
json_t *api_error_json(api_kind kind, int status, const char *code, const char *message);

/* The same, as resp's answer with status. code: a short machine word. */
void api_error(mlx_http_resp *resp, api_kind kind, int status, const char *code,
               const char *fmt, ...) __attribute__((format(printf, 5, 6)));

#endif
