/*
 * bench_http.c — what serving over HTTP costs, measured on stories260K.
 *
 *   load      1, 8 and 64 clients. Each client sends streaming
 *             /v1/completions requests back to back for about 5 s to an
 *             agent started with --parallel 8 --queue 128. The requests
 *             are greedy, with max_tokens 32. Prints requests/s, generated
 *             tokens/s and the time to first token, p50 and p95. TTFT is
 *             the time from sending a request to the first SSE event that
 *             carries text. Beside each row: the cores the agent and
 *             the benchmark's own clients kept busy, since on a small
 *             machine the clients compete with the agent for the CPU.
 *   overhead  the same greedy request, sent 20 times through `mlx-agent run
 *             --json` and 20 times as a non-streaming /v1/completions to
 *             the warm agent from one client. The engine's time is
 *             prompt_ms + generation_ms, without process start or model
 *             load; the HTTP time is wall time. Prints both medians, their
 *             ratio and the milliseconds HTTP adds. Both texts are greedy,
 *             so the benchmark warns when they differ. At the end, the
 *             count of warnings and errors in the agent's log.
 *
 * The model is ../shared/testdata/stories260K.gguf, added as "stories" to
 * a temporary store.
 *
 * Usage: bench_http. Exits 77 when the model is absent. Prints results and
 * the machine; it never asserts a time.
 */
#include <pthread.h>
#include <stddef.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include <curl/curl.h>
#include <jansson.h>

#include "common/clock.h"
#include "common/parse.h"
#include "tests/integration/harness.h"
#include "tests/support/testutil.h"

#define MODEL_NAME         "stories"
#define PROMPT             "Once upon a time"
#define MAX_TOKENS         32
#define MAX_TOKENS_ARG     "32"
#define PARALLEL           "8"
#define QUEUE              "128"
#define LEVEL_MS           5000 /* how long each level's clients keep sending */
#define OVERHEAD_RUNS      20
#define START_TIMEOUT_MS   30000
#define REQUEST_TIMEOUT_MS 60000L
#define RUN_TIMEOUT_MS     60000
#define PENDING_MAX        65536 /* unparsed SSE bytes; one event is a few hundred */
#define ERROR_MAX          256

/* ---- the agent ----------------------------------------------------------- */

struct agent {
    char *dir;     /* owned: a temporary directory holding the store and the log */
    char *data;    /* owned: dir/data */
    char base[64]; /* "http://127.0.0.1:PORT" */
    h_proc *proc;
};

static bool healthz_ok(void *url)
{
    long status = 0;
    json_decref(h_get_json(url, &status));
    return status == 200;
}

/* Adds the model to a fresh store and starts `mlx-agent serve` on it. */
static int agent_start(struct agent *a, const char *model_path)
{
    a->dir = test_tmpdir("bench-http");
    a->data = test_join(a->dir, "data");
    const char *add[] = {"cache",    "add",    model_path, "--name",
                         MODEL_NAME, "--data", a->data,    NULL};
    char *err = NULL;
    int status = h_run("mlx-agent", add, RUN_TIMEOUT_MS, NULL, &err);
    if (status != 0) {
        fprintf(stderr, "mlx-agent cache add failed (exit %d): %s\n", status, err);
        free(err);
        return -1;
    }
    free(err);
    int port = h_free_port();
    char http[32], listen[48], health[96];
    snprintf(http, sizeof http, "127.0.0.1:%d", port);
    snprintf(listen, sizeof listen, "tcp://127.0.0.1:%d", h_free_port());
    snprintf(a->base, sizeof a->base, "http://127.0.0.1:%d", port);
    snprintf(health, sizeof health, "%s/healthz", a->base);
    const char *args[] = {"serve",    "--data",  a->data,    "--http", http,
                          "--listen", listen,    "--ollama", "",       "--parallel",
                          PARALLEL,   "--queue", QUEUE,      NULL};
    a->proc = h_spawn("agent", a->dir, "mlx-agent", args);
    if (!h_wait_for(healthz_ok, health, START_TIMEOUT_MS)) {
        char *log = test_read_file(a->proc->log_path, NULL);
        fprintf(stderr, "the agent did not answer %s within %d ms; its log:\n%s\n",
                health, START_TIMEOUT_MS, log != NULL ? log : "(none)");
        free(log);
        return -1;
    }
    return 0;
}

