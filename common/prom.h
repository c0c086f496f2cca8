/*
 * prom.h — writing Prometheus' text exposition format (version 0.0.4).
 *
 * Both /metrics endpoints (agent and coordinator) are built with this:
 * one HELP and TYPE line per family, then its samples. Label values are
 * escaped as the format requires (backslash, double quote, newline), so a
 * model name from outside cannot break the page. Non-finite values are
 * written as NaN / +Inf / -Inf, which Prometheus reads.
 *
 * Histograms count observations into fixed buckets; record from any
 * thread, render from another.
 *
 * Thread safety: the writers are pure functions on the caller's buffer; a
 * histogram takes its own lock.
 */
#ifndef MLX_COMMON_PROM_H
#define MLX_COMMON_PROM_H

#include <pthread.h>
#include <stddef.h>
#include <stdint.h>

#include "common/buf.h"

/* "# HELP name help" and "# TYPE name type" (gauge, counter, histogram). */
void mlx_prom_family(mlx_buf *b, const char *name, const char *type, const char *help);

/* One sample: name{k1="v1",…} value. labels holds n_labels key/value
 * pairs (keys are trusted identifiers, values are escaped); may be NULL
 * when n_labels is 0. */
void mlx_prom_sample(mlx_buf *b, const char *name, const char *const *labels,
                     size_t n_labels, double value);

#define MLX_PROM_MAX_BUCKETS 16

typedef struct mlx_prom_histogram {
    pthread_mutex_t mtx;
    size_t n_bounds;
    double bounds[MLX_PROM_MAX_BUCKETS];       /* upper bounds, increasing */
    uint64_t counts[MLX_PROM_MAX_BUCKETS + 1]; /* per bucket; the last is +Inf */
    double sum;
    uint64_t count;
} mlx_prom_histogram;

/* bounds: n (≤ MLX_PROM_MAX_BUCKETS) increasing upper bounds. */
void mlx_prom_histogram_init(mlx_prom_histogram *h, const double *bounds, size_t n);
void mlx_prom_histogram_fini(mlx_prom_histogram *h);
void mlx_prom_histogram_observe(mlx_prom_histogram *h, double value);
/* The _bucket (cumulative, with le), _sum and _count samples of h. */
void mlx_prom_histogram_write(mlx_buf *b, const char *name, const char *const *labels,
                              size_t n_labels, mlx_prom_histogram *h);

#endif
