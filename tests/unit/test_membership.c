/*
 * test_membership.c — the up/suspect/down/left state machine
 * (coordinator/membership/membership.h), driven by a fake clock: every call
 * gets an explicit "now", so the tests never sleep. Covers policy checks,
 * the exact silence thresholds, one report per transition, recovery by
 * heartbeat, per-node and default intervals, LEFT, restore, the table limit,
 * tick batching and state names.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "common/err.h"
#include "coordinator/membership/membership.h"

#define ID_A "aaaaaaaaaaaaaaaa"
#define ID_B "bbbbbbbbbbbbbbbb"
#define ID_C "cccccccccccccccc"

/* interval 100 ms, SUSPECT after 3 missed intervals (300 ms), DOWN after 6. */
static const membership_policy policy = {
    .default_interval_ms = 100, .suspect_after = 3, .down_after = 6};

static membership *make(const membership_policy *p, size_t max)
{
    membership *m = NULL;
    mlx_err err;
    mlx_err_clear(&err);
    int rc = membership_create(p, max, &m, &err);
    if (rc != 0)
        fail_msg("membership_create: %s", err.msg);
    assert_non_null(m);
    return m;
}

static void reg(membership *m, const char *id, int64_t interval_ms, int64_t now,
                int want_previous)
{
    int previous = 12345;
    mlx_err err;
    mlx_err_clear(&err);
    int rc = membership_register(m, id, interval_ms, now, &previous, &err);
    if (rc != 0)
        fail_msg("membership_register %s: %s", id, err.msg);
    assert_int_equal(previous, want_previous);
}

static node_state state_of(const membership *m, const char *id)
{
    node_state s;
    assert_int_equal(membership_state(m, id, &s), 0);
    return s;
}

/* Ticks at now and expects exactly one change, described as given. */
static void expect_one_change(membership *m, int64_t now, const char *id, node_state from,
                              node_state to, int64_t silent_ms)
{
    membership_change out[4];
    memset(out, 0, sizeof out);
    size_t n = membership_tick(m, now, out, 4);
    assert_int_equal(n, 1);
    assert_string_equal(out[0].node_id, id);
    assert_int_equal(out[0].from, from);
    assert_int_equal(out[0].to, to);
    assert_int_equal(out[0].silent_ms, silent_ms);
}

static void expect_no_change(membership *m, int64_t now)
{
    membership_change out[4];
    assert_int_equal(membership_tick(m, now, out, 4), 0);
}

/* ---- policy ----------------------------------------------------------- */

static void policy_with_down_not_after_suspect_is_refused(void **state)
{
    (void)state;
    membership_policy p = policy;
    p.down_after = p.suspect_after; /* equal is not enough */
    mlx_err err;
    mlx_err_clear(&err);
    assert_int_equal(membership_check_policy(&p, &err), MLX_ECONFIG);
    assert_non_null(strstr(err.msg, "--down-after"));
    assert_non_null(strstr(err.msg, "--suspect-after"));

    p.down_after = 2; /* smaller */
    mlx_err_clear(&err);
    assert_int_equal(membership_check_policy(&p, &err), MLX_ECONFIG);
    assert_non_null(strstr(err.msg, "--down-after"));

    membership *m = NULL;
    assert_int_equal(membership_create(&p, 10, &m, NULL), MLX_ECONFIG);
    assert_null(m);
}

static void policy_with_zero_interval_or_suspect_is_refused(void **state)
{
    (void)state;
    membership_policy p = policy;
    p.default_interval_ms = 0;
    mlx_err err;
    mlx_err_clear(&err);
    assert_int_equal(membership_check_policy(&p, &err), MLX_ECONFIG);
    assert_non_null(strstr(err.msg, "--heartbeat-ms"));

    p = policy;
    p.suspect_after = 0;
    mlx_err_clear(&err);
    assert_int_equal(membership_check_policy(&p, &err), MLX_ECONFIG);
    assert_non_null(strstr(err.msg, "--suspect-after"));
}

static void sensible_policy_is_accepted(void **state)
{
    (void)state;
    assert_int_equal(membership_check_policy(&policy, NULL), 0);
    membership_policy p = {.default_interval_ms = 1, .suspect_after = 1, .down_after = 2};
    assert_int_equal(membership_check_policy(&p, NULL), 0);
}

