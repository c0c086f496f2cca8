/*
 * it_fleet_bench.c — `mlxctl bench` and POST /api/v1/bench end to end: a
 * coordinator and two agents on loopback, stories260K in both stores and a
 * synthetic model in the second's.
 *
 * With two models and none loaded, mlxctl asks for one by name. `mlxctl
 * bench --model stories` prints a row per node with its name and a
 * positive tokens/s; --json has both nodes with ten prompts each, and each
 * agent's log holds its own row's requests (by the row's request id) and
 * none of the other's; a row's token counts equal those of the agent's own
 * `mlx-agent bench --suite` for the same bound: the identical suite. Once
 * the model is loaded, mlxctl without --model runs it on both. An unknown
 * model is exit 1 with one sentence naming it, and the endpoint's 404 and
 * 400s name the model and the field; given a node's name it runs that
 * node only. A node killed with SIGKILL is reported failed or left out
 * while the other's row is fine. Once keys exist the endpoint needs one
 * with the admin scope. Every step waits for its condition.
 *
 * A benchmark's generations are the coordinator's like any other: each is
 * counted on its /metrics per node, as many as each agent counts under
 * endpoint "dataplane"; each has a row in the request log (its SQLite
 * file) with its node and tokens, under the key that started the run; and
 * GET /api/v1/requests lists one while it runs (on a slow synthetic
 * model, "other").
 */
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>
#include <curl/curl.h>

#include "common/parse.h"
#include "tests/integration/cluster.h"
#include "tests/support/testutil.h"

#define HB         100
#define SUSPECT    10
#define DOWN       50
#define WAIT_MS    15000
#define RUN_MS     120000 /* one mlxctl bench: two nodes' suites */
#define MAX_TOKENS 8      /* short answers: the test is about the plumbing */
#define TEXT(x)    #x
#define STRING(x)  TEXT(x) /* a macro's value as text */

static cluster *c;
static char *model_file, *synth_file;

/* ---- helpers ---------------------------------------------------------------- */

/* mlxctl with words (NULL-terminated) and key (may be NULL); the exit status,
 * with stdout and stderr in *out and *err (caller frees; may be NULL). */
static int ctl(const char *key, const char *const *words, char **out, char **err)
{
    const char *args[24];
    int n = 0;
    args[n++] = "--coordinator";
    args[n++] = c->http_url;
    if (key != NULL) {
        args[n++] = "--api-key";
        args[n++] = key;
    }
    for (int i = 0; words[i] != NULL && n < 23; i++)
        args[n++] = words[i];
    args[n] = NULL;
    return h_run("mlxctl", args, RUN_MS, out, err);
}

/* `mlxctl bench WORDS… --json`, which must exit with want, parsed. */
static json_t *bench_json(const char *const *words, int want)
{
    const char *args[16] = {"bench"};
    int n = 1;
    for (int i = 0; words[i] != NULL && n < 14; i++)
        args[n++] = words[i];
    args[n++] = "--json";
    args[n] = NULL;
    char *out = NULL, *err = NULL;
    int status = ctl(NULL, args, &out, &err);
    if (status != want)
        fail_msg("mlxctl bench --json: exit %d, expected %d; stderr: %s", status, want,
                 err ? err : "");
    json_error_t je;
    json_t *v = out != NULL ? json_loads(out, 0, &je) : NULL;
    if (v == NULL)
        fail_msg("mlxctl bench --json printed no JSON: %s", out ? out : "");
    free(out);
    free(err);
    return v;
}

/* The agent index of node id, or -1. */
static int agent_of(const char *id)
{
    for (int i = 0; id != NULL && i < c->n_agents; i++)
        if (strcmp(id, c->agents[i].node_id) == 0)
            return i;
    return -1;
}

/* The row of agent i in a bench answer (borrowed), or NULL. */
static json_t *row_of(json_t *doc, int i)
{
    size_t k;
    json_t *r;
    json_array_foreach(json_object_get(doc, "results"), k, r)
    {
        if (agent_of(json_string_value(json_object_get(r, "node_id"))) == i)
            return r;
    }
    return NULL;
}

