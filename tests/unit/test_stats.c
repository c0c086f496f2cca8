/*
 * test_stats.c — the coordinator's ledger of generations
 * (coordinator/stats): flights listed oldest first and unlinked from any
 * place in the list; retries and failovers from the nodes tried; the
 * series of /metrics with their node names; the cap on distinct series,
 * past which new models count as "other".
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "coordinator/stats/stats.h"
#include "tests/support/testutil.h"

static fleet_stats *s;

static int setup(void **state)
{
    return stats_create(&s, NULL);
}

static int teardown(void **state)
{
    stats_destroy(s);
    return 0;
}

static const char *name_of(void *arg, const char *node_id)
{
    return strcmp(node_id, "aaaaaaaaaaaaaaaa") == 0 ? "alpha" : NULL;
}

static char *page(uint32_t active)
{
    mlx_buf b;
    mlx_buf_init(&b, 1u << 24);
    stats_write_metrics(s, &b, active, name_of, NULL);
    return mlx_buf_take(&b);
}

static const char *listed_id(json_t *doc, size_t i)
{
    return json_string_value(
        json_object_get(json_array_get(json_object_get(doc, "requests"), i), "id"));
}

static void test_flights_are_listed_oldest_first_and_leave_from_anywhere(void **state)
{
    stats_flight a, b, c;
    stats_flight_begin(s, &a, "req-a", "/v1/completions", "m", "ops", false);
    stats_flight_begin(s, &b, "req-b", "/api/chat", "m", "", true);
    stats_flight_begin(s, &c, "req-c", "/api/generate", NULL, NULL, true);
    stats_flight_node(s, &b, "aaaaaaaaaaaaaaaa");
    stats_flight_text(s, &b, 5);
    stats_flight_text(s, &b, 7);

    json_t *doc = stats_requests_json(s);
    assert_string_equal(listed_id(doc, 0), "req-a");
    assert_string_equal(listed_id(doc, 1), "req-b");
    assert_string_equal(listed_id(doc, 2), "req-c");
    json_t *rb = json_array_get(json_object_get(doc, "requests"), 1);
    assert_string_equal(json_string_value(json_object_get(rb, "state")), "generating");
    assert_string_equal(json_string_value(json_object_get(rb, "node_id")),
                        "aaaaaaaaaaaaaaaa");
    assert_int_equal(json_integer_value(json_object_get(rb, "text_bytes")), 12);
    assert_true(json_is_integer(json_object_get(rb, "ttft_ms")));
    json_t *ra = json_array_get(json_object_get(doc, "requests"), 0);
    assert_string_equal(json_string_value(json_object_get(ra, "state")), "routing");
    assert_true(json_is_null(json_object_get(ra, "ttft_ms")));
    json_decref(doc);

    /* The middle, then the tail, then the head. */
    stats_flight_end(s, &b, 200, "aaaaaaaaaaaaaaaa", 1);
    doc = stats_requests_json(s);
    assert_int_equal(json_array_size(json_object_get(doc, "requests")), 2);
    assert_string_equal(listed_id(doc, 1), "req-c");
    json_decref(doc);
    stats_flight_end(s, &c, 404, "", 0);
    stats_flight_end(s, &a, 502, "bbbbbbbbbbbbbbbb", 3);
    doc = stats_requests_json(s);
    assert_int_equal(json_array_size(json_object_get(doc, "requests")), 0);
    json_decref(doc);
}

static void test_the_page_counts_by_model_node_and_status(void **state)
{
    stats_flight f;
    stats_flight_begin(s, &f, "r1", "/v1/completions", "m", "", false);
    stats_flight_node(s, &f, "bbbbbbbbbbbbbbbb");
    stats_flight_node(s, &f, "aaaaaaaaaaaaaaaa");
    stats_flight_end(s, &f, 200, "aaaaaaaaaaaaaaaa", 2); /* a failover */
    stats_flight_begin(s, &f, "r2", "/v1/completions", "m", "", false);
    stats_flight_end(s, &f, 502, "bbbbbbbbbbbbbbbb", 3); /* two retries, no failover */
    stats_count(s, "m", 429);
    stats_count(s, "m", 429);

    char *p = page(7);
    assert_true(
        test_prom_sample(p, "mlx_coordinator_requests_total{model=\"m\",node=\"alpha\","
                            "node_id=\"aaaaaaaaaaaaaaaa\",status=\"200\"}") == 1);
    /* A node the name lookup does not know is shown by its id. */
    assert_true(test_prom_sample(p,
                                 "mlx_coordinator_requests_total{model=\"m\","
                                 "node=\"bbbbbbbbbbbbbbbb\",node_id=\"bbbbbbbbbbbbbbbb\","
                                 "status=\"502\"}") == 1);
    assert_true(test_prom_sample(p,
                                 "mlx_coordinator_requests_total{model=\"m\",node=\"\","
                                 "node_id=\"\",status=\"429\"}") == 2);
    assert_true(test_prom_sample(p, "mlx_coordinator_retries_total") == 3);
    assert_true(test_prom_sample(p, "mlx_coordinator_failovers_total") == 1);
    assert_true(test_prom_sample(p, "mlx_coordinator_requests_active") == 7);
    /* Routed once (the first acceptance), texted never. */
    assert_true(test_prom_sample(p, "mlx_coordinator_routing_seconds_count") == 1);
    assert_true(
        test_prom_sample(p, "mlx_coordinator_time_to_first_token_seconds_count") == 0);
    free(p);
}

static void test_made_up_models_stop_at_the_cap(void **state)
{
    for (int i = 0; i < STATS_MAX_SERIES + 50; i++) {
        char model[32];
        snprintf(model, sizeof model, "made-up-%d", i);
        stats_count(s, model, 404);
    }
    char *p = page(0);
    size_t lines = 0;
    for (const char *q = p; (q = strstr(q, "mlx_coordinator_requests_total{")) != NULL;
         q++)
        lines++;
    assert_int_equal(lines, STATS_MAX_SERIES + 1); /* and "other" */
    assert_true(
        test_prom_sample(p, "mlx_coordinator_requests_total{model=\"other\",node=\"\","
                            "node_id=\"\",status=\"404\"}") == 50);
    assert_true(test_prom_sample(
                    p, "mlx_coordinator_requests_total{model=\"made-up-0\",node=\"\","
                       "node_id=\"\",status=\"404\"}") == 1);
    free(p);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(
            test_flights_are_listed_oldest_first_and_leave_from_anywhere, setup,
            teardown),
        cmocka_unit_test_setup_teardown(test_the_page_counts_by_model_node_and_status,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(test_made_up_models_stop_at_the_cap, setup,
                                        teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
