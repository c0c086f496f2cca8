/*
 * cmd_check.c — `mlx-agent cache gc`, `cache verify` and `cache doctor`:
 * keeping the store small, sound and usable.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "agent/cache/cmd.h"
#include "common/alloc.h"
#include "common/clock.h"
#include "common/parse.h"

struct check_opts {
    char *data;
    char *max_bytes;
    bool dry_run;
    char *hf;
    char *ollama;
    mlx_strlist dirs;
    bool json;
};

static int check_size(const char *value, mlx_err *err)
{
    uint64_t v;
    return value[0] == '\0' ? 0 : mlx_parse_bytes(value, &v, err);
}

static const mlx_opt gc_opts_table[] = {
    CACHE_OPT_DATA(struct check_opts),
    {"max-bytes", 0, MLX_OPT_STR, offsetof(struct check_opts, max_bytes), "", "SIZE",
     "evict least recently used models until the store fits (500M, 40G, …); "
     "empty: no budget",
     .check = check_size},
    {"dry-run", 0, MLX_OPT_BOOL, offsetof(struct check_opts, dry_run), "false", NULL,
     "say what would be removed, remove nothing", .cli_only = true},
    CACHE_OPT_JSON(struct check_opts),
    {NULL},
};

static const mlx_opt verify_opts[] = {
    CACHE_OPT_DATA(struct check_opts),
    CACHE_OPT_JSON(struct check_opts),
    {NULL},
};

static const mlx_opt doctor_opts[] = {
    CACHE_OPT_DATA(struct check_opts),
    CACHE_OPT_ROOTS(struct check_opts),
    CACHE_OPT_JSON(struct check_opts),
    {NULL},
};

static void print_gc(const gc_report *r, const gc_opts *o)
{
    const char *verb = o->dry_run ? "Would remove" : "Removed";
    char blob_b[32], partial_b[32], before[32], after[32];
    cache_format_bytes(r->blob_bytes, blob_b, sizeof blob_b);
    cache_format_bytes(r->partial_bytes, partial_b, sizeof partial_b);
    cache_format_bytes(r->store_bytes, before, sizeof before);
    cache_format_bytes(r->store_bytes_after, after, sizeof after);
    for (size_t i = 0; i < r->n_evicted; i++)
        printf("%s model '%s' (least recently used).\n", verb, r->evicted[i]);
    printf("%s %zu blobs (%s) and %zu abandoned downloads (%s); the store %s from %s to "
           "%s.\n",
           verb, r->blobs_removed, blob_b, r->partials_removed, partial_b,
           o->dry_run ? "would go" : "went", before, after);
}

static int gc(const mlx_program *prog, const mlx_cmd *cmd, int argc, char **argv)
{
    struct check_opts o = {0};
    mlx_args args = {0};
    mlx_err err;
    mlx_err_clear(&err);
    store *s = NULL;
    gc_report r = {0};
    int rc = mlx_cli_load(prog, cmd, argc, argv, &o, &args);
    if (rc != 0 || args.help)
        goto out;
    gc_opts opts = {.max_bytes = UINT64_MAX, .dry_run = o.dry_run};
    if ((o.max_bytes[0] == '\0' ||
         (rc = mlx_parse_bytes(o.max_bytes, &opts.max_bytes, &err)) == 0) &&
        (rc = cache_cmd_open(o.data, &s, &err)) == 0)
        rc = cache_gc(s, &opts, &r, &err);
    if (rc != 0) {
        mlx_cli_fail(prog, rc, &err);
        goto out;
    }
    bool over = r.store_bytes_after > opts.max_bytes;
    if (o.json) {
        json_t *evicted = json_array();
        for (size_t i = 0; i < r.n_evicted; i++)
            json_array_append_new(evicted, json_string(r.evicted[i]));
        rc = mlx_json_print(
            json_pack(
                "{s:b, s:o, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I}", "dry_run",
                o.dry_run, "evicted", evicted, "blobs_removed",
                (json_int_t)r.blobs_removed, "blob_bytes", (json_int_t)r.blob_bytes,
                "partials_removed", (json_int_t)r.partials_removed, "partial_bytes",
                (json_int_t)r.partial_bytes, "store_bytes", (json_int_t)r.store_bytes,
                "store_bytes_after", (json_int_t)r.store_bytes_after, "pinned_kept",
                (json_int_t)r.n_pinned_kept, "in_use_kept", (json_int_t)r.n_in_use_kept),
            &err);
    } else {
        print_gc(&r, &opts);
    }
    if (rc == 0 && over) {
        char after[32];
        cache_format_bytes(r.store_bytes_after, after, sizeof after);
        rc = mlx_err_set(
            &err, MLX_EBUSY,
            "the store still holds %s, over --max-bytes %s: %zu pinned and %zu "
            "models in use were kept ('cache unpin' or stop what uses them)",
            after, o.max_bytes, r.n_pinned_kept, r.n_in_use_kept);
        mlx_cli_fail(prog, rc, &err);
    }
out:
    cache_gc_report_free(&r);
    store_close(s);
    mlx_config_free(cmd, &o);
    mlx_config_free_args(&args);
    return rc;
}

static const char *verify_kind_name(verify_kind k)
{
    static const char *const names[] = {"corrupt", "missing", "unreadable", "stray"};
    return names[k];
}

static json_t *verify_json(const verify_report *r, double seconds)
{
    json_t *problems = json_array();
    for (size_t i = 0; i < r->n_problems; i++) {
        const verify_problem *p = &r->problems[i];
        json_array_append_new(
            problems, json_pack("{s:s, s:s, s:s?, s:s?, s:s?, s:s?, s:s?}", "kind",
                                verify_kind_name(p->kind), "path", p->path,
                                "expected_sha256", p->expected[0] ? p->expected : NULL,
                                "actual_sha256", p->actual[0] ? p->actual : NULL,
                                "detail", p->detail[0] ? p->detail : NULL, "models",
                                p->models != NULL && p->models[0] ? p->models : NULL,
                                "quarantined_to", p->quarantined_to));
    }
    return json_pack("{s:b, s:I, s:I, s:f, s:o}", "ok", r->n_problems == 0,
                     "checked_files", (json_int_t)r->checked_files, "checked_bytes",
                     (json_int_t)r->checked_bytes, "seconds", seconds, "problems",
                     problems);
}

static void print_verify(const verify_report *r, double seconds)
{
    char sz[32];
    cache_format_bytes(r->checked_bytes, sz, sizeof sz);
    for (size_t i = 0; i < r->n_problems; i++) {
        const verify_problem *p = &r->problems[i];
        printf("%-10s %s\n", verify_kind_name(p->kind), p->path);
        if (p->kind == VERIFY_CORRUPT)
            printf("           expected sha256:%s\n           found    sha256:%s\n",
                   p->expected, p->actual);
        if (p->detail[0] != '\0')
            printf("           %s\n", p->detail);
        if (p->models != NULL && p->models[0] != '\0')
            printf("           marked broken: %s\n", p->models);
        if (p->quarantined_to != NULL)
            printf("           moved to %s\n", p->quarantined_to);
    }
    printf("Checked %zu %s (%s) in %.1f s", r->checked_files,
           r->checked_files == 1 ? "file" : "files", sz, seconds);
    if (r->n_problems == 0)
        printf(": every one is intact.\n");
    else
        printf(", %zu %s found; pull the broken models again ('mlx-agent cache doctor' "
               "says more).\n",
               r->n_problems, r->n_problems == 1 ? "problem" : "problems");
}

static int verify(const mlx_program *prog, const mlx_cmd *cmd, int argc, char **argv)
{
    struct check_opts o = {0};
    mlx_args args = {0};
    mlx_err err;
    mlx_err_clear(&err);
    store *s = NULL;
    verify_report r = {0};
    int rc = mlx_cli_load(prog, cmd, argc, argv, &o, &args);
    if (rc != 0 || args.help)
        goto out;
    int64_t start = mlx_time_mono_ms();
    if ((rc = cache_cmd_open(o.data, &s, &err)) == 0)
        rc = cache_verify(s, &r, &err);
    if (rc != 0) {
        mlx_cli_fail(prog, rc, &err);
        goto out;
    }
    double seconds = (double)(mlx_time_mono_ms() - start) / 1000;
    if (o.json)
        rc = mlx_json_print(verify_json(&r, seconds), &err);
    else
        print_verify(&r, seconds);
    if (rc == 0 && r.n_problems > 0)
        rc = MLX_ECORRUPT; /* reported above; the exit status says it too */
