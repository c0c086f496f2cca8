/*
 * history_cmd.c — `mlx-agent history`: benchmark runs and the machine's
 * figures over a past window, from metrics.db.
 */
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "agent/metrics/metrics.h"
#include "common/alloc.h"
#include "common/cli.h"
#include "common/clock.h"
#include "common/json.h"
#include "common/parse.h"

struct history_opts {
    char *data;
    char *since;
    bool json;
};

static const mlx_opt history_opts[] = {
    {"data", 0, MLX_OPT_PATH, offsetof(struct history_opts, data), "~/.mlxfleet", "DIR",
     "data directory (node id, model store, history)"},
    {"since", 0, MLX_OPT_STR, offsetof(struct history_opts, since), "24h", "DURATION",
     "how far back: 90m, 24h, 7d"},
    {"json", 0, MLX_OPT_BOOL, offsetof(struct history_opts, json), "false", NULL,
     "print one JSON object"},
    {NULL},
};

/* The finest resolution that still covers the window. */
static metrics_resolution resolution_for(int64_t window_ms)
{
    if (window_ms <= 3600 * 1000LL)
        return METRICS_RES_1S;
    if (window_ms <= 7 * 24 * 3600 * 1000LL)
        return METRICS_RES_1M;
    return METRICS_RES_1H;
}

struct summary {
    size_t points;
    double cpu_avg, cpu_max, mem_avg, mem_max, tokens_avg;
};

static struct summary summarize(const metrics_point *p, size_t n)
{
    struct summary s = {.points = n};
    for (size_t i = 0; i < n; i++) {
        double mem = (double)p[i].sample.memory_used_bytes;
        s.cpu_avg += p[i].sample.cpu_percent / (double)n;
        s.mem_avg += mem / (double)n;
        s.tokens_avg += p[i].tokens_per_s / (double)n;
        if (p[i].sample.cpu_percent > s.cpu_max)
            s.cpu_max = p[i].sample.cpu_percent;
        if (mem > s.mem_max)
            s.mem_max = mem;
    }
    return s;
}

static int print_json(const char *since, const struct summary *s,
                      const metrics_bench_run *b, size_t nb, mlx_err *err)
{
    json_t *runs = json_array();
    for (size_t i = 0; i < nb; i++)
        json_array_append_new(
            runs, json_pack("{s:I, s:s, s:i, s:f, s:f, s:f, s:f, s:f}", "unix_ms",
                            (json_int_t)b[i].unix_ms, "model", b[i].model, "prompts",
                            b[i].prompts, "tokens_per_s", b[i].tokens_per_s,
                            "ttft_p50_ms", b[i].ttft_p50_ms, "latency_p50_ms",
                            b[i].latency_ms[0], "latency_p95_ms", b[i].latency_ms[1],
                            "latency_p99_ms", b[i].latency_ms[2]));
    json_t *v = json_pack(
        "{s:s, s:{s:I, s:f, s:f, s:f, s:f, s:f}, s:o}", "since", since, "system",
        "points", (json_int_t)s->points, "cpu_percent_avg", s->cpu_avg, "cpu_percent_max",
        s->cpu_max, "memory_used_bytes_avg", s->mem_avg, "memory_used_bytes_max",
        s->mem_max, "tokens_per_s_avg", s->tokens_avg, "bench_runs", runs);
    return mlx_json_print(v, err);
}

/* A duration as a person reads it: fast synthetic models take well under a
 * millisecond, real ones seconds. */
static void format_ms(double ms, char *out, size_t size)
{
    if (ms >= 10000)
        snprintf(out, size, "%.1f s", ms / 1000);
    else
        snprintf(out, size, "%.*f ms", ms < 10 ? 2 : ms < 100 ? 1 : 0, ms);
}

/* Wide enough for every model name: a GGUF path is a name too, and a cut
 * one could be another model's. */
static int model_width(const metrics_bench_run *b, size_t nb)
{
    size_t w = strlen("MODEL");
    for (size_t i = 0; i < nb; i++)
        if (strlen(b[i].model) > w)
            w = strlen(b[i].model);
    return (int)w;
}

