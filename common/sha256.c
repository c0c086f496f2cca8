/* sha256.c — SHA-256 via OpenSSL EVP. */
#include "common/sha256.h"

#include <errno.h>
#include <fcntl.h>
#include <openssl/evp.h>
#include <string.h>
#include <unistd.h>

#include "common/alloc.h"

int mlx_sha256_init(mlx_sha256 *h, mlx_err *err)
{
    EVP_MD_CTX *md = EVP_MD_CTX_new();
    if (md == NULL)
        return mlx_err_set(err, MLX_ENOMEM, "out of memory creating a SHA-256 context");
    if (EVP_DigestInit_ex(md, EVP_sha256(), NULL) != 1) {
        EVP_MD_CTX_free(md);
        return mlx_err_set(err, MLX_EINTERNAL,
                           "OpenSSL could not start a SHA-256 digest");
    }
    h->md = md;
    return 0;
}

int mlx_sha256_update(mlx_sha256 *h, const void *data, size_t len, mlx_err *err)
{
    if (EVP_DigestUpdate(h->md, data, len) != 1)
        return mlx_err_set(err, MLX_EINTERNAL, "OpenSSL SHA-256 update failed");
    return 0;
}

int mlx_sha256_final(mlx_sha256 *h, uint8_t out[MLX_SHA256_LEN], mlx_err *err)
{
    unsigned int n = 0;
    int ok = EVP_DigestFinal_ex(h->md, out, &n);
    mlx_sha256_abort(h);
    if (ok != 1 || n != MLX_SHA256_LEN)
        return mlx_err_set(err, MLX_EINTERNAL, "OpenSSL SHA-256 final failed");
    return 0;
}

void mlx_sha256_abort(mlx_sha256 *h)
{
    EVP_MD_CTX_free(h->md);
    h->md = NULL;
}

int mlx_sha256_buf(const void *data, size_t len, uint8_t out[MLX_SHA256_LEN],
                   mlx_err *err)
{
    mlx_sha256 h = {0};
    int rc = mlx_sha256_init(&h, err);
    if (rc != 0)
        return rc;
    if ((rc = mlx_sha256_update(&h, data, len, err)) != 0) {
        mlx_sha256_abort(&h);
        return rc;
    }
    return mlx_sha256_final(&h, out, err);
}

int mlx_sha256_file(const char *path, uint8_t out[MLX_SHA256_LEN], mlx_err *err)
{
    enum { CHUNK = 1 << 20 };
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return mlx_err_set(err, errno == ENOENT ? MLX_ENOENT : MLX_EIO,
                           "cannot open %s: %s", path, strerror(errno));
    uint8_t *chunk = mlx_malloc(CHUNK);
    mlx_sha256 h = {0};
    int rc = chunk == NULL ? mlx_err_set(err, MLX_ENOMEM, "out of memory")
                           : mlx_sha256_init(&h, err);
    while (rc == 0) {
        ssize_t n = read(fd, chunk, CHUNK);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            rc = mlx_err_set(err, MLX_EIO, "cannot read %s: %s", path, strerror(errno));
            break;
        }
        if (n == 0)
            break;
        rc = mlx_sha256_update(&h, chunk, (size_t)n, err);
    }
    if (rc == 0)
        rc = mlx_sha256_final(&h, out, err);
    else
        mlx_sha256_abort(&h);
    mlx_free(chunk);
    close(fd);
    return rc;
}

void mlx_sha256_hex(const uint8_t digest[MLX_SHA256_LEN], char out[MLX_SHA256_HEX])
{
    static const char hex[] = "0123456789abcdef";
    for (int i = 0; i < MLX_SHA256_LEN; i++) {
        out[2 * i] = hex[digest[i] >> 4];
        out[2 * i + 1] = hex[digest[i] & 15];
    }
    out[64] = '\0';
}

static int hex_value(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

int mlx_sha256_parse_hex(const char *hex, uint8_t out[MLX_SHA256_LEN], mlx_err *err)
{
    uint8_t tmp[MLX_SHA256_LEN];
    for (int i = 0; i < MLX_SHA256_LEN; i++) {
        int hi = hex[2 * i] != '\0' ? hex_value(hex[2 * i]) : -1;
        int lo = hi >= 0 && hex[2 * i + 1] != '\0' ? hex_value(hex[2 * i + 1]) : -1;
        if (hi < 0 || lo < 0)
            return mlx_err_set(err, MLX_EINVAL,
                               "'%.80s' is not a SHA-256 digest (64 hex digits)", hex);
        tmp[i] = (uint8_t)(hi << 4 | lo);
    }
    if (hex[64] != '\0')
        return mlx_err_set(err, MLX_EINVAL,
                           "'%.80s' is not a SHA-256 digest (64 hex digits)", hex);
    memcpy(out, tmp, sizeof tmp);
    return 0;
}
