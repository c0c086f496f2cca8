/*
 * it_relay.c — coordinator/relay against two real agents serving
 * stories260K: the registry knows them as the control plane would have
 * recorded them (registered, with the model in their stores), the router
 * chooses, the data plane carries the generation. The greedy text equals
 * llama.cpp's; an affinity key keeps to one node; a refused request is not
 * tried elsewhere; a client that goes away cancels; an unknown model is
 * 404 and nodes marked down 503; and when the chosen agent is killed, the
 * same request succeeds on the other one. A load-only request (relay_load)
 * goes where a generation would (the affinity key's node, a node with the
 * model loaded first), an unload to every node the registry says has it
 * loaded, and a load fails over as a generation does.
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

#include <cmocka.h>

#include "common/log.h"
#include "coordinator/relay/relay.h"
#include "tests/integration/serving.h"
#include "tests/support/testutil.h"

#define PROMPT "Once upon a time"

static serving agents[2];
static const char *ids[2] = {"00000000000000a0", "00000000000000b0"};
static char *dir;
static registry *reg;
static dpc_pool *pool;
static router_health *health;
static relay *rl;

static void must(int rc, const mlx_err *err, const char *what)
{
    if (rc != 0)
        fail_msg("%s: %s", what, err->msg);
}

/* What the control plane records when agent i registers with its store. */
static void register_agent(int i)
{
    mlx_err err;
    mlx_err_clear(&err);
    registry_node n = {
        .id = ids[i],
        .name = i == 0 ? "agent-a" : "agent-b",
        .address = agents[i].listen,
        .http = agents[i].base,
        .version = "test",
        .heartbeat_ms = 1000,
        .hardware_json = "{}",
    };
    must(registry_register(reg, &n, 0, &err), &err, "registry_register");
    registry_stored model = {.name = SERVING_MODEL, .format = "gguf", .size_bytes = 1};
    must(registry_set_store(reg, ids[i], &model, 1, &err), &err, "registry_set_store");
}

static int group_setup(void **state)
{
    mlx_log_set_level(MLX_LOG_ERROR);
    for (int i = 0; i < 2; i++)
        if (serving_start(&agents[i], i == 0 ? "relay-a" : "relay-b", NULL) != 0)
            return -1;
    dir = test_tmpdir("it-relay");
    char *path = test_join(dir, "coordinator.db");
    mlx_err err;
    mlx_err_clear(&err);
    int rc = registry_open(path, &reg, &err);
    free(path);
    if (rc == 0)
        rc = dpc_open(NULL, &pool, &err);
    if (rc == 0)
        rc = router_health_create(&health, &err);
    relay_config cfg = {.reg = reg, .pool = pool, .health = health};
    if (rc == 0)
        rc = relay_create(&cfg, &rl, &err);
    if (rc != 0) {
        fprintf(stderr, "setup: %s\n", err.msg);
        return -1;
    }
    for (int i = 0; i < 2; i++)
        register_agent(i);
    return 0;
}

static int group_teardown(void **state)
{
    relay_destroy(rl);
    router_health_destroy(health);
    dpc_close(pool);
    registry_close(reg);
    for (int i = 0; i < 2; i++)
        if (agents[i].agent != NULL)
            serving_stop(&agents[i]);
    test_tmpdir_remove(dir); /* and frees it */
    return 0;
}

/* ---- a sink that keeps the text ----------------------------------------- */

struct collected {
    char text[8192];
    size_t len;
    size_t chunks;
    size_t stop_after; /* chunks: then say the client is gone; 0: never */
};

static int keep_text(void *arg, const char *p, size_t n)
{
    struct collected *c = arg;
    if (c->len + n < sizeof c->text) {
        memcpy(c->text + c->len, p, n);
        c->len += n;
        c->text[c->len] = '\0';
    }
    c->chunks++;
    return c->stop_after > 0 && c->chunks >= c->stop_after;
}

