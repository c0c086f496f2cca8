/*
 * test_registry_models.c — the model inventory of the coordinator's registry
 * (coordinator/registry/registry.h, models.c): store lists and loaded models
 * are replaced wholesale per node; unknown nodes are refused and leave
 * nothing behind; registry_models_json groups nodes per model, sorted, and
 * counts a model as loaded only on a live node and only by the agent's own
 * engine; registry_ps_json lists live nodes' loaded models; and
 * registry_candidates gives the router every node of a model in order of
 * preference, with its address and load, stopping at the callback's value.
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

#include "common/err.h"
#include "coordinator/registry/registry.h"
#include "tests/support/testutil.h"

#define ID_A "0123456789abcdef"
#define ID_B "fedcba9876543210"
#define ID_C "00000000000000ff"
#define DIGEST "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"
#define T0 INT64_C(1700000000123)

struct fixture {
    char *dir;
    registry *reg;
};

static void must(int rc, const mlx_err *err, const char *what)
{
    if (rc != 0)
        fail_msg("%s: %s (%s)", what, err->msg, mlx_errname(rc));
}

static void add_node(registry *r, const char *id, const char *name, const char *address)
{
    registry_node n = {
        .id = id,
        .name = name,
        .address = address,
        .http = "127.0.0.1:7481",
        .version = "0.1.0",
        .heartbeat_ms = 1000,
        .hardware_json = "{}",
    };
    mlx_err err;
    mlx_err_clear(&err);
    must(registry_register(r, &n, T0, &err), &err, "registry_register");
}

static int setup(void **state)
{
    struct fixture *f = calloc(1, sizeof *f);
    if (f == NULL)
        return -1;
    f->dir = test_tmpdir("registry-models");
    char *path = test_join(f->dir, "coordinator.db");
    mlx_err err;
    mlx_err_clear(&err);
    int rc = registry_open(path, &f->reg, &err);
    free(path);
    if (rc != 0) {
        fprintf(stderr, "registry_open: %s\n", err.msg);
        return -1;
    }
    /* Names sort the other way round from ids, so order by name shows. */
    add_node(f->reg, ID_A, "beta", "tcp://10.0.0.1:7401");
    add_node(f->reg, ID_B, "alpha", "tcp://10.0.0.2:7401");
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fixture *f = *state;
    registry_close(f->reg);
    test_tmpdir_remove(f->dir);
    free(f);
    return 0;
}

static void set_store(registry *r, const char *id, const registry_stored *m, size_t n)
{
    mlx_err err;
    mlx_err_clear(&err);
    must(registry_set_store(r, id, m, n, &err), &err, "registry_set_store");
}

static void set_loaded(registry *r, const char *id, const registry_loaded *m, size_t n,
                       uint32_t running, uint32_t queued)
{
    mlx_err err;
    mlx_err_clear(&err);
    must(registry_set_loaded(r, id, m, n, running, queued, &err), &err,
         "registry_set_loaded");
}

static void set_state(registry *r, const char *id, const char *state)
{
    mlx_err err;
    mlx_err_clear(&err);
    must(registry_set_state(r, id, state, &err), &err, "registry_set_state");
}

/* The "models" array of registry_models_json; caller decrefs *root. */
static json_t *models(registry *r, json_t **root)
{
    mlx_err err;
    mlx_err_clear(&err);
    must(registry_models_json(r, root, &err), &err, "registry_models_json");
    json_t *list = json_object_get(*root, "models");
    assert_true(json_is_array(list));
    return list;
}

static json_t *ps(registry *r, json_t **root)
{
    mlx_err err;
    mlx_err_clear(&err);
    must(registry_ps_json(r, root, &err), &err, "registry_ps_json");
    json_t *list = json_object_get(*root, "nodes");
    assert_true(json_is_array(list));
    return list;
}

static const char *str(const json_t *obj, const char *key)
{
    const json_t *v = json_object_get(obj, key);
    if (!json_is_string(v))
        fail_msg("member '%s' is missing or not a string", key);
    return json_string_value(v);
}

static bool flag(const json_t *obj, const char *key)
{
    const json_t *v = json_object_get(obj, key);
    if (!json_is_boolean(v))
        fail_msg("member '%s' is missing or not a boolean", key);
    return json_is_true(v);
}

