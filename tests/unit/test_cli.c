/*
 * test_cli.c — common/cli, the parts that run in-process: mlx_cli_load prints
 * help on stdout for --help/-h and returns 0 with args.help set, prints
 * "prog: sentence" on stderr for a bad option and returns its code, and
 * mlx_cli_fail maps codes to DESIGN.md's exit statuses, and mlx_cli_main
 * blocks SIGINT and SIGTERM for daemons only (every other command must stop
 * at Ctrl-C). mlx_cli_wait_signal waits, so it is left to the integration
 * tests that run the real binaries.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <unistd.h>

#include <cmocka.h>

#include "common/cli.h"
#include "tests/support/testutil.h"

struct vals {
    int64_t heartbeat_ms;
    char *name;
    bool json;
};

static const mlx_opt opts[] = {
    {"heartbeat-ms", 0, MLX_OPT_INT, offsetof(struct vals, heartbeat_ms), "1000", "N",
     "heartbeat period", 100, 60000, NULL},
    {"name", 0, MLX_OPT_STR, offsetof(struct vals, name), NULL, "NAME", "node name", 0, 0,
     NULL},
    {"json", 0, MLX_OPT_BOOL, offsetof(struct vals, json), NULL, NULL, "print JSON", 0, 0,
     NULL},
    {NULL, 0, 0, 0, NULL, NULL, NULL, 0, 0, NULL},
};
static const mlx_cmd cmd_serve = {"serve", NULL, "run the coordinator", NULL, opts, 0,
                                  0,       NULL};
static const mlx_cmd *const cmds[] = {&cmd_serve, NULL};
static const mlx_program prog = {"mlx-coordinator", "coordinator",
                                 "the fleet's coordinator", cmds};

/* Redirects one of stdout/stderr into a file for the length of a call. */
struct capture {
    int fd; /* STDOUT_FILENO or STDERR_FILENO */
    int saved;
    char *dir;
    char *path;
};

static void capture_start(struct capture *c, int fd)
{
    c->fd = fd;
    c->dir = test_tmpdir("cli");
    c->path = test_join(c->dir, "out.txt");
    int file = open(c->path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    assert_true(file >= 0);
    fflush(stdout);
    fflush(stderr);
    c->saved = dup(fd);
    assert_true(c->saved >= 0);
    assert_int_equal(dup2(file, fd), fd);
    close(file);
}

/* Restores the stream; returns what was written (caller frees). */
static char *capture_end(struct capture *c)
{
    fflush(stdout);
    fflush(stderr);
    dup2(c->saved, c->fd);
    close(c->saved);
    char *text = test_read_file(c->path, NULL);
    assert_non_null(text);
    free(c->path);
    test_tmpdir_remove(c->dir);
    return text;
}

static int setup(void **state)
{
    (void)state;
    unsetenv("MLX_HEARTBEAT_MS");
    unsetenv("MLX_NAME");
    unsetenv("MLX_JSON");
    unsetenv("MLX_CONFIG");
    return 0;
}

static void test_cli_load_help_prints_usage_and_sets_help(void **state)
{
    (void)state;
    const char *flags[] = {"--help", "-h"};
    for (size_t i = 0; i < 2; i++) {
        struct vals v = {0};
        mlx_args args = {0};
        char *argv[] = {(char *)flags[i], NULL};
        struct capture out;
        capture_start(&out, STDOUT_FILENO);
        int rc = mlx_cli_load(&prog, &cmd_serve, 1, argv, &v, &args);
        char *text = capture_end(&out);
        assert_int_equal(rc, 0);
        assert_true(args.help);
        assert_non_null(strstr(text, "Usage: mlx-coordinator serve [options]"));
        assert_non_null(strstr(text, "--heartbeat-ms N"));
        assert_non_null(strstr(text, "[MLX_HEARTBEAT_MS]"));
        free(text);
        mlx_config_free(&cmd_serve, &v);
        mlx_config_free_args(&args);
    }
}

static void test_cli_load_bad_option_prints_sentence_and_returns_code(void **state)
{
    (void)state;
    struct vals v = {0};
    mlx_args args = {0};
    char *argv[] = {(char *)"--bogus", NULL};
    struct capture err;
    capture_start(&err, STDERR_FILENO);
    int rc = mlx_cli_load(&prog, &cmd_serve, 1, argv, &v, &args);
    char *text = capture_end(&err);
    assert_int_equal(rc, MLX_EUSAGE);
    assert_false(args.help);
    assert_memory_equal(text, "mlx-coordinator: ", 17);
    assert_non_null(strstr(text, "--bogus"));
    assert_non_null(strstr(text, "mlx-coordinator serve --help"));
    assert_int_equal(text[strlen(text) - 1], '\n');
    free(text);
    mlx_config_free(&cmd_serve, &v);
    mlx_config_free_args(&args);
}

static void test_cli_load_bad_value_is_config_error(void **state)
{
    (void)state;
    struct vals v = {0};
    mlx_args args = {0};
    char *argv[] = {(char *)"--heartbeat-ms", (char *)"soon", NULL};
    struct capture err;
    capture_start(&err, STDERR_FILENO);
    int rc = mlx_cli_load(&prog, &cmd_serve, 2, argv, &v, &args);
    char *text = capture_end(&err);
    assert_int_equal(rc, MLX_ECONFIG);
    assert_non_null(strstr(text, "mlx-coordinator: --heartbeat-ms"));
    assert_non_null(strstr(text, "'soon'"));
    free(text);
    mlx_config_free(&cmd_serve, &v);
    mlx_config_free_args(&args);
}

static void test_cli_load_good_options_print_nothing(void **state)
{
    (void)state;
    struct vals v = {0};
    mlx_args args = {0};
    char *argv[] = {(char *)"--name", (char *)"c1", (char *)"--json", NULL};
    struct capture out, err;
    capture_start(&out, STDOUT_FILENO);
    capture_start(&err, STDERR_FILENO);
    int rc = mlx_cli_load(&prog, &cmd_serve, 3, argv, &v, &args);
    char *err_text = capture_end(&err);
    char *out_text = capture_end(&out);
    assert_int_equal(rc, 0);
    assert_false(args.help);
    assert_string_equal(v.name, "c1");
    assert_true(v.json);
    assert_true(v.heartbeat_ms == 1000);
    assert_string_equal(out_text, "");
    assert_string_equal(err_text, "");
    free(out_text);
    free(err_text);
    mlx_config_free(&cmd_serve, &v);
    mlx_config_free_args(&args);
}

static void test_cli_fail_prints_and_maps_exit_status(void **state)
{
    (void)state;
    mlx_err e;
    mlx_err_set(&e, MLX_ECONFIG, "--data: no such directory");
    struct capture err;
    capture_start(&err, STDERR_FILENO);
    int usage = mlx_cli_fail(&prog, MLX_ECONFIG, &e);
    int other = mlx_cli_fail(&prog, MLX_EIO, NULL);
    int bad_usage = mlx_cli_fail(&prog, MLX_EUSAGE, NULL);
    char *text = capture_end(&err);
    assert_int_equal(usage, 2);
    assert_int_equal(other, 1);
    assert_int_equal(bad_usage, 2);
    assert_string_equal(text, "mlx-coordinator: --data: no such directory\n"
                              "mlx-coordinator: input/output error\n"
                              "mlx-coordinator: bad usage\n");
    free(text);
}

/* Whether SIGINT was blocked while the command ran. */
static int sigint_blocked = -1;

static int note_mask(const mlx_program *p, const mlx_cmd *c, int argc, char **argv)
{
    sigset_t now;
    pthread_sigmask(SIG_BLOCK, NULL, &now);
    sigint_blocked = sigismember(&now, SIGINT);
    return 0;
}

static void test_cli_main_blocks_signals_for_daemons_only(void **state)
{
    static const mlx_opt none[] = {{NULL, 0, 0, 0, NULL, NULL, NULL, 0, 0, NULL}};
    static const mlx_cmd tool = {
        .name = "tool", .summary = "s", .opts = none, .run = note_mask};
    static const mlx_cmd daemon = {
        .name = "daemon", .summary = "s", .opts = none, .run = note_mask, .daemon = true};
    static const mlx_cmd *const both[] = {&tool, &daemon, NULL};
    static const mlx_program p = {"prog", "agent", "a program", both};
    char *tool_argv[] = {"prog", "tool", NULL}, *daemon_argv[] = {"prog", "daemon", NULL};

    assert_int_equal(mlx_cli_main(&p, 2, tool_argv), 0);
    assert_int_equal(sigint_blocked, 0);
    assert_int_equal(mlx_cli_main(&p, 2, daemon_argv), 0);
    assert_int_equal(sigint_blocked, 1);
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGTERM);
    pthread_sigmask(SIG_UNBLOCK, &set, NULL);
}