/* ---- silence ---------------------------------------------------------- */

static void silence_thresholds_are_exact_and_reported_once(void **state)
{
    (void)state;
    membership *m = make(&policy, 16);
    const int64_t t0 = 1000000;
    reg(m, ID_A, 100, t0, -1);
    assert_int_equal(state_of(m, ID_A), NODE_UP);

    expect_no_change(m, t0 + 300); /* exactly 3 intervals: still UP */
    assert_int_equal(state_of(m, ID_A), NODE_UP);

    expect_one_change(m, t0 + 301, ID_A, NODE_UP, NODE_SUSPECT, 301);
    assert_int_equal(state_of(m, ID_A), NODE_SUSPECT);
    expect_no_change(m, t0 + 301); /* reported once */
    expect_no_change(m, t0 + 450);
    expect_no_change(m, t0 + 600); /* exactly 6 intervals: still SUSPECT */
    assert_int_equal(state_of(m, ID_A), NODE_SUSPECT);

    expect_one_change(m, t0 + 601, ID_A, NODE_SUSPECT, NODE_DOWN, 601);
    assert_int_equal(state_of(m, ID_A), NODE_DOWN);
    expect_no_change(m, t0 + 601);
    expect_no_change(m, t0 + 1000000);
    assert_int_equal(state_of(m, ID_A), NODE_DOWN);
    membership_destroy(m);
}

static void heartbeat_brings_suspect_back_up(void **state)
{
    (void)state;
    membership *m = make(&policy, 16);
    reg(m, ID_A, 100, 0, -1);
    expect_one_change(m, 350, ID_A, NODE_UP, NODE_SUSPECT, 350);
    node_state previous = NODE_LEFT;
    assert_int_equal(membership_heartbeat(m, ID_A, 400, &previous), 0);
    assert_int_equal(previous, NODE_SUSPECT);
    assert_int_equal(state_of(m, ID_A), NODE_UP);
    /* Silence counts again from the heartbeat. */
    expect_no_change(m, 700);
    expect_one_change(m, 701, ID_A, NODE_UP, NODE_SUSPECT, 301);
    membership_destroy(m);
}

static void heartbeat_brings_down_back_up(void **state)
{
    (void)state;
    membership *m = make(&policy, 16);
    reg(m, ID_A, 100, 0, -1);
    expect_one_change(m, 301, ID_A, NODE_UP, NODE_SUSPECT, 301);
    expect_one_change(m, 700, ID_A, NODE_SUSPECT, NODE_DOWN, 700);
    node_state previous = NODE_LEFT;
    assert_int_equal(membership_heartbeat(m, ID_A, 5000, &previous), 0);
    assert_int_equal(previous, NODE_DOWN);
    assert_int_equal(state_of(m, ID_A), NODE_UP);
    expect_no_change(m, 5300);
    membership_destroy(m);
}

static void heartbeat_of_up_node_reports_up(void **state)
{
    (void)state;
    membership *m = make(&policy, 16);
    reg(m, ID_A, 100, 0, -1);
    node_state previous = NODE_LEFT;
    assert_int_equal(membership_heartbeat(m, ID_A, 250, &previous), 0);
    assert_int_equal(previous, NODE_UP);
    expect_no_change(m, 550); /* 300 since the heartbeat */
    membership_destroy(m);
}

static void declared_interval_zero_uses_policy_default(void **state)
{
    (void)state;
    membership_policy p = policy;
    p.default_interval_ms = 200; /* SUSPECT after 600 ms, DOWN after 1200 ms */
    membership *m = make(&p, 16);
    reg(m, ID_A, 0, 0, -1);
    expect_no_change(m, 301);
    expect_no_change(m, 600);
    expect_one_change(m, 601, ID_A, NODE_UP, NODE_SUSPECT, 601);
    expect_no_change(m, 1200);
    expect_one_change(m, 1201, ID_A, NODE_SUSPECT, NODE_DOWN, 1201);
    membership_destroy(m);
}

