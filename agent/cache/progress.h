/*
 * progress.h — one progress line on a terminal for long file work
 * (downloads, hashing): the file, bytes done of the total, rate and time
 * left, redrawn in place with '\r' at most about ten times a second.
 *
 * Nothing is drawn when stderr is not a terminal (logs, pipes, tests), so
 * callers need not check. The rate counts only bytes done since start, so
 * a resumed download shows its real speed.
 *
 * Lifecycle: progress_start, any number of progress_update, progress_end
 * (which finishes the line). A progress that was never started may be
 * ended: it does nothing.
 * Thread safety: one progress per thread; lines of two would mix.
 */
#ifndef MLX_AGENT_CACHE_PROGRESS_H
#define MLX_AGENT_CACHE_PROGRESS_H

#include <stdbool.h>
#include <stdint.h>

typedef struct progress {
    char label[48];   /* shortened to fit one line */
    uint64_t total;   /* bytes; 0 when not known */
    uint64_t base;    /* bytes done before start (not part of the rate) */
    uint64_t done;    /* bytes done, base included */
    int64_t start_ms; /* monotonic */
    int64_t drawn_ms; /* when the line was last drawn */
    bool active;      /* started and drawing */
} progress;

/* Starts a line for label (copied); done is what was already there. */
void progress_start(progress *p, const char *label, uint64_t total, uint64_t done);

/* Records done bytes; redraws when the last drawing is 100 ms old. */
void progress_update(progress *p, uint64_t done);

/* Draws the last state and ends the line. */
void progress_end(progress *p);

#endif
