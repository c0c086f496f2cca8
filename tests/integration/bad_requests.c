/* bad_requests.c — the table of malformed requests and abused framing, sent
 * to any server of the serving API and judged (see bad_requests.h). */
#include "tests/integration/bad_requests.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <jansson.h>

/* A body of literal bytes (raw bytes and NULs kept), or one made by a
 * function, or none. */
#define BODY(s) s, sizeof(s) - 1, NULL
#define MADE(f) NULL, 0, f
#define NONE    NULL, 0, NULL

#define MSGS "\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}]"
#define M    "\"model\":\"stories\""

enum shape {
    OPENAI, /* {"error":{"message","type","code"}}: the /v1 endpoints, the router */
    OLLAMA, /* {"error":"message"}: Ollama's endpoints */
};

typedef struct row {
    const char *name;
    const char *method, *path;
    const char *body; /* len bytes; NULL: none, or made by make */
    size_t len;
    char *(*make)(size_t *len); /* caller frees */
    int status;
    int or_status; /* another right answer, or 0 */
    enum shape shape;
    const char *code; /* OpenAI's error code, or NULL when the API names none */
    const char *says; /* the message contains it */
} row;

/* ---- bodies too large or too long to write out ----------------------------------- */

static char *concat3(const char *head, const char *middle, size_t times, const char *tail,
                     size_t *len)
{
    size_t h = strlen(head), m = strlen(middle), t = strlen(tail);
    *len = h + m * times + t;
    char *p = malloc(*len + 1);
    if (p == NULL)
        abort();
    memcpy(p, head, h);
    for (size_t i = 0; i < times; i++)
        memcpy(p + h + i * m, middle, m);
    memcpy(p + h + m * times, tail, t + 1);
    return p;
}

/* 1 MiB of prompt, past --max-body. */
static char *huge_completion(size_t *len)
{
    return concat3("{" M ",\"prompt\":\"", "a", 1u << 20, "\"}", len);
}

static char *huge_generate(size_t *len)
{
    return concat3("{" M ",\"stream\":false,\"prompt\":\"", "a", 1u << 20, "\"}", len);
}

/* About 1200 tokens: far past --ctx, well within --max-body. */
#define LONG_TEXT "Once upon a time there was a little dog. "
static char *long_completion(size_t *len)
{
    return concat3("{" M ",\"max_tokens\":4,\"prompt\":\"", LONG_TEXT, 150, "\"}", len);
}

static char *long_chat_stream(size_t *len)
{
    return concat3("{" M ",\"stream\":true,\"max_tokens\":4,\"messages\":[{\"role\":\"user\","
                   "\"content\":\"",
                   LONG_TEXT, 150, "\"}]}", len);
}

static char *long_generate(size_t *len)
{
    return concat3("{" M ",\"stream\":false,\"options\":{\"num_predict\":4},\"prompt\":\"",
                   LONG_TEXT, 150, "\"}", len);
}

/* 20000 nested arrays: deeper than any parser should follow. */
static char *deep_nesting(size_t *len)
{
    size_t n = 20000;
    char *open = concat3("{" M ",\"prompt\":", "[", n, "", len);
    char *p = concat3(open, "]", n, "}", len);
    free(open);
    return p;
}

/* 17 stop strings: one past the API's 16. */
static char *seventeen_stops(size_t *len)
{
    return concat3("{" M "," MSGS ",\"stop\":[", "\"x\",", 16, "\"y\"]}", len);
}

/* ---- the table ------------------------------------------------------------------- */

