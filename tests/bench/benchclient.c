/* benchclient.c — the serving benchmarks' clients and their reading of
 * streamed (SSE) and whole /v1/completions answers. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "common/clock.h"
#include "tests/bench/benchutil.h"

#define REQUEST_TIMEOUT_MS 60000L

char *bench_completion_body(const char *model, const char *prompt, int max_tokens,
                            bool stream)
{
    json_t *v = json_pack("{s:s, s:s, s:i, s:f, s:b}", "model", model, "prompt", prompt,
                          "max_tokens", max_tokens, "temperature", 0.0, "stream", stream);
    if (v != NULL && stream)
        json_object_set_new(v, "stream_options", json_pack("{s:b}", "include_usage", 1));
    char *body = v != NULL ? json_dumps(v, JSON_COMPACT) : NULL;
    json_decref(v);
    if (body == NULL)
        abort();
    return body;
}

/* ---- one streamed answer --------------------------------------------------- */

static void sse_fail(bench_sse *x, const char *what, size_t len)
{
    if (!x->failed)
        snprintf(x->error, sizeof x->error, "%.*s", (int)(len < 200 ? len : 200), what);
    x->failed = true;
}

/* One SSE event ("data: …", without its blank line), read at time now. */
static void sse_event(bench_sse *x, const char *event, size_t len, int64_t now)
{
    if (len < 6 || memcmp(event, "data: ", 6) != 0)
        return; /* comments and other fields carry nothing we count */
    const char *data = event + 6;
    size_t n = len - 6;
    if (n == 6 && memcmp(data, "[DONE]", 6) == 0) {
        x->done = true;
        return;
    }
    json_t *v = json_loadb(data, n, 0, NULL);
    if (v == NULL || json_object_get(v, "error") != NULL) {
        sse_fail(x, event, len);
        json_decref(v);
        return;
    }
    json_t *choice = json_array_get(json_object_get(v, "choices"), 0);
    const char *text = json_string_value(json_object_get(choice, "text"));
    if (text != NULL && text[0] != '\0' && x->first_text_ns == 0)
        x->first_text_ns = now;
    json_t *usage = json_object_get(v, "usage");
    if (json_is_object(usage))
        x->tokens = json_integer_value(json_object_get(usage, "completion_tokens"));
    json_decref(v);
}

/* Whole events leave pending as soon as their blank line arrives. */
static size_t on_sse(char *bytes, size_t size, size_t nmemb, void *arg)
{
    int64_t now = mlx_time_mono_ns();
    bench_sse *x = &((bench_client *)arg)->sse;
    size_t n = size * nmemb;
    if (n > sizeof x->pending - x->n) {
        sse_fail(x, "an SSE event larger than 64 KiB", 31);
        x->n = 0;
        return n;
    }
    memcpy(x->pending + x->n, bytes, n);
    x->n += n;
    size_t start = 0;
    for (size_t i = 0; i + 1 < x->n; i++) {
        if (x->pending[i] == '\n' && x->pending[i + 1] == '\n') {
            sse_event(x, x->pending + start, i - start, now);
            start = i + 2;
            i++;
        }
    }
    memmove(x->pending, x->pending + start, x->n - start);
    x->n -= start;
    return n;
}

/* ---- one whole answer ------------------------------------------------------ */

static size_t on_whole(char *bytes, size_t size, size_t nmemb, void *arg)
{
    bench_client *c = arg;
    size_t n = size * nmemb;
    char *grown = realloc(c->answer, c->answer_len + n + 1);
    if (grown == NULL)
        return 0;
    c->answer = grown;
    memcpy(c->answer + c->answer_len, bytes, n);
    c->answer_len += n;
    c->answer[c->answer_len] = '\0';
    return n;
}

/* Takes the text and the token count of a whole answer into c; false when
 * it has none. */
static bool read_whole(bench_client *c)
{
    json_t *v = c->answer != NULL ? json_loads(c->answer, 0, NULL) : NULL;
    json_t *choice = json_array_get(json_object_get(v, "choices"), 0);
    const char *t = json_string_value(json_object_get(choice, "text"));
    if (t != NULL) {
        free(c->text);
        c->text = strdup(t);
        if (c->text == NULL)
            abort();
        c->tokens += json_integer_value(
            json_object_get(json_object_get(v, "usage"), "completion_tokens"));
    }
    json_decref(v);
    return t != NULL;
}

