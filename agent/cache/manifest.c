/*
 * manifest.c — Ollama image manifests, as the registry serves them and as
 * Ollama keeps them under models/manifests/…:
 *
 *   {"schemaVersion":2,
 *    "mediaType":"application/vnd.docker.distribution.manifest.v2+json",
 *    "config":{"mediaType":"…","digest":"sha256:<hex>","size":N},
 *    "layers":[{"mediaType":"application/vnd.ollama.image.model",
 *               "digest":"sha256:<hex>","size":N}, …]}
 *
 * Outside data: every field is checked, digests must be well-formed,
 * sizes bounded; unknown fields are ignored.
 */
#include <stdio.h>
#include <string.h>

#include "agent/cache/internal.h"
#include "common/json.h"
#include "common/parse.h"

const char *cache_layer_name(const char *media_type)
{
    static const char prefix[] = "application/vnd.ollama.image.";
    if (strncmp(media_type, prefix, sizeof prefix - 1) == 0) {
        const char *kind = media_type + sizeof prefix - 1;
        static const char *const known[] = {"model",  "template",  "params",  "license",
                                            "system", "projector", "adapter", "messages"};
        for (size_t i = 0; i < sizeof known / sizeof known[0]; i++)
            if (strcmp(kind, known[i]) == 0)
                return known[i];
    }
    return "layer";
}

void cache_ollama_name(const char *registry, const char *ns, const char *name,
                       const char *tag, char *out, size_t size)
{
    if (strcmp(registry, OLLAMA_REGISTRY_HOST) == 0 && strcmp(ns, "library") == 0)
        snprintf(out, size, "%s:%s", name, tag);
    else if (strcmp(registry, OLLAMA_REGISTRY_HOST) == 0)
        snprintf(out, size, "%s/%s:%s", ns, name, tag);
    else
        snprintf(out, size, "%s/%s/%s:%s", registry, ns, name, tag);
}

void cache_manifest_file_name(const manifest *m, size_t i, char *out, size_t size)
{
    const char *name = cache_layer_name(m->layers[i].media_type);
    /* Names repeat (several adapters): number all but the first. */
    size_t seen = 0;
    for (size_t j = 0; j < i; j++)
        seen += strcmp(cache_layer_name(m->layers[j].media_type), name) == 0;
    if (seen == 0)
        snprintf(out, size, "%s", name);
    else
        snprintf(out, size, "%s-%zu", name, seen);
}

static int read_layer(const json_t *v, const char *where, manifest_layer *out,
                      mlx_err *err)
{
    if (!json_is_object(v))
        return mlx_err_set(err, MLX_ECORRUPT, "%s is not an object", where);
    const char *media = NULL, *digest = NULL;
    int64_t size = 0;
    int rc;
    if ((rc = mlx_json_get_string(v, "mediaType", MLX_JSON_REQUIRED, &media, err)) != 0 ||
        (rc = mlx_json_get_string(v, "digest", MLX_JSON_REQUIRED, &digest, err)) != 0 ||
        (rc = mlx_json_get_int(v, "size", MLX_JSON_REQUIRED, 0, (int64_t)BLOB_MAX_BYTES,
                               &size, err)) != 0)
        return mlx_err_prefix(err, MLX_ECORRUPT, "%s", where);
    if (strlen(media) >= sizeof out->media_type || !mlx_text_is_clean(media, 127))
        return mlx_err_set(err, MLX_ECORRUPT, "%s has an unreadable mediaType", where);
    if (strncmp(digest, "sha256:", 7) != 0 || !cache_is_digest(digest + 7))
        return mlx_err_set(
            err, MLX_ECORRUPT,
            "%s digest '%.80s' is not sha256: and 64 lower-case hex digits", where,
            digest);
    snprintf(out->media_type, sizeof out->media_type, "%s", media);
    memcpy(out->digest, digest + 7, MLX_SHA256_HEX);
    out->size = (uint64_t)size;
    return 0;
}

int cache_parse_manifest(const char *text, size_t len, manifest *out, mlx_err *err)
{
    memset(out, 0, sizeof *out);
    if (len > MANIFEST_MAX_BYTES)
        return mlx_err_set(err, MLX_ECORRUPT,
                           "manifest of %zu bytes is over the %u limit", len,
                           MANIFEST_MAX_BYTES);
    json_t *root;
    int rc = mlx_json_parse(text, len, &root, err);
    if (rc != 0)
        return mlx_err_prefix(err, MLX_ECORRUPT, "manifest");
    int64_t version = 0;
    json_t *layers = json_object_get(root, "layers");
    if (!json_is_object(root)) {
        rc = mlx_err_set(err, MLX_ECORRUPT, "manifest is not a JSON object");
    } else if ((rc = mlx_json_get_int(root, "schemaVersion", MLX_JSON_REQUIRED, 0, 100,
                                      &version, err)) != 0) {
        rc = mlx_err_prefix(err, MLX_ECORRUPT, "manifest");
    } else if (version != 2) {
        rc = mlx_err_set(err, MLX_ECORRUPT, "manifest schemaVersion %lld is not 2",
                         (long long)version);
    } else if (!json_is_array(layers) || json_array_size(layers) == 0) {
        rc = mlx_err_set(err, MLX_ECORRUPT, "manifest has no layers");
    } else if (json_array_size(layers) > MANIFEST_MAX_LAYERS) {
        rc = mlx_err_set(err, MLX_ECORRUPT, "manifest has %zu layers, over the %d limit",
                         json_array_size(layers), MANIFEST_MAX_LAYERS);
    } else {
        rc = read_layer(json_object_get(root, "config"), "manifest config", &out->config,
                        err);
        for (size_t i = 0; rc == 0 && i < json_array_size(layers); i++) {
            char where[48];
            snprintf(where, sizeof where, "manifest layer %zu", i);
            rc = read_layer(json_array_get(layers, i), where, &out->layers[i], err);
            out->n_layers = i + 1;
        }
    }
    json_decref(root);
    if (rc != 0)
        memset(out, 0, sizeof *out);
    return rc;
}
