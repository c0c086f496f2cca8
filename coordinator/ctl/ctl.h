/*
 * ctl.h — internal to mlxctl: the options every command shares, the calls
 * to the coordinator's API (whole answers and event streams), generations
 * (run, chat) and output helpers (tables, sizes, ages).
 *
 * Output rules: tables are aligned and coloured only when stdout is a
 * terminal and NO_COLOR is unset; --json prints exactly the JSON the API
 * returned; errors are one sentence on stderr.
 *
 * Everything here runs on the main thread, the only one mlxctl has.
 */
#ifndef MLX_COORDINATOR_CTL_H
#define MLX_COORDINATOR_CTL_H

#include <jansson.h>
#include <signal.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/buf.h"
#include "common/config.h"

/* Every command's options begin with these fields, in this order. */
typedef struct ctl_opts {
    char *coordinator;
    char *api_key;
    bool json;
} ctl_opts;

#define CTL_COMMON_OPTS(type)                                                            \
    {"coordinator",                                                                      \
     0,                                                                                  \
     MLX_OPT_STR,                                                                        \
     offsetof(type, common.coordinator),                                                 \
     "http://127.0.0.1:7480",                                                            \
     "URL",                                                                              \
     "the coordinator's HTTP address",                                                   \
     .check = mlx_check_http_url},                                                       \
        {"api-key",                                                                      \
         0,                                                                              \
         MLX_OPT_STR,                                                                    \
         offsetof(type, common.api_key),                                                 \
         "",                                                                             \
         "KEY",                                                                          \
         "API key sent as a bearer token (none: loopback bootstrap)"},                   \
    {                                                                                    \
        "json", 0, MLX_OPT_BOOL, offsetof(type, common.json), "false", NULL,             \
            "print the API's JSON instead of tables or text"                             \
    }

extern const mlx_cmd ctl_cmd_nodes;
extern const mlx_cmd ctl_cmd_models;
extern const mlx_cmd ctl_cmd_ps;
extern const mlx_cmd ctl_cmd_keys_create;
extern const mlx_cmd ctl_cmd_keys_list;
extern const mlx_cmd ctl_cmd_keys_revoke;
extern const mlx_cmd ctl_cmd_run;
extern const mlx_cmd ctl_cmd_chat;
extern const mlx_cmd ctl_cmd_top;
extern const mlx_cmd ctl_cmd_bench;

/* Sends method to path with body_text (JSON, may be NULL) and the API key as
 * a bearer token, and parses the JSON answer (*out: caller decrefs). On
 * failure prints one sentence and returns the code: a refused key or scope
 * is MLX_EPERM, a rate limit MLX_EBUSY, a 400 (bad input) MLX_EUSAGE. When
 * raw is not NULL it also receives the body text (caller frees with
 * mlx_free). */
int ctl_request(const ctl_opts *o, const char *method, const char *path,
                const char *body_text, json_t **out, char **raw);

/* ctl_request with its own time limit instead of 10 s, for a call that
 * runs work on the fleet before it answers (a bench). */
int ctl_request_wait(const ctl_opts *o, const char *method, const char *path,
                     const char *body_text, int timeout_ms, json_t **out, char **raw);

/* ctl_request with GET. */
int ctl_get(const ctl_opts *o, const char *path, json_t **out, char **raw);

/* ctl_request's POST for a generation, which is answered only when the
 * last token is made: it may take many minutes. */
int ctl_post_generation(const ctl_opts *o, const char *path, const char *body_text,
                        json_t **out, char **raw);

/* What a listing command (nodes, models, ps, keys list) fetches and how it
 * shows it. */
typedef struct ctl_list_view {
    const char *path;     /* GET this */
    const char *list_key; /* the answer's array */
    const char *empty;    /* said when the array is empty */
    void (*print)(const json_t *list);
} ctl_list_view;

/* GETs v->path and prints the API's JSON as it came (--json), v->empty, or
 * v->print's table. Returns 0, or the code after one sentence on stderr. */
int ctl_list(const ctl_opts *o, const ctl_list_view *v);

/* ---- Server-Sent Events (sse.c) ---- */

/* An event's data: its data lines joined by '\n', NUL-terminated, borrowed
 * for the call. Returns 0 to go on; anything else stops the stream. */
typedef int (*ctl_sse_fn)(void *arg, const char *data, size_t len);

/* A stream's reader: fed bytes cut anywhere, it calls fn once per whole
 * event. Lifecycle: ctl_sse_init, ctl_sse_feed any number of times,
 * ctl_sse_fini (also after a failed feed). */
