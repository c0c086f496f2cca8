/* serve.c — `mlx-agent serve`: the daemon. */
#include <stddef.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "agent/agent.h"
#include "agent/dataplane/dataplane.h"
#include "agent/http/http.h"
#include "agent/metrics/metrics.h"
#include "agent/runtime/runtime.h"
#include "agent/uplink/uplink.h"
#include "common/alloc.h"
#include "common/cli.h"
#include "common/log.h"
#include "common/parse.h"
#include "common/path.h"

#define MOD "agent"

struct serve_opts {
    char *data;
    char *name;
    char *coordinator;
    char *listen;
    char *advertise;
    char *http;
    int64_t heartbeat_ms;
    char *ollama;
    char *log_level;
    int64_t parallel, queue, max_loaded, ctx, threads, max_body;
    char *memory_budget;
    char *keep_alive;
};

static const mlx_opt serve_opts[] = {
    {"data", 0, MLX_OPT_PATH, offsetof(struct serve_opts, data), "~/.mlxfleet", "DIR",
     "data directory (node id, model store, history)"},
    {"name", 0, MLX_OPT_STR, offsetof(struct serve_opts, name), "", "NAME",
     "name shown in the fleet; empty means the host name"},
    {"coordinator", 0, MLX_OPT_STR, offsetof(struct serve_opts, coordinator), "", "URL",
     "coordinator control address, tcp://HOST:PORT; empty runs standalone"},
    {"listen", 0, MLX_OPT_STR, offsetof(struct serve_opts, listen), "tcp://0.0.0.0:7401",
     "URL", "data-plane address to listen on", .check = mlx_check_nng_url},
    {"advertise", 0, MLX_OPT_STR, offsetof(struct serve_opts, advertise), "", "URL",
     "data-plane address the coordinator should dial; empty: derived from --listen"},
    {"http", 0, MLX_OPT_STR, offsetof(struct serve_opts, http), "127.0.0.1:7481",
     "HOST:PORT", "local HTTP API address", .check = mlx_check_hostport},
    {"heartbeat-ms", 0, MLX_OPT_INT, offsetof(struct serve_opts, heartbeat_ms), "1000",
     "N", "milliseconds between heartbeats", 10, 600000},
    {"ollama", 0, MLX_OPT_STR, offsetof(struct serve_opts, ollama),
     "http://127.0.0.1:11434", "URL",
     "a local Ollama server whose loaded models are reported; empty: none"},
    {"log-level", 0, MLX_OPT_STR, offsetof(struct serve_opts, log_level), "info", "LEVEL",
     "debug, info, warn or error", .check = mlx_check_log_level},
    {"parallel", 0, MLX_OPT_INT, offsetof(struct serve_opts, parallel), "4", "N",
     "requests each model generates at once (decoded together)", 1, 256},
    {"queue", 0, MLX_OPT_INT, offsetof(struct serve_opts, queue), "64", "N",
     "requests that may wait for each model; past it: 503 and Retry-After", 1, 100000},
    {"max-loaded", 0, MLX_OPT_INT, offsetof(struct serve_opts, max_loaded), "3", "N",
     "models loaded at once; the least recently used idle one makes room", 1, 64},
    {"memory-budget", 0, MLX_OPT_STR, offsetof(struct serve_opts, memory_budget), "75%",
     "BYTES", "memory loaded models may hold: bytes (\"12G\") or a share of RAM (\"60%\")"},
    {"keep-alive", 0, MLX_OPT_STR, offsetof(struct serve_opts, keep_alive), "5m",
     "DURATION", "how long an idle model stays loaded (0: unload at once; -1: forever); "
     "a request's keep_alive overrides it"},
    {"ctx", 0, MLX_OPT_INT, offsetof(struct serve_opts, ctx), "0", "N",
     "tokens of context per request; 0: the model's own, at most 4096", 0, 1 << 20},
    {"threads", 0, MLX_OPT_INT, offsetof(struct serve_opts, threads), "0", "N",
     "threads of a forward pass; 0: one per performance core", 0, 256},
    {"max-body", 0, MLX_OPT_INT, offsetof(struct serve_opts, max_body), "1048576", "BYTES",
     "largest request body; past it: 413", 1024, 1 << 30},
    {NULL},
};