static double num(const json_t *row, const char *key)
{
    const json_t *v = json_object_get(row, key);
    if (!json_is_number(v))
        fail_msg("\"%s\" is missing or not a number", key);
    return json_number_value(v);
}

/* A row that ran the whole suite: ten prompts, positive figures. */
static void expect_ok_row(const json_t *row, const char *what)
{
    if (row == NULL)
        fail_msg("%s: no row", what);
    const char *status = json_string_value(json_object_get(row, "status"));
    if (status == NULL || strcmp(status, "ok") != 0)
        fail_msg("%s: status %s: %s", what, status ? status : "(none)",
                 json_string_value(json_object_get(row, "error")));
    assert_int_equal((int)num(row, "prompts"), 10);
    assert_true(num(row, "tokens_per_s_p50") > 0);
    assert_true(num(row, "prompt_tokens_per_s") > 0);
    assert_true(num(row, "ttft_p50_ms") > 0);
    assert_true(num(row, "ttft_p95_ms") >= num(row, "ttft_p50_ms"));
    assert_true(num(row, "wall_ms") >= 0);
    assert_null(json_object_get(row, "error"));
}

struct log_count {
    int agent;
    char needle[160];
    int want;
};

static bool log_has(void *arg)
{
    const struct log_count *l = arg;
    return h_count_lines(c->agents[l->agent].proc->log_path, l->needle) == l->want;
}

struct reply {
    long status;
    char body[8192];
    size_t len;
};

static size_t keep_body(char *p, size_t size, size_t n, void *arg)
{
    struct reply *r = arg;
    size_t room = sizeof r->body - 1 - r->len, take = size * n < room ? size * n : room;
    memcpy(r->body + r->len, p, take);
    r->len += take;
    r->body[r->len] = '\0';
    return size * n;
}

/* POST /api/v1/bench with body, key and request id (either may be NULL).
 * Safe on a thread of its own: fails nothing, r->status 0 when no answer
 * came. */
static void post_bench_as(const char *key, const char *id, const char *body,
                          struct reply *r)
{
    memset(r, 0, sizeof *r);
    char url[256], auth[256], rid[128];
    snprintf(url, sizeof url, "%s/api/v1/bench", c->http_url);
    CURL *curl = curl_easy_init();
    if (curl == NULL)
        return;
    struct curl_slist *h = curl_slist_append(NULL, "Content-Type: application/json");
    if (key != NULL) {
        snprintf(auth, sizeof auth, "Authorization: Bearer %s", key);
        h = curl_slist_append(h, auth);
    }
    if (id != NULL) {
        snprintf(rid, sizeof rid, "X-Request-Id: %s", id);
        h = curl_slist_append(h, rid);
    }
    curl_easy_setopt(curl, CURLOPT_URL, url);
    curl_easy_setopt(curl, CURLOPT_POSTFIELDS, body);
    curl_easy_setopt(curl, CURLOPT_HTTPHEADER, h);
    curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, keep_body);
    curl_easy_setopt(curl, CURLOPT_WRITEDATA, r);
    curl_easy_setopt(curl, CURLOPT_TIMEOUT_MS, (long)RUN_MS);
    curl_easy_setopt(curl, CURLOPT_NOSIGNAL, 1L);
    if (curl_easy_perform(curl) == CURLE_OK)
        curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &r->status);
    curl_slist_free_all(h);
    curl_easy_cleanup(curl);
}

static void post_bench(const char *key, const char *body, struct reply *r)
{
    post_bench_as(key, NULL, body, r);
}

/* The answer is status want with an error whose message holds every one
 * of the NULL-terminated needles. */
static void expect_refusal(const struct reply *r, long want, const char *const *needles)
{
    if (r->status != want)
        fail_msg("HTTP %ld, expected %ld: %s", r->status, want, r->body);
    json_t *v = json_loads(r->body, 0, NULL);
    const char *msg =
        json_string_value(json_object_get(json_object_get(v, "error"), "message"));
    if (msg == NULL)
        fail_msg("HTTP %ld without an error message: %s", r->status, r->body);
    for (int i = 0; needles[i] != NULL; i++)
        if (strstr(msg, needles[i]) == NULL)
            fail_msg("the message does not say '%s': %s", needles[i], msg);
    json_decref(v);
}

