/* facts.c — validation and JSON of what agents report. */
#include "coordinator/control/facts.h"

#include <arpa/inet.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "common/alloc.h"
#include "common/json.h"
#include "common/limits.h"
#include "common/parse.h"

static int check_text(const char *field, const char *value, size_t max, bool required,
                      mlx_err *err)
{
    if (required && value[0] == '\0')
        return mlx_err_set(err, MLX_EPROTO, "%s is empty", field);
    if (!mlx_text_is_clean(value, max))
        return mlx_err_set(
            err, MLX_EPROTO,
            "%s is longer than %zu bytes, not UTF-8 or holds control characters", field,
            max);
    return 0;
}

static bool is_hex_digest(const char *s)
{
    size_t n = 0;
    for (; s[n] != '\0'; n++) {
        if (!((s[n] >= '0' && s[n] <= '9') || (s[n] >= 'a' && s[n] <= 'f')))
            return false;
    }
    return n == 64;
}

/* A store list: its length, each name, and the short fields. */
static int check_store(Fleet__StoredModel *const *store, size_t n, mlx_err *err)
{
    if (n > MLX_MAX_NODE_MODELS)
        return mlx_err_set(err, MLX_EPROTO,
                           "the store list holds %zu models, over the %d limit", n,
                           MLX_MAX_NODE_MODELS);
    for (size_t i = 0; i < n; i++) {
        const Fleet__StoredModel *m = store[i];
        int rc;
        if ((rc = check_text("store[].name", m->name, MLX_MAX_MODEL_NAME, true, err)) !=
                0 ||
            (rc = check_text("store[].format", m->format, 15, false, err)) != 0 ||
            (rc = check_text("store[].architecture", m->architecture, 63, false, err)) !=
                0 ||
            (rc = check_text("store[].parameters", m->parameters, 31, false, err)) != 0 ||
            (rc = check_text("store[].quantization", m->quantization, 31, false, err)) !=
                0)
            return rc;
        if (m->digest[0] != '\0' && !is_hex_digest(m->digest))
            return mlx_err_set(err, MLX_EPROTO,
                               "store[].digest of '%s' is not 64 lower-case hex digits",
                               m->name);
    }
    return 0;
}

int facts_check_register(const Fleet__Register *reg, mlx_err *err)
{
    int rc;
    char host[MLX_MAX_ADDRESS + 1];
    int port;
    if ((rc = check_text("name", reg->name, MLX_MAX_NODE_NAME, true, err)) != 0)
        return rc;
    if ((rc = check_text("agent_version", reg->agent_version, 32, false, err)) != 0)
        return rc;
    /* Addresses longer than the limit would be cut where they are resolved
     * and stored. */
    if ((rc = check_text("listen", reg->listen, MLX_MAX_ADDRESS, false, err)) != 0 ||
        (rc = check_text("advertise", reg->advertise, MLX_MAX_ADDRESS, false, err)) !=
            0 ||
        (rc = check_text("http", reg->http, MLX_MAX_ADDRESS, false, err)) != 0)
        return rc;
    if ((rc = mlx_parse_nng_url(reg->listen, host, sizeof host, &port, err)) != 0) {
        return mlx_err_prefix(err, rc, "listen");
    }
    if (reg->advertise[0] != '\0' &&
        (rc = mlx_parse_nng_url(reg->advertise, host, sizeof host, &port, err)) != 0) {
        return mlx_err_prefix(err, rc, "advertise");
    }
    if (reg->http[0] != '\0' &&
        (rc = mlx_parse_hostport(reg->http, host, sizeof host, &port, err)) != 0) {
        return mlx_err_prefix(err, rc, "http");
    }
    if (reg->heartbeat_ms != 0 && (reg->heartbeat_ms < 10 || reg->heartbeat_ms > 600000))
        return mlx_err_set(err, MLX_EPROTO, "heartbeat_ms %u is outside 10..600000",
                           reg->heartbeat_ms);
    const Fleet__Hardware *hw = reg->hardware;
    if (hw == NULL)
        return mlx_err_set(err, MLX_EPROTO, "register carries no hardware facts");
    const char *fields[][2] = {
        {"hardware.hostname", hw->hostname},     {"hardware.os_name", hw->os_name},
        {"hardware.os_version", hw->os_version}, {"hardware.arch", hw->arch},
        {"hardware.cpu_model", hw->cpu_model},   {"hardware.chip", hw->chip},
    };
    for (size_t i = 0; i < sizeof fields / sizeof fields[0]; i++) {
        if ((rc = check_text(fields[i][0], fields[i][1], MLX_MAX_FACT, false, err)) != 0)
            return rc;
    }
    return check_store(reg->store, reg->n_store, err);
}

