/*
 * test_config.c — common/config: one option table gives flags, environment
 * variables and INI keys, resolved defaults < INI file < environment < flags.
 * Covers (INI files apart, in test_config_ini.c) lists (comma-separated in env/file,
 * repeated flags replace), bare boolean flags, help, usage errors, --config/MLX_CONFIG,
 * "~" in paths, the helpers (env names, command lookup, help text, ready-made checks) and
 * clean MLX_ENOMEM under allocation failure at every step.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <ini.h>

#include "common/alloc.h"
#include "common/config.h"
#include "tests/support/testutil.h"
#include "tests/unit/config_fixture.h"

/* ---- precedence --------------------------------------------------------- */

static void test_config_defaults_need_no_file(void **state)
{
    struct fixture *f = *state;
    assert_int_equal(load(f, NULL), 0);
    assert_true(f->v.heartbeat_ms == 1000);
    assert_string_equal(f->v.data, "/home/tester/.mlxfleet");
    assert_string_equal(f->v.coordinator, "tcp://127.0.0.1:7400");
    assert_string_equal(f->v.log_level, "info");
    assert_null(f->v.name);
    assert_false(f->v.json);
    assert_int_equal(f->v.dirs.n, 0);
    assert_false(f->args.help);
    assert_int_equal(f->args.argc, 0);
}

static void test_config_file_overrides_defaults(void **state)
{
    struct fixture *f = *state;
    test_write_file(f->ini, "heartbeat-ms = 2000\nname = from-file\n");
    assert_int_equal(load(f, "--config", f->ini, NULL), 0);
    assert_true(f->v.heartbeat_ms == 2000);
    assert_string_equal(f->v.name, "from-file");
    assert_string_equal(f->v.log_level, "info"); /* untouched default */
}

static void test_config_env_overrides_file(void **state)
{
    struct fixture *f = *state;
    test_write_file(f->ini, "heartbeat-ms = 2000\nname = from-file\n");
    setenv("MLX_HEARTBEAT_MS", "3000", 1);
    assert_int_equal(load(f, "--config", f->ini, NULL), 0);
    assert_true(f->v.heartbeat_ms == 3000);
    assert_string_equal(f->v.name, "from-file");
}

static void test_config_flag_overrides_env(void **state)
{
    struct fixture *f = *state;
    test_write_file(f->ini, "heartbeat-ms = 2000\nname = from-file\n");
    setenv("MLX_HEARTBEAT_MS", "3000", 1);
    setenv("MLX_NAME", "from-env", 1);
    assert_int_equal(load(f, "--config", f->ini, "--heartbeat-ms", "4000", NULL), 0);
    assert_true(f->v.heartbeat_ms == 4000);
    assert_string_equal(f->v.name, "from-env");
    assert_int_equal(load(f, "--heartbeat-ms=5000", "--config", f->ini, NULL), 0);
    assert_true(f->v.heartbeat_ms == 5000);
}

static void test_config_last_repeated_flag_wins(void **state)
{
    struct fixture *f = *state;
    assert_int_equal(load(f, "--name", "a", "--name", "b", NULL), 0);
    assert_string_equal(f->v.name, "b");
}

static void test_config_mlx_config_env_names_the_file(void **state)
{
    struct fixture *f = *state;
    test_write_file(f->ini, "name = via-env-file\n");
    setenv("MLX_CONFIG", f->ini, 1);
    assert_int_equal(load(f, NULL), 0);
    assert_string_equal(f->v.name, "via-env-file");
}

static void test_config_config_flag_wins_over_mlx_config(void **state)
{
    struct fixture *f = *state;
    char *other = test_join(f->dir, "other.ini");
    test_write_file(other, "name = from-other\n");
    test_write_file(f->ini, "name = from-flag-file\n");
    setenv("MLX_CONFIG", other, 1);
    assert_int_equal(load(f, "--config", f->ini, NULL), 0);
    assert_string_equal(f->v.name, "from-flag-file");
    free(other);
}

/* ---- environment ---------------------------------------------------------- */

