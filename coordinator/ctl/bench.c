/*
 * bench.c — `mlxctl bench`: the fleet's benchmark suite on every node, one
 * table with a row per node.
 *
 * The coordinator runs the suite (POST /api/v1/bench, common/suite.h); this
 * command decides what runs where, from GET /api/v1/models, and asks for
 * one node at a time, so a terminal sees each node finish:
 *
 *   --model M    M on every up node that holds it
 *   no --model   the fleet's model when it has one; else each up node's
 *                loaded models on that node (what it serves now, without
 *                loading another model over it); else the user is asked
 *                to name one
 *
 * A node that holds the model but is not up is a row with its state, not
 * run. A node whose run failed is a row marked failed, its sentence goes
 * to stderr, and the command exits 1 once the table is printed.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/alloc.h"
#include "common/buf.h"
#include "common/cli.h"
#include "common/json.h"
#include "common/suite.h"
#include "coordinator/ctl/ctl.h"

/* One node's whole suite; the coordinator's relay allows each generation
 * ten minutes, so this only stops a run that hangs. */
#define BENCH_TIMEOUT_MS (30 * 60 * 1000)

struct bench_opts {
    ctl_opts common;
    char *model;
    int64_t max_tokens;
};

static const mlx_opt bench_opts[] = {
    CTL_COMMON_OPTS(struct bench_opts),
    {"model", 0, MLX_OPT_STR, offsetof(struct bench_opts, model), NULL, "MODEL",
     "the model to run (default: the fleet's one model, else what each node has "
     "loaded)",
     .cli_only = true},
    {"max-tokens", 0, MLX_OPT_INT, offsetof(struct bench_opts, max_tokens), "0", "N",
     "most tokens each prompt generates; 0: the suite's 64", 0, MLX_SUITE_MAX_GEN_TOKENS,
     .cli_only = true},
    {NULL},
};

/* A row of the table: a node and a model, borrowed from the models
 * document; result is the API's row once it ran (borrowed from the
 * collected results). */
struct job {
    const char *node_id, *node_name, *model, *state;
    const json_t *result;
};

struct plan {
    struct job *v;
    size_t n, cap;
};

static const char *str(const json_t *obj, const char *key)
{
    const char *s = json_string_value(json_object_get(obj, key));
    return s != NULL ? s : "";
}

static bool is_up(const struct job *j)
{
    return strcmp(j->state, "up") == 0;
}

static int plan_add(struct plan *p, const json_t *model, const json_t *node)
{
    if (p->n == p->cap) {
        size_t cap = p->cap ? 2 * p->cap : 8;
        struct job *v = mlx_realloc(p->v, cap * sizeof *v);
        if (v == NULL) {
            fprintf(stderr, "mlxctl: out of memory\n");
            return MLX_ENOMEM;
        }
        p->v = v;
        p->cap = cap;
    }
    p->v[p->n++] = (struct job){str(node, "id"), str(node, "name"), str(model, "name"),
                                str(node, "state"), NULL};
    return 0;
}

/* Every node that holds model (stored or loaded), whatever its state. */
static int plan_holders(struct plan *p, const json_t *model)
{
    size_t i;
    const json_t *n;
    json_array_foreach(json_object_get(model, "nodes"), i, n)
    {
        bool holds = json_is_true(json_object_get(n, "stored")) ||
                     json_is_true(json_object_get(n, "loaded"));
        int rc = holds ? plan_add(p, model, n) : 0;
        if (rc != 0)
            return rc;
    }
    return 0;
}

/* Each up node with each model it has loaded. */
static int plan_loaded(struct plan *p, const json_t *models)
{
    size_t i, k;
    const json_t *m, *n;
    json_array_foreach(models, i, m)
    {
        json_array_foreach(json_object_get(m, "nodes"), k, n)
        {
            bool serving = json_is_true(json_object_get(n, "loaded")) &&
                           strcmp(str(n, "state"), "up") == 0;
            int rc = serving ? plan_add(p, m, n) : 0;
            if (rc != 0)
                return rc;
        }
    }
    return 0;
}

static int cmp_job(const void *a, const void *b)
{
    const struct job *x = a, *y = b;
    int c = strcmp(x->node_name, y->node_name);
    if (c == 0)
        c = strcmp(x->node_id, y->node_id);
    return c != 0 ? c : strcmp(x->model, y->model);
}

/* Fills p from the fleet's models as the head says; one sentence on
 * stderr when there is nothing to run. */
