/*
 * alloc.h — the allocator every module uses, with a fault-injection seam.
 *
 * Project code allocates only through these functions (and hands them to
 * protobuf-c and jansson), so a test can make the Nth allocation fail and
 * check that the code under test reports MLX_ENOMEM, leaks nothing and leaves
 * its objects in their documented state.
 *
 * Thread safety: all functions are safe. The fault counter is process-wide
 * and meant for single-threaded unit tests.
 */
#ifndef MLX_COMMON_ALLOC_H
#define MLX_COMMON_ALLOC_H

#include <stddef.h>

void *mlx_malloc(size_t n);
void *mlx_calloc(size_t count, size_t size); /* NULL when count*size overflows */
void *mlx_realloc(void *p, size_t n);
void mlx_free(void *p);
char *mlx_strdup(const char *s);            /* caller frees */
char *mlx_strndup(const char *s, size_t n); /* at most n bytes, NUL-terminated */

/* Test seam: after n more successful allocations, every allocation fails
 * until mlx_alloc_fail_reset(). n < 0 disables injection (the default). */
void mlx_alloc_fail_after(long n);
void mlx_alloc_fail_reset(void);

/* How many allocations have failed on the calling thread so far (injected or
 * real). jansson reports most of its out-of-memory cases as syntax errors;
 * comparing this count before and after a call tells the two apart. */
unsigned long mlx_alloc_failures(void);

#endif
