/*
 * verify.c — reading every byte the store knows of again and checking it
 * against the digest it should have.
 *
 * What is checked, and against what:
 *   blobs/sha256/<hex>        its name
 *   files of scanned models   the digest recorded for them, else the one
 *                             their name claims (Ollama's sha256-<hex>, an HF
 *                             LFS blob named by its sha256); files that claim
 *                             none (HF's small git files) are hashed and the
 *                             digest recorded
 * A corrupt blob of the store is moved to <data>/quarantine/ (kept for a
 * person to look at, never used again) and its models are marked broken; a
 * corrupt file of another tool is only reported, and its model marked
 * broken, since the store never moves what it does not own. A model whose
 * files all check out is marked whole again.
 *
 * The digests computed here are remembered (hash.c), which is what lets a
 * later scan trust them: a name that looks like a digest is believed only
 * once verify or a hash has confirmed it.
 */
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "agent/cache/internal.h"
#include "common/alloc.h"
#include "common/clock.h"
#include "common/db.h"
#include "common/path.h"

/* The digest a file's own name claims: "sha256-<hex>" (Ollama) or "<hex>". */
static const char *claimed_by_name(const char *location)
{
    const char *base = strrchr(location, '/');
    base = base != NULL ? base + 1 : location;
    if (strncmp(base, "sha256-", 7) == 0)
        base += 7;
    return cache_is_digest(base) ? base : NULL;
}

static int add_problem(verify_report *r, verify_kind kind, const char *path,
                       const char *expected, const char *actual, const char *detail)
{
    verify_problem *grown = mlx_realloc(r->problems, (r->n_problems + 1) * sizeof *grown);
    if (grown == NULL)
        return MLX_ENOMEM;
    r->problems = grown;
    verify_problem *p = &r->problems[r->n_problems];
    memset(p, 0, sizeof *p);
    p->kind = kind;
    p->path = mlx_strdup(path);
    p->detail = mlx_strdup(detail != NULL ? detail : "");
    if (p->path == NULL || p->detail == NULL) {
        mlx_free(p->path);
        mlx_free(p->detail);
        return MLX_ENOMEM;
    }
    snprintf(p->expected, sizeof p->expected, "%s", expected != NULL ? expected : "");
    snprintf(p->actual, sizeof p->actual, "%s", actual != NULL ? actual : "");
    r->n_problems++;
    return 0;
}

void cache_verify_report_free(verify_report *r)
{
    for (size_t i = 0; i < r->n_problems; i++) {
        mlx_free(r->problems[i].path);
        mlx_free(r->problems[i].detail);
        mlx_free(r->problems[i].quarantined_to);
        mlx_free(r->problems[i].models);
    }
    mlx_free(r->problems);
    memset(r, 0, sizeof *r);
}

/* Every blob file of the store, whatever uses it, checked against its name. */
static int collect_blobs(store *s, scan_result *files, verify_report *r)
{
    DIR *d = opendir(s->blob_dir);
    if (d == NULL)
        return 0; /* a new store: nothing to check */
    int rc = 0;
    struct dirent *e;
    while (rc == 0 && (e = readdir(d)) != NULL) {
        char path[4096];
        struct stat st;
        if (e->d_name[0] == '.')
            continue;
        store_blob_path(s, e->d_name, path, sizeof path);
        if (!cache_is_digest(e->d_name) || stat(path, &st) != 0 || !S_ISREG(st.st_mode))
            rc = add_problem(r, VERIFY_STRAY, path, NULL, NULL,
                             "not a file named by the SHA-256 of its bytes");
        else
            rc = cache_scan_add(files, ORIGIN_STORE, "", e->d_name, path, e->d_name);
    }
    closedir(d);
    return rc;
}

/* Every file to check: the store's blobs, then the files of models scanned
 * in place. Files of any model that are gone are problems at once. */
static int collect(store *s, scan_result *files, verify_report *r, mlx_err *err)
{
    cache_model_list models;
    int rc = cache_list_models(s, NULL, &models, err);
    if (rc != 0)
        return rc;
    rc = collect_blobs(s, files, r);
    for (size_t i = 0; rc == 0 && i < models.n; i++) {
        const cache_model *m = &models.items[i];
        for (size_t k = 0; rc == 0 && k < m->n_files; k++) {
            const cache_model_file *f = &m->files[k];
            struct stat st;
            if (stat(f->location, &st) != 0)
                rc = add_problem(r, VERIFY_MISSING, f->location, f->sha256, NULL,
                                 strerror(errno));
            else if (cache_source_in_place(m->source))
                rc = cache_scan_add(files, ORIGIN_DIR, m->name, f->path, f->location,
                                    f->sha256[0] != '\0' ? f->sha256
                                                         : claimed_by_name(f->location));
        }
    }
    cache_model_list_free(&models);
    return rc != 0 ? mlx_err_set(err, MLX_ENOMEM, "out of memory") : 0;
}

