/* uplink.c — register, heartbeat, re-register, deregister, and the store
 * list that rides on them.
 *
 * The store list is read from the store's database (cache_list_runnable:
 * no file is opened or hashed) before each exchange and reduced to a 64-bit
 * FNV-1a hash of its fields. It is sent whole at Register, and in a heartbeat
 * only while its hash differs from the one the coordinator last acknowledged,
 * so a steady fleet's heartbeats carry no store at all. */
#include "agent/uplink/uplink.h"

#include <nng/nng.h>
#include <nng/supplemental/util/platform.h>
#include <stdio.h>
#include <string.h>

#include "agent/cache/cache.h"
#include "agent/engine/engine.h"
#include "agent/metrics/metrics.h"
#include "common/alloc.h"
#include "common/log.h"
#include "common/nng_util.h"
#include "common/rand.h"
#include "proto/wire.h"

#define MOD       "uplink"
#define EPOCH_MAX 64
/* How long stopping waits for NNG to close the socket (see mlx_nng_close). */
#define CLOSE_TIMEOUT_MS 2000

typedef enum link_state {
    LINK_REGISTERING, /* sending Register until one is accepted */
    LINK_REGISTERED,  /* heartbeating */
} link_state;

struct uplink {
    /* Copied from the config at start; read-only afterwards. */
    char *coordinator, *node_id, *name, *listen, *advertise, *http, *data_dir;
    int heartbeat_ms;
    int timeout_ms;
    metrics_sampler *sampler; /* borrowed */

    nng_socket sock;
    nng_thread *thread;

    /* Only the link's thread touches these. */
    bool store_acked;     /* the coordinator holds the list whose hash follows */
    uint64_t store_hash;  /* of the list it last acknowledged */
    int store_failure;    /* code of the store-listing failure last logged */

    nng_mtx *mtx; /* guards everything below */
    nng_cv *cv;   /* signalled by uplink_stop */
    bool stopping;
    const char *stop_reason; /* borrowed from uplink_stop's caller */
    uplink_status status;
};

/* Sends env and returns the reply's envelope (caller frees with wire_free).
 * An Error reply becomes a failure whose sentence is the peer's. */
static int exchange(uplink *u, wire_envelope *env, wire_envelope **reply, mlx_err *err)
{
    char request_id[17];
    int rc = mlx_rand_hex(request_id, 16, err);
    if (rc != 0)
        return rc;
    env->request_id = request_id;
    env->node_id = u->node_id;
    uint8_t *buf;
    size_t len;
    if ((rc = wire_pack(env, MLX_MAX_CONTROL_MSG, &buf, &len, err)) != 0)
        return rc;
    nng_msg *msg = NULL;
    rc = mlx_nng_request(u->sock, buf, len, &msg, err);
    mlx_free(buf);
    if (rc != 0) {
        if (rc == MLX_ETIMEDOUT)
            mlx_err_set(err, rc, "coordinator %s did not answer within %d ms",
                        u->coordinator, u->timeout_ms);
        return rc;
    }
    wire_envelope *r = NULL;
    rc = wire_unpack(nng_msg_body(msg), nng_msg_len(msg), MLX_MAX_CONTROL_MSG, &r, err);
    nng_msg_free(msg);
    if (rc != 0) {
        wire_free(r);
        return mlx_err_prefix(err, rc, "reply from coordinator %s", u->coordinator);
    }
    if (r->body_case == FLEET__ENVELOPE__BODY_ERROR) {
        int code = r->error->code == FLEET__ERROR__CODE__UNKNOWN_NODE ? MLX_EUNKNOWNNODE
                   : r->error->code == FLEET__ERROR__CODE__VERSION    ? MLX_EVERSION
                                                                      : MLX_EPROTO;
        mlx_err_set(err, code, "coordinator refused %s: %s", wire_body_name(env),
                    r->error->message);
        wire_free(r);
        return code;
    }
    *reply = r;
    return 0;
}

/* The store as it goes on the wire. Strings are borrowed from list. */
struct store_msg {
    cache_listing *list;
    size_t n;
    Fleet__StoredModel *items;
    Fleet__StoredModel **ptrs;
    char (*params)[16]; /* each model's parameter count, once described */
    uint64_t hash;
    bool ok; /* false: the store could not be read; nothing to send */
};

