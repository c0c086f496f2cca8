/*
 * it_cli.c — what users see from the three programs: help, bad flags, bad
 * configuration (exit 2 and a sentence naming the key), an unreachable
 * coordinator (exit 1 and what to do), a busy port or data directory, and
 * the mlxctl nodes table.
 */
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "tests/integration/cluster.h"
#include "tests/support/testutil.h"

static char *dir;

static int setup(void **state)
{
    dir = test_tmpdir("it-cli");
    return 0;
}

static int teardown(void **state)
{
    test_tmpdir_remove(dir);
    return 0;
}

/* Runs a program; checks its exit status and that stderr (or stdout) holds
 * every needle. */
static void expect(const char *bin, const char *const *args, int status,
                   const char *stream, const char *needle1, const char *needle2)
{
    char *out = NULL, *err = NULL;
    int got = h_run(bin, args, 20000, &out, &err);
    const char *text = strcmp(stream, "stdout") == 0 ? out : err;
    if (got != status)
        fail_msg("%s %s: exit %d, expected %d; stderr: %s", bin, args[0], got, status,
                 err);
    if (needle1 != NULL && strstr(text, needle1) == NULL)
        fail_msg("%s %s: %s lacks '%s': %s", bin, args[0], stream, needle1, text);
    if (needle2 != NULL && strstr(text, needle2) == NULL)
        fail_msg("%s %s: %s lacks '%s': %s", bin, args[0], stream, needle2, text);
    free(out);
    free(err);
}

static void test_help_lists_commands_and_options(void **state)
{
    const char *help[] = {"--help", NULL};
    expect("mlx-agent", help, 0, "stdout", "serve", "Commands");
    expect("mlx-coordinator", help, 0, "stdout", "serve", "Commands");
    expect("mlxctl", help, 0, "stdout", "nodes", "Commands");
    const char *serve_help[] = {"serve", "--help", NULL};
    expect("mlx-agent", serve_help, 0, "stdout", "--heartbeat-ms", "MLX_COORDINATOR");
    expect("mlx-coordinator", serve_help, 0, "stdout", "--suspect-after", "--down-after");
    const char *nodes_help[] = {"nodes", "--help", NULL};
    expect("mlxctl", nodes_help, 0, "stdout", "--json", "--coordinator");
    const char *version[] = {"--version", NULL};
    expect("mlxctl", version, 0, "stdout", "mlxctl 0.", NULL);
}

static void test_bad_usage_exits_2(void **state)
{
    const char *none[] = {NULL};
    expect("mlx-agent", none, 2, "stderr", "Usage", NULL);
    const char *unknown_cmd[] = {"frobnicate", NULL};
    expect("mlx-coordinator", unknown_cmd, 2, "stderr", "unknown command 'frobnicate'",
           "--help");
    const char *unknown_flag[] = {"serve", "--bogus", NULL};
    expect("mlx-agent", unknown_flag, 2, "stderr", "unknown option --bogus", "--help");
    const char *missing_value[] = {"serve", "--data", NULL};
    expect("mlx-coordinator", missing_value, 2, "stderr", "--data needs a value", NULL);
    const char *extra_arg[] = {"nodes", "extra", NULL};
    expect("mlxctl", extra_arg, 2, "stderr", "takes no arguments", NULL);
}

static void test_bad_configuration_exits_2_naming_the_key(void **state)
{
    char *ini = test_join(dir, "bad.ini");
    char *data = test_join(dir, "data");

    test_write_file(ini, "[coordinator]\nheartbeat-ms = 1000\nsuspect-aftr = 3\n");
    const char *c1[] = {"serve", "--config", ini, "--data", data, NULL};
    expect("mlx-coordinator", c1, 2, "stderr", "line 3", "suspect-aftr");

    test_write_file(ini, "[agent]\nheartbeat_ms = often\n");
    const char *a1[] = {"serve", "--config", ini, "--data", data, NULL};
    expect("mlx-agent", a1, 2, "stderr", "heartbeat_ms", "not a whole number");

    test_write_file(ini, "[agnet]\nname = x\n");
    expect("mlx-agent", a1, 2, "stderr", "unknown section [agnet]", NULL);

    const char *range[] = {"serve", "--data", data, "--heartbeat-ms", "0", NULL};
    expect("mlx-agent", range, 2, "stderr", "--heartbeat-ms", "out of range");

    const char *addr[] = {"serve",         "--data",         data,
                          "--coordinator", "localhost:7400", NULL};
    expect("mlx-agent", addr, 2, "stderr", "--coordinator", "tcp://HOST:PORT");

    const char *windows[] = {"serve", "--data",       data, "--suspect-after",
                             "5",     "--down-after", "5",  NULL};
    expect("mlx-coordinator", windows, 2, "stderr", "--down-after", "--suspect-after");

    const char *no_file[] = {"serve", "--config", "/nonexistent/mlx.ini", NULL};
    expect("mlx-coordinator", no_file, 2, "stderr", "/nonexistent/mlx.ini", NULL);

    setenv("MLX_HTTP", "not-an-address", 1);
    const char *env_args[] = {"serve", "--data", data, NULL};
    expect("mlx-coordinator", env_args, 2, "stderr", "MLX_HTTP", "HOST:PORT");
    unsetenv("MLX_HTTP");

    setenv("MLX_COORDINATOR", "ftp://x", 1);
    const char *ctl_env[] = {"nodes", NULL};
    expect("mlxctl", ctl_env, 2, "stderr", "MLX_COORDINATOR", "http://");
    unsetenv("MLX_COORDINATOR");
    free(ini);
    free(data);
}