/* --memory-budget: bytes, or a share of the machine's memory. */
static int parse_budget(const char *text, uint64_t *out, mlx_err *err)
{
    size_t n = strlen(text);
    if (n > 1 && text[n - 1] == '%') {
        char number[32];
        double share;
        snprintf(number, sizeof number, "%.*s", (int)(n - 1), text);
        metrics_hardware hw;
        if (mlx_parse_double(number, &share, NULL) != 0 || share <= 0 || share > 100)
            return mlx_err_set(err, MLX_ECONFIG,
                               "--memory-budget: '%s' is not a share from 1%% to 100%%", text);
        if (metrics_read_hardware("/", &hw, err) != 0)
            return mlx_err_prefix(err, MLX_ECONFIG, "--memory-budget");
        *out = (uint64_t)((double)hw.memory_total_bytes * share / 100);
        return 0;
    }
    if (mlx_parse_bytes(text, out, err) != 0 || *out == 0)
        return mlx_err_set(err, MLX_ECONFIG,
                           "--memory-budget: '%s' is neither bytes (\"12G\") nor a share "
                           "of memory (\"60%%\")",
                           text);
    return 0;
}

/* --keep-alive: a duration, 0, or a negative number for forever. */
static int parse_keep_alive(const char *text, int64_t *out, mlx_err *err)
{
    if (strcmp(text, "0") == 0) {
        *out = 0;
        return 0;
    }
    if (text[0] == '-') {
        *out = INT64_MAX / 4;
        return 0;
    }
    if (mlx_parse_duration_ms(text, out, err) != 0)
        return mlx_err_prefix(err, MLX_ECONFIG, "--keep-alive");
    return 0;
}

/* What the runtime's models are doing, for the sampler (heartbeats and
 * /metrics). */
static size_t runtime_activity(void *arg, metrics_model_activity *out, size_t max)
{
    runtime_status st;
    if (runtime_get_status(arg, &st, NULL) != 0)
        return 0;
    size_t n = st.n_models < max ? st.n_models : max;
    for (size_t i = 0; i < n; i++) {
        snprintf(out[i].model, sizeof out[i].model, "%s", st.models[i].name);
        snprintf(out[i].engine, sizeof out[i].engine, "mlx");
        out[i].tokens_per_s = st.models[i].tokens_per_s;
        out[i].memory_bytes = st.models[i].memory_bytes;
        out[i].running = st.models[i].running;
        out[i].queued = st.models[i].queued;
    }
    runtime_status_free(&st);
    return n;
}

static int start_runtime(const struct serve_opts *o, metrics_inference *inference,
                         runtime **out, mlx_err *err)
{
    runtime_config rc = {
        .data_dir = o->data,
        .parallel = (int)o->parallel,
        .queue_limit = (int)o->queue,
        .max_loaded = (int)o->max_loaded,
        .threads = (int)o->threads,
        .n_ctx = (uint32_t)o->ctx,
        .store_only = true,
        .observe_token = metrics_inference_observe_token,
        .observer = inference,
    };
    int rc_ = parse_budget(o->memory_budget, &rc.memory_budget, err);
    if (rc_ == 0)
        rc_ = parse_keep_alive(o->keep_alive, &rc.keep_alive_ms, err);
    if (rc_ == 0)
        rc_ = runtime_start(&rc, out, err);
    return rc_;
}

/* Empty advertise or a non-empty valid address; checked here because an
 * empty value is allowed. */
static int check_addresses(const struct serve_opts *o, mlx_err *err)
{
    if (o->coordinator[0] != '\0' && mlx_check_nng_url(o->coordinator, err) != 0)
        return mlx_err_prefix(err, MLX_ECONFIG, "--coordinator");
    if (o->advertise[0] != '\0' && mlx_check_nng_url(o->advertise, err) != 0)
        return mlx_err_prefix(err, MLX_ECONFIG, "--advertise");
    if (o->ollama[0] != '\0' && mlx_check_http_url(o->ollama, err) != 0)
        return mlx_err_prefix(err, MLX_ECONFIG, "--ollama");
    return 0;
}