/* ---- the coordinator's books ---------------------------------------------- */

/* Agent i's generations with status (model NULL: every model), as the
 * coordinator counts them and as the agent does. */
static double coordinator_count(int i, const char *model, const char *status)
{
    double coordinator, agent;
    if (!cluster_count_generations(c, i, model, status, &coordinator, &agent))
        fail_msg("a /metrics page did not answer");
    return coordinator;
}

/* A sample of the coordinator's /metrics; fails the test when it does
 * not answer. */
static double coordinator_sample(const char *name)
{
    char url[128];
    snprintf(url, sizeof url, "%s/metrics", c->http_url);
    char *page = h_get_text(url, NULL);
    if (page == NULL)
        fail_msg("GET %s did not answer", url);
    double v = test_prom_sample(page, name);
    free(page);
    return v;
}

/* Agent i's generations of model with status 200, counted by the
 * coordinator: want, and the same number as the agent counts. */
struct counted {
    int agent;
    const char *model;
    double want, coordinator, agent_n;
};

static bool counted_alike(void *arg)
{
    struct counted *k = arg;
    if (!cluster_count_generations(c, k->agent, k->model, "200", &k->coordinator,
                                   &k->agent_n))
        fail_msg("a /metrics page did not answer");
    return k->coordinator == k->want && k->agent_n == k->want;
}

static void expect_counted(int i, const char *model, double want)
{
    struct counted k = {i, model, want, -1, -1};
    if (!h_wait_for(counted_alike, &k, WAIT_MS))
        fail_msg("%s's generations of %s with status 200: the coordinator counts %g, "
                 "the agent %g under endpoint=\"dataplane\"; expected %g",
                 c->agents[i].name, model ? model : "every model", k.coordinator,
                 k.agent_n, want);
}

static void expect_log_rows(const char *sql, const char *arg1, const char *arg2,
                            long long want)
{
    long long got;
    if (!cluster_wait_log_rows(c, sql, arg1, arg2, want, WAIT_MS, &got))
        fail_msg("the request log has %lld rows for \"%s\" (%s, %s); expected %lld", got,
                 sql, arg1 ? arg1 : "NULL", arg2 ? arg2 : "NULL", want);
}

/* Rows of a bootstrap benchmark's generations on one node: request ids
 * that start with the node's row's request id (?1), served by the node
 * (?2), with no key. */
#define GENERATIONS_OF_ROW                                                               \
    "SELECT count(*) FROM requests WHERE request_id LIKE ?1 || '-%' AND node = ?2"       \
    " AND key_name IS NULL AND model = 'stories' AND status = 200"                       \
    " AND prompt_tokens > 0"

/* ---- setup ------------------------------------------------------------------ */

/* model is listed on the agents of the mask (bit i: agent i), up and
 * holding it with flag ("stored", "loaded") true. */
struct listed {
    const char *model, *flag;
    unsigned mask;
};

static bool models_list(void *arg)
{
    const struct listed *l = arg;
    char url[128];
    snprintf(url, sizeof url, "%s/api/v1/models", c->http_url);
    json_t *doc = h_get_json(url, NULL);
    unsigned got = 0;
    size_t i, k;
    json_t *m, *n;
    json_array_foreach(json_object_get(doc, "models"), i, m)
    {
        const char *name = json_string_value(json_object_get(m, "name"));
        if (name == NULL || strcmp(name, l->model) != 0)
            continue;
        json_array_foreach(json_object_get(m, "nodes"), k, n)
        {
            const char *st = json_string_value(json_object_get(n, "state"));
            int a = agent_of(json_string_value(json_object_get(n, "id")));
            if (a >= 0 && st != NULL && strcmp(st, "up") == 0 &&
                json_is_true(json_object_get(n, l->flag)))
                got |= 1u << a;
        }
    }
    json_decref(doc);
    return got == l->mask;
}