static void test_config_env_bad_value_names_variable(void **state)
{
    struct fixture *f = *state;
    setenv("MLX_HEARTBEAT_MS", "abc", 1);
    assert_int_equal(load(f, NULL), MLX_ECONFIG);
    assert_msg_has(f, "MLX_HEARTBEAT_MS");
    assert_msg_has(f, "'abc'");
    setenv("MLX_HEARTBEAT_MS", "", 1);
    assert_int_equal(load(f, NULL), MLX_ECONFIG);
    assert_msg_has(f, "MLX_HEARTBEAT_MS");
}

static void test_config_env_check_failure_names_variable(void **state)
{
    struct fixture *f = *state;
    setenv("MLX_LOG_LEVEL", "loud", 1);
    assert_int_equal(load(f, NULL), MLX_ECONFIG);
    assert_msg_has(f, "MLX_LOG_LEVEL");
    assert_msg_has(f, "'loud'");
}

/* ---- flags -------------------------------------------------------------- */

static void test_config_flag_bad_value_names_flag(void **state)
{
    struct fixture *f = *state;
    assert_int_equal(load(f, "--heartbeat-ms", "1x", NULL), MLX_ECONFIG);
    assert_msg_has(f, "--heartbeat-ms");
    assert_msg_has(f, "'1x'");
    assert_int_equal(load(f, "--heartbeat-ms", "99", NULL), MLX_ECONFIG);
    assert_msg_has(f, "--heartbeat-ms");
    assert_msg_has(f, "100");
}

static void test_config_unknown_flag_is_usage_error(void **state)
{
    struct fixture *f = *state;
    assert_int_equal(load(f, "--bogus", NULL), MLX_EUSAGE);
    assert_int_equal(f->err.code, MLX_EUSAGE);
    assert_msg_has(f, "--bogus");
    assert_msg_has(f, "mlx-agent serve --help");
    assert_int_equal(load(f, "-z", NULL), MLX_EUSAGE);
    assert_msg_has(f, "-z");
    /* A flag of another command is unknown to this one. */
    assert_int_equal(load(f, "--hf", "/x", NULL), MLX_EUSAGE);
    assert_msg_has(f, "--hf");
}

static void test_config_flag_without_value_is_usage_error(void **state)
{
    struct fixture *f = *state;
    assert_int_equal(load(f, "--heartbeat-ms", NULL), MLX_EUSAGE);
    assert_msg_has(f, "--heartbeat-ms needs a value (N)");
}

static void test_config_short_flag_takes_next_word(void **state)
{
    struct fixture *f = *state;
    assert_int_equal(load(f, "-t", "4", NULL), 0);
    assert_true(f->v.threads == 4);
    /* No glued values: "-t4" is not "-t 4". */
    assert_int_equal(load(f, "-t4", NULL), MLX_EUSAGE);
}

static void test_config_int_without_bounds_takes_any_int64(void **state)
{
    struct fixture *f = *state;
    assert_int_equal(load(f, "--threads", "-9223372036854775808", NULL), 0);
    assert_true(f->v.threads == INT64_MIN);
    assert_int_equal(load(f, "--threads", "9223372036854775808", NULL), MLX_ECONFIG);
}

static void test_config_bool_bare_flag_means_true(void **state)
{
    struct fixture *f = *state;
    assert_int_equal(load(f, "--json", NULL), 0);
    assert_true(f->v.json);
    /* A bare bool flag does not swallow the next word. */
    assert_int_equal(load(f, "--json", "--name", "x", NULL), 0);
    assert_true(f->v.json);
    assert_string_equal(f->v.name, "x");
    assert_int_equal(load(f, "--json=false", NULL), 0);
    assert_false(f->v.json);
}

static void test_config_bool_from_env_and_file(void **state)
{
    struct fixture *f = *state;
    test_write_file(f->ini, "json = on\n");
    assert_int_equal(load(f, "--config", f->ini, NULL), 0);
    assert_true(f->v.json);
    setenv("MLX_JSON", "no", 1);
    assert_int_equal(load(f, "--config", f->ini, NULL), 0);
    assert_false(f->v.json);
    setenv("MLX_JSON", "maybe", 1);
    assert_int_equal(load(f, NULL), MLX_ECONFIG);
    assert_msg_has(f, "MLX_JSON");
    assert_msg_has(f, "'maybe'");
}

