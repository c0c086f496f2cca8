/*
 * test_log.c — common/log: each event reaches the sink as one line of the
 * form `level ts module msg="…" k=v …`, lines below the level are dropped,
 * embedded newlines become spaces, long lines are cut at MLX_MAX_LOG_LINE,
 * and mlx_log_set_sink(NULL) restores the stderr sink.
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
#include <unistd.h>

#include <cmocka.h>

#include "common/clock.h"
#include "common/log.h"
#include "tests/support/testutil.h"

#define MAX_LINES 8

/* What the capturing sink saw. */
static struct {
    int n;
    mlx_log_level levels[MAX_LINES];
    char lines[MAX_LINES][MLX_MAX_LOG_LINE + 16];
    void *arg;
} seen;

static void capture_sink(void *arg, mlx_log_level level, const char *line)
{
    seen.arg = arg;
    if (seen.n < MAX_LINES) {
        seen.levels[seen.n] = level;
        snprintf(seen.lines[seen.n], sizeof seen.lines[0], "%s", line);
    }
    seen.n++;
}

static int tag; /* its address is the sink's argument */

static int setup(void **state)
{
    (void)state;
    memset(&seen, 0, sizeof seen);
    mlx_log_set_sink(capture_sink, &tag);
    mlx_log_set_level(MLX_LOG_INFO);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    mlx_log_set_sink(NULL, NULL);
    mlx_log_set_level(MLX_LOG_INFO);
    return 0;
}

/* "2026-11-22T10:04:05.123Z": digits where digits belong, fixed separators. */
static void assert_timestamp(const char *ts)
{
    const char *shape = "dddd-dd-ddTdd:dd:dd.dddZ";
    for (size_t i = 0; shape[i] != '\0'; i++) {
        if (shape[i] == 'd')
            assert_true(ts[i] >= '0' && ts[i] <= '9');
        else
            assert_int_equal(ts[i], shape[i]);
    }
}

static void test_log_line_has_level_ts_module_msg_and_pairs(void **state)
{
    (void)state;
    int64_t before = mlx_time_wall_ms();
    mlx_log_info("membership", "node state changed", "node=%s from=%s to=%s", "3f2a",
                 "up", "suspect");
    int64_t after = mlx_time_wall_ms();
    assert_int_equal(seen.n, 1);
    assert_int_equal(seen.levels[0], MLX_LOG_INFO);
    assert_ptr_equal(seen.arg, &tag);
    const char *line = seen.lines[0];
    assert_memory_equal(line, "info ", 5);
    assert_timestamp(line + 5);
    assert_string_equal(
        line + 5 + 24,
        " membership msg=\"node state changed\" node=3f2a from=up to=suspect");
    /* The timestamp is the wall clock at the time of the call. */
    char lo[32], hi[32];
    mlx_time_format_rfc3339(before, lo, sizeof lo);
    mlx_time_format_rfc3339(after, hi, sizeof hi);
    assert_true(memcmp(line + 5, lo, 24) >= 0);
    assert_true(memcmp(line + 5, hi, 24) <= 0);
}

static void test_log_without_pairs_ends_after_msg(void **state)
{
    (void)state;
    mlx_log(MLX_LOG_WARN, "store", "disk almost full", NULL);
    mlx_log(MLX_LOG_ERROR, "store", "disk full", NULL);
    assert_int_equal(seen.n, 2);
    assert_memory_equal(seen.lines[0], "warn ", 5);
    assert_string_equal(seen.lines[0] + 5 + 24, " store msg=\"disk almost full\"");
    assert_int_equal(seen.levels[0], MLX_LOG_WARN);
    assert_memory_equal(seen.lines[1], "error ", 6);
    assert_string_equal(seen.lines[1] + 6 + 24, " store msg=\"disk full\"");
    assert_int_equal(seen.levels[1], MLX_LOG_ERROR);
}

static void test_log_empty_pairs_leave_no_trailing_space(void **state)
{
    (void)state;
    mlx_log(MLX_LOG_INFO, "store", "scan done", "%s", "");
    assert_int_equal(seen.n, 1);
    assert_string_equal(seen.lines[0] + 5 + 24, " store msg=\"scan done\"");
}

