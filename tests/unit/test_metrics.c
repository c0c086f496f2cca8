/*
 * test_metrics.c — hardware facts and system samples (agent/metrics/metrics.h)
 * on Linux, each checked against an independent reading of the same source
 * (gethostname, sysconf, /proc/meminfo, statvfs, getloadavg). CPU use is
 * checked to rise above zero while a second thread burns CPU, polling with
 * a deadline rather than sleeping. Skips (77) on other platforms.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "tests/support/testutil.h"

#ifdef __linux__

#include <pthread.h>
#include <sys/statvfs.h>
#include <time.h>
#include <unistd.h>

#include "agent/metrics/metrics.h"
#include "common/err.h"

#define MIB (UINT64_C(1) << 20)

static int64_t mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int64_t wall_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* MemTotal from /proc/meminfo in bytes, read here without the project's
 * parser so the test has its own reference. */
static uint64_t meminfo_total_bytes(void)
{
    FILE *f = fopen("/proc/meminfo", "r");
    assert_non_null(f);
    char line[256];
    uint64_t kb = 0;
    int found = 0;
    while (fgets(line, sizeof line, f) != NULL) {
        if (strncmp(line, "MemTotal:", 9) != 0)
            continue;
        const char *p = line + 9;
        while (*p == ' ' || *p == '\t')
            p++;
        while (*p >= '0' && *p <= '9')
            kb = kb * 10 + (uint64_t)(*p++ - '0');
        assert_non_null(strstr(p, "kB"));
        found = 1;
        break;
    }
    fclose(f);
    assert_true(found);
    assert_true(kb > 0);
    return kb * 1024;
}

static uint64_t diff_u64(uint64_t a, uint64_t b)
{
    return a > b ? a - b : b - a;
}

static int setup(void **state)
{
    *state = test_tmpdir("metrics");
    return 0;
}

static int teardown(void **state)
{
    test_tmpdir_remove(*state);
    return 0;
}

/* ---- hardware --------------------------------------------------------- */

static void hardware_hostname_equals_gethostname(void **state)
{
    metrics_hardware hw;
    mlx_err err;
    mlx_err_clear(&err);
    int rc = metrics_read_hardware(*state, &hw, &err);
    if (rc != 0)
        fail_msg("metrics_read_hardware: %s", err.msg);
    char want[256];
    assert_int_equal(gethostname(want, sizeof want), 0);
    want[sizeof want - 1] = '\0';
    assert_string_equal(hw.hostname, want);
}

static void hardware_names_linux_and_its_arch(void **state)
{
    metrics_hardware hw;
    assert_int_equal(metrics_read_hardware(*state, &hw, NULL), 0);
    assert_string_equal(hw.os_name, "Linux");
    assert_true(hw.os_version[0] != '\0');
    assert_true(hw.arch[0] != '\0');
    assert_true(hw.cpu_model[0] != '\0');
    assert_string_equal(hw.chip, ""); /* only macOS has a chip name */
#if defined(__x86_64__)
    assert_string_equal(hw.arch, "x86_64");
#elif defined(__aarch64__)
    assert_string_equal(hw.arch, "aarch64");
#endif
}

static void hardware_cores_equal_online_processors(void **state)
{
    metrics_hardware hw;
    assert_int_equal(metrics_read_hardware(*state, &hw, NULL), 0);
    long online = sysconf(_SC_NPROCESSORS_ONLN);
    assert_true(online > 0);
    assert_int_equal(hw.cpu_cores, (uint32_t)online);
    assert_true(hw.performance_cores >= 1);
    assert_true(hw.performance_cores <= hw.cpu_cores);
}

static void hardware_memory_equals_meminfo_total(void **state)
{
    metrics_hardware hw;
    assert_int_equal(metrics_read_hardware(*state, &hw, NULL), 0);
    assert_true(hw.memory_total_bytes == meminfo_total_bytes());
}

static void hardware_disk_matches_statvfs_of_the_data_dir(void **state)
{
    metrics_hardware hw;
    assert_int_equal(metrics_read_hardware(*state, &hw, NULL), 0);
    struct statvfs vfs;
    assert_int_equal(statvfs(*state, &vfs), 0);
    uint64_t free_bytes = (uint64_t)vfs.f_bavail * vfs.f_frsize;
    uint64_t total_bytes = (uint64_t)vfs.f_blocks * vfs.f_frsize;
    if (diff_u64(hw.disk_free_bytes, free_bytes) > 16 * MIB)
        fail_msg("disk_free_bytes %llu, statvfs says %llu",
                 (unsigned long long)hw.disk_free_bytes, (unsigned long long)free_bytes);
    assert_true(hw.disk_total_bytes == total_bytes);
    assert_true(hw.disk_free_bytes <= hw.disk_total_bytes);
}

