/* prom.c — Prometheus text format: families, samples, histograms. */
#include "common/prom.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

void mlx_prom_family(mlx_buf *b, const char *name, const char *type, const char *help)
{
    mlx_buf_printf(b, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

static void write_label_value(mlx_buf *b, const char *v)
{
    for (; *v != '\0'; v++) {
        if (*v == '\\')
            mlx_buf_append_str(b, "\\\\");
        else if (*v == '"')
            mlx_buf_append_str(b, "\\\"");
        else if (*v == '\n')
            mlx_buf_append_str(b, "\\n");
        else
            mlx_buf_append(b, v, 1);
    }
}

static void write_labels(mlx_buf *b, const char *const *labels, size_t n, const char *le)
{
    if (n == 0 && le == NULL)
        return;
    mlx_buf_append_str(b, "{");
    for (size_t i = 0; i < n; i++) {
        mlx_buf_printf(b, "%s%s=\"", i > 0 ? "," : "", labels[2 * i]);
        write_label_value(b, labels[2 * i + 1]);
        mlx_buf_append_str(b, "\"");
    }
    if (le != NULL)
        mlx_buf_printf(b, "%sle=\"%s\"", n > 0 ? "," : "", le);
    mlx_buf_append_str(b, "}");
}

static void write_value(mlx_buf *b, double v)
{
    if (isnan(v))
        mlx_buf_append_str(b, " NaN\n");
    else if (isinf(v))
        mlx_buf_append_str(b, v > 0 ? " +Inf\n" : " -Inf\n");
    else if (v == floor(v) && fabs(v) < 1e15)
        mlx_buf_printf(b, " %.0f\n", v); /* counters read as integers */
    else
        /* 15 digits print any decimal of up to 15 digits without binary noise. */
        mlx_buf_printf(b, " %.15g\n", v);
}

void mlx_prom_sample(mlx_buf *b, const char *name, const char *const *labels,
                     size_t n_labels, double value)
{
    mlx_buf_append_str(b, name);
    write_labels(b, labels, n_labels, NULL);
    write_value(b, value);
}

void mlx_prom_histogram_init(mlx_prom_histogram *h, const double *bounds, size_t n)
{
    memset(h, 0, sizeof *h);
    pthread_mutex_init(&h->mtx, NULL);
    h->n_bounds = n < MLX_PROM_MAX_BUCKETS ? n : MLX_PROM_MAX_BUCKETS;
    memcpy(h->bounds, bounds, h->n_bounds * sizeof *bounds);
}

void mlx_prom_histogram_fini(mlx_prom_histogram *h)
{
    pthread_mutex_destroy(&h->mtx);
}

void mlx_prom_histogram_observe(mlx_prom_histogram *h, double value)
{
    size_t i = 0;
    while (i < h->n_bounds && value > h->bounds[i])
        i++;
    pthread_mutex_lock(&h->mtx);
    h->counts[i]++;
    h->count++;
    h->sum += value;
    pthread_mutex_unlock(&h->mtx);
}

void mlx_prom_histogram_write(mlx_buf *b, const char *name, const char *const *labels,
                              size_t n_labels, mlx_prom_histogram *h)
{
    pthread_mutex_lock(&h->mtx);
    uint64_t counts[MLX_PROM_MAX_BUCKETS + 1];
    memcpy(counts, h->counts, sizeof counts);
    double sum = h->sum;
    uint64_t count = h->count;
    pthread_mutex_unlock(&h->mtx);

    uint64_t cumulative = 0;
    for (size_t i = 0; i <= h->n_bounds; i++) {
        cumulative += counts[i];
        char le[32];
        if (i < h->n_bounds)
            snprintf(le, sizeof le, "%g", h->bounds[i]);
        else
            snprintf(le, sizeof le, "+Inf");
        mlx_buf_printf(b, "%s_bucket", name);
        write_labels(b, labels, n_labels, le);
        write_value(b, (double)cumulative);
    }
    mlx_buf_printf(b, "%s_sum", name);
    write_labels(b, labels, n_labels, NULL);
    write_value(b, sum);
    mlx_buf_printf(b, "%s_count", name);
    write_labels(b, labels, n_labels, NULL);
    write_value(b, (double)count);
}
