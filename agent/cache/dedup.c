/*
 * dedup.c — giving back the disk that duplicate copies take.
 *
 * A duplicate set is files with the same SHA-256 on different inodes of
 * one file system. One inode is kept (the one with the most links); every
 * other path is made to share its bytes: a clone (FICLONE / clonefile)
 * where the file system can, else a hard link. The path keeps its name, so
 * HF's snapshot symlinks and Ollama's blob names still resolve.
 *
 * Each replacement is one journaled step:
 *   1. journal row: target, source, temp name, digest
 *   2. temp (beside the target) := clone of, or hard link to, the source
 *   3. rename(temp, target) — atomic: target always holds the same bytes
 *   4. delete the journal row
 * kill -9 anywhere leaves the target either as it was or replaced, and at
 * worst a temp file, which cache_recover removes on the next run. The last
 * copy is never removed: the source stays, and nothing is unlinked but
 * temp files.
 *
 * A target another process has open for writing is skipped (Linux: found
 * through /proc/<pid>/fd and fdinfo), as is one changed since it was hashed.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "agent/cache/internal.h"
#include "common/alloc.h"
#include "common/clock.h"
#include "common/crash.h"
#include "common/db.h"
#include "common/log.h"
#include "common/path.h"
#include "common/rand.h"

#define MOD "cache"

int cache_recover(store *s, mlx_err *err)
{
    sqlite3_stmt *st;
    int rc = mlx_db_prepare(s->db, "SELECT id, target, temp FROM journal", &st, err);
    if (rc != 0)
        return rc;
    while (sqlite3_step(st) == SQLITE_ROW) {
        const char *target = (const char *)sqlite3_column_text(st, 1);
        const char *temp = (const char *)sqlite3_column_text(st, 2);
        /* The rename either happened (target replaced, temp gone) or not
         * (target as it was); either way only the temp is left to undo. */
        if (temp != NULL && unlink(temp) == 0)
            mlx_log_info(MOD, "rolled back an interrupted dedup step", "target=\"%s\"",
                         target != NULL ? target : "");
    }
    sqlite3_finalize(st);
    return mlx_db_exec(s->db, "DELETE FROM journal", err);
}

/* ---- planning -------------------------------------------------------------- */

/* qsort has no context argument everywhere; sort indexes with a static. */
static const scan_file *sort_files;

static int cmp_size_then_inode(const void *a, const void *b)
{
    const scan_file *x = &sort_files[*(const size_t *)a],
                    *y = &sort_files[*(const size_t *)b];
    if (x->size != y->size)
        return x->size < y->size ? 1
                                 : -1; /* largest first: the biggest wins show first */
    if (x->dev != y->dev)
        return x->dev < y->dev ? -1 : 1;
    return x->ino < y->ino ? -1 : x->ino > y->ino;
}

static int cmp_digest(const void *a, const void *b)
{
    const scan_file *x = &sort_files[*(const size_t *)a],
                    *y = &sort_files[*(const size_t *)b];
    int c =
        x->size != y->size ? (x->size < y->size ? 1 : -1) : strcmp(x->sha256, y->sha256);
    if (c != 0)
        return c;
    if (x->dev != y->dev)
        return x->dev < y->dev ? -1 : 1;
    return x->ino < y->ino ? -1 : x->ino > y->ino;
}

void cache_plan_free(dedup_plan *p)
{
    for (size_t i = 0; i < p->n; i++)
        mlx_free(p->sets[i].members);
    mlx_free(p->sets);
    memset(p, 0, sizeof *p);
}

/* Distinct inodes in members[0..n) (sorted by device and inode). */
static size_t count_inodes(const scan_file *f, const size_t *members, size_t n)
{
    size_t k = 0;
    for (size_t i = 0; i < n; i++)
        k += i == 0 || f[members[i]].ino != f[members[i - 1]].ino ||
             f[members[i]].dev != f[members[i - 1]].dev;
    return k;
}

/* Moves the inode with the most links to the front of members (grouped by
 * inode): keeping it means the fewest paths to replace. */
static void keep_most_linked(const scan_file *f, size_t *members, size_t n)
{
    size_t best = 0, best_end = 0;
    for (size_t a = 0; a < n;) {
        size_t b = a;
        while (b < n && f[members[b]].ino == f[members[a]].ino &&
               f[members[b]].dev == f[members[a]].dev)
            b++;
        if (a == 0 || f[members[a]].nlink > f[members[best]].nlink) {
            best = a;
            best_end = b;
        }
        a = b;
    }
    /* Rotate [0, best_end) so that [best, best_end) comes first. */
    for (size_t k = 0; k < best; k++) {
        size_t first = members[0];
        memmove(members, members + 1, (best_end - 1) * sizeof *members);
        members[best_end - 1] = first;
    }
}