out:
    cache_verify_report_free(&r);
    store_close(s);
    mlx_config_free(cmd, &o);
    mlx_config_free_args(&args);
    return rc;
}

static int doctor(const mlx_program *prog, const mlx_cmd *cmd, int argc, char **argv)
{
    struct check_opts o = {0};
    mlx_args args = {0};
    mlx_err err;
    mlx_err_clear(&err);
    store *s = NULL;
    doctor_report r = {0};
    char *hf = NULL, *ollama = NULL;
    int rc = mlx_cli_load(prog, cmd, argc, argv, &o, &args);
    if (rc != 0 || args.help)
        goto out;
    scan_roots roots = {.dirs = o.dirs.items, .n_dirs = o.dirs.n};
    if ((rc = cache_cmd_roots(o.hf, o.ollama, &hf, &ollama, &err)) == 0 &&
        (rc = cache_cmd_open(o.data, &s, &err)) == 0) {
        roots.hf = hf;
        roots.ollama = ollama;
        rc = cache_doctor(s, &roots, &r, &err);
    }
    if (rc != 0) {
        mlx_cli_fail(prog, rc, &err);
        goto out;
    }
    size_t errors = 0;
    for (size_t i = 0; i < r.n; i++)
        errors += r.items[i].level == DOCTOR_ERROR;
    if (o.json) {
        json_t *findings = json_array();
        for (size_t i = 0; i < r.n; i++)
            json_array_append_new(findings,
                                  json_pack("{s:s, s:s, s:s, s:s?}", "level",
                                            cache_doctor_level_name(r.items[i].level),
                                            "check", r.items[i].check, "message",
                                            r.items[i].message, "fix", r.items[i].fix));
        rc = mlx_json_print(
            json_pack("{s:b, s:o}", "ok", errors == 0, "findings", findings), &err);
    } else {
        bool tty = isatty(STDOUT_FILENO);
        for (size_t i = 0; i < r.n; i++) {
            const doctor_finding *f = &r.items[i];
            const char *color = !tty                       ? ""
                                : f->level == DOCTOR_ERROR ? "\033[31m"
                                : f->level == DOCTOR_WARN  ? "\033[33m"
                                                           : "\033[32m";
            printf("%s%-5s%s %-17s %s\n", color, cache_doctor_level_name(f->level),
                   tty ? "\033[0m" : "", f->check, f->message);
            if (f->fix != NULL)
                printf("      %-17s → %s\n", "", f->fix);
        }
    }
    if (rc == 0 && errors > 0)
        rc = MLX_ECORRUPT;
out:
    cache_doctor_report_free(&r);
    store_close(s);
    mlx_free(hf);
    mlx_free(ollama);
    mlx_config_free(cmd, &o);
    mlx_config_free_args(&args);
    return rc;
}