static const row rows[] = {
    /* JSON that does not parse, or is not an object */
    {"syntax error names its line and column", "POST", CHAT,
     BODY("{\n  \"model\": \"stories\",\n  \"messages\" [{\"role\": \"user\", \"content\": "
          "\"hi\"}]\n}"),
     400, 0, OPENAI, "invalid_request", "invalid JSON at line 3, column "},
    {"truncated JSON", "POST", CMPL, BODY("{" M ",\"prompt\":\"Once up"), 400, 0, OPENAI,
     "invalid_request", "invalid JSON at line 1"},
    {"garbage after the object", "POST", CMPL, BODY("{" M ",\"prompt\":\"hi\"} {\"x\":1}"),
     400, 0, OPENAI, "invalid_request", "invalid JSON"},
    {"empty body (OpenAI)", "POST", CHAT, BODY(""), 400, 0, OPENAI, "invalid_request", "body"},
    {"empty body (Ollama)", "POST", GEN, BODY(""), 400, 0, OLLAMA, NULL, "body"},
    {"a top-level array", "POST", CHAT, BODY("[{" M "," MSGS "}]"), 400, 0, OPENAI,
     "invalid_request", "object"},
    {"a top-level string", "POST", GEN, BODY("\"Once upon a time\""), 400, 0, OLLAMA, NULL,
     "object"},
    {"trailing comma", "POST", OCHAT, BODY("{" M ",\"messages\":[],}"), 400, 0, OLLAMA, NULL,
     "invalid JSON at line 1"},
    {"a form, not JSON", "POST", SHOW, BODY("model=stories"), 400, 0, OLLAMA, NULL,
     "invalid JSON"},
    {"20000 nested arrays", "POST", CMPL, MADE(deep_nesting), 400, 0, OPENAI,
     "invalid_request", "invalid JSON"},
    {"a number past double range", "POST", CMPL,
     BODY("{" M ",\"prompt\":\"hi\",\"max_tokens\":1e400}"), 400, 0, OPENAI,
     "invalid_request", "invalid JSON"},
    {"an integer past 64 bits", "POST", CMPL,
     BODY("{" M ",\"prompt\":\"hi\",\"max_tokens\":123456789012345678901234567890}"), 400, 0,
     OPENAI, "invalid_request", "invalid JSON"},
    {"a member twice", "POST", CHAT, BODY("{" M ",\"model\":\"other\"," MSGS "}"), 400, 0,
     OPENAI, "invalid_request", "model"},

    /* members of the wrong type */
    {"model as a number", "POST", CHAT, BODY("{\"model\":7," MSGS "}"), 400, 0, OPENAI,
     "invalid_request", "model"},
    {"messages as a string", "POST", CHAT, BODY("{" M ",\"messages\":\"hi\"}"), 400, 0,
     OPENAI, "invalid_request", "messages"},
    {"content as a number", "POST", CHAT,
     BODY("{" M ",\"messages\":[{\"role\":\"user\",\"content\":42}]}"), 400, 0, OPENAI,
     "invalid_request", "content"},
    {"role as a number", "POST", CHAT,
     BODY("{" M ",\"messages\":[{\"role\":1,\"content\":\"hi\"}]}"), 400, 0, OPENAI,
     "invalid_request", "role"},
    {"temperature as a string", "POST", CHAT, BODY("{" M "," MSGS ",\"temperature\":\"hot\"}"),
     400, 0, OPENAI, "invalid_request", "temperature"},
    {"seed as a string", "POST", CHAT, BODY("{" M "," MSGS ",\"seed\":\"x\"}"), 400, 0,
     OPENAI, "invalid_request", "seed"},
    {"stream as \"yes\"", "POST", CMPL, BODY("{" M ",\"prompt\":\"hi\",\"stream\":\"yes\"}"),
     400, 0, OPENAI, "invalid_request", "stream"},
    {"stop as a number", "POST", CMPL, BODY("{" M ",\"prompt\":\"hi\",\"stop\":5}"), 400, 0,
     OPENAI, "invalid_request", "stop"},
    {"a number among the stops", "POST", CHAT, BODY("{" M "," MSGS ",\"stop\":[\"a\",1]}"),
     400, 0, OPENAI, "invalid_request", "stop"},
    {"max_tokens 1.5", "POST", CMPL, BODY("{" M ",\"prompt\":\"hi\",\"max_tokens\":1.5}"),
     400, 0, OPENAI, "invalid_request", "max_tokens"},
    {"prompt as a number", "POST", CMPL, BODY("{" M ",\"prompt\":42}"), 400, 0, OPENAI,
     "invalid_request", "prompt"},
    {"options as an array", "POST", GEN, BODY("{" M ",\"prompt\":\"hi\",\"options\":[1]}"),
     400, 0, OLLAMA, NULL, "options"},
    {"options.temperature as a string", "POST", GEN,
     BODY("{" M ",\"prompt\":\"hi\",\"options\":{\"temperature\":\"hot\"}}"), 400, 0, OLLAMA,
     NULL, "temperature"},
    {"keep_alive as an object", "POST", GEN,
     BODY("{" M ",\"prompt\":\"hi\",\"keep_alive\":{\"m\":5}}"), 400, 0, OLLAMA, NULL,
     "keep_alive"},
    {"messages as an object", "POST", OCHAT,
     BODY("{" M ",\"messages\":{\"role\":\"user\",\"content\":\"hi\"}}"), 400, 0, OLLAMA, NULL,
     "messages"},
    {"show: model as a number", "POST", SHOW, BODY("{\"model\":5}"), 400, 0, OLLAMA, NULL,
     "model"},

    /* values out of range */
    {"max_tokens -1", "POST", CMPL, BODY("{" M ",\"prompt\":\"hi\",\"max_tokens\":-1}"), 400,
     0, OPENAI, "invalid_request", "max_tokens"},
    {"max_tokens 0", "POST", CHAT, BODY("{" M "," MSGS ",\"max_tokens\":0}"), 400, 0, OPENAI,
     "invalid_request", "max_tokens"},
    {"max_completion_tokens 0", "POST", CHAT,
     BODY("{" M "," MSGS ",\"max_completion_tokens\":0}"), 400, 0, OPENAI, "invalid_request",
     "max_completion_tokens"},
    {"temperature 5", "POST", CHAT, BODY("{" M "," MSGS ",\"temperature\":5}"), 400, 0,
     OPENAI, "invalid_request", "temperature"},
    {"top_p 2", "POST", CMPL, BODY("{" M ",\"prompt\":\"hi\",\"top_p\":2}"), 400, 0, OPENAI,
     "invalid_request", "top_p"},
    {"top_logprobs 50", "POST", CHAT,
     BODY("{" M "," MSGS ",\"logprobs\":true,\"top_logprobs\":50}"), 400, 0, OPENAI,
     "invalid_request", "top_logprobs"},
    {"top_logprobs without logprobs", "POST", CHAT, BODY("{" M "," MSGS ",\"top_logprobs\":3}"),
     400, 0, OPENAI, "invalid_request", "logprobs"},
    {"completions: logprobs 6", "POST", CMPL, BODY("{" M ",\"prompt\":\"hi\",\"logprobs\":6}"),
     400, 0, OPENAI, "invalid_request", "logprobs"},
    {"presence_penalty 3", "POST", CHAT, BODY("{" M "," MSGS ",\"presence_penalty\":3}"), 400,
     0, OPENAI, "invalid_request", "presence_penalty"},
    {"frequency_penalty -2.5", "POST", CHAT,
     BODY("{" M "," MSGS ",\"frequency_penalty\":-2.5}"), 400, 0, OPENAI, "invalid_request",
     "frequency_penalty"},
    {"17 stop strings", "POST", CHAT, MADE(seventeen_stops), 400, 0, OPENAI, "invalid_request",
     "stop"},
    {"num_predict -5", "POST", GEN,
     BODY("{" M ",\"prompt\":\"hi\",\"options\":{\"num_predict\":-5}}"), 400, 0, OLLAMA, NULL,
     "num_predict"},

    /* members nobody knows: a typo must not silently change the answer */
    {"unknown top-level field", "POST", CHAT, BODY("{" M "," MSGS ",\"temprature\":0.5}"), 400,
     0, OPENAI, "invalid_request", "unknown field 'temprature'"},
    {"unknown field in a message", "POST", CHAT,
     BODY("{" M ",\"messages\":[{\"role\":\"user\",\"content\":\"hi\",\"mood\":\"x\"}]}"), 400,
     0, OPENAI, "invalid_request", "mood"},
    {"unknown field in stream_options", "POST", CHAT,
     BODY("{" M "," MSGS ",\"stream\":true,\"stream_options\":{\"include_usgae\":true}}"), 400,
     0, OPENAI, "invalid_request", "include_usgae"},
    {"unknown field (completions)", "POST", CMPL, BODY("{" M ",\"prompt\":\"hi\",\"foo\":1}"),
     400, 0, OPENAI, "invalid_request", "unknown field 'foo'"},
    {"unknown field in options", "POST", GEN,
     BODY("{" M ",\"prompt\":\"hi\",\"options\":{\"num_predcit\":4}}"), 400, 0, OLLAMA, NULL,
     "num_predcit"},
    {"generate's prompt sent to chat", "POST", OCHAT, BODY("{" M ",\"prompt\":\"hi\"}"), 400,
     0, OLLAMA, NULL, "prompt"},
    {"show: unknown field", "POST", SHOW, BODY("{\"modle\":\"stories\"}"), 400, 0, OLLAMA, NULL,
     "modle"},

    /* understood, but not served */
    {"tools", "POST", CHAT,
     BODY("{" M "," MSGS ",\"tools\":[{\"type\":\"function\",\"function\":{\"name\":\"f\"}}]}"),
     400, 0, OPENAI, "invalid_request", "tools"},
    {"n 2", "POST", CHAT, BODY("{" M "," MSGS ",\"n\":2}"), 400, 0, OPENAI, "invalid_request",
     "'n'"},
    {"best_of 3", "POST", CMPL, BODY("{" M ",\"prompt\":\"hi\",\"best_of\":3}"), 400, 0, OPENAI,
     "invalid_request", "best_of"},
    {"echo", "POST", CMPL, BODY("{" M ",\"prompt\":\"hi\",\"echo\":true}"), 400, 0, OPENAI,
     "invalid_request", "echo"},
    {"response_format json_object", "POST", CHAT,
     BODY("{" M "," MSGS ",\"response_format\":{\"type\":\"json_object\"}}"), 400, 0, OPENAI,
     "invalid_request", "response_format"},
    {"an image_url part", "POST", CHAT,
     BODY("{" M ",\"messages\":[{\"role\":\"user\",\"content\":[{\"type\":\"image_url\","
          "\"image_url\":{\"url\":\"data:image/png;base64,AAAA\"}}]}]}"),
     400, 0, OPENAI, "invalid_request", "image_url"},
    {"several prompts", "POST", CMPL, BODY("{" M ",\"prompt\":[\"a\",\"b\"]}"), 400, 0, OPENAI,
     "invalid_request", "prompt"},
    {"format json", "POST", GEN, BODY("{" M ",\"prompt\":\"hi\",\"format\":\"json\"}"), 400, 0,
     OLLAMA, NULL, "format"},
    {"images in a message", "POST", OCHAT,
     BODY("{" M ",\"messages\":[{\"role\":\"user\",\"content\":\"hi\",\"images\":[\"AAAA\"]}]}"),
     400, 0, OLLAMA, NULL, "images"},

    /* text that is not UTF-8, or not text */
    {"a raw 0xFF in a string", "POST", CHAT,
     BODY("{" M ",\"messages\":[{\"role\":\"user\",\"content\":\"h\xFFi\"}]}"), 400, 0, OPENAI,
     "invalid_request", "invalid JSON"},
    {"an overlong encoding of '/'", "POST", CMPL, BODY("{" M ",\"prompt\":\"a\xC0\xAF b\"}"),
     400, 0, OPENAI, "invalid_request", "invalid JSON"},
    {"a raw 0xFF in a prompt (Ollama)", "POST", GEN, BODY("{" M ",\"prompt\":\"\xFF\"}"), 400,
     0, OLLAMA, NULL, "invalid JSON"},
    {"a lone surrogate escape", "POST", CMPL, BODY("{" M ",\"prompt\":\"a\\ud800b\"}"), 400, 0,
     OPENAI, "invalid_request", "invalid JSON"},
    {"a \\u0000 in a string", "POST", CMPL, BODY("{" M ",\"prompt\":\"a\\u0000b\"}"), 400, 0,
     OPENAI, "invalid_request", "u0000"},

    /* roles and messages */
    {"role tool", "POST", CHAT,
     BODY("{" M ",\"messages\":[{\"role\":\"tool\",\"content\":\"hi\"}]}"), 400, 0, OPENAI,
     "invalid_request", "tool"},
    {"role wizard", "POST", CHAT,
     BODY("{" M ",\"messages\":[{\"role\":\"wizard\",\"content\":\"hi\"}]}"), 400, 0, OPENAI,
     "invalid_request", "wizard"},
    {"role robot (Ollama)", "POST", OCHAT,
     BODY("{" M ",\"messages\":[{\"role\":\"robot\",\"content\":\"hi\"}]}"), 400, 0, OLLAMA,
     NULL, "robot"},
    {"a message without a role", "POST", CHAT, BODY("{" M ",\"messages\":[{\"content\":\"hi\"}]}"),
     400, 0, OPENAI, "invalid_request", "role"},
    {"a message without content", "POST", CHAT,
     BODY("{" M ",\"messages\":[{\"role\":\"user\"}]}"), 400, 0, OPENAI, "invalid_request",
     "content"},
    {"no messages at all", "POST", CHAT, BODY("{" M ",\"messages\":[]}"), 400, 0, OPENAI,
     "invalid_request", "messages"},
    {"messages missing", "POST", CHAT, BODY("{" M "}"), 400, 0, OPENAI, "invalid_request",
     "messages"},
    {"prompt missing", "POST", CMPL, BODY("{" M ",\"max_tokens\":4}"), 400, 0, OPENAI,
     "invalid_request", "prompt"},
    {"model missing", "POST", CHAT, BODY("{" MSGS "}"), 400, 0, OPENAI, "invalid_request",
     "model"},
    {"model empty (Ollama)", "POST", GEN, BODY("{\"model\":\"\",\"prompt\":\"hi\"}"), 400, 0,
     OLLAMA, NULL, "model"},

    /* models the store does not have */
    {"unknown model", "POST", CHAT, BODY("{\"model\":\"no-such-model\"," MSGS "}"), 404, 0,
     OPENAI, "model_not_found", "no-such-model"},
    {"unknown tag", "POST", CMPL, BODY("{\"model\":\"stories:v9\",\"prompt\":\"hi\"}"), 404, 0,
     OPENAI, "model_not_found", "stories:v9"},
    {"unknown model, streamed (Ollama's default)", "POST", GEN,
     BODY("{\"model\":\"no-such-model\",\"prompt\":\"hi\"}"), 404, 0, OLLAMA, NULL,
     "no-such-model"},
    {"unknown model, chat streamed", "POST", OCHAT,
     BODY("{\"model\":\"no-such-model\",\"stream\":true," MSGS "}"), 404, 0, OLLAMA, NULL,
     "no-such-model"},
    {"show: unknown model", "POST", SHOW, BODY("{\"model\":\"no-such-model\"}"), 404, 0, OLLAMA,
     NULL, "no-such-model"},
    /* Store names only: a path is no name of the store, whether refused as
     * a name (400) or not found (404). */
    {"a file path as the model", "POST", CHAT,
     BODY("{\"model\":\"../../../etc/passwd\"," MSGS "}"), 404, 400, OPENAI, NULL, "passwd"},
    {"show: a file path as the model", "POST", SHOW, BODY("{\"model\":\"/etc/passwd\"}"), 404,
     400, OLLAMA, NULL, "passwd"},

    /* prompts past --ctx */
    {"prompt past --ctx", "POST", CMPL, MADE(long_completion), 400, 0, OPENAI,
     "context_length_exceeded", "tokens too long"},
    {"chat past --ctx, streamed", "POST", CHAT, MADE(long_chat_stream), 400, 0, OPENAI,
     "context_length_exceeded", "tokens too long"},
    {"prompt past --ctx (Ollama)", "POST", GEN, MADE(long_generate), 400, 0, OLLAMA, NULL,
     "tokens too long"},

    /* bodies past the server's limit (--max-body on the agent), which the
     * message names (bad_server.body_limit) */
    {"1 MiB body (OpenAI)", "POST", CMPL, MADE(huge_completion), 413, 0, OPENAI, NULL,
     "-byte limit"},
    {"1 MiB body (Ollama)", "POST", GEN, MADE(huge_generate), 413, 0, OLLAMA, NULL,
     "-byte limit"},

    /* endpoints and methods */
    {"GET on chat", "GET", CHAT, NONE, 405, 0, OPENAI, NULL, "GET"},
    {"PUT on completions", "PUT", CMPL, BODY("{}"), 405, 0, OPENAI, NULL, "PUT"},
    {"an endpoint this server lacks", "POST", "/v1/embeddings", BODY("{" M ",\"input\":\"hi\"}"),
     404, 0, OPENAI, NULL, "/v1/embeddings"},
    {"a path below an endpoint", "POST", CHAT "/extra", BODY("{" M "," MSGS "}"), 404, 0,
     OPENAI, NULL, CHAT "/extra"},
    {"no such path", "GET", "/nope", NONE, 404, 0, OPENAI, NULL, "/nope"},
};
#define N_ROWS (sizeof rows / sizeof rows[0])

