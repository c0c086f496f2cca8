/*
 * scan.c — finding models where HuggingFace, Ollama and people keep them.
 *
 * HuggingFace hub cache (huggingface_hub's layout):
 *   models--ORG--NAME/blobs/<etag>            the bytes (etag: sha256 for LFS
 *                                             files, git sha1 for small ones)
 *   models--ORG--NAME/snapshots/<rev>/<path>  relative symlinks to ../../blobs/…
 *   models--ORG--NAME/refs/main               the revision "main" points at
 * Ollama store:
 *   manifests/<registry>/<namespace>/<name>/<tag>   JSON manifest
 *   blobs/sha256-<hex>                               layers and config
 * --dir folders: *.gguf and *.safetensors files anywhere below.
 *
 * Nothing found is trusted: a symlink that leaves its repository, a loop,
 * a manifest that does not parse or names a missing blob becomes a problem
 * sentence in the result, and the rest of the scan goes on.
 */
#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "agent/cache/internal.h"
#include "common/alloc.h"
#include "common/path.h"

#define MAX_DEPTH 16

/* snprintf for paths: false when the result did not fit (it is then cut,
 * names a file that does not exist and is reported as unreadable). */
static bool pathf(char *out, size_t size, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static bool pathf(char *out, size_t size, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(out, size, fmt, ap);
    va_end(ap);
    return n >= 0 && (size_t)n < size;
}

void cache_scan_problem(scan_result *r, const char *fmt, ...)
{
    char line[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    char **grown = mlx_realloc(r->problems, (r->n_problems + 1) * sizeof *grown);
    if (grown == NULL)
        return;
    r->problems = grown;
    if ((r->problems[r->n_problems] = mlx_strdup(line)) != NULL)
        r->n_problems++;
}

void cache_scan_free(scan_result *r)
{
    for (size_t i = 0; i < r->n; i++) {
        mlx_free(r->files[i].model);
        mlx_free(r->files[i].path);
        mlx_free(r->files[i].location);
        mlx_free(r->files[i].error);
    }
    for (size_t i = 0; i < r->n_problems; i++)
        mlx_free(r->problems[i]);
    mlx_free(r->files);
    mlx_free(r->problems);
    memset(r, 0, sizeof *r);
}

int cache_scan_add(scan_result *r, cache_origin origin, const char *model,
                   const char *path, const char *location, const char *claimed)
{
    struct stat st;
    if (stat(location, &st) != 0 || !S_ISREG(st.st_mode)) {
        cache_scan_problem(r, "%s: %s of model '%s' is not a readable file", location,
                           path, model);
        return 0;
    }
    if (r->n == r->cap) {
        size_t cap = r->cap ? r->cap * 2 : 64;
        scan_file *grown = mlx_realloc(r->files, cap * sizeof *grown);
        if (grown == NULL)
            return MLX_ENOMEM;
        r->files = grown;
        r->cap = cap;
    }
    scan_file *f = &r->files[r->n];
    memset(f, 0, sizeof *f);
    f->model = mlx_strdup(model);
    f->path = mlx_strdup(path);
    f->location = mlx_strdup(location);
    if (f->model == NULL || f->path == NULL || f->location == NULL) {
        mlx_free(f->model);
        mlx_free(f->path);
        mlx_free(f->location);
        return MLX_ENOMEM;
    }
    f->origin = origin;
    if (claimed != NULL && cache_is_digest(claimed))
        memcpy(f->claimed, claimed, MLX_SHA256_HEX);
    f->size = (uint64_t)st.st_size;
    f->dev = st.st_dev;
    f->ino = st.st_ino;
#ifdef __APPLE__
    f->mtime_ns = (int64_t)st.st_mtimespec.tv_sec * 1000000000 + st.st_mtimespec.tv_nsec;
#else
    f->mtime_ns = (int64_t)st.st_mtim.tv_sec * 1000000000 + st.st_mtim.tv_nsec;
#endif
    f->nlink = (uint32_t)st.st_nlink;
    r->n++;
    return 0;
}

static bool has_suffix(const char *s, const char *suffix)
{
    size_t n = strlen(s), m = strlen(suffix);
    return n >= m && strcmp(s + n - m, suffix) == 0;
}

static bool inside(const char *path, const char *dir)
{
    size_t n = strlen(dir);
    return strncmp(path, dir, n) == 0 && path[n] == '/';
}

/* ---- HuggingFace -------------------------------------------------------- */

/* A snapshot being walked: its repository's real path, and whether the
 * folders between it and the blobs are real folders, not symlinks, so
 * that HF's own links can be resolved without realpath (see resolve). */
struct hf_walk {
    const char *repo_real;
    bool plain_layout;
    const char *model;
};

/* Where the snapshot entry at path, depth folders below its snapshot,
 * keeps its bytes. HF links every file to "../../blobs/<etag>" (one more
 * "../" per sub-folder): when the link says exactly that and the blob is a
 * regular file, the answer needs one readlink and one lstat, where
 * realpath would read every component of the path. Anything else —
 * another link shape, a copy without links, a layout with symlinked
 * folders — goes through realpath. */
static char *resolve(const struct hf_walk *w, const char *path, int depth, char *out,
                     size_t size)
{
    char link[PATH_MAX];
    ssize_t n = w->plain_layout ? readlink(path, link, sizeof link - 1) : -1;
    if (n > 0) {
        link[n] = '\0';
        const char *p = link;
        int ups = 0;
        while (strncmp(p, "../", 3) == 0) {
            p += 3;
            ups++;
        }
        const char *name = p + 6;
        struct stat st;
        if (ups == depth + 2 && strncmp(p, "blobs/", 6) == 0 && name[0] != '\0' &&
            strchr(name, '/') == NULL && strcmp(name, "..") != 0 &&
            strcmp(name, ".") != 0 &&
            pathf(out, size, "%s/blobs/%s", w->repo_real, name) && lstat(out, &st) == 0 &&
            S_ISREG(st.st_mode))
            return out;
    }
    return realpath(path, out);
}

/* Walks a snapshot folder: every entry is a symlink into the repository's
 * blobs (or, in copies made without symlinks, a plain file). */
static int walk_snapshot(scan_result *r, const struct hf_walk *w, const char *dir,
                         const char *rel, int depth)
{
    if (depth > MAX_DEPTH) {
        cache_scan_problem(r, "%s: nested too deep; skipped", dir);
        return 0;
    }
    DIR *d = opendir(dir);
    if (d == NULL) {
        cache_scan_problem(r, "%s: cannot read: %s", dir, strerror(errno));
        return 0;
    }
    int rc = 0;
    struct dirent *e;
    while (rc == 0 && (e = readdir(d)) != NULL) {
        if (e->d_name[0] == '.')
            continue;
        char path[PATH_MAX], sub[PATH_MAX];
        pathf(path, sizeof path, "%s/%s", dir, e->d_name);
        pathf(sub, sizeof sub, "%s%s%s", rel, rel[0] ? "/" : "", e->d_name);
        struct stat lst;
        if (lstat(path, &lst) != 0)
            continue;
        if (S_ISDIR(lst.st_mode)) {
            rc = walk_snapshot(r, w, path, sub, depth + 1);
            continue;
        }
        char real[PATH_MAX];
        if (resolve(w, path, depth, real, sizeof real) == NULL) {
            cache_scan_problem(r, "%s: %s (a dangling or looping symlink); skipped", path,
                               strerror(errno));
            continue;
        }
        if (!inside(real, w->repo_real)) {
            cache_scan_problem(
                r, "%s: refused: it resolves to %s, outside its repository", path, real);
            continue;
        }
        const char *base = strrchr(real, '/') + 1;
        rc = cache_scan_add(r, ORIGIN_HF, w->model, sub, real, base);
    }
    closedir(d);
    return rc;
}

/* True when path is a folder itself, not a symlink to one. */
static bool real_dir(const char *path)
{
    struct stat st;
    return lstat(path, &st) == 0 && S_ISDIR(st.st_mode);
}

/* The snapshot "main" points at, or else the first one there is. */
static bool pick_snapshot(const char *repo, char *rev, size_t size)
{
    char refs[PATH_MAX], *text = NULL;
    pathf(refs, sizeof refs, "%s/refs/main", repo);
    if (mlx_path_read_small(refs, 128, &text, NULL) == 0) {
        text[strcspn(text, "\r\n")] = '\0';
        char snap[PATH_MAX];
        pathf(snap, sizeof snap, "%s/snapshots/%s", repo, text);
        struct stat st;
        bool ok = text[0] != '\0' && strchr(text, '/') == NULL && stat(snap, &st) == 0;
        if (ok)
            pathf(rev, size, "%s", text);
        mlx_free(text);
        if (ok)
            return true;
    }
    char snaps[PATH_MAX];
    pathf(snaps, sizeof snaps, "%s/snapshots", repo);
    DIR *d = opendir(snaps);
    if (d == NULL)
        return false;
    bool found = false;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (e->d_name[0] != '.' && (!found || strcmp(e->d_name, rev) < 0)) {
            pathf(rev, size, "%s", e->d_name);
            found = true;
        }
    }
    closedir(d);
    return found;
}

static int scan_hf(scan_result *r, const char *root)
{
    DIR *d = opendir(root);
    if (d == NULL) {
        if (errno != ENOENT)
            cache_scan_problem(r, "%s: cannot read the HuggingFace cache: %s", root,
                               strerror(errno));
        return 0;
    }
    int rc = 0;
    struct dirent *e;
    while (rc == 0 && (e = readdir(d)) != NULL) {
        if (strncmp(e->d_name, "models--", 8) != 0)
            continue; /* datasets--, spaces--, .locks */
        const char *org = e->d_name + 8, *sep = strstr(org, "--");
        char model[512];
        if (sep == NULL || sep == org || sep[2] == '\0') {
            cache_scan_problem(r, "%s/%s: not a models--ORG--NAME folder; skipped", root,
                               e->d_name);
            continue;
        }
        pathf(model, sizeof model, "hf:%.*s/%s", (int)(sep - org), org, sep + 2);
        if (store_check_name(model, NULL) != 0) {
            cache_scan_problem(r, "%s/%s: '%s' is not a usable model name; skipped", root,
                               e->d_name, model);
            continue;
        }
        char repo[PATH_MAX], repo_real[PATH_MAX], rev[256], snap[PATH_MAX],
            blobs[PATH_MAX];
        pathf(repo, sizeof repo, "%s/%s", root, e->d_name);
        if (realpath(repo, repo_real) == NULL || !pick_snapshot(repo, rev, sizeof rev))
            continue; /* an empty repository: a download that never started */
        pathf(snap, sizeof snap, "%s/snapshots", repo_real);
        pathf(blobs, sizeof blobs, "%s/blobs", repo_real);
        struct hf_walk w = {.repo_real = repo_real, .model = model};
        w.plain_layout = real_dir(snap) && real_dir(blobs);
        pathf(snap, sizeof snap, "%s/snapshots/%s", repo_real, rev);
        w.plain_layout = w.plain_layout && real_dir(snap);
        rc = walk_snapshot(r, &w, snap, "", 0);
    }
    closedir(d);
    return rc;
}

/* ---- Ollama ------------------------------------------------------------- */

/* Adds one layer's blob; false (with a problem) when it is missing or of
 * another size than the manifest says. */
static bool add_layer(scan_result *r, const char *root, const char *model,
                      const char *path, const manifest_layer *l, int *rc)
{
    char blob[PATH_MAX], real[PATH_MAX];
    pathf(blob, sizeof blob, "%s/blobs/sha256-%s", root, l->digest);
    if (realpath(blob, real) == NULL) {
        cache_scan_problem(r, "model '%s' names blob sha256-%.12s… which is missing: %s",
                           model, l->digest, strerror(errno));
        return false;
    }
    struct stat st;
    if (stat(real, &st) == 0 && (uint64_t)st.st_size != l->size) {
        cache_scan_problem(r, "%s has %lld bytes but the manifest of '%s' says %llu",
                           real, (long long)st.st_size, model,
                           (unsigned long long)l->size);
        return false;
    }
    *rc = cache_scan_add(r, ORIGIN_OLLAMA, model, path, real, l->digest);
    return *rc == 0;
}

/* Drops the files added since r->n was first. */
static void drop_since(scan_result *r, size_t first)
{
    while (r->n > first) {
        scan_file *f = &r->files[--r->n];
        mlx_free(f->model);
        mlx_free(f->path);
        mlx_free(f->location);
        mlx_free(f->error);
    }
}

static int scan_manifest(scan_result *r, const char *root, const char *file,
                         const char *model)
{
    char *text = NULL;
    mlx_err err;
    mlx_err_clear(&err);
    manifest m;
    if (mlx_path_read_small(file, MANIFEST_MAX_BYTES, &text, &err) != 0 ||
        cache_parse_manifest(text, strlen(text), &m, &err) != 0) {
        cache_scan_problem(r, "%s: %s; skipped", file, err.msg);
        mlx_free(text);
        return 0;
    }
    mlx_free(text);
    /* All layers or none: a model without one of its blobs cannot run. */
    size_t first = r->n;
    int rc = 0;
    bool whole = add_layer(r, root, model, "config", &m.config, &rc);
    for (size_t i = 0; whole && i < m.n_layers; i++) {
        char path[160];
        cache_manifest_file_name(&m, i, path, sizeof path);
        whole = add_layer(r, root, model, path, &m.layers[i], &rc);
    }
    if (!whole)
        drop_since(r, first);
    return rc;
}

/* manifests/<registry>/<ns>/<name>/<tag>: exactly four levels. */
static int walk_manifests(scan_result *r, const char *root, const char *dir,
                          char parts[4][256], int level)
{
    DIR *d = opendir(dir);
    if (d == NULL)
        return 0;
    int rc = 0;
    struct dirent *e;
    while (rc == 0 && (e = readdir(d)) != NULL) {
        if (e->d_name[0] == '.' || strlen(e->d_name) >= 256)
            continue;
        pathf(parts[level], 256, "%s", e->d_name);
        char path[PATH_MAX];
        pathf(path, sizeof path, "%s/%s", dir, e->d_name);
        struct stat st;
        if (lstat(path, &st) != 0)
            continue;
        if (level < 3 && S_ISDIR(st.st_mode)) {
            rc = walk_manifests(r, root, path, parts, level + 1);
        } else if (level == 3 && S_ISREG(st.st_mode)) {
            char model[1100];
            cache_ollama_name(parts[0], parts[1], parts[2], parts[3], model,
                              sizeof model);
            if (store_check_name(model, NULL) != 0)
                cache_scan_problem(r, "%s: '%s' is not a usable model name; skipped",
                                   path, model);
            else
                rc = scan_manifest(r, root, path, model);
        } else {
            cache_scan_problem(r, "%s: not where a manifest belongs; skipped", path);
        }
    }
    closedir(d);
    return rc;
}

static int scan_ollama(scan_result *r, const char *root)
{
    char manifests[PATH_MAX];
    pathf(manifests, sizeof manifests, "%s/manifests", root);
    char parts[4][256];
    return walk_manifests(r, root, manifests, parts, 0);
}

/* ---- plain folders ------------------------------------------------------ */

static void local_name(const char *file, char *out, size_t size)
{
    const char *base = strrchr(file, '/') != NULL ? strrchr(file, '/') + 1 : file;
    size_t n = strlen(base);
    n -= has_suffix(base, ".gguf") ? 5 : has_suffix(base, ".safetensors") ? 12 : 0;
    pathf(out, size, "local:%.*s", (int)n, base);
    for (char *p = out + 6; *p != '\0'; p++)
        if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') ||
              (*p >= '0' && *p <= '9') || strchr("._+-", *p) != NULL))
            *p = '-';
}

