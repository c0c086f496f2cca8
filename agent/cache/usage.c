/*
 * usage.c — how much the store holds: its blobs, the downloads waiting in
 * tmp/ to be resumed, what de-duplication gave back and the disk left.
 */
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>

#include "agent/cache/internal.h"
#include "common/alloc.h"
#include "common/db.h"

void cache_usage_free(cache_usage *u)
{
    for (size_t i = 0; i < u->n_partials; i++)
        mlx_free(u->partials[i].path);
    mlx_free(u->partials);
    memset(u, 0, sizeof *u);
}

static int read_partials(store *s, cache_usage *u)
{
    DIR *d = opendir(s->tmp_dir);
    if (d == NULL)
        return 0;
    int rc = 0;
    struct dirent *e;
    while (rc == 0 && (e = readdir(d)) != NULL) {
        char path[4096];
        struct stat st;
        if (e->d_name[0] == '.')
            continue;
        snprintf(path, sizeof path, "%s/%s", s->tmp_dir, e->d_name);
        if (stat(path, &st) != 0 || !S_ISREG(st.st_mode))
            continue;
        cache_partial *grown =
            mlx_realloc(u->partials, (u->n_partials + 1) * sizeof *grown);
        if (grown == NULL) {
            rc = MLX_ENOMEM;
            break;
        }
        u->partials = grown;
        cache_partial *p = &u->partials[u->n_partials];
        if ((p->path = mlx_strdup(path)) == NULL) {
            rc = MLX_ENOMEM;
            break;
        }
        p->bytes = (uint64_t)st.st_size;
        p->modified_unix_ms = (int64_t)st.st_mtime * 1000;
        u->partial_bytes += p->bytes;
        u->n_partials++;
    }
    closedir(d);
    return rc;
}

int cache_usage_read(store *s, cache_usage *out, mlx_err *err)
{
    memset(out, 0, sizeof *out);
    DIR *d = opendir(s->blob_dir);
    if (d == NULL)
        return mlx_err_set(err, MLX_EIO, "cannot read %s: %s", s->blob_dir,
                           strerror(errno));
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        char path[4096];
        struct stat st;
        store_blob_path(s, e->d_name, path, sizeof path);
        if (cache_is_digest(e->d_name) && stat(path, &st) == 0 && S_ISREG(st.st_mode)) {
            out->blobs++;
            out->blob_bytes += (uint64_t)st.st_size;
        }
    }
    closedir(d);
    if (read_partials(s, out) != 0) {
        cache_usage_free(out);
        return mlx_err_set(err, MLX_ENOMEM, "out of memory");
    }
    sqlite3_stmt *st;
    if (mlx_db_prepare(s->db,
                       "SELECT value FROM counters WHERE name = 'dedup_bytes_given_back'",
                       &st, NULL) == 0) {
        if (sqlite3_step(st) == SQLITE_ROW)
            out->dedup_given_back = (uint64_t)sqlite3_column_int64(st, 0);
        sqlite3_finalize(st);
    }
    struct statvfs vfs;
    if (statvfs(s->data_dir, &vfs) == 0)
        out->free_bytes = (uint64_t)vfs.f_bavail * vfs.f_frsize;
    return 0;
}