int bad_requests_count(const char *endpoint, int status)
{
    int n = 0;
    for (size_t i = 0; i < N_ROWS; i++)
        n += strcmp(rows[i].path, endpoint) == 0 && rows[i].or_status == 0 &&
             rows[i].status == status;
    return n;
}

/* What is wrong with the answer to r, appended to why; true when nothing. */
static bool answer_is_right(const bad_server *srv, const row *r, const serving_reply *got,
                            char *why, size_t size)
{
    size_t used = strlen(why);
#define WRONG(...) (snprintf(why + used, size - used, __VA_ARGS__), false)
    if (got->status != r->status && (r->or_status == 0 || got->status != r->or_status))
        return WRONG("status %ld, expected %d%s", got->status, r->status,
                     r->or_status != 0 ? " (or the alternative)" : "");
    if (strncmp(got->content_type, "application/json", 16) != 0)
        return WRONG("Content-Type \"%s\", expected application/json", got->content_type);
    json_error_t jerr;
    json_t *v = json_loads(got->body, 0, &jerr);
    json_t *error = json_object_get(v, "error");
    const char *message = NULL;
    bool ok = true;
    if (v == NULL) {
        ok = WRONG("the body is not JSON (%s)", jerr.text);
    } else if (r->shape == OLLAMA) {
        message = json_string_value(error);
        if (message == NULL || message[0] == '\0')
            ok = WRONG("not Ollama's {\"error\":\"message\"}");
    } else {
        message = json_string_value(json_object_get(error, "message"));
        const char *type = json_string_value(json_object_get(error, "type"));
        const char *code = json_string_value(json_object_get(error, "code"));
        if (message == NULL || message[0] == '\0' || type == NULL || code == NULL ||
            code[0] == '\0')
            ok = WRONG("not OpenAI's {\"error\":{\"message\",\"type\",\"code\"}}");
        else if (strcmp(type, "invalid_request_error") != 0)
            ok = WRONG("type \"%s\", expected invalid_request_error", type);
        else if (r->code != NULL && strcmp(code, r->code) != 0)
            ok = WRONG("code \"%s\", expected \"%s\"", code, r->code);
    }
    if (ok && strstr(message, r->says) == NULL)
        ok = WRONG("the message does not mention \"%s\"", r->says);
    if (ok && got->status == 413 && strstr(message, srv->body_limit) == NULL)
        ok = WRONG("the message does not name the limit, %s bytes", srv->body_limit);
    json_decref(v);
    return ok;
#undef WRONG
}