static const registry_stored shared = {"shared:1b", "gguf", 1000, DIGEST, "llama", "", ""};
static const registry_stored solo = {"solo", "gguf", 42, "", "", "", ""};

/* ---- tests ------------------------------------------------------------ */

static void store_lists_group_by_model_and_sort(void **state)
{
    struct fixture *f = *state;
    registry_stored a[] = {solo, shared};
    set_store(f->reg, ID_A, a, 2);
    set_store(f->reg, ID_B, &shared, 1);

    json_t *root;
    json_t *list = models(f->reg, &root);
    assert_int_equal(json_array_size(list), 2);
    json_t *m = json_array_get(list, 0);
    assert_string_equal(str(m, "name"), "shared:1b");
    assert_string_equal(str(m, "format"), "gguf");
    assert_string_equal(str(m, "digest"), DIGEST);
    assert_int_equal(json_integer_value(json_object_get(m, "size_bytes")), 1000);
    json_t *nodes = json_object_get(m, "nodes");
    assert_int_equal(json_array_size(nodes), 2);
    /* By node name: alpha (ID_B) before beta (ID_A). */
    assert_string_equal(str(json_array_get(nodes, 0), "id"), ID_B);
    assert_string_equal(str(json_array_get(nodes, 0), "name"), "alpha");
    assert_string_equal(str(json_array_get(nodes, 0), "state"), "up");
    assert_true(flag(json_array_get(nodes, 0), "stored"));
    assert_false(flag(json_array_get(nodes, 0), "loaded"));
    assert_string_equal(str(json_array_get(nodes, 1), "id"), ID_A);

    m = json_array_get(list, 1);
    assert_string_equal(str(m, "name"), "solo");
    assert_string_equal(str(m, "digest"), "");
    nodes = json_object_get(m, "nodes");
    assert_int_equal(json_array_size(nodes), 1);
    assert_string_equal(str(json_array_get(nodes, 0), "id"), ID_A);
    json_decref(root);
}

static void store_list_is_replaced_wholesale(void **state)
{
    struct fixture *f = *state;
    registry_stored a[] = {solo, shared};
    set_store(f->reg, ID_A, a, 2);
    set_store(f->reg, ID_A, &shared, 1);
    json_t *root;
    json_t *list = models(f->reg, &root);
    assert_int_equal(json_array_size(list), 1);
    assert_string_equal(str(json_array_get(list, 0), "name"), "shared:1b");
    json_decref(root);

    set_store(f->reg, ID_A, NULL, 0);
    list = models(f->reg, &root);
    assert_int_equal(json_array_size(list), 0);
    json_decref(root);
}

static void a_name_given_twice_keeps_its_last_entry(void **state)
{
    struct fixture *f = *state;
    registry_stored twice[] = {solo, solo};
    twice[1].size_bytes = 77;
    set_store(f->reg, ID_A, twice, 2);
    json_t *root;
    json_t *list = models(f->reg, &root);
    assert_int_equal(json_array_size(list), 1);
    assert_int_equal(json_integer_value(json_object_get(json_array_get(list, 0),
                                                        "size_bytes")),
                     77);
    json_decref(root);
}

static void unknown_node_is_refused_and_leaves_nothing(void **state)
{
    struct fixture *f = *state;
    mlx_err err;
    mlx_err_clear(&err);
    assert_int_equal(registry_set_store(f->reg, ID_C, &solo, 1, &err), MLX_ENOENT);
    assert_non_null(strstr(err.msg, ID_C));
    registry_loaded l = {"solo", "mlx", 10, 1.0};
    mlx_err_clear(&err);
    assert_int_equal(registry_set_loaded(f->reg, ID_C, &l, 1, 0, 0, &err), MLX_ENOENT);
    assert_non_null(strstr(err.msg, ID_C));
    json_t *root;
    assert_int_equal(json_array_size(models(f->reg, &root)), 0);
    json_decref(root);
    assert_int_equal(json_array_size(ps(f->reg, &root)), 0);
    json_decref(root);
    /* And the registry still takes writes afterwards (no transaction left
     * open). */
    set_store(f->reg, ID_A, &solo, 1);
}