int facts_resolve_address(const Fleet__Register *reg, const char *peer_ip, char *out,
                          mlx_err *err)
{
    int n;
    if (reg->advertise[0] != '\0') {
        n = snprintf(out, MLX_MAX_ADDRESS + 1, "%s", reg->advertise);
    } else {
        char host[MLX_MAX_ADDRESS + 1];
        int port;
        int rc = mlx_parse_nng_url(reg->listen, host, sizeof host, &port, err);
        if (rc != 0)
            return rc;
        bool wildcard = strcmp(host, "0.0.0.0") == 0 || strcmp(host, "::") == 0 ||
                        strcmp(host, "*") == 0;
        const char *scheme = strncmp(reg->listen, "tls+", 4) == 0 ? "tls+tcp" : "tcp";
        if (!wildcard || peer_ip[0] == '\0')
            n = snprintf(out, MLX_MAX_ADDRESS + 1, "%s", reg->listen);
        else if (strchr(peer_ip, ':') != NULL)
            n = snprintf(out, MLX_MAX_ADDRESS + 1, "%s://[%s]:%d", scheme, peer_ip, port);
        else
            n = snprintf(out, MLX_MAX_ADDRESS + 1, "%s://%s:%d", scheme, peer_ip, port);
    }
    /* A cut address would dial the wrong place. */
    if (n < 0 || n > MLX_MAX_ADDRESS)
        return mlx_err_set(err, MLX_EPROTO,
                           "the data-plane address is longer than %d bytes",
                           MLX_MAX_ADDRESS);
    return 0;
}

void facts_peer_ip(nng_msg *msg, char *out, size_t size)
{
    out[0] = '\0';
    nng_sockaddr sa;
    if (nng_pipe_get_addr(nng_msg_get_pipe(msg), NNG_OPT_REMADDR, &sa) != 0)
        return;
    if (sa.s_family == NNG_AF_INET)
        inet_ntop(AF_INET, &sa.s_in.sa_addr, out, (socklen_t)size);
    else if (sa.s_family == NNG_AF_INET6)
        inet_ntop(AF_INET6, sa.s_in6.sa_addr, out, (socklen_t)size);
}

static char *dump(json_t *v)
{
    char *text = NULL;
    if (v != NULL)
        mlx_json_dump(v, &text, NULL);
    json_decref(v);
    return text;
}

char *facts_hardware_json(const Fleet__Hardware *hw)
{
    return dump(json_pack("{s:s, s:s, s:s, s:s, s:s, s:s, s:I, s:I, s:I, s:I, s:I}",
                          "hostname", hw->hostname, "os", hw->os_name, "os_version",
                          hw->os_version, "arch", hw->arch, "cpu_model", hw->cpu_model,
                          "chip", hw->chip, "cpu_cores", (json_int_t)hw->cpu_cores,
                          "performance_cores", (json_int_t)hw->performance_cores,
                          "memory_total_bytes", (json_int_t)hw->memory_total_bytes,
                          "disk_free_bytes", (json_int_t)hw->disk_free_bytes,
                          "disk_total_bytes", (json_int_t)hw->disk_total_bytes));
}

/* JSON has no NaN or infinity; a peer that sends them gets 0. */
static double finite_or_zero(double v)
{
    return isfinite(v) ? v : 0.0;
}

