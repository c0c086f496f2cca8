/*
 * hash.c — SHA-256 of many files at once, on every core, remembered.
 *
 * Model files are large (GBs) and hashing is CPU-bound in SHA-256 even with
 * SHA extensions, so one thread per core each takes the next file from a
 * shared counter. A digest is remembered in hash_cache with the file's
 * size, mtime and inode: a file none of those changed for is not read
 * again (what a second scan of an unchanged tree relies on).
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "agent/cache/internal.h"
#include "agent/cache/progress.h"
#include "common/alloc.h"
#include "common/db.h"

#define MAX_THREADS 64

int cache_hash_path(const char *path, char *out, mlx_err *err)
{
    uint8_t digest[MLX_SHA256_LEN];
    int rc = mlx_sha256_file(path, digest, err);
    if (rc == 0)
        mlx_sha256_hex(digest, out);
    return rc;
}

struct job {
    scan_file *files;
    const bool *want;
    size_t n;
    pthread_mutex_t mtx;
    pthread_cond_t idle;
    size_t next;    /* the next file to take (under mtx) */
    size_t running; /* workers not yet finished (under mtx) */
    uint64_t done;  /* bytes hashed by all workers (atomic) */
};

/* Hashes one file in chunks, adding each chunk to j->done as it goes, so a
 * progress line moves while a 40 GB file is read. */
static int hash_counted(struct job *j, const char *path, char *hex, mlx_err *err)
{
    enum { CHUNK = 4 << 20 };
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return mlx_err_set(err, MLX_EIO, "cannot open %s: %s", path, strerror(errno));
    uint8_t *chunk = mlx_malloc(CHUNK);
    mlx_sha256 h = {0};
    int rc = chunk == NULL ? mlx_err_set(err, MLX_ENOMEM, "out of memory")
                           : mlx_sha256_init(&h, err);
    while (rc == 0) {
        ssize_t got = read(fd, chunk, CHUNK);
        if (got < 0 && errno == EINTR)
            continue;
        if (got < 0)
            rc = mlx_err_set(err, MLX_EIO, "cannot read %s: %s", path, strerror(errno));
        if (got <= 0)
            break;
        rc = mlx_sha256_update(&h, chunk, (size_t)got, err);
        __atomic_add_fetch(&j->done, (uint64_t)got, __ATOMIC_RELAXED);
    }
    uint8_t digest[MLX_SHA256_LEN];
    if (rc == 0 && (rc = mlx_sha256_final(&h, digest, err)) == 0)
        mlx_sha256_hex(digest, hex);
    mlx_sha256_abort(&h); /* frees what a failure left */
    mlx_free(chunk);
    close(fd);
    return rc;
}

static void *worker(void *arg)
{
    struct job *j = arg;
    for (;;) {
        pthread_mutex_lock(&j->mtx);
        size_t i = j->next;
        while (i < j->n && !j->want[i])
            i++;
        j->next = i + 1;
        if (i >= j->n && --j->running == 0)
            pthread_cond_signal(&j->idle);
        pthread_mutex_unlock(&j->mtx);
        if (i >= j->n)
            return NULL;
        /* Each file is one worker's alone: no lock needed to fill it in. */
        mlx_err err;
        mlx_err_clear(&err);
        if (hash_counted(j, j->files[i].location, j->files[i].sha256, &err) != 0) {
            j->files[i].sha256[0] = '\0';
            j->files[i].error = mlx_strdup(mlx_err_text(&err, MLX_EIO));
            j->files[i].unreadable = true;
        }
    }
}

/* Waits for the workers, redrawing p every tenth of a second. */
static void wait_workers(struct job *j, progress *p)
{
    pthread_mutex_lock(&j->mtx);
    while (j->running > 0) {
        struct timespec until;
        clock_gettime(CLOCK_REALTIME, &until);
        until.tv_nsec += 100 * 1000000L;
        if (until.tv_nsec >= 1000000000L) {
            until.tv_sec++;
            until.tv_nsec -= 1000000000L;
        }
        pthread_cond_timedwait(&j->idle, &j->mtx, &until);
        if (p != NULL)
            progress_update(p, __atomic_load_n(&j->done, __ATOMIC_RELAXED));
    }
    pthread_mutex_unlock(&j->mtx);
}

