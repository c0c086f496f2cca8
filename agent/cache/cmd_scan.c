/*
 * cmd_scan.c — `mlx-agent cache scan` and `mlx-agent cache dedup`: what the
 * HuggingFace and Ollama caches and --dir folders hold, what is stored
 * twice, and giving that space back.
 */
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "agent/cache/cmd.h"
#include "common/alloc.h"
#include "common/json.h"

struct scan_opts {
    char *data;
    char *hf;
    char *ollama;
    mlx_strlist dirs;
    bool apply;
    bool json;
};

static const mlx_opt scan_opts[] = {
    CACHE_OPT_DATA(struct scan_opts),
    CACHE_OPT_ROOTS(struct scan_opts),
    CACHE_OPT_JSON(struct scan_opts),
    {NULL},
};
static const mlx_opt dedup_opts[] = {
    CACHE_OPT_DATA(struct scan_opts),
    CACHE_OPT_ROOTS(struct scan_opts),
    {"apply", 0, MLX_OPT_BOOL, offsetof(struct scan_opts, apply), "false", NULL,
     "replace duplicates (without it, only say what would be done)", .cli_only = true},
    CACHE_OPT_JSON(struct scan_opts),
    {NULL},
};

struct scan_run {
    store *s;
    scan_result r;
    dedup_plan plan;
    char *hf, *ollama;
};

/* Scans the caches and the store, hashes what may be duplicated and
 * records what was found. */
static int run_scan(const struct scan_opts *o, struct scan_run *run, mlx_err *err)
{
    int rc = cache_cmd_roots(o->hf, o->ollama, &run->hf, &run->ollama, err);
    if (rc == 0)
        rc = cache_cmd_open(o->data, &run->s, err);
    scan_roots roots = {
        .hf = run->hf, .ollama = run->ollama, .dirs = o->dirs.items, .n_dirs = o->dirs.n};
    if (rc == 0)
        rc = cache_scan(&roots, &run->r, err);
    if (rc == 0)
        rc = cache_scan_store(run->s, &run->r, err);
    if (rc == 0)
        rc = cache_plan_dedup(run->s, &run->r, &run->plan, err);
    if (rc == 0)
        rc = cache_record_scan(run->s, &run->r, &roots, err);
    return rc;
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
        json_array_append_new(
            models, json_pack("{s:s, s:s, s:s, s:I, s:o}", "name", r->files[i].model,
                              "source", cache_origin_name(r->files[i].origin), "format",
                              cache_scan_format(r, i, j), "size_bytes", (json_int_t)size,
                              "files", files));
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
    printf("%-40s  %-12s  %-11s  %10s  %s\n", "MODEL", "SOURCE", "FORMAT", "SIZE",
           "WHERE");
    for (size_t i = 0; i < r->n;) {
        size_t j = i;
        uint64_t size = 0;
        for (; j < r->n && strcmp(r->files[j].model, r->files[i].model) == 0; j++)
            size += r->files[j].size;
        char sz[32];
        cache_format_bytes(size, sz, sizeof sz);
        const char *loc = r->files[i].location;
        printf("%-40s  %-12s  %-11s  %10s  %.*s\n", r->files[i].model,
               cache_origin_name(r->files[i].origin), cache_scan_format(r, i, j), sz,
               (int)(strrchr(loc, '/') - loc), loc);
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
        rc = mlx_json_print(
            json_pack("{s:o, s:o, s:I, s:o}", "models", models_json(&run.r), "duplicates",
                      duplicates_json(&run.r, &run.plan), "reclaimable_bytes",
                      (json_int_t)run.plan.reclaimable, "problems",
                      problems_json(&run.r)),
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
        json_t *skipped = json_array();
        for (size_t i = 0; i < rep.n_skipped; i++)
            json_array_append_new(skipped,
                                  json_pack("{s:s, s:s}", "path",
                                            run.r.files[rep.skipped[i].file].location,
                                            "why", rep.skipped[i].why));
        rc = mlx_json_print(
            json_pack("{s:b, s:o, s:I, s:I, s:I, s:o}", "applied", o.apply, "duplicates",
                      duplicates_json(&run.r, &run.plan), "reclaimable_bytes",
                      (json_int_t)run.plan.reclaimable, "given_back_bytes",
                      (json_int_t)rep.given_back, "replaced", (json_int_t)rep.replaced,
                      "skipped", skipped),
            &err);
    } else if (!o.apply) {
        print_problems(&run.r);
        print_duplicates(&run.r, &run.plan);
        if (run.plan.n > 0)
            printf("Nothing was changed; run again with --apply to do it.\n");
    } else {
        print_problems(&run.r);
        for (size_t i = 0; i < rep.n_skipped; i++)
            printf("left alone: %s (%s)\n", run.r.files[rep.skipped[i].file].location,
                   rep.skipped[i].why);
        char back[32];
        cache_format_bytes(rep.given_back, back, sizeof back);
        printf("Gave back %s: %zu %s now share their bytes, %zu left alone.\n", back,
               rep.replaced, rep.replaced == 1 ? "file" : "files", rep.n_skipped);
    }
out:
    cache_dedup_report_free(&rep);
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
