/*
 * doctor.c — what could stop the store from working, each with what to do.
 *
 * Read-only: doctor reports and never repairs, so it is safe to run at any
 * time, also beside a running pull. Each check yields one finding per
 * problem, or one "ok" finding when it found none, so the report always
 * shows what was looked at.
 */
#include <dirent.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include "agent/cache/internal.h"
#include "common/alloc.h"
#include "common/clock.h"
#include "common/db.h"

/* Free space below these is a warning, below the last an error. */
#define FREE_WARN_BYTES  (UINT64_C(10) << 30)
#define FREE_WARN_PERMIL 50 /* 5 % */
#define FREE_ERROR_BYTES (UINT64_C(1) << 30)

static int add(doctor_report *r, doctor_level level, const char *check, const char *fix,
               const char *fmt, ...) __attribute__((format(printf, 5, 6)));

static int add(doctor_report *r, doctor_level level, const char *check, const char *fix,
               const char *fmt, ...)
{
    doctor_finding *grown = mlx_realloc(r->items, (r->n + 1) * sizeof *grown);
    if (grown == NULL)
        return MLX_ENOMEM;
    r->items = grown;
    doctor_finding *f = &r->items[r->n];
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    f->level = level;
    f->check = check;
    f->message = mlx_strdup(msg);
    f->fix = fix != NULL ? mlx_strdup(fix) : NULL;
    if (f->message == NULL || (fix != NULL && f->fix == NULL)) {
        mlx_free(f->message);
        mlx_free(f->fix);
        return MLX_ENOMEM;
    }
    r->n++;
    return 0;
}

void cache_doctor_report_free(doctor_report *r)
{
    for (size_t i = 0; i < r->n; i++) {
        mlx_free(r->items[i].message);
        mlx_free(r->items[i].fix);
    }
    mlx_free(r->items);
    memset(r, 0, sizeof *r);
}

const char *cache_doctor_level_name(doctor_level l)
{
    static const char *const names[] = {"ok", "warn", "error"};
    return names[l];
}

static int check_dir(doctor_report *r, const char *dir, bool *ok)
{
    struct stat st;
    if (stat(dir, &st) != 0 || !S_ISDIR(st.st_mode)) {
        *ok = false;
        return add(r, DOCTOR_ERROR, "permissions", "check the --data directory",
                   "%s is missing or not a directory", dir);
    }
    if (access(dir, R_OK | W_OK | X_OK) != 0) {
        *ok = false;
        return add(r, DOCTOR_ERROR, "permissions",
                   "give the user running mlx-agent read and write access to it",
                   "%s cannot be written: %s", dir, strerror(errno));
    }
    if (st.st_mode & S_IWOTH) {
        *ok = false;
        return add(r, DOCTOR_WARN, "permissions", "chmod o-w on it",
                   "%s is writable by every user, who could replace models", dir);
    }
    if (st.st_uid != geteuid()) {
        *ok = false;
        return add(r, DOCTOR_WARN, "permissions",
                   "run mlx-agent as the directory's owner, or chown it",
                   "%s belongs to uid %ld, not to this user (uid %ld)", dir,
                   (long)st.st_uid, (long)geteuid());
    }
    return 0;
}

static int check_permissions(store *s, doctor_report *r)
{
    bool ok = true;
    const char *dirs[] = {s->data_dir, s->blob_dir, s->tmp_dir};
    int rc = 0;
    for (size_t i = 0; rc == 0 && i < sizeof dirs / sizeof dirs[0]; i++)
        rc = check_dir(r, dirs[i], &ok);
    if (rc == 0 && ok)
        rc = add(r, DOCTOR_OK, "permissions", NULL, "%s is readable and writable",
                 s->data_dir);
    return rc;
}

static int check_database(store *s, doctor_report *r)
{
    sqlite3_stmt *st;
    if (mlx_db_prepare(s->db, "PRAGMA quick_check", &st, NULL) != 0)
        return add(r, DOCTOR_ERROR, "database", "move agent.db aside and rescan",
                   "agent.db cannot be checked: %s", sqlite3_errmsg(s->db));
    const unsigned char *v =
        sqlite3_step(st) == SQLITE_ROW ? sqlite3_column_text(st, 0) : NULL;
    int rc =
        v != NULL && strcmp((const char *)v, "ok") == 0
            ? add(r, DOCTOR_OK, "database", NULL, "agent.db is consistent")
            : add(r, DOCTOR_ERROR, "database",
                  "move agent.db aside; scan and pull rebuild it",
                  "agent.db is damaged: %s", v != NULL ? (const char *)v : "no answer");
    sqlite3_finalize(st);
    return rc;
}

