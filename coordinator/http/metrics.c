/*
 * metrics.c — GET /metrics, the fleet on one page, and GET
 * /api/v1/requests, the generations in flight.
 *
 * The page has two parts. The fleet's series come from the registry: what
 * each node said in its latest heartbeat (the coordinator never scrapes an
 * agent), labelled node (its name) and node_id (names need not be
 * unique). They are named mlx_fleet_*, never an agent's own mlx_node_* or
 * mlx_model_*, and they are gauges: a Prometheus that scrapes every agent
 * and the coordinator sees each figure once under each name and adds no
 * counter twice. Then the coordinator's own series (stats.h) and its
 * requests in flight per node.
 *
 * A node that is down or left has figures from the past; only its state is
 * written, so a sum over the fleet counts the living.
 */
#include <math.h>
#include <stdatomic.h>
#include <string.h>

#include "common/alloc.h"
#include "common/clock.h"
#include "common/log.h"
#include "common/prom.h"
#include "coordinator/http/internal.h"

#define MOD "http"

/* Metrics pages stay well below this; a cap keeps a bug from eating RAM. */
#define METRICS_PAGE_MAX (8u << 20)

static const char *const node_states[] = {"up", "suspect", "down", "left"};

/* A number of a node's metrics object; NAN when absent. */
static double metric(json_t *metrics, const char *key)
{
    json_t *v = json_object_get(metrics, key);
    return json_is_number(v) ? json_number_value(v) : NAN;
}

static bool alive(json_t *node)
{
    const char *state = json_string_value(json_object_get(node, "state"));
    return state != NULL && (strcmp(state, "up") == 0 || strcmp(state, "suspect") == 0);
}

/* One gauge family: a sample per living node that reported key. */
static void node_gauge(mlx_buf *b, json_t *nodes, const char *name, const char *help,
                       const char *key)
{
    mlx_prom_family(b, name, "gauge", help);
    size_t i;
    json_t *n;
    json_array_foreach(nodes, i, n)
    {
        double v = metric(json_object_get(n, "metrics"), key);
        if (!alive(n) || isnan(v) || (strcmp(key, "gpu_percent") == 0 && v < 0))
            continue;
        const char *labels[] = {"node", json_string_value(json_object_get(n, "name")),
                                "node_id", json_string_value(json_object_get(n, "id"))};
        mlx_prom_sample(b, name, labels, 2, v);
    }
}

/* mlx_fleet_model_* from the models each living node reported. */
static void model_gauge(mlx_buf *b, json_t *nodes, const char *name, const char *help,
                        const char *key)
{
    mlx_prom_family(b, name, "gauge", help);
    size_t i, j;
    json_t *n, *m;
    json_array_foreach(nodes, i, n)
    {
        if (!alive(n))
            continue;
        json_array_foreach(json_object_get(json_object_get(n, "metrics"), "models"), j, m)
        {
            const char *model = json_string_value(json_object_get(m, "model"));
            const char *engine = json_string_value(json_object_get(m, "engine"));
            const char *labels[] = {
                "node",    json_string_value(json_object_get(n, "name")),
                "node_id", json_string_value(json_object_get(n, "id")),
                "model",   model ? model : "",
                "engine",  engine ? engine : ""};
            mlx_prom_sample(b, name, labels, 4, metric(m, key));
        }
    }
}

