/*
 * dataplane.c — the data plane's socket: workers that receive, dispatch to
 * exchange.c's answers and send (see dataplane.h for the exchange).
 *
 * Each worker thread owns one NNG context and a callback-less aio and runs
 * receive, handle, send in a loop. Receives time out every WAKE_MS so a
 * worker notices stopping, and the workers also forget idle generations
 * (at most every WAKE_MS, whichever worker gets there first), so no extra
 * thread is needed.
 */
#include "agent/dataplane/internal.h"

#include <string.h>

#include "common/alloc.h"
#include "common/clock.h"
#include "common/log.h"
#include "common/nng_util.h"

/* ---- dispatch ------------------------------------------------------------- */

/* Turns one request into its reply message; NULL only when out of memory
 * (the request then goes unanswered and the coordinator times out). */
static nng_msg *handle(dataplane *dp, nng_msg *msg)
{
    struct exchange x = {.dp = dp};
    fleet__envelope__init(&x.reply);
    mlx_err err;
    mlx_err_clear(&err);
    wire_envelope *req = NULL;
    int rc = wire_unpack(nng_msg_body(msg), nng_msg_len(msg), dp->max_msg, &req, &err);
    if (req != NULL)
        x.reply.request_id = req->request_id;
    x.req = req;

    if (rc != 0) {
        mlx_log_warn(MOD, "refused message", "bytes=%zu err=\"%s\"", nng_msg_len(msg),
                     err.msg);
        dp_refuse(&x, wire_refusal_code(rc), 400, "%s", err.msg);
    } else if (req->body_case == FLEET__ENVELOPE__BODY_INFER) {
        dp_on_infer(&x);
    } else if (req->body_case == FLEET__ENVELOPE__BODY_NEXT) {
        dp_on_next(&x);
    } else if (req->body_case == FLEET__ENVELOPE__BODY_CANCEL) {
        dp_on_cancel(&x);
    } else if (req->body_case == FLEET__ENVELOPE__BODY_LOAD) {
        dp_on_load(&x);
    } else {
        mlx_log_warn(MOD, "refused message", "body=%s", wire_body_name(req));
        dp_refuse(&x, FLEET__ERROR__CODE__BAD_MESSAGE, 400,
                  "the agent's data plane does not accept %s requests; send infer, "
                  "next, cancel or load",
                  wire_body_name(req));
    }
    x.reply.node_id = dp->node_id;

    uint8_t *buf = NULL;
    size_t len = 0;
    nng_msg *out = NULL;
    if (wire_pack(&x.reply, dp->max_msg, &buf, &len, &err) == 0 &&
        nng_msg_alloc(&out, len) == 0)
        memcpy(nng_msg_body(out), buf, len);
    else
        mlx_log_error(MOD, "cannot answer", "body=%s err=\"%s\"",
                      wire_body_name(&x.reply), err.msg);
    mlx_free(buf);
    dp_chunk_free(&x.chunk);
    wire_free(req);
    return out;
}

/* ---- NNG plumbing --------------------------------------------------------- */

static void worker_run(void *arg)
{
    struct worker *w = arg;
    dataplane *dp = w->dp;
    while (!atomic_load(&dp->stopping)) {
        nng_ctx_recv(w->ctx, w->aio);
        nng_aio_wait(w->aio);
        int rv = nng_aio_result(w->aio);
        if (rv == NNG_ECLOSED)
            break;
        if (rv != 0) { /* NNG_ETIMEDOUT: a wake-up to look around */
            dp_reap_idle(dp);
            continue;
        }
        nng_msg *req = nng_aio_get_msg(w->aio);
        if (atomic_load(&dp->stopping)) { /* goes unanswered */
            nng_msg_free(req);
            break;
        }
        nng_msg *reply = handle(dp, req);
        nng_msg_free(req);
        if (reply != NULL) {
            nng_aio_set_msg(w->aio, reply);
            nng_ctx_send(w->ctx, w->aio);
            nng_aio_wait(w->aio);
            if (nng_aio_result(w->aio) != 0)
                nng_msg_free(reply); /* a failed send leaves it with us */
        }
        dp_reap_idle(dp);
    }
}

