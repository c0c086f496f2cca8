/*
 * models.c — what OpenAI's and Ollama's clients ask about the fleet's
 * models: GET /v1/models and /api/tags (every model some node holds),
 * GET /api/ps (what the nodes have loaded), POST /api/show (one model) and
 * GET /api/version.
 *
 * Everything comes from the registry, as the agents reported it in their
 * heartbeats: a model's architecture, parameter count and quantization are
 * read by its agent from the GGUF's metadata. Each answer is the agent's
 * shape for the same endpoint plus "nodes" (or "node"), so a client that
 * knows the agent's API reads the fleet's, and one that wants to know where
 * a model lives can. A key's model pattern hides the models it may not
 * use, as if the fleet did not hold them.
 */
#include <string.h>

#include "common/json.h"
#include "common/log.h"
#include "coordinator/http/internal.h"

#define MOD "http"

/* Go's zero time: Ollama's clients read expires_at as a time, and the
 * coordinator does not know when a node will unload a model. */
#define UNKNOWN_TIME "0001-01-01T00:00:00Z"

static const char *str(json_t *obj, const char *key)
{
    const char *s = json_string_value(json_object_get(obj, key));
    return s != NULL ? s : "";
}

/* Ollama's details of a model of registry_models_json, or NULL when its
 * nodes did not say what it is. */
static json_t *details_of(json_t *m)
{
    const char *arch = str(m, "architecture");
    if (arch[0] == '\0')
        return NULL;
    return json_pack("{s:s, s:s, s:s, s:[s], s:s, s:s}", "parent_model", "", "format",
                     str(m, "format")[0] ? str(m, "format") : "gguf", "family", arch,
                     "families", arch, "parameter_size", str(m, "parameters"),
                     "quantization_level", str(m, "quantization"));
}

/* The registry's models, or an error answered in kind's shape. */
static json_t *fleet_models(const admin_ctx *c, api_kind kind, mlx_http_resp *resp)
{
    json_t *doc = NULL;
    mlx_err err;
    mlx_err_clear(&err);
    if (registry_models_json(c->reg, &doc, &err) != 0) {
        mlx_log_error(MOD, "cannot list the fleet's models", "err=\"%s\"", err.msg);
        api_error(resp, kind, 500, "internal_error", "cannot list the models: %s",
                  err.msg);
        return NULL;
    }
    return doc;
}

static json_t *model_named(json_t *doc, const char *name)
{
    size_t i;
    json_t *m;
    json_array_foreach(json_object_get(doc, "models"), i, m)
    {
        if (strcmp(str(m, "name"), name) == 0)
            return m;
    }
    return NULL;
}

/* ---- /v1/models, /api/tags ----------------------------------------------- */

static json_t *list_entry(json_t *m, api_kind kind)
{
    const char *name = str(m, "name");
    json_t *nodes = json_object_get(m, "nodes");
    if (kind == API_OPENAI)
        return json_pack("{s:s, s:s, s:i, s:s, s:O}", "id", name, "object", "model",
                         "created", 0, "owned_by", "mlx-fleet", "nodes", nodes);
    json_t *v =
        json_pack("{s:s, s:s, s:s, s:I, s:s, s:O}", "name", name, "model", name,
                  "modified_at", "1970-01-01T00:00:00Z", "size",
                  (json_int_t)json_integer_value(json_object_get(m, "size_bytes")),
                  "digest", str(m, "digest"), "nodes", nodes);
    json_t *details = details_of(m);
    if (v != NULL && details != NULL)
        json_object_set_new(v, "details", details);
    else
        json_decref(details);
    return v;
}

static void list_models(const admin_ctx *c, const mlx_http_req *req,
                        const auth_result *ar, mlx_http_resp *resp, void *arg)
{
    const api_kind *kind = arg;
    json_t *doc = fleet_models(c, *kind, resp);
    if (doc == NULL)
        return;
    json_t *list = json_array();
    size_t i;
    json_t *m;
    json_array_foreach(json_object_get(doc, "models"), i, m)
    {
        if (list != NULL && auth_model_allowed(ar, str(m, "name")) &&
            json_array_append_new(list, list_entry(m, *kind)) != 0) {
            json_decref(list);
            list = NULL;
        }
    }
    json_decref(doc);
    if (list == NULL) {
        api_error(resp, *kind, 500, "internal_error", "out of memory listing the models");
        return;
    }
    mlx_http_resp_json(resp, 200,
                       *kind == API_OPENAI
                           ? json_pack("{s:s, s:o}", "object", "list", "data", list)
                           : json_pack("{s:o}", "models", list));
}

static void serve_list(void *ctx, const mlx_http_req *req, mlx_http_resp *resp,
                       api_kind kind)
{
    admin_gate g = {.errors = kind, .fn = list_models, .arg = &kind};
    admin_gate_run(ctx, req, resp, &g);
}

void infer_openai_models(void *ctx, const mlx_http_req *req, mlx_http_resp *resp)
{
    serve_list(ctx, req, resp, API_OPENAI);
}

void infer_ollama_tags(void *ctx, const mlx_http_req *req, mlx_http_resp *resp)
{
    serve_list(ctx, req, resp, API_OLLAMA);
}

