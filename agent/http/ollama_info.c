/*
 * ollama_info.c — what Ollama's clients ask about models: GET /api/tags
 * (the store), GET /api/ps (what is loaded), POST /api/show (one model's
 * details) and GET /api/version.
 *
 * Details come from each GGUF's metadata (engine_describe), read when
 * asked, so a model pulled a moment ago is listed with no cache to go
 * stale.
 */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "agent/cache/cache.h"
#include "agent/http/internal.h"
#include "common/alloc.h"
#include "common/clock.h"

static json_t *details_of(const engine_info *info)
{
    char params[32];
    engine_format_params(info->n_params, params, sizeof params);
    return json_pack("{s:s, s:s, s:s, s:[s], s:s, s:s}", "parent_model", "", "format", "gguf",
                     "family", info->arch, "families", info->arch, "parameter_size", params,
                     "quantization_level", info->quantization);
}

static json_t *time_of(int64_t unix_ms)
{
    char text[40];
    mlx_time_format_rfc3339(unix_ms, text, sizeof text);
    return json_string(text);
}

/* The store's runnable models, or an error answered. */
static cache_listing *list_store(agent_http *h, size_t *n, mlx_http_resp *resp)
{
    cache_listing *models = NULL;
    mlx_err err;
    mlx_err_clear(&err);
    int rc = cache_list_runnable(h->cfg.data_dir, &models, n, &err);
    if (rc != 0)
        api_error(resp, API_OLLAMA, 500, "internal_error", "%s", mlx_err_text(&err, rc));
    return rc == 0 ? models : NULL;
}

void http_ollama_tags(void *ctx, const mlx_http_req *req, mlx_http_resp *resp)
{
    size_t n;
    cache_listing *models = list_store(ctx, &n, resp);
    if (models == NULL)
        return;
    json_t *list = json_array();
    for (size_t i = 0; i < n; i++) {
        const cache_listing *m = &models[i];
        engine_info info;
        json_t *v = json_pack("{s:s, s:s, s:o, s:I, s:s}", "name", m->name, "model", m->name,
                              "modified_at", time_of(m->modified_unix_ms), "size",
                              (json_int_t)m->size, "digest", m->digest);
        /* A file the engine cannot read is still listed, without details. */
        if (v != NULL && engine_describe(m->path, &info, NULL) == 0)
            json_object_set_new(v, "details", details_of(&info));
        json_array_append_new(list, v);
    }
    mlx_free(models);
    mlx_http_resp_json(resp, 200, json_pack("{s:o}", "models", list));
}

void http_ollama_ps(void *ctx, const mlx_http_req *req, mlx_http_resp *resp)
{
    agent_http *h = ctx;
    runtime_status st = {0};
    mlx_err err;
    mlx_err_clear(&err);
    int rc = h->cfg.rt != NULL ? runtime_get_status(h->cfg.rt, &st, &err) : 0;
    if (rc != 0) {
        api_error(resp, API_OLLAMA, 500, "internal_error", "%s", mlx_err_text(&err, rc));
        return;
    }
    size_t n_store = 0;
    cache_listing *store = NULL;
    cache_list_runnable(h->cfg.data_dir, &store, &n_store, NULL); /* for digests only */
    json_t *list = json_array();
    for (size_t i = 0; i < st.n_models; i++) {
        const runtime_model_status *m = &st.models[i];
        const char *digest = "";
        for (size_t k = 0; k < n_store; k++)
            if (strcmp(store[k].path, m->path) == 0)
                digest = store[k].digest;
        /* A model with requests stays: it expires keep-alive after them. */
        int64_t expires = m->expires_unix_ms != 0 ? m->expires_unix_ms : mlx_time_wall_ms();
        json_array_append_new(
            list, json_pack("{s:s, s:s, s:I, s:s, s:o, s:o, s:I, s:I}", "name", m->name,
                            "model", m->name, "size", (json_int_t)m->memory_bytes, "digest",
                            digest, "details", details_of(&m->info), "expires_at",
                            time_of(expires), "size_vram", (json_int_t)0, "context_length",
                            (json_int_t)m->info.n_ctx));
    }
    mlx_free(store);
    runtime_status_free(&st);
    mlx_http_resp_json(resp, 200, json_pack("{s:o}", "models", list));
}

static void put_arch_key(json_t *v, const char *arch, const char *suffix, uint32_t value)
{
    char key[96];
    snprintf(key, sizeof key, "%s.%s", arch, suffix);
    json_object_set_new(v, key, json_integer(value));
}

/* Ollama's model_info: the GGUF's keys that describe the network. */
static json_t *model_info(const engine_info *info)
{
    json_t *v = json_pack("{s:s, s:I}", "general.architecture", info->arch,
                          "general.parameter_count", (json_int_t)info->n_params);
    if (v == NULL)
        return NULL;
    if (info->name[0] != '\0')
        json_object_set_new(v, "general.name", json_string(info->name));
    const char *a = info->arch;
    put_arch_key(v, a, "context_length", info->n_ctx_train);
    put_arch_key(v, a, "embedding_length", info->n_embd);
    put_arch_key(v, a, "block_count", info->n_layer);
    put_arch_key(v, a, "attention.head_count", info->n_head);
    put_arch_key(v, a, "attention.head_count_kv", info->n_head_kv);
    put_arch_key(v, a, "feed_forward_length", info->n_ff);
    put_arch_key(v, a, "vocab_size", info->n_vocab);
    return v;
}

void http_ollama_show(void *ctx, const mlx_http_req *req, mlx_http_resp *resp)
{
    agent_http *h = ctx;
    static const char *const fields[] = {"model", "name", "verbose", NULL};
    json_t *body = NULL;
    const char *name = NULL;
    bool verbose = false; /* accepted; every answer is the full one */
    mlx_err err;
    mlx_err_clear(&err);
    int rc = api_parse_object(req->body, req->body_len, &body, &err);
    if (rc == 0 && (rc = api_check_fields(body, fields, NULL, &err)) == 0 &&
        (rc = mlx_json_get_string(body, "name", MLX_JSON_OPTIONAL, &name, &err)) == 0 &&
        (rc = mlx_json_get_string(body, "model", MLX_JSON_OPTIONAL, &name, &err)) == 0 &&
        (rc = mlx_json_get_bool(body, "verbose", MLX_JSON_OPTIONAL, &verbose, &err)) == 0 &&
        name == NULL)
        rc = mlx_err_set(&err, MLX_EINVAL, "the request names no 'model'");
    char *path = NULL;
    engine_info info;
    if (rc == 0 && (rc = cache_resolve_model(h->cfg.data_dir, name, &path, &err)) == 0)
        rc = engine_describe(path, &info, &err);
    mlx_free(path);
    if (rc != 0) {
        const char *code;
        api_error(resp, API_OLLAMA, api_status_of(rc, &code), code, "%s",
                  mlx_err_text(&err, rc));
        json_decref(body);
        return;
    }
    json_t *v = json_pack("{s:s, s:s, s:s, s:o, s:o, s:[s]}", "modelfile", "", "parameters", "",
                          "template", "", "details", details_of(&info), "model_info",
                          model_info(&info), "capabilities", "completion");
    json_decref(body);
    mlx_http_resp_json(resp, 200, v);
}

void http_ollama_version(void *ctx, const mlx_http_req *req, mlx_http_resp *resp)
{
    mlx_http_resp_json(resp, 200, json_pack("{s:s}", "version", MLX_VERSION));
}
