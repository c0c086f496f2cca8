/*
 * test_prom.c — the Prometheus text writer (common/prom.h): exact lines of
 * the exposition format for families, labels with characters that need
 * escaping, special values and cumulative histogram buckets.
 */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "common/prom.h"

static void test_family_and_plain_sample(void **state)
{
    mlx_buf b;
    mlx_buf_init(&b, 1 << 20);
    mlx_prom_family(&b, "mlx_node_cpu_percent", "gauge", "CPU busy, all cores, 0-100.");
    mlx_prom_sample(&b, "mlx_node_cpu_percent", NULL, 0, 12.5);
    mlx_prom_sample(&b, "mlx_requests_total", NULL, 0, 3);
    assert_string_equal(mlx_buf_str(&b),
                        "# HELP mlx_node_cpu_percent CPU busy, all cores, 0-100.\n"
                        "# TYPE mlx_node_cpu_percent gauge\n"
                        "mlx_node_cpu_percent 12.5\n"
                        "mlx_requests_total 3\n");
    mlx_buf_fini(&b);
}

static void test_label_values_are_escaped(void **state)
{
    mlx_buf b;
    mlx_buf_init(&b, 1 << 20);
    const char *labels[] = {"model", "a\"b\\c\nd", "engine", "mlx"};
    mlx_prom_sample(&b, "m", labels, 2, 1);
    assert_string_equal(mlx_buf_str(&b),
                        "m{model=\"a\\\"b\\\\c\\nd\",engine=\"mlx\"} 1\n");
    mlx_buf_fini(&b);
}

static void test_special_values(void **state)
{
    mlx_buf b;
    mlx_buf_init(&b, 1 << 20);
    mlx_prom_sample(&b, "a", NULL, 0, NAN);
    mlx_prom_sample(&b, "b", NULL, 0, INFINITY);
    mlx_prom_sample(&b, "c", NULL, 0, -INFINITY);
    mlx_prom_sample(&b, "d", NULL, 0, 1e20);
    assert_string_equal(mlx_buf_str(&b), "a NaN\nb +Inf\nc -Inf\nd 1e+20\n");
    mlx_buf_fini(&b);
}

static void test_histogram_buckets_are_cumulative(void **state)
{
    mlx_prom_histogram h;
    const double bounds[] = {0.1, 0.5, 1};
    mlx_prom_histogram_init(&h, bounds, 3);
    mlx_prom_histogram_observe(&h, 0.05);
    mlx_prom_histogram_observe(&h, 0.1); /* on a bound: counts in that bucket */
    mlx_prom_histogram_observe(&h, 0.7);
    mlx_prom_histogram_observe(&h, 3);
    mlx_buf b;
    mlx_buf_init(&b, 1 << 20);
    const char *labels[] = {"model", "tiny"};
    mlx_prom_histogram_write(&b, "ttft_seconds", labels, 1, &h);
    assert_string_equal(mlx_buf_str(&b),
                        "ttft_seconds_bucket{model=\"tiny\",le=\"0.1\"} 2\n"
                        "ttft_seconds_bucket{model=\"tiny\",le=\"0.5\"} 2\n"
                        "ttft_seconds_bucket{model=\"tiny\",le=\"1\"} 3\n"
                        "ttft_seconds_bucket{model=\"tiny\",le=\"+Inf\"} 4\n"
                        "ttft_seconds_sum{model=\"tiny\"} 3.85\n"
                        "ttft_seconds_count{model=\"tiny\"} 4\n");
    mlx_buf_fini(&b);
    mlx_prom_histogram_fini(&h);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_family_and_plain_sample),
        cmocka_unit_test(test_label_values_are_escaped),
        cmocka_unit_test(test_special_values),
        cmocka_unit_test(test_histogram_buckets_are_cumulative),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