static void hardware_of_missing_dir_fails_naming_it(void **state)
{
    char *missing = test_join(*state, "no-such-dir");
    metrics_hardware hw;
    mlx_err err;
    mlx_err_clear(&err);
    int rc = metrics_read_hardware(missing, &hw, &err);
    assert_int_equal(rc, MLX_EIO);
    assert_non_null(strstr(err.msg, missing));
    free(missing);
}

/* ---- samples ---------------------------------------------------------- */

static void sample_is_consistent_with_the_system(void **state)
{
    metrics_counters prev = {0};
    metrics_sample s;
    mlx_err err;
    mlx_err_clear(&err);
    int64_t before = wall_ms();
    int rc = metrics_sample_system(*state, &prev, &s, &err);
    int64_t after = wall_ms();
    if (rc != 0)
        fail_msg("metrics_sample_system: %s", err.msg);
    assert_true(s.unix_ms >= before && s.unix_ms <= after);
    assert_true(s.memory_total_bytes == meminfo_total_bytes());
    assert_true(s.memory_used_bytes > 0);
    assert_true(s.memory_used_bytes <= s.memory_total_bytes);
    /* The first call reports the average since boot. */
    assert_true(s.cpu_percent >= 0.0 && s.cpu_percent <= 100.0);
    assert_true(prev.cpu.total > 0);
    assert_true(prev.cpu.busy <= prev.cpu.total);
    double load[3];
    assert_int_equal(getloadavg(load, 3), 3);
    for (int i = 0; i < 3; i++) {
        if (s.load[i] < load[i] - 0.5 || s.load[i] > load[i] + 0.5)
            fail_msg("load[%d] is %f, getloadavg says %f", i, s.load[i], load[i]);
    }
    struct statvfs vfs;
    assert_int_equal(statvfs(*state, &vfs), 0);
    uint64_t free_bytes = (uint64_t)vfs.f_bavail * vfs.f_frsize;
    assert_true(diff_u64(s.disk_free_bytes, free_bytes) <= 16 * MIB);
}

static void sample_cpu_percent_stays_within_0_and_100(void **state)
{
    metrics_counters prev = {0};
    metrics_sample s;
    for (int i = 0; i < 50; i++) {
        assert_int_equal(metrics_sample_system(*state, &prev, &s, NULL), 0);
        if (s.cpu_percent < 0.0 || s.cpu_percent > 100.0)
            fail_msg("sample %d: cpu_percent %f", i, s.cpu_percent);
    }
}

static void *burn(void *arg)
{
    int64_t ms = *(const int64_t *)arg;
    int64_t end = mono_ms() + ms;
    volatile uint64_t x = 1;
    while (mono_ms() < end) {
        for (int i = 0; i < 10000; i++)
            x = x * 6364136223846793005u + 1442695040888963407u;
    }
    return NULL;
}

static void sample_shows_cpu_use_while_a_thread_burns(void **state)
{
    metrics_counters prev = {0};
    metrics_sample s;
    assert_int_equal(metrics_sample_system(*state, &prev, &s, NULL), 0);
    int64_t deadline = mono_ms() + 5000;
    int64_t burn_ms = 200;
    int rounds = 0;
    for (;;) {
        pthread_t t;
        assert_int_equal(pthread_create(&t, NULL, burn, &burn_ms), 0);
        assert_int_equal(pthread_join(t, NULL), 0);
        rounds++;
        mlx_err err;
        mlx_err_clear(&err);
        int rc = metrics_sample_system(*state, &prev, &s, &err);
        if (rc != 0)
            fail_msg("metrics_sample_system: %s", err.msg);
        assert_true(s.cpu_percent >= 0.0 && s.cpu_percent <= 100.0);
        if (s.cpu_percent > 0.0)
            break;
        if (mono_ms() > deadline)
            fail_msg("cpu_percent stayed 0 through %d rounds of 200 ms of busy loop",
                     rounds);
    }
}

static void sample_of_missing_dir_fails(void **state)
{
    char *missing = test_join(*state, "gone");
    metrics_counters prev = {0};
    metrics_sample s;
    mlx_err err;
    mlx_err_clear(&err);
    assert_int_equal(metrics_sample_system(missing, &prev, &s, &err), MLX_EIO);
    assert_non_null(strstr(err.msg, missing));
    free(missing);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(hardware_hostname_equals_gethostname, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(hardware_names_linux_and_its_arch, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(hardware_cores_equal_online_processors, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(hardware_memory_equals_meminfo_total, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(hardware_disk_matches_statvfs_of_the_data_dir,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(hardware_of_missing_dir_fails_naming_it, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(sample_is_consistent_with_the_system, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(sample_cpu_percent_stays_within_0_and_100, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(sample_shows_cpu_use_while_a_thread_burns, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(sample_of_missing_dir_fails, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

#else

int main(void)
{
    printf("test_metrics: skipped: the checks read /proc and need Linux\n");
    return TEST_SKIP;
}

#endif