static void test_flags_beat_environment_beat_file(void **state)
{
    /* Each layer names a different port; the one that wins is the one the
     * coordinator binds, which mlxctl then reaches. */
    int file_port = h_free_port(), env_port = h_free_port(), flag_port = h_free_port();
    char *ini = test_join(dir, "layers.ini");
    char *data = test_join(dir, "layers");
    char text[256], env[64], flag[64], url[64];
    snprintf(text, sizeof text,
             "[coordinator]\nhttp = 127.0.0.1:%d\ncontrol = tcp://127.0.0.1:%d\n",
             file_port, h_free_port());
    test_write_file(ini, text);
    snprintf(env, sizeof env, "127.0.0.1:%d", env_port);
    snprintf(flag, sizeof flag, "127.0.0.1:%d", flag_port);

    setenv("MLX_HTTP", env, 1);
    const char *args[] = {"serve", "--config", ini, "--data", data, "--http", flag, NULL};
    h_proc *p = h_spawn("layers", dir, "mlx-coordinator", args);
    unsetenv("MLX_HTTP");
    snprintf(url, sizeof url, "http://127.0.0.1:%d", flag_port);
    const char *ctl[] = {"--coordinator", url, "nodes", NULL};
    int64_t deadline = h_now_ms() + 10000;
    int status = -1;
    char *out = NULL;
    while (status != 0 && h_now_ms() < deadline) {
        free(out);
        status = h_run("mlxctl", ctl, 5000, &out, NULL);
    }
    assert_int_equal(status, 0);
    assert_non_null(strstr(out, "No nodes have registered yet"));
    free(out);
    assert_int_equal(h_stop(p), 0);
    free(ini);
    free(data);
}

static void test_unreachable_coordinator_is_one_sentence(void **state)
{
    char url[64];
    snprintf(url, sizeof url, "http://127.0.0.1:%d", h_free_port());
    const char *args[] = {"nodes", "--coordinator", url, NULL};
    char *err = NULL;
    assert_int_equal(h_run("mlxctl", args, 20000, NULL, &err), 1);
    assert_non_null(strstr(err, "cannot reach"));
    assert_non_null(strstr(err, "--coordinator"));
    assert_non_null(strchr(err, '\n'));
    assert_int_equal(strchr(err, '\n')[1], '\0'); /* exactly one line */
    free(err);
}

static void test_busy_port_and_data_dir_are_reported(void **state)
{
    cluster *c = cluster_create("it-cli-busy", 200, 3, 8);
    cluster_start_coordinator(c);
    cluster_add_agent(c, "first");
    assert_true(cluster_wait_node_id(c, 0, 10000));
    assert_true(cluster_wait_agent_state(c, 0, "up", 10000));

    char http[64], data[600];
    snprintf(http, sizeof http, "127.0.0.1:%d", c->http_port);
    snprintf(data, sizeof data, "%s/other", c->dir);
    const char *port_args[] = {
        "serve", "--data", data, "--http", http, "--control", "tcp://127.0.0.1:1", NULL};
    /* port 1 is privileged or closed; the HTTP port is the one in use */
    char ctl[64];
    snprintf(ctl, sizeof ctl, "tcp://127.0.0.1:%d", h_free_port());
    port_args[6] = ctl;
    expect("mlx-coordinator", port_args, 1, "stderr", "in use", "--http");

    const char *same_dir[] = {"serve",  "--data",      c->agents[0].data,
                              "--http", "127.0.0.1:1", NULL};
    expect("mlx-agent", same_dir, 1, "stderr", "already using", c->agents[0].data);

    /* The table: a header row and one row per node, no colour off a terminal. */
    const char *nodes[] = {"--coordinator", c->http_url, "nodes", NULL};
    char *out = NULL;
    assert_int_equal(h_run("mlxctl", nodes, 10000, &out, NULL), 0);
    assert_non_null(strstr(out, "NAME"));
    assert_non_null(strstr(out, "STATE"));
    assert_non_null(strstr(out, "first"));
    assert_non_null(strstr(out, c->agents[0].node_id));
    assert_null(strchr(out, '\033'));
    int lines = 0;
    for (const char *p = out; *p; p++)
        lines += *p == '\n';
    assert_int_equal(lines, 2);
    free(out);
    cluster_destroy(c);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_help_lists_commands_and_options),
        cmocka_unit_test(test_bad_usage_exits_2),
        cmocka_unit_test(test_bad_configuration_exits_2_naming_the_key),
        cmocka_unit_test(test_flags_beat_environment_beat_file),
        cmocka_unit_test(test_unreachable_coordinator_is_one_sentence),
        cmocka_unit_test(test_busy_port_and_data_dir_are_reported),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