int facts_check_heartbeat(const Fleet__Heartbeat *hb, mlx_err *err)
{
    if (hb->n_models > MLX_MAX_NODE_MODELS)
        return mlx_err_set(err, MLX_EPROTO,
                           "heartbeat reports %zu models, over the %d limit",
                           hb->n_models, MLX_MAX_NODE_MODELS);
    for (size_t i = 0; i < hb->n_models; i++) {
        int rc;
        if ((rc = check_text("models[].model", hb->models[i]->model, MLX_MAX_MODEL_NAME,
                             true, err)) != 0 ||
            (rc = check_text("models[].engine", hb->models[i]->engine, 15, true, err)) !=
                0)
            return rc;
    }
    if (!hb->store_changed && hb->n_store != 0)
        return mlx_err_set(err, MLX_EPROTO,
                           "heartbeat carries a store list without store_changed");
    return check_store(hb->store, hb->n_store, err);
}

registry_stored *facts_store(Fleet__StoredModel *const *store, size_t n)
{
    registry_stored *out = mlx_calloc(n + 1, sizeof *out);
    for (size_t i = 0; out != NULL && i < n; i++) {
        const Fleet__StoredModel *m = store[i];
        out[i] = (registry_stored){
            .name = m->name,
            .format = m->format,
            .size_bytes = m->size_bytes,
            .digest = m->digest,
            .architecture = m->architecture,
            .parameters = m->parameters,
            .quantization = m->quantization,
        };
    }
    return out;
}

registry_loaded *facts_loaded(const Fleet__Heartbeat *hb)
{
    registry_loaded *out = mlx_calloc(hb->n_models + 1, sizeof *out);
    for (size_t i = 0; out != NULL && i < hb->n_models; i++) {
        const Fleet__ModelActivity *a = hb->models[i];
        out[i] = (registry_loaded){
            .name = a->model,
            .engine = a->engine,
            .memory_bytes = a->memory_bytes,
            .tokens_per_s = finite_or_zero(a->tokens_per_s),
        };
    }
    return out;
}

char *facts_metrics_json(const Fleet__Heartbeat *hb)
{
    static const Fleet__MetricsSample empty_sample = FLEET__METRICS_SAMPLE__INIT;
    static const Fleet__Load empty_load = FLEET__LOAD__INIT;
    const Fleet__MetricsSample *m = hb->metrics != NULL ? hb->metrics : &empty_sample;
    const Fleet__Load *l = hb->load != NULL ? hb->load : &empty_load;
    json_t *models = json_array();
    for (size_t i = 0; models != NULL && i < hb->n_models; i++) {
        const Fleet__ModelActivity *a = hb->models[i];
        json_array_append_new(
            models, json_pack("{s:s, s:s, s:f, s:I}", "model", a->model, "engine",
                              a->engine, "tokens_per_s", finite_or_zero(a->tokens_per_s),
                              "memory_bytes", (json_int_t)a->memory_bytes));
    }
    json_t *v = json_pack(
        "{s:I, s:f, s:I, s:I, s:I, s:I, s:I, s:I, s:f, s:f, s:f, s:I, s:f, s:f, s:f, "
        "s:I, s:I, s:o?}",
        "unix_ms", (json_int_t)m->unix_ms, "cpu_percent", finite_or_zero(m->cpu_percent),
        "memory_used_bytes", (json_int_t)m->memory_used_bytes, "memory_total_bytes",
        (json_int_t)m->memory_total_bytes, "swap_used_bytes",
        (json_int_t)m->swap_used_bytes, "swap_total_bytes",
        (json_int_t)m->swap_total_bytes, "memory_wired_bytes",
        (json_int_t)m->memory_wired_bytes, "memory_compressed_bytes",
        (json_int_t)m->memory_compressed_bytes, "load1", finite_or_zero(m->load1),
        "load5", finite_or_zero(m->load5), "load15", finite_or_zero(m->load15),
        "disk_free_bytes", (json_int_t)m->disk_free_bytes, "net_rx_bytes_per_s",
        finite_or_zero(m->net_rx_bytes_per_s), "net_tx_bytes_per_s",
        finite_or_zero(m->net_tx_bytes_per_s), "gpu_percent",
        isfinite(m->gpu_percent) && m->gpu_percent >= 0 ? m->gpu_percent : -1.0,
        "requests_running", (json_int_t)l->requests_running, "requests_queued",
        (json_int_t)l->requests_queued, "models", models);
    return dump(v);
}