static int group_setup(void **state)
{
    c = cluster_create("fleet-bench", HB, SUSPECT, DOWN);
    synth_file = test_join(c->dir, "synthetic.gguf");
    /* A few ms a token, so a benchmark of it is seen while it runs. */
    const char *synth[] = {"model", "synth", "--out",   synth_file, "--layers",   "8",
                           "--dim", "512",   "--heads", "8",        "--kv-heads", "4",
                           "--ff",  "1536",  "--type",  "q8_0",     NULL};
    if (h_run("mlx-agent", synth, 120000, NULL, NULL) != 0) {
        fprintf(stderr, "mlx-agent model synth failed\n");
        return -1;
    }
    cluster_start_coordinator(c);
    if (!cluster_store_add(c, "agent0", model_file, "stories") ||
        !cluster_store_add(c, "agent1", model_file, "stories") ||
        !cluster_store_add(c, "agent1", synth_file, "other"))
        return -1;
    cluster_add_agent(c, "agent0");
    cluster_add_agent(c, "agent1");
    if (!cluster_wait_agents_up(c, WAIT_MS))
        return -1;
    struct listed stories = {"stories", "stored", 3}, other = {"other", "stored", 2};
    if (!h_wait_for(models_list, &stories, WAIT_MS) ||
        !h_wait_for(models_list, &other, WAIT_MS)) {
        fprintf(stderr, "the coordinator never listed both agents' models\n");
        return -1;
    }
    return 0;
}

static int group_teardown(void **state)
{
    cluster_destroy(c);
    free(model_file);
    free(synth_file);
    return 0;
}

/* ---- tests ------------------------------------------------------------------ */

static void test_with_several_models_and_none_loaded_it_asks_for_one(void **state)
{
    const char *words[] = {"bench", NULL};
    char *out = NULL, *err = NULL;
    assert_int_equal(ctl(NULL, words, &out, &err), 2);
    assert_string_equal(out, "");
    /* One sentence that lists the choices. */
    assert_non_null(strstr(err, "--model"));
    assert_non_null(strstr(err, "stories"));
    assert_non_null(strstr(err, "other"));
    assert_ptr_equal(strchr(err, '\n'), err + strlen(err) - 1);
    free(out);
    free(err);
}

static void test_the_table_has_a_row_per_node(void **state)
{
    const char *words[] = {"bench",        "--model",          "stories",
                           "--max-tokens", STRING(MAX_TOKENS), NULL};
    char *out = NULL, *err = NULL;
    int status = ctl(NULL, words, &out, &err);
    if (status != 0)
        fail_msg("mlxctl bench: exit %d: %s", status, err);
    const char *head = test_table_line(out, "NODE");
    assert_non_null(head);
    assert_non_null(strstr(head, "TTFT p50"));
    assert_non_null(strstr(head, "TTFT p95"));
    assert_non_null(strstr(head, "PROMPT TOK/S"));
    assert_non_null(strstr(head, "STATUS"));
    for (int i = 0; i < 2; i++) {
        const char *line = test_table_line(out, c->agents[i].name);
        if (line == NULL)
            fail_msg("no row for %s in:\n%s", c->agents[i].name, out);
        char model[64], tps[64], status_cell[64];
        test_table_cell(line, 1, model);
        test_table_cell(line, 4, tps);
        test_table_cell(line, 6, status_cell);
        assert_string_equal(model, "stories");
        assert_string_equal(status_cell, "ok");
        double v = 0;
        if (mlx_parse_double(tps, &v, NULL) != 0 || v <= 0)
            fail_msg("%s's tokens/s is '%s'", c->agents[i].name, tps);
    }
    /* A header and a row per node, nothing else on stdout; no progress
     * lines when stderr is not a terminal. */
    int lines = 0;
    for (const char *p = out; (p = strchr(p, '\n')) != NULL; p++)
        lines++;
    assert_int_equal(lines, 3);
    assert_string_equal(err, "");
    free(out);
    free(err);
}

