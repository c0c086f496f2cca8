/* config.c — defaults, INI file, environment and flags, in that order. */
#include "common/config.h"

#include <ctype.h>
#include <ini.h>
#include <stdlib.h>
#include <string.h>

#include "common/alloc.h"
#include "common/log.h"
#include "common/parse.h"
#include "common/path.h"

/* The sections one shared INI file may hold; each program reads its own. */
static const char *const known_sections[] = {"agent", "coordinator", "mlxctl"};

/* "heartbeat_ms" and "heartbeat-ms" name the same option. */
static bool same_name(const char *opt_name, const char *given)
{
    for (; *opt_name != '\0' && *given != '\0'; opt_name++, given++) {
        char g = *given == '_' ? '-' : *given;
        if (*opt_name != g)
            return false;
    }
    return *opt_name == *given;
}

static const mlx_opt *find_opt(const mlx_cmd *cmd, const char *name)
{
    for (const mlx_opt *o = cmd->opts; o != NULL && o->name != NULL; o++) {
        if (same_name(o->name, name))
            return o;
    }
    return NULL;
}

static const mlx_opt *find_short(const mlx_cmd *cmd, char c)
{
    for (const mlx_opt *o = cmd->opts; o != NULL && o->name != NULL; o++) {
        if (o->short_name != 0 && o->short_name == c)
            return o;
    }
    return NULL;
}

/* True when some command of prog reads name from a file. */
static bool program_knows(const mlx_program *prog, const char *name)
{
    for (const mlx_cmd *const *c = prog->cmds; *c != NULL; c++) {
        const mlx_opt *o = find_opt(*c, name);
        if (o != NULL && !o->cli_only)
            return true;
    }
    return false;
}

bool mlx_config_takes_value(const mlx_program *prog, const char *flag)
{
    for (const mlx_cmd *const *c = prog->cmds; *c != NULL; c++) {
        const mlx_opt *o = find_opt(*c, flag);
        if (o != NULL)
            return o->kind != MLX_OPT_BOOL;
    }
    return strcmp(flag, "config") == 0;
}

void mlx_config_env_name(const char *opt_name, char *out, size_t size)
{
    size_t n = 0;
    const char *prefix = "MLX_";
    for (const char *p = prefix; *p != '\0' && n + 1 < size; p++)
        out[n++] = *p;
    for (const char *p = opt_name; *p != '\0' && n + 1 < size; p++)
        out[n++] = *p == '-' ? '_' : (char)toupper((unsigned char)*p);
    out[n] = '\0';
}

static void free_list(mlx_strlist *list)
{
    for (size_t i = 0; i < list->n; i++)
        mlx_free(list->items[i]);
    mlx_free(list->items);
    list->items = NULL;
    list->n = 0;
}

static int list_push(mlx_strlist *list, const char *item)
{
    char **items = mlx_realloc(list->items, (list->n + 1) * sizeof *items);
    if (items == NULL)
        return MLX_ENOMEM;
    list->items = items;
    items[list->n] = mlx_strdup(item);
    if (items[list->n] == NULL)
        return MLX_ENOMEM;
    list->n++;
    return 0;
}

/* Where a value came from: a list value from a flag is one item, from
 * anywhere else a comma-separated list. */
typedef enum value_source {
    FROM_TEXT, /* default, file or environment */
    FROM_FLAG,
} value_source;

/* Stores text as opt's value; the sentence in err is about the value only,
 * the caller adds where it came from. */