static void loaded_counts_only_live_nodes_and_the_agents_engine(void **state)
{
    struct fixture *f = *state;
    set_store(f->reg, ID_A, &shared, 1);
    set_store(f->reg, ID_B, &shared, 1);
    registry_loaded la[] = {{"shared:1b", "mlx", 600000000, 12.5},
                            {"llama3.2:1b", "ollama", 900, 3.0}};
    set_loaded(f->reg, ID_A, la, 2, 1, 2);

    json_t *root;
    json_t *list = models(f->reg, &root);
    /* The Ollama model is not served by the agent: not in the inventory. */
    assert_int_equal(json_array_size(list), 1);
    json_t *nodes = json_object_get(json_array_get(list, 0), "nodes");
    json_t *beta = json_array_get(nodes, 1);
    assert_string_equal(str(beta, "id"), ID_A);
    assert_true(flag(beta, "loaded"));
    assert_true(json_number_value(json_object_get(beta, "tokens_per_s")) == 12.5);
    assert_int_equal(json_integer_value(json_object_get(beta, "memory_bytes")), 600000000);
    assert_false(flag(json_array_get(nodes, 0), "loaded"));
    json_decref(root);

    list = ps(f->reg, &root);
    assert_int_equal(json_array_size(list), 1);
    json_t *node = json_array_get(list, 0);
    assert_string_equal(str(node, "id"), ID_A);
    assert_string_equal(str(node, "name"), "beta");
    json_t *ms = json_object_get(node, "models");
    assert_int_equal(json_array_size(ms), 2);
    assert_string_equal(str(json_array_get(ms, 0), "name"), "llama3.2:1b");
    assert_string_equal(str(json_array_get(ms, 0), "engine"), "ollama");
    assert_string_equal(str(json_array_get(ms, 1), "name"), "shared:1b");
    assert_int_equal(json_integer_value(json_object_get(json_array_get(ms, 1),
                                                        "memory_bytes")),
                     600000000);
    json_decref(root);

    /* A silent node's figures are history. */
    set_state(f->reg, ID_A, "down");
    list = models(f->reg, &root);
    nodes = json_object_get(json_array_get(list, 0), "nodes");
    assert_string_equal(str(json_array_get(nodes, 1), "state"), "down");
    assert_false(flag(json_array_get(nodes, 1), "loaded"));
    json_decref(root);
    assert_int_equal(json_array_size(ps(f->reg, &root)), 0);
    json_decref(root);

    /* Back up: loaded again; then a heartbeat with nothing loaded clears. */
    set_state(f->reg, ID_A, "up");
    assert_int_equal(json_array_size(ps(f->reg, &root)), 1);
    json_decref(root);
    set_loaded(f->reg, ID_A, NULL, 0, 0, 0);
    assert_int_equal(json_array_size(ps(f->reg, &root)), 0);
    json_decref(root);
}

static void a_loaded_model_missing_from_the_store_is_still_listed(void **state)
{
    struct fixture *f = *state;
    registry_loaded l = {"gone", "mlx", 5, 0.0};
    set_loaded(f->reg, ID_B, &l, 1, 0, 0);
    json_t *root;
    json_t *list = models(f->reg, &root);
    assert_int_equal(json_array_size(list), 1);
    json_t *n = json_array_get(json_object_get(json_array_get(list, 0), "nodes"), 0);
    assert_false(flag(n, "stored"));
    assert_true(flag(n, "loaded"));
    json_decref(root);
}

struct seen {
    int n;
    char ids[8][17];
    char addresses[8][64];
    bool loaded[8], stored[8];
    uint32_t running[8], queued[8];
    double tps[8];
    int stop_after; /* return 99 after this many; 0: never */
};

static int collect(void *arg, const registry_candidate *c)
{
    struct seen *s = arg;
    if (s->n >= 8)
        return -1;
    snprintf(s->ids[s->n], sizeof s->ids[0], "%s", c->node_id);
    snprintf(s->addresses[s->n], sizeof s->addresses[0], "%s", c->address);
    s->loaded[s->n] = c->loaded;
    s->stored[s->n] = c->stored;
    s->running[s->n] = c->requests_running;
    s->queued[s->n] = c->requests_queued;
    s->tps[s->n] = c->tokens_per_s;
    s->n++;
    return s->stop_after != 0 && s->n == s->stop_after ? 99 : 0;
}

