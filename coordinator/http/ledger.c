/*
 * ledger.c — one generation in the coordinator's books, whoever asked for
 * it: a client's request (infer.c, infer_stream.c) or a prompt of the
 * fleet's benchmark (bench.c). Both run the same steps, so what the fleet
 * generates is listed, counted and logged once, the same way, and the
 * coordinator's counts per node agree with the agents' (each agent counts
 * every generation the coordinator sends it, a benchmark's too).
 */
#include "common/clock.h"
#include "common/log.h"
#include "coordinator/http/internal.h"

#define MOD "http"

/* The caller's sink with the ledger's notes added. */
struct noted_sink {
    fleet_stats *stats;
    stats_flight *flight;
    const relay_sink *inner;
};

static int noted_text(void *arg, const char *p, size_t n)
{
    struct noted_sink *ns = arg;
    stats_flight_text(ns->stats, ns->flight, n);
    return ns->inner->text(ns->inner->arg, p, n);
}

static int noted_tokens(void *arg, const dpc_chunk *chunk)
{
    struct noted_sink *ns = arg;
    stats_flight_text(ns->stats, ns->flight, chunk->len);
    return ns->inner->tokens(ns->inner->arg, chunk);
}

static bool noted_gone(void *arg)
{
    const struct noted_sink *ns = arg;
    return ns->inner->gone != NULL && ns->inner->gone(ns->inner->arg);
}

static void noted_started(void *arg, const char *node_id)
{
    struct noted_sink *ns = arg;
    stats_flight_node(ns->stats, ns->flight, node_id);
    if (ns->inner->started != NULL)
        ns->inner->started(ns->inner->arg, node_id);
}

void ledger_relay(admin_ctx *ctx, stats_flight *f, const dpc_request *req,
                  const relay_route *route, const relay_sink *sink, relay_result *res)
{
    struct noted_sink ns = {ctx->stats, f, sink};
    relay_sink noted = {.text = noted_text,
                        .gone = noted_gone,
                        .started = noted_started,
                        .arg = &ns,
                        .tokens = sink->tokens != NULL ? noted_tokens : NULL};
    relay_run(ctx->relay, req, route, &noted, res);
}

void ledger_end(admin_ctx *ctx, stats_flight *f, const relay_result *res)
{
    int64_t now_ms = mlx_time_mono_ms();
    uint32_t used = res->end.prompt_tokens + res->end.completion_tokens;
    if (f->key_name[0] != '\0' && used > 0)
        auth_charge_tokens(ctx->auth, f->key_name, 0, used, now_ms);
    stats_flight_end(ctx->stats, f, res->status, res->node_id, res->attempts);
    int64_t latency = now_ms - f->started_mono_ms;
    auth_log_entry e = {
        .time_unix_ms = mlx_time_wall_ms(),
        .request_id = f->id,
        .key_name = f->key_name,
        .model = f->model,
        .node = res->node_id,
        .prompt_tokens = res->end.prompt_tokens,
        .completion_tokens = res->end.completion_tokens,
        .latency_ms = latency > 0 ? (uint32_t)latency : 0,
        .status = res->status,
    };
    mlx_err err;
    mlx_err_clear(&err);
    if (auth_log_request(ctx->auth, &e, &err) != 0)
        mlx_log_warn(MOD, "cannot log a generation", "id=%s err=\"%s\"", f->id, err.msg);
}
