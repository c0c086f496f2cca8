/*
 * test_registry.c — the coordinator's SQLite registry of nodes
 * (coordinator/registry/registry.h): the schema is created on open; a
 * registration shows up in registry_nodes_json with every field; heartbeats
 * update last_seen and metrics; unknown ids are refused; states are stored;
 * re-registration refreshes the one row; registry_each visits every node;
 * the data survives closing and reopening the file; listing order.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <jansson.h>
#include <sqlite3.h>

#include "common/err.h"
#include "coordinator/registry/registry.h"
#include "tests/support/testutil.h"

#define ID_A "0123456789abcdef"
#define ID_B "fedcba9876543210"
#define ID_C "00000000000000ff"

/* 2023-11-14T22:13:20.123Z */
#define T0 INT64_C(1700000000123)

struct fixture {
    char *dir;
    char *path;
    registry *reg;
};

static int setup(void **state)
{
    struct fixture *f = calloc(1, sizeof *f);
    if (f == NULL)
        return -1;
    f->dir = test_tmpdir("registry");
    f->path = test_join(f->dir, "coordinator.db");
    mlx_err err;
    mlx_err_clear(&err);
    if (registry_open(f->path, &f->reg, &err) != 0) {
        fprintf(stderr, "registry_open: %s\n", err.msg);
        return -1;
    }
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fixture *f = *state;
    registry_close(f->reg);
    free(f->path);
    test_tmpdir_remove(f->dir);
    free(f);
    return 0;
}

static registry_node node(const char *id, const char *name)
{
    registry_node n = {
        .id = id,
        .name = name,
        .address = "tcp://10.0.0.7:7401",
        .http = "10.0.0.7:7481",
        .version = "0.1.0",
        .heartbeat_ms = 1000,
        .hardware_json = "{\"hostname\":\"studio-7.lan\",\"cpu_cores\":12,"
                         "\"memory_total_bytes\":103079215104}",
    };
    return n;
}

static void must(int rc, const mlx_err *err, const char *what)
{
    if (rc != 0)
        fail_msg("%s: %s (%s)", what, err->msg, mlx_errname(rc));
}

static void do_register(registry *r, const registry_node *n, int64_t now)
{
    mlx_err err;
    mlx_err_clear(&err);
    must(registry_register(r, n, now, &err), &err, "registry_register");
}

/* The "nodes" array of registry_nodes_json; caller json_decref's *root. */
static json_t *list_nodes(registry *r, json_t **root)
{
    mlx_err err;
    mlx_err_clear(&err);
    *root = NULL;
    must(registry_nodes_json(r, root, &err), &err, "registry_nodes_json");
    assert_non_null(*root);
    json_t *nodes = json_object_get(*root, "nodes");
    assert_non_null(nodes);
    assert_true(json_is_array(nodes));
    return nodes;
}

static const char *str(const json_t *obj, const char *key)
{
    const json_t *v = json_object_get(obj, key);
    if (v == NULL || !json_is_string(v))
        fail_msg("member '%s' is missing or not a string", key);
    return json_string_value(v);
}

static json_int_t integer(const json_t *obj, const char *key)
{
    const json_t *v = json_object_get(obj, key);
    if (v == NULL || !json_is_integer(v))
        fail_msg("member '%s' is missing or not an integer", key);
    return json_integer_value(v);
}

/* ---- tests ------------------------------------------------------------ */

static void open_creates_the_schema(void **state)
{
    struct fixture *f = *state;
    sqlite3 *db = NULL;
    assert_int_equal(sqlite3_open_v2(f->path, &db, SQLITE_OPEN_READONLY, NULL),
                     SQLITE_OK);
    sqlite3_stmt *st = NULL;
    assert_int_equal(sqlite3_prepare_v2(db,
                                        "SELECT count(*) FROM sqlite_master"
                                        " WHERE type = 'table' AND name = 'nodes'",
                                        -1, &st, NULL),
                     SQLITE_OK);
    assert_int_equal(sqlite3_step(st), SQLITE_ROW);
    assert_int_equal(sqlite3_column_int(st, 0), 1);
    sqlite3_finalize(st);
    assert_int_equal(
        sqlite3_prepare_v2(db, "SELECT version FROM schema_version", -1, &st, NULL),
        SQLITE_OK);
    assert_int_equal(sqlite3_step(st), SQLITE_ROW);
    assert_true(sqlite3_column_int(st, 0) >= 1);
    sqlite3_finalize(st);
    sqlite3_close(db);

    json_t *root;
    json_t *nodes = list_nodes(f->reg, &root);
    assert_int_equal(json_array_size(nodes), 0);
    json_decref(root);
}