static int run(const char *model, const char *affinity, const dpc_sampling *sampling,
               int max_tokens, struct collected *c, relay_result *res)
{
    dpc_request req = {
        .model = model,
        .prompt = PROMPT,
        .max_tokens = max_tokens,
        .sampling = sampling,
    };
    relay_sink sink = {.text = keep_text, .arg = c};
    return relay_run(rl, &req, &(relay_route){.affinity_key = affinity}, &sink, res);
}

static const dpc_sampling greedy = {.temperature = 0, .top_p = 1, .repeat_penalty = 1};

static int node_index(const char *id)
{
    for (int i = 0; i < 2; i++)
        if (strcmp(id, ids[i]) == 0)
            return i;
    fail_msg("the relay named node '%s', which is neither agent", id);
    return -1;
}

/* ---- tests ------------------------------------------------------------------ */

static void test_greedy_text_is_llama_cpp_s(void **state)
{
    struct collected c = {0};
    relay_result res;
    assert_int_equal(run(SERVING_MODEL, NULL, &greedy, 48, &c, &res), 0);
    assert_int_equal(res.status, 200);
    assert_int_equal(res.attempts, 1);
    assert_true(res.streamed);
    assert_string_equal(res.end.finish_reason, "length");
    assert_int_equal(res.end.completion_tokens, 48);
    assert_true(res.end.prompt_tokens > 0);
    node_index(res.node_id);
    assert_string_equal(c.text, serving_greedy_text(PROMPT));
}

static void test_an_affinity_key_keeps_to_one_node(void **state)
{
    char first[MLX_NODE_ID_LEN + 1] = "";
    for (int i = 0; i < 8; i++) {
        struct collected c = {0};
        relay_result res;
        assert_int_equal(run(SERVING_MODEL, "conversation-7", &greedy, 4, &c, &res), 0);
        if (i == 0)
            snprintf(first, sizeof first, "%s", res.node_id);
        assert_string_equal(res.node_id, first);
    }
}

static void test_without_a_key_both_nodes_serve(void **state)
{
    int served[2] = {0, 0};
    for (int i = 0; i < 40 && (served[0] == 0 || served[1] == 0); i++) {
        struct collected c = {0};
        relay_result res;
        assert_int_equal(run(SERVING_MODEL, NULL, &greedy, 2, &c, &res), 0);
        served[node_index(res.node_id)]++;
    }
    assert_true(served[0] > 0 && served[1] > 0);
}

static void test_a_refused_request_is_not_tried_elsewhere(void **state)
{
    dpc_sampling bad = greedy;
    bad.temperature = -1;
    struct collected c = {0};
    relay_result res;
    assert_int_not_equal(run(SERVING_MODEL, NULL, &bad, 4, &c, &res), 0);
    assert_int_equal(res.status, 400);
    assert_int_equal(res.attempts, 1);
    assert_non_null(strstr(res.err.msg, "temperature"));
    assert_int_equal(c.len, 0);
}

static void test_an_unknown_model_is_404_naming_it(void **state)
{
    struct collected c = {0};
    relay_result res;
    assert_int_not_equal(run("no-such-model", NULL, &greedy, 4, &c, &res), 0);
    assert_int_equal(res.status, 404);
    assert_int_equal(res.attempts, 0);
    assert_non_null(strstr(res.err.msg, "no-such-model"));
}

static void test_a_client_gone_cancels(void **state)
{
    struct collected c = {.stop_after = 1};
    relay_result res;
    assert_int_not_equal(run(SERVING_MODEL, NULL, &greedy, 1000, &c, &res), 0);
    assert_int_equal(res.status, 499);
    int i = node_index(res.node_id);
    /* The relay's count is back to zero, and the agent serves the next one. */
    assert_int_equal(relay_in_flight(rl, ids[i]), 0);
    struct collected again = {0};
    assert_int_equal(run(SERVING_MODEL, NULL, &greedy, 8, &again, &res), 0);
}

