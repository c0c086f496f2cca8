/*
 * models.c — the fleet's model inventory: which node stores which model
 * (node_models) and which it has loaded (node_loaded), and the views of it
 * for the admin API and the router.
 *
 * Both tables are replaced wholesale per node, in one transaction under the
 * registry's mutex, because agents report whole lists (proto/fleet.proto):
 * a delta protocol would need sequence numbers and recovery for lost
 * messages, and a node's list is at most MLX_MAX_NODE_MODELS rows.
 */
#include <string.h>

#include "common/db.h"
#include "common/json.h"
#include "coordinator/registry/internal.h"

/* The SQL meaning of "loaded" (registry.h): reported by the agent's own
 * engine, on a node that is up or suspect. */
#define LIVE_SQL "n.state IN ('up','suspect')"

/* Every (node, model) pair that is stored or loaded by "mlx", with what the
 * views need. ?1 filters on the model name when bound, else all. */
#define PAIRS_SQL                                                                        \
    "WITH m AS (SELECT node_id, name FROM node_models"                                   \
    "           UNION SELECT node_id, name FROM node_loaded WHERE engine = 'mlx')"       \
    " SELECT m.name, n.id, n.name, n.state, n.address,"                                  \
    "   s.format, s.size_bytes, s.digest, s.node_id IS NOT NULL,"                        \
    "   (l.node_id IS NOT NULL AND " LIVE_SQL ") AS loaded,"                                         \
    "   IFNULL(l.tokens_per_s, 0), IFNULL(l.memory_bytes, 0),"                           \
    "   n.requests_running, n.requests_queued,"                                          \
    "   s.architecture, s.parameters, s.quantization"                                    \
    " FROM m JOIN nodes n ON n.id = m.node_id"                                           \
    " LEFT JOIN node_models s ON s.node_id = m.node_id AND s.name = m.name"              \
    " LEFT JOIN node_loaded l ON l.node_id = m.node_id AND l.name = m.name"              \
    "   AND l.engine = 'mlx'"

enum pair_col {
    COL_MODEL,
    COL_NODE_ID,
    COL_NODE_NAME,
    COL_STATE,
    COL_ADDRESS,
    COL_FORMAT,
    COL_SIZE,
    COL_DIGEST,
    COL_STORED,
    COL_LOADED,
    COL_TOKENS,
    COL_MEMORY,
    COL_RUNNING,
    COL_QUEUED,
    COL_ARCH,
    COL_PARAMS,
    COL_QUANT,
};

static const char *text(sqlite3_stmt *st, int col)
{
    const char *t = (const char *)sqlite3_column_text(st, col);
    return t != NULL ? t : "";
}

static const char *nz(const char *s)
{
    return s != NULL ? s : "";
}

/* Checks that id has a row; MLX_ENOENT otherwise. */
static int node_exists(registry *r, const char *id, mlx_err *err)
{
    sqlite3_stmt *st;
    int rc = mlx_db_prepare(r->db, "SELECT 1 FROM nodes WHERE id = ?1", &st, err);
    if (rc != 0)
        return rc;
    sqlite3_bind_text(st, 1, id, -1, SQLITE_STATIC);
    int step = sqlite3_step(st);
    if (step == SQLITE_DONE)
        rc = mlx_err_set(err, MLX_ENOENT, "node %s is not in the registry", id);
    else if (step != SQLITE_ROW)
        rc = mlx_db_fail(r->db, step, err, "looking up a node");
    sqlite3_finalize(st);
    return rc;
}

/* Ends the transaction: COMMIT after success, ROLLBACK after a failure (whose
 * sentence it keeps). */
static int finish(registry *r, int rc, mlx_err *err)
{
    if (rc == 0)
        return mlx_db_exec(r->db, "COMMIT", err);
    mlx_db_exec(r->db, "ROLLBACK", NULL);
    return rc;
}