void bad_requests_check(const bad_server *srv)
{
    static char failures[64 * 1024];
    size_t used = 0;
    int wrong = 0;
    for (size_t i = 0; i < N_ROWS; i++) {
        const row *r = &rows[i];
        if (!srv->serves_show && strcmp(r->path, SHOW) == 0)
            continue;
        size_t len = r->len;
        char *made = r->make != NULL ? r->make(&len) : NULL;
        const char *body = made != NULL ? made : r->body;
        serving_reply got;
        serving_call(srv->s, r->method, r->path, NULL, body, len, &got);
        char why[1024] = "";
        if (!answer_is_right(srv, r, &got, why, sizeof why)) {
            wrong++;
            used += (size_t)snprintf(failures + used, sizeof failures - used,
                                     "  %s (%s %s): %s; the answer: %.300s\n", r->name,
                                     r->method, r->path, why, got.body);
            if (used >= sizeof failures)
                used = sizeof failures - 1;
        }
        serving_reply_free(&got);
        free(made);
        if (!serving_healthy(srv->s))
            fail_msg("%s stopped answering /healthz after \"%s\" (%s %s); see %s",
                     srv->what, r->name, r->method, r->path, srv->log_path);
    }
    if (wrong > 0)
        fail_msg("%d of %zu malformed requests were answered wrongly by %s:\n%s", wrong,
                 N_ROWS, srv->what, failures);
}