static void test_config_help_sets_args_help(void **state)
{
    struct fixture *f = *state;
    assert_int_equal(load(f, "--help", NULL), 0);
    assert_true(f->args.help);
    assert_int_equal(load(f, "-h", NULL), 0);
    assert_true(f->args.help);
    /* Help wins over missing positionals. */
    f->cmd = &cmd_run;
    assert_int_equal(load(f, "-h", NULL), 0);
    assert_true(f->args.help);
}

static void test_config_float_from_default_and_flag(void **state)
{
    struct fixture *f = *state;
    f->cmd = &cmd_run;
    assert_int_equal(load(f, "m", "p", NULL), 0);
    assert_true(f->v.temp == 0.8);
    assert_int_equal(load(f, "m", "p", "--temp", "0.25", NULL), 0);
    assert_true(f->v.temp == 0.25);
    assert_int_equal(load(f, "m", "p", "--temp", "warm", NULL), MLX_ECONFIG);
    assert_msg_has(f, "--temp");
    assert_msg_has(f, "'warm' is not a number");
}

/* ---- options for one run only ------------------------------------------ */

static void test_config_cli_only_ignores_env_and_file(void **state)
{
    struct fixture *f = *state;
    f->cmd = &cmd_add;
    setenv("MLX_NAME", "node-7", 1);
    setenv("MLX_APPLY", "yes", 1);
    /* name is serve's key in the file; for add it means nothing. */
    test_write_file(f->ini, "name = node-7\n");
    assert_int_equal(load(f, "--config", f->ini, NULL), 0);
    assert_null(f->v.name);
    assert_false(f->v.apply);
    assert_int_equal(load(f, "--config", f->ini, "--name", "llama", "--apply", NULL), 0);
    assert_string_equal(f->v.name, "llama");
    assert_true(f->v.apply);
}

static void test_config_cli_only_key_in_a_file_is_unknown(void **state)
{
    struct fixture *f = *state;
    /* No command reads apply from a file: a file naming it is a mistake. */
    test_write_file(f->ini, "apply = true\n");
    assert_int_equal(load(f, "--config", f->ini, NULL), MLX_ECONFIG);
    assert_msg_has(f, "'apply'");
}

static void test_config_cli_only_help_shows_no_variable(void **state)
{
    char *dir = test_tmpdir("cfg-help");
    char *path = test_join(dir, "help.txt");
    FILE *out = fopen(path, "w");
    mlx_config_print_help(&prog, &cmd_add, out);
    fclose(out);
    char *text = test_read_file(path, NULL);
    assert_non_null(strstr(text, "--name NAME"));
    assert_null(strstr(text, "MLX_NAME"));
    assert_null(strstr(text, "MLX_APPLY"));
    free(text);
    free(path);
    test_tmpdir_remove(dir);
}

/* ---- positionals ------------------------------------------------------- */

static void test_config_positionals_are_returned(void **state)
{
    struct fixture *f = *state;
    f->cmd = &cmd_run;
    assert_int_equal(load(f, "llama3.2:1b", "-n", "32", "Hello there", NULL), 0);
    assert_int_equal(f->args.argc, 2);
    assert_string_equal(f->args.argv[0], "llama3.2:1b");
    assert_string_equal(f->args.argv[1], "Hello there");
    assert_null(f->args.argv[2]);
    assert_true(f->v.tokens == 32);
}

static void test_config_double_dash_ends_flags(void **state)
{
    struct fixture *f = *state;
    f->cmd = &cmd_run;
    assert_int_equal(load(f, "--", "-model-", "--not-a-flag", NULL), 0);
    assert_int_equal(f->args.argc, 2);
    assert_string_equal(f->args.argv[0], "-model-");
    assert_string_equal(f->args.argv[1], "--not-a-flag");
    assert_true(f->v.tokens == 16);
    /* A lone "-" is a positional (stdin, by convention). */
    assert_int_equal(load(f, "m", "-", NULL), 0);
    assert_string_equal(f->args.argv[1], "-");
}