static void free_dataplane(dataplane *dp)
{
    for (size_t i = 0; i < MLX_MAX_DATA_REQUESTS; i++) {
        if (dp->table[i] != NULL) {
            struct gen *g = dp->table[i];
            dp->table[i] = NULL;
            dp_gen_release(dp, g);
        }
    }
    pthread_mutex_destroy(&dp->mtx);
    mlx_free(dp->node_id);
    mlx_free(dp->url);
    mlx_free(dp);
}

int dataplane_start(const dataplane_config *cfg, dataplane **out, mlx_err *err)
{
    if (cfg->rt == NULL || cfg->listen == NULL || cfg->node_id == NULL)
        return mlx_err_set(err, MLX_EINVAL,
                           "the data plane needs a runtime, an address and a node id");
    dataplane *dp = mlx_calloc(1, sizeof *dp);
    if (dp == NULL)
        return mlx_err_set(err, MLX_ENOMEM, "out of memory");
    pthread_mutex_init(&dp->mtx, NULL);
    dp->rt = cfg->rt;
    dp->inference = cfg->inference;
    dp->node_id = mlx_strdup(cfg->node_id);
    dp->url = mlx_strdup(cfg->listen);
    dp->max_msg = cfg->max_msg > 0 ? cfg->max_msg : MLX_MAX_DATA_MSG;
    dp->idle_ms = cfg->idle_timeout_ms > 0 ? cfg->idle_timeout_ms : DEFAULT_IDLE_MS;
    dp->poll_ms = cfg->poll_ms > 0 ? cfg->poll_ms : DEFAULT_POLL_MS;
    if (dp->node_id == NULL || dp->url == NULL) {
        free_dataplane(dp);
        return mlx_err_set(err, MLX_ENOMEM, "out of memory");
    }
    /* Frames up to twice the limit are read, so a larger message is
     * answered with TOO_BIG rather than dropped with its connection. */
    int rc = mlx_nng_rep_listen(dp->url, 2 * dp->max_msg, "--listen", &dp->sock, err);
    if (rc != 0) {
        free_dataplane(dp);
        return rc;
    }
    size_t ready = 0;
    for (; ready < MLX_DATA_CONTEXTS; ready++) {
        struct worker *w = &dp->workers[ready];
        w->dp = dp;
        if (nng_aio_alloc(&w->aio, NULL, NULL) != 0)
            break;
        if (nng_ctx_open(&w->ctx, dp->sock) != 0) {
            nng_aio_free(w->aio);
            break;
        }
        nng_aio_set_timeout(w->aio, WAKE_MS);
    }
    size_t running = 0;
    if (ready == MLX_DATA_CONTEXTS) {
        for (; running < MLX_DATA_CONTEXTS; running++) {
            struct worker *w = &dp->workers[running];
            if (nng_thread_create(&w->thread, worker_run, w) != 0)
                break;
        }
    }
    if (running < MLX_DATA_CONTEXTS) {
        atomic_store(&dp->stopping, true);
        for (size_t i = 0; i < running; i++)
            nng_thread_destroy(dp->workers[i].thread);
        mlx_nng_close(dp->sock, CLOSE_TIMEOUT_MS);
        for (size_t i = 0; i < ready; i++)
            nng_aio_free(dp->workers[i].aio);
        free_dataplane(dp);
        return mlx_err_set(err, MLX_ENOMEM, "cannot start the data plane's workers");
    }
    mlx_log_info(MOD, "data plane listening", "url=%s contexts=%d max_msg=%zu idle_ms=%d",
                 dp->url, MLX_DATA_CONTEXTS, dp->max_msg, dp->idle_ms);
    *out = dp;
    return 0;
}

void dataplane_stop(dataplane *dp)
{
    if (dp == NULL)
        return;
    /* Workers notice within WAKE_MS (a receive's timeout, a long poll's
     * slice); joining them first means no operation is in flight when the
     * socket closes, which NNG 1.5 needs (see coordinator/control). */
    atomic_store(&dp->stopping, true);
    for (size_t i = 0; i < MLX_DATA_CONTEXTS; i++)
        nng_thread_destroy(dp->workers[i].thread);
    if (mlx_nng_close(dp->sock, CLOSE_TIMEOUT_MS) != 0)
        mlx_log_warn(MOD,
                     "the data-plane socket did not close in time; leaving it to exit",
                     "timeout_ms=%d", CLOSE_TIMEOUT_MS);
    for (size_t i = 0; i < MLX_DATA_CONTEXTS; i++)
        nng_aio_free(dp->workers[i].aio);
    free_dataplane(dp);
}
