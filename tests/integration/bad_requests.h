/*
 * bad_requests.h — malformed requests to the serving API and what each must
 * be answered, for every server of that API: an agent (it_api_bad_input.c)
 * and the coordinator in front of agents (it_front_bad_input.c), which read
 * requests with the same code and must refuse them alike.
 *
 * The table: broken JSON, wrong types, values out of range, unknown and
 * unsupported fields, broken UTF-8, unknown models, prompts past the
 * agent's --ctx (BAD_REQUESTS_CTX), bodies past the server's limit,
 * unknown endpoints and methods. Each row says the 4xx status, the error
 * in the endpoint's shape (OpenAI's {"error":{"message","type","code"}} on
 * the /v1 endpoints and the router's refusals, Ollama's {"error":"…"} on
 * Ollama's endpoints) and what the message must name. Then abused HTTP framing on a raw
 * socket: a 4xx, or a closed connection where no request came whole, and the connection
 * closed where RFC 9112 requires it.
 *
 * Each check sends every row, fails the test once with every wrong answer
 * listed, and fails at once when the server stops answering /healthz.
 */
#ifndef MLX_TESTS_BAD_REQUESTS_H
#define MLX_TESTS_BAD_REQUESTS_H

#include <stdbool.h>

#include "tests/integration/serving.h"

#define CHAT  "/v1/chat/completions"
#define CMPL  "/v1/completions"
#define GEN   "/api/generate"
#define OCHAT "/api/chat"
#define SHOW  "/api/show"

/* The --ctx every agent behind the server must have, so that the long
 * prompts of the table pass it. */
#define BAD_REQUESTS_CTX "64"

/* The server the requests go to. */
typedef struct bad_server {
    const char *what;       /* "the agent", for messages */
    const serving *s;       /* its base URL and HTTP port; borrowed */
    const char *log_path;   /* named when it stops answering */
    const char *body_limit; /* the byte limit a 413 must name, "65536" */
    bool serves_show;       /* it serves POST /api/show: those rows are sent */
} bad_server;

void bad_requests_check(const bad_server *srv);
void bad_requests_check_framing(const bad_server *srv);

/* How many rows sent to endpoint must be answered status (and nothing
 * else), for a server's request counters. */
int bad_requests_count(const char *endpoint, int status);

#endif