static void test_nodes_marked_down_are_passed_over(void **state)
{
    mlx_err err;
    mlx_err_clear(&err);
    for (int i = 0; i < 2; i++)
        must(registry_set_state(reg, ids[i], "down", &err), &err, "registry_set_state");
    struct collected c = {0};
    relay_result res;
    assert_int_not_equal(run(SERVING_MODEL, NULL, &greedy, 4, &c, &res), 0);
    assert_int_equal(res.status, 503);
    assert_int_equal(res.attempts, 0);
    /* One back up: it serves everything. */
    must(registry_set_state(reg, ids[1], "up", &err), &err, "registry_set_state");
    for (int k = 0; k < 6; k++) {
        assert_int_equal(run(SERVING_MODEL, NULL, &greedy, 2, &c, &res), 0);
        assert_string_equal(res.node_id, ids[1]);
    }
    must(registry_set_state(reg, ids[0], "up", &err), &err, "registry_set_state");
}

/* ---- load-only requests ------------------------------------------------------ */

static int load(const char *model, int64_t keep_alive_ms, const relay_route *route,
                relay_load_result *res)
{
    return relay_load(rl, model, keep_alive_ms, route, res);
}

/* What the control plane records from node i's heartbeat: the model loaded,
 * or nothing. */
static void heartbeat_says_loaded(int i, bool loaded)
{
    mlx_err err;
    mlx_err_clear(&err);
    registry_loaded m = {.name = SERVING_MODEL, .engine = "mlx", .memory_bytes = 1};
    must(registry_set_loaded(reg, ids[i], &m, loaded ? 1 : 0, 0, 0, &err), &err,
         "registry_set_loaded");
}

/* Whether agent i's /api/ps lists the model. */
static bool agent_has_it(int i)
{
    char url[128];
    snprintf(url, sizeof url, "%s/api/ps", agents[i].base);
    json_t *ps = h_get_json(url, NULL);
    bool listed = false;
    size_t k;
    json_t *m;
    json_array_foreach(json_object_get(ps, "models"), k, m)
    {
        const char *name = json_string_value(json_object_get(m, "name"));
        listed |= name != NULL && strcmp(name, SERVING_MODEL) == 0;
    }
    json_decref(ps);
    return listed;
}

static void test_a_load_goes_where_a_generation_would(void **state)
{
    /* The affinity key's node. */
    struct collected c = {0};
    relay_result gen;
    assert_int_equal(run(SERVING_MODEL, "load-key", &greedy, 2, &c, &gen), 0);
    relay_load_result res;
    assert_int_equal(
        load(SERVING_MODEL, 0, &(relay_route){.affinity_key = "load-key"}, &res), 0);
    assert_int_equal(res.status, 200);
    assert_int_equal(res.attempts, 1);
    assert_string_equal(res.node_id, gen.node_id);
    assert_int_equal(res.load_ns, 0); /* the generation loaded it */
    assert_int_equal(relay_in_flight(rl, res.node_id), 0);

    /* Without a key, a node that has it loaded before one that stores it. */
    heartbeat_says_loaded(1, true);
    for (int k = 0; k < 6; k++) {
        assert_int_equal(load(SERVING_MODEL, 0, NULL, &res), 0);
        assert_string_equal(res.node_id, ids[1]);
    }
    heartbeat_says_loaded(1, false);

    /* A model no node holds: 404 naming it, no node asked. */
    assert_int_not_equal(load("no-such-model", 0, NULL, &res), 0);
    assert_int_equal(res.status, 404);
    assert_int_equal(res.attempts, 0);
    assert_non_null(strstr(res.err.msg, "no-such-model"));
}