/* Moves a corrupt blob out of the way; *to: where it went (caller frees). */
static int quarantine(store *s, const char *path, const char *hex, char **to,
                      mlx_err *err)
{
    int rc = mlx_path_mkdirs(s->quarantine_dir, 0700, err);
    if (rc != 0)
        return rc;
    char dest[4096];
    snprintf(dest, sizeof dest, "%s/%s.%lld", s->quarantine_dir, hex,
             (long long)mlx_time_wall_ms());
    if (rename(path, dest) != 0)
        return mlx_err_set(err, MLX_EIO, "cannot move %s to %s: %s", path, dest,
                           strerror(errno));
    *to = mlx_strdup(dest);
    return 0;
}

static int exec_bound(store *s, const char *sql, const char *a, const char *b,
                      mlx_err *err)
{
    sqlite3_stmt *st;
    int rc = mlx_db_prepare(s->db, sql, &st, err);
    if (rc != 0)
        return rc;
    sqlite3_bind_text(st, 1, a, -1, SQLITE_STATIC);
    if (b != NULL)
        sqlite3_bind_text(st, 2, b, -1, SQLITE_STATIC);
    int step = sqlite3_step(st);
    sqlite3_finalize(st);
    return step == SQLITE_DONE ? 0
                               : mlx_db_fail(s->db, step, err, "cannot record verify");
}

/* Marks broken the models with a file at the problem's path, and names
 * them in its models field. */
static int mark_broken(store *s, verify_problem *p, mlx_err *err)
{
    int rc = exec_bound(s,
                        "UPDATE models SET broken = 1 WHERE id IN (SELECT model_id FROM "
                        "files WHERE location = ?1)",
                        p->path, NULL, err);
    sqlite3_stmt *st;
    if (rc == 0 && (rc = mlx_db_prepare(s->db,
                                        "SELECT group_concat(m.name, ', ') FROM models m "
                                        "JOIN files f ON f.model_id = m.id WHERE "
                                        "f.location = ?1",
                                        &st, err)) == 0) {
        sqlite3_bind_text(st, 1, p->path, -1, SQLITE_STATIC);
        const unsigned char *names =
            sqlite3_step(st) == SQLITE_ROW ? sqlite3_column_text(st, 0) : NULL;
        p->models = mlx_strdup(names != NULL ? (const char *)names : "");
        sqlite3_finalize(st);
        if (p->models == NULL)
            rc = mlx_err_set(err, MLX_ENOMEM, "out of memory");
    }
    return rc;
}

/* Records what the hashing found, in one transaction. */
static int record(store *s, scan_result *files, verify_report *r, mlx_err *err)
{
    int rc = mlx_db_exec(s->db, "BEGIN IMMEDIATE; UPDATE models SET broken = 0", err);
    if (rc != 0)
        return rc;
    char now[32];
    snprintf(now, sizeof now, "%lld", (long long)mlx_time_wall_ms());
    for (size_t i = 0; rc == 0 && i < files->n; i++) {
        scan_file *f = &files->files[i];
        bool blob = f->origin == ORIGIN_STORE;
        r->checked_files++;
        r->checked_bytes += f->size;
        if (f->unreadable) {
            rc = add_problem(r, VERIFY_UNREADABLE, f->location, f->claimed, NULL,
                             f->error);
        } else if (f->claimed[0] != '\0' && strcmp(f->claimed, f->sha256) != 0) {
            rc = add_problem(r, VERIFY_CORRUPT, f->location, f->claimed, f->sha256, NULL);
            verify_problem *p = &r->problems[r->n_problems - 1];
            if (rc == 0 && blob)
                rc = quarantine(s, f->location, f->claimed, &p->quarantined_to, err);
            if (rc == 0 && blob)
                rc = exec_bound(s, "DELETE FROM blobs WHERE sha256 = ?", f->claimed, NULL,
                                err);
        } else if (blob) {
            rc = exec_bound(s, "UPDATE blobs SET verified_unix_ms = ?2 WHERE sha256 = ?1",
                            f->sha256, now, err);
        } else {
            rc = exec_bound(s,
                            "UPDATE files SET sha256 = ?1 WHERE location = ?2 AND "
                            "sha256 IS NULL",
                            f->sha256, f->location, err);
        }
    }
    for (size_t i = 0; rc == 0 && i < r->n_problems; i++)
        rc = mark_broken(s, &r->problems[i], err);
    if (rc == 0)
        return mlx_db_exec(s->db, "COMMIT", err);
    mlx_db_exec(s->db, "ROLLBACK", NULL);
    return rc;
}

int cache_verify(store *s, verify_report *out, mlx_err *err)
{
    memset(out, 0, sizeof *out);
    scan_result files = {0};
    int rc = collect(s, &files, out, err);
    bool *want = NULL;
    if (rc == 0 && (want = mlx_calloc(files.n > 0 ? files.n : 1, sizeof *want)) == NULL)
        rc = mlx_err_set(err, MLX_ENOMEM, "out of memory");
    for (size_t i = 0; rc == 0 && i < files.n; i++)
        want[i] = true;
    if (rc == 0)
        rc = cache_hash_files(s, files.files, want, files.n, HASH_REREAD, "verifying", err);
    if (rc == 0)
        rc = record(s, &files, out, err);
    mlx_free(want);
    cache_scan_free(&files);
    if (rc != 0)
        cache_verify_report_free(out);
    return rc == MLX_ENOMEM ? mlx_err_set(err, rc, "out of memory") : rc;
}
