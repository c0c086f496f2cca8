/* main.c — mlx-coordinator: runs the fleet. */
#include <stddef.h>
#include <signal.h>
#include <unistd.h>

#include "common/alloc.h"
#include "common/clock.h"
#include "common/cli.h"
#include "common/log.h"
#include "common/path.h"
#include "coordinator/auth/auth.h"
#include "coordinator/control/control.h"
#include "coordinator/dataplane/dataplane_client.h"
#include "coordinator/http/admin.h"
#include "coordinator/registry/registry.h"
#include "coordinator/relay/relay.h"
#include "coordinator/router/router.h"
#include "coordinator/stats/stats.h"

#define MOD "coordinator"

struct serve_opts {
    char *data;
    char *control;
    char *http;
    int64_t heartbeat_ms;
    int64_t suspect_after;
    int64_t down_after;
    int64_t max_requests;
    int64_t request_log_days;
    char *log_level;
};

static const mlx_opt serve_opts[] = {
    {"data", 0, MLX_OPT_PATH, offsetof(struct serve_opts, data),
     "~/.mlxfleet-coordinator", "DIR", "data directory (registry and key databases)"},
    {"control", 0, MLX_OPT_STR, offsetof(struct serve_opts, control),
     "tcp://0.0.0.0:7400", "URL", "control-plane address agents dial",
     .check = mlx_check_nng_url},
    {"http", 0, MLX_OPT_STR, offsetof(struct serve_opts, http), "127.0.0.1:7480",
     "HOST:PORT", "HTTP address of the API and admin endpoints",
     .check = mlx_check_hostport},
    {"heartbeat-ms", 0, MLX_OPT_INT, offsetof(struct serve_opts, heartbeat_ms), "1000",
     "N", "heartbeat interval assumed for agents that declare none", 10, 600000},
    {"suspect-after", 0, MLX_OPT_INT, offsetof(struct serve_opts, suspect_after), "3",
     "N", "missed heartbeats before a node is suspect", 1, 1000},
    {"down-after", 0, MLX_OPT_INT, offsetof(struct serve_opts, down_after), "10", "N",
     "missed heartbeats before a node is down", 2, 100000},
    {"max-requests", 0, MLX_OPT_INT, offsetof(struct serve_opts, max_requests), "256",
     "N", "generations relayed at once; more are answered 503 with Retry-After", 1,
     100000},
    {"request-log-days", 0, MLX_OPT_INT, offsetof(struct serve_opts, request_log_days),
     "30", "N", "days the request log keeps each request; 0 keeps them all", 0, 36500},
    {"log-level", 0, MLX_OPT_STR, offsetof(struct serve_opts, log_level), "info", "LEVEL",
     "debug, info, warn or error", .check = mlx_check_log_level},
    {NULL},
};

static int count_active(void *arg, const auth_key_info *key)
{
    if (key->revoked_unix_ms == 0)
        ++*(int *)arg;
    return 0;
}

/* Opens <data>/auth.db (its own file: auth.h says why) and says so when the
 * coordinator is in bootstrap mode, which an operator must not miss. */
static int open_auth(const char *data, auth **out, mlx_err *err)
{
    char *path = mlx_path_join(data, "auth.db");
    if (path == NULL)
        return mlx_err_set(err, MLX_ENOMEM, "out of memory");
    int active = 0;
    int rc = auth_open(path, out, err);
    mlx_free(path);
    if (rc == 0)
        rc = auth_key_list(*out, count_active, &active, err);
    if (rc == 0 && active == 0)
        mlx_log_warn(MOD,
                     "no API key exists, so only loopback clients are accepted until one "
                     "is created with 'mlxctl keys create --name NAME --scope admin'",
                     NULL);
    return rc;
}

/* What the relay's helpers learn from the control plane (control_hooks). */
struct fleet_links {
    dpc_pool *pool;
    router_health *health;
};

static void heard_from(void *arg, const char *node_id)
{
    struct fleet_links *l = arg;
    router_note_heartbeat(l->health, node_id, true);
}

/* A node that is down or left: its connection is closed and its breaker
 * history dropped, so it starts afresh when it comes back. */
static void node_gone(void *arg, const char *node_id, node_state state)
{
    struct fleet_links *l = arg;
    dpc_forget(l->pool, node_id);
    router_health_forget(l->health, node_id);
}

