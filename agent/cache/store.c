/* store.c — the content-addressed store: folders, blobs, models, names. */
#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "agent/cache/internal.h"
#include "common/alloc.h"
#include "common/clock.h"
#include "common/db.h"
#include "common/limits.h"
#include "common/path.h"

const char *cache_origin_name(cache_origin o)
{
    /* Not the pull sources ("hf", "ollama"): scans replace only their own. */
    static const char *const names[] = {"store", "hf-cache", "ollama-cache", "dir"};
    return names[o];
}

bool cache_is_digest(const char *hex)
{
    size_t n = 0;
    for (; hex[n] != '\0'; n++)
        if (!((hex[n] >= '0' && hex[n] <= '9') || (hex[n] >= 'a' && hex[n] <= 'f')))
            return false;
    return n == 64;
}

void cache_format_bytes(uint64_t n, char *out, size_t size)
{
    static const char *const units[] = {"B", "KiB", "MiB", "GiB", "TiB"};
    double v = (double)n;
    size_t u = 0;
    while (v >= 1024 && u + 1 < sizeof units / sizeof units[0]) {
        v /= 1024;
        u++;
    }
    if (u == 0)
        snprintf(out, size, "%llu B", (unsigned long long)n);
    else
        snprintf(out, size, "%.1f %s", v, units[u]);
}

int store_check_name(const char *name, mlx_err *err)
{
    size_t len = strlen(name);
    if (len == 0 || len > MLX_MAX_MODEL_NAME)
        return mlx_err_set(err, MLX_EINVAL,
                           "a model name has 1 to %d characters, not %zu",
                           MLX_MAX_MODEL_NAME, len);
    for (size_t i = 0; i < len; i++) {
        char c = name[i];
        bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
                  (c >= '0' && c <= '9') || strchr("._:/@+-", c) != NULL;
        if (!ok)
            return mlx_err_set(
                err, MLX_EINVAL,
                "model name '%s' has a '%c'; use letters, digits and . _ : / @ + -", name,
                c >= 0x20 && c < 0x7f ? c : '?');
    }
    if (name[0] == '/' || name[len - 1] == '/' || strstr(name, "//") != NULL)
        return mlx_err_set(err, MLX_EINVAL,
                           "model name '%s' has an empty path segment or starts with '/'",
                           name);
    for (const char *seg = name; seg != NULL; seg = strchr(seg, '/')) {
        if (*seg == '/')
            seg++;
        if (strncmp(seg, "..", 2) == 0 && (seg[2] == '/' || seg[2] == '\0'))
            return mlx_err_set(err, MLX_EINVAL, "model name '%s' has a '..' segment",
                               name);
        if (seg[0] == '.' && (seg[1] == '/' || seg[1] == '\0'))
            return mlx_err_set(err, MLX_EINVAL, "model name '%s' has a '.' segment",
                               name);
    }
    return 0;
}

static void store_free(store *s)
{
    if (s == NULL)
        return;
    for (size_t i = 0; i < STORE_MAX_STMTS; i++)
        sqlite3_finalize(s->stmts[i].st);
    mlx_db_close(s->db);
    if (s->hold_fd >= 0)
        close(s->hold_fd); /* releases the lock */
    mlx_free(s->data_dir);
    mlx_free(s->blob_dir);
    mlx_free(s->tmp_dir);
    mlx_free(s->quarantine_dir);
    mlx_free(s);
}

int store_open(const char *data_dir, store **out, mlx_err *err)
{
    *out = NULL;
    store *s = mlx_calloc(1, sizeof *s);
    if (s == NULL)
        return mlx_err_set(err, MLX_ENOMEM, "out of memory");
    s->hold_fd = -1;
    /* Locations recorded in agent.db are absolute, so the same store opened
     * as "./data" or "/home/me/data" finds the same blobs. */
    char real[PATH_MAX];
    int rc = mlx_path_mkdirs(data_dir, 0700, err);
    if (rc == 0 && realpath(data_dir, real) == NULL)
        rc =
            mlx_err_set(err, MLX_EIO, "cannot resolve %s: %s", data_dir, strerror(errno));
    char *db_path = NULL;
    if (rc == 0) {
        s->data_dir = mlx_strdup(real);
        char *blobs = mlx_path_join(real, "blobs");
        s->blob_dir = blobs != NULL ? mlx_path_join(blobs, "sha256") : NULL;
        mlx_free(blobs);
        s->tmp_dir = mlx_path_join(real, "tmp");
        s->quarantine_dir = mlx_path_join(real, "quarantine");
        db_path = mlx_path_join(real, "agent.db");
        if (s->data_dir == NULL || s->blob_dir == NULL || s->tmp_dir == NULL ||
            s->quarantine_dir == NULL || db_path == NULL)
            rc = mlx_err_set(err, MLX_ENOMEM, "out of memory");
    }
    if (rc == 0)
        rc = mlx_path_mkdirs(s->blob_dir, 0700, err);
    if (rc == 0)
        rc = mlx_path_mkdirs(s->tmp_dir, 0700, err);
    if (rc == 0)
        rc = mlx_db_open(db_path, cache_migrations, cache_n_migrations, &s->db, err);
    mlx_free(db_path);
    if (rc != 0) {
        store_free(s);
        return rc;
    }
    *out = s;
    return 0;
}

