/*
 * gc.c — giving disk back: blobs no model needs, and least recently used
 * models when the store is over a byte budget.
 *
 * The plan is made before anything is deleted, from the models and their
 * blobs as agent.db records them: a blob is freed when the last model of
 * the store that uses it goes. Models scanned in place are never candidates
 * (their bytes belong to HuggingFace or Ollama), nor are pinned models or
 * models a running process has open or mapped (an engine serving it).
 *
 * Deleting a blob is an unlink: a process still mapping it keeps reading
 * the same bytes until it lets go. Sweeping runs under the store's
 * exclusive lock (cache_hold_sweep), so a blob a pull has put but not yet
 * recorded is never taken for garbage.
 */
#include <dirent.h>
#include <errno.h>
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
#include "common/log.h"

#define MOD "cache"

/* Partial downloads untouched this long are abandoned; younger ones wait
 * for the pull that resumes them. */
#define PARTIAL_MAX_AGE_MS (24 * 3600 * 1000LL)

/* One blob of the store and how many models of the store use it. */
struct blob_use {
    char sha256[MLX_SHA256_HEX];
    uint64_t size;
    size_t refs;
};

struct blob_table {
    struct blob_use *items;
    size_t n;
};

static struct blob_use *find_blob(struct blob_table *t, const char *hex)
{
    for (size_t i = 0; i < t->n; i++)
        if (strcmp(t->items[i].sha256, hex) == 0)
            return &t->items[i];
    return NULL;
}

/* Every blob file in <data>/blobs/sha256, with its size. */
static int read_blobs(store *s, struct blob_table *t, mlx_err *err)
{
    memset(t, 0, sizeof *t);
    DIR *d = opendir(s->blob_dir);
    if (d == NULL)
        return mlx_err_set(err, MLX_EIO, "cannot read %s: %s", s->blob_dir,
                           strerror(errno));
    int rc = 0;
    struct dirent *e;
    while (rc == 0 && (e = readdir(d)) != NULL) {
        char path[4096];
        struct stat st;
        if (!cache_is_digest(e->d_name))
            continue;
        store_blob_path(s, e->d_name, path, sizeof path);
        if (stat(path, &st) != 0 || !S_ISREG(st.st_mode))
            continue;
        struct blob_use *grown = mlx_realloc(t->items, (t->n + 1) * sizeof *grown);
        if (grown == NULL) {
            rc = mlx_err_set(err, MLX_ENOMEM, "out of memory");
            break;
        }
        t->items = grown;
        struct blob_use *b = &t->items[t->n++];
        memcpy(b->sha256, e->d_name, MLX_SHA256_HEX);
        b->size = (uint64_t)st.st_size;
        b->refs = 0;
    }
    closedir(d);
    return rc;
}

/* True when a process has one of the model's files open or mapped. */
static bool model_in_use(const cache_model *m, const inuse_set *inuse)
{
    for (size_t k = 0; k < m->n_files; k++) {
        struct stat st;
        if (stat(m->files[k].location, &st) == 0 &&
            cache_inuse_has(inuse, st.st_dev, st.st_ino, false))
            return true;
    }
    return false;
}

/* Drops one use of each of m's blobs; returns the bytes that frees. */
static uint64_t release(struct blob_table *t, const cache_model *m)
{
    uint64_t freed = 0;
    for (size_t k = 0; k < m->n_files; k++) {
        struct blob_use *b = find_blob(t, m->files[k].sha256);
        /* A model may list one blob under two paths: count it once. */
        bool seen = false;
        for (size_t j = 0; j < k; j++)
            seen |= strcmp(m->files[j].sha256, m->files[k].sha256) == 0;
        if (b != NULL && !seen && b->refs > 0 && --b->refs == 0)
            freed += b->size;
    }
    return freed;
}

static int add_name(gc_report *r, const char *name, mlx_err *err)
{
    char **grown = mlx_realloc(r->evicted, (r->n_evicted + 1) * sizeof *grown);
    if (grown == NULL)
        return mlx_err_set(err, MLX_ENOMEM, "out of memory");
    r->evicted = grown;
    if ((r->evicted[r->n_evicted] = mlx_strdup(name)) == NULL)
        return mlx_err_set(err, MLX_ENOMEM, "out of memory");
    r->n_evicted++;
    return 0;
}

/* Picks the models to evict, least recently used first, until the store's
 * blobs fit in max_bytes. */
static int plan_evictions(store *s, const gc_opts *o, struct blob_table *t,
                          cache_model_list *models, gc_report *r, mlx_err *err)
{
    inuse_set inuse;
    int rc = cache_inuse_collect(&inuse, INUSE_OPEN | INUSE_MAPPED, err);
    if (rc != 0)
        return rc;
    /* Oldest use first; the list comes sorted by name, so sort a copy of
     * the indexes here (few models: insertion sort). */
    size_t *order = mlx_calloc(models->n > 0 ? models->n : 1, sizeof *order);
    if (order == NULL) {
        cache_inuse_free(&inuse);
        return mlx_err_set(err, MLX_ENOMEM, "out of memory");
    }
    for (size_t i = 0; i < models->n; i++) {
        size_t j = i;
        while (j > 0 && models->items[order[j - 1]].last_used_unix_ms >
                            models->items[i].last_used_unix_ms) {
            order[j] = order[j - 1];
            j--;
        }
        order[j] = i;
    }
    uint64_t total = r->store_bytes;
    for (size_t i = 0; rc == 0 && i < models->n && total > o->max_bytes; i++) {
        const cache_model *m = &models->items[order[i]];
        if (cache_source_in_place(m->source))
            continue;
        if (m->pinned) {
            r->n_pinned_kept++;
            continue;
        }
        if (model_in_use(m, &inuse)) {
            r->n_in_use_kept++;
            continue;
        }
        total -= release(t, m);
        rc = add_name(r, m->name, err);
    }
    mlx_free(order);
    cache_inuse_free(&inuse);
    return rc;
}