static void test_log_debug_line_uses_debug_word(void **state)
{
    (void)state;
    mlx_log_set_level(MLX_LOG_DEBUG);
    mlx_log_debug("engine", "step", "n=%d", 3);
    assert_int_equal(seen.n, 1);
    assert_memory_equal(seen.lines[0], "debug ", 6);
    assert_string_equal(seen.lines[0] + 6 + 24, " engine msg=\"step\" n=3");
}

static void test_log_drops_lines_below_level(void **state)
{
    (void)state;
    mlx_log_set_level(MLX_LOG_WARN);
    assert_int_equal(mlx_log_get_level(), MLX_LOG_WARN);
    mlx_log_debug("m", "d", "x=%d", 1);
    mlx_log_info("m", "i", "x=%d", 2);
    assert_int_equal(seen.n, 0);
    mlx_log_warn("m", "w", "x=%d", 3);
    mlx_log_error("m", "e", "x=%d", 4);
    assert_int_equal(seen.n, 2);
    assert_non_null(strstr(seen.lines[0], "msg=\"w\" x=3"));
    assert_non_null(strstr(seen.lines[1], "msg=\"e\" x=4"));

    mlx_log_set_level(MLX_LOG_ERROR);
    mlx_log_warn("m", "w", "x=%d", 5);
    assert_int_equal(seen.n, 2);
}

/* The level before any test touched it, read first thing in main. */
static mlx_log_level level_at_start;

static void test_log_default_level_is_info(void **state)
{
    (void)state;
    assert_int_equal(level_at_start, MLX_LOG_INFO);
    mlx_log_debug("m", "hidden", "x=%d", 1);
    assert_int_equal(seen.n, 0);
}

static void test_log_newlines_become_spaces(void **state)
{
    (void)state;
    mlx_log_info("http", "bad\nrequest", "detail=\"%s\"", "line1\nline2\r\nline3");
    assert_int_equal(seen.n, 1);
    const char *line = seen.lines[0];
    assert_null(strchr(line, '\n'));
    assert_null(strchr(line, '\r'));
    assert_string_equal(line + 5 + 24,
                        " http msg=\"bad request\" detail=\"line1 line2  line3\"");
}

static void test_log_long_line_is_cut_not_split(void **state)
{
    (void)state;
    char *big = malloc(3 * MLX_MAX_LOG_LINE);
    assert_non_null(big);
    memset(big, 'v', 3 * MLX_MAX_LOG_LINE - 1);
    big[3 * MLX_MAX_LOG_LINE - 1] = '\0';
    mlx_log_info("m", "big", "value=%s", big);
    free(big);
    assert_int_equal(seen.n, 1); /* one line, not several */
    assert_int_equal(strlen(seen.lines[0]), MLX_MAX_LOG_LINE);
    assert_int_equal(seen.lines[0][MLX_MAX_LOG_LINE - 1], 'v');
}

static void test_log_parse_level_reads_the_four_words(void **state)
{
    (void)state;
    const char *words[] = {"debug", "info", "warn", "error"};
    const mlx_log_level want[] = {MLX_LOG_DEBUG, MLX_LOG_INFO, MLX_LOG_WARN,
                                  MLX_LOG_ERROR};
    for (size_t i = 0; i < 4; i++) {
        mlx_log_level l = (mlx_log_level)99;
        assert_int_equal(mlx_log_parse_level(words[i], &l, NULL), 0);
        assert_int_equal(l, want[i]);
    }
}

static void test_log_parse_level_refuses_others(void **state)
{
    (void)state;
    const char *bad[] = {"", "verbose", "warning", "INFO ", "err"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        mlx_log_level l = MLX_LOG_ERROR;
        mlx_err e;
        mlx_err_clear(&e);
        assert_int_equal(mlx_log_parse_level(bad[i], &l, &e), MLX_EINVAL);
        assert_int_equal(l, MLX_LOG_ERROR);
        char quoted[32];
        snprintf(quoted, sizeof quoted, "'%s'", bad[i]);
        assert_non_null(strstr(e.msg, quoted));
        assert_non_null(strstr(e.msg, "debug, info, warn or error"));
    }
}