static int set_value(const mlx_opt *opt, void *values, const char *text,
                     value_source source, mlx_err *err)
{
    char *field = (char *)values + opt->offset;
    int rc;
    switch (opt->kind) {
    case MLX_OPT_STR:
    case MLX_OPT_PATH: {
        if (opt->check != NULL && (rc = opt->check(text, err)) != 0)
            return rc;
        char *copy = NULL;
        if (opt->kind == MLX_OPT_PATH)
            rc = mlx_path_expand_user(text, &copy, err);
        else
            rc = (copy = mlx_strdup(text)) != NULL ? 0 : MLX_ENOMEM;
        if (rc != 0)
            return rc;
        char **slot = (char **)(void *)field;
        mlx_free(*slot);
        *slot = copy;
        return 0;
    }
    case MLX_OPT_INT: {
        int64_t v;
        if ((rc = mlx_parse_int64(text, &v, err)) != 0)
            return rc;
        if ((opt->min != 0 || opt->max != 0) && (v < opt->min || v > opt->max))
            return mlx_err_set(err, MLX_EINVAL,
                               "%lld is out of range; use a value from %lld to %lld",
                               (long long)v, (long long)opt->min, (long long)opt->max);
        memcpy(field, &v, sizeof v);
        return 0;
    }
    case MLX_OPT_FLOAT: {
        double v;
        if ((rc = mlx_parse_double(text, &v, err)) != 0)
            return rc;
        memcpy(field, &v, sizeof v);
        return 0;
    }
    case MLX_OPT_BOOL: {
        bool b;
        if ((rc = mlx_parse_bool(text, &b, err)) != 0)
            return rc;
        memcpy(field, &b, sizeof b);
        return 0;
    }
    case MLX_OPT_LIST: {
        /* Environment and file give a comma-separated list; each flag one item. */
        mlx_strlist *list = (mlx_strlist *)(void *)field;
        char *copy = mlx_strdup(text);
        if (copy == NULL)
            return MLX_ENOMEM;
        rc = 0;
        for (char *item = copy, *next; item != NULL && rc == 0; item = next) {
            next = source == FROM_FLAG ? NULL : strchr(item, ',');
            if (next != NULL)
                *next++ = '\0';
            if (*item == '\0')
                continue;
            if (opt->check != NULL && (rc = opt->check(item, err)) != 0)
                break;
            char *expanded = NULL;
            if ((rc = mlx_path_expand_user(item, &expanded, err)) != 0)
                break;
            rc = list_push(list, expanded);
            mlx_free(expanded);
        }
        mlx_free(copy);
        return rc;
    }
    }
    return mlx_err_set(err, MLX_EINTERNAL, "option %s has an unknown kind", opt->name);
}

void mlx_config_free(const mlx_cmd *cmd, void *values)
{
    for (const mlx_opt *o = cmd->opts; o != NULL && o->name != NULL; o++) {
        char *field = (char *)values + o->offset;
        if (o->kind == MLX_OPT_STR || o->kind == MLX_OPT_PATH) {
            char **slot = (char **)(void *)field;
            mlx_free(*slot);
            *slot = NULL;
        } else if (o->kind == MLX_OPT_LIST) {
            free_list((mlx_strlist *)(void *)field);
        }
    }
}

void mlx_config_free_args(mlx_args *args)
{
    mlx_free(args->argv);
    args->argv = NULL;
    args->argc = 0;
}

/* ---- INI file ---------------------------------------------------------- */

struct ini_ctx {
    const mlx_program *prog;
    const mlx_cmd *cmd;
    void *values;
    const char *next; /* the text not yet handed to inih */
    int line;         /* the line inih is working on (1-based) */
    int first_line;   /* the line of the problem in first */
    mlx_err first;    /* the first problem the handler found */
};

/* inih's reader: hands over one line at a time (fgets-like) and counts them,
 * so the handler knows the line of the key it is given. Lines are never
 * longer than num - 2 here (mlx_config_parse_ini checks first). */
static char *ini_read_line(char *str, int num, void *stream)
{
    struct ini_ctx *ctx = stream;
    if (ctx->next[0] == '\0' || num < 2)
        return NULL;
    int n = 0;
    while (n < num - 1 && ctx->next[n] != '\0') {
        str[n] = ctx->next[n];
        if (ctx->next[n++] == '\n')
            break;
    }
    str[n] = '\0';
    ctx->next += n;
    ctx->line++;
    return str;
}

static int on_ini_entry(void *user, const char *section, const char *name,
                        const char *value)
{
    struct ini_ctx *ctx = user;
    if (ctx->first.code != 0)
        return 1; /* keep only the first error */
    ctx->first_line = ctx->line;
    if (section[0] != '\0' && strcmp(section, ctx->prog->section) != 0) {
        for (size_t i = 0; i < sizeof known_sections / sizeof known_sections[0]; i++) {
            if (strcmp(section, known_sections[i]) == 0)
                return 1; /* another program's settings */
        }
        mlx_err_set(&ctx->first, MLX_ECONFIG,
                    "unknown section [%s]; use [agent], [coordinator] or [mlxctl]",
                    section);
        return 0;
    }
    if (!program_knows(ctx->prog, name)) {
        mlx_err_set(&ctx->first, MLX_ECONFIG, "unknown key '%s' for %s", name,
                    ctx->prog->name);
        return 0;
    }
    const mlx_opt *opt = find_opt(ctx->cmd, name);
    if (opt == NULL || opt->cli_only)
        return 1; /* a key for another command of this program */
    mlx_err e;
    mlx_err_clear(&e);
    int rc = set_value(opt, ctx->values, value, FROM_TEXT, &e);
    if (rc != 0) {
        mlx_err_set(&ctx->first, rc == MLX_ENOMEM ? rc : MLX_ECONFIG, "%s: %s", name,
                    e.msg);
        return 0;
    }
    return 1;
}

