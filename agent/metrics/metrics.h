/*
 * metrics.h — what the agent knows about its machine.
 *
 * Two kinds of facts: the hardware (read once at start and sent when the
 * agent registers) and a sample of the machine's state (read before every
 * heartbeat). CPU use is a rate, so sampling needs the previous counters;
 * the caller keeps them in a metrics_cpu_ticks between calls.
 *
 * Platforms: the shared part is POSIX (hostname, load average, free disk);
 * the rest comes from /proc on Linux and sysctl/Mach on macOS, one file each.
 * A fact the platform does not offer is left empty or zero, never invented.
 *
 * Thread safety: all functions are safe; a metrics_cpu_ticks belongs to one
 * caller.
 */
#ifndef MLX_AGENT_METRICS_H
#define MLX_AGENT_METRICS_H

#include <stdint.h>

#include "common/err.h"
#include "common/limits.h"

typedef struct metrics_hardware {
    char hostname[MLX_MAX_FACT + 1];
    char os_name[MLX_MAX_FACT + 1];    /* "Linux", "macOS" */
    char os_version[MLX_MAX_FACT + 1]; /* distribution and kernel, or macOS version */
    char arch[MLX_MAX_FACT + 1];       /* "x86_64", "arm64" */
    char cpu_model[MLX_MAX_FACT + 1];
    char chip[MLX_MAX_FACT + 1]; /* "Apple M2 Max" on macOS, else "" */
    uint32_t cpu_cores;          /* logical cores online */
    uint32_t performance_cores;  /* P-cores on Apple Silicon; all cores elsewhere */
    uint64_t memory_total_bytes;
    uint64_t disk_free_bytes; /* of the data directory's file system */
    uint64_t disk_total_bytes;
} metrics_hardware;

/* Busy and total CPU time since boot, in the platform's ticks. */
typedef struct metrics_cpu_ticks {
    uint64_t busy;
    uint64_t total;
} metrics_cpu_ticks;

typedef struct metrics_sample {
    int64_t unix_ms;
    double cpu_percent; /* since the previous sample, all cores, 0..100 */
    uint64_t memory_used_bytes;
    uint64_t memory_total_bytes;
    double load[3]; /* 1, 5 and 15 minute load averages */
    uint64_t disk_free_bytes;
} metrics_sample;

/* data_dir: the directory whose file system's free space is reported. */
int metrics_read_hardware(const char *data_dir, metrics_hardware *out, mlx_err *err);

/* prev holds the counters of the last call (zero before the first, which
 * then reports the average since boot) and is updated. */
int metrics_sample_system(const char *data_dir, metrics_cpu_ticks *prev,
                          metrics_sample *out, mlx_err *err);

#endif