static int serve(const mlx_program *prog, const mlx_cmd *cmd, int argc, char **argv)
{
    struct serve_opts o = {0};
    mlx_args args = {0};
    mlx_err err;
    mlx_err_clear(&err);
    int lock_fd = -1;
    char *db_path = NULL;
    registry *reg = NULL;
    auth *keys = NULL;
    admin_ctx actx = {0}; /* borrowed by the HTTP server until admin_stop */
    control *ctl = NULL;
    mlx_http_server *http = NULL;
    struct fleet_links links = {0};
    relay *rl = NULL;
    fleet_stats *stats = NULL;

    int rc = mlx_cli_load(prog, cmd, argc, argv, &o, &args);
    if (rc != 0 || args.help)
        goto out;
    mlx_log_level level;
    mlx_log_parse_level(o.log_level, &level, NULL);
    mlx_log_set_level(level);

    control_config cc = {
        .url = o.control,
        .policy = {.default_interval_ms = o.heartbeat_ms,
                   .suspect_after = o.suspect_after,
                   .down_after = o.down_after},
    };
    if ((rc = membership_check_policy(&cc.policy, &err)) != 0)
        goto fail;
    if ((rc = mlx_path_mkdirs(o.data, 0700, &err)) != 0 ||
        (rc = mlx_path_lock(o.data, "coordinator.lock", "mlx-coordinator", &lock_fd,
                            &err)))
        goto fail;
    if ((db_path = mlx_path_join(o.data, "coordinator.db")) == NULL) {
        rc = mlx_err_set(&err, MLX_ENOMEM, "out of memory");
        goto fail;
    }
    if ((rc = registry_open(db_path, &reg, &err)) != 0 ||
        (rc = open_auth(o.data, &keys, &err)) != 0)
        goto fail;
    auth_log_set_retention(keys, o.request_log_days * 24 * 3600 * 1000);
    if ((rc = dpc_open(NULL, &links.pool, &err)) != 0 ||
        (rc = router_health_create(&links.health, &err)) != 0)
        goto fail;
    relay_config rc_cfg = {.reg = reg, .pool = links.pool, .health = links.health};
    if ((rc = relay_create(&rc_cfg, &rl, &err)) != 0 ||
        (rc = stats_create(&stats, &err)) != 0)
        goto fail;
    cc.hooks = (control_hooks){
        .on_heartbeat = heard_from, .on_node_gone = node_gone, .arg = &links};
    actx.reg = reg;
    actx.auth = keys;
    actx.relay = rl;
    actx.stats = stats;
    actx.max_requests = (uint32_t)o.max_requests;
    if ((rc = control_start(&cc, reg, &ctl, &err)) != 0 ||
        (rc = admin_start(o.http, &actx, &http, &err)) != 0)
        goto fail;
    mlx_log_info(MOD, "coordinator started",
                 "data=%s control=%s http=%s suspect_after=%lld down_after=%lld "
                 "max_requests=%lld",
                 o.data, o.control, o.http, (long long)o.suspect_after,
                 (long long)o.down_after, (long long)o.max_requests);

    int sig = mlx_cli_wait_signal();
    mlx_log_info(MOD, "stopping", "signal=%s", sig == SIGINT ? "SIGINT" : "SIGTERM");
    goto out;
fail:
    mlx_cli_fail(prog, rc, &err);
out:
    /* The HTTP front first (its requests use the relay), then the control
     * plane (its hooks use the pool and the breaker). */
    admin_stop(http);
    control_stop(ctl);
    relay_destroy(rl);
    stats_destroy(stats);
    router_health_destroy(links.health);
    dpc_close(links.pool);
    auth_close(keys);
    registry_close(reg);
    mlx_free(db_path);
    if (lock_fd >= 0)
        close(lock_fd);
    mlx_config_free(cmd, &o);
    mlx_config_free_args(&args);
    return rc;
}

static const mlx_cmd serve_cmd = {
    .name = "serve",
    .summary = "run the coordinator: registry, membership, inference and admin API",
    .about =
        "Agents dial --control to register and heartbeat. A node silent for more than\n"
        "--suspect-after of its heartbeat intervals is suspect, after --down-after it\n"
        "is down. The registry lives in the data directory and survives restarts.\n"
        "--http serves the OpenAI and Ollama APIs, each generation relayed to a node\n"
        "that holds its model, and the admin API.",
    .opts = serve_opts,
    .run = serve,
    .daemon = true,
};

static const mlx_cmd *const commands[] = {&serve_cmd, NULL};

static const mlx_program program = {
    .name = "mlx-coordinator",
    .section = "coordinator",
    .summary = "runs the fleet",
    .cmds = commands,
};

int main(int argc, char **argv)
{
    return mlx_cli_main(&program, argc, argv);
}
