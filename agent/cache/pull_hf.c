/*
 * pull_hf.c — models from the HuggingFace Hub, through its HTTP API:
 *
 *   GET  {endpoint}/api/models/ORG/NAME/revision/REV   the files of a commit
 *   HEAD {endpoint}/ORG/NAME/resolve/COMMIT/FILE       what one file is
 *   GET  the same URL, or the CDN it redirects to      its bytes
 *
 * A whole repository is resolved at the commit the listing names, so every
 * file comes from the same commit even when the branch moves meanwhile.
 * Small files kept in git (config.json, tokenizer files) are known by their
 * git blob id only; before downloading one again, the copy a previous pull
 * of the same model recorded is checked against that id.
 */
#include <openssl/evp.h>
#include <stdio.h>
#include <string.h>

#include "agent/cache/pull.h"
#include "common/alloc.h"
#include "common/db.h"
#include "common/log.h"
#include "common/path.h"

#define MOD "cache"

/* The blob a previous pull recorded for name/path, when its git blob id is
 * still id: that file need not be fetched again. */
static bool find_git_blob(store *s, const char *name, const char *path, uint64_t size,
                          const char *id, char sha256[65])
{
    sqlite3_stmt *st;
    if (mlx_db_prepare(s->db,
                       "SELECT f.sha256 FROM files f JOIN models m ON m.id = f.model_id "
                       "WHERE m.name = ?1 AND f.path = ?2 AND f.size = ?3",
                       &st, NULL) != 0)
        return false;
    sqlite3_bind_text(st, 1, name, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, path, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 3, (sqlite3_int64)size);
    bool found = false;
    if (sqlite3_step(st) == SQLITE_ROW) {
        const char *hex = (const char *)sqlite3_column_text(st, 0);
        found = hex != NULL && cache_is_digest(hex) && store_has_blob(s, hex);
        if (found)
            memcpy(sha256, hex, 65);
    }
    sqlite3_finalize(st);
    if (!found)
        return false;
    /* Hash it the way git does, from the store's copy (small files). */
    char blob[4096];
    store_blob_path(s, sha256, blob, sizeof blob);
    char *data = NULL;
    if (size > (1u << 24) || mlx_path_read_small(blob, (size_t)size, &data, NULL) != 0)
        return false;
    char head[40];
    int n = snprintf(head, sizeof head, "blob %llu", (unsigned long long)size);
    unsigned char d[EVP_MAX_MD_SIZE];
    unsigned dn = 0;
    EVP_MD_CTX *md = EVP_MD_CTX_new();
    bool ok = md != NULL && EVP_DigestInit_ex(md, EVP_sha1(), NULL) == 1 &&
              EVP_DigestUpdate(md, head, (size_t)n + 1) == 1 &&
              EVP_DigestUpdate(md, data, (size_t)size) == 1 &&
              EVP_DigestFinal_ex(md, d, &dn) == 1 && dn == 20;
    EVP_MD_CTX_free(md);
    mlx_free(data);
    char hex[41];
    for (unsigned i = 0; ok && i < dn; i++)
        snprintf(hex + 2 * i, 3, "%02x", d[i]);
    return ok && strcmp(hex, id) == 0;
}

/* HEADs url, following the redirects that do not describe the file yet (a
 * renamed repository) until one does; at gets the URL that answered. */
static int head_file(const pull_config *cfg, const char *url, const char *what,
                     pull_headers *h, char at[PULL_MAX_URL + 1], mlx_err *err)
{
    snprintf(at, PULL_MAX_URL + 1, "%s", url);
    for (int hop = 0; hop <= PULL_MAX_REDIRECTS; hop++) {
        int rc = pull_http_head(&cfg->net, at, h, err);
        if (rc != 0)
            return rc;
        if (h->malformed)
            return mlx_err_set(err, MLX_EPROTO,
                               "the Hub sent a malformed header for %s at %.200s", what,
                               at);
        bool described = h->etag[0] != '\0' || h->linked_etag[0] != '\0';
        if (h->status >= 300 && h->status < 400 && !described && h->location[0] != '\0') {
            snprintf(at, PULL_MAX_URL + 1, "%s", h->location);
            continue;
        }
        if (h->status == 200 || (h->status >= 300 && h->status < 400))
            return 0;
        return pull_http_status_error(h->status, what, at, true, err);
    }
    return mlx_err_set(err, MLX_EHTTP, "%.200s redirected more than %d times", url,
                       PULL_MAX_REDIRECTS);
}

