/* control.c — REP contexts, request dispatch and the membership ticker. */
#include "coordinator/control/control.h"

#include <nng/nng.h>
#include <nng/supplemental/util/platform.h>
#include <stdatomic.h>
#include <string.h>

#include "common/alloc.h"
#include "common/clock.h"
#include "common/log.h"
#include "common/nng_util.h"
#include "common/rand.h"
#include "coordinator/control/facts.h"

#define MOD "control"
/* How often silence is checked: well under any sensible heartbeat interval. */
#define MEMBERSHIP_TICK_MS 25
/* How long stopping waits for NNG to close the socket (see mlx_nng_close). */
#define CLOSE_TIMEOUT_MS 2000

typedef enum worker_step {
    WORKER_RECV, /* waiting for a request */
    WORKER_SEND, /* sending the reply */
} worker_step;

struct worker {
    control *srv;
    nng_ctx ctx;
    nng_aio *aio;
    worker_step step;
};

struct control {
    nng_socket sock;
    struct worker workers[MLX_CONTROL_CONTEXTS];
    char epoch[17]; /* random per start; agents re-register when it changes */
    registry *reg;  /* borrowed */
    control_hooks hooks;
    _Atomic bool stopping;

    nng_mtx *mtx; /* guards members, ticker_stop and registry writes that
                     must stay in step with membership */
    nng_cv *cv;
    membership *members;
    bool ticker_stop;
    nng_thread *ticker;
};

/* ---- request handlers ---------------------------------------------------- */

/* Everything a handler needs to build its reply. */
struct exchange {
    control *srv;
    const wire_envelope *req;
    wire_envelope reply;
    const char *peer;
    /* bodies the reply may point at */
    Fleet__Error error;
    Fleet__RegisterReply register_reply;
    Fleet__HeartbeatReply heartbeat_reply;
    Fleet__Ack ack;
    char message[MLX_MAX_ERR_MSG];
    char address[MLX_MAX_ADDRESS + 1];
};

static void refuse(struct exchange *x, Fleet__Error__Code code, const char *message)
{
    snprintf(x->message, sizeof x->message, "%s", message);
    wire_set_error(&x->reply, &x->error, code, x->message);
}

static void on_register(struct exchange *x)
{
    control *c = x->srv;
    const Fleet__Register *reg = x->req->register_;
    const char *id = x->req->node_id;
    mlx_err err;
    mlx_err_clear(&err);
    if (facts_check_register(reg, &err) != 0 ||
        facts_resolve_address(reg, x->peer, x->address, &err) != 0) {
        mlx_log_warn(MOD, "refused registration", "node=%s peer=%s err=\"%s\"", id,
                     x->peer, err.msg);
        refuse(x, FLEET__ERROR__CODE__BAD_MESSAGE, err.msg);
        return;
    }
    char *hardware = facts_hardware_json(reg->hardware);
    registry_stored *store = facts_store(reg->store, reg->n_store);
    if (hardware == NULL || store == NULL) {
        mlx_free(hardware);
        mlx_free(store);
        refuse(x, FLEET__ERROR__CODE__INTERNAL, "out of memory");
        return;
    }
    registry_node node = {
        .id = id,
        .name = reg->name,
        .address = x->address,
        .http = reg->http,
        .version = reg->agent_version,
        .heartbeat_ms = reg->heartbeat_ms,
        .hardware_json = hardware,
    };
    int previous = -1;
    nng_mtx_lock(c->mtx);
    int rc = membership_register(c->members, id, reg->heartbeat_ms, mlx_time_mono_ms(),
                                 &previous, &err);
    if (rc == 0)
        rc = registry_register(c->reg, &node, mlx_time_wall_ms(), &err);
    /* A new registration starts from what it says: its store, and nothing
     * loaded until its first heartbeat tells. */
    if (rc == 0)
        rc = registry_set_store(c->reg, id, store, reg->n_store, &err);
    if (rc == 0)
        rc = registry_set_loaded(c->reg, id, NULL, 0, 0, 0, &err);
    nng_mtx_unlock(c->mtx);
    mlx_free(hardware);
    mlx_free(store);
    if (rc != 0) {
        mlx_log_error(MOD, "cannot record registration", "node=%s err=\"%s\"", id,
                      err.msg);
        refuse(x,
               rc == MLX_EBUSY ? FLEET__ERROR__CODE__FULL : FLEET__ERROR__CODE__INTERNAL,
               err.msg);
        return;
    }
    mlx_log_info(MOD, previous < 0 ? "node registered" : "node registered again",
                 "node=%s name=%s address=%s peer=%s was=%s request=%s", id, reg->name,
                 x->address, x->peer,
                 previous < 0 ? "new" : membership_state_name((node_state)previous),
                 x->req->request_id);
    fleet__register_reply__init(&x->register_reply);
    x->register_reply.coordinator_epoch = c->epoch;
    x->register_reply.address = x->address;
    x->reply.body_case = FLEET__ENVELOPE__BODY_REGISTER_REPLY;
    x->reply.register_reply = &x->register_reply;
}