static int check_free_space(store *s, doctor_report *r)
{
    struct statvfs vfs;
    if (statvfs(s->data_dir, &vfs) != 0)
        return add(r, DOCTOR_WARN, "free space", NULL,
                   "cannot read the free space of %s: %s", s->data_dir, strerror(errno));
    uint64_t free_b = (uint64_t)vfs.f_bavail * vfs.f_frsize;
    uint64_t total = (uint64_t)vfs.f_blocks * vfs.f_frsize;
    char fb[32], tb[32];
    cache_format_bytes(free_b, fb, sizeof fb);
    cache_format_bytes(total, tb, sizeof tb);
    if (free_b < FREE_ERROR_BYTES)
        return add(r, DOCTOR_ERROR, "free space",
                   "free disk space; 'mlx-agent cache gc' helps",
                   "only %s of %s free under %s: pulls will fail", fb, tb, s->data_dir);
    if (free_b < FREE_WARN_BYTES || free_b * 1000 < total * FREE_WARN_PERMIL)
        return add(
            r, DOCTOR_WARN, "free space",
            "free disk space before pulling large models; 'mlx-agent cache gc' helps",
            "%s of %s free under %s", fb, tb, s->data_dir);
    return add(r, DOCTOR_OK, "free space", NULL, "%s of %s free", fb, tb);
}

static int check_partials(store *s, doctor_report *r, mlx_err *err)
{
    cache_usage u;
    int rc = cache_usage_read(s, &u, err);
    if (rc != 0)
        return rc;
    int64_t now = mlx_time_wall_ms();
    for (size_t i = 0; rc == 0 && i < u.n_partials; i++) {
        char sz[32];
        cache_format_bytes(u.partials[i].bytes, sz, sizeof sz);
        rc = add(r, DOCTOR_WARN, "partial downloads",
                 "run the same pull again to resume it; 'mlx-agent cache gc' removes "
                 "downloads untouched for a day",
                 "%s: %s downloaded, last written %lld h ago", u.partials[i].path, sz,
                 (long long)((now - u.partials[i].modified_unix_ms) / 3600000));
    }
    if (rc == 0 && u.n_partials == 0)
        rc = add(r, DOCTOR_OK, "partial downloads", NULL, "no download left unfinished");
    cache_usage_free(&u);
    return rc;
}

static int check_models(store *s, doctor_report *r, mlx_err *err)
{
    cache_model_list models;
    int rc = cache_list_models(s, NULL, &models, err);
    if (rc != 0)
        return rc;
    size_t bad = 0;
    for (size_t i = 0; rc == 0 && i < models.n; i++) {
        const cache_model *m = &models.items[i];
        bool in_place = cache_source_in_place(m->source);
        if (m->broken) {
            bad++;
            rc = add(r, DOCTOR_ERROR, "models",
                     in_place ? "download it again with the tool that keeps it"
                              : "pull it again, or 'mlx-agent cache rm' it",
                     "model '%s' is broken: verify found a corrupt file", m->name);
            continue;
        }
        for (size_t k = 0; rc == 0 && k < m->n_files; k++) {
            struct stat st;
            if (stat(m->files[k].location, &st) == 0)
                continue;
            bad++;
            rc = add(r, DOCTOR_ERROR, "models",
                     in_place ? "run 'mlx-agent cache scan' to forget what is gone"
                              : "pull it again, or 'mlx-agent cache rm' it",
                     "model '%s' is missing %s (%s)", m->name, m->files[k].location,
                     strerror(errno));
            break;
        }
    }
    if (rc == 0 && bad == 0)
        rc = add(r, DOCTOR_OK, "models", NULL, "all %zu models have their files",
                 models.n);
    cache_model_list_free(&models);
    return rc;
}

