/*
 * pull_fetch.c — one blob from a URL into the store, resumably.
 *
 * The bytes go to <tmp>/<digest>.partial (git-<sha1>.partial for a small
 * Hub file known by its git id), so a later run finds what an interrupted
 * one left. The states of one fetch:
 *
 *   LOCK     open the .partial and flock it; another pull of the same blob
 *            holds it → wait for that one, then look again (it may have
 *            finished: the blob is in the store, or its file was renamed)
 *   REHASH   a .partial of P bytes: larger than the blob → emptied; whole
 *            → only checked; else its bytes are hashed from disk
 *   GET      with "Range: bytes=P-" when P > 0. 206 at P → append;
 *            200 → the server ignored the range: empty the file, start
 *            at 0; 416 → the partial does not fit: empty it, ask once more
 *   STREAM   every chunk: size bound checked, written, hashed, counted
 *   FINISH   all declared bytes → digest compared: equal → store_put_blob
 *            (fsync + rename); different → the .partial is removed
 *
 * A failure in GET or STREAM keeps the .partial (its bytes are what the
 * server sent, checked again at the next run's REHASH and FINISH), except a
 * digest mismatch, whose bytes are known bad.
 */
#include <errno.h>
#include <fcntl.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include "agent/cache/progress.h"
#include "agent/cache/pull.h"
#include "common/alloc.h"
#include "common/log.h"

#define MOD        "cache"
#define READ_CHUNK (1u << 20)

struct fetch {
    const pull_net *net;
    const pull_blob *b;
    const char *tmp_dir;
    char path[4096]; /* the .partial */
    int fd;
    mlx_sha256 sha256;
    EVP_MD_CTX *sha1; /* git's blob id, for PULL_DIGEST_GIT_SHA1 */
    uint64_t offset;  /* bytes in the file, all hashed */
    uint64_t from;    /* where the current request started */
    uint64_t total;   /* the blob's size: declared, or learned from the answer */
    uint64_t kept;    /* bytes of an earlier run that were kept */
    uint64_t received;
    pull_headers h; /* of the response being read */
    bool started;   /* the final response's body has begun */
    int rc;         /* the first failure inside a callback */
    mlx_err err;
    progress prog;
};

/* ---- hashing ------------------------------------------------------------- */

static int hash_reset(struct fetch *f, mlx_err *err)
{
    mlx_sha256_abort(&f->sha256);
    int rc = mlx_sha256_init(&f->sha256, err);
    if (rc != 0 || f->b->kind != PULL_DIGEST_GIT_SHA1)
        return rc;
    if (f->sha1 == NULL && (f->sha1 = EVP_MD_CTX_new()) == NULL)
        return mlx_err_set(err, MLX_ENOMEM, "out of memory");
    char head[40];
    int n = snprintf(head, sizeof head, "blob %llu", (unsigned long long)f->b->size);
    /* git hashes "blob <size>\0" and then the content. */
    if (EVP_DigestInit_ex(f->sha1, EVP_sha1(), NULL) != 1 ||
        EVP_DigestUpdate(f->sha1, head, (size_t)n + 1) != 1)
        return mlx_err_set(err, MLX_EINTERNAL, "OpenSSL could not start a SHA-1");
    return 0;
}

static int hash_update(struct fetch *f, const void *data, size_t n, mlx_err *err)
{
    int rc = mlx_sha256_update(&f->sha256, data, n, err);
    if (rc == 0 && f->sha1 != NULL && EVP_DigestUpdate(f->sha1, data, n) != 1)
        rc = mlx_err_set(err, MLX_EINTERNAL, "OpenSSL could not hash");
    return rc;
}

