/* json.c — parsing with positions, dumping, typed member access. */
#include "common/json.h"

#include <stdio.h>

#include <math.h>
#include <string.h>

#include "common/alloc.h"

int mlx_json_parse(const char *data, size_t len, json_t **out, mlx_err *err)
{
    json_error_t je;
    unsigned long failures = mlx_alloc_failures();
    json_t *value = json_loadb(data, len, JSON_DECODE_ANY | JSON_REJECT_DUPLICATES, &je);
    if (value == NULL) {
        /* jansson calls most allocation failures syntax errors; count them. */
        if (json_error_code(&je) == json_error_out_of_memory ||
            mlx_alloc_failures() != failures)
            return mlx_err_set(err, MLX_ENOMEM, "out of memory parsing JSON");
        return mlx_err_set(err, MLX_EINVAL, "invalid JSON at line %d, column %d: %s",
                           je.line, je.column, je.text);
    }
    *out = value;
    return 0;
}

int mlx_json_dump(const json_t *value, char **out, mlx_err *err)
{
    char *text = json_dumps(value, JSON_COMPACT | JSON_ENCODE_ANY);
    if (text == NULL)
        return mlx_err_set(err, MLX_ENOMEM, "out of memory writing JSON");
    *out = text; /* jansson allocates with mlx_malloc once installed */
    return 0;
}

const char *mlx_json_type_name(const json_t *value)
{
    switch (json_typeof(value)) {
    case JSON_OBJECT:
        return "an object";
    case JSON_ARRAY:
        return "an array";
    case JSON_STRING:
        return "a string";
    case JSON_INTEGER:
        return "an integer";
    case JSON_REAL:
        return "a number";
    case JSON_TRUE:
    case JSON_FALSE:
        return "a boolean";
    case JSON_NULL:
        return "null";
    }
    return "unknown";
}

/* Finds key; 1 when present and not null, 0 when absent or null (treated as
 * absent), or an error when it is required. */
static int member(const json_t *obj, const char *key, mlx_json_need need, json_t **out,
                  mlx_err *err)
{
    if (!json_is_object(obj))
        return mlx_err_set(err, MLX_EINVAL, "expected a JSON object, got %s",
                           mlx_json_type_name(obj));
    json_t *v = json_object_get(obj, key);
    if (v == NULL || json_is_null(v)) {
        if (need == MLX_JSON_REQUIRED)
            return mlx_err_set(err, MLX_EINVAL, "'%s' is required", key);
        return 0;
    }
    *out = v;
    return 1;
}

int mlx_json_get_string(const json_t *obj, const char *key, mlx_json_need need,
                        const char **out, mlx_err *err)
{
    json_t *v = NULL;
    int rc = member(obj, key, need, &v, err);
    if (rc <= 0)
        return rc;
    if (!json_is_string(v))
        return mlx_err_set(err, MLX_EINVAL, "'%s' must be a string, got %s", key,
                           mlx_json_type_name(v));
    *out = json_string_value(v);
    return 0;
}

int mlx_json_get_int(const json_t *obj, const char *key, mlx_json_need need, int64_t min,
                     int64_t max, int64_t *out, mlx_err *err)
{
    json_t *v = NULL;
    int rc = member(obj, key, need, &v, err);
    if (rc <= 0)
        return rc;
    if (!json_is_integer(v))
        return mlx_err_set(err, MLX_EINVAL, "'%s' must be an integer, got %s", key,
                           mlx_json_type_name(v));
    json_int_t i = json_integer_value(v);
    if (i < min || i > max)
        return mlx_err_set(err, MLX_EINVAL, "'%s' must be from %lld to %lld, got %lld",
                           key, (long long)min, (long long)max, (long long)i);
    *out = (int64_t)i;
    return 0;
}

int mlx_json_get_number(const json_t *obj, const char *key, mlx_json_need need,
                        double min, double max, double *out, mlx_err *err)
{
    json_t *v = NULL;
    int rc = member(obj, key, need, &v, err);
    if (rc <= 0)
        return rc;
    if (!json_is_number(v))
        return mlx_err_set(err, MLX_EINVAL, "'%s' must be a number, got %s", key,
                           mlx_json_type_name(v));
    double d = json_number_value(v);
    if (!isfinite(d) || d < min || d > max)
        return mlx_err_set(err, MLX_EINVAL, "'%s' must be from %g to %g, got %g", key,
                           min, max, d);
    *out = d;
    return 0;
}

int mlx_json_get_bool(const json_t *obj, const char *key, mlx_json_need need, bool *out,
                      mlx_err *err)
{
    json_t *v = NULL;
    int rc = member(obj, key, need, &v, err);
    if (rc <= 0)
        return rc;
    if (!json_is_boolean(v))
        return mlx_err_set(err, MLX_EINVAL, "'%s' must be true or false, got %s", key,
                           mlx_json_type_name(v));
    *out = json_is_true(v);
    return 0;
}

int mlx_json_print(json_t *value, mlx_err *err)
{
    if (value == NULL)
        return mlx_err_set(err, MLX_ENOMEM, "out of memory");
    char *text = NULL;
    int rc = mlx_json_dump(value, &text, err);
    json_decref(value);
    if (rc == 0)
        printf("%s\n", text);
    mlx_free(text);
    return rc;
}

void mlx_json_use_mlx_alloc(void)
{
    json_set_alloc_funcs(mlx_malloc, mlx_free);
}