int mlx_config_parse_ini(const mlx_program *prog, const mlx_cmd *cmd, const char *text,
                         const char *name, void *values, mlx_err *err)
{
    /* inih cuts lines at INI_MAX_LINE and would read the rest as another
     * line; refuse such a line instead of guessing. */
    int line_no = 1;
    size_t line_len = 0;
    for (const char *p = text; *p != '\0'; p++) {
        if (*p == '\n') {
            line_no++;
            line_len = 0;
        } else if (++line_len >= INI_MAX_LINE - 1) {
            return mlx_err_set(err, MLX_ECONFIG,
                               "%s line %d: longer than %d characters; shorten it", name,
                               line_no, INI_MAX_LINE - 2);
        }
    }
    struct ini_ctx ctx = {.prog = prog, .cmd = cmd, .values = values, .next = text};
    mlx_err_clear(&ctx.first);
    /* inih returns the line of the first error of either kind: a line it
     * cannot parse or one our handler refused. */
    int line = ini_parse_stream(ini_read_line, &ctx, on_ini_entry, &ctx);
    if (line == 0)
        return 0;
    if (line == -2)
        return mlx_err_set(err, MLX_ENOMEM, "out of memory reading %s", name);
    if (ctx.first.code == MLX_ENOMEM)
        return mlx_err_set(err, MLX_ENOMEM, "out of memory reading %s", name);
    if (ctx.first.code == 0 || ctx.first_line != line)
        return mlx_err_set(err, MLX_ECONFIG,
                           "%s line %d: not a 'key = value' line or a [section]", name,
                           line);
    return mlx_err_set(err, MLX_ECONFIG, "%s line %d: %s", name, line, ctx.first.msg);
}

static int load_file(const mlx_program *prog, const mlx_cmd *cmd, const char *path,
                     void *values, mlx_err *err)
{
    char *text = NULL;
    mlx_err e;
    int rc = mlx_path_read_small(path, MLX_MAX_CONFIG_FILE, &text, &e);
    if (rc == MLX_ETOOBIG)
        return mlx_err_set(err, MLX_ECONFIG,
                           "the configuration file %s is larger than %d bytes", path,
                           MLX_MAX_CONFIG_FILE);
    if (rc == MLX_ENOMEM)
        return mlx_err_set(err, rc, "out of memory reading %s", path);
    if (rc != 0)
        return mlx_err_set(err, MLX_ECONFIG,
                           "cannot read the configuration file given with --config or "
                           "MLX_CONFIG: %s",
                           e.msg);
    rc = mlx_config_parse_ini(prog, cmd, text, path, values, err);
    mlx_free(text);
    return rc;
}

/* ---- environment ------------------------------------------------------- */

static int load_env(const mlx_cmd *cmd, void *values, mlx_err *err)
{
    for (const mlx_opt *o = cmd->opts; o != NULL && o->name != NULL; o++) {
        char env[128];
        mlx_config_env_name(o->name, env, sizeof env);
        const char *text = o->cli_only ? NULL : getenv(env);
        if (text == NULL)
            continue;
        if (o->kind == MLX_OPT_LIST)
            free_list((mlx_strlist *)(void *)((char *)values + o->offset));
        mlx_err e;
        mlx_err_clear(&e);
        int rc = set_value(o, values, text, FROM_TEXT, &e);
        if (rc == MLX_ENOMEM)
            return mlx_err_set(err, rc, "out of memory");
        if (rc != 0)
            return mlx_err_set(err, MLX_ECONFIG, "%s: %s", env, e.msg);
    }
    return 0;
}

/* ---- command line ------------------------------------------------------ */

struct flag_value {
    const mlx_opt *opt;
    const char *text;  /* NULL for a bare boolean flag */
    const char *given; /* the flag as typed, for messages */
};

static int usage_error(mlx_err *err, const mlx_program *prog, const mlx_cmd *cmd,
                       const char *what)
{
    return mlx_err_set(err, MLX_EUSAGE, "%s; see '%s %s --help'", what, prog->name,
                       cmd->name);
}