/* Says how many warnings and errors the agent logged, and the first. */
static void agent_log_report(const char *log_path)
{
    FILE *f = fopen(log_path, "r");
    char line[1024], first[1024] = "";
    int n = 0;
    while (f != NULL && fgets(line, sizeof line, f) != NULL) {
        if (strncmp(line, "warn ", 5) != 0 && strncmp(line, "error ", 6) != 0)
            continue;
        if (n++ == 0)
            snprintf(first, sizeof first, "%.*s", (int)strcspn(line, "\n"), line);
    }
    if (f != NULL)
        fclose(f);
    printf("agent log   %d warnings and errors%s%s\n", n, n > 0 ? "; the first: " : "",
           first);
}

static void agent_stop(struct agent *a)
{
    if (a->proc != NULL) {
        char log_path[sizeof a->proc->log_path];
        snprintf(log_path, sizeof log_path, "%s", a->proc->log_path);
        int status = h_stop(a->proc);
        if (status != 0)
            printf("warning     the agent exited with status %d when stopped\n", status);
        agent_log_report(log_path);
    }
    free(a->data);
    test_tmpdir_remove(a->dir);
}

/* A client's kept-alive connection to the agent, POSTing one
 * /v1/completions body again and again as a real client would. */
struct poster {
    CURL *curl;
    struct curl_slist *headers;
    char *body; /* owned: the request's JSON */
};

/* The request: greedy, MAX_TOKENS, streamed with usage in the last chunk. */
static char *completion_body(bool stream)
{
    json_t *v =
        json_pack("{s:s, s:s, s:i, s:f, s:b}", "model", MODEL_NAME, "prompt", PROMPT,
                  "max_tokens", MAX_TOKENS, "temperature", 0.0, "stream", stream);
    if (v != NULL && stream)
        json_object_set_new(v, "stream_options", json_pack("{s:b}", "include_usage", 1));
    char *body = v != NULL ? json_dumps(v, JSON_COMPACT) : NULL;
    json_decref(v);
    if (body == NULL)
        abort();
    return body;
}