static void on_heartbeat(struct exchange *x)
{
    control *c = x->srv;
    const char *id = x->req->node_id;
    mlx_err err;
    mlx_err_clear(&err);
    if (facts_check_heartbeat(x->req->heartbeat, &err) != 0) {
        mlx_log_warn(MOD, "refused heartbeat", "node=%s peer=%s err=\"%s\"", id, x->peer,
                     err.msg);
        refuse(x, FLEET__ERROR__CODE__BAD_MESSAGE, err.msg);
        return;
    }
    const Fleet__Heartbeat *hb = x->req->heartbeat;
    char *metrics = facts_metrics_json(hb);
    registry_loaded *loaded = facts_loaded(hb);
    registry_stored *store = hb->store_changed ? facts_store(hb->store, hb->n_store) : NULL;
    if (metrics == NULL || loaded == NULL || (hb->store_changed && store == NULL)) {
        mlx_free(metrics);
        mlx_free(loaded);
        mlx_free(store);
        refuse(x, FLEET__ERROR__CODE__INTERNAL, "out of memory");
        return;
    }
    uint32_t running = hb->load != NULL ? hb->load->requests_running : 0;
    uint32_t queued = hb->load != NULL ? hb->load->requests_queued : 0;
    node_state previous = NODE_UP;
    nng_mtx_lock(c->mtx);
    int rc = membership_heartbeat(c->members, id, mlx_time_mono_ms(), &previous);
    if (rc == 0)
        rc = registry_heartbeat(c->reg, id, metrics, mlx_time_wall_ms(), &err);
    if (rc == 0)
        rc = registry_set_loaded(c->reg, id, loaded, hb->n_models, running, queued, &err);
    if (rc == 0 && hb->store_changed)
        rc = registry_set_store(c->reg, id, store, hb->n_store, &err);
    nng_mtx_unlock(c->mtx);
    mlx_free(metrics);
    mlx_free(loaded);
    mlx_free(store);
    if (rc == 0 && hb->store_changed)
        mlx_log_info(MOD, "node store changed", "node=%s models=%zu request=%s", id,
                     hb->n_store, x->req->request_id);

    if (rc == MLX_EUNKNOWNNODE) {
        mlx_log_warn(MOD, "heartbeat from unknown node; asked it to register",
                     "node=%s peer=%s", id, x->peer);
        refuse(x, FLEET__ERROR__CODE__UNKNOWN_NODE,
               "this coordinator does not know the node; register first");
        return;
    }
    if (rc != 0) {
        mlx_log_error(MOD, "cannot record heartbeat", "node=%s err=\"%s\"", id, err.msg);
        refuse(x, FLEET__ERROR__CODE__INTERNAL, err.msg);
        return;
    }
    if (previous != NODE_UP)
        mlx_log_info(MOD, "node state changed", "node=%s from=%s to=up why=heartbeat", id,
                     membership_state_name(previous));
    if (c->hooks.on_heartbeat != NULL)
        c->hooks.on_heartbeat(c->hooks.arg, id);
    fleet__heartbeat_reply__init(&x->heartbeat_reply);
    x->heartbeat_reply.coordinator_epoch = c->epoch;
    x->reply.body_case = FLEET__ENVELOPE__BODY_HEARTBEAT_REPLY;
    x->reply.heartbeat_reply = &x->heartbeat_reply;
}

static void on_deregister(struct exchange *x)
{
    control *c = x->srv;
    const char *id = x->req->node_id;
    mlx_err err;
    mlx_err_clear(&err);
    nng_mtx_lock(c->mtx);
    int rc = membership_leave(c->members, id);
    if (rc == 0)
        rc = registry_set_state(c->reg, id, "left", &err);
    if (rc == 0 && c->hooks.on_node_gone != NULL)
        c->hooks.on_node_gone(c->hooks.arg, id, NODE_LEFT);
    nng_mtx_unlock(c->mtx);
    if (rc == MLX_EUNKNOWNNODE) {
        refuse(x, FLEET__ERROR__CODE__UNKNOWN_NODE,
               "this coordinator does not know the node");
        return;
    }
    if (rc != 0) {
        refuse(x, FLEET__ERROR__CODE__INTERNAL, err.msg);
        return;
    }
    mlx_log_info(MOD, "node left", "node=%s reason=\"%s\"", id,
                 x->req->deregister->reason);
    fleet__ack__init(&x->ack);
    x->reply.body_case = FLEET__ENVELOPE__BODY_ACK;
    x->reply.ack = &x->ack;
}

