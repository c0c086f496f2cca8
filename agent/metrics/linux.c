/* linux.c — hardware and samples from /proc and /etc/os-release. */
#include "agent/metrics/platform.h"

#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "common/alloc.h"
#include "common/path.h"

/* /proc/cpuinfo is about 1.5 KiB per core. */
#define PROC_FILE_MAX (8u << 20)

/* Finds the line starting with key (at the start of text or after a newline)
 * and returns a pointer just after the key, or NULL. */
static const char *find_line(const char *text, const char *key)
{
    size_t n = strlen(key);
    for (const char *p = text; p != NULL && *p != '\0';) {
        if (strncmp(p, key, n) == 0)
            return p + n;
        p = strchr(p, '\n');
        if (p != NULL)
            p++;
    }
    return NULL;
}

/* Copies the rest of the line after "key<spaces>:<spaces>" (cpuinfo style)
 * or after "key=" with optional quotes (os-release style). */
static void copy_value(const char *p, char *out, size_t size)
{
    while (*p == ' ' || *p == '\t' || *p == ':' || *p == '=' || *p == '"')
        p++;
    size_t len = strcspn(p, "\n");
    while (len > 0 && (p[len - 1] == '"' || p[len - 1] == ' '))
        len--;
    if (len >= size)
        len = size - 1;
    memcpy(out, p, len);
    out[len] = '\0';
}

/* Reads the unsigned decimal after optional blanks; advances *p. */
static uint64_t next_u64(const char **p)
{
    while (**p == ' ' || **p == '\t' || **p == ':')
        (*p)++;
    uint64_t v = 0;
    while (**p >= '0' && **p <= '9') {
        v = v * 10 + (uint64_t)(**p - '0');
        (*p)++;
    }
    return v;
}

static int read_proc(const char *path, char **out, mlx_err *err)
{
    return mlx_path_read_small(path, PROC_FILE_MAX, out, err);
}

int platform_read_hardware(metrics_hardware *hw, mlx_err *err)
{
    snprintf(hw->os_name, sizeof hw->os_name, "Linux");
    char *text = NULL;
    char pretty[128] = "";
    if (mlx_path_read_small("/etc/os-release", 64 * 1024, &text, NULL) == 0) {
        const char *v = find_line(text, "PRETTY_NAME=");
        if (v != NULL)
            copy_value(v, pretty, sizeof pretty);
        mlx_free(text);
        text = NULL;
    }
    char kernel[96] = "";
    if (mlx_path_read_small("/proc/sys/kernel/osrelease", 4096, &text, NULL) == 0) {
        copy_value(text, kernel, sizeof kernel);
        mlx_free(text);
        text = NULL;
    }
    snprintf(hw->os_version, sizeof hw->os_version, "%s%s%s",
             pretty[0] ? pretty : "Linux", kernel[0] ? ", kernel " : "", kernel);

    if (read_proc("/proc/cpuinfo", &text, NULL) == 0) {
        /* x86 names the model; arm64 kernels often only name the implementer. */
        const char *v = find_line(text, "model name");
        if (v == NULL)
            v = find_line(text, "Hardware");
        if (v == NULL)
            v = find_line(text, "Processor");
        if (v != NULL)
            copy_value(v, hw->cpu_model, sizeof hw->cpu_model);
        mlx_free(text);
        text = NULL;
    }
    if (hw->cpu_model[0] == '\0')
        snprintf(hw->cpu_model, sizeof hw->cpu_model, "%s", hw->arch);

    long cores = sysconf(_SC_NPROCESSORS_ONLN);
    hw->cpu_cores = cores > 0 ? (uint32_t)cores : 1;
    hw->performance_cores = hw->cpu_cores;
    metrics_memory mem;
    int rc = platform_read_memory(&mem, err);
    hw->memory_total_bytes = mem.total;
    return rc;
}

/* The value in kB of a /proc/meminfo key, in bytes; 0 when absent. */
static uint64_t meminfo_bytes(const char *text, const char *key)
{
    const char *p = find_line(text, key);
    return p != NULL ? next_u64(&p) * 1024 : 0;
}

int platform_read_memory(metrics_memory *out, mlx_err *err)
{
    memset(out, 0, sizeof *out);
    char *text;
    int rc = read_proc("/proc/meminfo", &text, err);
    if (rc != 0)
        return rc;
    if (find_line(text, "MemTotal:") == NULL ||
        find_line(text, "MemAvailable:") == NULL) {
        mlx_free(text);
        return mlx_err_set(err, MLX_EIO, "/proc/meminfo lacks MemTotal or MemAvailable");
    }
    uint64_t avail = meminfo_bytes(text, "MemAvailable:");
    uint64_t swap_free = meminfo_bytes(text, "SwapFree:");
    out->total = meminfo_bytes(text, "MemTotal:");
    out->used = out->total > avail ? out->total - avail : 0;
    out->swap_total = meminfo_bytes(text, "SwapTotal:");
    out->swap_used = out->swap_total > swap_free ? out->swap_total - swap_free : 0;
    mlx_free(text);
    return 0;
}

int platform_read_net(uint64_t *rx, uint64_t *tx, mlx_err *err)
{
    char *text;
    int rc = read_proc("/proc/net/dev", &text, err);
    if (rc != 0)
        return rc;
    *rx = *tx = 0;
    /* Two header lines, then "  name: rx_bytes packets errs drop fifo frame
     * compressed multicast tx_bytes …" per interface. */
    for (const char *line = text; line != NULL && *line != '\0';) {
        const char *colon = strchr(line, ':');
        const char *eol = strchr(line, '\n');
        if (colon != NULL && (eol == NULL || colon < eol)) {
            const char *name = line;
            while (*name == ' ')
                name++;
            if (!(colon - name == 2 && strncmp(name, "lo", 2) == 0)) {
                const char *p = colon + 1;
                uint64_t f[9];
                for (int i = 0; i < 9; i++)
                    f[i] = next_u64(&p);
                *rx += f[0];
                *tx += f[8];
            }
        }
        line = eol != NULL ? eol + 1 : NULL;
    }
    mlx_free(text);
    return 0;
}

/* AMD GPUs say how busy they are in sysfs; others (NVIDIA, Intel) do not
 * without their own libraries, and are reported as unknown. */
int platform_read_gpu(double *percent)
{
    for (int card = 0; card < 8; card++) {
        char path[96];
        snprintf(path, sizeof path, "/sys/class/drm/card%d/device/gpu_busy_percent",
                 card);
        char *text;
        if (mlx_path_read_small(path, 64, &text, NULL) != 0)
            continue;
        const char *p = text;
        *percent = (double)next_u64(&p);
        mlx_free(text);
        return 0;
    }
    return MLX_ENOENT;
}

int platform_read_cpu_ticks(metrics_cpu_ticks *out, mlx_err *err)
{
    char *text;
    int rc = read_proc("/proc/stat", &text, err);
    if (rc != 0)
        return rc;
    const char *p = find_line(text, "cpu ");
    if (p == NULL) {
        mlx_free(text);
        return mlx_err_set(err, MLX_EIO, "/proc/stat has no 'cpu' line");
    }
    /* user nice system idle iowait irq softirq steal */
    uint64_t f[8] = {0};
    for (int i = 0; i < 8; i++)
        f[i] = next_u64(&p);
    mlx_free(text);
    uint64_t idle = f[3] + f[4];
    out->total = f[0] + f[1] + f[2] + f[3] + f[4] + f[5] + f[6] + f[7];
    out->busy = out->total - idle;
    return 0;
}