static void each_node_is_judged_by_its_own_interval(void **state)
{
    (void)state;
    membership *m = make(&policy, 16);
    reg(m, ID_A, 100, 0, -1);  /* fast: DOWN after 600 ms */
    reg(m, ID_B, 1000, 0, -1); /* slow: SUSPECT only after 3000 ms */
    membership_change out[4];
    assert_int_equal(membership_tick(m, 301, out, 4), 1);
    assert_string_equal(out[0].node_id, ID_A);
    assert_int_equal(membership_tick(m, 601, out, 4), 1);
    assert_string_equal(out[0].node_id, ID_A);
    assert_int_equal(out[0].to, NODE_DOWN);
    assert_int_equal(state_of(m, ID_A), NODE_DOWN);
    assert_int_equal(state_of(m, ID_B), NODE_UP);
    expect_no_change(m, 3000);
    expect_one_change(m, 3001, ID_B, NODE_UP, NODE_SUSPECT, 3001);
    membership_destroy(m);
}

static void state_after_never_improves_by_silence(void **state)
{
    (void)state;
    assert_int_equal(membership_state_after(&policy, NODE_DOWN, 100, 0), NODE_DOWN);
    assert_int_equal(membership_state_after(&policy, NODE_DOWN, 100, 400), NODE_DOWN);
    assert_int_equal(membership_state_after(&policy, NODE_SUSPECT, 100, 0), NODE_SUSPECT);
    assert_int_equal(membership_state_after(&policy, NODE_UP, 100, 300), NODE_UP);
    assert_int_equal(membership_state_after(&policy, NODE_UP, 100, 301), NODE_SUSPECT);
    assert_int_equal(membership_state_after(&policy, NODE_UP, 100, 601), NODE_DOWN);
    assert_int_equal(membership_state_after(&policy, NODE_UP, 0, 301), NODE_SUSPECT);
}

/* ---- LEFT ------------------------------------------------------------- */

static void left_node_is_never_changed_by_silence(void **state)
{
    (void)state;
    membership *m = make(&policy, 16);
    reg(m, ID_A, 100, 0, -1);
    assert_int_equal(membership_leave(m, ID_A), 0);
    assert_int_equal(state_of(m, ID_A), NODE_LEFT);
    expect_no_change(m, 301);
    expect_no_change(m, 601);
    expect_no_change(m, INT64_C(1) << 40);
    assert_int_equal(state_of(m, ID_A), NODE_LEFT);
    assert_int_equal(membership_state_after(&policy, NODE_LEFT, 100, 1000000), NODE_LEFT);
    membership_destroy(m);
}

static void heartbeat_from_left_or_unknown_node_is_refused(void **state)
{
    (void)state;
    membership *m = make(&policy, 16);
    reg(m, ID_A, 100, 0, -1);
    assert_int_equal(membership_leave(m, ID_A), 0);
    node_state previous = NODE_DOWN;
    assert_int_equal(membership_heartbeat(m, ID_A, 10, &previous), MLX_EUNKNOWNNODE);
    assert_int_equal(state_of(m, ID_A), NODE_LEFT);
    assert_int_equal(membership_heartbeat(m, ID_B, 10, &previous), MLX_EUNKNOWNNODE);
    node_state s;
    assert_int_equal(membership_state(m, ID_B, &s), MLX_EUNKNOWNNODE);
    assert_int_equal(membership_count(m), 1); /* the unknown node was not added */
    membership_destroy(m);
}

static void leave_of_unknown_node_is_refused(void **state)
{
    (void)state;
    membership *m = make(&policy, 16);
    assert_int_equal(membership_leave(m, ID_A), MLX_EUNKNOWNNODE);
    assert_int_equal(membership_count(m), 0);
    membership_destroy(m);
}

static void register_of_left_node_makes_it_up(void **state)
{
    (void)state;
    membership *m = make(&policy, 16);
    reg(m, ID_A, 100, 0, -1);
    assert_int_equal(membership_leave(m, ID_A), 0);
    reg(m, ID_A, 100, 5000, NODE_LEFT);
    assert_int_equal(state_of(m, ID_A), NODE_UP);
    assert_int_equal(membership_count(m), 1);
    expect_no_change(m, 5300);
    expect_one_change(m, 5301, ID_A, NODE_UP, NODE_SUSPECT, 301);
    membership_destroy(m);
}

