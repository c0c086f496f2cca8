/*
 * it_fleet_metrics.c — the coordinator's /metrics and /api/v1/requests
 * against a real fleet: a coordinator and two agents on loopback with
 * stories260K, and a slow synthetic model on the first agent only.
 *
 * A real Prometheus scrapes the coordinator and both agents. What the
 * coordinator counts must be what the agents count of the same work, the
 * fleet's series must name both nodes, and no series name may come from
 * both kinds of target (so summing over every job adds nothing twice).
 * The request log holds one row per generation, with its node and tokens.
 * A slow streamed generation shows in /api/v1/requests with its node while
 * it runs and leaves the list when its client goes. A node killed while a
 * session is pinned to it shows as a retry and a failover, and then as
 * down.
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

#include "tests/integration/cluster.h"
#include "tests/integration/promserver.h"
#include "tests/integration/serving.h"
#include "tests/support/testutil.h"

/* Heartbeats at 500 ms, suspect after 2 s: a request sent right after a
 * kill still finds the dead node up in the registry. */
#define HB      500
#define SUSPECT 4
#define DOWN    8
#define WAIT_MS 20000

#define SLOW_MODEL "slow"
#define N_SERVED   6

static cluster *c;
static char *model_file; /* ../shared/testdata/stories260K.gguf */
static char *slow_file;  /* a synthetic model, a few ms a token */
static serving front;    /* the coordinator's HTTP */

/* ---- setup ------------------------------------------------------------------ */

static int group_setup(void **state)
{
    curl_global_init(CURL_GLOBAL_ALL);
    c = cluster_create("fleet-metrics", HB, SUSPECT, DOWN);
    slow_file = test_join(c->dir, "slow.gguf");
    const char *synth[] = {"model",      "synth", "--out", slow_file, "--layers",
                           "8",          "--dim", "512",   "--heads", "8",
                           "--kv-heads", "4",     "--ff",  "1536",    "--type",
                           "q8_0",       "--ctx", "4096",  NULL};
    if (h_run("mlx-agent", synth, 120000, NULL, NULL) != 0) {
        fprintf(stderr, "mlx-agent model synth failed\n");
        return -1;
    }
    cluster_start_coordinator(c);
    for (int i = 0; i < 2; i++) {
        char name[16];
        snprintf(name, sizeof name, "agent%d", i);
        if (!cluster_store_add(c, name, model_file, SERVING_MODEL) ||
            (i == 0 && !cluster_store_add(c, name, slow_file, SLOW_MODEL)))
            return -1;
        cluster_add_agent(c, name);
    }
    snprintf(front.base, sizeof front.base, "%s", c->http_url);
    if (!cluster_wait_agents_up(c, WAIT_MS))
        return -1;
    if (!cluster_wait_model(c, SERVING_MODEL, "stored", 2, WAIT_MS) ||
        !cluster_wait_model(c, SLOW_MODEL, "stored", 1, WAIT_MS)) {
        fprintf(stderr, "the coordinator never listed the models on their nodes\n");
        return -1;
    }
    /* Loaded on both (one request to each agent directly), so the router's
     * tiers (loaded before stored) stay as they are through the tests. */
    for (int i = 0; i < 2; i++) {
        serving direct;
        snprintf(direct.base, sizeof direct.base, "http://127.0.0.1:%d",
                 c->agents[i].http_port);
        json_decref(serving_post_ok(&direct, "/v1/completions",
                                    "{\"model\":\"" SERVING_MODEL
                                    "\",\"prompt\":\"Once\","
                                    "\"max_tokens\":1}"));
    }
    if (!cluster_wait_model(c, SERVING_MODEL, "loaded", 2, WAIT_MS)) {
        fprintf(stderr, "the coordinator never saw the model loaded on both agents\n");
        return -1;
    }
    return 0;
}

static int group_teardown(void **state)
{
    cluster_destroy(c);
    free(model_file);
    free(slow_file);
    curl_global_cleanup();
    return 0;
}

/* ---- helpers ---------------------------------------------------------------- */

static long post(const char *path, const char *session, const char *body)
{
    char header[96];
    snprintf(header, sizeof header, "X-Session-Id: %s", session ? session : "");
    const char *headers[] = {header, NULL};
    serving_reply r;
    serving_call(&front, "POST", path, session ? headers : NULL, body, strlen(body), &r);
    long status = r.status;
    serving_reply_free(&r);
    return status;
}

