/*
 * test_router.c — the coordinator's choice of node (coordinator/router):
 * eligibility by state, exclusion and circuit; the loaded-then-stored
 * tiers; power of two choices favouring the faster, less loaded node while
 * every node keeps getting some; affinity by rendezvous hashing (stable,
 * untouched by unrelated nodes, moved only when its node goes); the circuit
 * breaker under injected times; the retry table; the no-candidate reasons.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "common/log.h"
#include "coordinator/router/router.h"

#define NODE(id, st, ld, sd, inflight, tps)                                              \
    {                                                                                    \
        .node_id = (id), .address = "tcp://127.0.0.1:1", .state = (st), .loaded = (ld),  \
        .stored = (sd), .in_flight = (inflight), .tokens_per_s = (tps)                   \
    }

static router_outcome pick(const router_candidate *c, size_t n, const char *key,
                           const char *const *exclude, size_t n_exclude, router_health *h,
                           uint64_t *rng, size_t *out)
{
    router_query q = {.candidates = c,
                      .n_candidates = n,
                      .affinity_key = key,
                      .exclude = exclude,
                      .n_exclude = n_exclude,
                      .health = h};
    return router_pick_node(&q, rng, out);
}

/* Which node a query picks over draws calls, counted per candidate. */
static void tally(const router_candidate *c, size_t n, const char *key, int draws,
                  int *counts)
{
    uint64_t rng = 42;
    memset(counts, 0, n * sizeof *counts);
    for (int i = 0; i < draws; i++) {
        size_t at = SIZE_MAX;
        assert_int_equal(pick(c, n, key, NULL, 0, NULL, &rng, &at), ROUTER_PICKED);
        assert_true(at < n);
        counts[at]++;
    }
}

static void test_state_filtering(void **state)
{
    (void)state;
    router_candidate c[] = {
        NODE("a", NODE_SUSPECT, true, true, 0, 100),
        NODE("b", NODE_DOWN, true, true, 0, 100),
        NODE("c", NODE_LEFT, true, true, 0, 100),
        NODE("d", NODE_UP, true, true, 5, 1),
    };
    int counts[4];
    tally(c, 4, NULL, 500, counts);
    assert_int_equal(counts[3], 500); /* only the up node, slow and busy as it is */
    tally(c, 4, "session-1", 50, counts);
    assert_int_equal(counts[3], 50);
}

static void test_tiers(void **state)
{
    (void)state;
    router_candidate c[] = {
        NODE("stored-fast", NODE_UP, false, true, 0, 1000),
        NODE("loaded-slow", NODE_UP, true, true, 9, 1),
        NODE("neither", NODE_UP, false, false, 0, 1000),
        NODE("loaded-down", NODE_DOWN, true, true, 0, 1000),
    };
    int counts[4];
    tally(c, 4, NULL, 500, counts);
    assert_int_equal(counts[1], 500); /* loaded beats stored, whatever the speed */
    /* the loaded node out: the stored tier serves, never the node without it */
    c[1].state = NODE_SUSPECT;
    tally(c, 4, NULL, 500, counts);
    assert_int_equal(counts[0], 500);
    tally(c, 4, "k", 100, counts);
    assert_int_equal(counts[0], 100);
    /* an excluded loaded node gives way to the stored tier too */
    c[1].state = NODE_UP;
    const char *tried[] = {"loaded-slow"};
    uint64_t rng = 1;
    size_t at;
    assert_int_equal(pick(c, 4, NULL, tried, 1, NULL, &rng, &at), ROUTER_PICKED);
    assert_string_equal(c[at].node_id, "stored-fast");
}