static void test_config_wrong_positional_count_is_usage_error(void **state)
{
    struct fixture *f = *state;
    f->cmd = &cmd_run;
    assert_int_equal(load(f, "only-model", NULL), MLX_EUSAGE);
    assert_msg_has(f, "MODEL PROMPT");
    assert_null(f->args.argv); /* freed on failure */
    assert_int_equal(load(f, "a", "b", "c", NULL), MLX_EUSAGE);
    assert_msg_has(f, "MODEL PROMPT");
    f->cmd = &cmd_serve;
    assert_int_equal(load(f, "extra", NULL), MLX_EUSAGE);
    assert_msg_has(f, "takes no arguments");
    assert_msg_has(f, "'extra'");
}

/* ---- lists and paths ------------------------------------------------------ */

static void assert_list(const mlx_strlist *l, size_t n, ...)
{
    assert_int_equal(l->n, n);
    va_list ap;
    va_start(ap, n);
    for (size_t i = 0; i < n; i++)
        assert_string_equal(l->items[i], va_arg(ap, const char *));
    va_end(ap);
}

static void test_config_list_is_comma_separated_in_file(void **state)
{
    struct fixture *f = *state;
    test_write_file(f->ini, "dir = /a,/b,~/c\n");
    assert_int_equal(load(f, "--config", f->ini, NULL), 0);
    assert_list(&f->v.dirs, 3, "/a", "/b", "/home/tester/c");
}

static void test_config_list_env_replaces_file(void **state)
{
    struct fixture *f = *state;
    test_write_file(f->ini, "dir = /a,/b\n");
    setenv("MLX_DIR", "/c,,/d", 1);
    assert_int_equal(load(f, "--config", f->ini, NULL), 0);
    assert_list(&f->v.dirs, 2, "/c", "/d");
}

static void test_config_list_repeated_flags_replace_env(void **state)
{
    struct fixture *f = *state;
    test_write_file(f->ini, "dir = /a\n");
    setenv("MLX_DIR", "/c,/d", 1);
    assert_int_equal(
        load(f, "--config", f->ini, "--dir", "/e", "--json", "--dir", "/f", NULL), 0);
    assert_list(&f->v.dirs, 2, "/e", "/f");
    /* One flag word is one item, commas and all. */
    assert_int_equal(load(f, "--dir", "/g,h", NULL), 0);
    assert_list(&f->v.dirs, 1, "/g,h");
}

static void test_config_path_expands_home_but_str_does_not(void **state)
{
    struct fixture *f = *state;
    assert_int_equal(load(f, "--data", "~/fleet", "--name", "~/fleet", NULL), 0);
    assert_string_equal(f->v.data, "/home/tester/fleet");
    assert_string_equal(f->v.name, "~/fleet");
}

/* ---- out of memory ------------------------------------------------------ */

static void test_config_load_out_of_memory_at_every_step(void **state)
{
    struct fixture *f = *state;
    test_write_file(f->ini,
                    "[agent]\nname = from-file\ndir = /a,/b\nheartbeat-ms = 2000\n");
    setenv("MLX_DIR", "/c,/d,/e", 1);
    setenv("MLX_LOG_LEVEL", "warn", 1);
    long n;
    for (n = 0; n < 1000; n++) {
        /* load() frees the previous attempt's leftovers before each try. */
        mlx_config_free(f->cmd, &f->v);
        mlx_config_free_args(&f->args);
        memset(&f->v, 0, sizeof f->v);
        static char *argv[] = {(char *)"--config",
                               NULL,
                               (char *)"--dir",
                               (char *)"/x",
                               (char *)"--dir",
                               (char *)"/y",
                               (char *)"--data",
                               (char *)"~/d",
                               NULL};
        argv[1] = f->ini;
        mlx_err_clear(&f->err);
        mlx_alloc_fail_after(n);
        int rc = mlx_config_load(&prog, f->cmd, 8, argv, &f->v, &f->args, &f->err);
        mlx_alloc_fail_reset();
        if (rc == 0)
            break;
        if (rc != MLX_ENOMEM)
            fail_msg("allocation %ld failed: got %s (%s), want ENOMEM", n,
                     mlx_errname(rc), f->err.msg);
        assert_int_equal(f->err.code, MLX_ENOMEM);
        assert_null(f->args.argv);
    }
    assert_true(n > 0 && n < 1000);
    assert_string_equal(f->v.name, "from-file");
    assert_string_equal(f->v.log_level, "warn");
    assert_string_equal(f->v.data, "/home/tester/d");
    assert_true(f->v.heartbeat_ms == 2000);
    assert_list(&f->v.dirs, 2, "/x", "/y");
}