/* Removes unlocked partial downloads older than PARTIAL_MAX_AGE_MS. */
static int sweep_partials(store *s, bool dry_run, gc_report *r, mlx_err *err)
{
    cache_usage u;
    int rc = cache_usage_read(s, &u, err);
    if (rc != 0)
        return rc;
    int64_t now = mlx_time_wall_ms();
    for (size_t i = 0; i < u.n_partials; i++) {
        const cache_partial *p = &u.partials[i];
        if (now - p->modified_unix_ms < PARTIAL_MAX_AGE_MS)
            continue;
        int fd = open(p->path, O_RDONLY | O_CLOEXEC);
        if (fd < 0)
            continue;
        /* A pull writing it holds a lock: leave that one alone. */
        bool idle = flock(fd, LOCK_EX | LOCK_NB) == 0;
        if (idle && (dry_run || unlink(p->path) == 0)) {
            r->partials_removed++;
            r->partial_bytes += p->bytes;
        }
        close(fd);
    }
    cache_usage_free(&u);
    return 0;
}

int cache_sweep_blobs(store *s, gc_report *r, mlx_err *err)
{
    int rc = cache_hold_sweep(s, err);
    struct blob_table t = {0};
    if (rc == 0)
        rc = read_blobs(s, &t, err);
    sqlite3_stmt *used = NULL, *drop = NULL;
    if (rc == 0)
        rc = mlx_db_prepare(s->db,
                            "SELECT 1 FROM files f JOIN models m ON m.id = f.model_id "
                            "WHERE f.sha256 = ? AND m.source NOT IN "
                            "('hf-cache', 'ollama-cache', 'dir') LIMIT 1",
                            &used, err);
    if (rc == 0)
        rc = mlx_db_prepare(s->db, "DELETE FROM blobs WHERE sha256 = ?", &drop, err);
    for (size_t i = 0; rc == 0 && i < t.n; i++) {
        sqlite3_reset(used);
        sqlite3_bind_text(used, 1, t.items[i].sha256, -1, SQLITE_STATIC);
        if (sqlite3_step(used) == SQLITE_ROW)
            continue;
        char path[4096];
        store_blob_path(s, t.items[i].sha256, path, sizeof path);
        if (unlink(path) != 0 && errno != ENOENT) {
            mlx_log_warn(MOD, "cannot remove a blob", "path=\"%s\" error=\"%s\"", path,
                         strerror(errno));
            continue;
        }
        sqlite3_reset(drop);
        sqlite3_bind_text(drop, 1, t.items[i].sha256, -1, SQLITE_STATIC);
        sqlite3_step(drop);
        r->blobs_removed++;
        r->blob_bytes += t.items[i].size;
    }
    sqlite3_finalize(used);
    sqlite3_finalize(drop);
    mlx_free(t.items);
    return rc;
}

void cache_gc_report_free(gc_report *r)
{
    for (size_t i = 0; i < r->n_evicted; i++)
        mlx_free(r->evicted[i]);
    mlx_free(r->evicted);
    memset(r, 0, sizeof *r);
}

int cache_gc(store *s, const gc_opts *o, gc_report *out, mlx_err *err)
{
    memset(out, 0, sizeof *out);
    struct blob_table t = {0};
    cache_model_list models = {0};
    int rc = cache_hold_sweep(s, err);
    if (rc == 0)
        rc = read_blobs(s, &t, err);
    if (rc == 0)
        rc = cache_list_models(s, NULL, &models, err);
    if (rc == 0) {
        for (size_t i = 0; i < models.n; i++) {
            const cache_model *m = &models.items[i];
            if (cache_source_in_place(m->source))
                continue;
            for (size_t k = 0; k < m->n_files; k++) {
                struct blob_use *b = find_blob(&t, m->files[k].sha256);
                bool seen = false;
                for (size_t j = 0; j < k; j++)
                    seen |= strcmp(m->files[j].sha256, m->files[k].sha256) == 0;
                if (b != NULL && !seen)
                    b->refs++;
            }
        }
        for (size_t i = 0; i < t.n; i++)
            out->store_bytes += t.items[i].size;
        rc = plan_evictions(s, o, &t, &models, out, err);
    }
    for (size_t i = 0; rc == 0 && !o->dry_run && i < out->n_evicted; i++)
        rc = cache_remove_model(s, out->evicted[i], err);
    if (rc == 0 && o->dry_run) {
        /* What the sweep would find once the evicted models are gone. */
        for (size_t i = 0; i < t.n; i++)
            if (t.items[i].refs == 0) {
                out->blobs_removed++;
                out->blob_bytes += t.items[i].size;
            }
    } else if (rc == 0) {
        rc = cache_sweep_blobs(s, out, err);
    }
    if (rc == 0)
        rc = sweep_partials(s, o->dry_run, out, err);
    if (rc == 0) {
        out->store_bytes_after =
            out->store_bytes > out->blob_bytes ? out->store_bytes - out->blob_bytes : 0;
    }
    mlx_free(t.items);
    cache_model_list_free(&models);
    if (rc != 0)
        cache_gc_report_free(out);
    return rc;
}
