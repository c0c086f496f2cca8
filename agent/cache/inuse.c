/*
 * inuse.c — which files other processes are using.
 *
 * dedup must never replace a file another process is writing, and gc must
 * never delete a model a running engine has mapped. On Linux both are read
 * from /proc: every process's open descriptors (/proc/<pid>/fd, with the
 * access mode from /proc/<pid>/fdinfo) and its mappings (/proc/<pid>/maps,
 * whose lines carry the device and inode of each mapped file). Processes
 * of other users are invisible without privileges; that is the same limit
 * the kernel sets on what we could harm anyway.
 *
 * macOS has no /proc; there the set is empty and the callers' other
 * guards (dedup re-checks size, mtime and inode right before each step and
 * compares the bytes) are what protect.
 */
#include <dirent.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#ifdef __linux__
#include <sys/sysmacros.h>
#endif

#include "agent/cache/internal.h"
#include "common/alloc.h"
#include "common/path.h"

struct inuse_entry {
    dev_t dev;
    ino_t ino;
    bool writing;
};

static int push(inuse_set *set, dev_t dev, ino_t ino, bool writing)
{
    if (set->n == set->cap) {
        size_t cap = set->cap ? set->cap * 2 : 256;
        struct inuse_entry *grown = mlx_realloc(set->items, cap * sizeof *grown);
        if (grown == NULL)
            return MLX_ENOMEM;
        set->items = grown;
        set->cap = cap;
    }
    set->items[set->n++] = (struct inuse_entry){dev, ino, writing};
    return 0;
}

#ifdef __linux__
/* The access mode of an open descriptor: fdinfo's "flags:" line is octal. */
static bool fd_writes(const char *pid, const char *fd)
{
    char path[300], *text = NULL;
    snprintf(path, sizeof path, "/proc/%s/fdinfo/%s", pid, fd);
    if (mlx_path_read_small(path, 4096, &text, NULL) != 0)
        return false;
    const char *p = strstr(text, "flags:");
    unsigned long v = 0;
    if (p != NULL) {
        for (p += 6; *p == '\t' || *p == ' '; p++)
            ;
        for (; *p >= '0' && *p <= '7'; p++)
            v = v * 8 + (unsigned long)(*p - '0');
    }
    mlx_free(text);
    return (v & O_ACCMODE) == O_WRONLY || (v & O_ACCMODE) == O_RDWR;
}

static int collect_fds(inuse_set *set, const char *pid)
{
    char dir[300];
    snprintf(dir, sizeof dir, "/proc/%s/fd", pid);
    DIR *fds = opendir(dir);
    if (fds == NULL)
        return 0; /* gone, or another user's */
    int rc = 0;
    struct dirent *f;
    while (rc == 0 && (f = readdir(fds)) != NULL) {
        char link[600];
        struct stat st;
        snprintf(link, sizeof link, "%s/%s", dir, f->d_name);
        if (f->d_name[0] != '.' && stat(link, &st) == 0 && S_ISREG(st.st_mode))
            rc = push(set, st.st_dev, st.st_ino, fd_writes(pid, f->d_name));
    }
    closedir(fds);
    return rc;
}

/* Reads an unsigned number in base 16 or 10 at *p; false when none is there. */
static bool read_num(const char **p, unsigned base, unsigned long long *out)
{
    unsigned long long v = 0;
    const char *s = *p;
    for (;; s++) {
        unsigned d;
        if (*s >= '0' && *s <= '9')
            d = (unsigned)(*s - '0');
        else if (base == 16 && *s >= 'a' && *s <= 'f')
            d = (unsigned)(*s - 'a' + 10);
        else
            break;
        v = v * base + d;
    }
    if (s == *p)
        return false;
    *p = s;
    *out = v;
    return true;
}

/* A maps line: "start-end perms offset MAJ:MIN inode path". */
static bool parse_map_line(const char *line, dev_t *dev, ino_t *ino)
{
    const char *p = line;
    for (int field = 0; field < 3; field++) { /* range, perms, offset */
        p = strchr(p, ' ');
        if (p == NULL)
            return false;
        p++;
    }
    unsigned long long maj, min, inode;
    if (!read_num(&p, 16, &maj) || *p++ != ':' || !read_num(&p, 16, &min) ||
        *p++ != ' ' || !read_num(&p, 10, &inode) || inode == 0)
        return false;
    *dev = makedev((unsigned)maj, (unsigned)min);
    *ino = (ino_t)inode;
    return true;
}

static int collect_maps(inuse_set *set, const char *pid)
{
    char path[300];
    snprintf(path, sizeof path, "/proc/%s/maps", pid);
    FILE *f = fopen(path, "re");
    if (f == NULL)
        return 0;
    int rc = 0;
    char line[4096];
    while (rc == 0 && fgets(line, sizeof line, f) != NULL) {
        dev_t dev;
        ino_t ino;
        /* A mapped file shows once per region: keep one entry in a row. */
        if (parse_map_line(line, &dev, &ino) &&
            (set->n == 0 || set->items[set->n - 1].ino != ino ||
             set->items[set->n - 1].dev != dev))
            rc = push(set, dev, ino, false);
        if (strchr(line, '\n') == NULL) { /* a path longer than line: skip the rest */
            int c;
            while ((c = fgetc(f)) != EOF && c != '\n')
                ;
        }
    }
    fclose(f);
    return rc;
}
#endif

int cache_inuse_collect(inuse_set *out, unsigned what, mlx_err *err)
{
    memset(out, 0, sizeof *out);
#ifdef __linux__
    DIR *procs = opendir("/proc");
    if (procs == NULL)
        return 0;
    char self[24];
    snprintf(self, sizeof self, "%ld", (long)getpid());
    int rc = 0;
    struct dirent *p;
    while (rc == 0 && (p = readdir(procs)) != NULL) {
        if (p->d_name[0] < '0' || p->d_name[0] > '9' || strcmp(p->d_name, self) == 0)
            continue;
        if (what & INUSE_OPEN)
            rc = collect_fds(out, p->d_name);
        if (rc == 0 && (what & INUSE_MAPPED))
            rc = collect_maps(out, p->d_name);
    }
    closedir(procs);
    if (rc != 0) {
        cache_inuse_free(out);
        return mlx_err_set(err, MLX_ENOMEM, "out of memory listing open files");
    }
#else
    (void)what;
    (void)err;
#endif
    return 0;
}

bool cache_inuse_has(const inuse_set *set, dev_t dev, ino_t ino, bool writing_only)
{
    for (size_t i = 0; i < set->n; i++)
        if (set->items[i].ino == ino && set->items[i].dev == dev &&
            (!writing_only || set->items[i].writing))
            return true;
    return false;
}

void cache_inuse_free(inuse_set *set)
{
    mlx_free(set->items);
    memset(set, 0, sizeof *set);
}

bool cache_open_for_writing(dev_t dev, ino_t ino)
{
    inuse_set set;
    if (cache_inuse_collect(&set, INUSE_OPEN, NULL) != 0)
        return true; /* cannot tell: assume the worst */
    bool writing = cache_inuse_has(&set, dev, ino, true);
    cache_inuse_free(&set);
    return writing;
}
