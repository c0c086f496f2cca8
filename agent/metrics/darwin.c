/* darwin.c — hardware and samples from sysctl and the Mach host interface. */
#include "agent/metrics/platform.h"

#include <CoreFoundation/CoreFoundation.h>
#include <IOKit/IOKitLib.h>
#include <ifaddrs.h>
#include <mach/mach.h>
#include <net/if.h>
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

int platform_read_memory(metrics_memory *out, mlx_err *err)
{
    memset(out, 0, sizeof *out);
    out->total = sysctl_u64("hw.memsize");
    vm_statistics64_data_t vm;
    mach_msg_type_number_t count = HOST_VM_INFO64_COUNT;
    if (host_statistics64(mach_host_self(), HOST_VM_INFO64, (host_info64_t)&vm, &count) !=
        KERN_SUCCESS)
        return mlx_err_set(err, MLX_EIO, "host_statistics64 failed");
    vm_size_t page = 0;
    host_page_size(mach_host_self(), &page);
    out->wired = (uint64_t)vm.wire_count * page;
    out->compressed = (uint64_t)vm.compressor_page_count * page;
    /* What Activity Monitor calls used: app (active) + wired + compressed. */
    out->used = (uint64_t)vm.active_count * page + out->wired + out->compressed;
    struct xsw_usage swap;
    size_t len = sizeof swap;
    if (sysctlbyname("vm.swapusage", &swap, &len, NULL, 0) == 0) {
        out->swap_total = swap.xsu_total;
        out->swap_used = swap.xsu_used;
    }
    return 0;
}

int platform_read_net(uint64_t *rx, uint64_t *tx, mlx_err *err)
{
    struct ifaddrs *list;
    if (getifaddrs(&list) != 0)
        return mlx_err_set(err, MLX_EIO, "cannot list network interfaces");
    *rx = *tx = 0;
    for (struct ifaddrs *i = list; i != NULL; i = i->ifa_next) {
        if (i->ifa_addr == NULL || i->ifa_addr->sa_family != AF_LINK ||
            i->ifa_data == NULL || (i->ifa_flags & IFF_LOOPBACK))
            continue;
        const struct if_data *d = i->ifa_data;
        *rx += d->ifi_ibytes;
        *tx += d->ifi_obytes;
    }
    freeifaddrs(list);
    return 0;
}

/* Apple's GPU driver publishes "Device Utilization %" in the
 * PerformanceStatistics of its IOAccelerator service. */
int platform_read_gpu(double *percent)
{
    io_iterator_t it;
    if (IOServiceGetMatchingServices(MACH_PORT_NULL, IOServiceMatching("IOAccelerator"),
                                     &it) != KERN_SUCCESS)
        return MLX_ENOENT;
    int rc = MLX_ENOENT;
    for (io_object_t svc; rc != 0 && (svc = IOIteratorNext(it)) != 0;) {
        CFTypeRef stats = IORegistryEntryCreateCFProperty(
            svc, CFSTR("PerformanceStatistics"), kCFAllocatorDefault, 0);
        if (stats != NULL && CFGetTypeID(stats) == CFDictionaryGetTypeID()) {
            CFNumberRef n = CFDictionaryGetValue((CFDictionaryRef)stats,
                                                 CFSTR("Device Utilization %"));
            long long v;
            if (n != NULL && CFNumberGetValue(n, kCFNumberLongLongType, &v)) {
                *percent = (double)v;
                rc = 0;
            }
        }
        if (stats != NULL)
            CFRelease(stats);
        IOObjectRelease(svc);
    }
    IOObjectRelease(it);
    return rc;
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