static int check_blobs(store *s, doctor_report *r)
{
    DIR *d = opendir(s->blob_dir);
    if (d == NULL)
        return 0;
    sqlite3_stmt *used;
    if (mlx_db_prepare(s->db,
                       "SELECT 1 FROM files f JOIN models m ON m.id = f.model_id WHERE "
                       "f.sha256 = ? AND m.source NOT IN ('hf-cache', 'ollama-cache', "
                       "'dir') LIMIT 1",
                       &used, NULL) != 0) {
        closedir(d);
        return 0;
    }
    int rc = 0;
    size_t orphans = 0, strays = 0;
    uint64_t orphan_bytes = 0;
    struct dirent *e;
    while (rc == 0 && (e = readdir(d)) != NULL) {
        char path[4096];
        struct stat st;
        if (e->d_name[0] == '.')
            continue;
        store_blob_path(s, e->d_name, path, sizeof path);
        if (!cache_is_digest(e->d_name)) {
            strays++;
            rc = add(r, DOCTOR_WARN, "blobs", "move it out of the store",
                     "%s is not a blob (its name is not a SHA-256 digest)", path);
            continue;
        }
        sqlite3_reset(used);
        sqlite3_bind_text(used, 1, e->d_name, -1, SQLITE_STATIC);
        if (sqlite3_step(used) != SQLITE_ROW && stat(path, &st) == 0) {
            orphans++;
            orphan_bytes += (uint64_t)st.st_size;
        }
    }
    sqlite3_finalize(used);
    closedir(d);
    char sz[32];
    cache_format_bytes(orphan_bytes, sz, sizeof sz);
    if (rc == 0 && orphans > 0)
        rc = add(r, DOCTOR_WARN, "blobs", "'mlx-agent cache gc' removes them",
                 "%zu blobs (%s) belong to no model", orphans, sz);
    if (rc == 0 && orphans == 0 && strays == 0)
        rc = add(r, DOCTOR_OK, "blobs", NULL, "every blob belongs to a model");
    return rc;
}

static int check_quarantine(store *s, doctor_report *r)
{
    DIR *d = opendir(s->quarantine_dir);
    size_t n = 0;
    if (d != NULL) {
        struct dirent *e;
        while ((e = readdir(d)) != NULL)
            n += e->d_name[0] != '.';
        closedir(d);
    }
    if (n == 0)
        return add(r, DOCTOR_OK, "quarantine", NULL, "no corrupt blob was ever found");
    return add(r, DOCTOR_WARN, "quarantine",
               "look at them if you wish, then delete them to free the space",
               "%zu corrupt blobs are kept in %s", n, s->quarantine_dir);
}

/* What a scan of the other tools' caches could not use: dangling or
 * escaping symlinks, manifests that do not parse, missing blobs. */
static int check_caches(const scan_roots *roots, doctor_report *r, mlx_err *err)
{
    scan_result found;
    int rc = cache_scan(roots, &found, err);
    if (rc != 0)
        return rc;
    for (size_t i = 0; rc == 0 && i < found.n_problems; i++)
        rc = add(r, DOCTOR_WARN, "caches",
                 "repair or delete it with the tool that made it; the store skips it",
                 "%s", found.problems[i]);
    if (rc == 0 && found.n_problems == 0)
        rc = add(r, DOCTOR_OK, "caches", NULL,
                 "the HuggingFace and Ollama caches read cleanly (%zu files)", found.n);
    cache_scan_free(&found);
    return rc;
}

int cache_doctor(store *s, const scan_roots *roots, doctor_report *out, mlx_err *err)
{
    memset(out, 0, sizeof *out);
    int rc = check_permissions(s, out);
    if (rc == 0)
        rc = check_database(s, out);
    if (rc == 0)
        rc = check_free_space(s, out);
    if (rc == 0)
        rc = check_partials(s, out, err);
    if (rc == 0)
        rc = check_models(s, out, err);
    if (rc == 0)
        rc = check_blobs(s, out);
    if (rc == 0)
        rc = check_quarantine(s, out);
    if (rc == 0)
        rc = check_caches(roots, out, err);
    if (rc == MLX_ENOMEM)
        mlx_err_set(err, rc, "out of memory");
    if (rc != 0)
        cache_doctor_report_free(out);
    return rc;
}
