/*
 * it_membership.c — registration, heartbeats and membership with real
 * processes on loopback: a coordinator and three agents, one killed with
 * SIGKILL (suspect, then down, inside the configured windows), one stopped
 * cleanly (left), both restarted under the same ids, then the coordinator
 * restarted (registry kept, every agent back up within 5 s). Also an agent
 * started before its coordinator.
 */
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>

#include "common/alloc.h"
#include "common/http_server.h"
#include "tests/integration/cluster.h"
#include "tests/support/testutil.h"

/* Heartbeat every 200 ms; suspect after 3 missed (600 ms), down after 8
 * (1600 ms). Wide enough that a busy 2-core machine does not flap. */
#define HB      200
#define SUSPECT 3
#define DOWN    8
/* Allowance for scheduling, the 25 ms membership tick and our 10 ms polling. */
#define SLACK_MS 1000

static int64_t wall_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* `mlxctl nodes --json` parsed, or NULL when it fails. */
static json_t *mlxctl_nodes(cluster *c)
{
    const char *args[] = {"--coordinator", c->http_url, "nodes", "--json", NULL};
    char *out = NULL;
    int status = h_run("mlxctl", args, 10000, &out, NULL);
    json_t *v = status == 0 ? json_loads(out, 0, NULL) : NULL;
    free(out);
    return v;
}

struct reregistered {
    cluster *c;
    int64_t since_unix_ms;
};

/* Every agent up and registered (again) since the given wall-clock time. */
static bool all_registered_since(void *arg)
{
    struct reregistered *r = arg;
    json_t *nodes = cluster_nodes(r->c);
    bool ok = nodes != NULL;
    for (int i = 0; ok && i < r->c->n_agents; i++) {
        json_t *n = cluster_find_node(nodes, r->c->agents[i].node_id);
        ok = n != NULL &&
             strcmp(json_string_value(json_object_get(n, "state")), "up") == 0 &&
             json_integer_value(json_object_get(n, "registered_at_unix_ms")) >=
                 r->since_unix_ms;
    }
    json_decref(nodes);
    return ok;
}

static bool all_agents_up_in_mlxctl(void *arg)
{
    cluster *c = arg;
    json_t *nodes = mlxctl_nodes(c);
    bool ok = nodes != NULL &&
              json_array_size(json_object_get(nodes, "nodes")) == (size_t)c->n_agents;
    for (int i = 0; ok && i < c->n_agents; i++) {
        json_t *n = cluster_find_node(nodes, c->agents[i].node_id);
        ok = n != NULL &&
             strcmp(json_string_value(json_object_get(n, "state")), "up") == 0;
    }
    json_decref(nodes);
    return ok;
}

static void start_three(cluster *c)
{
    cluster_start_coordinator(c);
    cluster_add_agent(c, "agent-a");
    cluster_add_agent(c, "agent-b");
    cluster_add_agent(c, "agent-c");
    for (int i = 0; i < 3; i++)
        assert_true(cluster_wait_node_id(c, i, 10000));
    assert_true(h_wait_for(all_agents_up_in_mlxctl, c, 15000));
}

/* A local Ollama as its docs show GET /api/ps: the agents report what it
 * has loaded, and the coordinator shows it with the node. */
static void ollama_ps(void *ctx, const mlx_http_req *req, mlx_http_resp *resp)
{
    static const char body[] = "{\"models\":[{\"name\":\"mistral:latest\",\"model\":"
                               "\"mistral:latest\",\"size\":5137025024,\"size_vram\":"
                               "5137025024,\"expires_at\":\"2024-06-04T14:38:31Z\"}]}";
    resp->status = 200;
    resp->content_type = "application/json";
    resp->body = mlx_strdup(body);
    resp->body_len = strlen(body);
}