static bool remembered(store *s, scan_file *f)
{
    sqlite3_stmt *st;
    if (cache_stmt(s,
                   "SELECT sha256 FROM hash_cache WHERE path = ? AND size = ? AND "
                   "mtime_ns = ? AND inode = ?",
                   &st, NULL) != 0)
        return false;
    sqlite3_bind_text(st, 1, f->location, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 2, (sqlite3_int64)f->size);
    sqlite3_bind_int64(st, 3, f->mtime_ns);
    sqlite3_bind_int64(st, 4, (sqlite3_int64)f->ino);
    bool found = false;
    if (sqlite3_step(st) == SQLITE_ROW) {
        const unsigned char *hex = sqlite3_column_text(st, 0);
        if (hex != NULL && cache_is_digest((const char *)hex)) {
            memcpy(f->sha256, hex, MLX_SHA256_HEX - 1);
            f->sha256[MLX_SHA256_HEX - 1] = '\0';
            found = true;
        }
    }
    sqlite3_reset(st);
    return found;
}

static int remember(store *s, const scan_file *f, mlx_err *err)
{
    sqlite3_stmt *st;
    int rc = cache_stmt(s,
                        "INSERT OR REPLACE INTO hash_cache (path, size, mtime_ns, inode, "
                        "sha256) VALUES (?, ?, ?, ?, ?)",
                        &st, err);
    if (rc != 0)
        return rc;
    sqlite3_bind_text(st, 1, f->location, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 2, (sqlite3_int64)f->size);
    sqlite3_bind_int64(st, 3, f->mtime_ns);
    sqlite3_bind_int64(st, 4, (sqlite3_int64)f->ino);
    sqlite3_bind_text(st, 5, f->sha256, -1, SQLITE_STATIC);
    int src = sqlite3_step(st);
    sqlite3_reset(st);
    return src == SQLITE_DONE ? 0
                              : mlx_db_fail(s->db, src, err, "cannot remember a digest");
}

int cache_hash_files(store *s, scan_file *files, const bool *want, size_t n,
                     cache_hash_mode mode, const char *label, mlx_err *err)
{
    bool *todo = mlx_calloc(n > 0 ? n : 1, sizeof *todo);
    if (todo == NULL)
        return mlx_err_set(err, MLX_ENOMEM, "out of memory");
    size_t count = 0;
    /* One read transaction for all the lookups, not one per file. */
    mlx_db_exec(s->db, "BEGIN", NULL);
    for (size_t i = 0; i < n; i++) {
        if (mode == HASH_REREAD && want[i])
            files[i].sha256[0] = '\0';
        /* A digest remembered is reported even where none is needed. */
        else if (files[i].sha256[0] != '\0' || remembered(s, &files[i]) || !want[i])
            continue;
        todo[i] = true;
        count++;
    }
    mlx_db_exec(s->db, "COMMIT", NULL);
    uint64_t bytes = 0;
    for (size_t i = 0; i < n; i++)
        bytes += todo[i] ? files[i].size : 0;
    struct job j = {.files = files, .want = todo, .n = n};
    pthread_mutex_init(&j.mtx, NULL);
    pthread_cond_init(&j.idle, NULL);
    long cores = sysconf(_SC_NPROCESSORS_ONLN);
    size_t threads = cores < 1 ? 1 : (size_t)cores;
    if (threads > count)
        threads = count;
    if (threads > MAX_THREADS)
        threads = MAX_THREADS;
    progress p;
    if (label != NULL && count > 0)
        progress_start(&p, label, bytes, 0);
    pthread_t tid[MAX_THREADS];
    size_t started = 0;
    for (; started < threads; started++) {
        /* Counted before it starts: a worker may finish before the next one. */
        pthread_mutex_lock(&j.mtx);
        j.running++;
        pthread_mutex_unlock(&j.mtx);
        if (pthread_create(&tid[started], NULL, worker, &j) == 0)
            continue;
        pthread_mutex_lock(&j.mtx);
        j.running--;
        pthread_mutex_unlock(&j.mtx);
        break;
    }
    if (started == 0 && count > 0) {
        j.running = 1;
        worker(&j); /* no thread to spare: hash here */
    }
    wait_workers(&j, label != NULL && count > 0 ? &p : NULL);
    for (size_t t = 0; t < started; t++)
        pthread_join(tid[t], NULL);
    if (label != NULL && count > 0)
        progress_end(&p);
    pthread_cond_destroy(&j.idle);
    pthread_mutex_destroy(&j.mtx);

    int rc = 0;
    if (count > 0 && (rc = mlx_db_exec(s->db, "BEGIN IMMEDIATE", err)) == 0) {
        for (size_t i = 0; rc == 0 && i < n; i++)
            if (todo[i] && !files[i].unreadable)
                rc = remember(s, &files[i], err);
        if (rc == 0)
            rc = mlx_db_exec(s->db, "COMMIT", err);
        else
            mlx_db_exec(s->db, "ROLLBACK", NULL);
    }
    mlx_free(todo);
    return rc;
}