/* `mlx-agent bench stories260K.gguf --suite --json` on this machine. */
static json_t *agent_suite(void)
{
    char *data = test_join(c->dir, "suite-data");
    const char *args[] = {"bench", model_file,     "--suite",          "--json", "--data",
                          data,    "--gen-tokens", STRING(MAX_TOKENS), NULL};
    char *out = NULL;
    int status = h_run("mlx-agent", args, RUN_MS, &out, NULL);
    json_t *v = status == 0 && out != NULL ? json_loads(out, 0, NULL) : NULL;
    if (v == NULL)
        fail_msg("mlx-agent bench --suite: exit %d: %s", status, out ? out : "");
    free(out);
    free(data);
    return v;
}

static void test_json_has_each_node_s_own_suite(void **state)
{
    const char *words[] = {"--model", "stories", "--max-tokens", STRING(MAX_TOKENS),
                           NULL};
    json_t *doc = bench_json(words, 0);
    assert_int_equal(json_array_size(json_object_get(doc, "results")), 2);
    json_t *suite = agent_suite();
    json_t *sum = json_object_get(suite, "summary");
    for (int i = 0; i < 2; i++) {
        json_t *row = row_of(doc, i);
        expect_ok_row(row, c->agents[i].name);
        assert_string_equal(json_string_value(json_object_get(row, "node_name")),
                            c->agents[i].name);
        assert_int_equal((int)num(row, "max_tokens"), MAX_TOKENS);
        /* The identical suite: greedy, so the same tokens as the agent's. */
        assert_int_equal((int64_t)num(row, "prompt_tokens"),
                         (int64_t)num(sum, "prompt_tokens"));
        assert_int_equal((int64_t)num(row, "completion_tokens"),
                         (int64_t)num(sum, "completion_tokens"));
        /* Each agent served its own row: the warm-up and ten prompts under
         * the row's request id in its log, none in the other's. */
        const char *id = json_string_value(json_object_get(row, "request_id"));
        assert_non_null(id);
        struct log_count mine = {.agent = i, .want = 11};
        snprintf(mine.needle, sizeof mine.needle, "msg=\"generation\" id=%s-", id);
        if (!h_wait_for(log_has, &mine, WAIT_MS))
            fail_msg("%s's log never showed the 11 requests of %s", c->agents[i].name,
                     id);
        assert_int_equal(h_count_lines(c->agents[1 - i].proc->log_path, mine.needle), 0);
    }
    json_decref(suite);
    json_decref(doc);
}

static void test_without_a_model_it_runs_what_each_node_has_loaded(void **state)
{
    struct listed loaded = {"stories", "loaded", 3};
    if (!h_wait_for(models_list, &loaded, WAIT_MS))
        fail_msg("the coordinator never showed stories loaded on both agents");
    const char *words[] = {"--max-tokens", STRING(MAX_TOKENS), NULL};
    json_t *doc = bench_json(words, 0);
    assert_int_equal(json_array_size(json_object_get(doc, "results")), 2);
    for (int i = 0; i < 2; i++) {
        json_t *row = row_of(doc, i);
        expect_ok_row(row, c->agents[i].name);
        assert_string_equal(json_string_value(json_object_get(row, "model")), "stories");
    }
    json_decref(doc);
}

static void test_an_unknown_model_is_named(void **state)
{
    const char *words[] = {"bench", "--model", "no-such-model", NULL};
    char *out = NULL, *err = NULL;
    assert_int_equal(ctl(NULL, words, &out, &err), 1);
    assert_string_equal(out, "");
    assert_non_null(strstr(err, "'no-such-model'"));
    assert_ptr_equal(strchr(err, '\n'), err + strlen(err) - 1);
    free(out);
    free(err);

    struct reply r;
    post_bench(NULL, "{\"model\":\"no-such-model\"}", &r);
    expect_refusal(
        &r, 404, (const char *const[]){"'no-such-model'", "mlx-agent cache pull", NULL});
    post_bench(NULL, "{\"model\":\"stories\",\"node\":\"nobody\"}", &r);
    expect_refusal(&r, 404, (const char *const[]){"'nobody'", "'stories'", NULL});
    post_bench(NULL, "{\"model\":\"stories\",\"max_tokens\":0}", &r);
    expect_refusal(&r, 400, (const char *const[]){"'max_tokens'", NULL});
    post_bench(NULL, "{\"modle\":\"stories\"}", &r);
    expect_refusal(&r, 400, (const char *const[]){"'modle'", NULL});
    post_bench(NULL, "{\"node\":\"agent0\"}", &r);
    expect_refusal(&r, 400, (const char *const[]){"'model'", NULL});
}