/* ---- abused HTTP framing, on a raw socket ---------------------------------------- */

#define HEAD       "POST " CHAT " HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
#define VALID_BODY "{" M "," MSGS ",\"max_tokens\":2}"

typedef struct raw_row {
    const char *name;
    const char *bytes; /* len bytes, or made by make */
    size_t len;
    char *(*make)(size_t *len);
    bool half_close; /* the client stops sending after the bytes */
    int status;      /* the answer RFC 9112 requires, or 0: any 4xx */
    /* RFC 9112 6.3: where the framing is invalid or ambiguous the server
     * must close the connection after answering, or the bytes it did not
     * take as the body are read as the next request (smuggled). */
    bool must_close;
    bool may_close; /* no request came whole: closing without a word is right too */
} raw_row;

/* One header line of 100 KB. */
static char *long_header_line(size_t *len)
{
    return concat3(HEAD "X-Long: ", "x", 100 * 1024, "\r\nContent-Length: 2\r\n\r\n{}", len);
}

static char *many_headers(size_t *len)
{
    return concat3(HEAD, "X-Many: 1\r\n", 5000, "Content-Length: 2\r\n\r\n{}", len);
}

/* "{}" is a body every generation endpoint refuses (no model), so whichever
 * way a server reads these, a request it takes whole gets a 4xx; what
 * follows it is a second request smuggled in the first one's body. */
