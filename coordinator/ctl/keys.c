/*
 * keys.c — `mlxctl keys create|list|revoke`: the coordinator's API keys.
 *
 * create prints the key on stdout and nothing else there, so a script can
 * capture it (`KEY=$(mlxctl keys create --name ci)`); the warning that it
 * will not be shown again goes to stderr. The coordinator keeps only a salted
 * hash, so a lost key is revoked and replaced.
 */
#include <stdio.h>
#include <string.h>

#include "common/alloc.h"
#include "common/cli.h"
#include "common/json.h"
#include "coordinator/ctl/ctl.h"

/* The coordinator's ceiling for a rate (coordinator/auth/auth.h). */
#define KEYS_MAX_RATE 1000000000

/* ---- create -------------------------------------------------------------- */

struct create_opts {
    ctl_opts common;
    char *name;
    char *scope;
    char *models;
    int64_t rpm, tpm;
};

static int check_scope(const char *value, mlx_err *err)
{
    if (strcmp(value, "infer") == 0 || strcmp(value, "admin") == 0)
        return 0;
    return mlx_err_set(err, MLX_EINVAL,
                       "unknown scope '%.64s': use infer (inference only) or admin "
                       "(inference and the admin API)",
                       value);
}

static const mlx_opt create_opts[] = {
    CTL_COMMON_OPTS(struct create_opts),
    {"name", 0, MLX_OPT_STR, offsetof(struct create_opts, name), NULL, "NAME",
     "the key's name: letters, digits, '.', '_', '-'", .cli_only = true},
    {"scope", 0, MLX_OPT_STR, offsetof(struct create_opts, scope), "infer", "SCOPE",
     "infer (inference only) or admin (also the admin API)", .check = check_scope,
     .cli_only = true},
    {"models", 0, MLX_OPT_STR, offsetof(struct create_opts, models), "*", "PATTERN",
     "glob of the models the key may use", .cli_only = true},
    {"rpm", 0, MLX_OPT_INT, offsetof(struct create_opts, rpm), "0", "N",
     "requests per minute, 0 for no limit", 0, KEYS_MAX_RATE, .cli_only = true},
    {"tpm", 0, MLX_OPT_INT, offsetof(struct create_opts, tpm), "0", "N",
     "tokens per minute, 0 for no limit", 0, KEYS_MAX_RATE, .cli_only = true},
    {NULL},
};

static int keys_create(const mlx_program *prog, const mlx_cmd *cmd, int argc, char **argv)
{
    struct create_opts o = {0};
    mlx_args args = {0};
    json_t *req = NULL, *body = NULL;
    char *req_text = NULL, *raw = NULL;
    int rc = mlx_cli_load(prog, cmd, argc, argv, &o, &args);
    if (rc != 0 || args.help)
        goto out;
    if (o.name == NULL || o.name[0] == '\0') {
        fprintf(stderr, "mlxctl: keys create needs a name: pass --name NAME\n");
        rc = MLX_EUSAGE;
        goto out;
    }
    req =
        json_pack("{s:s, s:s, s:s, s:I, s:I}", "name", o.name, "scope", o.scope, "models",
                  o.models, "rpm", (json_int_t)o.rpm, "tpm", (json_int_t)o.tpm);
    if (req == NULL) {
        fprintf(stderr, "mlxctl: --name and --models must be UTF-8 text\n");
        rc = MLX_EUSAGE;
        goto out;
    }
    if ((rc = mlx_json_dump(req, &req_text, NULL)) != 0) {
        fprintf(stderr, "mlxctl: out of memory\n");
        goto out;
    }
    if ((rc = ctl_request(&o.common, "POST", "/api/v1/keys", req_text, &body, &raw)) != 0)
        goto out;
    const char *key = json_string_value(json_object_get(body, "key"));
    if (key == NULL) {
        fprintf(stderr, "mlxctl: the coordinator's answer has no 'key'; are mlxctl and "
                        "mlx-coordinator the same release?\n");
        rc = MLX_EPROTO;
        goto out;
    }
    if (o.common.json)
        printf("%s\n", raw);
    else
        printf("%s\n", key);
    fprintf(stderr,
            "Created the %s key '%s'. Store it now: it will not be shown again.\n",
            o.scope, o.name);
out:
    json_decref(req);
    json_decref(body);
    mlx_free(req_text);
    mlx_free(raw);
    mlx_config_free(cmd, &o);
    mlx_config_free_args(&args);
    return rc;
}

const mlx_cmd ctl_cmd_keys_create = {
    .name = "keys create",
    .summary = "create an API key and print it (shown only this once)",
    .about =
        "The key goes to stdout, alone; the coordinator keeps only a salted hash of\n"
        "it. While no key exists the coordinator accepts only loopback clients, so\n"
        "create the first one, with --scope admin, on the coordinator's machine.\n"
        "From then on every request needs a key (--api-key or MLX_API_KEY).",
    .opts = create_opts,
    .run = keys_create,
};

/* ---- list ---------------------------------------------------------------- */

struct list_opts {
    ctl_opts common;
};

static const mlx_opt list_opts[] = {
    CTL_COMMON_OPTS(struct list_opts),
    {NULL},
};

