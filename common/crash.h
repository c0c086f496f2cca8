/*
 * crash.h — named points where a test can make the process die at once.
 *
 * Crash safety is only as good as the moments it was tried at. Random
 * kill -9 finds most, but a step that lasts microseconds (between a link
 * and a rename) is rarely hit. So each such step is named, and when the
 * environment variable MLX_CRASH_POINT holds that name the process kills
 * itself with SIGKILL there: no handler, no flush, no cleanup, exactly like
 * a power cut for everything but the disk cache. Unset, a point costs one
 * comparison.
 *
 * Thread safety: safe from any thread.
 */
#ifndef MLX_COMMON_CRASH_H
#define MLX_COMMON_CRASH_H

/* Dies here if MLX_CRASH_POINT equals name. */
void mlx_crash_point(const char *name);

#endif