static void candidates_come_in_order_of_preference(void **state)
{
    struct fixture *f = *state;
    add_node(f->reg, ID_C, "gamma", "tcp://10.0.0.3:7401");
    set_store(f->reg, ID_A, &shared, 1);
    set_store(f->reg, ID_B, &shared, 1);
    set_store(f->reg, ID_C, &shared, 1);
    /* B: stored, busy. C: stored, idle. A: loaded, busier still. */
    set_loaded(f->reg, ID_B, NULL, 0, 3, 1);
    set_loaded(f->reg, ID_C, NULL, 0, 0, 0);
    registry_loaded l = {"shared:1b", "mlx", 1, 20.0};
    set_loaded(f->reg, ID_A, &l, 1, 5, 5);

    mlx_err err;
    mlx_err_clear(&err);
    struct seen s = {0};
    must(registry_candidates(f->reg, "shared:1b", collect, &s, &err), &err,
         "registry_candidates");
    assert_int_equal(s.n, 3);
    assert_string_equal(s.ids[0], ID_A);
    assert_true(s.loaded[0]);
    assert_true(s.stored[0]);
    assert_true(s.tps[0] == 20.0);
    assert_int_equal(s.running[0], 5);
    assert_int_equal(s.queued[0], 5);
    assert_string_equal(s.addresses[0], "tcp://10.0.0.1:7401");
    assert_string_equal(s.ids[1], ID_C);
    assert_false(s.loaded[1]);
    assert_string_equal(s.ids[2], ID_B);
    assert_int_equal(s.running[2], 3);
    assert_int_equal(s.queued[2], 1);

    /* A suspect node falls behind every up one, loaded or not; a down one
     * behind that, and it is never "loaded". */
    set_state(f->reg, ID_A, "suspect");
    set_state(f->reg, ID_C, "down");
    memset(&s, 0, sizeof s);
    must(registry_candidates(f->reg, "shared:1b", collect, &s, &err), &err,
         "registry_candidates");
    assert_int_equal(s.n, 3);
    assert_string_equal(s.ids[0], ID_B);
    assert_string_equal(s.ids[1], ID_A);
    assert_true(s.loaded[1]);
    assert_string_equal(s.ids[2], ID_C);
    assert_false(s.loaded[2]);
}

static void candidates_stop_at_the_callbacks_value(void **state)
{
    struct fixture *f = *state;
    set_store(f->reg, ID_A, &shared, 1);
    set_store(f->reg, ID_B, &shared, 1);
    mlx_err err;
    mlx_err_clear(&err);
    struct seen s = {.stop_after = 1};
    assert_int_equal(registry_candidates(f->reg, "shared:1b", collect, &s, &err), 99);
    assert_int_equal(s.n, 1);

    memset(&s, 0, sizeof s);
    must(registry_candidates(f->reg, "no-such-model", collect, &s, &err), &err,
         "registry_candidates");
    assert_int_equal(s.n, 0);
}

static void reregistering_keeps_the_inventory_rows_of_the_node(void **state)
{
    struct fixture *f = *state;
    set_store(f->reg, ID_A, &solo, 1);
    /* registry_register is an upsert: the node's row, and so its store
     * rows (foreign key), stay. */
    add_node(f->reg, ID_A, "beta", "tcp://10.0.0.9:7401");
    mlx_err err;
    mlx_err_clear(&err);
    struct seen s = {0};
    must(registry_candidates(f->reg, "solo", collect, &s, &err), &err,
         "registry_candidates");
    assert_int_equal(s.n, 1);
    assert_string_equal(s.addresses[0], "tcp://10.0.0.9:7401");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(store_lists_group_by_model_and_sort, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(store_list_is_replaced_wholesale, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(a_name_given_twice_keeps_its_last_entry, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(unknown_node_is_refused_and_leaves_nothing, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(
            loaded_counts_only_live_nodes_and_the_agents_engine, setup, teardown),
        cmocka_unit_test_setup_teardown(
            a_loaded_model_missing_from_the_store_is_still_listed, setup, teardown),
        cmocka_unit_test_setup_teardown(candidates_come_in_order_of_preference, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(candidates_stop_at_the_callbacks_value, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(
            reregistering_keeps_the_inventory_rows_of_the_node, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