static mlx_http_server *start_ollama(void)
{
    static const mlx_http_route routes[] = {{"GET", "/api/ps", ollama_ps}, {NULL}};
    mlx_http_server *srv = NULL;
    for (int attempt = 0; srv == NULL && attempt < 5; attempt++) {
        char addr[32], url[64];
        int port = test_free_port();
        snprintf(addr, sizeof addr, "127.0.0.1:%d", port);
        snprintf(url, sizeof url, "http://127.0.0.1:%d", port);
        if (mlx_http_server_start(addr, routes, NULL, 1024, "ollama", &srv, NULL) == 0)
            setenv("MLX_OLLAMA", url, 1); /* the agents inherit it */
    }
    assert_non_null(srv);
    return srv;
}

static bool reports_ollama_model(const json_t *m)
{
    const json_t *models = json_object_get(m, "models");
    const json_t *first = json_array_get(models, 0);
    return json_array_size(models) == 1 &&
           strcmp(json_string_value(json_object_get(first, "model")), "mistral:latest") ==
               0 &&
           strcmp(json_string_value(json_object_get(first, "engine")), "ollama") == 0 &&
           json_integer_value(json_object_get(first, "memory_bytes")) == 5137025024LL;
}

static void test_nodes_report_hardware_and_metrics(void **state)
{
    mlx_http_server *ollama = start_ollama();
    cluster *c = cluster_create("it-members", HB, SUSPECT, DOWN);
    start_three(c);
    unsetenv("MLX_OLLAMA");
    json_t *nodes = cluster_nodes(c);
    json_t *n = cluster_find_node(nodes, c->agents[0].node_id);
    assert_non_null(n);
    assert_string_equal(json_string_value(json_object_get(n, "name")), "agent-a");
    char addr[64];
    snprintf(addr, sizeof addr, "tcp://127.0.0.1:%d", c->agents[0].listen_port);
    assert_string_equal(json_string_value(json_object_get(n, "address")), addr);
    json_t *hw = json_object_get(n, "hardware");
    assert_true(json_integer_value(json_object_get(hw, "cpu_cores")) > 0);
    assert_true(json_integer_value(json_object_get(hw, "memory_total_bytes")) > 0);
    assert_true(strlen(json_string_value(json_object_get(hw, "hostname"))) > 0);
    assert_true(strlen(json_string_value(json_object_get(hw, "os_version"))) > 0);
    json_decref(nodes);

    /* Metrics arrive with the first heartbeat after registration. */
    bool have_metrics = false;
    int64_t deadline = h_now_ms() + 5000;
    while (!have_metrics && h_now_ms() < deadline) {
        nodes = cluster_nodes(c);
        json_t *m =
            json_object_get(cluster_find_node(nodes, c->agents[0].node_id), "metrics");
        have_metrics = json_is_object(m) &&
                       json_integer_value(json_object_get(m, "memory_total_bytes")) > 0 &&
                       json_integer_value(json_object_get(m, "memory_used_bytes")) > 0 &&
                       json_is_number(json_object_get(m, "cpu_percent")) &&
                       json_is_number(json_object_get(m, "load1")) &&
                       json_is_integer(json_object_get(m, "swap_total_bytes")) &&
                       json_is_number(json_object_get(m, "net_rx_bytes_per_s")) &&
                       json_is_number(json_object_get(m, "gpu_percent")) &&
                       json_integer_value(json_object_get(m, "disk_free_bytes")) > 0 &&
                       reports_ollama_model(m);
        json_decref(nodes);
    }
    assert_true(have_metrics);
    cluster_destroy(c);
    mlx_http_server_stop(ollama);
}