static void open_of_unwritable_path_fails_with_sentence(void **state)
{
    struct fixture *f = *state;
    char *bad = test_join(f->dir, "no/such/dir/coordinator.db");
    registry *r = NULL;
    mlx_err err;
    mlx_err_clear(&err);
    int rc = registry_open(bad, &r, &err);
    assert_true(rc < 0);
    assert_null(r);
    assert_non_null(strstr(err.msg, bad));
    free(bad);
}

static void open_of_database_it_cannot_migrate_fails(void **state)
{
    struct fixture *f = *state;
    /* A foreign database that already has a "nodes" table but no schema
     * version: migration 1 cannot run, and open must say so, with or without
     * an mlx_err to fill. */
    char *path = test_join(f->dir, "foreign.db");
    sqlite3 *db = NULL;
    assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
    assert_int_equal(
        sqlite3_exec(db, "CREATE TABLE nodes (x INTEGER);", NULL, NULL, NULL), SQLITE_OK);
    sqlite3_close(db);

    registry *r = NULL;
    mlx_err err;
    mlx_err_clear(&err);
    assert_int_equal(registry_open(path, &r, &err), MLX_EDB);
    assert_null(r);
    assert_non_null(strstr(err.msg, path));
    assert_int_equal(registry_open(path, &r, NULL), MLX_EDB);
    assert_null(r);
    free(path);
}

static void registered_node_shows_every_field(void **state)
{
    struct fixture *f = *state;
    registry_node n = node(ID_A, "studio-7");
    do_register(f->reg, &n, T0);

    json_t *root;
    json_t *nodes = list_nodes(f->reg, &root);
    assert_int_equal(json_array_size(nodes), 1);
    json_t *x = json_array_get(nodes, 0);
    assert_string_equal(str(x, "id"), ID_A);
    assert_string_equal(str(x, "name"), "studio-7");
    assert_string_equal(str(x, "address"), "tcp://10.0.0.7:7401");
    assert_string_equal(str(x, "http"), "10.0.0.7:7481");
    assert_string_equal(str(x, "version"), "0.1.0");
    assert_string_equal(str(x, "state"), "up");
    assert_int_equal(integer(x, "heartbeat_ms"), 1000);
    assert_string_equal(str(x, "registered_at"), "2023-11-14T22:13:20.123Z");
    assert_true(integer(x, "registered_at_unix_ms") == T0);
    assert_string_equal(str(x, "last_seen"), "2023-11-14T22:13:20.123Z");
    assert_true(integer(x, "last_seen_unix_ms") == T0);
    json_t *hw = json_object_get(x, "hardware");
    assert_non_null(hw);
    assert_true(json_is_object(hw));
    assert_string_equal(str(hw, "hostname"), "studio-7.lan");
    assert_int_equal(integer(hw, "cpu_cores"), 12);
    assert_true(integer(hw, "memory_total_bytes") == INT64_C(103079215104));
    json_t *metrics = json_object_get(x, "metrics");
    assert_non_null(metrics);
    assert_true(json_is_null(metrics));
    json_decref(root);
}

