/*
 * cli.h — the shared main() of the fleet's programs.
 *
 * Finds the command in argv, resolves its options (config.h), prints help or
 * the version when asked, runs the command and turns its result into the
 * exit status DESIGN.md promises: 0 success, 1 failure, 2 bad usage or
 * configuration. Errors reach stderr as one sentence prefixed with the
 * program's name.
 *
 * Options of a command may also come before the command word
 * (`mlxctl --coordinator URL nodes`), as long as the program knows them.
 *
 * It also owns the process's signal disposition: SIGPIPE is ignored, and for
 * a daemon command (mlx_cmd.daemon) SIGINT and SIGTERM are blocked before
 * any thread starts, so that it can wait for them with mlx_cli_wait_signal()
 * instead of running code in a signal handler. Every other command stops at
 * Ctrl-C, which is why each must be safe to kill at any moment.
 */
#ifndef MLX_COMMON_CLI_H
#define MLX_COMMON_CLI_H

#include "common/config.h"

/* Runs the program; returns the process exit status. */
int mlx_cli_main(const mlx_program *prog, int argc, char **argv);

/* Loads cmd's options into values (see mlx_config_load). On a bad option
 * prints the sentence and returns the code; when --help was given prints the
 * help and returns 0 with args->help set, and the command should return 0. */
int mlx_cli_load(const mlx_program *prog, const mlx_cmd *cmd, int argc, char **argv,
                 void *values, mlx_args *args);

/* Blocks until SIGINT or SIGTERM arrives; returns the signal number. */
int mlx_cli_wait_signal(void);

/* Prints "prog: sentence" on stderr and returns the exit status for code. */
int mlx_cli_fail(const mlx_program *prog, int code, const mlx_err *err);

#endif