/* The coordinator's /metrics page (caller frees). */
static char *metrics_page(void)
{
    serving_reply r;
    serving_call(&front, "GET", "/metrics", NULL, NULL, 0, &r);
    assert_int_equal(r.status, 200);
    return r.body;
}

struct sample_wait {
    const char *prefix;
    double want;
    double got;
};

static bool sample_is(void *arg)
{
    struct sample_wait *w = arg;
    char *page = metrics_page();
    w->got = test_prom_sample(page, w->prefix);
    free(page);
    return w->got == w->want;
}

static void expect_sample(const char *prefix, double want)
{
    struct sample_wait w = {prefix, want, -1};
    if (!h_wait_for(sample_is, &w, WAIT_MS))
        fail_msg("%s is %g on the coordinator's /metrics; expected %g", prefix, w.got,
                 want);
}

/* ---- what the fleet served, as Prometheus reads it ------------------------- */

static void test_prometheus_reads_the_fleet(void **state)
{
    const char *body = "{\"model\":\"" SERVING_MODEL "\",\"prompt\":\"Once upon a time\","
                       "\"max_tokens\":8,\"temperature\":0}";
    for (int i = 0; i < N_SERVED; i++) {
        char session[32];
        snprintf(session, sizeof session, "metrics-%d", i);
        assert_int_equal(post("/v1/completions", session, body), 200);
    }
    const char *missing = "{\"model\":\"no-such-model\",\"prompt\":\"hi\"}";
    assert_int_equal(post("/v1/completions", NULL, missing), 404);

    /* The request log: one row per generation, with its node and tokens
     * (the unknown model's with none). The log keeps the order requests
     * ended in, so once the last request's row is there every one's is. */
    long long got = -1;
    if (!cluster_wait_log_rows(c,
                               "SELECT count(*) FROM requests WHERE model = ?1 AND node"
                               " IS NULL AND status = 404",
                               "no-such-model", NULL, 1, WAIT_MS, &got))
        fail_msg("the request log has %lld rows of the unknown model", got);
    if (!cluster_wait_log_rows(
            c,
            "SELECT count(*) FROM requests WHERE model = '" SERVING_MODEL
            "' AND node IN (?1, ?2) AND status = 200 AND request_id IS"
            " NOT NULL AND prompt_tokens > 0 AND completion_tokens > 0",
            c->agents[0].node_id, c->agents[1].node_id, N_SERVED, 0, &got) ||
        !cluster_wait_log_rows(c, "SELECT count(*) FROM requests WHERE model = ?1",
                               SERVING_MODEL, NULL, N_SERVED, 0, &got))
        fail_msg("the request log has %lld rows of " SERVING_MODEL "; expected one per "
                 "generation (%d), with its node and tokens",
                 got, N_SERVED);

    int coordinator_port = c->http_port;
    int agent_ports[] = {c->agents[0].http_port, c->agents[1].http_port};
    prom_job jobs[] = {{"mlx-coordinator", &coordinator_port, 1},
                       {"mlx-agent", agent_ports, 2}};
    prom_server *prom = prom_start("it-fleet-metrics-prometheus", jobs, 2);

    /* The coordinator counts what it relayed, and the agents agree, node
     * by node. */
    prom_expect(prom,
                "sum(mlx_coordinator_requests_total{model=\"" SERVING_MODEL
                "\",status=\"200\"})",
                PROM_EQUAL, N_SERVED);
    prom_expect(prom,
                "sum(mlx_requests_total{job=\"mlx-agent\",endpoint=\"dataplane\","
                "model=\"" SERVING_MODEL "\",status=\"200\"})",
                PROM_EQUAL, N_SERVED);
    prom_expect(prom,
                "count(sum by (node) (mlx_coordinator_requests_total{status=\"200\"}) "
                "!= on (node) sum by (node) (mlx_requests_total{job=\"mlx-agent\","
                "endpoint=\"dataplane\",status=\"200\"})) or vector(0)",
                PROM_EQUAL, 0);
    prom_expect(prom,
                "sum(mlx_coordinator_requests_total{model=\"no-such-model\",node=\"\","
                "status=\"404\"})",
                PROM_EQUAL, 1);
    prom_expect(prom, "mlx_coordinator_routing_seconds_count", PROM_EQUAL, N_SERVED);
    prom_expect(prom, "mlx_coordinator_time_to_first_token_seconds_count", PROM_EQUAL,
                N_SERVED);
    prom_expect(prom,
                "histogram_quantile(0.99, sum by (le) "
                "(mlx_coordinator_routing_seconds_bucket))",
                PROM_FINITE, 0);
    prom_expect(prom, "mlx_coordinator_retries_total", PROM_EQUAL, 0);

    /* The fleet's series: both nodes, from heartbeats. */
    prom_expect(prom, "mlx_fleet_nodes{state=\"up\"}", PROM_EQUAL, 2);
    prom_expect(prom, "count(mlx_fleet_node_memory_total_bytes > 0)", PROM_EQUAL, 2);
    prom_expect(prom,
                "count(mlx_fleet_node_state{node=~\"agent[01]\",state=\"up\"} == 1)",
                PROM_EQUAL, 2);
    prom_expect(prom,
                "count(mlx_fleet_model_memory_bytes{model=\"" SERVING_MODEL "\"} > 0)",
                PROM_EQUAL, 2);

    /* No name is written by both the coordinator and an agent. */
    prom_expect(
        prom,
        "count(count by (__name__) ({job=\"mlx-coordinator\",__name__=~\"mlx_.*\"}) "
        "and on (__name__) "
        "count by (__name__) ({job=\"mlx-agent\",__name__=~\"mlx_.*\"})) "
        "or vector(0)",
        PROM_EQUAL, 0);
    assert_int_equal(prom_stop(prom), 0);
}