static int64_t i64(const json_t *obj, const char *key)
{
    return (int64_t)json_integer_value(json_object_get(obj, key));
}

static const char *str(const json_t *obj, const char *key)
{
    const char *s = json_string_value(json_object_get(obj, key));
    return s != NULL ? s : "?";
}

static void rate_cell(ctl_table *t, int64_t rate)
{
    if (rate > 0)
        ctl_table_cell(t, CTL_PLAIN, "%lld", (long long)rate);
    else
        ctl_table_cell(t, CTL_DIM, "-");
}

static void print_keys(const json_t *keys)
{
    static const char *const headers[] = {"NAME", "PREFIX",  "SCOPE",     "MODELS", "RPM",
                                          "TPM",  "CREATED", "LAST USED", "STATE"};
    ctl_table *t = ctl_table_new(headers, sizeof headers / sizeof headers[0]);
    size_t i;
    const json_t *k;
    json_array_foreach(keys, i, k)
    {
        bool active = strcmp(str(k, "state"), "active") == 0;
        ctl_table_cell(t, CTL_PLAIN, "%s", str(k, "name"));
        ctl_table_cell(t, CTL_PLAIN, "%s", str(k, "prefix"));
        ctl_table_cell(t, CTL_PLAIN, "%s", str(k, "scope"));
        ctl_table_cell(t, CTL_PLAIN, "%s", str(k, "models"));
        rate_cell(t, i64(k, "rpm"));
        rate_cell(t, i64(k, "tpm"));
        char age[16];
        ctl_format_age(i64(k, "created_unix_ms"), age, sizeof age);
        ctl_table_cell(t, CTL_PLAIN, "%s ago", age);
        int64_t used = i64(k, "last_used_unix_ms");
        if (used > 0) {
            ctl_format_age(used, age, sizeof age);
            ctl_table_cell(t, CTL_PLAIN, "%s ago", age);
        } else {
            ctl_table_cell(t, CTL_DIM, "never");
        }
        ctl_table_cell(t, active ? CTL_GREEN : CTL_DIM, "%s", str(k, "state"));
    }
    ctl_table_print(t);
    ctl_table_free(t);
}

static int keys_list(const mlx_program *prog, const mlx_cmd *cmd, int argc, char **argv)
{
    static const ctl_list_view v = {
        "/api/v1/keys", "keys",
        "No API keys yet, so the coordinator accepts only loopback clients. "
        "Create one with 'mlxctl keys create --name NAME --scope admin'.",
        print_keys};
    struct list_opts o = {0};
    mlx_args args = {0};
    int rc = mlx_cli_load(prog, cmd, argc, argv, &o, &args);
    if (rc == 0 && !args.help)
        rc = ctl_list(&o.common, &v);
    mlx_config_free(cmd, &o);
    mlx_config_free_args(&args);
    return rc;
}

const mlx_cmd ctl_cmd_keys_list = {
    .name = "keys list",
    .summary = "list the API keys (never the keys themselves)",
    .about = "PREFIX is the key's public start, enough to tell keys apart. Revoked\n"
             "keys stay in the list with the state revoked.",
    .opts = list_opts,
    .run = keys_list,
};

/* ---- revoke -------------------------------------------------------------- */

static bool name_ok(const char *name)
{
    size_t n = strlen(name);
    if (n == 0 || n > 63 || name[0] == '.' || name[0] == '_' || name[0] == '-')
        return false;
    for (size_t i = 0; i < n; i++) {
        char c = name[i];
        bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
                  (c >= '0' && c <= '9') || c == '.' || c == '_' || c == '-';
        if (!ok)
            return false;
    }
    return true;
}

static int keys_revoke(const mlx_program *prog, const mlx_cmd *cmd, int argc, char **argv)
{
    struct list_opts o = {0};
    mlx_args args = {0};
    json_t *body = NULL;
    char *raw = NULL;
    int rc = mlx_cli_load(prog, cmd, argc, argv, &o, &args);
    if (rc != 0 || args.help)
        goto out;
    const char *name = args.argv[0];
    /* Checked here because the name becomes part of the URL's path. */
    if (!name_ok(name)) {
        fprintf(stderr,
                "mlxctl: no key can be named '%.64s': names are 1 to 63 letters, digits, "
                "'.', '_' or '-'; see mlxctl keys list\n",
                name);
        rc = MLX_EUSAGE;
        goto out;
    }
    char path[128];
    snprintf(path, sizeof path, "/api/v1/keys/%s", name);
    if ((rc = ctl_request(&o.common, "DELETE", path, NULL, &body, &raw)) != 0)
        goto out;
    if (o.common.json)
        printf("%s\n", raw);
    else
        printf("Revoked the key '%s'; it is refused from now on.\n", name);
out:
    json_decref(body);
    mlx_free(raw);
    mlx_config_free(cmd, &o);
    mlx_config_free_args(&args);
    return rc;
}

const mlx_cmd ctl_cmd_keys_revoke = {
    .name = "keys revoke",
    .args = "NAME",
    .summary = "revoke an API key: it is refused from now on",
    .opts = list_opts,
    .min_args = 1,
    .max_args = 1,
    .run = keys_revoke,
};