int registry_set_store(registry *r, const char *id, const registry_stored *models,
                       size_t n, mlx_err *err)
{
    pthread_mutex_lock(&r->write_mtx);
    int rc = mlx_db_exec(r->db, "BEGIN IMMEDIATE", err);
    if (rc != 0)
        goto out;
    sqlite3_stmt *st = NULL;
    rc = node_exists(r, id, err);
    if (rc == 0)
        rc = mlx_db_prepare(r->db, "DELETE FROM node_models WHERE node_id = ?1", &st,
                            err);
    if (rc == 0) {
        sqlite3_bind_text(st, 1, id, -1, SQLITE_STATIC);
        rc = registry_run(r, st, NULL, err, "replacing a node's store list");
    }
    for (size_t i = 0; rc == 0 && i < n; i++) {
        const registry_stored *m = &models[i];
        rc = mlx_db_prepare(r->db,
                            "INSERT OR REPLACE INTO node_models (node_id, name, format,"
                            " size_bytes, digest, architecture, parameters, quantization)"
                            " VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
                            &st, err);
        if (rc != 0)
            break;
        sqlite3_bind_text(st, 1, id, -1, SQLITE_STATIC);
        sqlite3_bind_text(st, 2, nz(m->name), -1, SQLITE_STATIC);
        sqlite3_bind_text(st, 3, nz(m->format), -1, SQLITE_STATIC);
        /* SQLite integers are signed; no store is 2^63 bytes. */
        sqlite3_bind_int64(st, 4,
                           m->size_bytes > INT64_MAX ? INT64_MAX : (int64_t)m->size_bytes);
        sqlite3_bind_text(st, 5, nz(m->digest), -1, SQLITE_STATIC);
        sqlite3_bind_text(st, 6, nz(m->architecture), -1, SQLITE_STATIC);
        sqlite3_bind_text(st, 7, nz(m->parameters), -1, SQLITE_STATIC);
        sqlite3_bind_text(st, 8, nz(m->quantization), -1, SQLITE_STATIC);
        rc = registry_run(r, st, NULL, err, "recording a node's store list");
    }
    rc = finish(r, rc, err);
out:
    pthread_mutex_unlock(&r->write_mtx);
    return rc;
}

int registry_set_loaded(registry *r, const char *id, const registry_loaded *models,
                        size_t n, uint32_t requests_running, uint32_t requests_queued,
                        mlx_err *err)
{
    pthread_mutex_lock(&r->write_mtx);
    int rc = mlx_db_exec(r->db, "BEGIN IMMEDIATE", err);
    if (rc != 0)
        goto out;
    sqlite3_stmt *st = NULL;
    int changes = 0;
    rc = mlx_db_prepare(r->db,
                        "UPDATE nodes SET requests_running = ?2, requests_queued = ?3"
                        " WHERE id = ?1",
                        &st, err);
    if (rc == 0) {
        sqlite3_bind_text(st, 1, id, -1, SQLITE_STATIC);
        sqlite3_bind_int64(st, 2, requests_running);
        sqlite3_bind_int64(st, 3, requests_queued);
        rc = registry_run(r, st, &changes, err, "recording a node's load");
    }
    if (rc == 0 && changes == 0)
        rc = mlx_err_set(err, MLX_ENOENT, "node %s is not in the registry", id);
    if (rc == 0)
        rc = mlx_db_prepare(r->db, "DELETE FROM node_loaded WHERE node_id = ?1", &st,
                            err);
    if (rc == 0) {
        sqlite3_bind_text(st, 1, id, -1, SQLITE_STATIC);
        rc = registry_run(r, st, NULL, err, "replacing a node's loaded models");
    }
    for (size_t i = 0; rc == 0 && i < n; i++) {
        const registry_loaded *m = &models[i];
        rc = mlx_db_prepare(r->db,
                            "INSERT OR REPLACE INTO node_loaded (node_id, name, engine,"
                            " memory_bytes, tokens_per_s) VALUES (?1, ?2, ?3, ?4, ?5)",
                            &st, err);
        if (rc != 0)
            break;
        sqlite3_bind_text(st, 1, id, -1, SQLITE_STATIC);
        sqlite3_bind_text(st, 2, nz(m->name), -1, SQLITE_STATIC);
        sqlite3_bind_text(st, 3, nz(m->engine), -1, SQLITE_STATIC);
        sqlite3_bind_int64(st, 4,
                           m->memory_bytes > INT64_MAX ? INT64_MAX
                                                       : (int64_t)m->memory_bytes);
        /* NaN would be stored as NULL and break NOT NULL; a peer's garbage
         * becomes 0. */
        sqlite3_bind_double(st, 5, m->tokens_per_s == m->tokens_per_s ? m->tokens_per_s
                                                                      : 0.0);
        rc = registry_run(r, st, NULL, err, "recording a node's loaded models");
    }
    rc = finish(r, rc, err);
out:
    pthread_mutex_unlock(&r->write_mtx);
    return rc;
}