/* ---- a generation in flight ------------------------------------------------- */

struct slow_client {
    pthread_t thread;
    _Atomic bool stop; /* abort the transfer at the next piece */
    long status;
};

static size_t slow_piece(char *p, size_t size, size_t n, void *arg)
{
    struct slow_client *s = arg;
    return s->stop ? 0 : size * n; /* 0: curl aborts, the client is gone */
}

static void *slow_run(void *arg)
{
    struct slow_client *s = arg;
    char url[128];
    snprintf(url, sizeof url, "%s/v1/completions", c->http_url);
    const char *body = "{\"model\":\"" SLOW_MODEL "\",\"prompt\":\"Once\","
                       "\"max_tokens\":3000,\"stream\":true,\"temperature\":0}";
    CURL *h = curl_easy_init();
    struct curl_slist *hdr = curl_slist_append(NULL, "Content-Type: application/json");
    curl_easy_setopt(h, CURLOPT_URL, url);
    curl_easy_setopt(h, CURLOPT_HTTPHEADER, hdr);
    curl_easy_setopt(h, CURLOPT_POSTFIELDS, body);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, slow_piece);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, s);
    curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, 120000L);
    curl_easy_perform(h);
    curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &s->status);
    curl_slist_free_all(hdr);
    curl_easy_cleanup(h);
    return NULL;
}

struct flight_wait {
    char node_id[17];
    json_t *seen; /* the entry, once generating (caller decrefs) */
    size_t n;
};

static bool slow_generating(void *arg)
{
    struct flight_wait *w = arg;
    char url[128];
    snprintf(url, sizeof url, "%s/api/v1/requests", c->http_url);
    json_t *doc = h_get_json(url, NULL);
    json_t *list = json_object_get(doc, "requests");
    json_t *r = json_array_get(list, 0);
    const char *state = json_string_value(json_object_get(r, "state"));
    bool ok = json_array_size(list) == 1 && state != NULL &&
              strcmp(state, "generating") == 0 &&
              json_integer_value(json_object_get(r, "text_bytes")) > 0;
    if (ok)
        w->seen = json_incref(r);
    w->n = json_array_size(list);
    json_decref(doc);
    return ok;
}

static bool none_in_flight(void *arg)
{
    struct flight_wait *w = arg;
    char url[128];
    snprintf(url, sizeof url, "%s/api/v1/requests", c->http_url);
    json_t *doc = h_get_json(url, NULL);
    json_t *list = json_object_get(doc, "requests");
    w->n = list != NULL ? json_array_size(list) : 99;
    json_decref(doc);
    return w->n == 0;
}

