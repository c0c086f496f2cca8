/*
 * cmd_scan.c — `mlx-agent cache scan` and `mlx-agent cache dedup`: what the
 * HuggingFace and Ollama caches and --dir folders hold, what is stored
 * twice, and giving that space back.
 */
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "agent/cache/cache.h"
#include "agent/cache/internal.h"
#include "common/alloc.h"
#include "common/cli.h"
#include "common/json.h"
#include "common/path.h"

struct scan_opts {
    char *data;
    char *hf;
    char *ollama;
    mlx_strlist dirs;
    bool apply;
    bool json;
};

#define SCAN_OPTS(with_apply)                                                            \
    {"data",                                                                             \
     0,                                                                                  \
     MLX_OPT_PATH,                                                                       \
     offsetof(struct scan_opts, data),                                                   \
     "~/.mlxfleet",                                                                      \
     "DIR",                                                                              \
     "data directory (node id, model store, history)"},                                  \
        {"hf",                                                                           \
         0,                                                                              \
         MLX_OPT_PATH,                                                                   \
         offsetof(struct scan_opts, hf),                                                 \
         "",                                                                             \
         "DIR",                                                                          \
         "HuggingFace hub cache; empty: $HF_HUB_CACHE, $HF_HOME/hub or "                 \
         "~/.cache/huggingface/hub"},                                                    \
        {"ollama",                                                                       \
         0,                                                                              \
         MLX_OPT_PATH,                                                                   \
         offsetof(struct scan_opts, ollama),                                             \
         "",                                                                             \
         "DIR",                                                                          \
         "Ollama models folder; empty: $OLLAMA_MODELS or ~/.ollama/models"},             \
        {"dir",                                                                          \
         0,                                                                              \
         MLX_OPT_LIST,                                                                   \
         offsetof(struct scan_opts, dirs),                                               \
         NULL,                                                                           \
         "DIR",                                                                          \
         "another folder of .gguf/.safetensors files (repeatable)"},                     \
    {                                                                                    \
        "json", 0, MLX_OPT_BOOL, offsetof(struct scan_opts, json), "false", NULL,        \
            "print one JSON object"                                                      \
    }

static const mlx_opt scan_opts[] = {SCAN_OPTS(false), {NULL}};
static const mlx_opt dedup_opts[] = {
    SCAN_OPTS(true),
    {"apply", 0, MLX_OPT_BOOL, offsetof(struct scan_opts, apply), "false", NULL,
     "replace duplicates (without it, only say what would be done)"},
    {NULL},
};

/* The folder a tool uses when its flag is empty, as that tool finds it. */
static char *default_root(const char *flag, const char *env1, const char *env2,
                          const char *env2_suffix, const char *home_rel)
{
    if (flag[0] != '\0')
        return mlx_strdup(flag);
    const char *v = getenv(env1);
    if (v != NULL && v[0] != '\0')
        return mlx_strdup(v);
    v = env2 != NULL ? getenv(env2) : NULL;
    if (v != NULL && v[0] != '\0')
        return mlx_path_join(v, env2_suffix);
    char *out = NULL;
    mlx_path_expand_user(home_rel, &out, NULL);
    return out;
}

struct scan_run {
    store *s;
    scan_result r;
    dedup_plan plan;
    char *hf, *ollama;
};

static int run_scan(const struct scan_opts *o, struct scan_run *run, mlx_err *err)
{
    run->hf =
        default_root(o->hf, "HF_HUB_CACHE", "HF_HOME", "hub", "~/.cache/huggingface/hub");
    run->ollama =
        default_root(o->ollama, "OLLAMA_MODELS", NULL, NULL, "~/.ollama/models");
    if (run->hf == NULL || run->ollama == NULL)
        return mlx_err_set(err, MLX_ENOMEM, "out of memory");
    int rc;
    if ((rc = store_open(o->data, &run->s, err)) != 0 ||
        (rc = cache_recover(run->s, err)) != 0)
        return rc;
    scan_roots roots = {
        .hf = run->hf, .ollama = run->ollama, .dirs = o->dirs.items, .n_dirs = o->dirs.n};
    if ((rc = cache_scan(&roots, &run->r, err)) != 0 ||
        (rc = cache_plan_dedup(run->s, &run->r, &run->plan, err)) != 0)
        return rc;
    return cache_record_scan(run->s, &run->r, err);
}

