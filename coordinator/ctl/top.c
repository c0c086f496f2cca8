/*
 * top.c — `mlxctl top`: the fleet's nodes live, refreshed every interval.
 *
 * Each refresh reads /api/v1/nodes (state, the latest metrics sample, the
 * request load) and /api/v1/ps (the loaded models and their speed) and
 * joins them by node id. On a terminal the screen is redrawn in place under
 * a header line, with the cursor hidden until mlxctl leaves; otherwise each
 * refresh prints its header and table after a blank line. --json prints
 * one object per refresh, one per line: {"unix_ms", "nodes": [each node of
 * /api/v1/nodes with "models" from /api/v1/ps and their "tokens_per_s"]}.
 *
 * SIGINT and SIGTERM end it cleanly, with exit status 0. The handler only
 * writes a byte to a pipe that the wait between refreshes watches, so a
 * signal is never lost between a check and the wait. A second signal while
 * a request hangs leaves at once (status 128 + the signal), showing the
 * cursor again first.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "common/buf.h"
#include "common/cli.h"
#include "common/clock.h"
#include "common/json.h"
#include "coordinator/ctl/ctl.h"

#define HIDE_CURSOR "\033[?25l"
#define SHOW_CURSOR "\033[?25h"
#define HOME_CLEAR  "\033[H\033[2J"

struct top_opts {
    ctl_opts common;
    int64_t interval_ms;
    int64_t iterations;
};

static const mlx_opt top_opts[] = {
    CTL_COMMON_OPTS(struct top_opts),
    {"interval-ms", 0, MLX_OPT_INT, offsetof(struct top_opts, interval_ms), "1000", "N",
     "milliseconds between refreshes", 100, 24 * 3600 * 1000},
    {"iterations", 0, MLX_OPT_INT, offsetof(struct top_opts, iterations), "0", "N",
     "refreshes before leaving; 0 runs until Ctrl-C", 0, 1000000000, .cli_only = true},
    {NULL},
};

/* ---- signals ----------------------------------------------------------------- */

/* Shared with the signal handler, which may run at any point of main's. */
static int wake_fd[2] = {-1, -1};
static volatile sig_atomic_t signals;
static volatile sig_atomic_t cursor_hidden;

static void on_signal(int sig)
{
    int saved = errno;
    if (signals++ > 0) {
        if (cursor_hidden) {
            ssize_t w = write(STDOUT_FILENO, SHOW_CURSOR, sizeof SHOW_CURSOR - 1);
            (void)w;
        }
        _exit(128 + sig);
    }
    ssize_t w = write(wake_fd[1], "x", 1);
    (void)w;
    errno = saved;
}

static int catch_signals(void)
{
    if (pipe(wake_fd) != 0 || fcntl(wake_fd[1], F_SETFL, O_NONBLOCK) != 0) {
        fprintf(stderr, "mlxctl: cannot make a pipe: %s\n", strerror(errno));
        return MLX_EIO;
    }
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    sigaddset(&sa.sa_mask, SIGINT); /* one handler at a time */
    sigaddset(&sa.sa_mask, SIGTERM);
    sa.sa_flags = SA_RESTART;
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    return 0;
}

static void release_signals(void)
{
    signal(SIGINT, SIG_DFL);
    signal(SIGTERM, SIG_DFL);
    for (int i = 0; i < 2; i++) {
        if (wake_fd[i] >= 0)
            close(wake_fd[i]);
        wake_fd[i] = -1;
    }
}

/* Waits until the monotonic clock reaches deadline_ms; false when a signal
 * came first. */
static bool wait_until(int64_t deadline_ms)
{
    for (;;) {
        int64_t left = deadline_ms - mlx_time_mono_ms();
        if (signals)
            return false;
        if (left <= 0)
            return true;
        struct pollfd p = {.fd = wake_fd[0], .events = POLLIN};
        int r = poll(&p, 1, left > 60000 ? 60000 : (int)left);
        if (r > 0)
            return false;
        if (r < 0 && errno != EINTR)
            return true; /* cannot wait for signals: at least keep the pace */
    }
}

/* ---- one refresh ---------------------------------------------------------------- */

/* GETs path into *doc (caller decrefs) and points *nodes at its "nodes"
 * array; 0, or the code after one sentence. */