/* Hashes the first n bytes already in the file. */
static int hash_prefix(struct fetch *f, uint64_t n, mlx_err *err)
{
    char *buf = mlx_malloc(READ_CHUNK);
    if (buf == NULL)
        return mlx_err_set(err, MLX_ENOMEM, "out of memory");
    int rc = 0;
    for (uint64_t at = 0; rc == 0 && at < n;) {
        size_t want = n - at < READ_CHUNK ? (size_t)(n - at) : READ_CHUNK;
        ssize_t got = pread(f->fd, buf, want, (off_t)at);
        if (got < 0 && errno == EINTR)
            continue;
        if (got <= 0)
            rc = mlx_err_set(err, MLX_EIO, "cannot read %s: %s", f->path,
                             got < 0 ? strerror(errno) : "it is shorter than before");
        else
            rc = hash_update(f, buf, (size_t)got, err);
        at += got > 0 ? (uint64_t)got : 0;
    }
    mlx_free(buf);
    return rc;
}

/* ---- the .partial --------------------------------------------------------- */

/* Empties the .partial and the hashes: start from byte 0. */
static int restart(struct fetch *f, mlx_err *err)
{
    if (ftruncate(f->fd, 0) != 0)
        return mlx_err_set(err, MLX_EIO, "cannot empty %s: %s", f->path, strerror(errno));
    f->offset = 0;
    f->kept = 0;
    return hash_reset(f, err);
}

/* Removes the .partial, if the name is still that of the file we hold
 * locked (it may have been renamed into the store, or replaced). */
static void remove_partial(struct fetch *f)
{
    struct stat held, named;
    if (fstat(f->fd, &held) == 0 && stat(f->path, &named) == 0 &&
        held.st_dev == named.st_dev && held.st_ino == named.st_ino)
        unlink(f->path);
}