/* Turns one request into its reply message; NULL only when out of memory
 * (the request then goes unanswered and the agent times out). */
static nng_msg *handle(control *c, nng_msg *msg)
{
    struct exchange x = {.srv = c};
    char peer[64];
    facts_peer_ip(msg, peer, sizeof peer);
    x.peer = peer;
    fleet__envelope__init(&x.reply);

    mlx_err err;
    mlx_err_clear(&err);
    wire_envelope *req = NULL;
    int rc =
        wire_unpack(nng_msg_body(msg), nng_msg_len(msg), MLX_MAX_CONTROL_MSG, &req, &err);
    if (req != NULL && rc == 0 && wire_check_node_id(req->node_id, &err) != 0)
        rc = MLX_EPROTO;
    if (req != NULL)
        x.reply.request_id = req->request_id;
    x.req = req;

    if (rc != 0) {
        mlx_log_warn(MOD, "refused message", "peer=%s bytes=%zu err=\"%s\"", peer,
                     nng_msg_len(msg), err.msg);
        refuse(&x, wire_refusal_code(rc), err.msg);
    } else if (req->body_case == FLEET__ENVELOPE__BODY_REGISTER) {
        on_register(&x);
    } else if (req->body_case == FLEET__ENVELOPE__BODY_HEARTBEAT) {
        on_heartbeat(&x);
    } else if (req->body_case == FLEET__ENVELOPE__BODY_DEREGISTER) {
        on_deregister(&x);
    } else {
        mlx_log_warn(MOD, "refused message", "peer=%s body=%s", peer,
                     wire_body_name(req));
        snprintf(x.message, sizeof x.message,
                 "the coordinator does not accept %s requests", wire_body_name(req));
        wire_set_error(&x.reply, &x.error, FLEET__ERROR__CODE__BAD_MESSAGE, x.message);
    }

    uint8_t *buf = NULL;
    size_t len = 0;
    nng_msg *out = NULL;
    if (wire_pack(&x.reply, MLX_MAX_CONTROL_MSG, &buf, &len, &err) == 0 &&
        nng_msg_alloc(&out, len) == 0)
        memcpy(nng_msg_body(out), buf, len);
    mlx_free(buf);
    wire_free(req);
    return out;
}

/* ---- NNG plumbing ------------------------------------------------------- */

static void worker_run(void *arg)
{
    struct worker *w = arg;
    control *c = w->srv;
    int rv = nng_aio_result(w->aio);
    bool stopping = atomic_load(&c->stopping) || rv == NNG_ECLOSED;
    /* A failed send leaves the reply with us; a request that arrives while
     * we stop goes unanswered. */
    if ((w->step == WORKER_SEND && rv != 0) ||
        (w->step == WORKER_RECV && rv == 0 && stopping))
        nng_msg_free(nng_aio_get_msg(w->aio));
    if (stopping)
        return;
    if (w->step == WORKER_RECV && rv == 0) {
        nng_msg *req = nng_aio_get_msg(w->aio);
        nng_msg *reply = handle(c, req);
        nng_msg_free(req);
        if (reply != NULL) {
            nng_aio_set_msg(w->aio, reply);
            w->step = WORKER_SEND;
            nng_ctx_send(w->ctx, w->aio);
            return;
        }
    }
    w->step = WORKER_RECV;
    nng_ctx_recv(w->ctx, w->aio);
}

static void apply_silence(control *c)
{
    membership_change changes[64];
    size_t n;
    do {
        n = membership_tick(c->members, mlx_time_mono_ms(), changes, 64);
        for (size_t i = 0; i < n; i++) {
            const membership_change *ch = &changes[i];
            mlx_err err;
            mlx_err_clear(&err);
            if (registry_set_state(c->reg, ch->node_id, membership_state_name(ch->to),
                                   &err))
                mlx_log_error(MOD, "cannot record node state", "node=%s err=\"%s\"",
                              ch->node_id, err.msg);
            mlx_log(ch->to == NODE_UP ? MLX_LOG_INFO : MLX_LOG_WARN, MOD,
                    "node state changed", "node=%s from=%s to=%s silent_ms=%lld",
                    ch->node_id, membership_state_name(ch->from),
                    membership_state_name(ch->to), (long long)ch->silent_ms);
            if (ch->to == NODE_DOWN && c->hooks.on_node_gone != NULL)
                c->hooks.on_node_gone(c->hooks.arg, ch->node_id, NODE_DOWN);
        }
    } while (n == 64);
}

