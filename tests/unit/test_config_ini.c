/*
 * test_config_ini.c — common/config's INI files: keys of the program's own
 * section and none, other programs' sections skipped, unknown sections and
 * keys refused with file and line, bad values, over-long lines, syntax
 * errors, the first problem reported, --config and MLX_CONFIG.
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
#include "tests/support/testutil.h"
#include "tests/unit/config_fixture.h"

/* ---- INI files ----------------------------------------------------------- */

static void test_config_ini_key_may_use_underscores(void **state)
{
    struct fixture *f = *state;
    test_write_file(f->ini, "heartbeat_ms = 2500\nlog_level = debug\n");
    assert_int_equal(load(f, "--config", f->ini, NULL), 0);
    assert_true(f->v.heartbeat_ms == 2500);
    assert_string_equal(f->v.log_level, "debug");
}

static void test_config_ini_own_section_applies(void **state)
{
    struct fixture *f = *state;
    test_write_file(f->ini,
                    "; shared file\nname = top\n\n[agent]\nheartbeat-ms = 2000\n");
    assert_int_equal(load(f, "--config", f->ini, NULL), 0);
    assert_string_equal(f->v.name, "top");
    assert_true(f->v.heartbeat_ms == 2000);
}

static void test_config_ini_other_programs_sections_are_skipped(void **state)
{
    struct fixture *f = *state;
    /* Applied, these would fail: a key the agent lacks and a value out of range. */
    test_write_file(f->ini, "[coordinator]\nsuspect-after = 3\nheartbeat-ms = 5\n"
                            "[mlxctl]\napi-key = k\n[agent]\nname = mine\n");
    assert_int_equal(load(f, "--config", f->ini, NULL), 0);
    assert_true(f->v.heartbeat_ms == 1000);
    assert_string_equal(f->v.name, "mine");
}

static void test_config_ini_unknown_section_is_named(void **state)
{
    struct fixture *f = *state;
    test_write_file(f->ini, "name = x\n[bogus]\nheartbeat-ms = 2000\n");
    assert_int_equal(load(f, "--config", f->ini, NULL), MLX_ECONFIG);
    assert_int_equal(f->err.code, MLX_ECONFIG);
    assert_msg_has(f, "[bogus]");
    assert_msg_has(f, f->ini);
    assert_msg_has(f, "line 3");
}

static void test_config_ini_unknown_key_names_key_and_line(void **state)
{
    struct fixture *f = *state;
    test_write_file(f->ini, "name = x\n\nfrobnicate = 1\n");
    assert_int_equal(load(f, "--config", f->ini, NULL), MLX_ECONFIG);
    assert_msg_has(f, "'frobnicate'");
    assert_msg_has(f, f->ini);
    assert_msg_has(f, "line 3");
}

static void test_config_ini_key_of_another_command_is_accepted(void **state)
{
    struct fixture *f = *state;
    /* hf belongs to "cache scan": the same file serves every command. */
    test_write_file(f->ini, "hf = /models/hf\nname = n1\n");
    assert_int_equal(load(f, "--config", f->ini, NULL), 0);
    assert_string_equal(f->v.name, "n1");
    assert_null(f->v.hf);
}

static void test_config_ini_bad_value_names_key_and_line(void **state)
{
    struct fixture *f = *state;
    test_write_file(f->ini, "name = x\nheartbeat-ms = fast\n");
    assert_int_equal(load(f, "--config", f->ini, NULL), MLX_ECONFIG);
    assert_msg_has(f, "heartbeat-ms");
    assert_msg_has(f, "'fast'");
    assert_msg_has(f, "line 2");
    assert_msg_has(f, f->ini);
}

static void test_config_ini_out_of_range_says_the_range(void **state)
{
    struct fixture *f = *state;
    test_write_file(f->ini, "heartbeat-ms = 99\n");
    assert_int_equal(load(f, "--config", f->ini, NULL), MLX_ECONFIG);
    assert_msg_has(f, "heartbeat-ms");
    assert_msg_has(f, "line 1");
    assert_msg_has(f, "100");
    assert_msg_has(f, "60000");
    test_write_file(f->ini, "heartbeat-ms = 60001\n");
    assert_int_equal(load(f, "--config", f->ini, NULL), MLX_ECONFIG);
    test_write_file(f->ini, "heartbeat-ms = 60000\n");
    assert_int_equal(load(f, "--config", f->ini, NULL), 0);
    assert_true(f->v.heartbeat_ms == 60000);
}

static void test_config_ini_value_failing_check_is_named(void **state)
{
    struct fixture *f = *state;
    test_write_file(f->ini, "coordinator = http://10.0.0.1:7400\n");
    assert_int_equal(load(f, "--config", f->ini, NULL), MLX_ECONFIG);
    assert_msg_has(f, "coordinator");
    assert_msg_has(f, "'http://10.0.0.1:7400'");
    assert_msg_has(f, "tcp://HOST:PORT");
}

static void test_config_ini_syntax_error_names_line(void **state)
{
    struct fixture *f = *state;
    const char *text = "name = x\nthis line has no equals sign\n";
    assert_int_equal(
        mlx_config_parse_ini(&prog, &cmd_serve, text, "t.ini", &f->v, &f->err),
        MLX_ECONFIG);
    assert_msg_has(f, "t.ini line 2");
    assert_msg_has(f, "key = value");
}