static void run_free(struct scan_run *run)
{
    cache_plan_free(&run->plan);
    cache_scan_free(&run->r);
    store_close(run->s);
    mlx_free(run->hf);
    mlx_free(run->ollama);
}

static json_t *models_json(const scan_result *r)
{
    json_t *models = json_array();
    for (size_t i = 0; i < r->n;) {
        size_t j = i;
        uint64_t size = 0;
        json_t *files = json_array();
        for (; j < r->n && strcmp(r->files[j].model, r->files[i].model) == 0; j++) {
            const scan_file *f = &r->files[j];
            size += f->size;
            json_array_append_new(files,
                                  json_pack("{s:s, s:I, s:s?, s:s}", "path", f->path,
                                            "size_bytes", (json_int_t)f->size, "sha256",
                                            f->sha256[0] ? f->sha256 : NULL, "location",
                                            f->location));
        }
        json_array_append_new(models,
                              json_pack("{s:s, s:s, s:I, s:o}", "name", r->files[i].model,
                                        "source", cache_origin_name(r->files[i].origin),
                                        "size_bytes", (json_int_t)size, "files", files));
        i = j;
    }
    return models;
}

static json_t *duplicates_json(const scan_result *r, const dedup_plan *p)
{
    json_t *sets = json_array();
    for (size_t i = 0; i < p->n; i++) {
        json_t *copies = json_array();
        for (size_t k = 0; k < p->sets[i].n; k++)
            json_array_append_new(copies,
                                  json_string(r->files[p->sets[i].members[k]].location));
        json_array_append_new(
            sets,
            json_pack("{s:s, s:I, s:I, s:o}", "sha256", p->sets[i].sha256, "size_bytes",
                      (json_int_t)p->sets[i].size, "reclaimable_bytes",
                      (json_int_t)p->sets[i].reclaimable, "copies", copies));
    }
    return sets;
}

static json_t *problems_json(const scan_result *r)
{
    json_t *a = json_array();
    for (size_t i = 0; i < r->n_problems; i++)
        json_array_append_new(a, json_string(r->problems[i]));
    return a;
}

static void print_models(const scan_result *r)
{
    printf("%-40s  %-7s  %10s  %s\n", "MODEL", "SOURCE", "SIZE", "WHERE");
    for (size_t i = 0; i < r->n;) {
        size_t j = i;
        uint64_t size = 0;
        for (; j < r->n && strcmp(r->files[j].model, r->files[i].model) == 0; j++)
            size += r->files[j].size;
        char sz[32];
        cache_format_bytes(size, sz, sizeof sz);
        const char *loc = r->files[i].location;
        printf("%-40s  %-7s  %10s  %.*s\n", r->files[i].model,
               cache_origin_name(r->files[i].origin), sz, (int)(strrchr(loc, '/') - loc),
               loc);
        i = j;
    }
}

static void print_duplicates(const scan_result *r, const dedup_plan *p)
{
    if (p->n == 0) {
        printf("\nNo file is stored twice.\n");
        return;
    }
    printf("\nStored more than once:\n");
    for (size_t i = 0; i < p->n; i++) {
        char sz[32], back[32];
        cache_format_bytes(p->sets[i].size, sz, sizeof sz);
        cache_format_bytes(p->sets[i].reclaimable, back, sizeof back);
        printf("  sha256:%.12s  %s each, %s to give back\n", p->sets[i].sha256, sz, back);
        for (size_t k = 0; k < p->sets[i].n; k++)
            printf("    %s\n", r->files[p->sets[i].members[k]].location);
    }
    char total[32];
    cache_format_bytes(p->reclaimable, total, sizeof total);
    printf("\nDe-duplication would give back %s.\n", total);
}

static int print_json(json_t *v, mlx_err *err)
{
    char *text = NULL;
    int rc = mlx_json_dump(v, &text, err);
    json_decref(v);
    if (rc == 0)
        printf("%s\n", text);
    mlx_free(text);
    return rc;
}