/* ---- helpers ------------------------------------------------------------ */

static void test_config_env_name_is_upper_snake_with_prefix(void **state)
{
    (void)state;
    char out[64];
    mlx_config_env_name("heartbeat-ms", out, sizeof out);
    assert_string_equal(out, "MLX_HEARTBEAT_MS");
    mlx_config_env_name("data", out, sizeof out);
    assert_string_equal(out, "MLX_DATA");
    /* Cut to the buffer, always terminated. */
    memset(out, '#', sizeof out);
    mlx_config_env_name("heartbeat-ms", out, 6);
    assert_string_equal(out, "MLX_H");
    assert_int_equal(out[6], '#');
}

static void test_config_find_cmd_matches_one_and_two_words(void **state)
{
    (void)state;
    int used = -1;
    char *serve[] = {(char *)"serve", (char *)"--json"};
    assert_ptr_equal(mlx_config_find_cmd(&prog, 2, serve, &used), &cmd_serve);
    assert_int_equal(used, 1);
    char *scan[] = {(char *)"cache", (char *)"scan", (char *)"--json"};
    assert_ptr_equal(mlx_config_find_cmd(&prog, 3, scan, &used), &cmd_scan);
    assert_int_equal(used, 2);
    char *cache_only[] = {(char *)"cache"};
    assert_null(mlx_config_find_cmd(&prog, 1, cache_only, &used));
    char *cache_bad[] = {(char *)"cache", (char *)"scanx"};
    assert_null(mlx_config_find_cmd(&prog, 2, cache_bad, &used));
    char *prefix[] = {(char *)"cach", (char *)"scan"};
    assert_null(mlx_config_find_cmd(&prog, 2, prefix, &used));
    char *unknown[] = {(char *)"bogus"};
    assert_null(mlx_config_find_cmd(&prog, 1, unknown, &used));
}

static void test_config_takes_value_knows_every_command(void **state)
{
    (void)state;
    assert_true(mlx_config_takes_value(&prog, "heartbeat-ms"));
    assert_true(mlx_config_takes_value(&prog, "hf")); /* from "cache scan" */
    assert_true(mlx_config_takes_value(&prog, "config"));
    assert_false(mlx_config_takes_value(&prog, "json"));
    assert_false(mlx_config_takes_value(&prog, "no-such-flag"));
}

/* Runs a printer into a memory stream; caller frees the text. */
static char *print_to_string(const mlx_cmd *cmd)
{
    char *text = NULL;
    size_t len = 0;
    FILE *out = open_memstream(&text, &len);
    assert_non_null(out);
    if (cmd != NULL)
        mlx_config_print_help(&prog, cmd, out);
    else
        mlx_config_print_commands(&prog, out);
    fclose(out);
    return text;
}

static void test_config_help_lists_flags_defaults_and_env(void **state)
{
    (void)state;
    char *text = print_to_string(&cmd_serve);
    assert_non_null(strstr(text, "Usage: mlx-agent serve [options]"));
    assert_non_null(strstr(text, "Serves models."));
    assert_non_null(strstr(text, "--heartbeat-ms N"));
    assert_non_null(strstr(text, "(default 1000)"));
    assert_non_null(strstr(text, "[MLX_HEARTBEAT_MS]"));
    assert_non_null(strstr(text, "-t, --threads N"));
    assert_non_null(strstr(text, "--json"));
    assert_null(strstr(text, "--json VALUE"));
    assert_non_null(strstr(text, "--config FILE"));
    assert_non_null(strstr(text, "-h, --help"));
    free(text);
    text = print_to_string(&cmd_run);
    assert_non_null(strstr(text, "Usage: mlx-agent run [options] MODEL PROMPT"));
    free(text);
}

