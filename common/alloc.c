/* alloc.c — allocation wrappers and the fault-injection counter. */
#include "common/alloc.h"

#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* Allocations left before injected failures start; negative: never fail. */
static _Atomic long allocs_left = -1;

/* Failed allocations on this thread; see mlx_alloc_failures. */
static _Thread_local unsigned long failures;

static int should_fail(void)
{
    long left = atomic_load(&allocs_left);
    if (left < 0)
        return 0;
    if (left == 0) {
        failures++;
        return 1;
    }
    atomic_fetch_sub(&allocs_left, 1);
    return 0;
}

static void *counted(void *p)
{
    if (p == NULL)
        failures++;
    return p;
}

void *mlx_malloc(size_t n)
{
    if (should_fail())
        return NULL;
    return counted(malloc(n == 0 ? 1 : n));
}

void *mlx_calloc(size_t count, size_t size)
{
    if (size != 0 && count > SIZE_MAX / size)
        return counted(NULL);
    if (should_fail())
        return NULL;
    return counted(calloc(count == 0 ? 1 : count, size == 0 ? 1 : size));
}

void *mlx_realloc(void *p, size_t n)
{
    if (should_fail())
        return NULL;
    return counted(realloc(p, n == 0 ? 1 : n));
}

unsigned long mlx_alloc_failures(void)
{
    return failures;
}

void mlx_free(void *p)
{
    free(p);
}

char *mlx_strndup(const char *s, size_t n)
{
    size_t len = strnlen(s, n);
    char *copy = mlx_malloc(len + 1);
    if (copy == NULL)
        return NULL;
    memcpy(copy, s, len);
    copy[len] = '\0';
    return copy;
}

char *mlx_strdup(const char *s)
{
    return mlx_strndup(s, SIZE_MAX);
}

void mlx_alloc_fail_after(long n)
{
    atomic_store(&allocs_left, n);
}

void mlx_alloc_fail_reset(void)
{
    atomic_store(&allocs_left, -1);
}