static void print_problems(const scan_result *r)
{
    for (size_t i = 0; i < r->n_problems; i++)
        fprintf(stderr, "warning: %s\n", r->problems[i]);
}

static int scan(const mlx_program *prog, const mlx_cmd *cmd, int argc, char **argv)
{
    struct scan_opts o = {0};
    mlx_args args = {0};
    mlx_err err;
    mlx_err_clear(&err);
    struct scan_run run = {0};
    int rc = mlx_cli_load(prog, cmd, argc, argv, &o, &args);
    if (rc != 0 || args.help)
        goto out;
    if ((rc = run_scan(&o, &run, &err)) != 0) {
        mlx_cli_fail(prog, rc, &err);
        goto out;
    }
    if (o.json) {
        rc = print_json(json_pack("{s:o, s:o, s:I, s:o}", "models", models_json(&run.r),
                                  "duplicates", duplicates_json(&run.r, &run.plan),
                                  "reclaimable_bytes", (json_int_t)run.plan.reclaimable,
                                  "problems", problems_json(&run.r)),
                        &err);
    } else {
        print_problems(&run.r);
        print_models(&run.r);
        print_duplicates(&run.r, &run.plan);
    }
out:
    run_free(&run);
    mlx_config_free(cmd, &o);
    mlx_config_free_args(&args);
    return rc;
}

static int dedup(const mlx_program *prog, const mlx_cmd *cmd, int argc, char **argv)
{
    struct scan_opts o = {0};
    mlx_args args = {0};
    mlx_err err;
    mlx_err_clear(&err);
    struct scan_run run = {0};
    dedup_report rep = {0};
    int rc = mlx_cli_load(prog, cmd, argc, argv, &o, &args);
    if (rc != 0 || args.help)
        goto out;
    if ((rc = run_scan(&o, &run, &err)) != 0 ||
        (o.apply &&
         (rc = cache_apply_dedup(run.s, &run.r, &run.plan, &rep, &err)) != 0)) {
        mlx_cli_fail(prog, rc, &err);
        goto out;
    }
    if (o.json) {
        rc = print_json(json_pack("{s:b, s:o, s:I, s:I, s:I, s:I}", "applied", o.apply,
                                  "duplicates", duplicates_json(&run.r, &run.plan),
                                  "reclaimable_bytes", (json_int_t)run.plan.reclaimable,
                                  "given_back_bytes", (json_int_t)rep.given_back,
                                  "replaced", (json_int_t)rep.replaced, "skipped",
                                  (json_int_t)rep.skipped),
                        &err);
    } else if (!o.apply) {
        print_problems(&run.r);
        print_duplicates(&run.r, &run.plan);
        if (run.plan.n > 0)
            printf("Nothing was changed; run again with --apply to do it.\n");
    } else {
        char back[32];
        cache_format_bytes(rep.given_back, back, sizeof back);
        printf("Gave back %s: %zu files now share their bytes, %zu left alone.\n", back,
               rep.replaced, rep.skipped);
    }
out:
    run_free(&run);
    mlx_config_free(cmd, &o);
    mlx_config_free_args(&args);
    return rc;
}

const mlx_cmd cache_cmd_scan = {
    .name = "cache scan",
    .summary = "list the models in the HF and Ollama caches and what they store twice",
    .about =
        "Reads the HuggingFace hub cache, the Ollama models folder and any --dir\n"
        "folders, records every model it finds in the store (so 'run NAME' finds it in\n"
        "place) and lists the files kept more than once, with the bytes a\n"
        "de-duplication would give back. Files are compared by size, then SHA-256;\n"
        "digests are remembered, so a second scan of unchanged files reads nothing.",
    .opts = scan_opts,
    .run = scan,
};

const mlx_cmd cache_cmd_dedup = {
    .name = "cache dedup",
    .summary = "give back the space duplicate model files take (dry run unless --apply)",
    .about =
        "Makes every copy of a file share one set of bytes (a clone where the file\n"
        "system can, else a hard link). Names stay as they are, so HuggingFace and\n"
        "Ollama keep working. Never removes the last copy, never touches a file being\n"
        "written, and every step is journaled: an interrupted run loses nothing and\n"
        "the next one cleans up.",
    .opts = dedup_opts,
    .run = dedup,
};
