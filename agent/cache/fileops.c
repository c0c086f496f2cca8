/*
 * fileops.c — bytes from one file into another: a clone where the file
 * system can share extents (FICLONE on Linux btrfs/XFS, clonefile on APFS),
 * else a copy; both hash what they write, so the digest describes exactly
 * the new file's bytes.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <unistd.h>
#ifdef __linux__
#include <linux/fs.h>
#endif
#ifdef __APPLE__
#include <sys/clonefile.h>
#endif

#include "agent/cache/internal.h"
#include "common/alloc.h"

bool cache_clone(const char *source, const char *dest)
{
#ifdef __linux__
    bool cloned = false;
    int in = open(source, O_RDONLY | O_CLOEXEC);
    if (in < 0)
        return false;
    int out = open(dest, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
    if (out >= 0) {
        cloned = ioctl(out, FICLONE, in) == 0;
        close(out);
        if (!cloned)
            unlink(dest);
    }
    close(in);
    return cloned;
#elif defined(__APPLE__)
    return clonefile(source, dest, 0) == 0;
#else
    (void)source;
    (void)dest;
    return false;
#endif
}

static int write_all(int fd, const uint8_t *p, size_t n)
{
    while (n > 0) {
        ssize_t w = write(fd, p, n);
        if (w < 0 && errno == EINTR)
            continue;
        if (w < 0)
            return -1;
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

int cache_copy_hashing(const char *source, const char *dest, char *hex, uint64_t *size,
                       mlx_err *err)
{
    if (cache_clone(source, dest)) {
        struct stat st;
        int rc = cache_hash_path(dest, hex, err);
        if (rc == 0 && stat(dest, &st) == 0)
            *size = (uint64_t)st.st_size;
        if (rc != 0)
            unlink(dest);
        return rc;
    }
    enum { CHUNK = 4 << 20 };
    int in = open(source, O_RDONLY | O_CLOEXEC);
    if (in < 0)
        return mlx_err_set(err, errno == ENOENT ? MLX_ENOENT : MLX_EIO,
                           "cannot read %s: %s", source, strerror(errno));
    int out = open(dest, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
    if (out < 0) {
        int e = errno;
        close(in);
        return mlx_err_set(err, MLX_EIO, "cannot write %s: %s", dest, strerror(e));
    }
    uint8_t *chunk = mlx_malloc(CHUNK);
    mlx_sha256 h = {0};
    int rc = chunk == NULL ? mlx_err_set(err, MLX_ENOMEM, "out of memory")
                           : mlx_sha256_init(&h, err);
    uint64_t total = 0;
    while (rc == 0) {
        ssize_t n = read(in, chunk, CHUNK);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            rc = mlx_err_set(err, MLX_EIO, "cannot read %s: %s", source, strerror(errno));
            break;
        }
        if (n == 0)
            break;
        if (write_all(out, chunk, (size_t)n) != 0) {
            rc = mlx_err_set(err, MLX_EIO, "cannot write %s: %s", dest, strerror(errno));
            break;
        }
        total += (uint64_t)n;
        rc = mlx_sha256_update(&h, chunk, (size_t)n, err);
    }
    uint8_t digest[MLX_SHA256_LEN];
    if (rc == 0 && (rc = mlx_sha256_final(&h, digest, err)) == 0) {
        mlx_sha256_hex(digest, hex);
        *size = total;
    }
    mlx_sha256_abort(&h); /* frees what a failure left; nothing after final */
    mlx_free(chunk);
    close(in);
    if (close(out) != 0 && rc == 0)
        rc = mlx_err_set(err, MLX_EIO, "cannot write %s: %s", dest, strerror(errno));
    if (rc != 0)
        unlink(dest);
    return rc;
}

static ssize_t read_full(int fd, uint8_t *buf, size_t n)
{
    size_t got = 0;
    while (got < n) {
        ssize_t r = read(fd, buf + got, n - got);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0)
            return -1;
        if (r == 0)
            break;
        got += (size_t)r;
    }
    return (ssize_t)got;
}

int cache_same_bytes(const char *a, const char *b, bool *same, mlx_err *err)
{
    enum { CHUNK = 1 << 20 };
    *same = false;
    int fa = open(a, O_RDONLY | O_CLOEXEC), fb = open(b, O_RDONLY | O_CLOEXEC);
    uint8_t *ba = mlx_malloc(CHUNK), *bb = mlx_malloc(CHUNK);
    int rc = 0;
    if (fa < 0 || fb < 0)
        rc = mlx_err_set(err, MLX_EIO, "cannot read %s: %s", fa < 0 ? a : b,
                         strerror(errno));
    else if (ba == NULL || bb == NULL)
        rc = mlx_err_set(err, MLX_ENOMEM, "out of memory");
    while (rc == 0) {
        ssize_t na = read_full(fa, ba, CHUNK), nb = read_full(fb, bb, CHUNK);
        if (na < 0 || nb < 0) {
            rc = mlx_err_set(err, MLX_EIO, "cannot read %s: %s", na < 0 ? a : b,
                             strerror(errno));
        } else if (na != nb || memcmp(ba, bb, (size_t)na) != 0) {
            break;
        } else if (na == 0) {
            *same = true;
            break;
        }
    }
    mlx_free(ba);
    mlx_free(bb);
    if (fa >= 0)
        close(fa);
    if (fb >= 0)
        close(fb);
    return rc;
}
