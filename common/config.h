/*
 * config.h — command-line flags, environment variables and INI files.
 *
 * Every option of every command is one mlx_opt row; the same row makes the
 * flag (--heartbeat-ms), the environment variable (MLX_HEARTBEAT_MS), the INI
 * key (heartbeat-ms, or heartbeat_ms) and the line in --help. Values are
 * resolved in this order, later winning:
 *
 *   1. the default in the row        (no file is ever needed)
 *   2. the INI file from --config FILE or MLX_CONFIG
 *   3. the environment
 *   4. the command line
 *
 * INI keys may sit before any section or under the program's own section
 * ([agent], [coordinator], [mlxctl]); the sections of the other programs are
 * skipped, so one file can serve a whole machine. A key no command of the
 * program knows, an unknown section or a value that does not parse is an
 * error whose sentence names the file, line and key (exit status 2).
 *
 * Values land in the caller's struct at each row's offset: MLX_OPT_STR and
 * MLX_OPT_PATH as `char *` (owned by the struct, freed by mlx_config_free),
 * MLX_OPT_INT as int64_t, MLX_OPT_FLOAT as double, MLX_OPT_BOOL as bool,
 * MLX_OPT_LIST as mlx_strlist.
 *
 * Lifecycle: zero the values struct, mlx_config_load, use it,
 * mlx_config_free — also after a failed load, which may have filled part.
 *
 * Thread safety: call from the main thread before starting others.
 */
#ifndef MLX_COMMON_CONFIG_H
#define MLX_COMMON_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "common/err.h"

typedef enum mlx_opt_kind {
    MLX_OPT_STR,
    MLX_OPT_PATH,  /* a string whose leading "~/" becomes $HOME/ */
    MLX_OPT_INT,   /* within [min, max] */
    MLX_OPT_FLOAT, /* a decimal number, stored as double (checked by its user) */
    MLX_OPT_BOOL,  /* a bare flag means true */
    MLX_OPT_LIST,  /* repeatable flag; the command line replaces env and file */
} mlx_opt_kind;

typedef struct mlx_strlist {
    char **items; /* owned */
    size_t n;
} mlx_strlist;

/* Extra validation for a string value; returns 0 or MLX_EINVAL with a sentence. */
typedef int (*mlx_opt_check)(const char *value, mlx_err *err);

typedef struct mlx_opt {
    const char *name; /* "heartbeat-ms"; NULL ends a table */
    char short_name;  /* 'n' for -n, or 0 */
    mlx_opt_kind kind;
    size_t offset;       /* offsetof(values struct, field) */
    const char *def;     /* default as text; NULL for none */
    const char *metavar; /* "N", "DIR" in --help */
    const char *help;
    int64_t min, max;    /* MLX_OPT_INT bounds (both 0: any value) */
    mlx_opt_check check; /* optional, for STR/PATH/LIST */
    /* A value for one run only (--name of a model, --apply, --sha256): read
     * from the command line, never from the environment or a file, where it
     * would apply to every run — or mean another command's option of the
     * same name. */
    bool cli_only;
} mlx_opt;

struct mlx_program;
struct mlx_cmd;

/* Runs a command; argv holds the words after the command name. Returns 0 or
 * a negative MLX_E* code (already reported to the user). */
typedef int (*mlx_cmd_run)(const struct mlx_program *prog, const struct mlx_cmd *cmd,
                           int argc, char **argv);

typedef struct mlx_cmd {
    const char *name;    /* "serve", or "cache scan" */
    const char *args;    /* positionals in usage, "MODEL PROMPT"; NULL for none */
    const char *summary; /* one line for the command list */
    const char *about;   /* a paragraph for --help; may be NULL */
    const mlx_opt *opts; /* terminated by a row whose name is NULL */
    int min_args, max_args;
    mlx_cmd_run run;
    /* Runs until SIGINT or SIGTERM, waiting for them with
     * mlx_cli_wait_signal: they are blocked before run starts any thread.
     * Other commands keep the default: Ctrl-C stops them. */
    bool daemon;
} mlx_cmd;

typedef struct mlx_program {
    const char *name;    /* "mlx-agent" */
    const char *section; /* "agent" */
    const char *summary;
    const mlx_cmd *const *cmds; /* NULL-terminated */
} mlx_program;

typedef struct mlx_args {
    bool help;   /* --help or -h was given: print help and exit 0 */
    int argc;    /* positional arguments, borrowed from argv */
    char **argv; /* owned array (free with mlx_config_free_args) */
} mlx_args;

/* Resolves the options of cmd from defaults, file, environment and argv
 * (argv[0] is the first word after the command name). Returns 0,
 * MLX_EUSAGE for bad flags or positionals, or MLX_ECONFIG for a bad file,
 * environment variable or value; err says which key and why. */
int mlx_config_load(const mlx_program *prog, const mlx_cmd *cmd, int argc, char **argv,
                    void *values, mlx_args *args, mlx_err *err);

/* The INI part of mlx_config_load on text already in memory (name is used in
 * sentences). Exposed for tests and the fuzzer. */
int mlx_config_parse_ini(const mlx_program *prog, const mlx_cmd *cmd, const char *text,
                         const char *name, void *values, mlx_err *err);

/* Frees the strings and lists a load put in values (safe after a failure). */
void mlx_config_free(const mlx_cmd *cmd, void *values);
void mlx_config_free_args(mlx_args *args);

/* True when some command of prog has an option of this name and it takes a
 * value (so "--name VALUE" spans two words). */
bool mlx_config_takes_value(const mlx_program *prog, const char *flag);

/* Finds the command named by argv[0] (and argv[1] for two-word commands such
 * as "cache scan"); sets *used to the number of words consumed. NULL if none. */
const mlx_cmd *mlx_config_find_cmd(const mlx_program *prog, int argc, char **argv,
                                   int *used);

void mlx_config_print_help(const mlx_program *prog, const mlx_cmd *cmd, FILE *out);
void mlx_config_print_commands(const mlx_program *prog, FILE *out);

/* The environment variable of an option: "MLX_" + upper-case name, '-' → '_'. */
void mlx_config_env_name(const char *opt_name, char *out, size_t size);

/* Ready-made checks for mlx_opt.check. */
int mlx_check_nng_url(const char *value, mlx_err *err);
int mlx_check_hostport(const char *value, mlx_err *err);
int mlx_check_http_url(const char *value, mlx_err *err);
int mlx_check_log_level(const char *value, mlx_err *err);

#endif