void store_close(store *s)
{
    store_free(s);
}

const char *store_tmp_dir(const store *s)
{
    return s->tmp_dir;
}

void store_blob_path(const store *s, const char *hex, char *out, size_t size)
{
    snprintf(out, size, "%s/%s", s->blob_dir, hex);
}

bool store_has_blob(const store *s, const char *hex)
{
    char path[4096];
    store_blob_path(s, hex, path, sizeof path);
    struct stat st;
    return cache_is_digest(hex) && stat(path, &st) == 0 && S_ISREG(st.st_mode);
}

int cache_stmt(store *s, const char *sql, sqlite3_stmt **out, mlx_err *err)
{
    size_t i = 0;
    for (; i < STORE_MAX_STMTS && s->stmts[i].sql != NULL; i++) {
        if (s->stmts[i].sql == sql) {
            sqlite3_reset(s->stmts[i].st);
            sqlite3_clear_bindings(s->stmts[i].st);
            *out = s->stmts[i].st;
            return 0;
        }
    }
    if (i == STORE_MAX_STMTS)
        return mlx_db_prepare(s->db, sql, out, err); /* never: the list is short */
    int rc = mlx_db_prepare(s->db, sql, &s->stmts[i].st, err);
    if (rc == 0) {
        s->stmts[i].sql = sql;
        *out = s->stmts[i].st;
    }
    return rc;
}

/* Takes <data>/store.lock in mode (LOCK_SH waits; LOCK_EX does not). */
static int hold(store *s, int mode, mlx_err *err)
{
    if (s->hold_fd >= 0 && s->hold_mode == mode)
        return 0;
    if (s->hold_fd < 0) {
        char *path = mlx_path_join(s->data_dir, "store.lock");
        if (path == NULL)
            return mlx_err_set(err, MLX_ENOMEM, "out of memory");
        s->hold_fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
        int e = errno;
        mlx_free(path);
        if (s->hold_fd < 0)
            return mlx_err_set(err, MLX_EIO,
                               "cannot open the store's lock file in %s: %s", s->data_dir,
                               strerror(e));
    }
    int flags = mode == LOCK_EX ? LOCK_EX | LOCK_NB : LOCK_SH;
    int rc;
    while ((rc = flock(s->hold_fd, flags)) != 0 && errno == EINTR)
        ;
    if (rc != 0)
        return mlx_err_set(err, MLX_EBUSY,
                           "a pull or an add is writing to the store in %s; run this "
                           "again when it has finished",
                           s->data_dir);
    s->hold_mode = mode;
    return 0;
}

int cache_hold_sweep(store *s, mlx_err *err)
{
    return hold(s, LOCK_EX, err);
}

static int fsync_path(const char *path, int flags)
{
    int fd = open(path, flags | O_CLOEXEC);
    if (fd < 0)
        return -1;
    int rc = fsync(fd);
    close(fd);
    return rc;
}

int store_put_blob(store *s, const char *tmp_path, const char *hex, uint64_t size,
                   mlx_err *err)
{
    if (!cache_is_digest(hex))
        return mlx_err_set(err, MLX_EINVAL, "'%s' is not a SHA-256 digest", hex);
    struct stat st;
    if (stat(tmp_path, &st) != 0)
        return mlx_err_set(err, MLX_EIO, "cannot read %s: %s", tmp_path, strerror(errno));
    if ((uint64_t)st.st_size != size)
        return mlx_err_set(err, MLX_ECORRUPT,
                           "%s has %lld bytes where %llu were expected", tmp_path,
                           (long long)st.st_size, (unsigned long long)size);
    int rc = s->hold_mode == LOCK_EX ? 0 : hold(s, LOCK_SH, err);
    if (rc != 0)
        return rc;
    char path[4096];
    store_blob_path(s, hex, path, sizeof path);
    if (store_has_blob(s, hex)) {
        unlink(tmp_path);
    } else {
        /* Read-only, since a blob never changes; data first, then the
         * name, so a crash never leaves a named blob whose bytes are not on
         * disk. */
        if (chmod(tmp_path, 0444) != 0 || fsync_path(tmp_path, O_RDONLY) != 0 ||
            rename(tmp_path, path) != 0)
            return mlx_err_set(err, MLX_EIO, "cannot move %s into the store: %s",
                               tmp_path, strerror(errno));
        fsync_path(s->blob_dir, O_RDONLY | O_DIRECTORY);
    }
    sqlite3_stmt *st_ins;
    rc = mlx_db_prepare(
        s->db,
        "INSERT INTO blobs (sha256, size, added_unix_ms, verified_unix_ms) "
        "VALUES (?1, ?2, ?3, ?3) ON CONFLICT(sha256) DO NOTHING",
        &st_ins, err);
    if (rc != 0)
        return rc;
    sqlite3_bind_text(st_ins, 1, hex, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st_ins, 2, (sqlite3_int64)size);
    sqlite3_bind_int64(st_ins, 3, mlx_time_wall_ms());
    int src = sqlite3_step(st_ins);
    sqlite3_finalize(st_ins);
    return src == SQLITE_DONE ? 0 : mlx_db_fail(s->db, src, err, "cannot record a blob");
}