static int walk_dir(scan_result *r, const char *dir, int depth)
{
    if (depth > MAX_DEPTH)
        return 0;
    DIR *d = opendir(dir);
    if (d == NULL) {
        cache_scan_problem(r, "%s: cannot read: %s", dir, strerror(errno));
        return 0;
    }
    int rc = 0;
    struct dirent *e;
    while (rc == 0 && (e = readdir(d)) != NULL) {
        if (e->d_name[0] == '.')
            continue;
        char path[PATH_MAX];
        pathf(path, sizeof path, "%s/%s", dir, e->d_name);
        struct stat lst;
        if (lstat(path, &lst) != 0)
            continue;
        if (S_ISDIR(lst.st_mode)) { /* symlinked folders are not followed: no loops */
            rc = walk_dir(r, path, depth + 1);
        } else if (has_suffix(e->d_name, ".gguf") ||
                   has_suffix(e->d_name, ".safetensors")) {
            char real[PATH_MAX], model[300];
            if (realpath(path, real) == NULL) {
                cache_scan_problem(r, "%s: %s; skipped", path, strerror(errno));
                continue;
            }
            local_name(e->d_name, model, sizeof model);
            rc = cache_scan_add(r, ORIGIN_DIR, model, strrchr(path, '/') + 1, real, NULL);
        }
    }
    closedir(d);
    return rc;
}

int cache_scan(const scan_roots *roots, scan_result *out, mlx_err *err)
{
    memset(out, 0, sizeof *out);
    int rc = 0;
    if (roots->hf != NULL && roots->hf[0] != '\0')
        rc = scan_hf(out, roots->hf);
    if (rc == 0 && roots->ollama != NULL && roots->ollama[0] != '\0')
        rc = scan_ollama(out, roots->ollama);
    for (size_t i = 0; rc == 0 && i < roots->n_dirs; i++)
        rc = walk_dir(out, roots->dirs[i], 0);
    if (rc != 0) {
        cache_scan_free(out);
        return mlx_err_set(err, MLX_ENOMEM, "out of memory while scanning");
    }
    return 0;
}
