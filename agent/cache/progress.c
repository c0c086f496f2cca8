/*
 * progress.c — the progress line: "\r" + label, bytes, percent, rate, ETA,
 * and an erase-to-end-of-line so a shorter line leaves no tail behind.
 * Written with one fputs per drawing so a line never tears.
 */
#include "agent/cache/progress.h"

#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "agent/cache/internal.h"
#include "common/clock.h"

#define REDRAW_MS 100

static void draw(progress *p, int64_t now)
{
    char done[32], total[32], rate[32], eta[32] = "", line[256];
    cache_format_bytes(p->done, done, sizeof done);
    double secs = (double)(now - p->start_ms) / 1000.0;
    double bps = secs > 0.05 ? (double)(p->done - p->base) / secs : 0;
    cache_format_bytes((uint64_t)bps, rate, sizeof rate);
    if (p->total > 0) {
        cache_format_bytes(p->total, total, sizeof total);
        if (bps > 0 && p->done < p->total) {
            uint64_t left = (uint64_t)((double)(p->total - p->done) / bps);
            snprintf(eta, sizeof eta, "  ETA %llu:%02llu",
                     (unsigned long long)(left / 60), (unsigned long long)(left % 60));
        }
        unsigned pct = (unsigned)(p->done * 100 / p->total);
        snprintf(line, sizeof line, "\r%s  %s / %s  %u%%  %s/s%s\033[K", p->label, done,
                 total, pct > 100 ? 100 : pct, rate, eta);
    } else {
        snprintf(line, sizeof line, "\r%s  %s  %s/s\033[K", p->label, done, rate);
    }
    fputs(line, stderr);
    fflush(stderr);
    p->drawn_ms = now;
}

void progress_start(progress *p, const char *label, uint64_t total, uint64_t done)
{
    memset(p, 0, sizeof *p);
    size_t n = strlen(label);
    /* Keep the end of a long name: it tells quantizations apart. */
    if (n >= sizeof p->label)
        snprintf(p->label, sizeof p->label, "...%s", label + n - (sizeof p->label - 4));
    else
        snprintf(p->label, sizeof p->label, "%s", label);
    p->total = total;
    p->base = done;
    p->done = done;
    p->start_ms = mlx_time_mono_ms();
    p->active = isatty(STDERR_FILENO) == 1;
    if (p->active)
        draw(p, p->start_ms);
}

void progress_update(progress *p, uint64_t done)
{
    p->done = done;
    if (!p->active)
        return;
    int64_t now = mlx_time_mono_ms();
    if (now - p->drawn_ms >= REDRAW_MS)
        draw(p, now);
}

void progress_end(progress *p)
{
    if (!p->active)
        return;
    draw(p, mlx_time_mono_ms());
    fputs("\n", stderr);
    fflush(stderr);
    p->active = false;
}