/* Appends o to list; false (and o freed) when either is missing or the
 * append fails. */
static bool append(json_t *list, json_t *o)
{
    if (list == NULL || o == NULL) {
        json_decref(o);
        return false;
    }
    return json_array_append_new(list, o) == 0;
}

int registry_models_json(registry *r, json_t **out, mlx_err *err)
{
    sqlite3_stmt *st;
    pthread_mutex_lock(&r->write_mtx);
    int rc = mlx_db_prepare(r->db, PAIRS_SQL " ORDER BY m.name, n.name, n.id", &st, err);
    if (rc != 0) {
        pthread_mutex_unlock(&r->write_mtx);
        return rc;
    }
    json_t *models = json_array();
    json_t *model = NULL; /* the current model's object, borrowed from models */
    bool ok = models != NULL;
    int step;
    while (ok && (step = sqlite3_step(st)) == SQLITE_ROW) {
        const char *name = text(st, COL_MODEL);
        bool stored = sqlite3_column_int(st, COL_STORED) != 0;
        if (model == NULL ||
            strcmp(json_string_value(json_object_get(model, "name")), name) != 0) {
            model = json_pack("{s:s, s:s, s:I, s:s, s:s, s:s, s:s, s:[]}", "name", name,
                              "format", "", "size_bytes", (json_int_t)0, "digest", "",
                              "architecture", "", "parameters", "", "quantization", "",
                              "nodes");
            ok = append(models, model);
            if (!ok)
                break;
        }
        /* The first node that stores it describes it. */
        if (stored && strcmp(json_string_value(json_object_get(model, "format")), "") == 0)
            ok = json_object_set_new(model, "format",
                                     json_string(text(st, COL_FORMAT))) == 0 &&
                 json_object_set_new(model, "size_bytes",
                                     json_integer(sqlite3_column_int64(st, COL_SIZE))) ==
                     0 &&
                 json_object_set_new(model, "digest", json_string(text(st, COL_DIGEST))) ==
                     0 &&
                 json_object_set_new(model, "architecture",
                                     json_string(text(st, COL_ARCH))) == 0 &&
                 json_object_set_new(model, "parameters",
                                     json_string(text(st, COL_PARAMS))) == 0 &&
                 json_object_set_new(model, "quantization",
                                     json_string(text(st, COL_QUANT))) == 0;
        json_t *node = json_pack(
            "{s:s, s:s, s:s, s:b, s:b, s:f, s:I}", "id", text(st, COL_NODE_ID), "name",
            text(st, COL_NODE_NAME), "state", text(st, COL_STATE), "stored", stored,
            "loaded", sqlite3_column_int(st, COL_LOADED) != 0, "tokens_per_s",
            sqlite3_column_double(st, COL_TOKENS), "memory_bytes",
            (json_int_t)sqlite3_column_int64(st, COL_MEMORY));
        ok = ok && append(json_object_get(model, "nodes"), node);
    }
    if (!ok)
        rc = mlx_err_set(err, MLX_ENOMEM, "out of memory listing models");
    else if (step != SQLITE_DONE)
        rc = mlx_db_fail(r->db, step, err, "listing models");
    sqlite3_finalize(st);
    pthread_mutex_unlock(&r->write_mtx);
    if (rc == 0 && (*out = json_pack("{s:o}", "models", models)) == NULL)
        rc = mlx_err_set(err, MLX_ENOMEM, "out of memory");
    else if (rc != 0)
        json_decref(models);
    return rc;
}