static void heartbeat_updates_last_seen_and_metrics(void **state)
{
    struct fixture *f = *state;
    registry_node n = node(ID_A, "studio-7");
    do_register(f->reg, &n, T0);
    mlx_err err;
    mlx_err_clear(&err);
    must(registry_heartbeat(f->reg, ID_A,
                            "{\"cpu_percent\":12.5,\"memory_used_bytes\":4096,"
                            "\"load1\":0.25}",
                            T0 + 4877, &err),
         &err, "registry_heartbeat");

    json_t *root;
    json_t *nodes = list_nodes(f->reg, &root);
    json_t *x = json_array_get(nodes, 0);
    assert_string_equal(str(x, "registered_at"), "2023-11-14T22:13:20.123Z");
    assert_string_equal(str(x, "last_seen"), "2023-11-14T22:13:25.000Z");
    assert_true(integer(x, "last_seen_unix_ms") == T0 + 4877);
    assert_string_equal(str(x, "state"), "up");
    json_t *m = json_object_get(x, "metrics");
    assert_non_null(m);
    assert_true(json_is_object(m));
    assert_true(json_real_value(json_object_get(m, "cpu_percent")) == 12.5);
    assert_int_equal(integer(m, "memory_used_bytes"), 4096);
    assert_true(json_real_value(json_object_get(m, "load1")) == 0.25);
    json_decref(root);

    /* A later heartbeat replaces the metrics. */
    must(registry_heartbeat(f->reg, ID_A, "{\"cpu_percent\":99.0}", T0 + 10000, &err),
         &err, "registry_heartbeat");
    nodes = list_nodes(f->reg, &root);
    x = json_array_get(nodes, 0);
    m = json_object_get(x, "metrics");
    assert_true(json_real_value(json_object_get(m, "cpu_percent")) == 99.0);
    assert_null(json_object_get(m, "load1"));
    assert_true(integer(x, "last_seen_unix_ms") == T0 + 10000);
    json_decref(root);
}

static void heartbeat_of_unknown_id_is_not_found(void **state)
{
    struct fixture *f = *state;
    registry_node n = node(ID_A, "studio-7");
    do_register(f->reg, &n, T0);
    mlx_err err;
    mlx_err_clear(&err);
    assert_int_equal(registry_heartbeat(f->reg, ID_B, "{}", T0 + 1, &err), MLX_ENOENT);
    assert_int_equal(err.code, MLX_ENOENT);
    assert_non_null(strstr(err.msg, ID_B));

    json_t *root;
    json_t *nodes = list_nodes(f->reg, &root);
    assert_int_equal(json_array_size(nodes), 1); /* no row was made */
    assert_true(integer(json_array_get(nodes, 0), "last_seen_unix_ms") == T0);
    json_decref(root);
}

static void set_state_is_stored(void **state)
{
    struct fixture *f = *state;
    registry_node n = node(ID_A, "studio-7");
    do_register(f->reg, &n, T0);
    static const char *const states[] = {"suspect", "down", "left", "up"};
    for (size_t i = 0; i < 4; i++) {
        mlx_err err;
        mlx_err_clear(&err);
        must(registry_set_state(f->reg, ID_A, states[i], &err), &err,
             "registry_set_state");
        json_t *root;
        json_t *nodes = list_nodes(f->reg, &root);
        assert_string_equal(str(json_array_get(nodes, 0), "state"), states[i]);
        json_decref(root);
    }
}

static void set_state_of_unknown_id_is_not_found(void **state)
{
    struct fixture *f = *state;
    mlx_err err;
    mlx_err_clear(&err);
    assert_int_equal(registry_set_state(f->reg, ID_A, "down", &err), MLX_ENOENT);
    assert_non_null(strstr(err.msg, ID_A));
}

static void set_state_refuses_unknown_state_name(void **state)
{
    struct fixture *f = *state;
    registry_node n = node(ID_A, "studio-7");
    do_register(f->reg, &n, T0);
    mlx_err err;
    mlx_err_clear(&err);
    assert_true(registry_set_state(f->reg, ID_A, "sleeping", &err) < 0);
    assert_true(err.msg[0] != '\0');
    json_t *root;
    json_t *nodes = list_nodes(f->reg, &root);
    assert_string_equal(str(json_array_get(nodes, 0), "state"), "up");
    json_decref(root);
}