static void test_config_command_list_names_every_command(void **state)
{
    (void)state;
    char *text = print_to_string(NULL);
    assert_non_null(strstr(text, "serve"));
    assert_non_null(strstr(text, "cache scan"));
    assert_non_null(strstr(text, "generate text"));
    assert_non_null(strstr(text, "mlx-agent COMMAND --help"));
    free(text);
}

static void test_config_ready_made_checks(void **state)
{
    (void)state;
    mlx_err e;
    assert_int_equal(mlx_check_nng_url("tcp://0.0.0.0:7400", NULL), 0);
    assert_int_equal(mlx_check_nng_url("0.0.0.0:7400", NULL), MLX_EINVAL);
    assert_int_equal(mlx_check_hostport("127.0.0.1:7480", NULL), 0);
    assert_int_equal(mlx_check_hostport("127.0.0.1", NULL), MLX_EINVAL);
    assert_int_equal(mlx_check_http_url("http://127.0.0.1:7480", NULL), 0);
    assert_int_equal(mlx_check_http_url("https://fleet.example", NULL), 0);
    const char *bad_urls[] = {"ftp://x", "http://", "https:///x", "127.0.0.1:7480", ""};
    for (size_t i = 0; i < sizeof bad_urls / sizeof bad_urls[0]; i++) {
        mlx_err_clear(&e);
        assert_int_equal(mlx_check_http_url(bad_urls[i], &e), MLX_EINVAL);
        assert_non_null(strstr(e.msg, "http://HOST:PORT"));
    }
    assert_int_equal(mlx_check_log_level("warn", NULL), 0);
    assert_int_equal(mlx_check_log_level("WARN", NULL), MLX_EINVAL);
}

#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)

int main(void)
{
    const struct CMUnitTest tests[] = {
        T(test_config_defaults_need_no_file),
        T(test_config_file_overrides_defaults),
        T(test_config_env_overrides_file),
        T(test_config_flag_overrides_env),
        T(test_config_last_repeated_flag_wins),
        T(test_config_mlx_config_env_names_the_file),
        T(test_config_config_flag_wins_over_mlx_config),
        T(test_config_env_bad_value_names_variable),
        T(test_config_env_check_failure_names_variable),
        T(test_config_flag_bad_value_names_flag),
        T(test_config_unknown_flag_is_usage_error),
        T(test_config_flag_without_value_is_usage_error),
        T(test_config_short_flag_takes_next_word),
        T(test_config_int_without_bounds_takes_any_int64),
        T(test_config_bool_bare_flag_means_true),
        T(test_config_bool_from_env_and_file),
        T(test_config_help_sets_args_help),
        T(test_config_float_from_default_and_flag),
        T(test_config_cli_only_ignores_env_and_file),
        T(test_config_cli_only_key_in_a_file_is_unknown),
        T(test_config_cli_only_help_shows_no_variable),
        T(test_config_positionals_are_returned),
        T(test_config_double_dash_ends_flags),
        T(test_config_wrong_positional_count_is_usage_error),
        T(test_config_list_is_comma_separated_in_file),
        T(test_config_list_env_replaces_file),
        T(test_config_list_repeated_flags_replace_env),
        T(test_config_path_expands_home_but_str_does_not),
        T(test_config_load_out_of_memory_at_every_step),
        T(test_config_env_name_is_upper_snake_with_prefix),
        T(test_config_find_cmd_matches_one_and_two_words),
        T(test_config_takes_value_knows_every_command),
        T(test_config_help_lists_flags_defaults_and_env),
        T(test_config_command_list_names_every_command),
        T(test_config_ready_made_checks),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