const mlx_cmd cache_cmd_gc = {
    .name = "cache gc",
    .summary = "remove what no model needs; with --max-bytes, evict least recently used",
    .about = "Removes blobs no model of the store uses and downloads abandoned for a\n"
             "day. With --max-bytes, first evicts the least recently used models until\n"
             "the store fits, never a pinned one, one a running process uses, or one\n"
             "that HuggingFace or Ollama keep. Exit status 1 when the budget cannot be\n"
             "met.",
    .opts = gc_opts_table,
    .run = gc,
};

const mlx_cmd cache_cmd_verify = {
    .name = "cache verify",
    .summary = "re-hash every file and quarantine the corrupt ones",
    .about =
        "Reads every blob of the store and every file of the models found in the\n"
        "HuggingFace and Ollama caches again, on all cores, and checks each against\n"
        "its SHA-256. A corrupt blob is moved to <data>/quarantine; the models using\n"
        "a bad file are marked broken. Exit status 1 when anything is wrong.",
    .opts = verify_opts,
    .run = verify,
};

const mlx_cmd cache_cmd_doctor = {
    .name = "cache doctor",
    .summary = "check permissions, free space, unfinished downloads and broken files",
    .about = "Looks at the store and the caches it reads and says, for each problem,\n"
             "what to do. Changes nothing. Exit status 1 when something is broken.",
    .opts = doctor_opts,
    .run = doctor,
};