int cache_plan_dedup(store *s, scan_result *r, dedup_plan *out, mlx_err *err)
{
    memset(out, 0, sizeof *out);
    size_t n = r->n;
    size_t *order = mlx_calloc(n > 0 ? n : 1, sizeof *order);
    bool *want = mlx_calloc(n > 0 ? n : 1, sizeof *want);
    if (order == NULL || want == NULL) {
        mlx_free(order);
        mlx_free(want);
        return mlx_err_set(err, MLX_ENOMEM, "out of memory");
    }
    for (size_t i = 0; i < n; i++)
        order[i] = i;
    sort_files = r->files;
    qsort(order, n, sizeof *order, cmp_size_then_inode);
    /* Same size first: only files that share a size with another inode are
     * hashed at all. */
    for (size_t i = 0; i < n;) {
        size_t j = i;
        while (j < n && r->files[order[j]].size == r->files[order[i]].size)
            j++;
        if (r->files[order[i]].size > 0 && count_inodes(r->files, order + i, j - i) > 1)
            for (size_t k = i; k < j; k++)
                want[order[k]] = true;
        i = j;
    }
    int rc = cache_hash_files(s, r->files, want, n, HASH_REUSE, "hashing", err);
    if (rc == 0) {
        size_t m = 0;
        for (size_t i = 0; i < n; i++) {
            if (r->files[i].unreadable)
                cache_scan_problem(r,
                                   "%s: cannot read it (%s); left out of the comparison",
                                   r->files[i].location, r->files[i].error);
            else if (want[i])
                order[m++] = i;
        }
        qsort(order, m, sizeof *order, cmp_digest);
        for (size_t i = 0; rc == 0 && i < m;) {
            size_t j = i;
            while (j < m &&
                   strcmp(r->files[order[j]].sha256, r->files[order[i]].sha256) == 0)
                j++;
            size_t inodes = count_inodes(r->files, order + i, j - i);
            if (inodes > 1) {
                dedup_set *grown = mlx_realloc(out->sets, (out->n + 1) * sizeof *grown);
                size_t *members = mlx_calloc(j - i, sizeof *members);
                if (grown == NULL || members == NULL) {
                    mlx_free(members);
                    if (grown != NULL)
                        out->sets = grown;
                    rc = mlx_err_set(err, MLX_ENOMEM, "out of memory");
                    break;
                }
                out->sets = grown;
                dedup_set *set = &out->sets[out->n++];
                memset(set, 0, sizeof *set);
                set->members = members;
                set->n = j - i;
                memcpy(members, order + i, set->n * sizeof *members);
                keep_most_linked(r->files, members, set->n);
                memcpy(set->sha256, r->files[order[i]].sha256, MLX_SHA256_HEX);
                set->size = r->files[order[i]].size;
                /* An inode is freed only when every link to it is replaced:
                 * the ones we know of must be all it has. */
                for (size_t a = 0; a < set->n;) {
                    size_t b = a;
                    while (b < set->n &&
                           r->files[members[b]].ino == r->files[members[a]].ino &&
                           r->files[members[b]].dev == r->files[members[a]].dev)
                        b++;
                    if (a > 0 && r->files[members[a]].dev == r->files[members[0]].dev &&
                        r->files[members[a]].nlink == b - a)
                        set->reclaimable += set->size;
                    a = b;
                }
                out->reclaimable += set->reclaimable;
            }
            i = j;
        }
    }
    mlx_free(order);
    mlx_free(want);
    if (rc != 0)
        cache_plan_free(out);
    return rc;
}

/* ---- applying ------------------------------------------------------------- */

/* Makes temp share source's bytes: a clone where the file system can, else
 * a hard link. */
static int share_bytes(const char *source, const char *temp, bool *cloned)
{
    *cloned = cache_clone(source, temp);
    return *cloned ? 0 : link(source, temp);
}

static int journal_add(store *s, const char *target, const char *source, const char *temp,
                       const dedup_set *set, sqlite3_int64 *id, mlx_err *err)
{
    sqlite3_stmt *st;
    int rc = mlx_db_prepare(s->db,
                            "INSERT INTO journal (target, source, temp, sha256, size, "
                            "started_unix_ms) VALUES (?, ?, ?, ?, ?, ?)",
                            &st, err);
    if (rc != 0)
        return rc;
    sqlite3_bind_text(st, 1, target, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, source, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 3, temp, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 4, set->sha256, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 5, (sqlite3_int64)set->size);
    sqlite3_bind_int64(st, 6, mlx_time_wall_ms());
    int src = sqlite3_step(st);
    sqlite3_finalize(st);
    *id = sqlite3_last_insert_rowid(s->db);
    return src == SQLITE_DONE ? 0 : mlx_db_fail(s->db, src, err, "cannot journal a step");
}

static void journal_done(store *s, sqlite3_int64 id)
{
    char sql[64];
    snprintf(sql, sizeof sql, "DELETE FROM journal WHERE id = %lld", (long long)id);
    mlx_db_exec(s->db, sql, NULL);
}

