/*
 * cmd_models.c — `mlx-agent cache add FILE --name NAME`, `cache rm NAME`,
 * `cache pin NAME` and `cache unpin NAME`: changing which models the store
 * holds and which gc may evict.
 */
#include <stddef.h>
#include <stdio.h>

#include "agent/cache/cmd.h"

struct model_opts {
    char *data;
    char *name;
    bool json;
};

static const mlx_opt add_opts[] = {
    CACHE_OPT_DATA(struct model_opts),
    {"name", 0, MLX_OPT_STR, offsetof(struct model_opts, name), "", "NAME",
     "the model's name in the store (required)", .cli_only = true},
    CACHE_OPT_JSON(struct model_opts),
    {NULL},
};

static const mlx_opt name_opts[] = {
    CACHE_OPT_DATA(struct model_opts),
    CACHE_OPT_JSON(struct model_opts),
    {NULL},
};

/* Loads the options and opens the store; *s is NULL after a failure or
 * --help (then *rc is what to return). */
static bool begin(const mlx_program *prog, const mlx_cmd *cmd, int argc, char **argv,
                  struct model_opts *o, mlx_args *args, store **s, int *rc)
{
    mlx_err err;
    mlx_err_clear(&err);
    *s = NULL;
    *rc = mlx_cli_load(prog, cmd, argc, argv, o, args);
    if (*rc != 0 || args->help)
        return false;
    if ((*rc = cache_cmd_open(o->data, s, &err)) != 0) {
        mlx_cli_fail(prog, *rc, &err);
        return false;
    }
    return true;
}

static void end(const mlx_cmd *cmd, struct model_opts *o, mlx_args *args, store *s)
{
    store_close(s);
    mlx_config_free(cmd, o);
    mlx_config_free_args(args);
}

static int add(const mlx_program *prog, const mlx_cmd *cmd, int argc, char **argv)
{
    struct model_opts o = {0};
    mlx_args args = {0};
    store *s;
    int rc;
    if (!begin(prog, cmd, argc, argv, &o, &args, &s, &rc))
        goto out;
    mlx_err err;
    mlx_err_clear(&err);
    cache_added a;
    if (o.name[0] == '\0')
        rc = mlx_err_set(&err, MLX_EUSAGE,
                         "say what to call the model: cache add %s --name NAME",
                         args.argv[0]);
    else if ((rc = cache_cmd_check_name(o.name, &err)) == 0)
        rc = cache_add_file(s, args.argv[0], o.name, &a, &err);
    if (rc != 0) {
        mlx_cli_fail(prog, rc, &err);
        goto out;
    }
    if (o.json) {
        rc = mlx_json_print(json_pack("{s:s, s:s, s:s, s:s, s:I}", "name", o.name,
                                      "format", a.format, "path", a.path, "sha256",
                                      a.sha256, "size_bytes", (json_int_t)a.size),
                            &err);
    } else {
        char sz[32];
        cache_format_bytes(a.size, sz, sizeof sz);
        printf("Added %s as '%s' (%s, sha256:%.12s).\n", args.argv[0], o.name, sz,
               a.sha256);
    }
out:
    end(cmd, &o, &args, s);
    return rc;
}

static int rm(const mlx_program *prog, const mlx_cmd *cmd, int argc, char **argv)
{
    struct model_opts o = {0};
    mlx_args args = {0};
    store *s;
    int rc;
    if (!begin(prog, cmd, argc, argv, &o, &args, &s, &rc))
        goto out;
    mlx_err err;
    mlx_err_clear(&err);
    const char *name = args.argv[0];
    if ((rc = cache_cmd_check_name(name, &err)) != 0 ||
        (rc = cache_remove_model(s, name, &err)) != 0) {
        mlx_cli_fail(prog, rc, &err);
        goto out;
    }
    /* The blobs only this model used go now, unless a pull is writing to
     * the store (it may be about to use them); gc takes them later then. */
    gc_report freed = {0};
    mlx_err sweep_err;
    mlx_err_clear(&sweep_err);
    bool swept = cache_sweep_blobs(s, &freed, &sweep_err) == 0;
    char sz[32];
    cache_format_bytes(freed.blob_bytes, sz, sizeof sz);
    if (o.json)
        rc = mlx_json_print(json_pack("{s:s, s:I, s:I, s:s?}", "removed", name,
                                      "blobs_removed", (json_int_t)freed.blobs_removed,
                                      "freed_bytes", (json_int_t)freed.blob_bytes, "note",
                                      swept ? NULL : sweep_err.msg),
                            &err);
    else if (swept)
        printf("Removed '%s'; %s given back.\n", name, sz);
    else
        printf("Removed '%s'. Its files stay until 'mlx-agent cache gc': %s\n", name,
               sweep_err.msg);
out:
    end(cmd, &o, &args, s);
    return rc;
}

static int pin_or_unpin(const mlx_program *prog, const mlx_cmd *cmd, int argc,
                        char **argv, bool pinned)
{
    struct model_opts o = {0};
    mlx_args args = {0};
    store *s;
    int rc;
    if (!begin(prog, cmd, argc, argv, &o, &args, &s, &rc))
        goto out;
    mlx_err err;
    mlx_err_clear(&err);
    if ((rc = cache_cmd_check_name(args.argv[0], &err)) != 0 ||
        (rc = cache_pin_model(s, args.argv[0], pinned, &err)) != 0) {
        mlx_cli_fail(prog, rc, &err);
        goto out;
    }
    if (o.json)
        rc = mlx_json_print(
            json_pack("{s:s, s:b}", "name", args.argv[0], "pinned", pinned), &err);
    else
        printf(pinned ? "Pinned '%s': gc will keep it.\n"
                      : "Unpinned '%s': gc may evict it when the store is over its "
                        "budget.\n",
               args.argv[0]);
out:
    end(cmd, &o, &args, s);
    return rc;
}

static int pin(const mlx_program *prog, const mlx_cmd *cmd, int argc, char **argv)
{
    return pin_or_unpin(prog, cmd, argc, argv, true);
}

static int unpin(const mlx_program *prog, const mlx_cmd *cmd, int argc, char **argv)
{
    return pin_or_unpin(prog, cmd, argc, argv, false);
}

const mlx_cmd cache_cmd_add = {
    .name = "cache add",
    .args = "FILE",
    .summary = "copy a GGUF or safetensors file into the store under a name",
    .about = "Copies FILE into the store (a clone where the file system can) while\n"
             "hashing it, and records it as model NAME, replacing a model of that name.\n"
             "The store never points at FILE itself, so FILE may be moved or deleted.",
    .opts = add_opts,
    .min_args = 1,
    .max_args = 1,
    .run = add,
};

const mlx_cmd cache_cmd_rm = {
    .name = "cache rm",
    .args = "NAME",
    .summary = "remove a model from the store, and the files only it used",
    .about = "Models found in the HuggingFace or Ollama caches are not the store's to\n"
             "delete: remove those with the tool that downloaded them.",
    .opts = name_opts,
    .min_args = 1,
    .max_args = 1,
    .run = rm,
};

const mlx_cmd cache_cmd_pin = {
    .name = "cache pin",
    .args = "NAME",
    .summary = "keep a model through every gc",
    .opts = name_opts,
    .min_args = 1,
    .max_args = 1,
    .run = pin,
};

const mlx_cmd cache_cmd_unpin = {
    .name = "cache unpin",
    .args = "NAME",
    .summary = "let gc evict a pinned model again",
    .opts = name_opts,
    .min_args = 1,
    .max_args = 1,
    .run = unpin,
};
