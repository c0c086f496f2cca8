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
 */
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

/* POST /api/v1/bench with body and key (may be NULL). */
static void post_bench(const char *key, const char *body, struct reply *r)
{
    memset(r, 0, sizeof *r);
    char url[256], auth[256];
    snprintf(url, sizeof url, "%s/api/v1/bench", c->http_url);
    CURL *curl = curl_easy_init();
    assert_non_null(curl);
    struct curl_slist *h = curl_slist_append(NULL, "Content-Type: application/json");
    if (key != NULL) {
        snprintf(auth, sizeof auth, "Authorization: Bearer %s", key);
        h = curl_slist_append(h, auth);
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

/* The line of a table that starts with prefix (static storage), or NULL. */
static const char *table_line(const char *table, const char *prefix)
{
    static char line[512];
    for (const char *p = table; p != NULL && *p != '\0';) {
        const char *nl = strchr(p, '\n');
        size_t len = nl != NULL ? (size_t)(nl - p) : strlen(p);
        if (strncmp(p, prefix, strlen(prefix)) == 0 && len < sizeof line) {
            memcpy(line, p, len);
            line[len] = '\0';
            return line;
        }
        p = nl != NULL ? nl + 1 : NULL;
    }
    return NULL;
}

/* Cell col (0-based) of a table line whose cells are two or more spaces
 * apart (a cell holds at most single spaces: "3.1 ms"). out: 64 bytes. */
static void cell(const char *line, int col, char *out)
{
    out[0] = '\0';
    const char *p = line;
    for (int k = 0; k <= col && *p != '\0'; k++) {
        while (*p == ' ')
            p++;
        const char *end = strstr(p, "  ");
        size_t len = end != NULL ? (size_t)(end - p) : strlen(p);
        if (k == col)
            snprintf(out, 64, "%.*s", (int)len, p);
        p += len;
    }
}

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
    const char *synth[] = {"model", "synth", "--out", synth_file, NULL};
    if (h_run("mlx-agent", synth, 60000, NULL, NULL) != 0) {
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
    const char *head = table_line(out, "NODE");
    assert_non_null(head);
    assert_non_null(strstr(head, "TTFT p50"));
    assert_non_null(strstr(head, "TTFT p95"));
    assert_non_null(strstr(head, "PROMPT TOK/S"));
    assert_non_null(strstr(head, "STATUS"));
    for (int i = 0; i < 2; i++) {
        const char *line = table_line(out, c->agents[i].name);
        if (line == NULL)
            fail_msg("no row for %s in:\n%s", c->agents[i].name, out);
        char model[64], tps[64], status_cell[64];
        cell(line, 1, model);
        cell(line, 4, tps);
        cell(line, 6, status_cell);
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
    const char *line = table_line(out, "agent0");
    assert_non_null(line);
    assert_non_null(strstr(line, "not run"));
    line = table_line(out, "agent1");
    assert_non_null(line);
    char status_cell[64];
    cell(line, 6, status_cell);
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
    assert_non_null(table_line(out, "agent1"));
    free(out);
    free(admin);
    free(infer);
}

int main(void)
{
    model_file = test_testdata("stories260K.gguf");
    if (model_file == NULL || access(model_file, R_OK) != 0) {
        printf(
            "SKIP: stories260K.gguf is absent from ../shared/testdata; this test needs "
            "the shared test models\n");
        free(model_file);
        return 77;
    }
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_with_several_models_and_none_loaded_it_asks_for_one),
        cmocka_unit_test(test_the_table_has_a_row_per_node),
        cmocka_unit_test(test_json_has_each_node_s_own_suite),
        cmocka_unit_test(test_without_a_model_it_runs_what_each_node_has_loaded),
        cmocka_unit_test(test_an_unknown_model_is_named),
        cmocka_unit_test(test_the_endpoint_runs_one_node_named_by_name),
        cmocka_unit_test(test_a_killed_node_fails_alone),
        cmocka_unit_test(test_once_keys_exist_the_endpoint_needs_an_admin_key),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