static int serve(const mlx_program *prog, const mlx_cmd *cmd, int argc, char **argv)
{
    struct serve_opts o = {0};
    mlx_args args = {0};
    mlx_err err;
    mlx_err_clear(&err);
    int lock_fd = -1;
    agent_http *http = NULL;
    uplink *link = NULL;
    dataplane *dp = NULL;
    runtime *rt = NULL;
    metrics_inference *inference = NULL;
    metrics_sampler *sampler = NULL;
    char node_id[MLX_NODE_ID_LEN + 1];
    char hostname[MLX_MAX_NODE_NAME + 1] = "";

    int rc = mlx_cli_load(prog, cmd, argc, argv, &o, &args);
    if (rc != 0 || args.help)
        goto out;
    if ((rc = check_addresses(&o, &err)) != 0)
        goto fail;
    mlx_log_level level;
    mlx_log_parse_level(o.log_level, &level, NULL);
    mlx_log_set_level(level);

    if ((rc = mlx_path_mkdirs(o.data, 0700, &err)) != 0 ||
        (rc = mlx_path_lock(o.data, "agent.lock", "mlx-agent", &lock_fd, &err)) != 0 ||
        (rc = identity_load_or_create(o.data, node_id, &err)) != 0)
        goto fail;
    if (o.name[0] == '\0') {
        gethostname(hostname, sizeof hostname - 1);
    } else if (strlen(o.name) > MLX_MAX_NODE_NAME) {
        rc = mlx_err_set(&err, MLX_ECONFIG, "--name: '%s' is longer than %d characters",
                         o.name, MLX_MAX_NODE_NAME);
        goto fail;
    } else {
        memcpy(hostname, o.name, strlen(o.name) + 1);
    }

    if ((rc = metrics_inference_new(&inference, &err)) != 0 ||
        (rc = start_runtime(&o, inference, &rt, &err)) != 0)
        goto fail;
    metrics_sampler_config mc = {
        .data_dir = o.data,
        .interval_ms = 1000,
        .ollama_url = o.ollama,
        .activity = runtime_activity,
        .activity_arg = rt,
        .record = true,
    };
    if ((rc = metrics_sampler_start(&mc, &sampler, &err)) != 0)
        goto fail;
    agent_http_config hc = {
        .hostport = o.http,
        .data_dir = o.data,
        .node_id = node_id,
        .node_name = hostname,
        .sampler = sampler,
        .max_body = (size_t)o.max_body,
        .rt = rt,
        .inference = inference,
    };
    if ((rc = agent_http_start(&hc, &http, &err)) != 0)
        goto fail;
    /* Listening before registering: the coordinator may dial at once. */
    dataplane_config dc = {
        .listen = o.listen, .rt = rt, .node_id = node_id, .inference = inference};
    if ((rc = dataplane_start(&dc, &dp, &err)) != 0)
        goto fail;
    if (o.coordinator[0] != '\0') {
        uplink_config uc = {
            .coordinator = o.coordinator,
            .node_id = node_id,
            .name = hostname,
            .listen = o.listen,
            .advertise = o.advertise,
            .http = o.http,
            .data_dir = o.data,
            .heartbeat_ms = (int)o.heartbeat_ms,
            .sampler = sampler,
        };
        if ((rc = uplink_start(&uc, &link, &err)) != 0)
            goto fail;
    }
    mlx_log_info(MOD, "agent started",
                 "node=%s name=%s data=%s http=%s listen=%s coordinator=%s", node_id,
                 hostname, o.data, o.http, o.listen,
                 o.coordinator[0] ? o.coordinator : "none (standalone)");

    int sig = mlx_cli_wait_signal();
    mlx_log_info(MOD, "stopping", "signal=%s", sig == SIGINT ? "SIGINT" : "SIGTERM");
    rc = 0;
    goto out;
fail:
    mlx_cli_fail(prog, rc, &err);
out:
    uplink_stop(link, "agent stopping");
    dataplane_stop(dp); /* before the runtime its generations run on */
    agent_http_stop(http);
    metrics_sampler_stop(sampler);
    runtime_stop(rt);
    metrics_inference_free(inference);
    if (lock_fd >= 0)
        close(lock_fd);
    mlx_config_free(cmd, &o);
    mlx_config_free_args(&args);
    return rc;
}

const mlx_cmd agent_cmd_serve = {
    .name = "serve",
    .summary = "run the agent daemon: serve models over the OpenAI and Ollama APIs, join the fleet",
    .about =
        "Serves the models of the store on --http with the OpenAI API (/v1/models,\n"
        "/v1/chat/completions, /v1/completions) and Ollama's (/api/generate, /api/chat,\n"
        "/api/tags, /api/ps, /api/show), with /metrics for Prometheus. A model loads on\n"
        "its first request and stays --keep-alive after its last, within --memory-budget\n"
        "and --max-loaded; each decodes --parallel requests together and queues --queue\n"
        "more. With --coordinator, also registers with the fleet and heartbeats every\n"
        "--heartbeat-ms with the machine's figures and what its models do. Keeps its\n"
        "node id in the data directory, so a restarted agent is the same node. Stops\n"
        "cleanly (deregistering) on SIGINT or SIGTERM.",
    .opts = serve_opts,
    .run = serve,
    .daemon = true,
};