#define SMUGGLED "GET /v1/models HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"

static const raw_row raw_rows[] = {
    {"a header line of 100 KB", MADE(long_header_line), false, 0, false, false},
    {"5000 headers", MADE(many_headers), false, 0, false, false},
    {"a negative Content-Length", BODY(HEAD "Content-Length: -1\r\n\r\n" VALID_BODY), false,
     400, true, false},
    {"a Content-Length that is no number",
     BODY(HEAD "Content-Length: abc\r\n\r\n" VALID_BODY), false, 400, true, false},
    {"a Content-Length past 64 bits",
     BODY(HEAD "Content-Length: 123456789012345678901234567890\r\n\r\n" VALID_BODY), false, 0,
     true, false},
    {"two different Content-Lengths",
     BODY(HEAD "Content-Length: 2\r\nContent-Length: 46\r\n\r\n{}" SMUGGLED), false, 400,
     true, false},
    {"Transfer-Encoding and Content-Length both",
     BODY(HEAD "Transfer-Encoding: chunked\r\nContent-Length: 12\r\n\r\n2\r\n{}\r\n0\r\n\r\n"),
     false, 0, true, false},
    {"a Content-Length past the body, then close",
     BODY(HEAD "Content-Length: 1000\r\n\r\n{\"model\":"), true, 0, false, true},
    {"a chunk size that is no number",
     BODY(HEAD "Transfer-Encoding: chunked\r\n\r\nzz\r\n" VALID_BODY "\r\n0\r\n\r\n"), false,
     0, true, false},
    {"a chunk size past 64 bits",
     BODY(HEAD "Transfer-Encoding: chunked\r\n\r\nFFFFFFFFFFFFFFFFFFFFFFFF\r\n" VALID_BODY
               "\r\n0\r\n\r\n"),
     false, 0, true, false},
    /* RFC 9112 3.2: a server MUST answer 400 to HTTP/1.1 without Host. */
    {"HTTP/1.1 without Host", BODY("GET /healthz HTTP/1.1\r\n\r\n"), false, 400, false, false},
    {"a header line without a colon",
     BODY(HEAD "this is no header\r\nContent-Length: 2\r\n\r\n{}"), false, 0, false, false},
    {"a request line of garbage", BODY("\x01\x02\x03 nonsense\r\n\r\n"), false, 0, false,
     false},
};
#define N_RAW_ROWS (sizeof raw_rows / sizeof raw_rows[0])