static void test_two_choices_distribution(void **state)
{
    (void)state;
    enum { DRAWS = 20000 };
    int counts[4];
    /* same load, one node four times as fast */
    router_candidate speed[] = {
        NODE("fast", NODE_UP, true, true, 0, 400),
        NODE("slow-1", NODE_UP, true, true, 0, 100),
        NODE("slow-2", NODE_UP, true, true, 0, 100),
        NODE("slow-3", NODE_UP, true, true, 0, 100),
    };
    tally(speed, 4, NULL, DRAWS, counts);
    for (int i = 1; i < 4; i++) {
        /* chosen as one of two half the time, winning 4 in 5 of those */
        assert_true(2 * counts[0] > 3 * counts[i]);
        assert_true(counts[i] > DRAWS / 40); /* every node gets some */
    }
    /* same speed, one node idle and three busy */
    router_candidate load[] = {
        NODE("idle", NODE_UP, true, true, 0, 100),
        NODE("busy-1", NODE_UP, true, true, 7, 100),
        NODE("busy-2", NODE_UP, true, true, 7, 100),
        NODE("busy-3", NODE_UP, true, true, 7, 100),
    };
    tally(load, 4, NULL, DRAWS, counts);
    for (int i = 1; i < 4; i++) {
        assert_true(counts[0] > 2 * counts[i]);
        assert_true(counts[i] > 0);
    }
    /* equal nodes share about evenly */
    router_candidate even[] = {
        NODE("e1", NODE_UP, true, true, 1, 50),
        NODE("e2", NODE_UP, true, true, 1, 50),
        NODE("e3", NODE_UP, true, true, 1, 50),
    };
    tally(even, 3, NULL, DRAWS, counts);
    for (int i = 0; i < 3; i++)
        assert_true(counts[i] > DRAWS / 4 && counts[i] < DRAWS / 2);
    /* an unmeasured node (0 tok/s) counts at the others' mean, not as dead */
    router_candidate fresh[] = {
        NODE("measured-1", NODE_UP, true, true, 0, 100),
        NODE("measured-2", NODE_UP, true, true, 0, 100),
        NODE("new", NODE_UP, true, true, 0, 0),
    };
    tally(fresh, 3, NULL, DRAWS, counts);
    assert_true(counts[2] > DRAWS / 4);
}

static void test_affinity_is_stable(void **state)
{
    (void)state;
    router_candidate c[] = {
        NODE("n1", NODE_UP, true, true, 0, 100), NODE("n2", NODE_UP, true, true, 50, 1),
        NODE("n3", NODE_UP, true, true, 0, 100), NODE("n4", NODE_UP, true, true, 3, 20),
        NODE("n5", NODE_UP, true, true, 0, 100),
    };
    enum { N = 5 };
    uint64_t rng = 7;
    size_t first;
    assert_int_equal(pick(c, N, "conversation-17", NULL, 0, NULL, &rng, &first),
                     ROUTER_PICKED);
    for (int i = 0; i < 1000; i++) {
        size_t at;
        assert_int_equal(pick(c, N, "conversation-17", NULL, 0, NULL, &rng, &at),
                         ROUTER_PICKED);
        assert_int_equal(at, first);
    }
    const char *home = c[first].node_id;

    /* different keys spread over the nodes */
    int seen[N] = {0};
    for (int k = 0; k < 500; k++) {
        char key[32];
        snprintf(key, sizeof key, "user-%d", k);
        size_t at;
        assert_int_equal(pick(c, N, key, NULL, 0, NULL, &rng, &at), ROUTER_PICKED);
        seen[at]++;
    }
    for (int i = 0; i < N; i++)
        assert_true(seen[i] > 500 / N / 3);

    /* removing (or downing) an unrelated node does not move the key */
    router_candidate fewer[N];
    size_t m = 0;
    const char *removed = NULL;
    for (size_t i = 0; i < N; i++) {
        if (removed == NULL && i != first)
            removed = c[i].node_id;
        else
            fewer[m++] = c[i];
    }
    size_t at;
    assert_int_equal(pick(fewer, m, "conversation-17", NULL, 0, NULL, &rng, &at),
                     ROUTER_PICKED);
    assert_string_equal(fewer[at].node_id, home);
    c[(first + 1) % N].state = NODE_DOWN;
    assert_int_equal(pick(c, N, "conversation-17", NULL, 0, NULL, &rng, &at),
                     ROUTER_PICKED);
    assert_string_equal(c[at].node_id, home);
    c[(first + 1) % N].state = NODE_UP;

    /* its node gone: the key moves, to the same place every time */
    c[first].state = NODE_SUSPECT;
    size_t moved;
    assert_int_equal(pick(c, N, "conversation-17", NULL, 0, NULL, &rng, &moved),
                     ROUTER_PICKED);
    assert_true(moved != first);
    for (int i = 0; i < 100; i++) {
        assert_int_equal(pick(c, N, "conversation-17", NULL, 0, NULL, &rng, &at),
                         ROUTER_PICKED);
        assert_int_equal(at, moved);
    }
    /* excluding it (already tried) moves it the same way */
    c[first].state = NODE_UP;
    const char *tried[] = {home};
    assert_int_equal(pick(c, N, "conversation-17", tried, 1, NULL, &rng, &at),
                     ROUTER_PICKED);
    assert_int_equal(at, moved);
    /* and it comes back when its node does */
    assert_int_equal(pick(c, N, "conversation-17", NULL, 0, NULL, &rng, &at),
                     ROUTER_PICKED);
    assert_int_equal(at, first);
    /* an empty key is no key: load decides */
    int counts[N];
    tally(c, N, "", 2000, counts);
    for (int i = 0; i < N; i++)
        assert_true(counts[i] > 0);
}

