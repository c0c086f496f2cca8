/*
 * it_inventory.c — the fleet's model inventory end to end: a coordinator and
 * two agents on loopback, with synthetic GGUF models in their stores (one on
 * both, one on only the first). /api/v1/models and `mlxctl models --json`
 * name the right nodes; a model added to a running agent's store shows up
 * within a few heartbeats and is gone again after `mlx-agent cache rm`; one
 * completion on an agent loads its model, which /api/v1/ps and `mlxctl ps`
 * then show and /api/v1/models marks loaded; a long generation shows in
 * the node's load (requests_running) and leaves it when the client goes.
 * Every step waits for its condition; none sleeps a fixed time.
 */
#include <setjmp.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <curl/curl.h>

#include "tests/integration/cluster.h"
#include "tests/support/testutil.h"

/* Fast heartbeats so that "a few heartbeats" is well under a second. */
#define HB      100
#define SUSPECT 10
#define DOWN    50
#define WAIT_MS 15000

static cluster *c;
static char *model_file, *slow_file;

/* `mlx-agent cache VERB …` on agent i's store; 0 on success. */
static int cache_cmd(int i, const char *verb, const char *arg, const char *name)
{
    const char *args[8];
    int n = 0;
    args[n++] = "cache";
    args[n++] = verb;
    args[n++] = arg;
    if (name != NULL) {
        args[n++] = "--name";
        args[n++] = name;
    }
    args[n++] = "--data";
    args[n++] = c->agents[i].data;
    args[n] = NULL;
    char *out = NULL, *err = NULL;
    int status = h_run("mlx-agent", args, 30000, &out, &err);
    if (status != 0)
        fprintf(stderr, "mlx-agent cache %s %s: exit %d: %s%s\n", verb, arg, status,
                out ? out : "", err ? err : "");
    free(out);
    free(err);
    return status;
}

static json_t *get(const char *path)
{
    char url[256];
    snprintf(url, sizeof url, "%s%s", c->http_url, path);
    return h_get_json(url, NULL);
}

/* `mlxctl VERB --json` parsed, or NULL when it fails. */
static json_t *mlxctl_json(const char *verb)
{
    const char *args[] = {"--coordinator", c->http_url, verb, "--json", NULL};
    char *out = NULL;
    int status = h_run("mlxctl", args, 10000, &out, NULL);
    json_t *v = status == 0 && out != NULL ? json_loads(out, 0, NULL) : NULL;
    free(out);
    return v;
}

/* The model called name in a /api/v1/models document (borrowed), or NULL. */
static json_t *find_model(json_t *doc, const char *name)
{
    size_t i;
    json_t *m;
    json_array_foreach(json_object_get(doc, "models"), i, m)
    {
        const char *n = json_string_value(json_object_get(m, "name"));
        if (n != NULL && strcmp(n, name) == 0)
            return m;
    }
    return NULL;
}

/* "a|b": the ids of model's nodes whose flag ("stored", "loaded") is true,
 * in the document's order, mapped to agent indexes ("0|1"); "" when none or
 * the model is absent. */
static void nodes_with(json_t *doc, const char *model, const char *flag, char *out,
                       size_t size)
{
    out[0] = '\0';
    json_t *m = find_model(doc, model);
    size_t i;
    json_t *n;
    json_array_foreach(json_object_get(m, "nodes"), i, n)
    {
        if (!json_is_true(json_object_get(n, flag)))
            continue;
        const char *id = json_string_value(json_object_get(n, "id"));
        for (int k = 0; id != NULL && k < c->n_agents; k++) {
            if (strcmp(id, c->agents[k].node_id) == 0) {
                size_t len = strlen(out);
                snprintf(out + len, size - len, "%s%d", len ? "|" : "", k);
            }
        }
    }
}

struct expect {
    const char *model, *flag, *want; /* want: as nodes_with writes it */
};

static bool models_show(void *arg)
{
    const struct expect *e = arg;
    json_t *doc = get("/api/v1/models");
    char got[64];
    nodes_with(doc, e->model, e->flag, got, sizeof got);
    json_decref(doc);
    return strcmp(got, e->want) == 0;
}

static void wait_models(const char *model, const char *flag, const char *want)
{
    struct expect e = {model, flag, want};
    if (!h_wait_for(models_show, &e, WAIT_MS)) {
        json_t *doc = get("/api/v1/models");
        char *text = doc ? json_dumps(doc, JSON_COMPACT) : NULL;
        fail_msg("%s %s on '%s' never became nodes '%s'; /api/v1/models is %s", model,
                 flag, model, want, text ? text : "unreachable");
    }
}