static uint64_t fnv1a(uint64_t h, const void *data, size_t len)
{
    const unsigned char *p = data;
    for (size_t i = 0; i < len; i++) {
        h ^= p[i];
        h *= 1099511628211u;
    }
    return h;
}

static void store_msg_free(struct store_msg *m)
{
    mlx_free(m->list);
    mlx_free(m->items);
    mlx_free(m->ptrs);
    mlx_free(m->params);
    memset(m, 0, sizeof *m);
}

/* Reads the store's list. A failure is logged once per kind (the agent goes
 * on heartbeating without a store rather than not at all) and leaves
 * m->ok false. */
static void store_msg_build(uplink *u, struct store_msg *m)
{
    memset(m, 0, sizeof *m);
    mlx_err err;
    mlx_err_clear(&err);
    int rc = cache_list_runnable(u->data_dir, &m->list, &m->n, &err);
    if (rc == 0 && m->n > MLX_MAX_NODE_MODELS) {
        /* The coordinator refuses longer lists; the names come sorted, so the
         * same ones are always sent. */
        mlx_log_warn(MOD, "the store holds more models than a heartbeat carries",
                     "models=%zu sent=%d", m->n, MLX_MAX_NODE_MODELS);
        m->n = MLX_MAX_NODE_MODELS;
    }
    if (rc == 0) {
        m->items = mlx_calloc(m->n + 1, sizeof *m->items);
        m->ptrs = mlx_calloc(m->n + 1, sizeof *m->ptrs);
        if (m->items == NULL || m->ptrs == NULL)
            rc = mlx_err_set(&err, MLX_ENOMEM, "out of memory listing the store");
    }
    if (rc != 0) {
        if (rc != u->store_failure)
            mlx_log_warn(MOD, "cannot list the store; the coordinator keeps its last list",
                         "data=%s err=\"%s\"", u->data_dir, err.msg);
        u->store_failure = rc;
        store_msg_free(m);
        return;
    }
    u->store_failure = 0;
    uint64_t h = 14695981039346656037u;
    for (size_t i = 0; i < m->n; i++) {
        const cache_listing *l = &m->list[i];
        Fleet__StoredModel *s = &m->items[i];
        fleet__stored_model__init(s);
        s->name = (char *)l->name;
        s->format = (char *)l->format;
        s->size_bytes = l->size;
        s->digest = (char *)l->digest;
        m->ptrs[i] = s;
        /* The NULs keep "ab"+"c" apart from "a"+"bc". */
        h = fnv1a(h, l->name, strlen(l->name) + 1);
        h = fnv1a(h, l->format, strlen(l->format) + 1);
        h = fnv1a(h, l->digest, strlen(l->digest) + 1);
        h = fnv1a(h, &l->size, sizeof l->size);
    }
    m->hash = fnv1a(h, &m->n, sizeof m->n);
    m->ok = true;
}

/* Fills in what each model's GGUF says of itself (architecture, parameter
 * count, quantization) from its metadata. Done only for a list about to be
 * sent, which is rare: the hash that decides whether to send leaves these
 * out, as they follow from the file's digest. A file the engine cannot
 * read is sent without them. */
static void store_msg_describe(struct store_msg *m)
{
    m->params = mlx_calloc(m->n + 1, sizeof *m->params);
    if (m->params == NULL)
        return;
    for (size_t i = 0; i < m->n; i++) {
        engine_info info;
        if (engine_describe(m->list[i].path, &info, NULL) != 0)
            continue;
        engine_format_params(info.n_params, m->params[i], sizeof m->params[i]);
        /* Static strings, or NULL where the engine has no name. */
        m->items[i].architecture = (char *)(info.arch != NULL ? info.arch : "");
        m->items[i].quantization =
            (char *)(info.quantization != NULL ? info.quantization : "");
        m->items[i].parameters = m->params[i];
    }
}