static void register_of_known_node_reports_previous_state(void **state)
{
    (void)state;
    membership *m = make(&policy, 16);
    reg(m, ID_A, 100, 0, -1);
    reg(m, ID_A, 100, 10, NODE_UP);
    expect_one_change(m, 311, ID_A, NODE_UP, NODE_SUSPECT, 301);
    reg(m, ID_A, 100, 400, NODE_SUSPECT);
    expect_one_change(m, 701, ID_A, NODE_UP, NODE_SUSPECT, 301);
    expect_one_change(m, 1001, ID_A, NODE_SUSPECT, NODE_DOWN, 601);
    reg(m, ID_A, 100, 1100, NODE_DOWN);
    assert_int_equal(state_of(m, ID_A), NODE_UP);
    assert_int_equal(membership_count(m), 1);
    membership_destroy(m);
}

/* ---- restore ---------------------------------------------------------- */

static void restored_node_counts_silence_from_restore_time(void **state)
{
    (void)state;
    membership *m = make(&policy, 16);
    const int64_t start = 777777;
    assert_int_equal(membership_restore(m, ID_A, NODE_UP, 100, start, NULL), 0);
    assert_int_equal(state_of(m, ID_A), NODE_UP);
    expect_no_change(m, start + 300);
    expect_one_change(m, start + 301, ID_A, NODE_UP, NODE_SUSPECT, 301);
    membership_destroy(m);
}

static void restore_keeps_the_recorded_state(void **state)
{
    (void)state;
    membership *m = make(&policy, 16);
    assert_int_equal(membership_restore(m, ID_A, NODE_LEFT, 100, 0, NULL), 0);
    assert_int_equal(membership_restore(m, ID_B, NODE_SUSPECT, 100, 0, NULL), 0);
    assert_int_equal(membership_restore(m, ID_C, NODE_DOWN, 0, 0, NULL), 0);
    assert_int_equal(state_of(m, ID_A), NODE_LEFT);
    assert_int_equal(state_of(m, ID_B), NODE_SUSPECT);
    assert_int_equal(state_of(m, ID_C), NODE_DOWN);
    assert_int_equal(membership_count(m), 3);
    expect_no_change(m, 600); /* B stays SUSPECT until 600 ms of silence */
    expect_one_change(m, 601, ID_B, NODE_SUSPECT, NODE_DOWN, 601);
    /* A heartbeat from the restored DOWN node brings it back. */
    node_state previous;
    assert_int_equal(membership_heartbeat(m, ID_C, 700, &previous), 0);
    assert_int_equal(previous, NODE_DOWN);
    membership_destroy(m);
}

/* ---- limits ----------------------------------------------------------- */

static void full_table_refuses_new_nodes(void **state)
{
    (void)state;
    membership *m = make(&policy, 2);
    reg(m, ID_A, 100, 0, -1);
    reg(m, ID_B, 100, 0, -1);
    int previous = 0;
    mlx_err err;
    mlx_err_clear(&err);
    assert_int_equal(membership_register(m, ID_C, 100, 0, &previous, &err), MLX_EBUSY);
    assert_int_equal(err.code, MLX_EBUSY);
    assert_true(err.msg[0] != '\0');
    assert_int_equal(membership_count(m), 2);
    node_state s;
    assert_int_equal(membership_state(m, ID_C, &s), MLX_EUNKNOWNNODE);
    assert_int_equal(membership_restore(m, ID_C, NODE_UP, 100, 0, NULL), MLX_EBUSY);
    /* Nodes already in the table may still register again. */
    reg(m, ID_A, 100, 50, NODE_UP);
    assert_int_equal(membership_count(m), 2);
    membership_destroy(m);
}