/* ---- the client ------------------------------------------------------------- */

void bench_client_open(bench_client *c, const char *url, const char *body, bool stream)
{
    c->url = url;
    c->body = body;
    c->stream = stream;
    c->headers = curl_slist_append(NULL, "Content-Type: application/json");
    c->curl = curl_easy_init();
    if (c->curl == NULL || c->headers == NULL)
        abort();
    curl_easy_setopt(c->curl, CURLOPT_URL, url);
    curl_easy_setopt(c->curl, CURLOPT_HTTPHEADER, c->headers);
    curl_easy_setopt(c->curl, CURLOPT_POSTFIELDS, body);
    curl_easy_setopt(c->curl, CURLOPT_TIMEOUT_MS, REQUEST_TIMEOUT_MS);
    curl_easy_setopt(c->curl, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(c->curl, CURLOPT_WRITEFUNCTION, stream ? on_sse : on_whole);
    curl_easy_setopt(c->curl, CURLOPT_WRITEDATA, c);
}

static void keep_times(bench_client *c, double total, double first)
{
    if (c->requests == c->cap) {
        c->cap = c->cap != 0 ? c->cap * 2 : 64;
        c->total_ms = realloc(c->total_ms, c->cap * sizeof *c->total_ms);
        c->first_ms = realloc(c->first_ms, c->cap * sizeof *c->first_ms);
        if (c->total_ms == NULL || c->first_ms == NULL)
            abort();
    }
    c->total_ms[c->requests] = total;
    c->first_ms[c->requests++] = first;
}

int bench_client_send(bench_client *c)
{
    bench_sse *x = &c->sse;
    memset(x, 0, offsetof(bench_sse, pending));
    c->answer_len = 0;
    if (c->answer != NULL)
        c->answer[0] = '\0';
    int64_t t0 = mlx_time_mono_ns();
    CURLcode rc = curl_easy_perform(c->curl);
    double ms = (double)(mlx_time_mono_ns() - t0) / 1e6;
    long status = 0;
    curl_easy_getinfo(c->curl, CURLINFO_RESPONSE_CODE, &status);
    char what[BENCH_ERROR_MAX];
    if (rc != CURLE_OK) {
        snprintf(what, sizeof what, "%s", curl_easy_strerror(rc));
        c->broken = true;
    } else if (c->stream &&
               (status != 200 || x->failed || !x->done || x->first_text_ns == 0)) {
        x->pending[x->n < sizeof x->pending ? x->n : x->n - 1] = '\0';
        snprintf(what, sizeof what, "status %ld: %.200s", status,
                 x->failed ? x->error : x->pending);
    } else if (!c->stream && (status != 200 || !read_whole(c))) {
        snprintf(what, sizeof what, "status %ld: %.200s", status,
                 c->answer != NULL ? c->answer : "");
    } else {
        keep_times(c, ms, c->stream ? (double)(x->first_text_ns - t0) / 1e6 : ms);
        c->tokens += c->stream ? x->tokens : 0;
        return 0;
    }
    if (c->errors++ == 0)
        snprintf(c->first_error, sizeof c->first_error, "%s", what);
    return -1;
}

void *bench_client_run(void *arg)
{
    bench_client *c = arg;
    while (mlx_time_mono_ms() < c->deadline_ms && !c->broken)
        bench_client_send(c);
    return NULL;
}

void bench_client_close(bench_client *c)
{
    curl_easy_cleanup(c->curl);
    curl_slist_free_all(c->headers);
    free(c->total_ms);
    free(c->first_ms);
    free(c->text);
    free(c->answer);
    memset(c, 0, sizeof *c);
}

double bench_clients_run(bench_client *clients, int n, int ms)
{
    int64_t t0 = mlx_time_mono_ns();
    for (int i = 0; i < n; i++) {
        clients[i].deadline_ms = mlx_time_mono_ms() + ms;
        if (pthread_create(&clients[i].tid, NULL, bench_client_run, &clients[i]) != 0)
            abort();
    }
    for (int i = 0; i < n; i++)
        pthread_join(clients[i].tid, NULL);
    return (double)(mlx_time_mono_ns() - t0) / 1e9;
}