/* Opens and locks the .partial; *in_store when the blob turned up meanwhile. */
static int lock_partial(struct fetch *f, store *s, bool *in_store, mlx_err *err)
{
    const pull_blob *b = f->b;
    bool sha = b->kind == PULL_DIGEST_SHA256;
    snprintf(f->path, sizeof f->path, "%s/%s%s.partial", f->tmp_dir, sha ? "" : "git-",
             b->expected);
    for (int attempt = 0; attempt < 100; attempt++) {
        if (sha && store_has_blob(s, b->expected)) {
            *in_store = true;
            return 0;
        }
        f->fd = open(f->path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
        if (f->fd < 0)
            return mlx_err_set(err, MLX_EIO, "cannot create %s: %s", f->path,
                               strerror(errno));
        int lr = flock(f->fd, LOCK_EX | LOCK_NB);
        if (lr != 0 && errno == EWOULDBLOCK) {
            mlx_log_info(MOD, "waiting for another pull of the same file", "file=\"%s\"",
                         b->label);
            while ((lr = flock(f->fd, LOCK_EX)) != 0 && errno == EINTR) {
            }
        }
        if (lr != 0) {
            int e = errno;
            close(f->fd);
            f->fd = -1;
            return mlx_err_set(err, MLX_EIO, "cannot lock %s: %s", f->path, strerror(e));
        }
        /* The holder we waited for may have renamed or removed the file:
         * keep the lock only when it is still on the file named path. */
        struct stat held, named;
        if (fstat(f->fd, &held) == 0 && stat(f->path, &named) == 0 &&
            held.st_dev == named.st_dev && held.st_ino == named.st_ino)
            return 0;
        close(f->fd);
        f->fd = -1;
    }
    return mlx_err_set(err, MLX_EBUSY,
                       "%s keeps changing under another pull; stop the other pulls of "
                       "%s and try again",
                       f->path, b->label);
}

static int check_space(struct fetch *f, uint64_t need, mlx_err *err)
{
    struct statvfs vfs;
    if (need == 0 || statvfs(f->tmp_dir, &vfs) != 0)
        return 0; /* cannot tell: the write will say */
    uint64_t avail = (uint64_t)vfs.f_bavail * (uint64_t)vfs.f_frsize;
    if (avail >= need)
        return 0;
    char want[32], have[32];
    cache_format_bytes(need, want, sizeof want);
    cache_format_bytes(avail, have, sizeof have);
    return mlx_err_set(err, MLX_EIO,
                       "not enough free disk space for %s: it needs %s more in %s, and "
                       "%s are free; make room (cache gc) or use another --data",
                       f->b->label, want, f->tmp_dir, have);
}

/* ---- the transfer --------------------------------------------------------- */

static size_t on_header(char *line, size_t size, size_t nitems, void *arg)
{
    struct fetch *f = arg;
    /* Every hop of a redirect chain comes here; its status line resets h,
     * and only the last hop has a body. */
    pull_headers_line(&f->h, line, size * nitems);
    return size * nitems;
}

/* The first bytes of the final response: decide append or restart. */
static int start_body(struct fetch *f)
{
    pull_answer a = pull_decide_answer(&f->h, f->from, &f->err);
    uint64_t total = PULL_SIZE_UNKNOWN;
    if (a == PULL_ANSWER_FAIL)
        return mlx_err_prefix(&f->err, f->err.code, "%s", f->b->label);
    if (a == PULL_ANSWER_APPEND) {
        total = f->h.range_total;
    } else {
        int rc = restart(f, &f->err);
        if (rc != 0)
            return rc;
        total = f->h.content_length;
    }
    if (f->b->size != PULL_SIZE_UNKNOWN && total != PULL_SIZE_UNKNOWN &&
        total != f->b->size)
        return mlx_err_set(&f->err, MLX_ECORRUPT,
                           "the server says %s has %llu bytes where %llu were expected",
                           f->b->label, (unsigned long long)total,
                           (unsigned long long)f->b->size);
    if (f->b->size != PULL_SIZE_UNKNOWN)
        total = f->b->size;
    if (total != PULL_SIZE_UNKNOWN && total > BLOB_MAX_BYTES)
        return mlx_err_set(&f->err, MLX_ECORRUPT,
                           "the server says %s has %llu bytes, over the limit",
                           f->b->label, (unsigned long long)total);
    f->total = total;
    f->started = true;
    progress_start(&f->prog, f->b->label, total != PULL_SIZE_UNKNOWN ? total : 0,
                   f->offset);
    if (!f->net->progress)
        f->prog.active = false;
    return total != PULL_SIZE_UNKNOWN ? check_space(f, total - f->offset, &f->err) : 0;
}

static int write_all(struct fetch *f, const char *data, size_t n)
{
    while (n > 0) {
        ssize_t w = pwrite(f->fd, data, n, (off_t)f->offset);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return mlx_err_set(&f->err, MLX_EIO, "cannot write %s: %s", f->path,
                               w < 0 ? strerror(errno) : "nothing written");
        f->offset += (uint64_t)w;
        data += w;
        n -= (size_t)w;
    }
    return 0;
}

static size_t on_body(char *data, size_t size, size_t nmemb, void *arg)
{
    struct fetch *f = arg;
    size_t n = size * nmemb;
    if (!f->started && (f->rc = start_body(f)) != 0)
        return 0;
    uint64_t limit = f->total != PULL_SIZE_UNKNOWN ? f->total : BLOB_MAX_BYTES;
    if (n > limit - f->offset) {
        f->rc = mlx_err_set(&f->err, MLX_ECORRUPT,
                            "the server sent more than the %llu bytes of %s",
                            (unsigned long long)limit, f->b->label);
        return 0;
    }
    uint64_t before = f->offset;
    if ((f->rc = write_all(f, data, n)) != 0 ||
        (f->rc = hash_update(f, data, n, &f->err)) != 0)
        return 0;
    f->received += f->offset - before;
    progress_update(&f->prog, f->offset);
    return n;
}

/* One GET from f->offset; *retry when the server refused the range. */
static int transfer(struct fetch *f, bool *retry, mlx_err *err)
{
    *retry = false;
    CURL *curl = curl_easy_init();
    if (curl == NULL)
        return mlx_err_set(err, MLX_ENOMEM, "out of memory starting an HTTP request");
    char errbuf[CURL_ERROR_SIZE], range[32];
    int rc = pull_http_setup(f->net, curl, f->b->url, errbuf, err);
    if (rc != 0) {
        curl_easy_cleanup(curl);
        return rc;
    }
    f->from = f->offset;
    f->started = false;
    f->rc = 0;
    mlx_err_clear(&f->err);
    pull_headers_reset(&f->h);
    curl_easy_setopt(curl, CURLOPT_FOLLOWLOCATION, 1L);
    curl_easy_setopt(curl, CURLOPT_FAILONERROR, 1L);
    curl_easy_setopt(curl, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(curl, CURLOPT_HEADERDATA, f);
    curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(curl, CURLOPT_WRITEDATA, f);
    if (f->from > 0) {
        snprintf(range, sizeof range, "%llu-", (unsigned long long)f->from);
        curl_easy_setopt(curl, CURLOPT_RANGE, range);
    }
    CURLcode cc = curl_easy_perform(curl);
    long status = 0;
    curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &status);
    curl_easy_cleanup(curl);
    progress_end(&f->prog);

    char have[32], want[32];
    if (f->rc != 0) {
        *err = f->err;
        return f->rc;
    }
    if (cc == CURLE_HTTP_RETURNED_ERROR && status == 416 && f->from > 0) {
        *retry = true;
        return 0;
    }
    if (cc == CURLE_HTTP_RETURNED_ERROR)
        return pull_http_status_error(status, f->b->label, f->b->url, false, err);
    if (cc == CURLE_OK && !f->started) {
        /* An empty body: no chunk came to decide on. */
        if ((rc = start_body(f)) != 0) {
            *err = f->err;
            return rc;
        }
    }
    if (cc == CURLE_PARTIAL_FILE ||
        (cc == CURLE_OK && f->total != PULL_SIZE_UNKNOWN && f->offset < f->total)) {
        if (f->total == PULL_SIZE_UNKNOWN)
            return mlx_err_set(err, MLX_EIO,
                               "the server closed the connection after %llu bytes of %s; "
                               "run the pull again to resume",
                               (unsigned long long)f->offset, f->b->label);
        cache_format_bytes(f->offset, have, sizeof have);
        cache_format_bytes(f->total, want, sizeof want);
        return mlx_err_set(err, MLX_EIO,
                           "the server closed the connection after %llu of %llu bytes of "
                           "%s (%s of %s); run the pull again to resume",
                           (unsigned long long)f->offset, (unsigned long long)f->total,
                           f->b->label, have, want);
    }
    if (cc != CURLE_OK)
        return pull_http_transfer_error(cc, f->b->url, errbuf, f->net->stall_s, err);
    return 0;
}

/* ---- the whole fetch ------------------------------------------------------ */

/* Compares the digests: equal, the blob goes into the store; different,
 * *mismatch is set and the file is left for the caller to judge. */
static int finish(struct fetch *f, store *s, pull_blob_result *out, bool *mismatch,
                  mlx_err *err)
{
    uint8_t d256[MLX_SHA256_LEN], d1[EVP_MAX_MD_SIZE];
    unsigned n1 = 0;
    int rc = mlx_sha256_final(&f->sha256, d256, err);
    if (rc != 0)
        return rc;
    mlx_sha256_hex(d256, out->sha256);
    char actual[65];
    if (f->sha1 != NULL) {
        if (EVP_DigestFinal_ex(f->sha1, d1, &n1) != 1 || n1 != 20)
            return mlx_err_set(err, MLX_EINTERNAL, "OpenSSL could not finish a SHA-1");
        for (unsigned i = 0; i < n1; i++)
            snprintf(actual + 2 * i, 3, "%02x", d1[i]);
    } else {
        memcpy(actual, out->sha256, sizeof actual);
    }
    if (strcmp(actual, f->b->expected) != 0) {
        *mismatch = true;
        return mlx_err_set(err, MLX_ECORRUPT,
                           "the download of %s does not match its digest: expected %s "
                           "%s, got %s; it was removed",
                           f->b->label,
                           f->b->kind == PULL_DIGEST_GIT_SHA1 ? "git blob id" : "sha256",
                           f->b->expected, actual);
    }
    out->size = f->offset;
    return store_put_blob(s, f->path, out->sha256, f->offset, err);
}

/* GETs the rest of the blob, starting over once when the server cannot
 * resume (416). */
static int download(struct fetch *f, mlx_err *err)
{
    const pull_blob *b = f->b;
    int rc;
    if (b->size != PULL_SIZE_UNKNOWN &&
        (rc = check_space(f, b->size - f->offset, err)) != 0)
        return rc;
    bool retry = false;
    rc = transfer(f, &retry, err);
    if (rc == 0 && retry) {
        mlx_log_info(MOD, "the server refused to resume; starting over", "file=\"%s\"",
                     b->label);
        if ((rc = restart(f, err)) == 0)
            rc = transfer(f, &retry, err);
        if (rc == 0 && retry)
            rc = mlx_err_set(err, MLX_EHTTP,
                             "%.200s answered 416 to a request for the whole file",
                             b->url);
    }
    return rc;
}

int pull_fetch_blob(const pull_net *n, store *s, const pull_blob *b,
                    pull_blob_result *out, mlx_err *err)
{
    memset(out, 0, sizeof *out);
    if (b->kind == PULL_DIGEST_GIT_SHA1 && b->size == PULL_SIZE_UNKNOWN)
        return mlx_err_set(err, MLX_EINVAL, "%s: a git blob id needs a known size",
                           b->label);
    struct fetch f = {.net = n, .b = b, .tmp_dir = store_tmp_dir(s), .fd = -1};
    bool in_store = false;
    int rc = lock_partial(&f, s, &in_store, err);
    if (rc == 0 && !in_store && b->kind == PULL_DIGEST_SHA256 &&
        store_has_blob(s, b->expected)) {
        remove_partial(&f); /* an empty file we made; the holder finished */
        in_store = true;
    }
    if (rc != 0 || in_store) {
        if (f.fd >= 0)
            close(f.fd);
        if (rc == 0) {
            memcpy(out->sha256, b->expected, sizeof out->sha256);
            out->size = b->size;
            out->reused = true;
            if (b->size == PULL_SIZE_UNKNOWN) {
                char path[4096];
                struct stat st;
                store_blob_path(s, b->expected, path, sizeof path);
                out->size = stat(path, &st) == 0 ? (uint64_t)st.st_size : 0;
            }
        }
        return rc;
    }

    struct stat st;
    uint64_t partial = fstat(f.fd, &st) == 0 ? (uint64_t)st.st_size : 0;
    pull_resume plan = pull_decide_resume(partial, b->size);
    if ((rc = hash_reset(&f, err)) != 0)
        goto out;
    if (plan == PULL_RESUME_DISCARD) {
        mlx_log_info(MOD, "discarding a partial download larger than the file",
                     "file=\"%s\" bytes=%llu", b->label, (unsigned long long)partial);
        if ((rc = restart(&f, err)) != 0)
            goto out;
    } else if (plan != PULL_RESUME_FRESH) {
        if ((rc = hash_prefix(&f, partial, err)) != 0)
            goto out;
        f.offset = partial;
        f.kept = partial;
    }
    /* A resumed file that does not match may hold bad bytes from before
     * (a disk error, another server): it gets one more try, from byte 0. */
    for (int pass = 0; pass < 2; pass++) {
        if ((plan != PULL_RESUME_CHECK || pass > 0) && (rc = download(&f, err)) != 0)
            goto out;
        bool mismatch = false;
        out->resumed_from = f.kept;
        rc = finish(&f, s, out, &mismatch, err);
        if (!mismatch)
            break;
        if (f.kept == 0 || pass > 0) {
            remove_partial(&f);
            break;
        }
        mlx_log_warn(MOD,
                     "a resumed download does not match its digest; fetching it whole",
                     "file=\"%s\"", b->label);
        if ((rc = restart(&f, err)) != 0)
            goto out;
    }
out:
    out->downloaded = f.received;
    /* A failure before any byte came leaves nothing worth resuming. */
    if (rc != 0 && fstat(f.fd, &st) == 0 && st.st_size == 0)
        remove_partial(&f);
    mlx_sha256_abort(&f.sha256);
    EVP_MD_CTX_free(f.sha1);
    close(f.fd); /* releases the lock, after the rename */
    return rc;
}