static void reregister_updates_the_same_row(void **state)
{
    struct fixture *f = *state;
    registry_node n = node(ID_A, "studio-7");
    do_register(f->reg, &n, T0);
    mlx_err err;
    mlx_err_clear(&err);
    must(registry_set_state(f->reg, ID_A, "down", &err), &err, "registry_set_state");

    registry_node again = {
        .id = ID_A,
        .name = "studio-7-renamed",
        .address = "tcp://10.0.0.99:7501",
        .http = "10.0.0.99:7581",
        .version = "0.2.0",
        .heartbeat_ms = 250,
        .hardware_json = "{\"hostname\":\"new-host\",\"cpu_cores\":24}",
    };
    do_register(f->reg, &again, T0 + 60000);

    json_t *root;
    json_t *nodes = list_nodes(f->reg, &root);
    assert_int_equal(json_array_size(nodes), 1);
    json_t *x = json_array_get(nodes, 0);
    assert_string_equal(str(x, "id"), ID_A);
    assert_string_equal(str(x, "name"), "studio-7-renamed");
    assert_string_equal(str(x, "address"), "tcp://10.0.0.99:7501");
    assert_string_equal(str(x, "http"), "10.0.0.99:7581");
    assert_string_equal(str(x, "version"), "0.2.0");
    assert_string_equal(str(x, "state"), "up");
    assert_int_equal(integer(x, "heartbeat_ms"), 250);
    assert_true(integer(x, "last_seen_unix_ms") == T0 + 60000);
    assert_string_equal(str(x, "last_seen"), "2023-11-14T22:14:20.123Z");
    json_t *hw = json_object_get(x, "hardware");
    assert_string_equal(str(hw, "hostname"), "new-host");
    assert_int_equal(integer(hw, "cpu_cores"), 24);
    json_decref(root);
}

struct seen {
    int count;
    int a, b, c;
    char states[3][16];
    int64_t intervals[3];
    int stop_after; /* return an error from the callback after this many; 0: never */
};

static int visit(void *arg, const char *id, const char *state, int64_t heartbeat_ms)
{
    struct seen *s = arg;
    int slot = -1;
    if (strcmp(id, ID_A) == 0) {
        s->a++;
        slot = 0;
    } else if (strcmp(id, ID_B) == 0) {
        s->b++;
        slot = 1;
    } else if (strcmp(id, ID_C) == 0) {
        s->c++;
        slot = 2;
    }
    if (slot >= 0) {
        snprintf(s->states[slot], sizeof s->states[slot], "%s", state);
        s->intervals[slot] = heartbeat_ms;
    }
    s->count++;
    if (s->stop_after != 0 && s->count >= s->stop_after)
        return MLX_EBUSY;
    return 0;
}

static void each_visits_every_node(void **state)
{
    struct fixture *f = *state;
    registry_node a = node(ID_A, "a"), b = node(ID_B, "b"), c = node(ID_C, "c");
    b.heartbeat_ms = 200;
    c.heartbeat_ms = 5000;
    do_register(f->reg, &a, T0);
    do_register(f->reg, &b, T0);
    do_register(f->reg, &c, T0);
    mlx_err err;
    mlx_err_clear(&err);
    must(registry_set_state(f->reg, ID_B, "left", &err), &err, "registry_set_state");

    struct seen s;
    memset(&s, 0, sizeof s);
    must(registry_each(f->reg, visit, &s, &err), &err, "registry_each");
    assert_int_equal(s.count, 3);
    assert_int_equal(s.a, 1);
    assert_int_equal(s.b, 1);
    assert_int_equal(s.c, 1);
    assert_string_equal(s.states[0], "up");
    assert_string_equal(s.states[1], "left");
    assert_string_equal(s.states[2], "up");
    assert_int_equal(s.intervals[0], 1000);
    assert_int_equal(s.intervals[1], 200);
    assert_int_equal(s.intervals[2], 5000);
}

static void each_stops_at_the_callbacks_error(void **state)
{
    struct fixture *f = *state;
    registry_node a = node(ID_A, "a"), b = node(ID_B, "b"), c = node(ID_C, "c");
    do_register(f->reg, &a, T0);
    do_register(f->reg, &b, T0);
    do_register(f->reg, &c, T0);
    struct seen s;
    memset(&s, 0, sizeof s);
    s.stop_after = 2;
    assert_int_equal(registry_each(f->reg, visit, &s, NULL), MLX_EBUSY);
    assert_int_equal(s.count, 2);
}