/* Answers go to on_answer(bytes, 1, n, arg), curl's write callback. */
static void poster_open(struct poster *p, const struct agent *a, bool stream,
                        curl_write_callback on_answer, void *arg)
{
    char url[128];
    snprintf(url, sizeof url, "%s/v1/completions", a->base);
    p->body = completion_body(stream);
    p->headers = curl_slist_append(NULL, "Content-Type: application/json");
    p->curl = curl_easy_init();
    if (p->curl == NULL || p->headers == NULL)
        abort();
    curl_easy_setopt(p->curl, CURLOPT_URL, url);
    curl_easy_setopt(p->curl, CURLOPT_HTTPHEADER, p->headers);
    curl_easy_setopt(p->curl, CURLOPT_POSTFIELDS, p->body);
    curl_easy_setopt(p->curl, CURLOPT_TIMEOUT_MS, REQUEST_TIMEOUT_MS);
    curl_easy_setopt(p->curl, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(p->curl, CURLOPT_WRITEFUNCTION, on_answer);
    curl_easy_setopt(p->curl, CURLOPT_WRITEDATA, arg);
}

static void poster_close(struct poster *p)
{
    curl_easy_cleanup(p->curl);
    curl_slist_free_all(p->headers);
    free(p->body);
}

/* ---- one streamed answer ------------------------------------------------- */

struct exchange {
    int64_t sent_ns;
    int64_t first_text_ns; /* 0 until an event carries text */
    int64_t tokens;        /* usage.completion_tokens of the last chunk */
    bool done;             /* "data: [DONE]" came */
    bool failed;           /* an error event, or one that is not JSON */
    char error[ERROR_MAX]; /* what failed, for the report */
    size_t n;              /* bytes in pending */
    char pending[PENDING_MAX];
};

static void exchange_fail(struct exchange *x, const char *what, size_t len)
{
    if (!x->failed)
        snprintf(x->error, sizeof x->error, "%.*s", (int)(len < 200 ? len : 200), what);
    x->failed = true;
}

/* One SSE event ("data: …", without its blank line), read at time now. */
static void exchange_event(struct exchange *x, const char *event, size_t len, int64_t now)
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
        exchange_fail(x, event, len);
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
static size_t on_stream(char *bytes, size_t size, size_t nmemb, void *arg)
{
    int64_t now = mlx_time_mono_ns();
    struct exchange *x = arg;
    size_t n = size * nmemb;
    if (n > sizeof x->pending - x->n) {
        exchange_fail(x, "an SSE event larger than 64 KiB", 31);
        x->n = 0;
        return n;
    }
    memcpy(x->pending + x->n, bytes, n);
    x->n += n;
    size_t start = 0;
    for (size_t i = 0; i + 1 < x->n; i++) {
        if (x->pending[i] == '\n' && x->pending[i + 1] == '\n') {
            exchange_event(x, x->pending + start, i - start, now);
            start = i + 2;
            i++;
        }
    }
    memmove(x->pending, x->pending + start, x->n - start);
    x->n -= start;
    return n;
}

/* ---- clients ------------------------------------------------------------- */

struct client {
    const struct agent *agent; /* borrowed */
    int64_t deadline_ms;       /* no request starts after it */
    pthread_t tid;
    double *ttft_ms; /* owned: one per request answered */
    size_t requests, cap;
    int64_t tokens, errors;
    char first_error[ERROR_MAX];
    struct exchange x;
};

static void client_keep_ttft(struct client *c, double ms)
{
    if (c->requests == c->cap) {
        c->cap = c->cap != 0 ? c->cap * 2 : 64;
        c->ttft_ms = realloc(c->ttft_ms, c->cap * sizeof *c->ttft_ms);
        if (c->ttft_ms == NULL)
            abort();
    }
    c->ttft_ms[c->requests++] = ms;
}

static void client_note_error(struct client *c, const char *what)
{
    if (c->errors++ == 0)
        snprintf(c->first_error, sizeof c->first_error, "%s", what);
}

/* One streamed request; false when the connection itself failed, which
 * would fail again at once. */
static bool client_request(struct client *c, CURL *curl)
{
    struct exchange *x = &c->x;
    memset(x, 0, offsetof(struct exchange, pending));
    x->sent_ns = mlx_time_mono_ns();
    CURLcode rc = curl_easy_perform(curl);
    long status = 0;
    curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &status);
    char what[ERROR_MAX];
    if (rc != CURLE_OK) {
        snprintf(what, sizeof what, "%s", curl_easy_strerror(rc));
    } else if (status != 200 || x->failed || !x->done || x->first_text_ns == 0) {
        x->pending[x->n < sizeof x->pending ? x->n : x->n - 1] = '\0';
        snprintf(what, sizeof what, "status %ld: %.200s", status,
                 x->failed ? x->error : x->pending);
    } else {
        client_keep_ttft(c, (double)(x->first_text_ns - x->sent_ns) / 1e6);
        c->tokens += x->tokens;
        return true;
    }
    client_note_error(c, what);
    return rc == CURLE_OK;
}

static void *client_run(void *arg)
{
    struct client *c = arg;
    struct poster p;
    poster_open(&p, c->agent, true, on_stream, &c->x);
    while (mlx_time_mono_ms() < c->deadline_ms && client_request(c, p.curl)) {
    }
    poster_close(&p);
    return NULL;
}

/* ---- statistics ---------------------------------------------------------- */