static int plan_make(const char *want, const json_t *models, struct plan *p)
{
    size_t i, n = json_array_size(models);
    const json_t *m;
    int rc = 0;
    if (want != NULL) {
        const json_t *found = NULL;
        json_array_foreach(models, i, m)
        {
            if (strcmp(str(m, "name"), want) == 0)
                found = m;
        }
        if (found == NULL) {
            fprintf(stderr,
                    "mlxctl: no node of the fleet has model '%s'; 'mlxctl models' lists "
                    "the models it has\n",
                    want);
            return MLX_ENOENT;
        }
        rc = plan_holders(p, found);
    } else if (n == 0) {
        fprintf(stderr, "mlxctl: no node has a model in its store yet; add one on a node "
                        "with 'mlx-agent cache add FILE --name NAME' or 'mlx-agent cache "
                        "pull SOURCE'\n");
        return MLX_ENOENT;
    } else if (n == 1) {
        rc = plan_holders(p, json_array_get(models, 0));
    } else if ((rc = plan_loaded(p, models)) == 0 && p->n == 0) {
        mlx_buf names;
        mlx_buf_init(&names, 1 << 16);
        json_array_foreach(models, i, m)
        {
            mlx_buf_printf(&names, "%s%s", i ? ", " : "", str(m, "name"));
        }
        fprintf(stderr,
                "mlxctl: the fleet has %zu models and no node has one loaded; name one "
                "with --model: %s\n",
                n, mlx_buf_str(&names));
        mlx_buf_fini(&names);
        return MLX_EUSAGE;
    }
    if (rc != 0)
        return rc;
    size_t up = 0;
    for (size_t k = 0; k < p->n; k++)
        up += is_up(&p->v[k]);
    if (up == 0) {
        fprintf(stderr,
                "mlxctl: no node that is up holds model '%s'; 'mlxctl nodes' shows their "
                "states\n",
                want != NULL ? want : str(json_array_get(models, 0), "name"));
        return MLX_ENOENT;
    }
    qsort(p->v, p->n, sizeof p->v[0], cmp_job);
    return 0;
}

/* ---- running ----------------------------------------------------------------- */

/* POSTs j's bench and appends the answer's rows to all; j->result is the
 * first. Progress on stderr when it is a terminal. */
static int run_job(const struct bench_opts *o, struct job *j, json_t *all)
{
    bool progress = isatty(STDERR_FILENO);
    if (progress) {
        fprintf(stderr, "benchmarking %s (%s)… ", j->node_name, j->model);
        fflush(stderr);
    }
    json_t *req = json_pack("{s:s, s:s}", "model", j->model, "node", j->node_id);
    char *text = NULL;
    json_t *answer = NULL;
    int rc = req == NULL ? MLX_ENOMEM : 0;
    if (rc == 0 && o->max_tokens > 0)
        rc = json_object_set_new(req, "max_tokens", json_integer(o->max_tokens)) != 0
                 ? MLX_ENOMEM
                 : 0;
    if (rc == 0)
        rc = mlx_json_dump(req, &text, NULL);
    if (rc != 0)
        fprintf(stderr, "mlxctl: out of memory\n");
    else
        rc = ctl_request_wait(&o->common, "POST", "/api/v1/bench", text, BENCH_TIMEOUT_MS,
                              &answer, NULL);
    json_t *rows = json_object_get(answer, "results");
    if (rc == 0 && !json_is_array(rows)) {
        fprintf(stderr, "mlxctl: the coordinator's answer has no 'results' array; are "
                        "mlxctl and mlx-coordinator the same release?\n");
        rc = MLX_EPROTO;
    }
    if (rc == 0) {
        j->result = json_array_get(rows, 0);
        json_array_extend(all, rows);
    }
    /* A failed call's sentence has already ended the progress line. */
    if (progress && rc == 0 && strcmp(str(j->result, "status"), "ok") == 0)
        fprintf(stderr, "done %.1f tok/s\n",
                json_number_value(json_object_get(j->result, "tokens_per_s_p50")));
    else if (progress && rc == 0)
        fprintf(stderr, "failed\n");
    json_decref(req);
    json_decref(answer);
    mlx_free(text);
    return rc;
}

/* ---- the table --------------------------------------------------------------- */

/* A row's figure, or NULL when it is null (no prompt ran): the cell is
 * then "-". */
static const json_t *figure(ctl_table *t, const json_t *row, const char *key)
{
    const json_t *v = json_object_get(row, key);
    if (json_is_number(v))
        return v;
    ctl_table_cell(t, CTL_DIM, "-");
    return NULL;
}

/* A time with the digits that matter: small models answer in well under a
 * millisecond. */
static void cell_ms(ctl_table *t, const json_t *row, const char *key)
{
    const json_t *v = figure(t, row, key);
    double ms = json_number_value(v);
    if (v != NULL)
        ctl_table_cell(t, CTL_PLAIN, "%.*f ms", ms < 10 ? 2 : ms < 100 ? 1 : 0, ms);
}