static void test_the_endpoint_runs_one_node_named_by_name(void **state)
{
    struct reply r;
    post_bench(NULL, "{\"model\":\"stories\",\"node\":\"agent1\",\"max_tokens\":2}", &r);
    if (r.status != 200)
        fail_msg("HTTP %ld: %s", r.status, r.body);
    json_t *doc = json_loads(r.body, 0, NULL);
    assert_non_null(doc);
    assert_int_equal(json_array_size(json_object_get(doc, "results")), 1);
    expect_ok_row(row_of(doc, 1), "agent1 by name");
    assert_int_equal((int)num(row_of(doc, 1), "max_tokens"), 2);
    json_decref(doc);
}

static void test_the_coordinator_counts_each_generation_as_the_agents_do(void **state)
{
    /* Every generation the agents ran so far came from a benchmark. */
    double before[2];
    for (int i = 0; i < 2; i++) {
        before[i] = coordinator_count(i, NULL, "200");
        assert_true(before[i] > 0);
        expect_counted(i, NULL, before[i]);
    }
    double routed = coordinator_sample("mlx_coordinator_routing_seconds_count");
    double first_text =
        coordinator_sample("mlx_coordinator_time_to_first_token_seconds_count");
    struct reply r;
    post_bench_as(NULL, "bench-books",
                  "{\"model\":\"stories\",\"max_tokens\":" STRING(MAX_TOKENS) "}", &r);
    if (r.status != 200)
        fail_msg("HTTP %ld: %s", r.status, r.body);
    json_t *doc = json_loads(r.body, 0, NULL);
    assert_non_null(doc);
    /* The warm-up and ten prompts on each node: counted per node as the
     * node counts them, each routed once. */
    for (int i = 0; i < 2; i++)
        expect_counted(i, NULL, before[i] + 11);
    assert_true(coordinator_sample("mlx_coordinator_routing_seconds_count") ==
                routed + 22);
    assert_true(coordinator_sample("mlx_coordinator_time_to_first_token_seconds_count") >
                first_text);
    assert_true(coordinator_sample("mlx_coordinator_requests_active") == 0);

    /* The request log: the run's own row, and one per generation with its
     * node and tokens. */
    expect_log_rows("SELECT count(*) FROM requests WHERE request_id = ?1 AND node IS NULL"
                    " AND model = ?2 AND status = 200",
                    "bench-books", "stories", 1);
    for (int i = 0; i < 2; i++) {
        const char *id = json_string_value(json_object_get(row_of(doc, i), "request_id"));
        assert_non_null(id);
        expect_log_rows(GENERATIONS_OF_ROW, id, c->agents[i].node_id, 11);
    }
    json_decref(doc);
}

/* A benchmark of the slow model on agent1, on a thread of its own. */
struct bench_client {
    pthread_t thread;
    struct reply r;
};

static void *bench_other(void *arg)
{
    struct bench_client *b = arg;
    post_bench_as(NULL, "bench-flight", "{\"model\":\"other\",\"max_tokens\":16}", &b->r);
    return NULL;
}

struct flights {
    json_t *bench; /* a benchmark's generation seen generating (caller decrefs) */
    size_t n;      /* generations listed at the last look */
};

static json_t *requests_list(void)
{
    char url[128];
    snprintf(url, sizeof url, "%s/api/v1/requests", c->http_url);
    return h_get_json(url, NULL);
}

static bool bench_generating(void *arg)
{
    struct flights *w = arg;
    json_t *doc = requests_list();
    json_t *list = json_object_get(doc, "requests");
    size_t i;
    json_t *r;
    json_array_foreach(list, i, r)
    {
        const char *endpoint = json_string_value(json_object_get(r, "endpoint"));
        const char *st = json_string_value(json_object_get(r, "state"));
        if (w->bench == NULL && endpoint != NULL &&
            strcmp(endpoint, "/api/v1/bench") == 0 && st != NULL &&
            strcmp(st, "generating") == 0)
            w->bench = json_incref(r);
    }
    w->n = json_array_size(list);
    json_decref(doc);
    return w->bench != NULL;
}

