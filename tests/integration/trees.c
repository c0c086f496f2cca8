/* trees.c — HF and Ollama fixture trees (see trees.h). */
#include "tests/integration/trees.h"

#include <errno.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static void die(const char *what, const char *path)
{
    fprintf(stderr, "trees: %s %s: %s\n", what, path, strerror(errno));
    abort();
}

void tree_mkdirs(const char *path)
{
    char buf[4096];
    snprintf(buf, sizeof buf, "%s", path);
    for (char *p = buf + 1; *p != '\0'; p++) {
        if (*p != '/')
            continue;
        *p = '\0';
        if (mkdir(buf, 0755) != 0 && errno != EEXIST)
            die("cannot create", buf);
        *p = '/';
    }
    if (mkdir(buf, 0755) != 0 && errno != EEXIST)
        die("cannot create", buf);
}

static void parent_dirs(const char *path)
{
    char dir[4096];
    snprintf(dir, sizeof dir, "%s", path);
    char *slash = strrchr(dir, '/');
    if (slash != NULL && slash != dir) {
        *slash = '\0';
        tree_mkdirs(dir);
    }
}

void tree_write(const char *path, const void *data, size_t len)
{
    parent_dirs(path);
    FILE *f = fopen(path, "wb");
    if (f == NULL || fwrite(data, 1, len, f) != len || fclose(f) != 0)
        die("cannot write", path);
}

void *tree_read(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (f == NULL)
        die("cannot read", path);
    size_t cap = 1 << 16, n = 0;
    char *buf = malloc(cap);
    size_t got;
    while ((got = fread(buf + n, 1, cap - n, f)) > 0) {
        n += got;
        if (n == cap)
            buf = realloc(buf, cap *= 2);
    }
    fclose(f);
    *len = n;
    return buf;
}

static void hex(const unsigned char *d, unsigned n, char *out)
{
    for (unsigned i = 0; i < n; i++)
        snprintf(out + 2 * i, 3, "%02x", d[i]);
}

void tree_sha256(const void *data, size_t len, char *out)
{
    unsigned char d[EVP_MAX_MD_SIZE];
    unsigned n = 0;
    if (EVP_Digest(data, len, d, &n, EVP_sha256(), NULL) != 1)
        abort();
    hex(d, n, out);
}

bool tree_sha256_file(const char *path, char *out)
{
    FILE *f = fopen(path, "rb");
    if (f == NULL)
        return false;
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    EVP_DigestInit_ex(ctx, EVP_sha256(), NULL);
    char buf[1 << 16];
    size_t got;
    while ((got = fread(buf, 1, sizeof buf, f)) > 0)
        EVP_DigestUpdate(ctx, buf, got);
    fclose(f);
    unsigned char d[EVP_MAX_MD_SIZE];
    unsigned n = 0;
    EVP_DigestFinal_ex(ctx, d, &n);
    EVP_MD_CTX_free(ctx);
    hex(d, n, out);
    return true;
}

/* git's object name for a blob: SHA-1 of "blob <len>\0" and the bytes. */
static void git_blob_sha1(const void *data, size_t len, char *out)
{
    char head[32];
    int n = snprintf(head, sizeof head, "blob %zu", len);
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    EVP_DigestInit_ex(ctx, EVP_sha1(), NULL);
    EVP_DigestUpdate(ctx, head, (size_t)n + 1);
    EVP_DigestUpdate(ctx, data, len);
    unsigned char d[EVP_MAX_MD_SIZE];
    unsigned dn = 0;
    EVP_DigestFinal_ex(ctx, d, &dn);
    EVP_MD_CTX_free(ctx);
    hex(d, dn, out);
}

void tree_hf_repo(const char *root, const char *org, const char *name, const char *rev,
                  bool main, const tree_file *files, size_t n)
{
    char repo[2048], path[4096];
    snprintf(repo, sizeof repo, "%s/models--%s--%s", root, org, name);
    for (size_t i = 0; i < n; i++) {
        char etag[65];
        if (files[i].lfs)
            tree_sha256(files[i].data, files[i].len, etag);
        else
            git_blob_sha1(files[i].data, files[i].len, etag);
        snprintf(path, sizeof path, "%s/blobs/%s", repo, etag);
        tree_write(path, files[i].data, files[i].len);
        /* The link climbs out of snapshots/<rev>/ and any sub-folders. */
        char target[4096];
        size_t used = (size_t)snprintf(target, sizeof target, "../../");
        for (const char *p = files[i].name; (p = strchr(p, '/')) != NULL; p++)
            used += (size_t)snprintf(target + used, sizeof target - used, "../");
        snprintf(target + used, sizeof target - used, "blobs/%s", etag);
        snprintf(path, sizeof path, "%s/snapshots/%s/%s", repo, rev, files[i].name);
        parent_dirs(path);
        if (symlink(target, path) != 0 && errno != EEXIST)
            die("cannot link", path);
    }
    if (main) {
        snprintf(path, sizeof path, "%s/refs/main", repo);
        tree_write(path, rev, strlen(rev));
    }
}

static void ollama_blob(const char *root, const void *data, size_t len, char *digest)
{
    tree_sha256(data, len, digest);
    char path[4096];
    snprintf(path, sizeof path, "%s/blobs/sha256-%s", root, digest);
    tree_write(path, data, len);
}

void tree_ollama_model(const char *root, const char *name, const char *tag,
                       const tree_layer *layers, size_t n)
{
    static const char config[] = "{\"model_format\":\"gguf\",\"model_family\":\"llama\"}";
    char digest[65];
    ollama_blob(root, config, sizeof config - 1, digest);
    size_t cap = 4096 + n * 256, used = 0;
    char *m = malloc(cap);
    used += (size_t)snprintf(
        m + used, cap - used,
        "{\"schemaVersion\":2,\"mediaType\":"
        "\"application/vnd.docker.distribution.manifest.v2+json\",\"config\":{"
        "\"mediaType\":\"application/vnd.docker.container.image.v1+json\",\"digest\":"
        "\"sha256:%s\",\"size\":%zu},\"layers\":[",
        digest, sizeof config - 1);
    for (size_t i = 0; i < n; i++) {
        ollama_blob(root, layers[i].data, layers[i].len, digest);
        used +=
            (size_t)snprintf(m + used, cap - used,
                             "%s{\"mediaType\":\"%s\",\"digest\":\"sha256:%s\",\"size\":"
                             "%zu}",
                             i ? "," : "", layers[i].media_type, digest, layers[i].len);
    }
    used += (size_t)snprintf(m + used, cap - used, "]}");
    char path[4096];
    snprintf(path, sizeof path, "%s/manifests/registry.ollama.ai/library/%s/%s", root,
             name, tag);
    tree_write(path, m, used);
    free(m);
}