static void ticker_run(void *arg)
{
    control *c = arg;
    nng_mtx_lock(c->mtx);
    while (!c->ticker_stop) {
        apply_silence(c);
        nng_cv_until(c->cv, nng_clock() + MEMBERSHIP_TICK_MS);
    }
    nng_mtx_unlock(c->mtx);
}

static int restore_node(void *arg, const char *id, const char *state,
                        int64_t heartbeat_ms)
{
    control *c = arg;
    node_state s;
    if (membership_parse_state(state, &s) != 0)
        s = NODE_DOWN;
    return membership_restore(c->members, id, s, heartbeat_ms, mlx_time_mono_ms(), NULL);
}

int control_start(const control_config *cfg, registry *reg, control **out, mlx_err *err)
{
    control *c = mlx_calloc(1, sizeof *c);
    if (c == NULL)
        return mlx_err_set(err, MLX_ENOMEM, "out of memory");
    c->reg = reg;
    c->hooks = cfg->hooks;
    int rc = mlx_rand_hex(c->epoch, 16, err);
    if (rc == 0)
        rc = membership_create(&cfg->policy, MLX_MAX_NODES, &c->members, err);
    if (rc == 0)
        rc = registry_each(reg, restore_node, c, err);
    if (rc == 0 && (nng_mtx_alloc(&c->mtx) != 0 || nng_cv_alloc(&c->cv, c->mtx) != 0))
        rc = mlx_err_set(err, MLX_ENOMEM, "out of memory");
    if (rc == 0)
        rc = mlx_nng_rep_listen(cfg->url, MLX_MAX_CONTROL_FRAME, "--control", &c->sock,
                                err);
    if (rc != 0)
        goto fail;
    size_t started = 0;
    for (; started < MLX_CONTROL_CONTEXTS; started++) {
        struct worker *w = &c->workers[started];
        w->srv = c;
        if (nng_aio_alloc(&w->aio, worker_run, w) != 0)
            break;
        if (nng_ctx_open(&w->ctx, c->sock) != 0) {
            nng_aio_free(w->aio);
            w->aio = NULL;
            break;
        }
    }
    if (started < MLX_CONTROL_CONTEXTS ||
        nng_thread_create(&c->ticker, ticker_run, c) != 0) {
        rc = mlx_err_set(err, MLX_ENOMEM, "cannot start the control server");
        nng_close(c->sock);
        for (size_t i = 0; i < started; i++)
            nng_aio_free(c->workers[i].aio);
        goto fail;
    }
    for (size_t i = 0; i < MLX_CONTROL_CONTEXTS; i++) {
        c->workers[i].step = WORKER_RECV;
        nng_ctx_recv(c->workers[i].ctx, c->workers[i].aio);
    }
    mlx_log_info(MOD, "control plane listening", "url=%s epoch=%s nodes=%zu", cfg->url,
                 c->epoch, membership_count(c->members));
    *out = c;
    return 0;
fail:
    if (c->cv != NULL)
        nng_cv_free(c->cv);
    if (c->mtx != NULL)
        nng_mtx_free(c->mtx);
    membership_destroy(c->members);
    mlx_free(c);
    return rc;
}

void control_stop(control *c)
{
    if (c == NULL)
        return;
    /* Stop every aio before closing the socket: closing a REP socket while its
     * contexts still have operations in flight can hang in NNG 1.5. With
     * stopping set, a callback that runs now starts nothing new. */
    atomic_store(&c->stopping, true);
    for (size_t i = 0; i < MLX_CONTROL_CONTEXTS; i++)
        nng_aio_stop(c->workers[i].aio); /* cancels and waits for the callback */
    if (mlx_nng_close(c->sock, CLOSE_TIMEOUT_MS) != 0)
        mlx_log_warn(MOD, "the control socket did not close in time; leaving it to exit",
                     "timeout_ms=%d", CLOSE_TIMEOUT_MS);
    for (size_t i = 0; i < MLX_CONTROL_CONTEXTS; i++)
        nng_aio_free(c->workers[i].aio);
    nng_mtx_lock(c->mtx);
    c->ticker_stop = true;
    nng_cv_wake(c->cv);
    nng_mtx_unlock(c->mtx);
    nng_thread_destroy(c->ticker);
    nng_cv_free(c->cv);
    nng_mtx_free(c->mtx);
    membership_destroy(c->members);
    mlx_free(c);
}