static int do_register(uplink *u, char *epoch, mlx_err *err)
{
    metrics_hardware hw;
    int rc = metrics_read_hardware(u->data_dir, &hw, err);
    if (rc != 0)
        return rc;
    Fleet__Hardware h = FLEET__HARDWARE__INIT;
    h.hostname = hw.hostname;
    h.os_name = hw.os_name;
    h.os_version = hw.os_version;
    h.arch = hw.arch;
    h.cpu_model = hw.cpu_model;
    h.cpu_cores = hw.cpu_cores;
    h.performance_cores = hw.performance_cores;
    h.memory_total_bytes = hw.memory_total_bytes;
    h.chip = hw.chip;
    h.disk_free_bytes = hw.disk_free_bytes;
    h.disk_total_bytes = hw.disk_total_bytes;

    Fleet__Register reg = FLEET__REGISTER__INIT;
    reg.name = u->name;
    reg.listen = u->listen;
    reg.advertise = u->advertise;
    reg.http = u->http;
    reg.agent_version = MLX_VERSION;
    reg.heartbeat_ms = (uint32_t)u->heartbeat_ms;
    reg.hardware = &h;
    struct store_msg store;
    store_msg_build(u, &store);
    store_msg_describe(&store);
    reg.n_store = store.n;
    reg.store = store.ptrs;

    wire_envelope env = FLEET__ENVELOPE__INIT;
    env.body_case = FLEET__ENVELOPE__BODY_REGISTER;
    env.register_ = &reg;
    wire_envelope *reply = NULL;
    /* A registration replaces the coordinator's list, even with nothing when
     * the store could not be read; heartbeats send it once it can. */
    u->store_acked = false;
    if ((rc = exchange(u, &env, &reply, err)) != 0) {
        store_msg_free(&store);
        return rc;
    }
    u->store_acked = store.ok;
    u->store_hash = store.hash;
    store_msg_free(&store);
    if (reply->body_case != FLEET__ENVELOPE__BODY_REGISTER_REPLY) {
        rc = mlx_err_set(err, MLX_EPROTO, "coordinator answered register with %s",
                         wire_body_name(reply));
    } else {
        snprintf(epoch, EPOCH_MAX, "%s", reply->register_reply->coordinator_epoch);
        mlx_log_info(MOD, "registered with coordinator",
                     "coordinator=%s node=%s name=%s address=%s", u->coordinator,
                     u->node_id, u->name, reply->register_reply->address);
    }
    wire_free(reply);
    return rc;
}

/* Returns 0, an error, or MLX_EUNKNOWNNODE / MLX_ECLOSED (epoch changed) when
 * the node must register again. */
static int do_heartbeat(uplink *u, uint64_t seq, const char *epoch, mlx_err *err)
{
    metrics_snapshot snap;
    metrics_sampler_latest(u->sampler, &snap);
    const metrics_sample *s = &snap.system;
    Fleet__MetricsSample m = FLEET__METRICS_SAMPLE__INIT;
    m.unix_ms = (uint64_t)s->unix_ms;
    m.cpu_percent = s->cpu_percent;
    m.memory_used_bytes = s->memory_used_bytes;
    m.memory_total_bytes = s->memory_total_bytes;
    m.swap_used_bytes = s->swap_used_bytes;
    m.swap_total_bytes = s->swap_total_bytes;
    m.memory_wired_bytes = s->memory_wired_bytes;
    m.memory_compressed_bytes = s->memory_compressed_bytes;
    m.load1 = s->load[0];
    m.load5 = s->load[1];
    m.load15 = s->load[2];
    m.disk_free_bytes = s->disk_free_bytes;
    m.net_rx_bytes_per_s = s->net_rx_bytes_per_s;
    m.net_tx_bytes_per_s = s->net_tx_bytes_per_s;
    m.gpu_percent = s->gpu_percent;
    Fleet__ModelActivity activity[METRICS_MAX_MODELS];
    Fleet__ModelActivity *models[METRICS_MAX_MODELS];
    Fleet__Load load = FLEET__LOAD__INIT;
    for (size_t i = 0; i < snap.n_models; i++) {
        load.requests_running += snap.models[i].running;
        load.requests_queued += snap.models[i].queued;
        fleet__model_activity__init(&activity[i]);
        activity[i].model = snap.models[i].model;
        activity[i].engine = snap.models[i].engine;
        activity[i].tokens_per_s = snap.models[i].tokens_per_s;
        activity[i].memory_bytes = snap.models[i].memory_bytes;
        models[i] = &activity[i];
    }

    Fleet__Heartbeat hb = FLEET__HEARTBEAT__INIT;
    hb.seq = seq;
    hb.metrics = &m;
    hb.load = &load;
    hb.n_models = snap.n_models;
    hb.models = models;
    struct store_msg store;
    store_msg_build(u, &store);
    if (store.ok && (!u->store_acked || store.hash != u->store_hash)) {
        hb.store_changed = true;
        store_msg_describe(&store);
        hb.n_store = store.n;
        hb.store = store.ptrs;
    }
    wire_envelope env = FLEET__ENVELOPE__INIT;
    env.body_case = FLEET__ENVELOPE__BODY_HEARTBEAT;
    env.heartbeat = &hb;
    wire_envelope *reply = NULL;
    int rc = exchange(u, &env, &reply, err);
    if (rc == 0 && hb.store_changed &&
        reply->body_case == FLEET__ENVELOPE__BODY_HEARTBEAT_REPLY) {
        /* Acknowledged: a lost reply leaves store_acked as it was, so the
         * next heartbeat sends the list again. */
        u->store_acked = true;
        u->store_hash = store.hash;
    }
    store_msg_free(&store);
    if (rc != 0)
        return rc;
    if (reply->body_case != FLEET__ENVELOPE__BODY_HEARTBEAT_REPLY) {
        rc = mlx_err_set(err, MLX_EPROTO, "coordinator answered heartbeat with %s",
                         wire_body_name(reply));
    } else if (strcmp(reply->heartbeat_reply->coordinator_epoch, epoch) != 0) {
        rc = mlx_err_set(err, MLX_ECLOSED, "coordinator restarted; registering again");
    }
    /* Orders (pull, load, evict) arrive with the store and runtime. */
    wire_free(reply);
    return rc;
}