static void test_circuit_breaker(void **state)
{
    (void)state;
    router_health *h;
    assert_int_equal(router_health_create(&h, NULL), 0);
    int64_t t = 1000000;
    /* failures spread wider than the window never trip it */
    router_note_failure(h, "a", t);
    router_note_failure(h, "a", t + 16000);
    router_note_failure(h, "a", t + 47000);
    router_note_failure(h, "a", t + 78000);
    assert_false(router_circuit_open(h, "a"));
    /* three within 30 s do */
    router_note_failure(h, "a", t + 79000);
    assert_false(router_circuit_open(h, "a")); /* t+47000 is 32 s before: two */
    router_note_failure(h, "a", t + 80000);
    assert_true(router_circuit_open(h, "a"));
    assert_false(router_circuit_open(h, "b"));
    assert_false(router_circuit_open(h, "never-seen"));

    /* out of rotation: the other node serves; alone, the reason is "down" */
    router_candidate c[] = {NODE("a", NODE_UP, true, true, 0, 1000),
                            NODE("b", NODE_UP, true, true, 9, 1)};
    uint64_t rng = 3;
    size_t at;
    for (int i = 0; i < 200; i++) {
        assert_int_equal(pick(c, 2, NULL, NULL, 0, h, &rng, &at), ROUTER_PICKED);
        assert_int_equal(at, 1);
        assert_int_equal(pick(c, 2, "sticky", NULL, 0, h, &rng, &at), ROUTER_PICKED);
        assert_int_equal(at, 1);
    }
    assert_int_equal(pick(c, 1, NULL, NULL, 0, h, &rng, &at), ROUTER_ALL_DOWN);

    /* three good heartbeats in a row close it; a bad one restarts the count */
    router_note_heartbeat(h, "a", true);
    router_note_heartbeat(h, "a", true);
    router_note_heartbeat(h, "a", false);
    router_note_heartbeat(h, "a", true);
    router_note_heartbeat(h, "a", true);
    assert_true(router_circuit_open(h, "a"));
    router_note_failure(h, "a", t + 85000); /* a late failure restarts it too */
    router_note_heartbeat(h, "a", true);
    router_note_heartbeat(h, "a", true);
    assert_true(router_circuit_open(h, "a"));
    router_note_heartbeat(h, "a", true);
    assert_false(router_circuit_open(h, "a"));
    assert_int_equal(pick(c, 1, NULL, NULL, 0, h, &rng, &at), ROUTER_PICKED);

    /* closed with a clean slate: one more failure does not reopen it */
    router_note_failure(h, "a", t + 86000);
    assert_false(router_circuit_open(h, "a"));
    /* heartbeats of a closed node change nothing */
    router_note_heartbeat(h, "b", false);
    assert_false(router_circuit_open(h, "b"));

    /* forgetting a node drops its record */
    router_note_failure(h, "b", t);
    router_note_failure(h, "b", t + 1);
    router_note_failure(h, "b", t + 2);
    assert_true(router_circuit_open(h, "b"));
    router_health_forget(h, "b");
    assert_false(router_circuit_open(h, "b"));
    router_health_destroy(h);
    router_health_destroy(NULL);
}