static int group_setup(void **state)
{
    c = cluster_create("inventory", HB, SUSPECT, DOWN);
    model_file = test_join(c->dir, "synthetic.gguf");
    const char *args[] = {"model", "synth", "--out", model_file, NULL};
    if (h_run("mlx-agent", args, 60000, NULL, NULL) != 0) {
        fprintf(stderr, "mlx-agent model synth failed\n");
        return -1;
    }
    cluster_start_coordinator(c);
    /* Stores filled before the agents start: the list travels at Register. */
    for (int i = 0; i < 2; i++) {
        cluster_agent *a = &c->agents[i];
        snprintf(a->data, sizeof a->data, "%s/agent%d", c->dir, i);
    }
    /* Slow enough (a few ms a token) that a long generation spans several
     * of the agents' one-second samples. */
    slow_file = test_join(c->dir, "slow.gguf");
    const char *slow_args[] = {"model", "synth", "--out", slow_file, "--layers", "8",
                               "--dim", "512", "--heads", "8", "--kv-heads", "4",
                               "--ff", "1536", "--type", "q8_0", "--ctx", "4096", NULL};
    if (h_run("mlx-agent", slow_args, 60000, NULL, NULL) != 0) {
        fprintf(stderr, "mlx-agent model synth (slow) failed\n");
        return -1;
    }
    if (cache_cmd(0, "add", slow_file, "slow") != 0 ||
        cache_cmd(0, "add", model_file, "shared") != 0 ||
        cache_cmd(0, "add", model_file, "solo") != 0 ||
        cache_cmd(1, "add", model_file, "shared") != 0)
        return -1;
    cluster_add_agent(c, "agent0");
    cluster_add_agent(c, "agent1");
    for (int i = 0; i < 2; i++) {
        if (!cluster_wait_node_id(c, i, WAIT_MS) ||
            !cluster_wait_agent_state(c, i, "up", WAIT_MS)) {
            fprintf(stderr, "agent%d never came up\n", i);
            return -1;
        }
    }
    return 0;
}

static int group_teardown(void **state)
{
    cluster_destroy(c);
    free(model_file);
    free(slow_file);
    return 0;
}

static void test_models_name_the_nodes_that_store_them(void **state)
{
    wait_models("shared", "stored", "0|1");
    wait_models("solo", "stored", "0");

    json_t *doc = get("/api/v1/models");
    json_t *shared = find_model(doc, "shared");
    assert_non_null(shared);
    assert_string_equal(json_string_value(json_object_get(shared, "format")), "gguf");
    assert_true(json_integer_value(json_object_get(shared, "size_bytes")) > 0);
    assert_int_equal(strlen(json_string_value(json_object_get(shared, "digest"))), 64);
    /* Sorted by name. */
    assert_string_equal(
        json_string_value(json_object_get(json_array_get(json_object_get(doc, "models"), 0),
                                          "name")),
        "shared");
    json_decref(doc);

    json_t *cli = mlxctl_json("models");
    assert_non_null(cli);
    char got[64];
    nodes_with(cli, "shared", "stored", got, sizeof got);
    assert_string_equal(got, "0|1");
    nodes_with(cli, "solo", "stored", got, sizeof got);
    assert_string_equal(got, "0");
    json_decref(cli);

    /* The table names the nodes. */
    const char *args[] = {"--coordinator", c->http_url, "models", NULL};
    char *out = NULL;
    assert_int_equal(h_run("mlxctl", args, 10000, &out, NULL), 0);
    assert_non_null(strstr(out, "MODEL"));
    assert_non_null(strstr(out, "LOADED ON"));
    assert_non_null(strstr(out, "agent0, agent1"));
    free(out);
}

static void test_store_changes_reach_the_coordinator(void **state)
{
    assert_int_equal(cache_cmd(1, "add", model_file, "late"), 0);
    wait_models("late", "stored", "1");
    assert_int_equal(cache_cmd(1, "rm", "late", NULL), 0);
    wait_models("late", "stored", "");
    json_t *doc = get("/api/v1/models");
    assert_null(find_model(doc, "late"));
    json_decref(doc);
    /* The others are untouched. */
    wait_models("shared", "stored", "0|1");
}

static size_t discard(char *p, size_t size, size_t n, void *arg)
{
    return size * n;
}

static long post_completion(int i, const char *model)
{
    char url[128], body[256];
    snprintf(url, sizeof url, "http://127.0.0.1:%d/v1/completions", c->agents[i].http_port);
    snprintf(body, sizeof body,
             "{\"model\":\"%s\",\"prompt\":\"hello\",\"max_tokens\":2,\"temperature\":0}",
             model);
    CURL *curl = curl_easy_init();
    struct curl_slist *headers = curl_slist_append(NULL, "Content-Type: application/json");
    curl_easy_setopt(curl, CURLOPT_URL, url);
    curl_easy_setopt(curl, CURLOPT_POSTFIELDS, body);
    curl_easy_setopt(curl, CURLOPT_HTTPHEADER, headers);
    curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, discard);
    curl_easy_setopt(curl, CURLOPT_TIMEOUT_MS, 60000L);
    curl_easy_setopt(curl, CURLOPT_NOSIGNAL, 1L);
    long status = 0;
    if (curl_easy_perform(curl) == CURLE_OK)
        curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &status);
    curl_slist_free_all(headers);
    curl_easy_cleanup(curl);
    return status;
}

