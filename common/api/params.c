/*
 * params.c — reading a request's JSON for the generation endpoints: the
 * body must be one object, every member one the endpoint knows, of the
 * right type and within range; anything else is refused with a sentence
 * naming the member, never silently ignored, so a typo in a field name
 * does not quietly change an answer.
 */
#include <stdio.h>
#include <string.h>

#include "common/alloc.h"
#include "common/api/internal.h"
#include "common/buf.h"
#include "common/json.h"
#include "common/parse.h"

int api_parse_object(const char *body, size_t len, json_t **out, mlx_err *err)
{
    *out = NULL;
    if (len == 0)
        return mlx_err_set(err, MLX_EINVAL,
                           "the request has no body; send a JSON object");
    json_t *v;
    int rc = mlx_json_parse(body, len, &v, err);
    if (rc != 0)
        return rc;
    if (!json_is_object(v)) {
        rc = mlx_err_set(err, MLX_EINVAL, "the body must be a JSON object, not %s",
                         mlx_json_type_name(v));
        json_decref(v);
        return rc;
    }
    *out = v;
    return 0;
}

static bool listed(const char *key, const char *const *names)
{
    for (size_t i = 0; names != NULL && names[i] != NULL; i++)
        if (strcmp(names[i], key) == 0)
            return true;
    return false;
}

/* The entry of name in an unsupported table, or NULL. */
static const api_unsupported *unsupported_entry(const char *name,
                                                const api_unsupported *table)
{
    for (size_t i = 0; table != NULL && table[i].name != NULL; i++)
        if (strcmp(table[i].name, name) == 0)
            return &table[i];
    return NULL;
}

/* null, false, "", [] or {}, or the number off: asks for nothing. */
static bool neutral(const json_t *v, double off)
{
    switch (json_typeof(v)) {
    case JSON_NULL:
    case JSON_FALSE:
        return true;
    case JSON_STRING:
        return json_string_length(v) == 0;
    case JSON_INTEGER:
    case JSON_REAL:
        return json_number_value(v) == off;
    case JSON_ARRAY:
        return json_array_size(v) == 0;
    case JSON_OBJECT:
        return json_object_size(v) == 0;
    default:
        return false;
    }
}

int api_check_fields(const json_t *obj, const char *const *known,
                     const api_unsupported *unsupported, mlx_err *err)
{
    const char *key;
    json_t *value;
    json_object_foreach((json_t *)obj, key, value)
    {
        if (listed(key, known))
            continue;
        const api_unsupported *u = unsupported_entry(key, unsupported);
        if (u == NULL) {
            mlx_buf names;
            mlx_buf_init(&names, 1024);
            for (size_t i = 0; known[i] != NULL; i++)
                mlx_buf_printf(&names, "%s%s", i > 0 ? ", " : "", known[i]);
            int rc = mlx_err_set(err, MLX_EINVAL, "unknown field '%.*s'; known fields: %s",
                                 (int)mlx_utf8_prefix(key, 64), key, mlx_buf_str(&names));
            mlx_buf_fini(&names);
            return rc;
        }
        if (!neutral(value, u->off))
            return mlx_err_set(err, MLX_EINVAL,
                               "'%s' is not supported by this server; leave it out", key);
    }
    return 0;
}

int api__read_float(const json_t *obj, const char *key, double min, double max, float *out,
                    mlx_err *err)
{
    double v = *out;
    int rc = mlx_json_get_number(obj, key, MLX_JSON_OPTIONAL, min, max, &v, err);
    *out = (float)v;
    return rc;
}