static void test_requests_shows_a_generation_while_it_runs(void **state)
{
    struct flight_wait w = {.seen = NULL};
    assert_true(none_in_flight(&w));
    struct slow_client s = {.status = 0};
    assert_int_equal(pthread_create(&s.thread, NULL, slow_run, &s), 0);
    if (!h_wait_for(slow_generating, &w, WAIT_MS)) {
        s.stop = true;
        pthread_join(s.thread, NULL);
        fail_msg("/api/v1/requests never showed the slow generation running (%zu "
                 "listed)",
                 w.n);
    }
    json_t *r = w.seen;
    assert_string_equal(json_string_value(json_object_get(r, "model")), SLOW_MODEL);
    assert_string_equal(json_string_value(json_object_get(r, "endpoint")),
                        "/v1/completions");
    assert_string_equal(json_string_value(json_object_get(r, "node_id")),
                        c->agents[0].node_id);
    assert_true(json_is_true(json_object_get(r, "stream")));
    assert_int_equal(json_integer_value(json_object_get(r, "attempts")), 1);
    assert_true(json_integer_value(json_object_get(r, "ttft_ms")) >= 0);
    assert_non_null(json_string_value(json_object_get(r, "id")));
    json_decref(r);

    char in_flight[160];
    snprintf(in_flight, sizeof in_flight,
             "mlx_coordinator_node_requests_in_flight{node=\"agent0\",node_id=\"%s\"}",
             c->agents[0].node_id);
    expect_sample(in_flight, 1);
    expect_sample("mlx_coordinator_requests_active", 1);

    /* The client goes: the generation is cancelled and leaves the list. */
    s.stop = true;
    pthread_join(s.thread, NULL);
    assert_int_equal(s.status, 200);
    if (!h_wait_for(none_in_flight, &w, WAIT_MS))
        fail_msg("%zu requests still listed after the client went", w.n);
    expect_sample(in_flight, 0);
    expect_sample("mlx_coordinator_requests_active", 0);
    char cancelled[200];
    snprintf(cancelled, sizeof cancelled,
             "mlx_coordinator_requests_total{model=\"" SLOW_MODEL
             "\",node=\"agent0\",node_id=\"%s\",status=\"499\"}",
             c->agents[0].node_id);
    expect_sample(cancelled, 1);
}

/* ---- a node lost ------------------------------------------------------------ */

static int pinned_request(const char *id)
{
    char h1[64], h2[96];
    snprintf(h1, sizeof h1, "X-Session-Id: pinned");
    snprintf(h2, sizeof h2, "X-Request-Id: %s", id);
    const char *headers[] = {h1, h2, NULL};
    const char *body = "{\"model\":\"" SERVING_MODEL "\",\"prompt\":\"Once\","
                       "\"max_tokens\":4}";
    serving_reply r;
    serving_call(&front, "POST", "/v1/completions", headers, body, strlen(body), &r);
    assert_int_equal(r.status, 200);
    serving_reply_free(&r);
    int agent = cluster_wait_served_by(c, id, WAIT_MS);
    if (agent < 0)
        fail_msg("no agent logged request %s", id);
    return agent;
}

static void test_a_lost_node_is_a_failover_then_down(void **state)
{
    int first = pinned_request("pinned-0");
    /* Sent right after the kill, while the registry still has the node
     * up: the router picks it, it fails, the relay retries elsewhere. */
    h_signal(c->agents[first].proc, SIGKILL);
    assert_true(h_wait_exit(c->agents[first].proc, 10000) >= 0);
    assert_int_equal(pinned_request("pinned-1"), 1 - first);
    expect_sample("mlx_coordinator_retries_total", 1);
    expect_sample("mlx_coordinator_failovers_total", 1);

    char name[16], down[160], cpu[160];
    snprintf(name, sizeof name, "agent%d", first);
    snprintf(down, sizeof down,
             "mlx_fleet_node_state{node=\"%s\",node_id=\"%s\",state=\"down\"}", name,
             c->agents[first].node_id);
    expect_sample(down, 1);
    expect_sample("mlx_fleet_nodes{state=\"down\"}", 1);
    /* A down node's last figures are history: not written. */
    snprintf(cpu, sizeof cpu, "mlx_fleet_node_cpu_percent{node=\"%s\",node_id=\"%s\"}",
             name, c->agents[first].node_id);
    char *page = metrics_page();
    assert_true(test_prom_sample(page, cpu) < 0);
    free(page);
}

int main(void)
{
    model_file = test_shared_model("stories260K.gguf");
    if (model_file == NULL)
        return 77;
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_prometheus_reads_the_fleet),
        cmocka_unit_test(test_requests_shows_a_generation_while_it_runs),
        cmocka_unit_test(test_a_lost_node_is_a_failover_then_down),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