static bool none_in_flight(void *arg)
{
    struct flights *w = arg;
    json_t *doc = requests_list();
    json_t *list = json_object_get(doc, "requests");
    w->n = list != NULL ? json_array_size(list) : 99;
    json_decref(doc);
    return w->n == 0;
}

static void test_requests_lists_a_benchmark_generation_while_it_runs(void **state)
{
    struct flights w = {NULL, 0};
    if (!h_wait_for(none_in_flight, &w, WAIT_MS))
        fail_msg("%zu generations listed before the benchmark", w.n);
    double before = coordinator_count(1, "other", "200");
    struct bench_client b;
    memset(&b, 0, sizeof b);
    assert_int_equal(pthread_create(&b.thread, NULL, bench_other, &b), 0);
    bool seen = h_wait_for(bench_generating, &w, RUN_MS);
    pthread_join(b.thread, NULL);
    if (!seen)
        fail_msg("/api/v1/requests never listed a generation of the benchmark "
                 "(HTTP %ld: %s)",
                 b.r.status, b.r.body);
    json_t *f = w.bench;
    char prefix[64];
    snprintf(prefix, sizeof prefix, "bench-flight-%s-", c->agents[1].node_id);
    const char *id = json_string_value(json_object_get(f, "id"));
    assert_non_null(id);
    if (strncmp(id, prefix, strlen(prefix)) != 0)
        fail_msg("the benchmark's generation is listed as %s, not %s<n>", id, prefix);
    assert_string_equal(json_string_value(json_object_get(f, "model")), "other");
    assert_string_equal(json_string_value(json_object_get(f, "node_id")),
                        c->agents[1].node_id);
    assert_string_equal(json_string_value(json_object_get(f, "key")), "");
    assert_false(json_is_true(json_object_get(f, "stream")));
    assert_int_equal(json_integer_value(json_object_get(f, "attempts")), 1);
    json_decref(f);

    /* The run ended well, and left the list and its counts. */
    if (b.r.status != 200)
        fail_msg("HTTP %ld: %s", b.r.status, b.r.body);
    json_t *doc = json_loads(b.r.body, 0, NULL);
    json_t *row = row_of(doc, 1);
    assert_non_null(row);
    assert_string_equal(json_string_value(json_object_get(row, "status")), "ok");
    assert_null(row_of(doc, 0));
    json_decref(doc);
    if (!h_wait_for(none_in_flight, &w, WAIT_MS))
        fail_msg("%zu generations still listed after the benchmark", w.n);
    expect_counted(1, "other", before + 11);
}

static void test_a_killed_node_fails_alone(void **state)
{
    h_signal(c->agents[0].proc, SIGKILL);
    assert_true(h_wait_exit(c->agents[0].proc, 10000) >= 0);
    /* At once: the coordinator may still think it up, and then its run
     * fails with a sentence; or it already knows, and leaves it out. */
    char *out = NULL, *err = NULL;
    const char *args[] = {
        "bench",  "--model", "stories", "--max-tokens", STRING(MAX_TOKENS),
        "--json", NULL};
    int status = ctl(NULL, args, &out, &err);
    json_t *doc = out != NULL ? json_loads(out, 0, NULL) : NULL;
    if (doc == NULL)
        fail_msg("mlxctl bench --json: exit %d: %s%s", status, out, err);
    expect_ok_row(row_of(doc, 1), "agent1 beside a killed agent0");
    json_t *dead = row_of(doc, 0);
    if (dead != NULL) {
        assert_string_equal(json_string_value(json_object_get(dead, "status")), "failed");
        const char *why = json_string_value(json_object_get(dead, "error"));
        assert_non_null(why);
        assert_true(strlen(why) > 0);
        assert_int_equal(status, 1);
        assert_non_null(strstr(err, "agent0"));
    } else {
        assert_int_equal(status, 0);
    }
    json_decref(doc);
    free(out);
    free(err);

    /* Once the coordinator knows, agent0 is not run: a row that says so in
     * the table, absent from the API's results. */
    assert_true(cluster_wait_agent_state(c, 0, "suspect", WAIT_MS) ||
                cluster_wait_agent_state(c, 0, "down", WAIT_MS));
    const char *table[] = {"bench",        "--model",          "stories",
                           "--max-tokens", STRING(MAX_TOKENS), NULL};
    assert_int_equal(ctl(NULL, table, &out, &err), 0);
    const char *line = test_table_line(out, "agent0");
    assert_non_null(line);
    assert_non_null(strstr(line, "not run"));
    line = test_table_line(out, "agent1");
    assert_non_null(line);
    char status_cell[64];
    test_table_cell(line, 6, status_cell);
    assert_string_equal(status_cell, "ok");
    free(out);
    free(err);
    const char *words[] = {"--model", "stories", "--max-tokens", STRING(MAX_TOKENS),
                           NULL};
    doc = bench_json(words, 0);
    assert_null(row_of(doc, 0));
    expect_ok_row(row_of(doc, 1), "agent1 beside a down agent0");
    json_decref(doc);
}

