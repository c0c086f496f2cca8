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
    uint64_t used;
    return platform_read_memory(&used, &hw->memory_total_bytes, err);
}

int platform_read_memory(uint64_t *used, uint64_t *total, mlx_err *err)
{
    char *text;
    int rc = read_proc("/proc/meminfo", &text, err);
    if (rc != 0)
        return rc;
    const char *t = find_line(text, "MemTotal:");
    const char *a = find_line(text, "MemAvailable:");
    if (t == NULL || a == NULL) {
        mlx_free(text);
        return mlx_err_set(err, MLX_EIO, "/proc/meminfo lacks MemTotal or MemAvailable");
    }
    uint64_t total_kb = next_u64(&t);
    uint64_t avail_kb = next_u64(&a);
    mlx_free(text);
    *total = total_kb * 1024;
    *used = (total_kb > avail_kb ? total_kb - avail_kb : 0) * 1024;
    return 0;
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