int mlx_config_load(const mlx_program *prog, const mlx_cmd *cmd, int argc, char **argv,
                    void *values, mlx_args *args, mlx_err *err)
{
    int rc = 0;
    struct flag_value *flags = mlx_calloc((size_t)argc + 1, sizeof *flags);
    args->argv = mlx_calloc((size_t)argc + 1, sizeof *args->argv);
    args->argc = 0;
    args->help = false;
    if (flags == NULL || args->argv == NULL) {
        rc = mlx_err_set(err, MLX_ENOMEM, "out of memory");
        goto out;
    }

    /* Pass 1: split argv into flags and positionals; find --config and --help. */
    size_t n_flags = 0;
    const char *config_path = getenv("MLX_CONFIG");
    bool positional_only = false;
    char what[MLX_MAX_ERR_MSG];
    for (int i = 0; i < argc; i++) {
        const char *a = argv[i];
        if (positional_only || a[0] != '-' || a[1] == '\0') {
            args->argv[args->argc++] = argv[i];
            continue;
        }
        if (strcmp(a, "--") == 0) {
            positional_only = true;
            continue;
        }
        if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) {
            args->help = true;
            continue;
        }
        const mlx_opt *opt;
        const char *inline_value = NULL;
        char name[64];
        if (a[1] == '-') {
            const char *eq = strchr(a + 2, '=');
            size_t len = eq != NULL ? (size_t)(eq - (a + 2)) : strlen(a + 2);
            if (len >= sizeof name)
                len = sizeof name - 1;
            memcpy(name, a + 2, len);
            name[len] = '\0';
            inline_value = eq != NULL ? eq + 1 : NULL;
            if (strcmp(name, "config") == 0) {
                if (inline_value == NULL && i + 1 >= argc) {
                    rc = usage_error(err, prog, cmd, "--config needs a value (FILE)");
                    goto out;
                }
                config_path = inline_value != NULL ? inline_value : argv[++i];
                continue;
            }
            opt = find_opt(cmd, name);
        } else {
            opt = a[2] == '\0' ? find_short(cmd, a[1]) : NULL;
        }
        if (opt == NULL) {
            snprintf(what, sizeof what, "unknown option %s for '%s %s'", a, prog->name,
                     cmd->name);
            rc = usage_error(err, prog, cmd, what);
            goto out;
        }
        const char *text = inline_value;
        if (text == NULL && opt->kind != MLX_OPT_BOOL) {
            if (i + 1 >= argc) {
                snprintf(what, sizeof what, "%s needs a value (%s)", a,
                         opt->metavar != NULL ? opt->metavar : "VALUE");
                rc = usage_error(err, prog, cmd, what);
                goto out;
            }
            text = argv[++i];
        }
        flags[n_flags++] = (struct flag_value){opt, text, a};
    }
    if (args->help)
        goto out;
    if (args->argc < cmd->min_args || args->argc > cmd->max_args) {
        if (cmd->args != NULL)
            snprintf(what, sizeof what, "'%s %s' takes %s", prog->name, cmd->name,
                     cmd->args);
        else
            snprintf(what, sizeof what, "'%s %s' takes no arguments (got '%s')",
                     prog->name, cmd->name, args->argc > 0 ? args->argv[0] : "");
        rc = usage_error(err, prog, cmd, what);
        goto out;
    }

    /* Pass 2: defaults < file < environment < flags. */
    for (const mlx_opt *o = cmd->opts; o != NULL && o->name != NULL; o++) {
        if (o->def == NULL)
            continue;
        mlx_err e;
        mlx_err_clear(&e);
        rc = set_value(o, values, o->def, FROM_TEXT, &e);
        if (rc == MLX_ENOMEM) {
            mlx_err_set(err, rc, "out of memory");
            goto out;
        }
        if (rc != 0) {
            rc = mlx_err_set(err, MLX_EINTERNAL, "default of --%s: %s", o->name, e.msg);
            goto out;
        }
    }
    if (config_path != NULL && (rc = load_file(prog, cmd, config_path, values, err)) != 0)
        goto out;
    if ((rc = load_env(cmd, values, err)) != 0)
        goto out;
    for (size_t i = 0; i < n_flags; i++) {
        const mlx_opt *o = flags[i].opt;
        if (o->kind == MLX_OPT_LIST) {
            /* The first flag of a list replaces what file and env gave. */
            bool first = true;
            for (size_t j = 0; j < i; j++)
                first = first && flags[j].opt != o;
            if (first)
                free_list((mlx_strlist *)(void *)((char *)values + o->offset));
        }
        mlx_err e;
        mlx_err_clear(&e);
        rc = set_value(o, values, flags[i].text != NULL ? flags[i].text : "true",
                       FROM_FLAG, &e);
        if (rc == MLX_ENOMEM) {
            mlx_err_set(err, rc, "out of memory");
            goto out;
        }
        if (rc != 0) {
            rc = mlx_err_set(err, MLX_ECONFIG, "%s: %s", flags[i].given, e.msg);
            goto out;
        }
    }
