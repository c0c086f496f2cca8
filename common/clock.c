/* clock.c — clock_gettime wrappers and RFC 3339 formatting. */
#include "common/clock.h"

#include <stdio.h>
#include <time.h>

int64_t mlx_time_mono_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

int64_t mlx_time_mono_ms(void)
{
    return mlx_time_mono_ns() / 1000000;
}

int64_t mlx_time_wall_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void mlx_time_format_rfc3339(int64_t wall_ms, char *out, size_t size)
{
    /* Floor division, so times before 1970 keep a millisecond part 0-999. */
    int64_t ms = wall_ms % 1000;
    int64_t whole = wall_ms / 1000;
    if (ms < 0) {
        ms += 1000;
        whole -= 1;
    }
    time_t secs = (time_t)whole;
    struct tm tm;
    gmtime_r(&secs, &tm);
    snprintf(out, size, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900,
             tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, (int)ms);
}
