/* registry.c — the database, its migrations and the nodes table. The
 * model inventory is in models.c. */
#include "coordinator/registry/registry.h"

#include <sqlite3.h>
#include <string.h>

#include "common/alloc.h"
#include "common/clock.h"
#include "common/db.h"
#include "common/json.h"
#include "coordinator/registry/internal.h"

static const char *const migrations[] = {
    /* 1: nodes */
    "CREATE TABLE nodes ("
    "  id            TEXT PRIMARY KEY,"
    "  name          TEXT NOT NULL,"
    "  address       TEXT NOT NULL,"
    "  http          TEXT NOT NULL,"
    "  version       TEXT NOT NULL,"
    "  state         TEXT NOT NULL CHECK (state IN ('up','suspect','down','left')),"
    "  heartbeat_ms  INTEGER NOT NULL,"
    "  registered_ms INTEGER NOT NULL,"
    "  last_seen_ms  INTEGER NOT NULL,"
    "  hardware      TEXT NOT NULL,"
    "  metrics       TEXT"
    ");",
    /* 2: the model inventory (models.c) and each node's request load */
    "CREATE TABLE node_models ("
    "  node_id       TEXT NOT NULL REFERENCES nodes(id) ON DELETE CASCADE,"
    "  name          TEXT NOT NULL,"
    "  format        TEXT NOT NULL,"
    "  size_bytes    INTEGER NOT NULL,"
    "  digest        TEXT NOT NULL,"
    "  architecture  TEXT NOT NULL,"
    "  parameters    TEXT NOT NULL,"
    "  quantization  TEXT NOT NULL,"
    "  PRIMARY KEY (node_id, name)"
    ");"
    "CREATE INDEX node_models_name ON node_models(name);"
    "CREATE TABLE node_loaded ("
    "  node_id       TEXT NOT NULL REFERENCES nodes(id) ON DELETE CASCADE,"
    "  name          TEXT NOT NULL,"
    "  engine        TEXT NOT NULL,"
    "  memory_bytes  INTEGER NOT NULL,"
    "  tokens_per_s  REAL NOT NULL,"
    "  PRIMARY KEY (node_id, name, engine)"
    ");"
    "CREATE INDEX node_loaded_name ON node_loaded(name);"
    "ALTER TABLE nodes ADD COLUMN requests_running INTEGER NOT NULL DEFAULT 0;"
    "ALTER TABLE nodes ADD COLUMN requests_queued INTEGER NOT NULL DEFAULT 0;",
};

int registry_open(const char *path, registry **out, mlx_err *err)
{
    registry *r = mlx_calloc(1, sizeof *r);
    if (r == NULL)
        return mlx_err_set(err, MLX_ENOMEM, "out of memory");
    if (pthread_mutex_init(&r->write_mtx, NULL) != 0) {
        mlx_free(r);
        return mlx_err_set(err, MLX_ENOMEM, "cannot create the registry's lock");
    }
    int rc = mlx_db_open(path, migrations, sizeof migrations / sizeof migrations[0],
                         &r->db, err);
    if (rc != 0) {
        pthread_mutex_destroy(&r->write_mtx);
        mlx_free(r);
        return rc;
    }
    *out = r;
    return 0;
}

void registry_close(registry *r)
{
    if (r == NULL)
        return;
    sqlite3_finalize(r->candidates);
    mlx_db_close(r->db);
    pthread_mutex_destroy(&r->write_mtx);
    mlx_free(r);
}

int registry_run(registry *r, sqlite3_stmt *st, int *changes, mlx_err *err,
               const char *what)
{
    int step = sqlite3_step(st);
    int rc = step == SQLITE_DONE ? 0 : mlx_db_fail(r->db, step, err, what);
    if (changes != NULL)
        *changes = sqlite3_changes(r->db);
    sqlite3_finalize(st);
    return rc;
}

int registry_register(registry *r, const registry_node *n, int64_t now_unix_ms,
                      mlx_err *err)
{
    sqlite3_stmt *st;
    int rc = mlx_db_prepare(
        r->db,
        "INSERT INTO nodes (id, name, address, http, version, state, heartbeat_ms,"
        "                   registered_ms, last_seen_ms, hardware, metrics)"
        " VALUES (?1, ?2, ?3, ?4, ?5, 'up', ?6, ?7, ?7, ?8, NULL)"
        " ON CONFLICT(id) DO UPDATE SET name = ?2, address = ?3, http = ?4, version = ?5,"
        "   state = 'up', heartbeat_ms = ?6, registered_ms = ?7, last_seen_ms = ?7,"
        "   hardware = ?8",
        &st, err);
    if (rc != 0)
        return rc;
    sqlite3_bind_text(st, 1, n->id, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, n->name, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 3, n->address, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 4, n->http, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 5, n->version, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 6, n->heartbeat_ms);
    sqlite3_bind_int64(st, 7, now_unix_ms);
    sqlite3_bind_text(st, 8, n->hardware_json, -1, SQLITE_STATIC);
    return registry_run(r, st, NULL, err, "recording a registration");
}