static const char *source_name(store_source src)
{
    static const char *const names[] = {"local", "hf", "ollama", "url", "peer"};
    return names[src];
}

int cache_begin_model(store *s, const char *name, const char *source, const char *origin,
                      const char *format, uint64_t size, sqlite3_int64 *id, mlx_err *err)
{
    sqlite3_stmt *st;
    int rc = cache_stmt(
        s,
        "INSERT INTO models (name, source, origin, format, size, added_unix_ms, "
        "last_used_unix_ms) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?6) "
        "ON CONFLICT(name) DO UPDATE SET source = ?2, origin = ?3, format = ?4, "
        "size = ?5 RETURNING id",
        &st, err);
    if (rc != 0)
        return rc;
    sqlite3_bind_text(st, 1, name, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, source, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 3, origin, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 4, format, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 5, (sqlite3_int64)size);
    sqlite3_bind_int64(st, 6, mlx_time_wall_ms());
    int src = sqlite3_step(st);
    if (src == SQLITE_ROW)
        *id = sqlite3_column_int64(st, 0);
    sqlite3_reset(st); /* a statement left active would block COMMIT */
    if (src != SQLITE_ROW)
        return mlx_db_fail(s->db, src, err, "cannot record a model");
    if ((rc = cache_stmt(s, "DELETE FROM files WHERE model_id = ?", &st, err)) != 0)
        return rc;
    sqlite3_bind_int64(st, 1, *id);
    src = sqlite3_step(st);
    sqlite3_reset(st);
    return src == SQLITE_DONE ? 0 : mlx_db_fail(s->db, src, err, "cannot record a model");
}

int cache_insert_file(store *s, sqlite3_int64 model_id, const char *path, uint64_t size,
                      const char *sha256, const char *location, mlx_err *err)
{
    sqlite3_stmt *st;
    int rc = cache_stmt(s,
                        "INSERT OR REPLACE INTO files (model_id, path, size, sha256, "
                        "location) VALUES (?, ?, ?, ?, ?)",
                        &st, err);
    if (rc != 0)
        return rc;
    sqlite3_bind_int64(st, 1, model_id);
    sqlite3_bind_text(st, 2, path, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 3, (sqlite3_int64)size);
    if (sha256 != NULL && sha256[0] != '\0')
        sqlite3_bind_text(st, 4, sha256, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 5, location, -1, SQLITE_STATIC);
    int src = sqlite3_step(st);
    sqlite3_reset(st);
    return src == SQLITE_DONE ? 0 : mlx_db_fail(s->db, src, err, "cannot record a file");
}

int store_add_model(store *s, const store_model *m, mlx_err *err)
{
    int rc = store_check_name(m->name, err);
    if (rc != 0)
        return rc;
    uint64_t size = 0;
    for (size_t i = 0; i < m->n_files; i++) {
        if ((rc = store_check_name(m->files[i].path, err)) != 0)
            return mlx_err_prefix(err, rc, "file of model '%s'", m->name);
        if (!store_has_blob(s, m->files[i].sha256))
            return mlx_err_set(err, MLX_ENOENT,
                               "blob sha256:%s of '%s' is not in the store",
                               m->files[i].sha256, m->files[i].path);
        size += m->files[i].size;
    }
    if ((rc = mlx_db_exec(s->db, "BEGIN IMMEDIATE", err)) != 0)
        return rc;
    sqlite3_int64 id = 0;
    rc = cache_begin_model(s, m->name, source_name(m->source), m->origin, m->format, size,
                           &id, err);
    if (rc == 0) { /* new bytes, all verified while they were written */
        char sql[80];
        snprintf(sql, sizeof sql, "UPDATE models SET broken = 0 WHERE id = %lld",
                 (long long)id);
        rc = mlx_db_exec(s->db, sql, err);
    }
    for (size_t i = 0; rc == 0 && i < m->n_files; i++) {
        char location[4096];
        store_blob_path(s, m->files[i].sha256, location, sizeof location);
        rc = cache_insert_file(s, id, m->files[i].path, m->files[i].size,
                               m->files[i].sha256, location, err);
    }
    if (rc == 0)
        return mlx_db_exec(s->db, "COMMIT", err);
    mlx_db_exec(s->db, "ROLLBACK", NULL);
    return rc;
}