static int nodes_of(const ctl_opts *o, const char *path, json_t **doc,
                    const json_t **nodes)
{
    int rc = ctl_get(o, path, doc, NULL);
    if (rc != 0)
        return rc;
    *nodes = json_object_get(*doc, "nodes");
    if (!json_is_array(*nodes)) {
        fprintf(stderr,
                "mlxctl: the coordinator's answer to %s has no 'nodes' array; are mlxctl "
                "and mlx-coordinator the same release?\n",
                path);
        return MLX_EPROTO;
    }
    return 0;
}

/* The models a /api/v1/ps node list gives for id; NULL when none. */
static json_t *models_of(const json_t *ps, const char *id)
{
    size_t i;
    const json_t *n;
    json_array_foreach(ps, i, n)
    {
        if (strcmp(ctl_json_str(n, "id"), id) == 0)
            return json_object_get(n, "models");
    }
    return NULL;
}

/* {"unix_ms", "nodes": [node + models + tokens_per_s]}, or NULL when out of
 * memory. (jansson's _new setters take the value even when they fail.) */
static json_t *merge(const json_t *nodes, const json_t *ps)
{
    json_t *out = json_array();
    size_t i, k;
    const json_t *n, *m;
    json_array_foreach(nodes, i, n)
    {
        json_t *models = models_of(ps, ctl_json_str(n, "id"));
        double speed = 0;
        json_array_foreach(models, k, m)
        {
            speed += json_number_value(json_object_get(m, "tokens_per_s"));
        }
        json_t *node = json_copy((json_t *)n);
        int rc = node != NULL ? 0 : -1;
        rc |= json_object_set_new(node, "models",
                                  models != NULL ? json_incref(models) : json_array());
        rc |= json_object_set_new(node, "tokens_per_s", json_real(speed));
        if (json_array_append_new(out, node) != 0 || rc != 0) {
            json_decref(out);
            return NULL;
        }
    }
    return json_pack("{s:I, s:o}", "unix_ms", (json_int_t)mlx_time_wall_ms(), "nodes",
                     out);
}

static bool is_live(const char *state)
{
    return strcmp(state, "up") == 0 || strcmp(state, "suspect") == 0;
}

static void print_header(const ctl_opts *o, const json_t *nodes)
{
    size_t i, up = 0;
    const json_t *n;
    double speed = 0;
    json_array_foreach(nodes, i, n)
    {
        up += strcmp(ctl_json_str(n, "state"), "up") == 0;
        speed += json_number_value(json_object_get(n, "tokens_per_s"));
    }
    char clock[16];
    time_t now = time(NULL);
    struct tm tm;
    localtime_r(&now, &tm);
    strftime(clock, sizeof clock, "%H:%M:%S", &tm);
    printf("mlxctl top  %s  %s  nodes: %zu (%zu up)  fleet: %.1f tok/s\n\n", clock,
           o->coordinator, json_array_size(nodes), up, speed);
}

static void print_table(const json_t *nodes)
{
    static const char *const headers[] = {"NODE",  "STATE",   "CPU%",   "MEMORY",
                                          "TOK/S", "RUNNING", "QUEUED", "MODELS"};
    ctl_table *t = ctl_table_new(headers, sizeof headers / sizeof headers[0]);
    size_t i, k;
    const json_t *n, *m;
    json_array_foreach(nodes, i, n)
    {
        const char *state = ctl_json_str(n, "state");
        const json_t *metrics = json_object_get(n, "metrics");
        const json_t *load = json_object_get(n, "load");
        ctl_table_cell(t, CTL_PLAIN, "%s", ctl_json_str(n, "name"));
        ctl_table_cell(t, ctl_state_color(state), "%s", state[0] ? state : "?");
        /* A silent node's last figures are history, not its present. */
        if (!is_live(state) || !json_is_object(metrics)) {
            for (int c = 0; c < 6; c++)
                ctl_table_cell(t, CTL_DIM, "-");
            continue;
        }
        char used[16], total[16];
        ctl_format_bytes(ctl_json_u64(metrics, "memory_used_bytes"), used, sizeof used);
        ctl_format_bytes(ctl_json_u64(metrics, "memory_total_bytes"), total,
                         sizeof total);
        ctl_table_cell(t, CTL_PLAIN, "%.0f",
                       json_number_value(json_object_get(metrics, "cpu_percent")));
        ctl_table_cell(t, CTL_PLAIN, "%s / %s", used, total);
        ctl_table_cell(t, CTL_PLAIN, "%.1f",
                       json_number_value(json_object_get(n, "tokens_per_s")));
        ctl_table_cell(t, CTL_PLAIN, "%llu",
                       (unsigned long long)ctl_json_u64(load, "requests_running"));
        uint64_t queued = ctl_json_u64(load, "requests_queued");
        ctl_table_cell(t, queued > 0 ? CTL_YELLOW : CTL_PLAIN, "%llu",
                       (unsigned long long)queued);
        mlx_buf names;
        mlx_buf_init(&names, 1 << 16);
        json_array_foreach(json_object_get(n, "models"), k, m)
        {
            mlx_buf_printf(&names, "%s%s", k ? ", " : "", ctl_json_str(m, "name"));
        }
        ctl_table_cell(t, names.len ? CTL_GREEN : CTL_DIM, "%s",
                       names.len ? mlx_buf_str(&names) : "-");
        mlx_buf_fini(&names);
    }
    ctl_table_print(t);
    ctl_table_free(t);
}

