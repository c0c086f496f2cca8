/*
 * sse.c — reading Server-Sent Events as they arrive, in pieces cut
 * anywhere (inside a line, between "\r" and "\n").
 *
 * The format (WHATWG HTML, "Server-sent events"): lines end in "\r\n",
 * "\n" or "\r"; a line "data: x" (or "data:x") adds x to the event's
 * data, several joined by "\n"; a blank line ends the event; lines that
 * start with ':' are comments; other fields (event, id, retry) are of no
 * use here and skipped. An event cut off by the end of the stream is
 * dropped, as the standard says.
 */
#include <string.h>

#include "coordinator/ctl/ctl.h"

void ctl_sse_init(ctl_sse *s, size_t max, ctl_sse_fn fn, void *arg)
{
    *s = (ctl_sse){.fn = fn, .arg = arg};
    mlx_buf_init(&s->line, max);
    mlx_buf_init(&s->data, max);
}

void ctl_sse_fini(ctl_sse *s)
{
    mlx_buf_fini(&s->line);
    mlx_buf_fini(&s->data);
}

/* One whole line (without its end); 0, or fn's verdict on a finished event. */
static int take_line(ctl_sse *s)
{
    const char *line = mlx_buf_str(&s->line);
    size_t len = s->line.len;
    int rc = 0;
    if (len == 0) {
        if (s->has_data)
            rc = s->fn(s->arg, mlx_buf_str(&s->data), s->data.len);
        mlx_buf_reset(&s->data);
        s->has_data = false;
    } else if (len >= 4 && memcmp(line, "data", 4) == 0 && (len == 4 || line[4] == ':')) {
        size_t start = len == 4 ? 4 : 5;
        if (start < len && line[start] == ' ')
            start++;
        if (s->has_data)
            rc = mlx_buf_append(&s->data, "\n", 1);
        if (rc == 0 && start < len)
            rc = mlx_buf_append(&s->data, line + start, len - start);
        if (rc != 0)
            s->too_big = true;
        s->has_data = true;
    }
    mlx_buf_reset(&s->line);
    return rc;
}

int ctl_sse_feed(ctl_sse *s, const char *p, size_t n)
{
    size_t i = 0;
    while (i < n) {
        if (s->after_cr && p[i] == '\n') { /* the second half of "\r\n" */
            s->after_cr = false;
            i++;
            continue;
        }
        s->after_cr = false;
        size_t end = i;
        while (end < n && p[end] != '\r' && p[end] != '\n')
            end++;
        if (end > i && mlx_buf_append(&s->line, p + i, end - i) != 0) {
            s->too_big = true;
            return MLX_ETOOBIG;
        }
        if (end == n)
            break; /* the line goes on in the next piece */
        s->after_cr = p[end] == '\r';
        i = end + 1;
        int rc = take_line(s);
        if (rc != 0)
            return s->too_big ? MLX_ETOOBIG : rc;
    }
    return 0;
}