int registry_heartbeat(registry *r, const char *id, const char *metrics_json,
                       int64_t now_unix_ms, mlx_err *err)
{
    sqlite3_stmt *st;
    int rc = mlx_db_prepare(
        r->db,
        "UPDATE nodes SET last_seen_ms = ?2, metrics = ?3, state = 'up' WHERE id = ?1",
        &st, err);
    if (rc != 0)
        return rc;
    sqlite3_bind_text(st, 1, id, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 2, now_unix_ms);
    sqlite3_bind_text(st, 3, metrics_json, -1, SQLITE_STATIC);
    int changes = 0;
    rc = registry_run(r, st, &changes, err, "recording a heartbeat");
    if (rc == 0 && changes == 0)
        rc = mlx_err_set(err, MLX_ENOENT, "node %s is not in the registry", id);
    return rc;
}

int registry_set_state(registry *r, const char *id, const char *state, mlx_err *err)
{
    sqlite3_stmt *st;
    int rc = mlx_db_prepare(r->db, "UPDATE nodes SET state = ?2 WHERE id = ?1", &st, err);
    if (rc != 0)
        return rc;
    sqlite3_bind_text(st, 1, id, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, state, -1, SQLITE_STATIC);
    int changes = 0;
    rc = registry_run(r, st, &changes, err, "recording a node state");
    if (rc == 0 && changes == 0)
        rc = mlx_err_set(err, MLX_ENOENT, "node %s is not in the registry", id);
    return rc;
}

int registry_each(registry *r, registry_each_fn fn, void *arg, mlx_err *err)
{
    sqlite3_stmt *st;
    int rc = mlx_db_prepare(r->db, "SELECT id, state, heartbeat_ms FROM nodes", &st, err);
    if (rc != 0)
        return rc;
    int step;
    while (rc == 0 && (step = sqlite3_step(st)) == SQLITE_ROW) {
        rc = fn(arg, (const char *)sqlite3_column_text(st, 0),
                (const char *)sqlite3_column_text(st, 1), sqlite3_column_int64(st, 2));
    }
    if (rc == 0 && step != SQLITE_DONE)
        rc = mlx_db_fail(r->db, step, err, "reading the node registry");
    sqlite3_finalize(st);
    return rc;
}

/* A JSON column as a value; null when empty or unreadable. */
static json_t *json_column(sqlite3_stmt *st, int col)
{
    const char *text = (const char *)sqlite3_column_text(st, col);
    json_t *v = NULL;
    if (text == NULL || mlx_json_parse(text, strlen(text), &v, NULL) != 0)
        return json_null();
    return v;
}

int registry_nodes_json(registry *r, json_t **out, mlx_err *err)
{
    sqlite3_stmt *st;
    int rc =
        mlx_db_prepare(r->db,
                       "SELECT id, name, address, http, version, state, heartbeat_ms,"
                       " registered_ms, last_seen_ms, hardware, metrics,"
                       " requests_running, requests_queued"
                       " FROM nodes ORDER BY name, id",
                       &st, err);
    if (rc != 0)
        return rc;
    json_t *nodes = json_array();
    int step;
    while (nodes != NULL && (step = sqlite3_step(st)) == SQLITE_ROW) {
        char registered[32], seen[32];
        mlx_time_format_rfc3339(sqlite3_column_int64(st, 7), registered,
                                sizeof registered);
        mlx_time_format_rfc3339(sqlite3_column_int64(st, 8), seen, sizeof seen);
        json_t *node = json_pack(
            "{s:s, s:s, s:s, s:s, s:s, s:s, s:I, s:s, s:I, s:s, s:I, s:o, s:o,"
            " s:{s:I, s:I}}",
            "id",
            sqlite3_column_text(st, 0), "name", sqlite3_column_text(st, 1), "address",
            sqlite3_column_text(st, 2), "http", sqlite3_column_text(st, 3), "version",
            sqlite3_column_text(st, 4), "state", sqlite3_column_text(st, 5),
            "heartbeat_ms", (json_int_t)sqlite3_column_int64(st, 6), "registered_at",
            registered, "registered_at_unix_ms", (json_int_t)sqlite3_column_int64(st, 7),
            "last_seen", seen, "last_seen_unix_ms",
            (json_int_t)sqlite3_column_int64(st, 8), "hardware", json_column(st, 9),
            "metrics", json_column(st, 10), "load", "requests_running",
            (json_int_t)sqlite3_column_int64(st, 11), "requests_queued",
            (json_int_t)sqlite3_column_int64(st, 12));
        if (node == NULL || json_array_append_new(nodes, node) != 0) {
            json_decref(nodes);
            nodes = NULL;
        }
    }
    if (nodes == NULL)
        rc = mlx_err_set(err, MLX_ENOMEM, "out of memory listing nodes");
    else if (step != SQLITE_DONE)
        rc = mlx_db_fail(r->db, step, err, "listing nodes");
    sqlite3_finalize(st);
    if (rc != 0) {
        json_decref(nodes);
        return rc;
    }
    *out = json_pack("{s:o}", "nodes", nodes);
    return *out != NULL ? 0 : mlx_err_set(err, MLX_ENOMEM, "out of memory");
}
