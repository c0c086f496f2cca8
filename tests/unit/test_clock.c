/*
 * test_clock.c — common/clock: RFC 3339 formatting against dates computed
 * independently (GNU date -u -d @SECONDS), the monotonic clock never going
 * back, and the wall clock agreeing with time(2).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>

#include "common/clock.h"

static void assert_rfc3339(int64_t wall_ms, const char *want)
{
    char out[40];
    memset(out, '#', sizeof out);
    mlx_time_format_rfc3339(wall_ms, out, sizeof out);
    assert_string_equal(out, want);
}

static void test_clock_formats_the_epoch(void **state)
{
    (void)state;
    assert_rfc3339(0, "1970-01-01T00:00:00.000Z");
}

static void test_clock_formats_known_timestamps(void **state)
{
    (void)state;
    assert_rfc3339(1700000000123, "2023-11-14T22:13:20.123Z");
    assert_rfc3339(1700000000000, "2023-11-14T22:13:20.000Z");
    assert_rfc3339(951782400007, "2000-02-29T00:00:00.007Z");  /* leap day */
    assert_rfc3339(4107542399999, "2100-02-28T23:59:59.999Z"); /* 2100 is no leap year */
    assert_rfc3339(253402300799999, "9999-12-31T23:59:59.999Z"); /* widest that fits */
}

static void test_clock_formats_times_before_the_epoch(void **state)
{
    (void)state;
    /* One millisecond before 1970: date -u -d @-1 gives 1969-12-31T23:59:59. */
    assert_rfc3339(-1, "1969-12-31T23:59:59.999Z");
    assert_rfc3339(-1000, "1969-12-31T23:59:59.000Z");
    assert_rfc3339(-1001, "1969-12-31T23:59:58.999Z");
}

static void test_clock_format_fits_in_25_bytes(void **state)
{
    (void)state;
    char out[25 + 8];
    memset(out, '#', sizeof out);
    mlx_time_format_rfc3339(1700000000123, out, 25);
    assert_string_equal(out, "2023-11-14T22:13:20.123Z");
    for (size_t i = 25; i < sizeof out; i++)
        assert_int_equal(out[i], '#');
}

static void test_clock_format_never_writes_past_size(void **state)
{
    (void)state;
    char out[16];
    memset(out, '#', sizeof out);
    mlx_time_format_rfc3339(1700000000123, out, 10);
    assert_string_equal(out, "2023-11-1");
    for (size_t i = 10; i < sizeof out; i++)
        assert_int_equal(out[i], '#');
}

static void test_clock_monotonic_never_goes_back(void **state)
{
    (void)state;
    int64_t prev_ns = mlx_time_mono_ns();
    int64_t prev_ms = mlx_time_mono_ms();
    for (int i = 0; i < 10000; i++) {
        int64_t ns = mlx_time_mono_ns();
        int64_t ms = mlx_time_mono_ms();
        assert_true(ns >= prev_ns);
        assert_true(ms >= prev_ms);
        prev_ns = ns;
        prev_ms = ms;
    }
}

static void test_clock_monotonic_ms_and_ns_agree(void **state)
{
    (void)state;
    int64_t ns = mlx_time_mono_ns();
    int64_t ms = mlx_time_mono_ms();
    int64_t ns2 = mlx_time_mono_ns();
    assert_true(ms >= ns / 1000000);
    assert_true(ms <= ns2 / 1000000);
}

static void test_clock_wall_agrees_with_time(void **state)
{
    (void)state;
    /* time(2) may read a coarser clock source, so allow a little skew; what
     * matters is the unit (ms, not s or us) and the epoch (1970, UTC). */
    int64_t secs = (int64_t)time(NULL);
    int64_t wall = mlx_time_wall_ms();
    assert_true(wall > (secs - 2) * 1000);
    assert_true(wall < (secs + 2) * 1000);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_clock_formats_the_epoch),
        cmocka_unit_test(test_clock_formats_known_timestamps),
        cmocka_unit_test(test_clock_formats_times_before_the_epoch),
        cmocka_unit_test(test_clock_format_fits_in_25_bytes),
        cmocka_unit_test(test_clock_format_never_writes_past_size),
        cmocka_unit_test(test_clock_monotonic_never_goes_back),
        cmocka_unit_test(test_clock_monotonic_ms_and_ns_agree),
        cmocka_unit_test(test_clock_wall_agrees_with_time),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
