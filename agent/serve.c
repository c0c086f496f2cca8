/* serve.c — `mlx-agent serve`: the daemon. */
#include <stddef.h>
#include <signal.h>
#include <string.h>
#include <unistd.h>

#include "agent/agent.h"
#include "agent/http/http.h"
#include "agent/metrics/metrics.h"
#include "agent/uplink/uplink.h"
#include "common/alloc.h"
#include "common/cli.h"
#include "common/log.h"
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
    {NULL},
};

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

    metrics_sampler_config mc = {
        .data_dir = o.data,
        .interval_ms = 1000,
        .ollama_url = o.ollama,
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
        .max_body = MLX_MAX_HTTP_BODY,
    };
    if ((rc = agent_http_start(&hc, &http, &err)) != 0)
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
    mlx_log_info(MOD, "agent started", "node=%s name=%s data=%s http=%s coordinator=%s",
                 node_id, hostname, o.data, o.http,
                 o.coordinator[0] ? o.coordinator : "none (standalone)");

    int sig = mlx_cli_wait_signal();
    mlx_log_info(MOD, "stopping", "signal=%s", sig == SIGINT ? "SIGINT" : "SIGTERM");
    rc = 0;
    goto out;
fail:
    mlx_cli_fail(prog, rc, &err);
out:
    uplink_stop(link, "agent stopping");
    agent_http_stop(http);
    metrics_sampler_stop(sampler);
    if (lock_fd >= 0)
        close(lock_fd);
    mlx_config_free(cmd, &o);
    mlx_config_free_args(&args);
    return rc;
}

const mlx_cmd agent_cmd_serve = {
    .name = "serve",
    .summary = "run the agent daemon: join the fleet and serve the local API",
    .about =
        "Registers with the coordinator given by --coordinator and heartbeats every\n"
        "--heartbeat-ms with CPU, memory, load and disk figures. Keeps its node id in\n"
        "the data directory, so a restarted agent is the same node. Stops cleanly\n"
        "(deregistering) on SIGINT or SIGTERM.",
    .opts = serve_opts,
    .run = serve,
    .daemon = true,
};
