/*
 * test_history.c — the metrics history (agent/metrics/metrics.h): samples
 * written at chosen timestamps, averaged into minutes and hours, kept for
 * as long as each resolution promises and no longer. Expected averages are
 * computed here from the values the test wrote.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "agent/metrics/metrics.h"
#include "common/alloc.h"
#include "tests/support/testutil.h"

#define SEC  1000LL
#define MIN  (60 * SEC)
#define HOUR (60 * MIN)
#define DAY  (24 * HOUR)
/* A whole hour, so periods line up with wall-clock minutes and hours. */
#define T0 (1700000000LL * SEC - (1700000000LL * SEC) % HOUR)

struct fx {
    char *dir;
    metrics_history *h;
};

static int setup(void **state)
{
    struct fx *f = calloc(1, sizeof *f);
    f->dir = test_tmpdir("history");
    mlx_err err;
    if (metrics_history_open(f->dir, &f->h, &err) != 0) {
        fprintf(stderr, "%s\n", err.msg);
        return -1;
    }
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fx *f = *state;
    metrics_history_close(f->h);
    test_tmpdir_remove(f->dir);
    free(f);
    return 0;
}

static void add(metrics_history *h, int64_t t, double cpu, double gpu, double tps)
{
    metrics_sample s;
    memset(&s, 0, sizeof s);
    s.unix_ms = t;
    s.cpu_percent = cpu;
    s.memory_used_bytes = (uint64_t)(cpu * 1000);
    s.memory_total_bytes = 1 << 30;
    s.gpu_percent = gpu;
    s.disk_free_bytes = (uint64_t)(1000 - cpu);
    mlx_err err;
    assert_int_equal(metrics_history_add(h, &s, tps, &err), 0);
}

static size_t query(metrics_history *h, metrics_resolution res, int64_t since,
                    metrics_point **out)
{
    size_t n = 0;
    mlx_err err;
    assert_int_equal(metrics_history_query(h, res, since, out, &n, &err), 0);
    return n;
}

static void test_seconds_average_into_whole_minutes_only(void **state)
{
    struct fx *f = *state;
    /* 150 s of samples: two whole minutes and half of a third. */
    for (int i = 0; i < 150; i++)
        add(f->h, T0 + i * SEC, (double)i, -1, 2.0);
    assert_int_equal(metrics_history_compact(f->h, T0 + 150 * SEC, NULL), 0);

    metrics_point *p;
    size_t n = query(f->h, METRICS_RES_1M, 0, &p);
    assert_int_equal(n, 2); /* the unfinished minute is not averaged yet */
    assert_int_equal(p[0].sample.unix_ms, T0);
    assert_float_equal(p[0].sample.cpu_percent, 29.5, 1e-9); /* mean of 0..59 */
    assert_int_equal(p[1].sample.unix_ms, T0 + MIN);
    assert_float_equal(p[1].sample.cpu_percent, 89.5, 1e-9); /* mean of 60..119 */
    assert_float_equal(p[1].tokens_per_s, 2.0, 1e-9);
    assert_int_equal(p[1].sample.disk_free_bytes, 1000 - 119); /* the minimum */
    assert_true(p[0].sample.gpu_percent < 0);                  /* unknown stays unknown */
    mlx_free(p);

    /* The rest of the third minute arrives; only it is added. */
    for (int i = 150; i < 180; i++)
        add(f->h, T0 + i * SEC, (double)i, -1, 2.0);
    assert_int_equal(metrics_history_compact(f->h, T0 + 181 * SEC, NULL), 0);
    n = query(f->h, METRICS_RES_1M, 0, &p);
    assert_int_equal(n, 3);
    assert_float_equal(p[2].sample.cpu_percent, 149.5, 1e-9); /* mean of 120..179 */
    mlx_free(p);
}

static void test_compaction_twice_changes_nothing(void **state)
{
    struct fx *f = *state;
    for (int i = 0; i < 120; i++)
        add(f->h, T0 + i * SEC, 10.0, 50.0, 0);
    assert_int_equal(metrics_history_compact(f->h, T0 + 2 * MIN, NULL), 0);
    assert_int_equal(metrics_history_compact(f->h, T0 + 2 * MIN, NULL), 0);
    metrics_point *p;
    assert_int_equal(query(f->h, METRICS_RES_1M, 0, &p), 2);
    assert_float_equal(p[0].sample.gpu_percent, 50.0, 1e-9);
    mlx_free(p);
}

static void test_minutes_average_into_hours(void **state)
{
    struct fx *f = *state;
    /* One sample a minute for two hours: minute m has cpu m. */
    for (int m = 0; m < 120; m++)
        add(f->h, T0 + m * MIN, (double)m, -1, 0);
    assert_int_equal(metrics_history_compact(f->h, T0 + 2 * HOUR, NULL), 0);
    metrics_point *p;
    size_t n = query(f->h, METRICS_RES_1H, 0, &p);
    assert_int_equal(n, 2);
    assert_float_equal(p[0].sample.cpu_percent, 29.5, 1e-9);
    assert_float_equal(p[1].sample.cpu_percent, 89.5, 1e-9);
    mlx_free(p);
}