static void test_log_null_sink_restores_stderr(void **state)
{
    (void)state;
    char *dir = test_tmpdir("log");
    char *path = test_join(dir, "stderr.txt");
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    assert_true(fd >= 0);
    fflush(stderr);
    int saved = dup(STDERR_FILENO);
    assert_true(saved >= 0);
    assert_int_equal(dup2(fd, STDERR_FILENO), STDERR_FILENO);
    close(fd);

    mlx_log_set_sink(NULL, NULL);
    mlx_log_info("cli", "to stderr", "k=%d", 7);

    dup2(saved, STDERR_FILENO);
    close(saved);
    size_t len = 0;
    char *text = test_read_file(path, &len);
    assert_non_null(text);
    assert_memory_equal(text, "info ", 5);
    assert_int_equal(len, 5 + 24 + strlen(" cli msg=\"to stderr\" k=7\n"));
    assert_string_equal(text + 5 + 24, " cli msg=\"to stderr\" k=7\n");
    assert_int_equal(seen.n, 0); /* the capturing sink is no longer called */
    free(text);
    free(path);
    test_tmpdir_remove(dir);
}

enum { LOG_THREADS = 4, LINES_PER_THREAD = 300 };

static void *log_many(void *arg)
{
    int id = (int)(intptr_t)arg;
    /* Long enough that a line written in pieces would likely interleave. */
    char pad[600];
    memset(pad, 'a' + id, sizeof pad - 1);
    pad[sizeof pad - 1] = '\0';
    for (int i = 0; i < LINES_PER_THREAD; i++)
        mlx_log_info("race", "line", "thread=%d i=%d pad=%s end=1", id, i, pad);
    return NULL;
}

static void test_log_lines_from_threads_stay_whole_on_stderr(void **state)
{
    (void)state;
    char *dir = test_tmpdir("log");
    char *path = test_join(dir, "stderr.txt");
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_APPEND, 0600);
    assert_true(fd >= 0);
    fflush(stderr);
    int saved = dup(STDERR_FILENO);
    assert_int_equal(dup2(fd, STDERR_FILENO), STDERR_FILENO);
    close(fd);

    mlx_log_set_sink(NULL, NULL);
    pthread_t t[LOG_THREADS];
    for (int i = 0; i < LOG_THREADS; i++)
        pthread_create(&t[i], NULL, log_many, (void *)(intptr_t)i);
    for (int i = 0; i < LOG_THREADS; i++)
        pthread_join(t[i], NULL);

    dup2(saved, STDERR_FILENO);
    close(saved);
    char *text = test_read_file(path, NULL);
    assert_non_null(text);
    int lines = 0;
    for (char *line = text, *nl; *line != '\0'; line = nl + 1) {
        nl = strchr(line, '\n');
        assert_non_null(nl);
        *nl = '\0';
        /* Each line is one event from one thread, start to end. */
        assert_memory_equal(line, "info ", 5);
        assert_non_null(strstr(line, " race msg=\"line\" thread="));
        size_t len = strlen(line);
        assert_true(len > 6);
        assert_string_equal(line + len - 6, " end=1");
        char c = line[len - 7]; /* the last pad character names the thread */
        const char *pad = strstr(line, "pad=");
        assert_non_null(pad);
        for (const char *p = pad + 4; p < line + len - 6; p++)
            assert_int_equal(*p, c);
        lines++;
    }
    assert_int_equal(lines, LOG_THREADS * LINES_PER_THREAD);
    free(text);
    free(path);
    test_tmpdir_remove(dir);
}

#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)

int main(void)
{
    level_at_start = mlx_log_get_level();
    const struct CMUnitTest tests[] = {
        T(test_log_line_has_level_ts_module_msg_and_pairs),
        T(test_log_without_pairs_ends_after_msg),
        T(test_log_empty_pairs_leave_no_trailing_space),
        T(test_log_debug_line_uses_debug_word),
        T(test_log_drops_lines_below_level),
        T(test_log_default_level_is_info),
        T(test_log_newlines_become_spaces),
        T(test_log_long_line_is_cut_not_split),
        T(test_log_parse_level_reads_the_four_words),
        T(test_log_parse_level_refuses_others),
        T(test_log_null_sink_restores_stderr),
        T(test_log_lines_from_threads_stay_whole_on_stderr),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
