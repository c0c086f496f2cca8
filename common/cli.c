/* cli.c — command dispatch, help, exit statuses, signals. */
#include "common/cli.h"

#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "common/alloc.h"
#include "common/json.h"

int mlx_cli_fail(const mlx_program *prog, int code, const mlx_err *err)
{
    fprintf(stderr, "%s: %s\n", prog->name, mlx_err_text(err, code));
    return mlx_exit_status(code);
}

/* For daemons: SIGINT and SIGTERM wait in the kernel for sigwait, on the
 * main thread only, so no thread they start is ever interrupted. */
static void block_signals(void)
{
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &set, NULL);
}

int mlx_cli_wait_signal(void)
{
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGTERM);
    int sig = 0;
    while (sigwait(&set, &sig) != 0) {
    }
    return sig;
}

int mlx_cli_load(const mlx_program *prog, const mlx_cmd *cmd, int argc, char **argv,
                 void *values, mlx_args *args)
{
    mlx_err err;
    mlx_err_clear(&err);
    int rc = mlx_config_load(prog, cmd, argc, argv, values, args, &err);
    if (rc != 0) {
        fprintf(stderr, "%s: %s\n", prog->name, mlx_err_text(&err, rc));
        return rc;
    }
    if (args->help)
        mlx_config_print_help(prog, cmd, stdout);
    return 0;
}

/* Moves options given before the command word after it, so the command's
 * parser sees them: "--coordinator URL nodes --json" → "nodes --coordinator
 * URL --json". Returns the index of the command word, or argc if none. */
static int find_command_word(const mlx_program *prog, int argc, char **argv)
{
    int i = 1;
    while (i < argc && argv[i][0] == '-' && argv[i][1] == '-' && argv[i][2] != '\0') {
        const char *flag = argv[i] + 2;
        if (strchr(flag, '=') == NULL && mlx_config_takes_value(prog, flag))
            i++;
        i++;
    }
    return i;
}

/* "mlx-agent cache" alone: lists the commands of that group on stderr and
 * returns true; false when word starts no two-word command. */
static bool print_group(const mlx_program *prog, const char *word)
{
    size_t n = strlen(word);
    bool found = false;
    for (const mlx_cmd *const *c = prog->cmds; *c != NULL; c++) {
        if (strncmp((*c)->name, word, n) != 0 || (*c)->name[n] != ' ')
            continue;
        if (!found)
            fprintf(stderr, "%s %s needs one of these commands:\n", prog->name, word);
        fprintf(stderr, "  %-22s %s\n", (*c)->name, (*c)->summary);
        found = true;
    }
    return found;
}

int mlx_cli_main(const mlx_program *prog, int argc, char **argv)
{
    /* A peer that closes a socket must not kill us; writes report EPIPE. */
    signal(SIGPIPE, SIG_IGN);
    mlx_json_use_mlx_alloc();

    int word = find_command_word(prog, argc, argv);
    for (int i = 1; i < word && i < argc; i++) {
        if (strcmp(argv[i], "--version") == 0) {
            printf("%s %s\n", prog->name, MLX_VERSION);
            return 0;
        }
    }
    if (argc < 2 || word >= argc || strcmp(argv[1], "-h") == 0 ||
        strcmp(argv[1], "--help") == 0 || strcmp(argv[word], "help") == 0) {
        bool asked = argc >= 2;
        mlx_config_print_commands(prog, asked ? stdout : stderr);
        return asked ? 0 : 2;
    }

    int used = 0;
    const mlx_cmd *cmd = mlx_config_find_cmd(prog, argc - word, argv + word, &used);
    if (cmd == NULL && print_group(prog, argv[word]))
        return 2;
    if (cmd == NULL) {
        fprintf(stderr, "%s: unknown command '%s'; run '%s --help' for the list\n",
                prog->name, argv[word], prog->name);
        return 2;
    }

    if (cmd->daemon)
        block_signals();

    /* The command sees the options before its word and everything after it. */
    int n = (word - 1) + (argc - word - used);
    char **args = mlx_calloc((size_t)n + 1, sizeof *args);
    if (args == NULL) {
        fprintf(stderr, "%s: out of memory\n", prog->name);
        return 1;
    }
    int k = 0;
    for (int i = 1; i < word; i++)
        args[k++] = argv[i];
    for (int i = word + used; i < argc; i++)
        args[k++] = argv[i];
    int rc = cmd->run(prog, cmd, n, args);
    mlx_free(args);
    return mlx_exit_status(rc);
}