static void test_each_resolution_keeps_what_it_promises(void **state)
{
    struct fx *f = *state;
    int64_t now = T0 + 100 * DAY;
    add(f->h, now - HOUR - 5 * SEC, 1, -1, 0); /* just over an hour old */
    add(f->h, now - HOUR + 5 * SEC, 2, -1, 0); /* just under */
    assert_int_equal(metrics_history_compact(f->h, now, NULL), 0);
    metrics_point *p;
    size_t n = query(f->h, METRICS_RES_1S, 0, &p);
    assert_int_equal(n, 1);
    assert_float_equal(p[0].sample.cpu_percent, 2, 1e-9);
    mlx_free(p);
    /* Minutes for 7 days, hours for 90: both survive here, rolled up (the
     * dropped sample was averaged before it went). */
    assert_int_equal(query(f->h, METRICS_RES_1M, 0, &p), 2);
    mlx_free(p);

    /* 8 days later the minutes are gone and the hours remain; 91 days
     * later the hours are gone too. */
    assert_int_equal(metrics_history_compact(f->h, now + 8 * DAY, NULL), 0);
    assert_int_equal(query(f->h, METRICS_RES_1M, 0, &p), 0);
    mlx_free(p);
    assert_int_equal(query(f->h, METRICS_RES_1H, 0, &p), 2); /* the samples' two hours */
    mlx_free(p);
    assert_int_equal(metrics_history_compact(f->h, now + 91 * DAY, NULL), 0);
    assert_int_equal(query(f->h, METRICS_RES_1H, 0, &p), 0);
    mlx_free(p);
}

static void test_query_since_returns_newer_points_in_order(void **state)
{
    struct fx *f = *state;
    for (int i = 9; i >= 0; i--) /* written newest first */
        add(f->h, T0 + i * SEC, (double)i, -1, 0);
    metrics_point *p;
    size_t n = query(f->h, METRICS_RES_1S, T0 + 5 * SEC, &p);
    assert_int_equal(n, 5);
    for (size_t i = 0; i < n; i++)
        assert_int_equal(p[i].sample.unix_ms, T0 + (int64_t)(5 + i) * SEC);
    mlx_free(p);
}

static void test_history_survives_reopening(void **state)
{
    struct fx *f = *state;
    add(f->h, T0, 42, -1, 0);
    metrics_bench_run r = {.unix_ms = T0,
                           .prompts = 10,
                           .tokens_per_s = 123.5,
                           .ttft_p50_ms = 12,
                           .latency_ms = {100, 200, 300}};
    snprintf(r.model, sizeof r.model, "tiny:q8");
    assert_int_equal(metrics_history_add_bench(f->h, &r, NULL), 0);
    metrics_history_close(f->h);
    assert_int_equal(metrics_history_open(f->dir, &f->h, NULL), 0);

    metrics_point *p;
    assert_int_equal(query(f->h, METRICS_RES_1S, 0, &p), 1);
    assert_float_equal(p[0].sample.cpu_percent, 42, 1e-9);
    mlx_free(p);
    metrics_bench_run *b;
    size_t n;
    assert_int_equal(metrics_history_benches(f->h, 0, &b, &n, NULL), 0);
    assert_int_equal(n, 1);
    assert_string_equal(b[0].model, "tiny:q8");
    assert_float_equal(b[0].tokens_per_s, 123.5, 1e-9);
    assert_float_equal(b[0].latency_ms[2], 300, 1e-9);
    mlx_free(b);
    assert_int_equal(metrics_history_benches(f->h, T0 + 1, &b, &n, NULL), 0);
    assert_int_equal(n, 0);
    mlx_free(b);
}

static void test_unwritable_data_dir_is_a_clear_error(void **state)
{
    (void)state;
    metrics_history *h = NULL;
    mlx_err err;
    mlx_err_clear(&err);
    assert_int_not_equal(metrics_history_open("/nonexistent/dir", &h, &err), 0);
    assert_null(h);
    assert_non_null(strstr(err.msg, "/nonexistent/dir"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_seconds_average_into_whole_minutes_only,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(test_compaction_twice_changes_nothing, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_minutes_average_into_hours, setup, teardown),
        cmocka_unit_test_setup_teardown(test_each_resolution_keeps_what_it_promises,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(test_query_since_returns_newer_points_in_order,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(test_history_survives_reopening, setup, teardown),
        cmocka_unit_test(test_unwritable_data_dir_is_a_clear_error),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