/* Brings one file of the repository into the store. */
static int pull_one(store *s, const pull_source *src, const pull_config *cfg,
                    const char *commit, const char *file, pull_result *out,
                    char *seen_commit, mlx_err *err)
{
    char url[PULL_MAX_URL + 1], what[MLX_MAX_MODEL_NAME * 2 + 64];
    int n = snprintf(url, sizeof url, "%s/%s/%s/resolve/%s/%s", cfg->hf_endpoint,
                     src->org, src->repo, commit, file);
    if (n < 0 || (size_t)n >= sizeof url)
        return mlx_err_set(err, MLX_EINVAL, "the URL of %s is too long", file);
    snprintf(what, sizeof what, "file %s of %s/%s", file, src->org, src->repo);
    pull_headers *h = mlx_malloc(sizeof *h);
    if (h == NULL)
        return mlx_err_set(err, MLX_ENOMEM, "out of memory");
    char get_url[PULL_MAX_URL + 1], origin[PULL_MAX_URL + 1];
    pull_blob b = {.label = file, .url = get_url};
    int rc = head_file(cfg, url, what, h, get_url, err);
    if (rc == 0)
        rc = pull_hf_expected(h, file, &b.kind, b.expected, &b.size, err);
    if (rc == 0 && h->status >= 300 && h->status < 400) {
        /* An LFS file: its bytes are where the Hub points (a CDN). */
        if (h->location[0] == '\0')
            rc = mlx_err_set(err, MLX_EPROTO, "the Hub redirected %s to nowhere", file);
        else if ((rc = pull_url_origin(h->location, origin, sizeof origin, err)) != 0)
            rc = mlx_err_prefix(err, MLX_EPROTO, "the Hub's Location for %s", file);
        snprintf(get_url, sizeof get_url, "%s", h->location);
    } else if (rc == 0 && h->repo_commit[0] != '\0' && strcmp(get_url, url) == 0 &&
               strcmp(commit, h->repo_commit) != 0) {
        /* A file kept in git, named by branch: fetch it from the commit the
         * HEAD described, so a push in between cannot change it. */
        n = snprintf(get_url, sizeof get_url, "%s/%s/%s/resolve/%s/%s", cfg->hf_endpoint,
                     src->org, src->repo, h->repo_commit, file);
        if (n < 0 || (size_t)n >= sizeof get_url)
            rc = mlx_err_set(err, MLX_EINVAL, "the URL of %s is too long", file);
    }
    if (rc == 0 && seen_commit[0] == '\0' && h->repo_commit[0] != '\0')
        snprintf(seen_commit, PULL_MAX_HF_REV + 1, "%s", h->repo_commit);
    mlx_free(h);
    pull_file *f = rc == 0 ? pull_result_add(out, file) : NULL;
    if (rc == 0 && f == NULL)
        rc = mlx_err_set(err, MLX_ENOMEM, "out of memory");
    if (rc != 0)
        return rc;
    if (b.kind == PULL_DIGEST_GIT_SHA1 &&
        find_git_blob(s, out->name, file, b.size, b.expected, f->blob.sha256)) {
        f->blob.size = b.size;
        f->blob.reused = true;
        return 0;
    }
    return pull_fetch_blob(&cfg->net, s, &b, &f->blob, err);
}