static void test_cli_main_lists_a_group_given_alone(void **state)
{
    static const mlx_opt none[] = {{NULL, 0, 0, 0, NULL, NULL, NULL, 0, 0, NULL}};
    static const mlx_cmd scan = {
        .name = "cache scan", .summary = "find models", .opts = none, .run = note_mask};
    static const mlx_cmd gc = {
        .name = "cache gc", .summary = "free space", .opts = none, .run = note_mask};
    static const mlx_cmd *const both[] = {&scan, &gc, NULL};
    static const mlx_program p = {"prog", "agent", "a program", both};
    char *group[] = {"prog", "cache", NULL}, *other[] = {"prog", "cach", NULL};
    struct capture c;
    capture_start(&c, STDERR_FILENO);
    int status = mlx_cli_main(&p, 2, group);
    char *text = capture_end(&c);
    assert_int_equal(status, 2);
    assert_non_null(strstr(text, "prog cache needs one of these commands"));
    assert_non_null(strstr(text, "cache scan"));
    assert_non_null(strstr(text, "cache gc"));
    free(text);
    capture_start(&c, STDERR_FILENO);
    status = mlx_cli_main(&p, 2, other);
    text = capture_end(&c);
    assert_int_equal(status, 2);
    assert_non_null(strstr(text, "unknown command 'cach'"));
    free(text);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup(test_cli_load_help_prints_usage_and_sets_help, setup),
        cmocka_unit_test_setup(test_cli_load_bad_option_prints_sentence_and_returns_code,
                               setup),
        cmocka_unit_test_setup(test_cli_load_bad_value_is_config_error, setup),
        cmocka_unit_test_setup(test_cli_load_good_options_print_nothing, setup),
        cmocka_unit_test_setup(test_cli_fail_prints_and_maps_exit_status, setup),
        cmocka_unit_test(test_cli_main_blocks_signals_for_daemons_only),
        cmocka_unit_test(test_cli_main_lists_a_group_given_alone),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
