/*
 * exchange.c — one request and its reply on a node's connection, and the
 * reply's failures classed (see dataplane_client.h).
 *
 * Every exchange runs on a callback-less aio, waited for by the calling
 * thread: a send then a receive on a context, both within one deadline.
 * The connection's link (link.c) ends it sooner when the node is not
 * connected (a short grace for a first dial or a redial) or its connection
 * goes while the exchange waits, as when the agent dies: the relay can then
 * try another node at once instead of at the deadline.
 */
#include <nng/nng.h>
#include <nng/supplemental/util/platform.h>
#include <string.h>

#include "common/alloc.h"
#include "common/nng_util.h"
#include "common/parse.h"
#include "coordinator/dataplane/internal.h"

int dpc_exchange(dpc_pool *pool, struct dpc_conn *c, nng_ctx ctx, nng_aio *aio,
                 wire_envelope *env, int timeout_ms, wire_envelope **reply, dpc_error *e)
{
    mlx_err err;
    mlx_err_clear(&err);
    uint8_t *buf = NULL;
    size_t len = 0;
    int rc = wire_pack(env, pool->opt.max_msg, &buf, &len, &err);
    if (rc != 0) /* too big for the wire: the request's fault */
        return dpc_fail(e, DPC_REFUSED, rc == MLX_ETOOBIG ? 413 : 500, rc, "%s", err.msg);
    nng_msg *msg = NULL;
    if (nng_msg_alloc(&msg, len) != 0) {
        mlx_free(buf);
        return dpc_fail(e, DPC_NODE_FAILED, 503, MLX_ENOMEM, "out of memory");
    }
    memcpy(nng_msg_body(msg), buf, len);
    mlx_free(buf);

    nng_time deadline = nng_clock() + (nng_time)timeout_ms;
    struct dpc_waiter w = {.aio = aio};
    if (!dpc_link_enter(c->link, &w, timeout_ms)) {
        nng_msg_free(msg);
        return dpc_fail(e, DPC_NODE_FAILED, 502, MLX_EUNREACH,
                        "node %s (%s) is not connected: its data plane is down or "
                        "unreachable",
                        c->node_id, c->address);
    }
    nng_time now = nng_clock();
    nng_aio_set_timeout(aio, now < deadline ? (nng_duration)(deadline - now) : 1);
    nng_aio_set_msg(aio, msg);
    int rv = NNG_ECONNRESET;
    if (dpc_link_start(c->link, &w, nng_ctx_send, ctx)) {
        nng_aio_wait(aio);
        rv = nng_aio_result(aio);
    }
    if (rv != 0) {
        nng_msg_free(nng_aio_get_msg(aio)); /* a failed send leaves it with us */
        nng_aio_set_msg(aio, NULL);
    } else {
        now = nng_clock();
        nng_aio_set_timeout(aio, now < deadline ? (nng_duration)(deadline - now) : 1);
        rv = NNG_ECONNRESET;
        if (dpc_link_start(c->link, &w, nng_ctx_recv, ctx)) {
            nng_aio_wait(aio);
            rv = nng_aio_result(aio);
        }
    }
    dpc_link_leave(c->link, &w);
    if (w.lost)
        return dpc_fail(e, DPC_NODE_FAILED, 502, MLX_EUNREACH,
                        "the connection to node %s (%s) was lost during %s %s",
                        c->node_id, c->address, wire_body_name(env), env->request_id);
    if (rv == NNG_ETIMEDOUT)
        return dpc_fail(e, DPC_NODE_FAILED, 504, MLX_ETIMEDOUT,
                        "node %s (%s) did not answer %s %s within %d ms; it is down, "
                        "unreachable or overloaded",
                        c->node_id, c->address, wire_body_name(env), env->request_id,
                        timeout_ms);
    if (rv != 0)
        return dpc_fail(e, DPC_NODE_FAILED, 502, mlx_nng_code(rv),
                        "exchange with node %s (%s) failed: %s", c->node_id, c->address,
                        nng_strerror(rv));
    msg = nng_aio_get_msg(aio);
    nng_aio_set_msg(aio, NULL);
    wire_envelope *r = NULL;
    rc = wire_unpack(nng_msg_body(msg), nng_msg_len(msg), pool->opt.max_msg, &r, &err);
    nng_msg_free(msg);
    if (rc != 0) {
        wire_free(r);
        return dpc_fail(e, DPC_NODE_FAILED, 502, rc,
                        "node %s sent an answer that does not decode: %s", c->node_id,
                        err.msg);
    }
    if (strcmp(r->request_id, env->request_id) != 0) {
        wire_free(r);
        return dpc_fail(e, DPC_NODE_FAILED, 502, MLX_EPROTO,
                        "node %s answered another request than %s; it is not speaking "
                        "the fleet's data-plane protocol",
                        c->node_id, env->request_id);
    }
    *reply = r;
    return 0;
}

int dpc_from_error(const struct dpc_conn *c, const Fleet__Error *er, dpc_error *e)
{
    const char *text = er->message != NULL ? er->message : "";
    if (!mlx_text_is_clean(text, MLX_MAX_ERR_MSG))
        text = "(an unprintable sentence)";
    if (er->code == FLEET__ERROR__CODE__TOO_BIG)
        return dpc_fail(e, DPC_REFUSED, 413, MLX_ETOOBIG, "%.400s", text);
    if (er->code == FLEET__ERROR__CODE__VERSION ||
        er->code == FLEET__ERROR__CODE__BAD_MESSAGE)
        return dpc_fail(e, DPC_NODE_FAILED, 502, MLX_EPROTO,
                        "node %s could not read the coordinator's message: %.400s; "
                        "run the same version on every machine",
                        c->node_id, text);
    uint32_t st = er->status;
    if (st >= 400 && st < 500) {
        int code = er->code == FLEET__ERROR__CODE__CONTEXT_EXCEEDED ? MLX_ETOOBIG
                   : st == 404                                      ? MLX_ENOENT
                   : st == 409                                      ? MLX_EEXIST
                                                                    : MLX_EINVAL;
        return dpc_fail(e, DPC_REFUSED, (int)st, code, "%.400s", text);
    }
    int code = st == 503 ? MLX_EBUSY : st == 507 ? MLX_ENOMEM : MLX_EINTERNAL;
    int status = st >= 500 && st < 600 ? (int)st : 502;
    return dpc_fail(e, DPC_NODE_FAILED, status, code,
                    "node %s failed the request: %.400s", c->node_id, text);
}

int dpc_unexpected(const struct dpc_conn *c, const wire_envelope *r, const char *asked,
                   dpc_error *e)
{
    return dpc_fail(
        e, DPC_NODE_FAILED, 502, MLX_EPROTO,
        "node %s answered %s to %s; it is not speaking the fleet's data-plane "
        "protocol",
        c->node_id, wire_body_name(r), asked);
}
