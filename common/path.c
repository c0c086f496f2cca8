/* path.c — home expansion, mkdir -p, small atomic files. */
#include "common/path.h"

#include <errno.h>
#include <fcntl.h>
#include <pwd.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/alloc.h"
#include "common/buf.h"

static const char *home_dir(void)
{
    const char *home = getenv("HOME");
    if (home != NULL && home[0] != '\0')
        return home;
    struct passwd *pw = getpwuid(getuid());
    return pw != NULL ? pw->pw_dir : NULL;
}

int mlx_path_expand_user(const char *path, char **out, mlx_err *err)
{
    if (path[0] == '~' && (path[1] == '\0' || path[1] == '/')) {
        const char *home = home_dir();
        if (home == NULL)
            return mlx_err_set(
                err, MLX_EINVAL,
                "cannot expand '%s': HOME is not set; give an absolute path", path);
        *out = mlx_path_join(home, path[1] == '/' ? path + 2 : "");
    } else {
        *out = mlx_strdup(path);
    }
    return *out != NULL ? 0 : mlx_err_set(err, MLX_ENOMEM, "out of memory");
}

char *mlx_path_join(const char *dir, const char *name)
{
    mlx_buf b;
    mlx_buf_init(&b, 4096);
    size_t dlen = strlen(dir);
    bool slash = dlen > 0 && dir[dlen - 1] != '/' && name[0] != '\0';
    if (mlx_buf_printf(&b, "%s%s%s", dir, slash ? "/" : "", name) != 0)
        return NULL;
    return mlx_buf_take(&b);
}

int mlx_path_mkdirs(const char *path, unsigned mode, mlx_err *err)
{
    if (path[0] == '\0') /* the walk below starts after the first byte */
        return mlx_err_set(err, MLX_EINVAL,
                           "cannot create a directory with an empty name");
    char *copy = mlx_strdup(path);
    if (copy == NULL)
        return mlx_err_set(err, MLX_ENOMEM, "out of memory");
    int rc = 0;
    for (char *p = copy + 1;; p++) {
        if (*p != '/' && *p != '\0')
            continue;
        char saved = *p;
        *p = '\0';
        if (mkdir(copy, (mode_t)mode) != 0 && errno != EEXIST) {
            rc = mlx_err_set(err, errno == EACCES ? MLX_EPERM : MLX_EIO,
                             "cannot create directory %s: %s", copy, strerror(errno));
            break;
        }
        *p = saved;
        if (saved == '\0')
            break;
    }
    if (rc == 0) {
        struct stat st;
        if (stat(path, &st) != 0 || !S_ISDIR(st.st_mode))
            rc = mlx_err_set(err, MLX_EIO, "%s exists and is not a directory", path);
    }
    mlx_free(copy);
    return rc;
}

int mlx_path_read_small(const char *path, size_t max, char **out, mlx_err *err)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        int code = errno == ENOENT ? MLX_ENOENT : errno == EACCES ? MLX_EPERM : MLX_EIO;
        return mlx_err_set(err, code, "cannot read %s: %s", path, strerror(errno));
    }
    mlx_buf b;
    mlx_buf_init(&b, max);
    int rc = 0;
    char chunk[4096];
    for (;;) {
        ssize_t n = read(fd, chunk, sizeof chunk);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            rc = mlx_err_set(err, MLX_EIO, "cannot read %s: %s", path, strerror(errno));
            break;
        }
        if (n == 0)
            break;
        rc = mlx_buf_append(&b, chunk, (size_t)n);
        if (rc == MLX_ETOOBIG) {
            mlx_err_set(err, rc, "%s is larger than %zu bytes", path, max);
            break;
        }
        if (rc != 0) {
            mlx_err_set(err, rc, "out of memory reading %s", path);
            break;
        }
    }
    close(fd);
    if (rc != 0) {
        mlx_buf_fini(&b);
        return rc;
    }
    *out = mlx_buf_take(&b);
    return *out != NULL ? 0 : mlx_err_set(err, MLX_ENOMEM, "out of memory");
}

int mlx_path_write_atomic(const char *path, const void *data, size_t len, mlx_err *err)
{
    mlx_buf tmp;
    mlx_buf_init(&tmp, 4096 + strlen(path));
    if (mlx_buf_printf(&tmp, "%s.tmp.%ld", path, (long)getpid()) != 0)
        return mlx_err_set(err, MLX_ENOMEM, "out of memory");
    const char *tmp_path = mlx_buf_str(&tmp);
    int rc = 0;
    int fd = open(tmp_path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) {
        rc = mlx_err_set(err, MLX_EIO, "cannot write %s: %s", tmp_path, strerror(errno));
        goto out;
    }
    const char *p = data;
    size_t left = len;
    while (left > 0) {
        ssize_t n = write(fd, p, left);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            rc = mlx_err_set(err, MLX_EIO, "cannot write %s: %s", tmp_path,
                             strerror(errno));
            break;
        }
        p += n;
        left -= (size_t)n;
    }
    if (rc == 0 && fsync(fd) != 0)
        rc = mlx_err_set(err, MLX_EIO, "cannot sync %s: %s", tmp_path, strerror(errno));
    close(fd);
    if (rc == 0 && rename(tmp_path, path) != 0)
        rc = mlx_err_set(err, MLX_EIO, "cannot rename %s to %s: %s", tmp_path, path,
                         strerror(errno));
    if (rc != 0)
        unlink(tmp_path);
out:
    mlx_buf_fini(&tmp);
    return rc;
}

int mlx_path_lock(const char *dir, const char *name, const char *who, int *fd,
                  mlx_err *err)
{
    char *path = mlx_path_join(dir, name);
    if (path == NULL)
        return mlx_err_set(err, MLX_ENOMEM, "out of memory");
    int rc = 0;
    int f = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    if (f < 0) {
        rc = mlx_err_set(err, MLX_EIO, "cannot open %s: %s", path, strerror(errno));
    } else if (flock(f, LOCK_EX | LOCK_NB) != 0) {
        rc = mlx_err_set(
            err, MLX_EBUSY,
            "another %s is already using %s; stop it or choose another --data "
            "directory",
            who, dir);
        close(f);
    } else {
        *fd = f;
    }
    mlx_free(path);
    return rc;
}