/* ---- /api/ps -------------------------------------------------------------- */

/* One entry per node and model its engine ("mlx") has loaded. */
static void list_loaded(const admin_ctx *c, const mlx_http_req *req,
                        const auth_result *ar, mlx_http_resp *resp, void *arg)
{
    json_t *models = fleet_models(c, API_OLLAMA, resp);
    if (models == NULL)
        return;
    json_t *ps = NULL;
    mlx_err err;
    mlx_err_clear(&err);
    if (registry_ps_json(c->reg, &ps, &err) != 0) {
        json_decref(models);
        api_error(resp, API_OLLAMA, 500, "internal_error",
                  "cannot list the loaded models: %s", err.msg);
        return;
    }
    json_t *list = json_array();
    size_t i, k;
    json_t *n, *l;
    json_array_foreach(json_object_get(ps, "nodes"), i, n)
    {
        json_array_foreach(json_object_get(n, "models"), k, l)
        {
            const char *name = str(l, "name");
            if (list == NULL || strcmp(str(l, "engine"), "mlx") != 0 ||
                !auth_model_allowed(ar, name))
                continue;
            json_t *m = model_named(models, name);
            json_t *v = json_pack(
                "{s:s, s:s, s:O, s:s, s:s, s:I, s:s, s:s}", "name", name, "model", name,
                "size", json_object_get(l, "memory_bytes"), "digest", str(m, "digest"),
                "expires_at", UNKNOWN_TIME, "size_vram", (json_int_t)0, "node",
                str(n, "name"), "node_id", str(n, "id"));
            json_t *details = m != NULL ? details_of(m) : NULL;
            if (v != NULL && details != NULL)
                json_object_set_new(v, "details", details);
            else
                json_decref(details);
            if (v == NULL || json_array_append_new(list, v) != 0) {
                json_decref(list);
                list = NULL;
            }
        }
    }
    json_decref(ps);
    json_decref(models);
    if (list == NULL) {
        api_error(resp, API_OLLAMA, 500, "internal_error",
                  "out of memory listing the loaded models");
        return;
    }
    mlx_http_resp_json(resp, 200, json_pack("{s:o}", "models", list));
}

void info_ollama_ps(void *ctx, const mlx_http_req *req, mlx_http_resp *resp)
{
    admin_gate g = {.errors = API_OLLAMA, .fn = list_loaded};
    admin_gate_run(ctx, req, resp, &g);
}

/* ---- /api/show ------------------------------------------------------------ */

static void show_model(const admin_ctx *c, const mlx_http_req *req, const auth_result *ar,
                       mlx_http_resp *resp, void *arg)
{
    const char *name = arg;
    json_t *doc = fleet_models(c, API_OLLAMA, resp);
    if (doc == NULL)
        return;
    json_t *m = model_named(doc, name);
    if (m == NULL) {
        mlx_err err;
        mlx_err_clear(&err);
        router_outcome_error(ROUTER_NO_MODEL, name, &err);
        api_error(resp, API_OLLAMA, 404, "model_not_found", "%s", err.msg);
        json_decref(doc);
        return;
    }
    json_t *details = details_of(m);
    json_t *v = json_pack("{s:s, s:s, s:s, s:o, s:{s:s}, s:[s], s:O}", "modelfile", "",
                          "parameters", "", "template", "", "details",
                          details != NULL ? details : json_object(), "model_info",
                          "general.architecture", str(m, "architecture"), "capabilities",
                          "completion", "nodes", json_object_get(m, "nodes"));
    json_decref(doc);
    mlx_http_resp_json(resp, 200, v);
}

/* The body failed to read: said once the gate admitted the client. */
static void refuse_show(const admin_ctx *c, const mlx_http_req *req,
                        const auth_result *ar, mlx_http_resp *resp, void *arg)
{
    const mlx_err *err = arg;
    const char *code;
    int status = api_status_of(err->code, &code);
    api_error(resp, API_OLLAMA, status, code, "%s", err->msg);
}

void info_ollama_show(void *ctx, const mlx_http_req *req, mlx_http_resp *resp)
{
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
        (rc = mlx_json_get_bool(body, "verbose", MLX_JSON_OPTIONAL, &verbose, &err)) ==
            0 &&
        name == NULL)
        rc = mlx_err_set(&err, MLX_EINVAL, "the request names no 'model'");
    admin_gate g = {
        .errors = API_OLLAMA, .model = name, .fn = show_model, .arg = (void *)name};
    if (rc != 0) {
        err.code = rc;
        g.model = NULL;
        g.fn = refuse_show;
        g.arg = &err;
    }
    admin_gate_run(ctx, req, resp, &g);
    json_decref(body);
}

/* ---- /api/version --------------------------------------------------------- */

static void version(const admin_ctx *c, const mlx_http_req *req, const auth_result *ar,
                    mlx_http_resp *resp, void *arg)
{
    mlx_http_resp_json(resp, 200, json_pack("{s:s}", "version", MLX_VERSION));
}

void info_ollama_version(void *ctx, const mlx_http_req *req, mlx_http_resp *resp)
{
    admin_gate g = {.errors = API_OLLAMA, .fn = version};
    admin_gate_run(ctx, req, resp, &g);
}
