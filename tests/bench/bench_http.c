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
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <curl/curl.h>
#include <jansson.h>

#include "tests/bench/benchutil.h"
#include "tests/integration/harness.h"
#include "tests/support/testutil.h"

#define MODEL_NAME     "stories"
#define PROMPT         "Once upon a time"
#define MAX_TOKENS     32
#define MAX_TOKENS_ARG "32"
#define PARALLEL       "8"
#define QUEUE          "128"
#define LEVEL_MS       5000 /* how long each level's clients keep sending */
#define OVERHEAD_RUNS  20
#define RUN_TIMEOUT_MS 60000

/* Where the requests go, and their bodies. */
struct target {
    char url[96];
    char *stream_body, *whole_body; /* owned */
};

/* ---- CPU ----------------------------------------------------------------- */

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

static void level_gather(struct level *l, const bench_client *clients, int n)
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
        memcpy(l->ttft_ms + k, clients[i].first_ms,
               clients[i].requests * sizeof *l->ttft_ms);
        k += clients[i].requests;
    }
    bench_sort(l->ttft_ms, l->requests);
}

/* n_clients clients for LEVEL_MS; one row of the table. tokens_per_s_one is
 * the first level's tokens/s, for the ratio (0 on the first level). */
static double load_level(const struct target *t, pid_t agent, int n_clients,
                         double tokens_per_s_one)
{
    bench_client *clients = calloc((size_t)n_clients, sizeof *clients);
    if (clients == NULL)
        abort();
    for (int i = 0; i < n_clients; i++)
        bench_client_open(&clients[i], t->url, t->stream_body, true);
    double self0 = bench_self_cpu_s(), agent0 = bench_proc_cpu_s(agent);
    double secs = bench_clients_run(clients, n_clients, LEVEL_MS);
    char self_cores[16], agent_cores[16];
    format_cores(self0, bench_self_cpu_s(), secs, self_cores, sizeof self_cores);
    format_cores(agent0, bench_proc_cpu_s(agent), secs, agent_cores, sizeof agent_cores);
    struct level l;
    level_gather(&l, clients, n_clients);
    double tps = (double)l.tokens / secs;
    printf("%7d  %8zu  %7.1f  %8.0f  %5.2fx  %8.2f  %8.2f  %6lld  %5s  %5s\n", n_clients,
           l.requests, (double)l.requests / secs, tps,
           tokens_per_s_one > 0 ? tps / tokens_per_s_one : 1.0,
           bench_percentile(l.ttft_ms, l.requests, 50),
           bench_percentile(l.ttft_ms, l.requests, 95), (long long)l.errors, agent_cores,
           self_cores);
    if (l.first_error != NULL)
        printf("         first error at %d clients: %s\n", n_clients, l.first_error);
    free(l.ttft_ms);
    for (int i = 0; i < n_clients; i++)
        bench_client_close(&clients[i]);
    free(clients);
    return tps;
}

static void load_table(const struct target *t, pid_t agent)
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
        double tps = load_level(t, agent, levels[i], one);
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

/* One non-streaming request on c: its wall milliseconds and its text
 * (caller frees). */
static int http_once(bench_client *c, double *ms, char **text)
{
    if (bench_client_send(c) != 0) {
        fprintf(stderr, "POST /v1/completions failed: %s\n", c->first_error);
        return -1;
    }
    *ms = c->total_ms[c->requests - 1];
    *text = strdup(c->text);
    if (*text == NULL)
        abort();
    return 0;
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
    *med = bench_median(ms, OVERHEAD_RUNS);
    return 0;
}

/* The same for HTTP, on one kept-alive connection. */
static int http_median(const struct target *t, double *med, char **text)
{
    bench_client c = {0};
    bench_client_open(&c, t->url, t->whole_body, false);
    double ms[OVERHEAD_RUNS];
    int unequal = 0, rc = 0;
    for (int i = 0; i < OVERHEAD_RUNS && rc == 0; i++) {
        char *got = NULL;
        rc = http_once(&c, &ms[i], &got);
        if (rc == 0)
            unequal += differs(text, got);
    }
    if (unequal > 0)
        printf("warning     %d of %d greedy HTTP answers gave another text\n", unequal,
               OVERHEAD_RUNS);
    if (rc == 0)
        *med = bench_median(ms, OVERHEAD_RUNS);
    bench_client_close(&c);
    return rc;
}

static int overhead(const struct target *t, const char *data)
{
    double engine = 0, http = 0;
    char *engine_text = NULL, *http_text = NULL;
    int rc = engine_median(data, &engine, &engine_text);
    if (rc == 0)
        rc = http_median(t, &http, &http_text);
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

/* The first request loads the model: timed apart, so no level pays for it. */
static int warm_up(const struct target *t)
{
    bench_client c = {0};
    bench_client_open(&c, t->url, t->whole_body, false);
    double ms = 0;
    char *text = NULL;
    int rc = http_once(&c, &ms, &text);
    if (rc == 0)
        printf("agent       --parallel %s --queue %s; first request (loads the model) "
               "%.1f ms\n",
               PARALLEL, QUEUE, ms);
    free(text);
    bench_client_close(&c);
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
    bench_print_machine();
    bench_agent a = {0};
    const char *flags[] = {"--parallel", PARALLEL, "--queue", QUEUE, NULL};
    int rc = bench_agent_start(&a, "bench-http", model_path, MODEL_NAME, flags);
    struct target t = {
        .stream_body = bench_completion_body(MODEL_NAME, PROMPT, MAX_TOKENS, true),
        .whole_body = bench_completion_body(MODEL_NAME, PROMPT, MAX_TOKENS, false),
    };
    snprintf(t.url, sizeof t.url, "%s/v1/completions", a.base);
    if (rc == 0)
        rc = warm_up(&t);
    if (rc == 0) {
        load_table(&t, a.proc->pid);
        rc = overhead(&t, a.data);
    }
    bench_agent_stop(&a);
    free(t.stream_body);
    free(t.whole_body);
    free(model_path);
    curl_global_cleanup();
    return rc == 0 ? 0 : 1;
}