int api__read_stops(const json_t *v, const char *name, size_t max, const char ***out,
                    size_t *n, mlx_err *err)
{
    *out = NULL;
    *n = 0;
    if (v == NULL || json_is_null(v))
        return 0;
    size_t count = json_is_string(v) ? 1 : json_is_array(v) ? json_array_size(v) : 0;
    if (!json_is_string(v) && !json_is_array(v))
        return mlx_err_set(err, MLX_EINVAL,
                           "'%s' must be a string or an array of strings, got %s", name,
                           mlx_json_type_name(v));
    if (count > max)
        return mlx_err_set(err, MLX_EINVAL, "'%s' may hold at most %zu strings, got %zu",
                           name, max, count);
    const char **stops = mlx_calloc(count + 1, sizeof *stops);
    if (stops == NULL)
        return mlx_err_set(err, MLX_ENOMEM, "out of memory");
    for (size_t i = 0; i < count; i++) {
        const json_t *s = json_is_string(v) ? v : json_array_get(v, i);
        if (!json_is_string(s) || json_string_length(s) == 0) {
            mlx_free(stops);
            return mlx_err_set(err, MLX_EINVAL, "'%s' must hold non-empty strings; item %zu is %s",
                               name, i, json_is_string(s) ? "empty" : mlx_json_type_name(s));
        }
        if (json_string_length(s) > MLX_MAX_STOP_LEN) {
            mlx_free(stops);
            return mlx_err_set(err, MLX_EINVAL,
                               "'%s' item %zu is %zu bytes; a stop string may be at most %d",
                               name, i, json_string_length(s), MLX_MAX_STOP_LEN);
        }
        stops[i] = json_string_value(s);
    }
    *out = stops;
    *n = count;
    return 0;
}

static int read_content(const json_t *v, const char *name, char **out, mlx_err *err)
{
    *out = NULL;
    if (json_is_string(v)) {
        *out = mlx_strdup(json_string_value(v));
        return *out != NULL ? 0 : mlx_err_set(err, MLX_ENOMEM, "out of memory");
    }
    if (json_is_null(v)) {
        *out = mlx_strdup("");
        return *out != NULL ? 0 : mlx_err_set(err, MLX_ENOMEM, "out of memory");
    }
    if (!json_is_array(v))
        return mlx_err_set(err, MLX_EINVAL,
                           "'%s' must be a string or an array of text parts, got %s", name,
                           mlx_json_type_name(v));
    mlx_buf text;
    mlx_buf_init(&text, MLX_MAX_HTTP_BODY);
    size_t i;
    json_t *part;
    int rc = 0;
    json_array_foreach(v, i, part)
    {
        const char *type = NULL, *t = NULL;
        if (!json_is_object(part))
            rc = mlx_err_set(err, MLX_EINVAL, "'%s[%zu]' must be an object, got %s", name, i,
                             mlx_json_type_name(part));
        else if ((rc = mlx_json_get_string(part, "type", MLX_JSON_REQUIRED, &type, err)) != 0)
            rc = mlx_err_prefix(err, rc, "'%s[%zu]'", name, i);
        else if (strcmp(type, "text") != 0)
            rc = mlx_err_set(err, MLX_EINVAL,
                             "'%s[%zu]' is a '%.32s' part; only text parts are supported",
                             name, i, type);
        else if ((rc = mlx_json_get_string(part, "text", MLX_JSON_REQUIRED, &t, err)) != 0)
            rc = mlx_err_prefix(err, rc, "'%s[%zu]'", name, i);
        else if (mlx_buf_append_str(&text, t) != 0)
            rc = mlx_err_set(err, MLX_ENOMEM, "out of memory");
        if (rc != 0)
            break;
    }
    if (rc == 0 && (*out = mlx_buf_take(&text)) == NULL)
        rc = mlx_err_set(err, MLX_ENOMEM, "out of memory");
    mlx_buf_fini(&text);
    return rc;
}

/* Known and unsupported members of a message, both APIs. */
static const char *const message_fields[] = {"role", "content", "name", NULL};
static const api_unsupported message_unsupported[] = {
    {"tool_calls"}, {"tool_call_id"}, {"function_call"}, {"images"}, {"thinking"},
    {"refusal"}, {"audio"}, {NULL}};