static void deregister(uplink *u, const char *reason)
{
    Fleet__Deregister d = FLEET__DEREGISTER__INIT;
    d.reason = (char *)reason;
    wire_envelope env = FLEET__ENVELOPE__INIT;
    env.body_case = FLEET__ENVELOPE__BODY_DEREGISTER;
    env.deregister = &d;
    wire_envelope *reply = NULL;
    mlx_err err;
    mlx_err_clear(&err);
    if (exchange(u, &env, &reply, &err) == 0)
        mlx_log_info(MOD, "deregistered", "coordinator=%s reason=\"%s\"", u->coordinator,
                     reason);
    else
        mlx_log_warn(MOD, "could not deregister", "coordinator=%s err=\"%s\"",
                     u->coordinator, err.msg);
    wire_free(reply);
}

/* Sleeps until deadline (NNG's monotonic clock) or until stop; true when
 * stopping. */
static bool wait_until(uplink *u, nng_time deadline)
{
    nng_mtx_lock(u->mtx);
    while (!u->stopping && nng_cv_until(u->cv, deadline) != NNG_ETIMEDOUT) {
    }
    bool stopping = u->stopping;
    nng_mtx_unlock(u->mtx);
    return stopping;
}

static void run(void *arg)
{
    uplink *u = arg;
    link_state state = LINK_REGISTERING;
    char epoch[EPOCH_MAX] = "";
    uint64_t seq = 0;
    int last_failure = 0; /* code of the failure last logged, 0 when healthy */
    nng_time next = nng_clock();

    while (!wait_until(u, next)) {
        nng_time now = nng_clock();
        next += (nng_time)u->heartbeat_ms;
        if (next < now) /* we fell behind (a slow request): do not burst */
            next = now + (nng_time)u->heartbeat_ms;

        mlx_err err;
        mlx_err_clear(&err);
        int rc;
        if (state == LINK_REGISTERING) {
            rc = do_register(u, epoch, &err);
            if (rc == 0) {
                state = LINK_REGISTERED;
                seq = 0;
                next = nng_clock(); /* first figures at once, not an interval later */
            }
        } else {
            rc = do_heartbeat(u, ++seq, epoch, &err);
            if (rc == MLX_EUNKNOWNNODE || rc == MLX_ECLOSED) {
                mlx_log_info(MOD, "registering again", "coordinator=%s why=\"%s\"",
                             u->coordinator, err.msg);
                state = LINK_REGISTERING;
                next = nng_clock(); /* at once */
                rc = 0;
            }
        }

        nng_mtx_lock(u->mtx);
        u->status.registered = state == LINK_REGISTERED;
        if (rc == 0 && state == LINK_REGISTERED && seq == 0)
            u->status.registrations++;
        else if (rc == 0 && state == LINK_REGISTERED)
            u->status.heartbeats++;
        nng_mtx_unlock(u->mtx);

        if (rc != 0 && rc != last_failure) {
            mlx_log_warn(MOD, "coordinator unreachable or refusing; will keep trying",
                         "coordinator=%s err=\"%s\"", u->coordinator, err.msg);
            last_failure = rc;
        } else if (rc == 0 && last_failure != 0) {
            mlx_log_info(MOD, "coordinator reachable again", "coordinator=%s",
                         u->coordinator);
            last_failure = 0;
        }
    }
    if (state == LINK_REGISTERED)
        deregister(u, u->stop_reason);
}