static void write_fleet(mlx_buf *b, json_t *nodes)
{
    size_t i;
    json_t *n;
    int64_t now = mlx_time_wall_ms();

    mlx_prom_family(b, "mlx_fleet_nodes", "gauge", "Nodes of the fleet in each state.");
    for (size_t s = 0; s < sizeof node_states / sizeof node_states[0]; s++) {
        int count = 0;
        json_array_foreach(nodes, i, n)
        {
            const char *state = json_string_value(json_object_get(n, "state"));
            count += state != NULL && strcmp(state, node_states[s]) == 0;
        }
        const char *labels[] = {"state", node_states[s]};
        mlx_prom_sample(b, "mlx_fleet_nodes", labels, 1, count);
    }
    mlx_prom_family(b, "mlx_fleet_node_state", "gauge",
                    "1 for the state each node is in, 0 for the others.");
    json_array_foreach(nodes, i, n)
    {
        const char *state = json_string_value(json_object_get(n, "state"));
        for (size_t s = 0; s < sizeof node_states / sizeof node_states[0]; s++) {
            const char *labels[] = {
                "node",    json_string_value(json_object_get(n, "name")),
                "node_id", json_string_value(json_object_get(n, "id")),
                "state",   node_states[s]};
            mlx_prom_sample(b, "mlx_fleet_node_state", labels, 3,
                            state != NULL && strcmp(state, node_states[s]) == 0);
        }
    }
    mlx_prom_family(b, "mlx_fleet_node_heartbeat_age_seconds", "gauge",
                    "Seconds since each node was last heard from.");
    json_array_foreach(nodes, i, n)
    {
        json_int_t seen = json_integer_value(json_object_get(n, "last_seen_unix_ms"));
        const char *labels[] = {"node", json_string_value(json_object_get(n, "name")),
                                "node_id", json_string_value(json_object_get(n, "id"))};
        mlx_prom_sample(b, "mlx_fleet_node_heartbeat_age_seconds", labels, 2,
                        seen > 0 && now > seen ? (double)(now - seen) / 1e3 : 0);
    }

    node_gauge(b, nodes, "mlx_fleet_node_cpu_percent",
               "CPU busy on each node, all cores, 0-100.", "cpu_percent");
    node_gauge(b, nodes, "mlx_fleet_node_memory_used_bytes",
               "Memory in use on each node.", "memory_used_bytes");
    node_gauge(b, nodes, "mlx_fleet_node_memory_total_bytes",
               "Physical memory of each node.", "memory_total_bytes");
    node_gauge(b, nodes, "mlx_fleet_node_swap_used_bytes", "Swap in use on each node.",
               "swap_used_bytes");
    node_gauge(b, nodes, "mlx_fleet_node_load1", "Load average over 1 minute.", "load1");
    node_gauge(b, nodes, "mlx_fleet_node_disk_free_bytes",
               "Free space of each node's data directory.", "disk_free_bytes");
    node_gauge(b, nodes, "mlx_fleet_node_network_receive_bytes_per_second",
               "Bytes each node received per second.", "net_rx_bytes_per_s");
    node_gauge(b, nodes, "mlx_fleet_node_network_transmit_bytes_per_second",
               "Bytes each node sent per second.", "net_tx_bytes_per_s");
    node_gauge(b, nodes, "mlx_fleet_node_gpu_percent", "GPU busy on each node, 0-100.",
               "gpu_percent");
    node_gauge(b, nodes, "mlx_fleet_node_requests_running",
               "Requests each node is generating (all its clients, not only the "
               "coordinator).",
               "requests_running");
    node_gauge(b, nodes, "mlx_fleet_node_requests_queued",
               "Requests waiting on each node for a free slot.", "requests_queued");
    model_gauge(b, nodes, "mlx_fleet_model_tokens_per_second",
                "Tokens each model generated per second on each node.", "tokens_per_s");
    model_gauge(b, nodes, "mlx_fleet_model_memory_bytes",
                "Memory each loaded model holds on each node.", "memory_bytes");
}

/* stats_node_name_fn over the registry's node list. */
static const char *name_in(void *arg, const char *node_id)
{
    size_t i;
    json_t *n;
    json_array_foreach((json_t *)arg, i, n)
    {
        if (strcmp(json_string_value(json_object_get(n, "id")), node_id) == 0)
            return json_string_value(json_object_get(n, "name"));
    }
    return NULL;
}

static void write_in_flight(mlx_buf *b, const admin_ctx *c, json_t *nodes)
{
    const char *name = "mlx_coordinator_node_requests_in_flight";
    mlx_prom_family(b, name, "gauge",
                    "Generations the coordinator is relaying to each node now.");
    size_t i;
    json_t *n;
    json_array_foreach(nodes, i, n)
    {
        const char *id = json_string_value(json_object_get(n, "id"));
        const char *labels[] = {"node", json_string_value(json_object_get(n, "name")),
                                "node_id", id};
        mlx_prom_sample(b, name, labels, 2,
                        c->relay != NULL ? relay_in_flight(c->relay, id) : 0);
    }
}

static void metrics_page(const admin_ctx *c, const mlx_http_req *req,
                         const auth_result *ar, mlx_http_resp *resp)
{
    json_t *doc = NULL;
    mlx_err err;
    mlx_err_clear(&err);
    if (registry_nodes_json(c->reg, &doc, &err) != 0) {
        mlx_log_error(MOD, "cannot read the fleet for /metrics", "err=\"%s\"", err.msg);
        mlx_http_resp_error(resp, 500, "server_error", "internal",
                            "cannot read the fleet: %s", err.msg);
        return;
    }
    json_t *nodes = json_object_get(doc, "nodes");
    mlx_buf b;
    mlx_buf_init(&b, METRICS_PAGE_MAX);
    write_fleet(&b, nodes);
    write_in_flight(&b, c, nodes);
    stats_write_metrics(c->stats, &b, atomic_load(&((admin_ctx *)c)->active), name_in,
                        nodes);
    json_decref(doc);
    resp->status = 200;
    resp->content_type = "text/plain; version=0.0.4; charset=utf-8";
    resp->body_len = b.len;
    resp->body = mlx_buf_take(&b);
    if (resp->body == NULL)
        mlx_http_resp_error(resp, 500, "server_error", "internal",
                            "out of memory writing metrics");
}

void metrics_get(void *ctx, const mlx_http_req *req, mlx_http_resp *resp)
{
    admin_gated(ctx, req, resp, true, metrics_page);
}

static void requests_list(const admin_ctx *c, const mlx_http_req *req,
                          const auth_result *ar, mlx_http_resp *resp)
{
    json_t *body = stats_requests_json(c->stats);
    if (body == NULL) {
        mlx_http_resp_error(resp, 500, "server_error", "internal",
                            "out of memory listing the requests in flight");
        return;
    }
    mlx_http_resp_json(resp, 200, body);
}

void requests_get(void *ctx, const mlx_http_req *req, mlx_http_resp *resp)
{
    admin_gated(ctx, req, resp, true, requests_list);
}