static void tick_reports_at_most_max_and_the_rest_next_time(void **state)
{
    (void)state;
    static const char *const ids[5] = {"0000000000000001", "0000000000000002",
                                       "0000000000000003", "0000000000000004",
                                       "0000000000000005"};
    membership *m = make(&policy, 16);
    for (int i = 0; i < 5; i++)
        reg(m, ids[i], 100, 0, -1);
    int seen[5] = {0};
    membership_change out[2];
    size_t sizes[4];
    for (int call = 0; call < 4; call++) {
        memset(out, 0, sizeof out);
        sizes[call] = membership_tick(m, 350, out, 2);
        assert_true(sizes[call] <= 2);
        for (size_t j = 0; j < sizes[call]; j++) {
            assert_int_equal(out[j].from, NODE_UP);
            assert_int_equal(out[j].to, NODE_SUSPECT);
            assert_int_equal(out[j].silent_ms, 350);
            int found = 0;
            for (int i = 0; i < 5; i++) {
                if (strcmp(out[j].node_id, ids[i]) == 0) {
                    seen[i]++;
                    found = 1;
                }
            }
            assert_true(found);
        }
    }
    assert_int_equal(sizes[0], 2);
    assert_int_equal(sizes[1], 2);
    assert_int_equal(sizes[2], 1);
    assert_int_equal(sizes[3], 0);
    for (int i = 0; i < 5; i++) {
        assert_int_equal(seen[i], 1);
        assert_int_equal(state_of(m, ids[i]), NODE_SUSPECT);
    }
    /* max 0 changes nothing. */
    assert_int_equal(membership_tick(m, 1000, out, 0), 0);
    for (int i = 0; i < 5; i++)
        assert_int_equal(state_of(m, ids[i]), NODE_SUSPECT);
    membership_destroy(m);
}

static void register_refuses_malformed_node_id(void **state)
{
    (void)state;
    membership *m = make(&policy, 16);
    int previous;
    assert_true(membership_register(m, "short", 100, 0, &previous, NULL) < 0);
    assert_int_equal(membership_count(m), 0);
    membership_destroy(m);
}

/* ---- names ------------------------------------------------------------ */

static void state_names_round_trip(void **state)
{
    (void)state;
    const node_state all[] = {NODE_UP, NODE_SUSPECT, NODE_DOWN, NODE_LEFT};
    const char *const names[] = {"up", "suspect", "down", "left"};
    for (size_t i = 0; i < 4; i++) {
        assert_string_equal(membership_state_name(all[i]), names[i]);
        node_state parsed = NODE_UP;
        if (all[i] == NODE_UP)
            parsed = NODE_LEFT;
        assert_int_equal(membership_parse_state(membership_state_name(all[i]), &parsed),
                         0);
        assert_int_equal(parsed, all[i]);
    }
    node_state parsed = NODE_SUSPECT;
    assert_int_equal(membership_parse_state("UP", &parsed), MLX_EINVAL);
    assert_int_equal(membership_parse_state("", &parsed), MLX_EINVAL);
    assert_int_equal(membership_parse_state("gone", &parsed), MLX_EINVAL);
    assert_int_equal(parsed, NODE_SUSPECT);
    assert_string_equal(membership_state_name((node_state)42), "unknown");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(policy_with_down_not_after_suspect_is_refused),
        cmocka_unit_test(policy_with_zero_interval_or_suspect_is_refused),
        cmocka_unit_test(sensible_policy_is_accepted),
        cmocka_unit_test(silence_thresholds_are_exact_and_reported_once),
        cmocka_unit_test(heartbeat_brings_suspect_back_up),
        cmocka_unit_test(heartbeat_brings_down_back_up),
        cmocka_unit_test(heartbeat_of_up_node_reports_up),
        cmocka_unit_test(declared_interval_zero_uses_policy_default),
        cmocka_unit_test(each_node_is_judged_by_its_own_interval),
        cmocka_unit_test(state_after_never_improves_by_silence),
        cmocka_unit_test(left_node_is_never_changed_by_silence),
        cmocka_unit_test(heartbeat_from_left_or_unknown_node_is_refused),
        cmocka_unit_test(leave_of_unknown_node_is_refused),
        cmocka_unit_test(register_of_left_node_makes_it_up),
        cmocka_unit_test(register_of_known_node_reports_previous_state),
        cmocka_unit_test(restored_node_counts_silence_from_restore_time),
        cmocka_unit_test(restore_keeps_the_recorded_state),
        cmocka_unit_test(full_table_refuses_new_nodes),
        cmocka_unit_test(tick_reports_at_most_max_and_the_rest_next_time),
        cmocka_unit_test(register_refuses_malformed_node_id),
        cmocka_unit_test(state_names_round_trip),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