typedef struct ctl_sse {
    mlx_buf line;  /* the line being read, without its end */
    mlx_buf data;  /* the event's data so far */
    bool has_data; /* the event has a data line (perhaps an empty one) */
    bool after_cr; /* the last byte was '\r': a '\n' next is its pair */
    bool too_big;  /* a line or an event's data passed the maximum */
    ctl_sse_fn fn;
    void *arg;
} ctl_sse;

/* max bounds a line and an event's data, in bytes. */
void ctl_sse_init(ctl_sse *s, size_t max, ctl_sse_fn fn, void *arg);
/* Returns 0, fn's nonzero verdict (the rest of p is not read), or
 * MLX_ETOOBIG (too_big set) when a line or an event passed max. */
int ctl_sse_feed(ctl_sse *s, const char *p, size_t n);
void ctl_sse_fini(ctl_sse *s);

/* POSTs body_text to path and hands each event of the answer's stream to
 * on_event as it arrives. A refusal (any status but 2xx) is reported as
 * ctl_request reports it. Returns 0 once the stream ended, on_event's
 * nonzero verdict when it stopped it (on_event reports its own failures),
 * or the code after one sentence on stderr. */
int ctl_stream(const ctl_opts *o, const char *path, const char *body_text,
               ctl_sse_fn on_event, void *arg);

/* ---- generations (generate.c): run and chat ---- */

/* The sampling flags of run and chat; NULL or 0: the coordinator's default. */
typedef struct ctl_sampling {
    char *system;       /* the system prompt */
    int64_t max_tokens; /* 0: until the model stops */
    char *temperature;  /* checked decimal text, so that "unset" is NULL */
    char *top_p;
    char *seed;
} ctl_sampling;

/* The options of run and chat: the common ones, then the sampling flags
 * (ctl_gen_opts_table). */
typedef struct ctl_gen_opts {
    ctl_opts common;
    ctl_sampling sampling;
} ctl_gen_opts;

extern const mlx_opt ctl_gen_opts_table[];

/* One chat completion: what to ask, and what to do with the answer. */
typedef struct ctl_generation {
    const char *model;
    const json_t *messages; /* [{role, content}…]; borrowed */
    const char *session;    /* keeps requests that share it on one node; or NULL */
    /* Set by a signal handler to cut the streamed answer short at its next
     * piece; NULL: never. */
    const volatile sig_atomic_t *stop;
    mlx_buf *reply; /* the answer's text is appended here; or NULL */
} ctl_generation;

/* Asks for g's completion and streams its text to stdout as it comes
 * (flushed piece by piece), or with --json prints the API's whole JSON
 * answer on one line; either way a newline follows. Returns 0; MLX_ECLOSED
 * when *g->stop cut the stream short (no sentence: the user asked); or the
 * code after one sentence on stderr, also when the stream ended with an
 * error event or before its end. */
int ctl_generate(const ctl_gen_opts *o, const ctl_generation *g);

/* Appends {"role": role, "content": content} to messages. Returns 0,
 * MLX_EUSAGE when content is not UTF-8 text, or MLX_ENOMEM, after one
 * sentence on stderr. */
int ctl_message_add(json_t *messages, const char *role, const char *content);

/* ---- tables ---- */

typedef enum ctl_color {
    CTL_PLAIN,
    CTL_GREEN,
    CTL_YELLOW,
    CTL_RED,
    CTL_DIM,
} ctl_color;

typedef struct ctl_table ctl_table;

ctl_table *ctl_table_new(const char *const *headers, size_t columns);
/* Adds a cell to the current row (rows end after `columns` cells). */
void ctl_table_cell(ctl_table *t, ctl_color color, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
void ctl_table_print(ctl_table *t);
void ctl_table_free(ctl_table *t);

/* A node state's colour: up green, suspect yellow, down red, others dim. */
ctl_color ctl_state_color(const char *state);

/* obj[key] as a count (0 when absent or negative) or a string ("" when
 * absent); borrowed. */
uint64_t ctl_json_u64(const json_t *obj, const char *key);
const char *ctl_json_str(const json_t *obj, const char *key);

/* "12.3 GiB"; out needs 16 bytes. */
void ctl_format_bytes(uint64_t bytes, char *out, size_t size);
/* "4s", "3m", "2h", "5d" since then_unix_ms; out needs 16 bytes. */
void ctl_format_age(int64_t then_unix_ms, char *out, size_t size);

#endif
