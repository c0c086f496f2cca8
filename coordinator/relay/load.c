/* load.c — Ollama's request with nothing to generate, on the fleet: a load
 * goes where a generation of the model would (relay.c's pick, its retries),
 * an unload to every node that has the model loaded (see relay.h). */
#include <stdio.h>
#include <string.h>

#include "common/alloc.h"
#include "common/clock.h"
#include "common/log.h"
#include "coordinator/relay/internal.h"

#define MOD "relay"

/* Loads model on the node the router picks, retrying as relay_run does. */
static int load(relay *r, const char *model, int64_t keep_alive_ms,
                const relay_route *route, relay_load_result *out)
{
    struct relay_tries tries;
    relay_tries_init(&tries);
    for (;;) {
        struct holder node;
        int rc = relay_next_node(r, model, route, &tries, &node, &out->status, &out->err);
        if (rc != 0)
            return rc;
        snprintf(out->node_id, sizeof out->node_id, "%s", node.node_id);
        out->attempts = tries.n;

        /* A load occupies the node as a generation does: the router sees it. */
        relay_count_add(r, node.node_id, +1);
        dpc_error e;
        rc = dpc_load(r->cfg.pool, node.node_id, node.address, model, keep_alive_ms,
                      &out->load_ns, &e);
        relay_count_add(r, node.node_id, -1);
        if (rc == 0) {
            out->status = 200;
            mlx_log_info(MOD, "model loaded",
                         "node=%s model=\"%s\" attempt=%d load_ms=%lld", node.node_id,
                         model, out->attempts, (long long)(out->load_ns / 1000000));
            return 0;
        }
        out->status = e.status;
        out->err = e.err;
        if (e.failure == DPC_REFUSED)
            return out->err.code ? out->err.code : MLX_EINVAL;
        router_note_failure(r->cfg.health, node.node_id, mlx_time_mono_ms());
        mlx_log_warn(MOD, "node failed a load",
                     "node=%s model=\"%s\" attempt=%d err=\"%s\"", node.node_id, model,
                     out->attempts, out->err.msg);
        bool pinned = route->node_id != NULL;
        if (pinned ||
            !router_may_retry(out->attempts, ROUTER_FAILURE_NODE, ROUTER_NOTHING_SENT) ||
            out->attempts > ROUTER_MAX_RETRIES) {
            out->status = 502;
            return mlx_err_prefix(&out->err, MLX_EIO, "node %s failed to load %s %s",
                                  node.node_id, model,
                                  pinned ? "and the request was for that node only"
                                         : "and no other node could take the request");
        }
    }
}

/* Unloads model from every node that has it loaded (a down node has
 * nothing loaded: its memory went with it). */
static int unload(relay *r, const char *model, const relay_route *route,
                  relay_load_result *out)
{
    struct holders h = {.only = route->node_id};
    int rc = registry_candidates(r->cfg.reg, model, relay_keep_holder, &h, &out->err);
    if (rc != 0 || h.n == 0) {
        mlx_free(h.v);
        out->status = rc != 0 ? 500 : router_outcome_status(ROUTER_NO_MODEL);
        return rc != 0 ? rc : router_outcome_error(ROUTER_NO_MODEL, model, &out->err);
    }
    int failed = 0;
    for (size_t i = 0; i < h.n; i++) {
        const struct holder *node = &h.v[i];
        if (!node->loaded)
            continue;
        dpc_error e;
        rc = dpc_load(r->cfg.pool, node->node_id, node->address, model, -1, NULL, &e);
        if (rc == 0) {
            out->unloaded++;
            mlx_log_info(MOD, "model unloaded", "node=%s model=\"%s\"", node->node_id,
                         model);
            continue;
        }
        mlx_log_warn(MOD, "node failed an unload", "node=%s model=\"%s\" err=\"%s\"",
                     node->node_id, model, e.err.msg);
        if (e.failure == DPC_NODE_FAILED)
            router_note_failure(r->cfg.health, node->node_id, mlx_time_mono_ms());
        if (failed++ > 0)
            continue; /* the first failure is the answer */
        out->status = e.failure == DPC_REFUSED ? e.status : 502;
        out->err = e.err;
        mlx_err_prefix(&out->err, e.failure == DPC_REFUSED ? rc : MLX_EIO,
                       "node %s could not unload %s", node->node_id, model);
        snprintf(out->node_id, sizeof out->node_id, "%s", node->node_id);
    }
    mlx_free(h.v);
    if (failed > 0)
        return out->err.code;
    out->status = 200;
    return 0;
}

int relay_load(relay *r, const char *model, int64_t keep_alive_ms,
               const relay_route *route, relay_load_result *out)
{
    memset(out, 0, sizeof *out);
    relay_route rt = route != NULL ? *route : (relay_route){0};
    if (rt.node_id != NULL && rt.node_id[0] == '\0')
        rt.node_id = NULL;
    return keep_alive_ms == -1 ? unload(r, model, &rt, out)
                               : load(r, model, keep_alive_ms, &rt, out);
}