static void cell_rate(ctl_table *t, const json_t *row, const char *key)
{
    const json_t *v = figure(t, row, key);
    if (v != NULL)
        ctl_table_cell(t, CTL_PLAIN, "%.1f", json_number_value(v));
}

static void print_table(const struct plan *p)
{
    static const char *const headers[] = {"NODE",  "MODEL",        "TTFT p50", "TTFT p95",
                                          "TOK/S", "PROMPT TOK/S", "STATUS"};
    ctl_table *t = ctl_table_new(headers, sizeof headers / sizeof headers[0]);
    for (size_t i = 0; i < p->n; i++) {
        const struct job *j = &p->v[i];
        ctl_table_cell(t, CTL_PLAIN, "%s", j->node_name);
        ctl_table_cell(t, CTL_PLAIN, "%s", j->model);
        cell_ms(t, j->result, "ttft_p50_ms");
        cell_ms(t, j->result, "ttft_p95_ms");
        cell_rate(t, j->result, "tokens_per_s_p50");
        cell_rate(t, j->result, "prompt_tokens_per_s");
        if (j->result == NULL)
            ctl_table_cell(t, CTL_DIM, "%s, not run", j->state);
        else if (strcmp(str(j->result, "status"), "ok") == 0)
            ctl_table_cell(t, CTL_GREEN, "ok");
        else
            ctl_table_cell(t, CTL_RED, "failed");
    }
    ctl_table_print(t);
    ctl_table_free(t);
}

/* Each failed run's sentence on stderr; MLX_EIO when there was one. */
static int report_failures(const struct plan *p)
{
    int rc = 0;
    for (size_t i = 0; i < p->n; i++) {
        const json_t *r = p->v[i].result;
        if (r == NULL || strcmp(str(r, "status"), "ok") == 0)
            continue;
        fprintf(stderr, "mlxctl: %s (%s): %s\n", p->v[i].node_name, p->v[i].model,
                str(r, "error"));
        rc = MLX_EIO;
    }
    return rc;
}

static int bench(const mlx_program *prog, const mlx_cmd *cmd, int argc, char **argv)
{
    struct bench_opts o = {0};
    mlx_args args = {0};
    struct plan p = {0};
    json_t *models = NULL, *all = json_array();
    int rc = mlx_cli_load(prog, cmd, argc, argv, &o, &args);
    if (rc != 0 || args.help)
        goto out;
    if (all == NULL) {
        fprintf(stderr, "mlxctl: out of memory\n");
        rc = MLX_ENOMEM;
        goto out;
    }
    const char *want = o.model != NULL && o.model[0] != '\0' ? o.model : NULL;
    if ((rc = ctl_get(&o.common, "/api/v1/models", &models, NULL)) != 0 ||
        (rc = plan_make(want, json_object_get(models, "models"), &p)) != 0)
        goto out;
    for (size_t i = 0; i < p.n && rc == 0; i++)
        if (is_up(&p.v[i]))
            rc = run_job(&o, &p.v[i], all);
    if (rc != 0)
        goto out;
    if (o.common.json) {
        mlx_err err;
        mlx_err_clear(&err);
        if ((rc = mlx_json_print(json_pack("{s:O}", "results", all), &err)) != 0)
            fprintf(stderr, "mlxctl: %s\n", mlx_err_text(&err, rc));
    } else {
        print_table(&p);
    }
    if (rc == 0)
        rc = report_failures(&p);
out:
    json_decref(all);
    json_decref(models);
    mlx_free(p.v);
    mlx_config_free(cmd, &o);
    mlx_config_free_args(&args);
    return rc;
}

const mlx_cmd ctl_cmd_bench = {
    .name = "bench",
    .summary = "run the benchmark suite on every node and print one table",
    .about =
        "Runs the suite of 'mlx-agent bench --suite' (ten fixed chat prompts, greedy,\n"
        "at most --max-tokens tokens each, after a warm-up that loads the model) on\n"
        "each node through the coordinator, one node at a time, and prints a row per\n"
        "node. TTFT is measured at the coordinator, from sending a prompt to its first\n"
        "text (p50 and p95 over the prompts); TOK/S is the node's generation speed\n"
        "(p50), PROMPT TOK/S its prompt processing. Without --model it runs the\n"
        "fleet's model when it has one, else the models each node has loaded. Nodes\n"
        "that hold the model but are not up are listed, not run. Exits 1 when a node's\n"
        "run failed.",
    .opts = bench_opts,
    .run = bench,
};