static void test_config_ini_first_problem_keeps_its_own_line(void **state)
{
    struct fixture *f = *state;
    /* A syntax error on line 1 and an unknown key on line 2: the sentence
     * must not pair line 1 with the key from line 2. */
    const char *text = "garbage\nfrobnicate = 1\n";
    assert_int_equal(
        mlx_config_parse_ini(&prog, &cmd_serve, text, "t.ini", &f->v, &f->err),
        MLX_ECONFIG);
    assert_msg_has(f, "t.ini line 1");
    assert_null(strstr(f->err.msg, "frobnicate"));
    /* And the other way round: the unknown key comes first. */
    text = "frobnicate = 1\ngarbage\n";
    assert_int_equal(
        mlx_config_parse_ini(&prog, &cmd_serve, text, "t.ini", &f->v, &f->err),
        MLX_ECONFIG);
    assert_msg_has(f, "t.ini line 1");
    assert_msg_has(f, "'frobnicate'");
}

static void test_config_ini_over_long_line_is_refused(void **state)
{
    struct fixture *f = *state;
    /* inih reads INI_MAX_LINE bytes with the newline and NUL: at most
     * INI_MAX_LINE - 2 characters fit. */
    enum { FIT = INI_MAX_LINE - 2 };
    char text[3 * INI_MAX_LINE];
    int n = snprintf(text, sizeof text, "name = first\nname = ");
    int value_len = FIT - 7; /* "name = " is 7 characters */
    memset(text + n, 'v', (size_t)value_len);
    text[n + value_len] = '\n';
    text[n + value_len + 1] = '\0';
    assert_int_equal(
        mlx_config_parse_ini(&prog, &cmd_serve, text, "t.ini", &f->v, &f->err), 0);
    assert_int_equal(strlen(f->v.name), (size_t)value_len);

    /* One more character and the line is refused, not cut in two. */
    memset(text + n, 'v', (size_t)value_len + 1);
    text[n + value_len + 1] = '\n';
    text[n + value_len + 2] = '\0';
    mlx_config_free(&cmd_serve, &f->v);
    assert_int_equal(
        mlx_config_parse_ini(&prog, &cmd_serve, text, "t.ini", &f->v, &f->err),
        MLX_ECONFIG);
    assert_msg_has(f, "t.ini line 2");
    assert_msg_has(f, "longer than");
}

static void test_config_ini_last_line_without_newline_counts(void **state)
{
    struct fixture *f = *state;
    const char *text = "name = x\nheartbeat-ms = 1234";
    assert_int_equal(
        mlx_config_parse_ini(&prog, &cmd_serve, text, "t.ini", &f->v, &f->err), 0);
    assert_true(f->v.heartbeat_ms == 1234);
}

static void test_config_missing_config_file_is_named(void **state)
{
    struct fixture *f = *state;
    char *missing = test_join(f->dir, "absent.ini");
    assert_int_equal(load(f, "--config", missing, NULL), MLX_ECONFIG);
    assert_msg_has(f, missing);
    assert_msg_has(f, "--config");
    free(missing);
}

static void test_config_oversized_config_file_is_refused(void **state)
{
    struct fixture *f = *state;
    /* Comment lines only, so nothing but the size can be wrong. */
    size_t size = MLX_MAX_CONFIG_FILE + 1;
    char *text = malloc(size + 1);
    assert_non_null(text);
    for (size_t i = 0; i < size; i++)
        text[i] = i % 64 == 63 ? '\n' : (i % 64 == 0 ? ';' : 'c');
    text[size] = '\0';
    test_write_file(f->ini, text);
    assert_int_equal(load(f, "--config", f->ini, NULL), MLX_ECONFIG);
    assert_msg_has(f, f->ini);
    assert_msg_has(f, "larger than");
    /* One byte less is read (and is all comments). */
    text[size - 1] = '\0';
    test_write_file(f->ini, text);
    assert_int_equal(load(f, "--config", f->ini, NULL), 0);
    free(text);
}

static void test_config_config_flag_needs_a_value(void **state)
{
    struct fixture *f = *state;
    assert_int_equal(load(f, "--config", NULL), MLX_EUSAGE);
    assert_msg_has(f, "--config");
}

#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)

int main(void)
{
    const struct CMUnitTest tests[] = {
        T(test_config_ini_key_may_use_underscores),
        T(test_config_ini_own_section_applies),
        T(test_config_ini_other_programs_sections_are_skipped),
        T(test_config_ini_unknown_section_is_named),
        T(test_config_ini_unknown_key_names_key_and_line),
        T(test_config_ini_key_of_another_command_is_accepted),
        T(test_config_ini_bad_value_names_key_and_line),
        T(test_config_ini_out_of_range_says_the_range),
        T(test_config_ini_value_failing_check_is_named),
        T(test_config_ini_syntax_error_names_line),
        T(test_config_ini_first_problem_keeps_its_own_line),
        T(test_config_ini_over_long_line_is_refused),
        T(test_config_ini_last_line_without_newline_counts),
        T(test_config_missing_config_file_is_named),
        T(test_config_oversized_config_file_is_refused),
        T(test_config_config_flag_needs_a_value),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
