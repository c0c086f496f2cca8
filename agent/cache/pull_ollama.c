/*
 * pull_ollama.c — models from an Ollama registry, which speaks the OCI
 * distribution API:
 *
 *   GET {base}/v2/NS/NAME/manifests/TAG      the image manifest (JSON)
 *   GET {base}/v2/NS/NAME/blobs/sha256:HEX   each layer and the config;
 *                                            the registry redirects (307)
 *                                            to a CDN, which is followed
 *
 * Every blob is named by its digest in the manifest, so each is checked as
 * it arrives and one already in the store (another tag of the same model,
 * a shared template) is not fetched again. Files get the names a scan of
 * Ollama's own store gives them ("model", "template", "params", "config"),
 * and the model the name Ollama shows ("llama3.2:1b", "ns/name:tag",
 * "host/ns/name:tag"), the registry's host standing for "host".
 */
#include <stdio.h>
#include <string.h>

#include "agent/cache/pull.h"
#include "common/alloc.h"

#define DEFAULT_REGISTRY "https://" OLLAMA_REGISTRY_HOST

/* Where the manifest and blobs are, and the registry host the name uses. */
static int registry_of(const pull_source *src, const pull_config *cfg, char *base,
                       size_t base_size, char *host, size_t host_size, mlx_err *err)
{
    if (cfg->ollama_registry != NULL && cfg->ollama_registry[0] != '\0')
        snprintf(base, base_size, "%s", cfg->ollama_registry);
    else if (src->host[0] != '\0')
        snprintf(base, base_size, "https://%s", src->host);
    else
        snprintf(base, base_size, "%s", DEFAULT_REGISTRY);
    if (src->host[0] != '\0') {
        snprintf(host, host_size, "%s", src->host);
        return 0;
    }
    int rc = pull_url_host(base, host, host_size, err);
    return rc == 0 ? 0 : mlx_err_prefix(err, MLX_EUSAGE, "--ollama-registry");
}

static int fetch_manifest(const pull_config *cfg, const char *url, const char *what,
                          manifest *m, mlx_err *err)
{
    mlx_buf body;
    mlx_buf_init(&body, MANIFEST_MAX_BYTES);
    pull_headers *h = mlx_malloc(sizeof *h);
    int rc =
        h == NULL
            ? mlx_err_set(err, MLX_ENOMEM, "out of memory")
            : pull_http_get_small(&cfg->net, url,
                                  "application/vnd.docker.distribution.manifest.v2+json, "
                                  "application/vnd.oci.image.manifest.v1+json",
                                  &body, h, err);
    if (rc == 0 && h->status != 200)
        rc = pull_http_status_error(h->status, what, url, false, err);
    if (rc == 0 && (rc = cache_parse_manifest(body.data != NULL ? body.data : "",
                                              body.len, m, err)) != 0)
        rc = mlx_err_prefix(err, rc, "the manifest of %s", what);
    mlx_free(h);
    mlx_buf_fini(&body);
    return rc;
}

static int fetch_layer(store *s, const pull_config *cfg, const char *base,
                       const pull_source *src, const manifest_layer *l, const char *file,
                       pull_result *out, mlx_err *err)
{
    char url[PULL_MAX_URL + 1];
    int n = snprintf(url, sizeof url, "%s/v2/%s/%s/blobs/sha256:%s", base, src->ns,
                     src->name, l->digest);
    if (n < 0 || (size_t)n >= sizeof url)
        return mlx_err_set(err, MLX_EUSAGE, "the registry URL is too long");
    pull_blob b = {
        .url = url, .label = file, .kind = PULL_DIGEST_SHA256, .size = l->size};
    memcpy(b.expected, l->digest, sizeof b.expected);
    pull_file *f = pull_result_add(out, file);
    if (f == NULL)
        return mlx_err_set(err, MLX_ENOMEM, "out of memory");
    return pull_fetch_blob(&cfg->net, s, &b, &f->blob, err);
}

int pull_ollama(store *s, const pull_source *src, const pull_config *cfg,
                pull_result *out, mlx_err *err)
{
    out->source = STORE_SRC_OLLAMA;
    out->format = "gguf";
    char base[PULL_MAX_URL + 1], host[PULL_MAX_OLLAMA_HOST + 8];
    int rc = registry_of(src, cfg, base, sizeof base, host, sizeof host, err);
    if (rc != 0)
        return rc;
    if (cfg->name != NULL)
        snprintf(out->name, sizeof out->name, "%s", cfg->name);
    else
        cache_ollama_name(host, src->ns, src->name, src->tag, out->name,
                          sizeof out->name);
    if ((rc = store_check_name(out->name, err)) != 0)
        return mlx_err_prefix(err, MLX_EUSAGE, "model name");

    char url[PULL_MAX_URL + 1], what[PULL_MAX_OLLAMA_PART * 3 + 32];
    int n = snprintf(url, sizeof url, "%s/v2/%s/%s/manifests/%s", base, src->ns,
                     src->name, src->tag);
    if (n < 0 || (size_t)n >= sizeof url)
        return mlx_err_set(err, MLX_EUSAGE, "the registry URL is too long");
    snprintf(what, sizeof what, "model %s/%s:%s", src->ns, src->name, src->tag);
    manifest *m = mlx_malloc(sizeof *m);
    if (m == NULL)
        return mlx_err_set(err, MLX_ENOMEM, "out of memory");
    rc = fetch_manifest(cfg, url, what, m, err);
    for (size_t i = 0; rc == 0 && i < m->n_layers; i++) {
        char file[64];
        cache_manifest_file_name(m, i, file, sizeof file);
        rc = fetch_layer(s, cfg, base, src, &m->layers[i], file, out, err);
    }
    if (rc == 0 && m->config.digest[0] != '\0')
        rc = fetch_layer(s, cfg, base, src, &m->config, "config", out, err);
    mlx_free(m);
    if (rc == 0)
        snprintf(out->origin, sizeof out->origin, "%s", url);
    return rc;
}