static int by_value(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* The nearest-rank percentile p (0..100) of n sorted values; 0 when n is 0. */
static double percentile(const double *sorted, size_t n, double p)
{
    if (n == 0)
        return 0;
    size_t rank = (size_t)(p / 100 * (double)n + 0.999999);
    return sorted[rank > 0 ? rank - 1 : 0];
}

static double median(double *values, size_t n)
{
    qsort(values, n, sizeof *values, by_value);
    return percentile(values, n, 50);
}

/* ---- CPU ----------------------------------------------------------------- */

/* CPU seconds (user + system) this process has used, all threads. */
static double self_cpu_s(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (double)(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) +
           (double)(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e6;
}

/* The whole number at field `index` (0: the one after the ')' closing the
 * command name) of a /proc/PID/stat line; -1 when it is not there. */
static int64_t stat_field(const char *line, int index)
{
    const char *p = strrchr(line, ')');
    if (p == NULL)
        return -1;
    p++; /* " S 1 …": each field follows one space */
    for (int i = 0; i < index; i++) {
        if (*p != ' ')
            return -1;
        p += 1 + strcspn(p + 1, " ");
    }
    if (*p != ' ')
        return -1;
    p++;
    char number[32];
    snprintf(number, sizeof number, "%.*s", (int)strcspn(p, " \n"), p);
    int64_t v;
    return mlx_parse_int64(number, &v, NULL) == 0 ? v : -1;
}

/* CPU seconds the process pid has used, from /proc; -1 where there is none. */
static double proc_cpu_s(pid_t pid)
{
    char path[64], line[1024];
    snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
    FILE *f = fopen(path, "r");
    bool read = f != NULL && fgets(line, sizeof line, f) != NULL;
    if (f != NULL)
        fclose(f);
    /* utime and stime are fields 14 and 15; the state, field 3, comes first
     * after the command name. */
    int64_t user = read ? stat_field(line, 11) : -1,
            sys = read ? stat_field(line, 12) : -1;
    if (user < 0 || sys < 0)
        return -1;
    return (double)(user + sys) / (double)sysconf(_SC_CLK_TCK);
}

/* Cores busy over secs, from CPU seconds before and after; "-" when unknown. */
static void format_cores(double before, double after, double secs, char *out, size_t size)
{
    if (before < 0 || after < 0)
        snprintf(out, size, "%s", "-");
    else
        snprintf(out, size, "%.2f", (after - before) / secs);
}

/* ---- load ---------------------------------------------------------------- */

/* What a level's clients did together. */
struct level {
    size_t requests; /* answered whole */
    int64_t tokens, errors;
    double *ttft_ms;         /* owned: one per request, sorted */
    const char *first_error; /* borrowed from a client; NULL when none */
};

static void level_gather(struct level *l, const struct client *clients, int n)
{
    memset(l, 0, sizeof *l);
    for (int i = 0; i < n; i++) {
        l->requests += clients[i].requests;
        l->tokens += clients[i].tokens;
        l->errors += clients[i].errors;
        if (l->first_error == NULL && clients[i].errors > 0)
            l->first_error = clients[i].first_error;
    }
    l->ttft_ms = malloc((l->requests > 0 ? l->requests : 1) * sizeof *l->ttft_ms);
    if (l->ttft_ms == NULL)
        abort();
    size_t k = 0;
    for (int i = 0; i < n; i++) {
        memcpy(l->ttft_ms + k, clients[i].ttft_ms,
               clients[i].requests * sizeof *l->ttft_ms);
        k += clients[i].requests;
    }
    qsort(l->ttft_ms, l->requests, sizeof *l->ttft_ms, by_value);
}

/* n_clients clients for LEVEL_MS; one row of the table. tokens_per_s_one is
 * the first level's tokens/s, for the ratio (0 on the first level). */
static double load_level(const struct agent *a, int n_clients, double tokens_per_s_one)
{
    struct client *clients = calloc((size_t)n_clients, sizeof *clients);
    if (clients == NULL)
        abort();
    double self0 = self_cpu_s(), agent0 = proc_cpu_s(a->proc->pid);
    int64_t t0 = mlx_time_mono_ns();
    for (int i = 0; i < n_clients; i++) {
        clients[i].agent = a;
        clients[i].deadline_ms = mlx_time_mono_ms() + LEVEL_MS;
        if (pthread_create(&clients[i].tid, NULL, client_run, &clients[i]) != 0)
            abort();
    }
    for (int i = 0; i < n_clients; i++)
        pthread_join(clients[i].tid, NULL);
    double secs = (double)(mlx_time_mono_ns() - t0) / 1e9;
    char self_cores[16], agent_cores[16];
    format_cores(self0, self_cpu_s(), secs, self_cores, sizeof self_cores);
    format_cores(agent0, proc_cpu_s(a->proc->pid), secs, agent_cores, sizeof agent_cores);
    struct level l;
    level_gather(&l, clients, n_clients);
    double tps = (double)l.tokens / secs;
    printf("%7d  %8zu  %7.1f  %8.0f  %5.2fx  %8.2f  %8.2f  %6lld  %5s  %5s\n", n_clients,
           l.requests, (double)l.requests / secs, tps,
           tokens_per_s_one > 0 ? tps / tokens_per_s_one : 1.0,
           percentile(l.ttft_ms, l.requests, 50), percentile(l.ttft_ms, l.requests, 95),
           (long long)l.errors, agent_cores, self_cores);
    if (l.first_error != NULL)
        printf("         first error at %d clients: %s\n", n_clients, l.first_error);
    free(l.ttft_ms);
    for (int i = 0; i < n_clients; i++)
        free(clients[i].ttft_ms);
    free(clients);
    return tps;
}

static void load_table(const struct agent *a)
{
    printf("load        streaming /v1/completions \"%s\", max_tokens %d, greedy; "
           "each client sends back to back for %d s\n",
           PROMPT, MAX_TOKENS, LEVEL_MS / 1000);
    printf("clients  requests    req/s  tokens/s  vs 1    TTFT p50  TTFT p95  errors  "
           "agent  bench\n");
    printf("                                               (ms)      (ms)            "
           "(cores busy)\n");
    static const int levels[] = {1, 8, 64};
    double one = 0;
    for (size_t i = 0; i < sizeof levels / sizeof levels[0]; i++) {
        double tps = load_level(a, levels[i], one);
        if (i == 0)
            one = tps;
    }
}

/* ---- overhead ------------------------------------------------------------ */

/* One `mlx-agent run --json`: the engine's milliseconds for the prompt and
 * the generation, and its text (caller frees). */
static int engine_once(const char *data, double *ms, char **text)
{
    const char *args[] = {"run",          "--data", data, MODEL_NAME, PROMPT, "-n",
                          MAX_TOKENS_ARG, "--temp", "0",  "--json",   NULL};
    char *out = NULL, *err = NULL;
    int status = h_run("mlx-agent", args, RUN_TIMEOUT_MS, &out, &err);
    json_t *v = status == 0 ? json_loads(out, 0, NULL) : NULL;
    json_t *timings = json_object_get(v, "timings");
    const char *t = json_string_value(json_object_get(v, "text"));
    int rc = json_is_object(timings) && t != NULL ? 0 : -1;
    if (rc == 0) {
        *ms = json_number_value(json_object_get(timings, "prompt_ms")) +
              json_number_value(json_object_get(timings, "generation_ms"));
        *text = strdup(t);
    } else {
        fprintf(stderr, "mlx-agent run failed (exit %d): %s%s\n", status,
                err != NULL ? err : "", out != NULL ? out : "");
    }
    json_decref(v);
    free(out);
    free(err);
    return rc;
}

struct body {
    char *bytes; /* owned, NUL-terminated */
    size_t len;
};

static size_t on_body(char *bytes, size_t size, size_t nmemb, void *arg)
{
    struct body *b = arg;
    size_t n = size * nmemb;
    char *grown = realloc(b->bytes, b->len + n + 1);
    if (grown == NULL)
        return 0;
    b->bytes = grown;
    memcpy(b->bytes + b->len, bytes, n);
    b->len += n;
    b->bytes[b->len] = '\0';
    return n;
}

/* One non-streaming request on p (opened with on_body into b): its wall
 * milliseconds and its text (caller frees). */
static int http_once(struct poster *p, struct body *b, double *ms, char **text)
{
    b->len = 0;
    int64_t t0 = mlx_time_mono_ns();
    CURLcode rc = curl_easy_perform(p->curl);
    *ms = (double)(mlx_time_mono_ns() - t0) / 1e6;
    long status = 0;
    curl_easy_getinfo(p->curl, CURLINFO_RESPONSE_CODE, &status);
    bool whole = rc == CURLE_OK && status == 200 && b->bytes != NULL;
    json_t *v = whole ? json_loads(b->bytes, 0, NULL) : NULL;
    json_t *choice = json_array_get(json_object_get(v, "choices"), 0);
    const char *t = json_string_value(json_object_get(choice, "text"));
    if (t != NULL)
        *text = strdup(t);
    else
        fprintf(stderr, "POST /v1/completions failed (%s, status %ld): %s\n",
                curl_easy_strerror(rc), status, b->bytes != NULL ? b->bytes : "");
    json_decref(v);
    return t != NULL ? 0 : -1;
}

/* Counts a text that differs from the first one seen (*first takes t). */
static int differs(char **first, char *t)
{
    if (*first == NULL) {
        *first = t;
        return 0;
    }
    int d = strcmp(*first, t) != 0;
    free(t);
    return d;
}

/* The engine's median ms over OVERHEAD_RUNS runs; *text the first text. */
static int engine_median(const char *data, double *med, char **text)
{
    double ms[OVERHEAD_RUNS];
    int unequal = 0;
    for (int i = 0; i < OVERHEAD_RUNS; i++) {
        char *t = NULL;
        if (engine_once(data, &ms[i], &t) != 0)
            return -1;
        unequal += differs(text, t);
    }
    if (unequal > 0)
        printf("warning     %d of %d greedy engine runs gave another text\n", unequal,
               OVERHEAD_RUNS);
    *med = median(ms, OVERHEAD_RUNS);
    return 0;
}

/* The same for HTTP, on one kept-alive connection. */
static int http_median(const struct agent *a, double *med, char **text)
{
    struct body b = {NULL, 0};
    struct poster p;
    poster_open(&p, a, false, on_body, &b);
    double ms[OVERHEAD_RUNS];
    int unequal = 0, rc = 0;
    for (int i = 0; i < OVERHEAD_RUNS && rc == 0; i++) {
        char *t = NULL;
        rc = http_once(&p, &b, &ms[i], &t);
        if (rc == 0)
            unequal += differs(text, t);
    }
    if (unequal > 0)
        printf("warning     %d of %d greedy HTTP answers gave another text\n", unequal,
               OVERHEAD_RUNS);
    if (rc == 0)
        *med = median(ms, OVERHEAD_RUNS);
    poster_close(&p);
    free(b.bytes);
    return rc;
}

static int overhead(const struct agent *a)
{
    double engine = 0, http = 0;
    char *engine_text = NULL, *http_text = NULL;
    int rc = engine_median(a->data, &engine, &engine_text);
    if (rc == 0)
        rc = http_median(a, &http, &http_text);
    if (rc == 0) {
        printf("overhead    \"%s\", %d tokens, greedy, median of %d each:\n", PROMPT,
               MAX_TOKENS, OVERHEAD_RUNS);
        printf("            engine (mlx-agent run --json, prompt_ms + generation_ms) "
               "%8.2f ms\n",
               engine);
        printf("            HTTP (non-streaming /v1/completions, 1 client, wall)     "
               "%8.2f ms\n",
               http);
        printf("            HTTP/engine %.2fx, %+.2f ms per request\n",
               engine > 0 ? http / engine : 0, http - engine);
        if (strcmp(engine_text, http_text) != 0)
            printf("warning     the texts differ:\n  engine: %s\n  HTTP:   %s\n",
                   engine_text, http_text);
    }
    free(engine_text);
    free(http_text);
    return rc;
}

/* ---- main ---------------------------------------------------------------- */

/* The "model name" of /proc/cpuinfo, or "" where there is none. */
static void print_machine(void)
{
    char where[256];
    test_machine(where, sizeof where);
    printf("machine     %s\n", where);
}

/* The first request loads the model: timed apart, so no level pays for it. */
static int warm_up(const struct agent *a)
{
    struct body b = {NULL, 0};
    struct poster p;
    poster_open(&p, a, false, on_body, &b);
    double ms = 0;
    char *text = NULL;
    int rc = http_once(&p, &b, &ms, &text);
    if (rc == 0)
        printf("agent       --parallel %s --queue %s; first request (loads the model) "
               "%.1f ms\n",
               PARALLEL, QUEUE, ms);
    free(text);
    poster_close(&p);
    free(b.bytes);
    return rc;
}

int main(void)
{
    char *model_path = test_testdata("stories260K.gguf");
    if (model_path == NULL) {
        fprintf(stderr, "skipped: ../shared/testdata/stories260K.gguf is absent\n");
        return TEST_SKIP;
    }
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK)
        abort();
    print_machine();
    struct agent a = {0};
    int rc = agent_start(&a, model_path);
    if (rc == 0)
        rc = warm_up(&a);
    if (rc == 0) {
        load_table(&a);
        rc = overhead(&a);
    }
    agent_stop(&a);
    free(model_path);
    curl_global_cleanup();
    return rc == 0 ? 0 : 1;
}