static bool raw_answer_is_right(const raw_row *r, const serving_raw_reply *got, char *why,
                                size_t size)
{
    if (got->status == 0 && r->may_close && got->closed && got->head[0] == '\0')
        return true;
    if (got->status == 0)
        snprintf(why, size, "%s", got->closed ? "closed without a status line"
                                              : "no answer within 10 s");
    else if (r->status != 0 && got->status != r->status)
        snprintf(why, size, "status %d, expected %d", got->status, r->status);
    else if (got->status < 400 || got->status > 499)
        snprintf(why, size, "status %d, expected a 4xx", got->status);
    else if (r->must_close && !got->closed)
        snprintf(why, size, "the connection stayed open after the answer");
    else
        return true;
    return false;
}

void bad_requests_check_framing(const bad_server *srv)
{
    char failures[8192] = "";
    size_t used = 0;
    int wrong = 0;
    for (size_t i = 0; i < N_RAW_ROWS; i++) {
        const raw_row *r = &raw_rows[i];
        size_t len = r->len;
        char *made = r->make != NULL ? r->make(&len) : NULL;
        serving_raw_reply got;
        serving_raw(srv->s, made != NULL ? made : r->bytes, len, r->half_close,
                    r->must_close || r->may_close, 10000, &got);
        free(made);
        char why[256];
        if (!raw_answer_is_right(r, &got, why, sizeof why)) {
            wrong++;
            used += (size_t)snprintf(failures + used, sizeof failures - used,
                                     "  %s: %s; what came: [%.200s]\n", r->name, why,
                                     got.head);
            if (used >= sizeof failures)
                used = sizeof failures - 1;
        }
        if (!serving_healthy(srv->s))
            fail_msg("%s stopped answering /healthz after \"%s\"; see %s", srv->what,
                     r->name, srv->log_path);
    }
    if (wrong > 0)
        fail_msg("%d of %zu abused requests were answered wrongly by %s:\n%s", wrong,
                 N_RAW_ROWS, srv->what, failures);
}
