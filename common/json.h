/*
 * json.h — strict JSON in and out, through jansson.
 *
 * Parsing reports where the text went wrong ("line 3, column 14: ...").
 * The typed getters read one member of an object and produce a sentence that
 * names the member and what was expected ("'max_tokens' must be an integer
 * from 1 to 32768, got a string"), which is what an API error should say.
 * A getter leaves *out unchanged when the member is absent and not required.
 *
 * Ownership: follows jansson — parse returns a new reference (json_decref
 * it); getters borrow strings from the object they read.
 * Thread safety: a json_t belongs to one thread at a time.
 */
#ifndef MLX_COMMON_JSON_H
#define MLX_COMMON_JSON_H

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

#include "common/err.h"

/* Makes jansson allocate through mlx_malloc and mlx_free (so the
 * fault-injection seam of alloc.h reaches JSON too). Call once at start. */
void mlx_json_use_mlx_alloc(void);

/* Parses exactly one JSON value from data (len bytes, need not be NUL-ended). */
int mlx_json_parse(const char *data, size_t len, json_t **out, mlx_err *err);

/* Compact serialisation; *out is NUL-terminated, caller frees with mlx_free. */
int mlx_json_dump(const json_t *value, char **out, mlx_err *err);

/* Prints value on stdout as one line of JSON, as a command's --json answer;
 * takes the reference. NULL (what a json_pack that ran out of memory
 * returns) is MLX_ENOMEM. */
int mlx_json_print(json_t *value, mlx_err *err);

/* "an object", "an array", "a string", "an integer", "a number", "a boolean"
 * or "null": worded to end a sentence ("got a string"). */
const char *mlx_json_type_name(const json_t *value);

typedef enum mlx_json_need { MLX_JSON_OPTIONAL, MLX_JSON_REQUIRED } mlx_json_need;

int mlx_json_get_string(const json_t *obj, const char *key, mlx_json_need need,
                        const char **out, mlx_err *err);
int mlx_json_get_int(const json_t *obj, const char *key, mlx_json_need need, int64_t min,
                     int64_t max, int64_t *out, mlx_err *err);
int mlx_json_get_number(const json_t *obj, const char *key, mlx_json_need need,
                        double min, double max, double *out, mlx_err *err);
int mlx_json_get_bool(const json_t *obj, const char *key, mlx_json_need need, bool *out,
                      mlx_err *err);

#endif
