/* darwin.c — hardware and samples from sysctl and the Mach host interface. */
#include "agent/metrics/platform.h"

#include <mach/mach.h>
#include <stdio.h>
#include <string.h>
#include <sys/sysctl.h>
#include <sys/types.h>

static void sysctl_string(const char *name, char *out, size_t size)
{
    size_t len = size - 1;
    if (sysctlbyname(name, out, &len, NULL, 0) != 0)
        len = 0;
    out[len < size ? len : size - 1] = '\0';
}

static uint64_t sysctl_u64(const char *name)
{
    uint64_t v64 = 0;
    size_t len = sizeof v64;
    if (sysctlbyname(name, &v64, &len, NULL, 0) != 0)
        return 0;
    if (len == sizeof(uint32_t)) {
        uint32_t v32;
        memcpy(&v32, &v64, sizeof v32);
        return v32;
    }
    return v64;
}

int platform_read_hardware(metrics_hardware *hw, mlx_err *err)
{
    snprintf(hw->os_name, sizeof hw->os_name, "macOS");
    sysctl_string("kern.osproductversion", hw->os_version, sizeof hw->os_version);
    sysctl_string("machdep.cpu.brand_string", hw->cpu_model, sizeof hw->cpu_model);
    /* On Apple Silicon the brand string is the chip ("Apple M2 Max"). */
    if (strncmp(hw->cpu_model, "Apple ", 6) == 0)
        snprintf(hw->chip, sizeof hw->chip, "%s", hw->cpu_model);
    hw->cpu_cores = (uint32_t)sysctl_u64("hw.logicalcpu");
    hw->performance_cores = (uint32_t)sysctl_u64("hw.perflevel0.physicalcpu");
    if (hw->performance_cores == 0)
        hw->performance_cores = hw->cpu_cores;
    hw->memory_total_bytes = sysctl_u64("hw.memsize");
    if (hw->memory_total_bytes == 0)
        return mlx_err_set(err, MLX_EIO, "sysctl hw.memsize is not available");
    return 0;
}

int platform_read_memory(uint64_t *used, uint64_t *total, mlx_err *err)
{
    *total = sysctl_u64("hw.memsize");
    vm_statistics64_data_t vm;
    mach_msg_type_number_t count = HOST_VM_INFO64_COUNT;
    if (host_statistics64(mach_host_self(), HOST_VM_INFO64, (host_info64_t)&vm, &count) !=
        KERN_SUCCESS)
        return mlx_err_set(err, MLX_EIO, "host_statistics64 failed");
    vm_size_t page = 0;
    host_page_size(mach_host_self(), &page);
    /* What Activity Monitor calls used: app (active) + wired + compressed. */
    *used = ((uint64_t)vm.active_count + vm.wire_count + vm.compressor_page_count) * page;
    return 0;
}

int platform_read_cpu_ticks(metrics_cpu_ticks *out, mlx_err *err)
{
    host_cpu_load_info_data_t load;
    mach_msg_type_number_t count = HOST_CPU_LOAD_INFO_COUNT;
    if (host_statistics(mach_host_self(), HOST_CPU_LOAD_INFO, (host_info_t)&load,
                        &count) != KERN_SUCCESS)
        return mlx_err_set(err, MLX_EIO, "host_statistics(HOST_CPU_LOAD_INFO) failed");
    uint64_t user = load.cpu_ticks[CPU_STATE_USER];
    uint64_t sys = load.cpu_ticks[CPU_STATE_SYSTEM];
    uint64_t nice = load.cpu_ticks[CPU_STATE_NICE];
    uint64_t idle = load.cpu_ticks[CPU_STATE_IDLE];
    out->busy = user + sys + nice;
    out->total = out->busy + idle;
    return 0;
}