/* agent0 has "solo" in /api/v1/ps. */
static bool ps_shows_solo(void *arg)
{
    json_t *doc = get("/api/v1/ps");
    bool found = false;
    size_t i, k;
    json_t *n, *m;
    json_array_foreach(json_object_get(doc, "nodes"), i, n)
    {
        const char *id = json_string_value(json_object_get(n, "id"));
        if (id == NULL || strcmp(id, c->agents[0].node_id) != 0)
            continue;
        json_array_foreach(json_object_get(n, "models"), k, m)
        {
            const char *name = json_string_value(json_object_get(m, "name"));
            found = found || (name != NULL && strcmp(name, "solo") == 0 &&
                              json_integer_value(json_object_get(m, "memory_bytes")) > 0);
        }
    }
    json_decref(doc);
    return found;
}

static void test_a_loaded_model_shows_in_ps_and_models(void **state)
{
    assert_int_equal(post_completion(0, "solo"), 200);
    if (!h_wait_for(ps_shows_solo, NULL, WAIT_MS))
        fail_msg("agent0 never showed 'solo' loaded in /api/v1/ps");
    wait_models("solo", "loaded", "0");
    /* Stored on both, loaded on neither. */
    wait_models("shared", "loaded", "");

    json_t *cli = mlxctl_json("ps");
    assert_non_null(cli);
    assert_true(json_array_size(json_object_get(cli, "nodes")) >= 1);
    json_decref(cli);
    const char *args[] = {"--coordinator", c->http_url, "ps", NULL};
    char *out = NULL;
    assert_int_equal(h_run("mlxctl", args, 10000, &out, NULL), 0);
    assert_non_null(strstr(out, "TOKENS/S"));
    assert_non_null(strstr(out, "agent0"));
    assert_non_null(strstr(out, "solo"));
    assert_non_null(strstr(out, "mlx"));
    free(out);
}

/* A streamed generation of "slow" on agent0 that runs until told to go. */
static atomic_bool leave;

static int until_told(void *arg, curl_off_t a, curl_off_t b, curl_off_t c_, curl_off_t d)
{
    return atomic_load(&leave) ? 1 : 0; /* non-zero aborts: the client goes away */
}

static void *long_generation(void *arg)
{
    char url[128];
    snprintf(url, sizeof url, "http://127.0.0.1:%d/v1/completions", c->agents[0].http_port);
    const char *body = "{\"model\":\"slow\",\"prompt\":\"hello\",\"max_tokens\":3000,"
                       "\"temperature\":0,\"stream\":true}";
    CURL *curl = curl_easy_init();
    struct curl_slist *headers = curl_slist_append(NULL, "Content-Type: application/json");
    curl_easy_setopt(curl, CURLOPT_URL, url);
    curl_easy_setopt(curl, CURLOPT_POSTFIELDS, body);
    curl_easy_setopt(curl, CURLOPT_HTTPHEADER, headers);
    curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, discard);
    curl_easy_setopt(curl, CURLOPT_XFERINFOFUNCTION, until_told);
    curl_easy_setopt(curl, CURLOPT_NOPROGRESS, 0L);
    curl_easy_setopt(curl, CURLOPT_TIMEOUT_MS, 120000L);
    curl_easy_setopt(curl, CURLOPT_NOSIGNAL, 1L);
    curl_easy_perform(curl);
    curl_slist_free_all(headers);
    curl_easy_cleanup(curl);
    return NULL;
}

/* agent0's requests_running in /api/v1/nodes is *(int *)arg. */
static bool agent0_running(void *arg)
{
    json_t *doc = get("/api/v1/nodes");
    size_t i;
    json_t *n;
    bool match = false;
    json_array_foreach(json_object_get(doc, "nodes"), i, n)
    {
        const char *id = json_string_value(json_object_get(n, "id"));
        json_t *running = json_object_get(json_object_get(n, "metrics"), "requests_running");
        if (id != NULL && strcmp(id, c->agents[0].node_id) == 0 && json_is_integer(running))
            match = json_integer_value(running) == *(int *)arg;
    }
    json_decref(doc);
    return match;
}

static void test_a_running_request_shows_in_the_node_load(void **state)
{
    atomic_store(&leave, false);
    pthread_t t;
    assert_int_equal(pthread_create(&t, NULL, long_generation, NULL), 0);
    int one = 1, none = 0;
    bool seen = h_wait_for(agent0_running, &one, WAIT_MS);
    atomic_store(&leave, true);
    pthread_join(t, NULL);
    if (!seen)
        fail_msg("agent0's heartbeats never showed the running request");
    if (!h_wait_for(agent0_running, &none, WAIT_MS))
        fail_msg("agent0's load still shows a request after its client went away");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_models_name_the_nodes_that_store_them),
        cmocka_unit_test(test_store_changes_reach_the_coordinator),
        cmocka_unit_test(test_a_loaded_model_shows_in_ps_and_models),
        cmocka_unit_test(test_a_running_request_shows_in_the_node_load),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