out:
    mlx_free(flags);
    if (rc != 0)
        mlx_config_free_args(args);
    return rc;
}

const mlx_cmd *mlx_config_find_cmd(const mlx_program *prog, int argc, char **argv,
                                   int *used)
{
    for (const mlx_cmd *const *c = prog->cmds; *c != NULL; c++) {
        const char *name = (*c)->name;
        const char *space = strchr(name, ' ');
        if (space == NULL) {
            if (argc >= 1 && strcmp(argv[0], name) == 0) {
                *used = 1;
                return *c;
            }
        } else if (argc >= 2 && strncmp(argv[0], name, (size_t)(space - name)) == 0 &&
                   argv[0][space - name] == '\0' && strcmp(argv[1], space + 1) == 0) {
            *used = 2;
            return *c;
        }
    }
    return NULL;
}

/* ---- help -------------------------------------------------------------- */

void mlx_config_print_commands(const mlx_program *prog, FILE *out)
{
    fprintf(out, "%s — %s\n\nUsage: %s COMMAND [options]\n\nCommands:\n", prog->name,
            prog->summary, prog->name);
    for (const mlx_cmd *const *c = prog->cmds; *c != NULL; c++)
        fprintf(out, "  %-22s %s\n", (*c)->name, (*c)->summary);
    fprintf(out, "\nRun '%s COMMAND --help' for the options of a command.\n", prog->name);
}

void mlx_config_print_help(const mlx_program *prog, const mlx_cmd *cmd, FILE *out)
{
    fprintf(out, "Usage: %s %s [options]%s%s\n\n%s\n", prog->name, cmd->name,
            cmd->args != NULL ? " " : "", cmd->args != NULL ? cmd->args : "",
            cmd->summary);
    if (cmd->about != NULL)
        fprintf(out, "\n%s\n", cmd->about);
    fprintf(out, "\nOptions:\n");
    for (const mlx_opt *o = cmd->opts; o != NULL && o->name != NULL; o++) {
        char left[64];
        char env[96];
        const char *meta = o->kind == MLX_OPT_BOOL ? ""
                           : o->metavar            ? o->metavar
                                                   : "VALUE";
        if (o->short_name != 0)
            snprintf(left, sizeof left, "-%c, --%s%s%s", o->short_name, o->name,
                     meta[0] ? " " : "", meta);
        else
            snprintf(left, sizeof left, "    --%s%s%s", o->name, meta[0] ? " " : "",
                     meta);
        mlx_config_env_name(o->name, env, sizeof env);
        fprintf(out, "  %-28s %s", left, o->help);
        if (o->def != NULL && o->def[0] != '\0' && o->kind != MLX_OPT_BOOL)
            fprintf(out, " (default %s)", o->def);
        if (o->cli_only)
            fprintf(out, "\n");
        else
            fprintf(out, " [%s]\n", env);
    }
    fprintf(out, "  %-28s %s [MLX_CONFIG]\n", "    --config FILE",
            "INI file with settings; flags win over the environment, which wins over the "
            "file");
    fprintf(out, "  %-28s %s\n", "-h, --help", "show this help");
}

/* ---- ready-made checks ------------------------------------------------- */

int mlx_check_nng_url(const char *value, mlx_err *err)
{
    char host[MLX_MAX_ADDRESS + 1];
    int port;
    return mlx_parse_nng_url(value, host, sizeof host, &port, err);
}

int mlx_check_hostport(const char *value, mlx_err *err)
{
    char host[MLX_MAX_ADDRESS + 1];
    int port;
    return mlx_parse_hostport(value, host, sizeof host, &port, err);
}

int mlx_check_http_url(const char *value, mlx_err *err)
{
    const char *rest = NULL;
    if (strncmp(value, "http://", 7) == 0)
        rest = value + 7;
    else if (strncmp(value, "https://", 8) == 0)
        rest = value + 8;
    if (rest == NULL || rest[0] == '\0' || rest[0] == '/')
        return mlx_err_set(err, MLX_EINVAL,
                           "'%s' is not an HTTP address; use http://HOST:PORT", value);
    return 0;
}

int mlx_check_log_level(const char *value, mlx_err *err)
{
    mlx_log_level level;
    return mlx_log_parse_level(value, &level, err);
}
