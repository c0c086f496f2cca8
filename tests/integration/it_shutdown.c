/*
 * it_shutdown.c — clean, bounded shutdown under traffic: a coordinator
 * stopped again and again while agents heartbeat every 10 ms must exit 0
 * promptly each time (NNG can hang a REP socket's close when contexts are
 * busy), and agents stopped while their coordinator is gone must not wait
 * for it longer than one request timeout.
 */
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>

#include "tests/integration/cluster.h"

#define ROUNDS 25
/* Waits for a process to come up: generous, as the machine may be busy;
 * only the shutdowns are timed. */
#define UP_MS 30000

struct heard {
    cluster *c;
    int64_t since_unix_ms;
};

/* Every agent has heartbeated to the current coordinator. */
static bool all_heard(void *arg)
{
    struct heard *h = arg;
    json_t *nodes = cluster_nodes(h->c);
    bool ok = nodes != NULL;
    for (int i = 0; ok && i < h->c->n_agents; i++) {
        json_t *n = cluster_find_node(nodes, h->c->agents[i].node_id);
        ok = n != NULL && json_integer_value(json_object_get(n, "last_seen_unix_ms")) >
                              h->since_unix_ms;
    }
    json_decref(nodes);
    return ok;
}

static int64_t wall_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void test_coordinator_stops_promptly_under_heartbeats(void **state)
{
    cluster *c = cluster_create("it-shutdown", 10, 50, 100);
    cluster_start_coordinator(c);
    for (int i = 0; i < 4; i++) {
        char name[16];
        snprintf(name, sizeof name, "busy-%d", i);
        cluster_add_agent(c, name);
        assert_true(cluster_wait_node_id(c, i, UP_MS));
    }
    int64_t started = wall_ms();
    for (int round = 0; round < ROUNDS; round++) {
        struct heard h = {c, started};
        assert_true(h_wait_for(all_heard, &h, UP_MS));
        h_signal(c->coordinator, SIGTERM);
        int status = h_wait_exit(c->coordinator, 5000);
        if (status != 0)
            fail_msg("round %d: the coordinator %s", round,
                     status < 0 ? "did not stop within 5 s of SIGTERM"
                                : "exited with an error");
        free(c->coordinator);
        started = wall_ms();
        cluster_start_coordinator(c);
    }
    cluster_destroy(c);
}

static void test_agents_stop_promptly_without_coordinator(void **state)
{
    cluster *c = cluster_create("it-shutdown", 100, 3, 8);
    cluster_start_coordinator(c);
    for (int i = 0; i < 3; i++) {
        char name[16];
        snprintf(name, sizeof name, "orphan-%d", i);
        cluster_add_agent(c, name);
        assert_true(cluster_wait_node_id(c, i, UP_MS));
        assert_true(cluster_wait_agent_state(c, i, "up", UP_MS));
    }
    h_signal(c->coordinator, SIGKILL);
    assert_int_equal(h_wait_exit(c->coordinator, 5000), 128 + SIGKILL);
    for (int i = 0; i < 3; i++) {
        int64_t start = h_now_ms();
        h_signal(c->agents[i].proc, SIGTERM);
        /* one request timeout (500 ms at this interval) plus scheduling */
        assert_int_equal(h_wait_exit(c->agents[i].proc, 3000), 0);
        assert_true(h_now_ms() - start < 3000);
        assert_int_equal(
            h_count_lines(c->agents[i].proc->log_path, "could not deregister"), 1);
    }
    cluster_destroy(c);
}

/* Agents deregistering (and their connections closing) at the very moment
 * the coordinator closes: how a whole machine shuts down. */
static void test_everything_stops_together(void **state)
{
    cluster *c = cluster_create("it-shutdown", 10, 50, 100);
    for (int round = 0; round < ROUNDS; round++) {
        /* Heard from since this moment: every process is running for sure. */
        int64_t started = wall_ms();
        cluster_start_coordinator(c);
        for (int i = 0; i < 3; i++) {
            if (round == 0) {
                char name[16];
                snprintf(name, sizeof name, "together-%d", i);
                cluster_add_agent(c, name);
                assert_true(cluster_wait_node_id(c, i, UP_MS));
            } else {
                cluster_start_agent(c, i);
            }
        }
        struct heard h = {c, started};
        assert_true(h_wait_for(all_heard, &h, UP_MS));
        h_signal(c->coordinator, SIGTERM);
        for (int i = 0; i < 3; i++)
            h_signal(c->agents[i].proc, SIGTERM);
        int status = h_wait_exit(c->coordinator, 5000);
        if (status != 0)
            fail_msg("round %d: the coordinator %s", round,
                     status < 0 ? "did not stop within 5 s of SIGTERM"
                                : "exited with an error");
        for (int i = 0; i < 3; i++) {
            if (h_wait_exit(c->agents[i].proc, 5000) != 0)
                fail_msg("round %d: agent %d did not stop cleanly within 5 s", round, i);
            free(c->agents[i].proc);
            c->agents[i].proc = NULL;
        }
        free(c->coordinator);
        c->coordinator = NULL;
    }
    cluster_destroy(c);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_coordinator_stops_promptly_under_heartbeats),
        cmocka_unit_test(test_agents_stop_promptly_without_coordinator),
        cmocka_unit_test(test_everything_stops_together),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
