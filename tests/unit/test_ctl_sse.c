/*
 * test_ctl_sse.c — mlxctl's reader of Server-Sent Events (coordinator/ctl/
 * sse.c): the same events whether a stream comes whole or one byte at a
 * time, "\r\n" split between pieces, "\r" and "\n" line ends, data lines
 * joined, comments and other fields skipped, an unfinished event dropped,
 * the callback's stop, and the size limit.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "coordinator/ctl/ctl.h"

/* The events seen, each followed by '|'. */
struct seen {
    char text[1024];
    int events;
    int stop_at; /* return nonzero on this event (1-based); 0: never */
};

static int collect(void *arg, const char *data, size_t len)
{
    struct seen *s = arg;
    assert_int_equal(strlen(data), len); /* NUL-terminated, no NUL inside */
    size_t used = strlen(s->text);
    snprintf(s->text + used, sizeof s->text - used, "%s|", data);
    s->events++;
    return s->events == s->stop_at ? 7 : 0;
}

/* Feeds text in pieces of step bytes (0: whole); returns the last code. */
static int feed(const char *text, size_t step, struct seen *s, size_t max)
{
    ctl_sse sse;
    ctl_sse_init(&sse, max, collect, s);
    size_t n = strlen(text);
    int rc = 0;
    if (step == 0)
        step = n;
    for (size_t i = 0; i < n && rc == 0; i += step)
        rc = ctl_sse_feed(&sse, text + i, i + step <= n ? step : n - i);
    ctl_sse_fini(&sse);
    return rc;
}

static void expect(const char *stream, const char *want)
{
    for (size_t step = 0; step <= 3; step++) {
        struct seen s = {{0}};
        assert_int_equal(feed(stream, step, &s, 4096), 0);
        if (strcmp(s.text, want) != 0)
            fail_msg("in pieces of %zu: got '%s', want '%s'", step, s.text, want);
    }
}

static void test_events_of_a_chat_stream(void **state)
{
    expect("data: {\"a\":1}\n\ndata: {\"b\":2}\n\ndata: [DONE]\n\n",
           "{\"a\":1}|{\"b\":2}|[DONE]|");
}

static void test_line_ends(void **state)
{
    expect("data: a\r\n\r\ndata: b\r\rdata: c\n\n", "a|b|c|");
    /* "\r" ends the line even when its "\n" comes in the next piece: two
     * data lines of one event, not two events. */
    struct seen s = {{0}};
    ctl_sse sse;
    ctl_sse_init(&sse, 4096, collect, &s);
    assert_int_equal(ctl_sse_feed(&sse, "data: x\r", 8), 0);
    assert_int_equal(ctl_sse_feed(&sse, "\ndata: y\r", 9), 0);
    assert_int_equal(ctl_sse_feed(&sse, "\n\r", 2), 0);
    assert_int_equal(s.events, 1);
    assert_string_equal(s.text, "x\ny|");
    ctl_sse_fini(&sse);
}

static void test_fields(void **state)
{
    /* Several data lines join with "\n"; one space after the colon is
     * dropped, a second kept; "data" alone is an empty line. */
    expect("data: one\ndata:two\ndata:  three\ndata\n\n", "one\ntwo\n three\n|");
    /* Comments, other fields and unknown names are skipped; an event with
     * no data line is no event. */
    expect(": keep-alive\nevent: message\nid: 4\nretry: 10\ndatum: no\n\n"
           "event: x\ndata: yes\n\n",
           "yes|");
    /* An event the stream cut off is dropped. */
    expect("data: whole\n\ndata: cut", "whole|");
}

static void test_callback_stops_the_stream(void **state)
{
    struct seen s = {.stop_at = 2};
    assert_int_equal(feed("data: 1\n\ndata: 2\n\ndata: 3\n\n", 0, &s, 4096), 7);
    assert_string_equal(s.text, "1|2|");
}

static void test_size_limit(void **state)
{
    char line[64];
    memset(line, 'x', sizeof line);
    memcpy(line, "data: ", 6);
    line[sizeof line - 1] = '\0';
    for (size_t step = 0; step <= 1; step++) {
        struct seen s = {{0}};
        ctl_sse sse;
        ctl_sse_init(&sse, 32, collect, &s);
        int rc = 0;
        size_t n = strlen(line);
        for (size_t i = 0; i < n && rc == 0; i += step ? step : n)
            rc = ctl_sse_feed(&sse, line + i, step ? step : n);
        assert_int_equal(rc, MLX_ETOOBIG);
        assert_true(sse.too_big);
        assert_int_equal(s.events, 0);
        ctl_sse_fini(&sse);
    }
    /* Lines within the limit whose data together pass it. */
    struct seen s = {{0}};
    assert_int_equal(
        feed("data: 0123456789\ndata: 0123456789\ndata: 0123456789\n\n", 0, &s, 24),
        MLX_ETOOBIG);
    assert_int_equal(s.events, 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_events_of_a_chat_stream),
        cmocka_unit_test(test_line_ends),
        cmocka_unit_test(test_fields),
        cmocka_unit_test(test_callback_stops_the_stream),
        cmocka_unit_test(test_size_limit),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
