/*
 * platform.h — internal: what each platform file (linux.c, darwin.c)
 * provides to metrics.c. Not included outside agent/metrics.
 */
#ifndef MLX_AGENT_METRICS_PLATFORM_H
#define MLX_AGENT_METRICS_PLATFORM_H

#include "agent/metrics/metrics.h"

/* Fills os_name, os_version, cpu_model, chip, cpu_cores, performance_cores
 * and memory_total_bytes. */
int platform_read_hardware(metrics_hardware *hw, mlx_err *err);

int platform_read_memory(metrics_memory *out, mlx_err *err);

/* Bytes received and sent since boot by every interface but loopback. */
int platform_read_net(uint64_t *rx, uint64_t *tx, mlx_err *err);

/* GPU busy percent; MLX_ENOENT where the platform does not tell. */
int platform_read_gpu(double *percent);

int platform_read_cpu_ticks(metrics_cpu_ticks *out, mlx_err *err);

#endif