static void test_fleet_lifecycle(void **state)
{
    cluster *c = cluster_create("it-members", HB, SUSPECT, DOWN);
    start_three(c);

    /* kill -9 agent-b: suspect, then down, inside the configured windows. */
    int64_t killed = h_now_ms();
    h_signal(c->agents[1].proc, SIGKILL);
    assert_int_equal(h_wait_exit(c->agents[1].proc, 5000), 128 + SIGKILL);
    int64_t suspect_at = -1, down_at = -1;
    while (down_at < 0 && h_now_ms() - killed < DOWN * HB + 3 * SLACK_MS) {
        char st[16];
        cluster_agent_state(c, 1, st);
        if (strcmp(st, "suspect") == 0 && suspect_at < 0)
            suspect_at = h_now_ms();
        if (strcmp(st, "down") == 0)
            down_at = h_now_ms();
    }
    assert_true(suspect_at > 0); /* seen as suspect before down */
    assert_true(down_at > suspect_at);
    /* The last heartbeat was at most one interval before the kill. */
    assert_true(suspect_at - killed >= (SUSPECT - 1) * HB);
    assert_true(suspect_at - killed <= SUSPECT * HB + SLACK_MS);
    assert_true(down_at - killed >= (DOWN - 1) * HB);
    assert_true(down_at - killed <= DOWN * HB + SLACK_MS);

    /* Restarted, it is the same node again. */
    free(c->agents[1].proc);
    cluster_start_agent(c, 1);
    assert_true(cluster_wait_agent_state(c, 1, "up", 10000));
    json_t *nodes = cluster_nodes(c);
    assert_int_equal(json_array_size(json_object_get(nodes, "nodes")), 3);
    json_decref(nodes);

    /* SIGTERM: a clean exit that deregisters. */
    h_signal(c->agents[2].proc, SIGTERM);
    assert_int_equal(h_wait_exit(c->agents[2].proc, 10000), 0);
    char st[16];
    cluster_agent_state(c, 2, st);
    assert_string_equal(st, "left");
    assert_int_equal(h_count_lines(c->agents[2].proc->log_path, "msg=\"deregistered\""),
                     1);
    free(c->agents[2].proc);
    cluster_start_agent(c, 2);
    assert_true(cluster_wait_agent_state(c, 2, "up", 10000));

    /* Restart the coordinator: the registry survives and every agent is back
     * up within 5 s under its old id, registered again. */
    assert_int_equal(h_stop(c->coordinator), 0);
    int64_t restart_wall = wall_ms();
    cluster_start_coordinator(c);
    int64_t restarted = h_now_ms();
    nodes = NULL;
    while (nodes == NULL && h_now_ms() - restarted < 10000)
        nodes = cluster_nodes(c);
    assert_non_null(nodes);
    assert_int_equal(json_array_size(json_object_get(nodes, "nodes")), 3);
    json_decref(nodes);
    struct reregistered r = {c, restart_wall};
    assert_true(
        h_wait_for(all_registered_since, &r, 5000 - (int)(h_now_ms() - restarted)));
    assert_true(all_agents_up_in_mlxctl(c));
    for (int i = 0; i < 3; i++)
        assert_true(
            h_count_lines(c->agents[i].proc->log_path, "msg=\"registering again\"") >= 1);
    cluster_destroy(c);
}

static bool log_has_unreachable(void *arg)
{
    return h_count_lines(arg, "coordinator unreachable") >= 1;
}

static void test_agent_started_before_coordinator(void **state)
{
    cluster *c = cluster_create("it-members", 100, SUSPECT, DOWN);
    cluster_add_agent(c, "early");
    assert_true(cluster_wait_node_id(c, 0, 10000));
    /* The agent reports the outage once and keeps trying. */
    assert_true(h_wait_for(log_has_unreachable, c->agents[0].proc->log_path, 10000));
    cluster_start_coordinator(c);
    assert_true(cluster_wait_agent_state(c, 0, "up", 5000));
    assert_int_equal(
        h_count_lines(c->agents[0].proc->log_path, "coordinator unreachable"), 1);
    assert_int_equal(
        h_count_lines(c->agents[0].proc->log_path, "registered with coordinator"), 1);
    cluster_destroy(c);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_nodes_report_hardware_and_metrics),
        cmocka_unit_test(test_fleet_lifecycle),
        cmocka_unit_test(test_agent_started_before_coordinator),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
