/*
 * add.c — a model file from anywhere on disk into the store, under a name.
 *
 * The bytes are cloned or copied into <data>/tmp while they are hashed,
 * then renamed into place as a blob: the store never points at a file a
 * person may later edit or delete. Only files the engine or a peer can use
 * are taken: GGUF (by its magic) and safetensors (by its header).
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
#include "common/rand.h"

/* "gguf" or "safetensors" from the first bytes, or NULL. */
static const char *detect_format(int fd, uint64_t size)
{
    uint8_t head[9];
    ssize_t n = pread(fd, head, sizeof head, 0);
    if (n >= 4 && memcmp(head, "GGUF", 4) == 0)
        return "gguf";
    /* safetensors: a little-endian u64 header length, then a JSON object. */
    if (n == (ssize_t)sizeof head) {
        uint64_t len = 0;
        for (int i = 7; i >= 0; i--)
            len = len << 8 | head[i];
        if (len >= 2 && len <= size - 8 && head[8] == '{')
            return "safetensors";
    }
    return NULL;
}

/* The file's name inside the model: its own when that is a valid name, else
 * "model.<format>". */
static void file_name(const char *file, const char *format, char *out, size_t size)
{
    const char *base = strrchr(file, '/') != NULL ? strrchr(file, '/') + 1 : file;
    size_t n = strlen(base), m = strlen(format);
    bool suffixed =
        n > m + 1 && base[n - m - 1] == '.' && strcmp(base + n - m, format) == 0;
    if (suffixed && store_check_name(base, NULL) == 0)
        snprintf(out, size, "%s", base);
    else
        snprintf(out, size, "model.%s", format);
}

int cache_add_file(store *s, const char *file, const char *name, cache_added *out,
                   mlx_err *err)
{
    memset(out, 0, sizeof *out);
    int rc = store_check_name(name, err);
    if (rc != 0)
        return rc;
    int fd = open(file, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return mlx_err_set(err, errno == ENOENT ? MLX_ENOENT : MLX_EIO,
                           "cannot read %s: %s", file, strerror(errno));
    struct stat st;
    const char *format = NULL;
    if (fstat(fd, &st) != 0)
        rc = mlx_err_set(err, MLX_EIO, "cannot read %s: %s", file, strerror(errno));
    else if (!S_ISREG(st.st_mode))
        rc = mlx_err_set(err, MLX_EINVAL, "%s is not a file; add takes one model file",
                         file);
    else if ((uint64_t)st.st_size > BLOB_MAX_BYTES)
        rc = mlx_err_set(err, MLX_ETOOBIG, "%s is larger than the store takes (1 TiB)",
                         file);
    else if ((format = detect_format(fd, (uint64_t)st.st_size)) == NULL)
        rc = mlx_err_set(err, MLX_EINVAL,
                         "%s is neither a GGUF nor a safetensors file; only those can be "
                         "added",
                         file);
    close(fd);
    if (rc != 0)
        return rc;

    char suffix[17], temp[PATH_MAX], real[PATH_MAX];
    if ((rc = mlx_rand_hex(suffix, 16, err)) != 0)
        return rc;
    snprintf(temp, sizeof temp, "%s/add-%s.tmp", store_tmp_dir(s), suffix);
    if (realpath(file, real) == NULL)
        snprintf(real, sizeof real, "%s", file);
    file_name(file, format, out->path, sizeof out->path);
    out->format = format;

    uint64_t size = 0;
    if ((rc = cache_copy_hashing(file, temp, out->sha256, &size, err)) != 0)
        return rc;
    if (size != (uint64_t)st.st_size) {
        unlink(temp);
        return mlx_err_set(err, MLX_EBUSY, "%s changed while it was read; try again",
                           file);
    }
    if ((rc = store_put_blob(s, temp, out->sha256, size, err)) != 0) {
        unlink(temp);
        return rc;
    }
    out->size = size;
    store_file f = {.path = out->path, .size = size};
    memcpy(f.sha256, out->sha256, MLX_SHA256_HEX);
    store_model m = {
        .name = name,
        .source = STORE_SRC_LOCAL,
        .origin = real,
        .format = format,
        .files = &f,
        .n_files = 1,
    };
    return store_add_model(s, &m, err);
}