static void free_uplink(uplink *u)
{
    mlx_free(u->coordinator);
    mlx_free(u->node_id);
    mlx_free(u->name);
    mlx_free(u->listen);
    mlx_free(u->advertise);
    mlx_free(u->http);
    mlx_free(u->data_dir);
    if (u->cv != NULL)
        nng_cv_free(u->cv);
    if (u->mtx != NULL)
        nng_mtx_free(u->mtx);
    mlx_free(u);
}

int uplink_start(const uplink_config *cfg, uplink **out, mlx_err *err)
{
    uplink *u = mlx_calloc(1, sizeof *u);
    if (u == NULL)
        return mlx_err_set(err, MLX_ENOMEM, "out of memory");
    u->coordinator = mlx_strdup(cfg->coordinator);
    u->node_id = mlx_strdup(cfg->node_id);
    u->name = mlx_strdup(cfg->name);
    u->listen = mlx_strdup(cfg->listen);
    u->advertise = mlx_strdup(cfg->advertise);
    u->http = mlx_strdup(cfg->http);
    u->data_dir = mlx_strdup(cfg->data_dir);
    u->heartbeat_ms = cfg->heartbeat_ms;
    u->sampler = cfg->sampler;
    /* Long enough for a busy coordinator, short enough that a lost request is
     * retried well inside the suspect window. */
    u->timeout_ms = cfg->heartbeat_ms * 2 < 500    ? 500
                    : cfg->heartbeat_ms * 2 > 5000 ? 5000
                                                   : cfg->heartbeat_ms * 2;
    int rc = 0;
    if (cfg->sampler == NULL) {
        rc = mlx_err_set(err, MLX_EINVAL, "the uplink needs a metrics sampler");
        goto fail;
    }
    if (u->coordinator == NULL || u->node_id == NULL || u->name == NULL ||
        u->listen == NULL || u->advertise == NULL || u->http == NULL ||
        u->data_dir == NULL || nng_mtx_alloc(&u->mtx) != 0 ||
        nng_cv_alloc(&u->cv, u->mtx) != 0) {
        rc = mlx_err_set(err, MLX_ENOMEM, "out of memory");
        goto fail;
    }
    if ((rc = mlx_nng_req_dial(u->coordinator, MLX_MAX_CONTROL_MSG, u->timeout_ms,
                               &u->sock, err)) != 0)
        goto fail;
    if (nng_thread_create(&u->thread, run, u) != 0) {
        nng_close(u->sock);
        rc = mlx_err_set(err, MLX_ENOMEM, "cannot start the uplink thread");
        goto fail;
    }
    *out = u;
    return 0;
fail:
    free_uplink(u);
    return rc;
}

void uplink_stop(uplink *u, const char *reason)
{
    if (u == NULL)
        return;
    nng_mtx_lock(u->mtx);
    u->stopping = true;
    u->stop_reason = reason;
    nng_cv_wake(u->cv);
    nng_mtx_unlock(u->mtx);
    nng_thread_destroy(u->thread); /* joins */
    if (mlx_nng_close(u->sock, CLOSE_TIMEOUT_MS) != 0)
        mlx_log_warn(MOD,
                     "the coordinator link did not close in time; leaving it to exit",
                     "timeout_ms=%d", CLOSE_TIMEOUT_MS);
    free_uplink(u);
}

void uplink_snapshot(uplink *u, uplink_status *out)
{
    nng_mtx_lock(u->mtx);
    *out = u->status;
    nng_mtx_unlock(u->mtx);
}