static void test_retry_table(void **state)
{
    (void)state;
    static const struct {
        int failed;
        router_failure failure;
        router_progress progress;
        bool retry;
    } table[] = {
        {1, ROUTER_FAILURE_NODE, ROUTER_NOTHING_SENT, true},
        {2, ROUTER_FAILURE_NODE, ROUTER_NOTHING_SENT, true},
        {3, ROUTER_FAILURE_NODE, ROUTER_NOTHING_SENT, false},    /* at most 2 retries */
        {1, ROUTER_FAILURE_REQUEST, ROUTER_NOTHING_SENT, false}, /* never for 4xx */
        {2, ROUTER_FAILURE_REQUEST, ROUTER_NOTHING_SENT, false},
        {1, ROUTER_FAILURE_NODE, ROUTER_FIRST_TOKEN_SENT, false}, /* client has text */
        {1, ROUTER_FAILURE_REQUEST, ROUTER_FIRST_TOKEN_SENT, false},
        {0, ROUTER_FAILURE_NODE, ROUTER_NOTHING_SENT, false}, /* nothing failed yet */
    };
    for (size_t i = 0; i < sizeof table / sizeof table[0]; i++) {
        bool got = router_may_retry(table[i].failed, table[i].failure, table[i].progress);
        if (got != table[i].retry)
            fail_msg("row %zu: expected %d", i, table[i].retry);
    }
}

static void test_no_candidate_reasons(void **state)
{
    (void)state;
    uint64_t rng = 9;
    size_t at = 77;
    mlx_err err;
    /* nobody at all, or nobody with the model: 404 naming it */
    assert_int_equal(pick(NULL, 0, NULL, NULL, 0, NULL, &rng, &at), ROUTER_NO_MODEL);
    router_candidate none[] = {NODE("a", NODE_UP, false, false, 0, 10),
                               NODE("b", NODE_UP, false, false, 0, 10)};
    assert_int_equal(pick(none, 2, "k", NULL, 0, NULL, &rng, &at), ROUTER_NO_MODEL);
    assert_int_equal(at, 77); /* untouched */
    assert_int_equal(router_outcome_status(ROUTER_NO_MODEL), 404);
    mlx_err_clear(&err);
    assert_int_equal(router_outcome_error(ROUTER_NO_MODEL, "llama-9", &err), MLX_ENOENT);
    assert_non_null(strstr(err.msg, "llama-9"));

    /* holders, all down or suspect: 503 */
    router_candidate down[] = {NODE("a", NODE_DOWN, true, true, 0, 10),
                               NODE("b", NODE_SUSPECT, false, true, 0, 10),
                               NODE("c", NODE_UP, false, false, 0, 10)};
    assert_int_equal(pick(down, 3, NULL, NULL, 0, NULL, &rng, &at), ROUTER_ALL_DOWN);
    assert_int_equal(router_outcome_status(ROUTER_ALL_DOWN), 503);
    mlx_err_clear(&err);
    assert_int_equal(router_outcome_error(ROUTER_ALL_DOWN, "llama-9", &err), MLX_EBUSY);
    assert_non_null(strstr(err.msg, "down"));

    /* holders up, all tried: 503 of its own kind */
    router_candidate up[] = {NODE("a", NODE_UP, true, true, 0, 10),
                             NODE("b", NODE_UP, false, true, 0, 10),
                             NODE("c", NODE_DOWN, true, true, 0, 10)};
    const char *tried[] = {"b", "a"};
    assert_int_equal(pick(up, 3, NULL, tried, 2, NULL, &rng, &at), ROUTER_ALL_EXCLUDED);
    assert_int_equal(router_outcome_status(ROUTER_ALL_EXCLUDED), 503);
    mlx_err_clear(&err);
    assert_int_equal(router_outcome_error(ROUTER_ALL_EXCLUDED, "llama-9", &err),
                     MLX_EBUSY);
    assert_non_null(strstr(err.msg, "llama-9"));
    assert_string_equal(router_outcome_name(ROUTER_ALL_EXCLUDED), "all_excluded");
    /* one tried: the other */
    assert_int_equal(pick(up, 3, NULL, tried, 1, NULL, &rng, &at), ROUTER_PICKED);
    assert_string_equal(up[at].node_id, "a");
    assert_int_equal(router_outcome_error(ROUTER_PICKED, "x", NULL), 0);
}

int main(void)
{
    mlx_log_set_level(MLX_LOG_ERROR);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_state_filtering),
        cmocka_unit_test(test_tiers),
        cmocka_unit_test(test_two_choices_distribution),
        cmocka_unit_test(test_affinity_is_stable),
        cmocka_unit_test(test_circuit_breaker),
        cmocka_unit_test(test_retry_table),
        cmocka_unit_test(test_no_candidate_reasons),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
