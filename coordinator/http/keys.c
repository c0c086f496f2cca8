/*
 * keys.c — the API-key endpoints of the admin front: list, create, revoke.
 *
 * A created key is in the 201 answer and nowhere else: the coordinator keeps
 * only its salted hash (auth.h), so a lost key is revoked and replaced, never
 * recovered. Bodies are checked strictly (unknown fields refused) so a typo
 * such as "rmp" is an error, not a key without a limit.
 */
#include <string.h>

#include "common/clock.h"
#include "common/json.h"
#include "common/parse.h"
#include "coordinator/http/internal.h"

static int add_key(void *arg, const auth_key_info *k)
{
    json_t *list = arg;
    json_t *o =
        json_pack("{s:s, s:s, s:s, s:s, s:I, s:I, s:I, s:I, s:I, s:s}", "name", k->name,
                  "prefix", k->prefix, "scope", auth_scope_name(k->scope), "models",
                  k->models_pattern, "rpm", (json_int_t)k->rpm, "tpm", (json_int_t)k->tpm,
                  "created_unix_ms", (json_int_t)k->created_unix_ms, "last_used_unix_ms",
                  (json_int_t)k->last_used_unix_ms, "revoked_unix_ms",
                  (json_int_t)k->revoked_unix_ms, "state",
                  k->revoked_unix_ms != 0 ? "revoked" : "active");
    if (o == NULL || json_array_append_new(list, o) != 0)
        return MLX_ENOMEM;
    return 0;
}

void keys_list(const admin_ctx *c, const mlx_http_req *req, const auth_result *ar,
               mlx_http_resp *resp)
{
    json_t *list = json_array();
    mlx_err err;
    mlx_err_clear(&err);
    int rc = list == NULL ? MLX_ENOMEM : auth_key_list(c->auth, add_key, list, &err);
    if (rc != 0) {
        json_decref(list);
        mlx_http_resp_error(resp, 500, "server_error", "internal", "cannot list keys: %s",
                            mlx_err_text(&err, rc));
        return;
    }
    mlx_http_resp_json(resp, 200, json_pack("{s:o}", "keys", list));
}

/* Fills spec from a POST body; MLX_EINVAL with a sentence for bad input.
 * The strings in spec are borrowed from body. */
static int parse_spec(const json_t *body, auth_key_spec *spec, mlx_err *err)
{
    if (!json_is_object(body))
        return mlx_err_set(err, MLX_EINVAL,
                           "the body must be a JSON object such as "
                           "{\"name\":\"ci\",\"scope\":\"infer\"}; got %s",
                           mlx_json_type_name(body));
    static const char *const known[] = {"name", "scope", "models", "rpm", "tpm"};
    const char *field;
    const json_t *value;
    json_object_foreach((json_t *)body, field, value)
    {
        bool ok = false;
        for (size_t i = 0; i < sizeof known / sizeof known[0]; i++)
            ok = ok || strcmp(field, known[i]) == 0;
        if (!ok)
            return mlx_err_set(err, MLX_EINVAL,
                               "unknown field '%.64s'; a key takes name, scope, models, "
                               "rpm and tpm",
                               field);
    }
    const char *scope = "infer";
    int64_t rpm = 0, tpm = 0;
    spec->models_pattern = "*";
    int rc;
    if ((rc = mlx_json_get_string(body, "name", MLX_JSON_REQUIRED, &spec->name, err)) ||
        (rc = mlx_json_get_string(body, "scope", MLX_JSON_OPTIONAL, &scope, err)) ||
        (rc = mlx_json_get_string(body, "models", MLX_JSON_OPTIONAL,
                                  &spec->models_pattern, err)) ||
        (rc = mlx_json_get_int(body, "rpm", MLX_JSON_OPTIONAL, 0, AUTH_MAX_RATE, &rpm,
                               err)) ||
        (rc = mlx_json_get_int(body, "tpm", MLX_JSON_OPTIONAL, 0, AUTH_MAX_RATE, &tpm,
                               err)) ||
        (rc = auth_scope_parse(scope, &spec->scope, err)))
        return MLX_EINVAL;
    spec->rpm = (uint32_t)rpm;
    spec->tpm = (uint32_t)tpm;
    return 0;
}

void keys_create(const admin_ctx *c, const mlx_http_req *req, const auth_result *ar,
                 mlx_http_resp *resp)
{
    json_t *body = NULL;
    auth_key_spec spec = {0};
    char key[AUTH_KEY_SIZE];
    mlx_err err;
    mlx_err_clear(&err);
    if (mlx_json_parse(req->body, req->body_len, &body, &err) != 0 ||
        parse_spec(body, &spec, &err) != 0) {
        mlx_http_resp_error(resp, 400, "invalid_request_error", "invalid_key_spec", "%s",
                            err.msg);
        goto out;
    }
    int rc = auth_key_create(c->auth, &spec, mlx_time_wall_ms(), key, &err);
    if (rc == MLX_EINVAL) {
        mlx_http_resp_error(resp, 400, "invalid_request_error", "invalid_key_spec", "%s",
                            err.msg);
    } else if (rc == MLX_EEXIST) {
        mlx_http_resp_error(resp, 409, "invalid_request_error", "key_exists", "%s",
                            err.msg);
    } else if (rc != 0) {
        mlx_http_resp_error(resp, 500, "server_error", "internal",
                            "cannot create the key: %s", mlx_err_text(&err, rc));
    } else {
        mlx_http_resp_json(
            resp, 201,
            json_pack("{s:s, s:s, s:s#, s:s, s:s, s:I, s:I}", "name", spec.name, "key",
                      key, "prefix", key, (int)AUTH_KEY_PREFIX_LEN, "scope",
                      auth_scope_name(spec.scope), "models",
                      spec.models_pattern[0] ? spec.models_pattern : "*", "rpm",
                      (json_int_t)spec.rpm, "tpm", (json_int_t)spec.tpm));
    }
    /* The clear key leaves this frame only in the response body. */
    memset(key, 0, sizeof key);
out:
    json_decref(body);
}

void keys_revoke(const admin_ctx *c, const mlx_http_req *req, const auth_result *ar,
                 mlx_http_resp *resp)
{
    const char *name = req->path + strlen(ADMIN_KEYS_PATH "/");
    mlx_err err;
    mlx_err_clear(&err);
    /* The name is echoed in the answer and the log: only clean text. */
    int rc = mlx_text_is_clean(name, AUTH_MAX_KEY_NAME)
                 ? auth_key_revoke(c->auth, name, mlx_time_wall_ms(), &err)
                 : mlx_err_set(&err, MLX_EINVAL,
                               "a key name is 1 to %d letters, digits, '.', '_' or '-'",
                               AUTH_MAX_KEY_NAME);
    if (rc == MLX_ENOENT) {
        mlx_http_resp_error(resp, 404, "invalid_request_error", "key_not_found", "%s",
                            err.msg);
    } else if (rc == MLX_EINVAL) {
        mlx_http_resp_error(resp, 400, "invalid_request_error", "invalid_key_name", "%s",
                            err.msg);
    } else if (rc != 0) {
        mlx_http_resp_error(resp, 500, "server_error", "internal",
                            "cannot revoke the key: %s", mlx_err_text(&err, rc));
    } else {
        mlx_http_resp_json(resp, 200,
                           json_pack("{s:s, s:s}", "name", name, "state", "revoked"));
    }
}
