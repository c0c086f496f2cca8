/*
 * serving.h — a serving mlx-agent for the tests of its OpenAI and Ollama API.
 *
 * serving_start makes a fresh data directory whose store holds
 * stories260K.gguf (../shared/testdata) as "stories", starts `mlx-agent
 * serve` on free loopback ports with the caller's extra flags, and waits
 * for /healthz. serving_call is one plain HTTP exchange with it (any
 * method, raw body bytes, extra headers). serving_greedy_text gives
 * llama.cpp's greedy continuation of a prompt (reference.json), so an
 * answer is checked against an independent reference, not against
 * ourselves. serving_raw sends bytes no HTTP client would, on a socket.
 *
 * Lifecycle: serving_start, then any number of calls, then serving_stop,
 * which stops the agent and removes the directory. The harness kills a
 * daemon left running when a test aborts.
 */
#ifndef MLX_TESTS_SERVING_H
#define MLX_TESTS_SERVING_H

#include <stdbool.h>
#include <stddef.h>

#include "tests/integration/harness.h"

#define SERVING_MODEL "stories" /* the store name of stories260K */

typedef struct serving {
    char *dir;  /* owned: the data directory and the logs, removed at stop */
    char *data; /* owned: dir/data */
    int http_port;
    char base[64]; /* "http://127.0.0.1:PORT" */
    char listen[48]; /* the data plane's "tcp://127.0.0.1:PORT" */
    h_proc *agent;
} serving;

/* Starts the agent with extra flags (NULL-terminated, may be NULL). Exits
 * the test with TEST_SKIP, saying why, when the shared models are absent.
 * Returns 0, or -1 when the agent did not come up (its log is printed). */
int serving_start(serving *s, const char *tag, const char *const *extra);

/* SIGTERM, then the agent's exit status (0: it stopped cleanly); removes
 * the directory. */
int serving_stop(serving *s);

/* GET /healthz answers 200. */
bool serving_healthy(const serving *s);

typedef struct serving_reply {
    long status;       /* 0 when nothing came back */
    char *body;        /* NUL-terminated; serving_reply_free */
    size_t len;        /* bytes of body */
    char content_type[128];
    char request_id[128]; /* the X-Request-Id header, "" when absent */
} serving_reply;

/* method path (joined to s->base) with extra headers ("Name: value",
 * NULL-terminated, may be NULL) and body (len bytes, raw; NULL: none). A
 * body goes as application/json unless headers say otherwise. Returns 0, or
 * -1 when the exchange failed (out->status is then 0). */
int serving_call(const serving *s, const char *method, const char *path,
                 const char *const *headers, const void *body, size_t len,
                 serving_reply *out);
void serving_reply_free(serving_reply *r);

/* POST path with a JSON body that must be answered 200 with JSON; the
 * parsed answer (json_decref), or a failed test. */
json_t *serving_post_ok(const serving *s, const char *path, const char *json);

/* What came back on a raw connection. */
typedef struct serving_raw_reply {
    int status;      /* of the first status line; 0 when none came */
    bool whole_head; /* the first answer's head came whole */
    bool closed;     /* the server closed or reset the connection */
    char head[256];  /* the first bytes that came, for messages */
} serving_raw_reply;

/* Sends len raw bytes on a new connection to the agent's HTTP port (and
 * stops sending when the server answers early), shuts down the sending
 * side when half_close, then reads until the first answer's head is
 * whole — or, with until_closed, until the server closes the connection —
 * or timeout_ms passes. For what no HTTP client would send. */
void serving_raw(const serving *s, const void *bytes, size_t len, bool half_close,
                 bool until_closed, int timeout_ms, serving_raw_reply *out);

/* llama.cpp's greedy continuation of prompt by stories260K (static
 * storage), or a failed test when reference.json has no run for it. */
const char *serving_greedy_text(const char *prompt);

#endif