static void test_once_keys_exist_the_endpoint_needs_an_admin_key(void **state)
{
    char *admin = NULL, *infer = NULL;
    const char *create_admin[] = {"keys",    "create", "--name", "ops",
                                  "--scope", "admin",  NULL};
    assert_int_equal(ctl(NULL, create_admin, &admin, NULL), 0);
    admin[strcspn(admin, "\n")] = '\0';
    const char *create_infer[] = {"keys", "create", "--name", "app", NULL};
    assert_int_equal(ctl(admin, create_infer, &infer, NULL), 0);
    infer[strcspn(infer, "\n")] = '\0';

    const char *body = "{\"model\":\"stories\",\"max_tokens\":" STRING(MAX_TOKENS) "}";
    struct reply r;
    post_bench(NULL, body, &r);
    assert_int_equal(r.status, 401);
    post_bench(infer, body, &r);
    expect_refusal(&r, 403, (const char *const[]){"admin", NULL});
    /* A bad body is refused only after the key is. */
    post_bench(infer, "{\"modle\":1}", &r);
    assert_int_equal(r.status, 403);

    const char *words[] = {"bench",        "--model",          "stories",
                           "--max-tokens", STRING(MAX_TOKENS), NULL};
    char *out = NULL, *err = NULL;
    assert_int_equal(ctl(infer, words, &out, &err), 1);
    assert_non_null(strstr(err, "admin scope"));
    free(out);
    free(err);
    assert_int_equal(ctl(admin, words, &out, NULL), 0);
    assert_non_null(test_table_line(out, "agent1"));
    free(out);
    /* The run's generations are logged under the key that started it
     * (agent0 is down: agent1's eleven), beside the run's own row. */
    expect_log_rows("SELECT count(*) FROM requests WHERE key_name = ?1 AND node = ?2"
                    " AND model = 'stories' AND status = 200 AND request_id IS NOT NULL",
                    "ops", c->agents[1].node_id, 11);
    expect_log_rows("SELECT count(*) FROM requests WHERE key_name = ?1 AND node IS NULL"
                    " AND model = ?2 AND status = 200",
                    "ops", "stories", 1);
    free(admin);
    free(infer);
}

int main(void)
{
    model_file = test_shared_model("stories260K.gguf");
    if (model_file == NULL)
        return 77;
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_with_several_models_and_none_loaded_it_asks_for_one),
        cmocka_unit_test(test_the_table_has_a_row_per_node),
        cmocka_unit_test(test_json_has_each_node_s_own_suite),
        cmocka_unit_test(test_without_a_model_it_runs_what_each_node_has_loaded),
        cmocka_unit_test(test_an_unknown_model_is_named),
        cmocka_unit_test(test_the_endpoint_runs_one_node_named_by_name),
        cmocka_unit_test(test_the_coordinator_counts_each_generation_as_the_agents_do),
        cmocka_unit_test(test_requests_lists_a_benchmark_generation_while_it_runs),
        cmocka_unit_test(test_a_killed_node_fails_alone),
        cmocka_unit_test(test_once_keys_exist_the_endpoint_needs_an_admin_key),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