/* Fetches, joins and prints one refresh; the first is index 0. */
static int refresh(const struct top_opts *o, int64_t index, bool screen)
{
    json_t *nodes_doc = NULL, *ps_doc = NULL, *view = NULL;
    const json_t *nodes = NULL, *ps = NULL;
    int rc = nodes_of(&o->common, "/api/v1/nodes", &nodes_doc, &nodes);
    if (rc == 0)
        rc = nodes_of(&o->common, "/api/v1/ps", &ps_doc, &ps);
    if (rc != 0)
        goto out;
    if ((view = merge(nodes, ps)) == NULL) {
        fprintf(stderr, "mlxctl: out of memory\n");
        rc = MLX_ENOMEM;
        goto out;
    }
    const json_t *merged = json_object_get(view, "nodes");
    if (o->common.json) {
        mlx_json_print(json_incref(view), NULL);
    } else {
        printf("%s", screen ? HOME_CLEAR : index > 0 ? "\n" : "");
        print_header(&o->common, merged);
        if (json_array_size(merged) == 0)
            printf("No nodes have registered yet. Start an agent with "
                   "'mlx-agent serve --coordinator tcp://HOST:7400'.\n");
        else
            print_table(merged);
    }
    if (fflush(stdout) != 0) {
        fprintf(stderr, "mlxctl: cannot write to stdout: %s\n", strerror(errno));
        rc = MLX_EIO;
    }
out:
    json_decref(nodes_doc);
    json_decref(ps_doc);
    json_decref(view);
    return rc;
}

static int top(const mlx_program *prog, const mlx_cmd *cmd, int argc, char **argv)
{
    struct top_opts o = {0};
    mlx_args args = {0};
    int rc = mlx_cli_load(prog, cmd, argc, argv, &o, &args);
    if (rc != 0 || args.help)
        goto out;
    bool screen = !o.common.json && isatty(STDOUT_FILENO);
    if ((rc = catch_signals()) != 0)
        goto out;
    if (screen) {
        /* One write per frame, so the redraw does not flicker. */
        setvbuf(stdout, NULL, _IOFBF, 1 << 16);
        printf(HIDE_CURSOR);
        cursor_hidden = 1;
    }
    int64_t next = 0;
    for (int64_t i = 0; o.iterations == 0 || i < o.iterations; i++) {
        if (i > 0 && !wait_until(next))
            break;
        /* A slow refresh delays the next one rather than bunching them. */
        next = mlx_time_mono_ms() + o.interval_ms;
        if ((rc = refresh(&o, i, screen)) != 0)
            break;
    }
    if (screen) {
        printf(SHOW_CURSOR);
        fflush(stdout);
        cursor_hidden = 0;
    }
    release_signals();
out:
    mlx_config_free(cmd, &o);
    mlx_config_free_args(&args);
    return rc;
}

const mlx_cmd ctl_cmd_top = {
    .name = "top",
    .summary = "watch the nodes live: CPU, memory, speed, requests, loaded models",
    .about = "Refreshes every --interval-ms until Ctrl-C (or --iterations refreshes).\n"
             "TOK/S is what the node's loaded models generated over its last sample\n"
             "interval; RUNNING and QUEUED are its requests now. On a terminal the\n"
             "view is redrawn in place; piped, each refresh follows a blank line.",
    .opts = top_opts,
    .run = top,
};
