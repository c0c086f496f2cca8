/* table.c — aligned, optionally coloured tables, human units, and the
 * small readers of the API's JSON that every view uses. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/alloc.h"
#include "common/clock.h"
#include "coordinator/ctl/ctl.h"

struct cell {
    char *text;
    ctl_color color;
};

struct ctl_table {
    const char *const *headers;
    size_t columns;
    struct cell *cells; /* row-major */
    size_t n, cap;
    bool oom;
};

ctl_table *ctl_table_new(const char *const *headers, size_t columns)
{
    ctl_table *t = mlx_calloc(1, sizeof *t);
    if (t != NULL) {
        t->headers = headers;
        t->columns = columns;
    }
    return t;
}

void ctl_table_cell(ctl_table *t, ctl_color color, const char *fmt, ...)
{
    if (t == NULL || t->oom)
        return;
    if (t->n == t->cap) {
        size_t cap = t->cap ? t->cap * 2 : 64;
        struct cell *cells = mlx_realloc(t->cells, cap * sizeof *cells);
        if (cells == NULL) {
            t->oom = true;
            return;
        }
        t->cells = cells;
        t->cap = cap;
    }
    char text[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(text, sizeof text, fmt, ap);
    va_end(ap);
    t->cells[t->n].text = mlx_strdup(text);
    t->cells[t->n].color = color;
    if (t->cells[t->n].text == NULL)
        t->oom = true;
    else
        t->n++;
}

/* Display width of UTF-8 text: one column per code point is close enough
 * for names and numbers. */
static size_t width(const char *s)
{
    size_t w = 0;
    for (; *s != '\0'; s++)
        w += ((unsigned char)*s & 0xc0) != 0x80;
    return w;
}

static bool use_color(void)
{
    const char *no = getenv("NO_COLOR");
    return isatty(STDOUT_FILENO) && (no == NULL || no[0] == '\0');
}

void ctl_table_print(ctl_table *t)
{
    if (t == NULL)
        return;
    static const char *const codes[] = {"", "\033[32m", "\033[33m", "\033[31m",
                                        "\033[2m"};
    bool color = use_color();
    size_t *w = mlx_calloc(t->columns, sizeof *w);
    if (w == NULL)
        return;
    for (size_t c = 0; c < t->columns; c++)
        w[c] = width(t->headers[c]);
    for (size_t i = 0; i < t->n; i++) {
        size_t cw = width(t->cells[i].text);
        if (cw > w[i % t->columns])
            w[i % t->columns] = cw;
    }
    for (size_t c = 0; c < t->columns; c++)
        printf("%s%-*s", c ? "   " : "", c + 1 < t->columns ? (int)w[c] : 0,
               t->headers[c]);
    printf("\n");
    for (size_t i = 0; i < t->n; i++) {
        size_t c = i % t->columns;
        const struct cell *cell = &t->cells[i];
        bool last = c + 1 == t->columns;
        size_t pad = last ? 0 : w[c] - width(cell->text);
        printf("%s%s%s%s%*s", c ? "   " : "", color ? codes[cell->color] : "", cell->text,
               color && cell->color != CTL_PLAIN ? "\033[0m" : "", (int)pad, "");
        if (last)
            printf("\n");
    }
    mlx_free(w);
}

ctl_color ctl_state_color(const char *state)
{
    if (strcmp(state, "up") == 0)
        return CTL_GREEN;
    if (strcmp(state, "suspect") == 0)
        return CTL_YELLOW;
    if (strcmp(state, "down") == 0)
        return CTL_RED;
    return CTL_DIM;
}

uint64_t ctl_json_u64(const json_t *obj, const char *key)
{
    json_int_t v = json_integer_value(json_object_get(obj, key));
    return v > 0 ? (uint64_t)v : 0;
}

const char *ctl_json_str(const json_t *obj, const char *key)
{
    const char *s = json_string_value(json_object_get(obj, key));
    return s != NULL ? s : "";
}

void ctl_table_free(ctl_table *t)
{
    if (t == NULL)
        return;
    for (size_t i = 0; i < t->n; i++)
        mlx_free(t->cells[i].text);
    mlx_free(t->cells);
    mlx_free(t);
}

void ctl_format_bytes(uint64_t bytes, char *out, size_t size)
{
    static const char *const units[] = {"B", "KiB", "MiB", "GiB", "TiB", "PiB"};
    double v = (double)bytes;
    size_t u = 0;
    while (v >= 1024.0 && u + 1 < sizeof units / sizeof units[0]) {
        v /= 1024.0;
        u++;
    }
    if (u == 0)
        snprintf(out, size, "%llu B", (unsigned long long)bytes);
    else
        snprintf(out, size, "%.1f %s", v, units[u]);
}

void ctl_format_age(int64_t then_unix_ms, char *out, size_t size)
{
    int64_t s = (mlx_time_wall_ms() - then_unix_ms) / 1000;
    if (s < 0)
        s = 0;
    if (s < 120)
        snprintf(out, size, "%llds", (long long)s);
    else if (s < 2 * 3600)
        snprintf(out, size, "%lldm", (long long)(s / 60));
    else if (s < 2 * 86400)
        snprintf(out, size, "%lldh", (long long)(s / 3600));
    else
        snprintf(out, size, "%lldd", (long long)(s / 86400));
}