/* OpenAI's "developer" is the system's voice in newer models' terms. */
static const char *message_role(const char *role)
{
    if (strcmp(role, "developer") == 0)
        return "system";
    if (strcmp(role, "system") == 0 || strcmp(role, "user") == 0 ||
        strcmp(role, "assistant") == 0)
        return role;
    return NULL;
}

int api__read_messages(const json_t *v, api_request *r, mlx_err *err)
{
    if (!json_is_array(v))
        return mlx_err_set(err, MLX_EINVAL, "'messages' must be an array, got %s",
                           mlx_json_type_name(v));
    size_t n = json_array_size(v);
    r->messages = mlx_calloc(n + 1, sizeof *r->messages);
    if (r->messages == NULL)
        return mlx_err_set(err, MLX_ENOMEM, "out of memory");
    for (size_t i = 0; i < n; i++) {
        const json_t *m = json_array_get(v, i);
        char where[32];
        snprintf(where, sizeof where, "messages[%zu]", i);
        const char *role = NULL;
        int rc = 0;
        if (!json_is_object(m))
            return mlx_err_set(err, MLX_EINVAL, "'%s' must be an object, got %s", where,
                               mlx_json_type_name(m));
        if ((rc = api_check_fields(m, message_fields, message_unsupported, err)) != 0 ||
            (rc = mlx_json_get_string(m, "role", MLX_JSON_REQUIRED, &role, err)) != 0)
            return mlx_err_prefix(err, rc, "'%s'", where);
        if (message_role(role) == NULL)
            return mlx_err_set(err, MLX_EINVAL,
                               "'%s' has role '%.*s'; the roles are system, developer, user "
                               "and assistant (tool messages are not supported)",
                               where, (int)mlx_utf8_prefix(role, 32), role);
        const json_t *content = json_object_get(m, "content");
        if (content == NULL)
            return mlx_err_set(err, MLX_EINVAL, "'%s' has no 'content'", where);
        char name[48];
        snprintf(name, sizeof name, "%s.content", where);
        char *text;
        if ((rc = read_content(content, name, &text, err)) != 0)
            return rc;
        r->messages[i] = (api_message){message_role(role), text};
        r->n_messages = i + 1;
    }
    return 0;
}

/* The length of the UTF-8 character at p (at most n bytes), 0 when the
 * bytes there are not one. */
static size_t utf8_char(const unsigned char *p, size_t n)
{
    size_t len = p[0] < 0x80 ? 1 : (p[0] & 0xE0) == 0xC0 ? 2 : (p[0] & 0xF0) == 0xE0 ? 3
                 : (p[0] & 0xF8) == 0xF0                 ? 4
                                                         : 0;
    if (len == 0 || len > n || (len == 2 && p[0] < 0xC2) || (len == 4 && p[0] > 0xF4))
        return 0;
    for (size_t i = 1; i < len; i++)
        if ((p[i] & 0xC0) != 0x80)
            return 0;
    if ((len == 3 && p[0] == 0xE0 && p[1] < 0xA0) || (len == 3 && p[0] == 0xED && p[1] >= 0xA0) ||
        (len == 4 && p[0] == 0xF0 && p[1] < 0x90) || (len == 4 && p[0] == 0xF4 && p[1] >= 0x90))
        return 0; /* overlong, a surrogate, or past U+10FFFF */
    return len;
}

json_t *api__lossy_string(const char *p, size_t n)
{
    char out[4 * API_MAX_PIECE];
    size_t o = 0;
    const unsigned char *u = (const unsigned char *)p;
    for (size_t i = 0; i < n && o + 4 <= sizeof out;) {
        size_t len = utf8_char(u + i, n - i);
        if (len == 0) {
            memcpy(out + o, "\xEF\xBF\xBD", 3); /* U+FFFD */
            o += 3;
            i++;
        } else {
            memcpy(out + o, p + i, len);
            o += len;
            i += len;
        }
    }
    return json_stringn(out, o);
}