static void each_on_empty_registry_calls_nothing(void **state)
{
    struct fixture *f = *state;
    struct seen s;
    memset(&s, 0, sizeof s);
    assert_int_equal(registry_each(f->reg, visit, &s, NULL), 0);
    assert_int_equal(s.count, 0);
}

static void registry_survives_close_and_reopen(void **state)
{
    struct fixture *f = *state;
    registry_node a = node(ID_A, "alpha"), b = node(ID_B, "beta");
    do_register(f->reg, &a, T0);
    do_register(f->reg, &b, T0 + 5);
    mlx_err err;
    mlx_err_clear(&err);
    must(registry_heartbeat(f->reg, ID_A, "{\"cpu_percent\":3.5}", T0 + 1000, &err), &err,
         "registry_heartbeat");
    must(registry_set_state(f->reg, ID_B, "suspect", &err), &err, "registry_set_state");

    json_t *before;
    list_nodes(f->reg, &before);
    registry_close(f->reg);
    f->reg = NULL;

    must(registry_open(f->path, &f->reg, &err), &err, "registry_open again");
    json_t *after;
    json_t *nodes = list_nodes(f->reg, &after);
    assert_int_equal(json_array_size(nodes), 2);
    assert_true(json_equal(before, after));
    /* Spot-check that the reopened data is what was written, not just equal. */
    json_t *x = json_array_get(nodes, 0);
    assert_string_equal(str(x, "id"), ID_A);
    assert_true(json_real_value(json_object_get(json_object_get(x, "metrics"),
                                                "cpu_percent")) == 3.5);
    assert_string_equal(str(json_array_get(nodes, 1), "state"), "suspect");
    json_decref(before);
    json_decref(after);

    /* And the reopened registry still takes writes. */
    must(registry_heartbeat(f->reg, ID_B, "{}", T0 + 2000, &err), &err,
         "registry_heartbeat after reopen");
}

static void nodes_are_listed_by_name_then_id(void **state)
{
    struct fixture *f = *state;
    registry_node n1 = node(ID_B, "beta");  /* fedc… */
    registry_node n2 = node(ID_A, "gamma"); /* 0123… */
    registry_node n4 = node("ffffffffffffffff", "alpha");
    registry_node n5 = node("1111111111111111", "alpha");
    do_register(f->reg, &n1, T0);
    do_register(f->reg, &n2, T0);
    do_register(f->reg, &n4, T0);
    do_register(f->reg, &n5, T0);

    json_t *root;
    json_t *nodes = list_nodes(f->reg, &root);
    assert_int_equal(json_array_size(nodes), 4);
    static const char *const want_ids[] = {"1111111111111111", "ffffffffffffffff", ID_B,
                                           ID_A};
    static const char *const want_names[] = {"alpha", "alpha", "beta", "gamma"};
    for (size_t i = 0; i < 4; i++) {
        json_t *x = json_array_get(nodes, i);
        assert_string_equal(str(x, "id"), want_ids[i]);
        assert_string_equal(str(x, "name"), want_names[i]);
    }
    json_decref(root);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(open_creates_the_schema, setup, teardown),
        cmocka_unit_test_setup_teardown(open_of_unwritable_path_fails_with_sentence,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(open_of_database_it_cannot_migrate_fails, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(registered_node_shows_every_field, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(heartbeat_updates_last_seen_and_metrics, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(heartbeat_of_unknown_id_is_not_found, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(set_state_is_stored, setup, teardown),
        cmocka_unit_test_setup_teardown(set_state_of_unknown_id_is_not_found, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(set_state_refuses_unknown_state_name, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(reregister_updates_the_same_row, setup, teardown),
        cmocka_unit_test_setup_teardown(each_visits_every_node, setup, teardown),
        cmocka_unit_test_setup_teardown(each_stops_at_the_callbacks_error, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(each_on_empty_registry_calls_nothing, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(registry_survives_close_and_reopen, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(nodes_are_listed_by_name_then_id, setup,
                                        teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