int registry_ps_json(registry *r, json_t **out, mlx_err *err)
{
    sqlite3_stmt *st;
    pthread_mutex_lock(&r->write_mtx);
    int rc = mlx_db_prepare(r->db,
                            "SELECT n.id, n.name, n.state, l.name, l.engine,"
                            " l.memory_bytes, l.tokens_per_s"
                            " FROM node_loaded l JOIN nodes n ON n.id = l.node_id"
                            " WHERE " LIVE_SQL
                            " ORDER BY n.name, n.id, l.name, l.engine",
                            &st, err);
    if (rc != 0) {
        pthread_mutex_unlock(&r->write_mtx);
        return rc;
    }
    json_t *nodes = json_array();
    json_t *node = NULL; /* borrowed from nodes */
    bool ok = nodes != NULL;
    int step;
    while (ok && (step = sqlite3_step(st)) == SQLITE_ROW) {
        const char *id = text(st, 0);
        if (node == NULL || strcmp(json_string_value(json_object_get(node, "id")), id) != 0) {
            node = json_pack("{s:s, s:s, s:s, s:[]}", "id", id, "name", text(st, 1),
                             "state", text(st, 2), "models");
            if (!(ok = append(nodes, node)))
                break;
        }
        ok = append(json_object_get(node, "models"),
                    json_pack("{s:s, s:s, s:I, s:f}", "name", text(st, 3), "engine",
                              text(st, 4), "memory_bytes",
                              (json_int_t)sqlite3_column_int64(st, 5), "tokens_per_s",
                              sqlite3_column_double(st, 6)));
    }
    if (!ok)
        rc = mlx_err_set(err, MLX_ENOMEM, "out of memory listing loaded models");
    else if (step != SQLITE_DONE)
        rc = mlx_db_fail(r->db, step, err, "listing loaded models");
    sqlite3_finalize(st);
    pthread_mutex_unlock(&r->write_mtx);
    if (rc == 0 && (*out = json_pack("{s:o}", "nodes", nodes)) == NULL)
        rc = mlx_err_set(err, MLX_ENOMEM, "out of memory");
    else if (rc != 0)
        json_decref(nodes);
    return rc;
}

static uint32_t u32_column(sqlite3_stmt *st, int col)
{
    sqlite3_int64 v = sqlite3_column_int64(st, col);
    return v < 0 ? 0 : v > UINT32_MAX ? UINT32_MAX : (uint32_t)v;
}

int registry_candidates(registry *r, const char *model, registry_candidate_fn fn,
                        void *arg, mlx_err *err)
{
    int rc = 0;
    pthread_mutex_lock(&r->write_mtx);
    if (r->candidates == NULL)
        rc = mlx_db_prepare(
            r->db,
            PAIRS_SQL " WHERE m.name = ?1"
                      " ORDER BY CASE n.state WHEN 'up' THEN 0 WHEN 'suspect' THEN 1"
                      " ELSE 2 END, loaded DESC, n.requests_running + n.requests_queued, n.id",
            &r->candidates, err);
    if (rc != 0) {
        pthread_mutex_unlock(&r->write_mtx);
        return rc;
    }
    sqlite3_stmt *st = r->candidates;
    sqlite3_bind_text(st, 1, model, -1, SQLITE_STATIC);
    int step = SQLITE_DONE;
    while (rc == 0 && (step = sqlite3_step(st)) == SQLITE_ROW) {
        bool loaded = sqlite3_column_int(st, COL_LOADED) != 0;
        registry_candidate c = {
            .node_id = text(st, COL_NODE_ID),
            .node_name = text(st, COL_NODE_NAME),
            .address = text(st, COL_ADDRESS),
            .state = text(st, COL_STATE),
            .loaded = loaded,
            .stored = sqlite3_column_int(st, COL_STORED) != 0,
            .tokens_per_s = loaded ? sqlite3_column_double(st, COL_TOKENS) : 0.0,
            .requests_running = u32_column(st, COL_RUNNING),
            .requests_queued = u32_column(st, COL_QUEUED),
        };
        rc = fn(arg, &c);
    }
    if (rc == 0 && step != SQLITE_DONE)
        rc = mlx_db_fail(r->db, step, err, "finding the nodes of a model");
    sqlite3_reset(st);
    sqlite3_clear_bindings(st);
    pthread_mutex_unlock(&r->write_mtx);
    return rc;
}
