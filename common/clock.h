/*
 * clock.h — monotonic and wall-clock time in milliseconds.
 *
 * Durations and deadlines use the monotonic clock, which never jumps; the
 * wall clock is only for timestamps shown to people or stored. Code whose
 * behaviour depends on time (membership, rate limits) takes "now" as a
 * parameter instead of calling these, so tests can drive it with a fake clock.
 *
 * Thread safety: all functions are safe.
 */
#ifndef MLX_COMMON_CLOCK_H
#define MLX_COMMON_CLOCK_H

#include <stddef.h>
#include <stdint.h>

int64_t mlx_time_mono_ms(void);
int64_t mlx_time_mono_ns(void);
int64_t mlx_time_wall_ms(void); /* milliseconds since 1970-01-01 UTC */

/* Writes "2026-11-22T10:04:05.123Z" into out (size >= 25). */
void mlx_time_format_rfc3339(int64_t wall_ms, char *out, size_t size);

#endif
