/*
 * ctl.h — internal to mlxctl: the options every command shares, the call
 * to the coordinator's API, and output helpers (tables, sizes, ages).
 *
 * Output rules: tables are aligned and coloured only when stdout is a
 * terminal and NO_COLOR is unset; --json prints exactly the JSON the API
 * returned; errors are one sentence on stderr.
 */
#ifndef MLX_COORDINATOR_CTL_H
#define MLX_COORDINATOR_CTL_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/config.h"

/* Every command's options begin with these fields, in this order. */
typedef struct ctl_opts {
    char *coordinator;
    char *api_key;
    bool json;
} ctl_opts;

#define CTL_COMMON_OPTS(type)                                                            \
    {"coordinator",                                                                      \
     0,                                                                                  \
     MLX_OPT_STR,                                                                        \
     offsetof(type, common.coordinator),                                                 \
     "http://127.0.0.1:7480",                                                            \
     "URL",                                                                              \
     "the coordinator's HTTP address",                                                   \
     .check = mlx_check_http_url},                                                       \
        {"api-key",                                                                      \
         0,                                                                              \
         MLX_OPT_STR,                                                                    \
         offsetof(type, common.api_key),                                                 \
         "",                                                                             \
         "KEY",                                                                          \
         "API key sent as a bearer token (none: loopback bootstrap)"},                   \
    {                                                                                    \
        "json", 0, MLX_OPT_BOOL, offsetof(type, common.json), "false", NULL,             \
            "print the API's JSON instead of a table"                                    \
    }

extern const mlx_cmd ctl_cmd_nodes;
extern const mlx_cmd ctl_cmd_models;
extern const mlx_cmd ctl_cmd_ps;
extern const mlx_cmd ctl_cmd_keys_create;
extern const mlx_cmd ctl_cmd_keys_list;
extern const mlx_cmd ctl_cmd_keys_revoke;
extern const mlx_cmd ctl_cmd_bench;

/* Sends method to path with body_text (JSON, may be NULL) and the API key as
 * a bearer token, and parses the JSON answer (*out: caller decrefs). On
 * failure prints one sentence and returns the code: a refused key or scope
 * is MLX_EPERM, a rate limit MLX_EBUSY, a 400 (bad input) MLX_EUSAGE. When
 * raw is not NULL it also receives the body text (caller frees with
 * mlx_free). */
int ctl_request(const ctl_opts *o, const char *method, const char *path,
                const char *body_text, json_t **out, char **raw);

/* ctl_request with its own time limit instead of 10 s, for a call that
 * runs work on the fleet before it answers (a bench). */
int ctl_request_wait(const ctl_opts *o, const char *method, const char *path,
                     const char *body_text, int timeout_ms, json_t **out, char **raw);

/* ctl_request with GET. */
int ctl_get(const ctl_opts *o, const char *path, json_t **out, char **raw);

/* What a listing command (nodes, models, ps, keys list) fetches and how it
 * shows it. */
typedef struct ctl_list_view {
    const char *path;     /* GET this */
    const char *list_key; /* the answer's array */
    const char *empty;    /* said when the array is empty */
    void (*print)(const json_t *list);
} ctl_list_view;

/* GETs v->path and prints the API's JSON as it came (--json), v->empty, or
 * v->print's table. Returns 0, or the code after one sentence on stderr. */
int ctl_list(const ctl_opts *o, const ctl_list_view *v);

/* ---- tables ---- */

typedef enum ctl_color {
    CTL_PLAIN,
    CTL_GREEN,
    CTL_YELLOW,
    CTL_RED,
    CTL_DIM,
} ctl_color;

typedef struct ctl_table ctl_table;

ctl_table *ctl_table_new(const char *const *headers, size_t columns);
/* Adds a cell to the current row (rows end after `columns` cells). */
void ctl_table_cell(ctl_table *t, ctl_color color, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
void ctl_table_print(ctl_table *t);
void ctl_table_free(ctl_table *t);

/* "12.3 GiB"; out needs 16 bytes. */
void ctl_format_bytes(uint64_t bytes, char *out, size_t size);
/* "4s", "3m", "2h", "5d" since then_unix_ms; out needs 16 bytes. */
void ctl_format_age(int64_t then_unix_ms, char *out, size_t size);

#endif