/* The file at path is still the one that was hashed. */
static bool unchanged(const scan_file *f)
{
    struct stat st;
    if (stat(f->location, &st) != 0)
        return false;
#ifdef __APPLE__
    int64_t mtime =
        (int64_t)st.st_mtimespec.tv_sec * 1000000000 + st.st_mtimespec.tv_nsec;
#else
    int64_t mtime = (int64_t)st.st_mtim.tv_sec * 1000000000 + st.st_mtim.tv_nsec;
#endif
    return st.st_ino == f->ino && st.st_dev == f->dev &&
           (uint64_t)st.st_size == f->size && mtime == f->mtime_ns;
}

/* Replaces one path with the kept copy's bytes. A file-system refusal
 * (permissions, a read-only mount) leaves the target as it was and sets
 * *why; only the journal's failures are errors. */
static int replace_one(store *s, const scan_file *keep, const scan_file *target,
                       const dedup_set *set, bool *freed_inode, const char **why,
                       mlx_err *err)
{
    char temp[PATH_MAX], suffix[17];
    *why = NULL;
    *freed_inode = false;
    if (mlx_rand_hex(suffix, 16, err) != 0)
        return MLX_EIO;
    const char *slash = strrchr(target->location, '/');
    snprintf(temp, sizeof temp, "%.*s/.mlx-dedup-%s", (int)(slash - target->location),
             target->location, suffix);
    sqlite3_int64 id;
    int rc = journal_add(s, target->location, keep->location, temp, set, &id, err);
    if (rc != 0)
        return rc;
    mlx_crash_point("dedup-journaled");
    bool cloned;
    struct stat before;
    if (stat(target->location, &before) != 0 ||
        share_bytes(keep->location, temp, &cloned) != 0) {
        *why = errno == EACCES || errno == EPERM ? "its folder may not be written to"
               : errno == EROFS                  ? "it is on a read-only file system"
                                                 : "it could not be linked";
        journal_done(s, id);
        return 0;
    }
    mlx_crash_point("dedup-linked");
    if (rename(temp, target->location) != 0) {
        *why = "it could not be replaced";
        unlink(temp);
    } else {
        *freed_inode = before.st_nlink == 1;
        mlx_crash_point("dedup-replaced");
    }
    journal_done(s, id);
    return 0;
}

static void add_given_back(store *s, uint64_t bytes)
{
    char sql[128];
    snprintf(
        sql, sizeof sql,
        "UPDATE counters SET value = value + %llu WHERE name = 'dedup_bytes_given_back'",
        (unsigned long long)bytes);
    mlx_db_exec(s->db, sql, NULL);
}

static int add_skip(dedup_report *r, size_t file, const char *why, mlx_err *err)
{
    dedup_skip *grown = mlx_realloc(r->skipped, (r->n_skipped + 1) * sizeof *grown);
    if (grown == NULL)
        return mlx_err_set(err, MLX_ENOMEM, "out of memory");
    r->skipped = grown;
    r->skipped[r->n_skipped++] = (dedup_skip){file, why};
    return 0;
}

void cache_dedup_report_free(dedup_report *r)
{
    mlx_free(r->skipped);
    memset(r, 0, sizeof *r);
}

int cache_apply_dedup(store *s, scan_result *r, const dedup_plan *p, dedup_report *out,
                      mlx_err *err)
{
    memset(out, 0, sizeof *out);
    for (size_t i = 0; i < p->n; i++) {
        const dedup_set *set = &p->sets[i];
        const scan_file *keep = &r->files[set->members[0]];
        for (size_t k = 1; k < set->n; k++) {
            const scan_file *t = &r->files[set->members[k]];
            if (t->ino == keep->ino && t->dev == keep->dev)
                continue; /* already the same file */
            const char *why = NULL;
            bool same = false;
            if (t->dev != keep->dev)
                why = "on another file system";
            else if (!unchanged(t) || !unchanged(keep))
                why = "changed since it was hashed";
            else if (cache_open_for_writing(t->dev, t->ino))
                why = "open for writing by another process";
            else if (cache_same_bytes(keep->location, t->location, &same, NULL) != 0 ||
                     !same)
                why = "its bytes differ from the copy kept (a stale digest)";
            if (why != NULL) {
                int rc = add_skip(out, set->members[k], why, err);
                if (rc != 0)
                    return rc;
                continue;
            }
            bool freed = false;
            int rc = replace_one(s, keep, t, set, &freed, &why, err);
            if (rc != 0)
                return rc;
            if (why != NULL) {
                if ((rc = add_skip(out, set->members[k], why, err)) != 0)
                    return rc;
                continue;
            }
            out->replaced++;
            if (freed) {
                out->given_back += set->size;
                add_given_back(s, set->size);
            }
        }
    }
    return 0;
}
