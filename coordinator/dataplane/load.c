/*
 * load.c — LoadModel on a node's connection: a model loaded (or unloaded)
 * with nothing to generate, its reply checked and its failure classed as a
 * generation's are (see dataplane_client.h).
 *
 * A load is one exchange on a context of its own, like a Cancel, but its
 * deadline is the pool's load timeout: reading a large model from disk
 * takes far longer than an Infer's answer should.
 */
#include <nng/nng.h>
#include <string.h>

#include "common/log.h"
#include "common/nng_util.h"
#include "common/rand.h"
#include "coordinator/dataplane/internal.h"
#include "proto/wire.h"

#define MOD "dpc"
/* Random hex digits of a load's request id (128 bits), as a stream's. */
#define ID_DIGITS 32

/* Sends the LoadModel as id on a fresh context of c and reads Loaded. */
static int exchange_load(dpc_pool *pool, struct dpc_conn *c, const char *id,
                         const char *model, int64_t keep_alive_ms, int64_t *load_ns,
                         dpc_error *e)
{
    nng_ctx ctx;
    nng_aio *aio = NULL;
    int rv = nng_aio_alloc(&aio, NULL, NULL);
    if (rv == 0 && (rv = nng_ctx_open(&ctx, c->sock)) != 0)
        nng_aio_free(aio);
    if (rv != 0)
        return dpc_fail(e, DPC_NODE_FAILED, 503, mlx_nng_code(rv),
                        "cannot open a context on node %s's connection: %s", c->node_id,
                        nng_strerror(rv));
    Fleet__LoadModel load = FLEET__LOAD_MODEL__INIT;
    load.model = (char *)model;
    load.keep_alive_ms = keep_alive_ms;
    wire_envelope env = FLEET__ENVELOPE__INIT;
    env.request_id = (char *)id;
    env.body_case = FLEET__ENVELOPE__BODY_LOAD;
    env.load = &load;
    wire_envelope *r = NULL;
    int rc = dpc_exchange(pool, c, ctx, aio, &env, pool->opt.load_timeout_ms, &r, e);
    if (rc == 0) {
        if (r->body_case == FLEET__ENVELOPE__BODY_LOADED && r->loaded->load_ns >= 0)
            *load_ns = r->loaded->load_ns;
        else if (r->body_case == FLEET__ENVELOPE__BODY_LOADED)
            rc = dpc_fail(e, DPC_NODE_FAILED, 502, MLX_EPROTO,
                          "node %s said loading %s took a negative time", c->node_id,
                          model);
        else if (r->body_case == FLEET__ENVELOPE__BODY_ERROR)
            rc = dpc_from_error(c, r->error, e);
        else
            rc = dpc_unexpected(c, r, "load", e);
    }
    wire_free(r);
    nng_ctx_close(ctx);
    nng_aio_free(aio);
    return rc;
}

int dpc_load(dpc_pool *pool, const char *node_id, const char *address, const char *model,
             int64_t keep_alive_ms, int64_t *load_ns, dpc_error *e)
{
    int64_t spent = 0;
    if (e != NULL)
        memset(e, 0, sizeof *e);
    if (load_ns != NULL)
        *load_ns = 0;
    if (model == NULL || model[0] == '\0')
        return dpc_fail(e, DPC_REFUSED, 400, MLX_EINVAL,
                        "'model' is empty; name one of the fleet's models");
    if (keep_alive_ms < -1)
        return dpc_fail(e, DPC_REFUSED, 400, MLX_EINVAL,
                        "keep_alive_ms %lld is below -1 (unload now)",
                        (long long)keep_alive_ms);
    char id[ID_DIGITS + 1];
    mlx_err err;
    mlx_err_clear(&err);
    int rc = mlx_rand_hex(id, ID_DIGITS, &err);
    if (rc != 0)
        return dpc_fail(e, DPC_NODE_FAILED, 500, rc, "%s", err.msg);
    struct dpc_conn *c = NULL;
    rc = dpc_conn_get(pool, node_id, address, &c, e);
    if (rc != 0)
        return rc;
    rc = exchange_load(pool, c, id, model, keep_alive_ms, &spent, e);
    dpc_conn_release(c);
    if (rc != 0) {
        mlx_log_info(MOD, "load failed",
                     "id=%s node=%s model=\"%.200s\" failure=%s err=\"%s\"", id, node_id,
                     model, e != NULL ? dpc_failure_name(e->failure) : "?",
                     e != NULL ? e->err.msg : mlx_strerror(rc));
        return rc;
    }
    mlx_log_debug(MOD, keep_alive_ms == -1 ? "unloaded" : "loaded",
                  "id=%s node=%s model=\"%.200s\" load_ms=%lld", id, node_id, model,
                  (long long)(spent / 1000000));
    if (load_ns != NULL)
        *load_ns = spent;
    return 0;
}