static void print_system(const char *since, const struct summary *s)
{
    if (s->points == 0) {
        printf("Last %s: no samples of the machine ('mlx-agent serve' records one every "
               "second).\n",
               since);
        return;
    }
    printf("Last %s: %zu samples, CPU %.0f%% average (%.0f%% peak), memory %.1f GiB "
           "average (%.1f GiB peak), %.1f tokens/s average\n",
           since, s->points, s->cpu_avg, s->cpu_max, s->mem_avg / (1 << 30),
           s->mem_max / (1 << 30), s->tokens_avg);
}

static void print_table(const char *since, const struct summary *s,
                        const metrics_bench_run *b, size_t nb)
{
    print_system(since, s);
    if (nb == 0) {
        printf("No benchmark runs; run 'mlx-agent bench MODEL --suite' to record one.\n");
        return;
    }
    int mw = model_width(b, nb);
    printf("\n%-20s  %-*s  %7s  %9s  %9s  %11s  %9s  %9s\n", "WHEN (UTC)", mw, "MODEL",
           "PROMPTS", "TOKENS/S", "TTFT p50", "LATENCY p50", "p95", "p99");
    for (size_t i = 0; i < nb; i++) {
        char when[40], ttft[32], lat[3][32];
        mlx_time_format_rfc3339(b[i].unix_ms, when, sizeof when);
        when[10] = ' ';
        when[19] = '\0'; /* to the second */
        format_ms(b[i].ttft_p50_ms, ttft, sizeof ttft);
        for (int k = 0; k < 3; k++)
            format_ms(b[i].latency_ms[k], lat[k], sizeof lat[k]);
        printf("%-20s  %-*s  %7d  %9.1f  %9s  %11s  %9s  %9s\n", when, mw, b[i].model,
               b[i].prompts, b[i].tokens_per_s, ttft, lat[0], lat[1], lat[2]);
    }
}

/* Reading must not create what it reads: a mistyped --data would
 * otherwise show an empty history instead of the mistake. */
static int check_data_dir(const char *dir, mlx_err *err)
{
    struct stat st;
    if (stat(dir, &st) == 0 && S_ISDIR(st.st_mode))
        return 0;
    return mlx_err_set(err, MLX_ENOENT,
                       "there is no data directory %s, so it has no history; give --data "
                       "the directory the agent and 'bench --suite' use",
                       dir);
}

static int history(const mlx_program *prog, const mlx_cmd *cmd, int argc, char **argv)
{
    struct history_opts o = {0};
    mlx_args args = {0};
    mlx_err err;
    mlx_err_clear(&err);
    metrics_history *h = NULL;
    metrics_point *points = NULL;
    metrics_bench_run *runs = NULL;
    size_t n_points = 0, n_runs = 0;
    int64_t window;

    int rc = mlx_cli_load(prog, cmd, argc, argv, &o, &args);
    if (rc != 0 || args.help)
        goto out;
    if ((rc = mlx_parse_duration_ms(o.since, &window, &err)) != 0) {
        rc = mlx_err_prefix(&err, MLX_EUSAGE, "--since");
        goto fail;
    }
    int64_t since_ms = mlx_time_wall_ms() - window;
    if ((rc = check_data_dir(o.data, &err)) != 0 ||
        (rc = metrics_history_open(o.data, &h, &err)) != 0 ||
        (rc = metrics_history_query(h, resolution_for(window), since_ms, &points,
                                    &n_points, &err)) != 0 ||
        (rc = metrics_history_benches(h, since_ms, &runs, &n_runs, &err)) != 0)
        goto fail;
    struct summary s = summarize(points, n_points);
    if (o.json)
        rc = print_json(o.since, &s, runs, n_runs, &err);
    else
        print_table(o.since, &s, runs, n_runs);
    if (rc == 0)
        goto out;
fail:
    mlx_cli_fail(prog, rc, &err);
out:
    mlx_free(points);
    mlx_free(runs);
    metrics_history_close(h);
    mlx_config_free(cmd, &o);
    mlx_config_free_args(&args);
    return rc;
}

const mlx_cmd metrics_cmd_history = {
    .name = "history",
    .summary = "show benchmark runs and the machine's load over a past window",
    .about =
        "Reads the agent's metrics history (DIR/metrics.db, written by 'serve' every\n"
        "second and kept at coarser resolution for up to 90 days) and prints the\n"
        "machine's average and peak load and every benchmark run since --since.",
    .opts = history_opts,
    .run = history,
};