static void test_an_unload_reaches_every_node_with_it_loaded(void **state)
{
    relay_load_result res;
    for (int i = 0; i < 2; i++) {
        assert_int_equal(load(SERVING_MODEL, 0, &(relay_route){.node_id = ids[i]}, &res),
                         0);
        assert_string_equal(res.node_id, ids[i]);
        assert_true(agent_has_it(i));
        heartbeat_says_loaded(i, true);
    }
    assert_int_equal(load(SERVING_MODEL, -1, NULL, &res), 0);
    assert_int_equal(res.status, 200);
    assert_int_equal(res.unloaded, 2);
    assert_int_equal(res.load_ns, 0);
    for (int i = 0; i < 2; i++)
        assert_false(agent_has_it(i));
    /* The registry says so still (no heartbeat came): asked again, the
     * agents load nothing to unload it. */
    assert_int_equal(load(SERVING_MODEL, -1, NULL, &res), 0);
    for (int i = 0; i < 2; i++) {
        assert_false(agent_has_it(i));
        heartbeat_says_loaded(i, false);
    }
    /* None has it loaded: done, nobody asked. */
    assert_int_equal(load(SERVING_MODEL, -1, NULL, &res), 0);
    assert_int_equal(res.status, 200);
    assert_int_equal(res.unloaded, 0);
    assert_int_not_equal(load("no-such-model", -1, NULL, &res), 0);
    assert_int_equal(res.status, 404);
    assert_non_null(strstr(res.err.msg, "no-such-model"));
}

/* Last: kills the agent an affinity key goes to. The registry still says
 * it is up (no heartbeats are watched here), so the relay tries it, fails,
 * and serves the request on the other agent without the client seeing. */
static void test_a_killed_node_fails_over_before_the_first_token(void **state)
{
    struct collected c = {0};
    relay_result res;
    assert_int_equal(run(SERVING_MODEL, "failover", &greedy, 4, &c, &res), 0);
    int victim = node_index(res.node_id);
    h_signal(agents[victim].agent, SIGKILL);
    h_wait_exit(agents[victim].agent, 10000);

    /* The relay notices the lost connection at once rather than waiting
     * out the data plane's 30 s exchange timeout: well inside 10 s. */
    struct collected after = {0};
    int64_t start = h_now_ms();
    assert_int_equal(run(SERVING_MODEL, "failover", &greedy, 48, &after, &res), 0);
    int64_t took = h_now_ms() - start;
    if (took > 10000)
        fail_msg("failing over took %lld ms: the dead node's connection was not noticed",
                 (long long)took);
    assert_int_equal(res.status, 200);
    assert_int_equal(res.attempts, 2);
    assert_string_equal(res.node_id, ids[1 - victim]);
    assert_string_equal(after.text, serving_greedy_text(PROMPT));
    assert_int_equal(relay_in_flight(rl, ids[victim]), 0);
}

/* After the kill: a load with the same key tries the dead node (the
 * registry still says it is up), then loads on the other. */
static void test_a_load_fails_over_too(void **state)
{
    relay_load_result res;
    assert_int_equal(
        load(SERVING_MODEL, 0, &(relay_route){.affinity_key = "failover"}, &res), 0);
    assert_int_equal(res.status, 200);
    assert_int_equal(res.attempts, 2);
    int survivor = node_index(res.node_id);
    assert_non_null(agents[survivor].agent);
    assert_true(agent_has_it(survivor));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_greedy_text_is_llama_cpp_s),
        cmocka_unit_test(test_an_affinity_key_keeps_to_one_node),
        cmocka_unit_test(test_without_a_key_both_nodes_serve),
        cmocka_unit_test(test_a_refused_request_is_not_tried_elsewhere),
        cmocka_unit_test(test_an_unknown_model_is_404_naming_it),
        cmocka_unit_test(test_a_client_gone_cancels),
        cmocka_unit_test(test_nodes_marked_down_are_passed_over),
        cmocka_unit_test(test_a_load_goes_where_a_generation_would),
        cmocka_unit_test(test_an_unload_reaches_every_node_with_it_loaded),
        cmocka_unit_test(test_a_killed_node_fails_over_before_the_first_token),
        cmocka_unit_test(test_a_load_fails_over_too),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
