/* metrics.c — the POSIX part of hardware facts and samples. */
#include "agent/metrics/metrics.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/statvfs.h>
#include <sys/utsname.h>
#include <unistd.h>

#include "agent/metrics/platform.h"
#include "common/clock.h"

static int read_disk(const char *dir, uint64_t *free_bytes, uint64_t *total_bytes,
                     mlx_err *err)
{
    struct statvfs vfs;
    if (statvfs(dir, &vfs) != 0)
        return mlx_err_set(err, MLX_EIO, "cannot read free space of %s: %s", dir,
                           strerror(errno));
    *free_bytes = (uint64_t)vfs.f_bavail * vfs.f_frsize;
    if (total_bytes != NULL)
        *total_bytes = (uint64_t)vfs.f_blocks * vfs.f_frsize;
    return 0;
}

int metrics_read_hardware(const char *data_dir, metrics_hardware *out, mlx_err *err)
{
    memset(out, 0, sizeof *out);
    if (gethostname(out->hostname, sizeof out->hostname - 1) != 0)
        return mlx_err_set(err, MLX_EIO, "cannot read the host name: %s",
                           strerror(errno));
    struct utsname uts;
    if (uname(&uts) == 0)
        memcpy(out->arch, uts.machine, strnlen(uts.machine, sizeof out->arch - 1));
    int rc = platform_read_hardware(out, err);
    if (rc == 0)
        rc = read_disk(data_dir, &out->disk_free_bytes, &out->disk_total_bytes, err);
    return rc;
}

/* A counter that went backwards was reset (or wrapped): count from zero. */
static uint64_t counter_delta(uint64_t now, uint64_t before)
{
    return now >= before ? now - before : now;
}

int metrics_sample_system(const char *data_dir, metrics_counters *prev,
                          metrics_sample *out, mlx_err *err)
{
    memset(out, 0, sizeof *out);
    out->unix_ms = mlx_time_wall_ms();
    metrics_counters now = {.mono_ms = mlx_time_mono_ms()};

    int rc = platform_read_cpu_ticks(&now.cpu, err);
    if (rc != 0)
        return rc;
    uint64_t busy = counter_delta(now.cpu.busy, prev->cpu.busy);
    uint64_t total = counter_delta(now.cpu.total, prev->cpu.total);
    out->cpu_percent = total > 0 ? 100.0 * (double)busy / (double)total : 0.0;
    if (out->cpu_percent > 100.0) /* busy and idle counters are read apart */
        out->cpu_percent = 100.0;

    /* A machine without a readable interface list still has a sample. */
    if (platform_read_net(&now.net_rx_bytes, &now.net_tx_bytes, NULL) == 0 &&
        prev->mono_ms > 0 && now.mono_ms > prev->mono_ms) {
        double seconds = (double)(now.mono_ms - prev->mono_ms) / 1000.0;
        out->net_rx_bytes_per_s =
            (double)counter_delta(now.net_rx_bytes, prev->net_rx_bytes) / seconds;
        out->net_tx_bytes_per_s =
            (double)counter_delta(now.net_tx_bytes, prev->net_tx_bytes) / seconds;
    }
    *prev = now;

    metrics_memory mem;
    if ((rc = platform_read_memory(&mem, err)))
        return rc;
    out->memory_used_bytes = mem.used;
    out->memory_total_bytes = mem.total;
    out->swap_used_bytes = mem.swap_used;
    out->swap_total_bytes = mem.swap_total;
    out->memory_wired_bytes = mem.wired;
    out->memory_compressed_bytes = mem.compressed;
    if (getloadavg(out->load, 3) != 3)
        out->load[0] = out->load[1] = out->load[2] = 0.0;
    if (platform_read_gpu(&out->gpu_percent) != 0)
        out->gpu_percent = -1.0;
    return read_disk(data_dir, &out->disk_free_bytes, NULL, err);
}