/* The files of the repository at src->rev, and the commit that is. */
static int list_files(const pull_source *src, const pull_config *cfg, hf_revision *rev,
                      mlx_err *err)
{
    char url[PULL_MAX_URL + 1], what[PULL_MAX_HF_PART * 2 + PULL_MAX_HF_REV + 48];
    int n = snprintf(url, sizeof url, "%s/api/models/%s/%s/revision/%s", cfg->hf_endpoint,
                     src->org, src->repo, src->rev);
    if (n < 0 || (size_t)n >= sizeof url)
        return mlx_err_set(err, MLX_EUSAGE, "the Hub's URL is too long");
    snprintf(what, sizeof what, "repository %s/%s at revision %s", src->org, src->repo,
             src->rev);
    mlx_buf body;
    mlx_buf_init(&body, PULL_MAX_REVISION_JSON);
    pull_headers *h = mlx_malloc(sizeof *h);
    int rc = h == NULL
                 ? mlx_err_set(err, MLX_ENOMEM, "out of memory")
                 : pull_http_get_small(&cfg->net, url, "application/json", &body, h, err);
    if (rc == 0 && h->status != 200)
        rc = pull_http_status_error(h->status, what, url, true, err);
    if (rc == 0 && (rc = pull_parse_hf_revision(body.data != NULL ? body.data : "",
                                                body.len, rev, err)) != 0)
        rc = mlx_err_prefix(err, rc, "%s", url);
    if (rc == 0 && rev->n_files == 0)
        rc = mlx_err_set(err, MLX_ENOENT, "the %s has no files the store can hold", what);
    mlx_free(h);
    mlx_buf_fini(&body);
    return rc;
}

int pull_hf(store *s, const pull_source *src, const pull_config *cfg, pull_result *out,
            mlx_err *err)
{
    out->source = STORE_SRC_HF;
    int n;
    if (cfg->name != NULL)
        n = snprintf(out->name, sizeof out->name, "%s", cfg->name);
    else if (src->file[0] != '\0')
        n = snprintf(out->name, sizeof out->name, "hf:%s/%s/%s", src->org, src->repo,
                     src->file);
    else
        n = snprintf(out->name, sizeof out->name, "hf:%s/%s", src->org, src->repo);
    int rc = n < 0 || (size_t)n >= sizeof out->name
                 ? mlx_err_set(err, MLX_EUSAGE,
                               "the model name would be longer than %d characters; give "
                               "a shorter one with --name",
                               MLX_MAX_MODEL_NAME)
                 : store_check_name(out->name, err);
    if (rc != 0)
        return rc == MLX_EINVAL ? mlx_err_prefix(err, MLX_EUSAGE, "model name") : rc;

    char commit[PULL_MAX_HF_REV + 1] = "";
    if (src->file[0] != '\0') {
        rc = pull_one(s, src, cfg, src->rev, src->file, out, commit, err);
    } else {
        hf_revision rev;
        if ((rc = list_files(src, cfg, &rev, err)) != 0)
            return rc;
        snprintf(commit, sizeof commit, "%s", rev.sha);
        for (size_t i = 0; rc == 0 && i < rev.n_files; i++)
            rc = pull_one(s, src, cfg, rev.sha, rev.files[i], out, commit, err);
        if (rc == 0 && rev.n_skipped > 0) {
            out->skipped = rev.skipped;
            out->n_skipped = rev.n_skipped;
            rev.skipped = NULL;
            rev.n_skipped = 0;
            for (size_t i = 0; i < out->n_skipped; i++)
                mlx_log_warn(MOD, "skipped a file whose name the store cannot hold",
                             "file=\"%s\"", out->skipped[i]);
        }
        pull_hf_revision_free(&rev);
    }
    if (rc != 0)
        return rc;
    snprintf(out->origin, sizeof out->origin, "hf:%s/%s@%s", src->org, src->repo,
             commit[0] != '\0' ? commit : src->rev);
    return 0;
}
