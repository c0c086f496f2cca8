/*
 * auth.h — who may use the coordinator: API keys, rate limits, request log.
 *
 * API keys. auth_key_create makes a key from OpenSSL's CSPRNG and hands it to
 * the caller once; the database keeps only its public prefix ("mlx-" and the
 * first 8 random characters, shown by `mlxctl keys list` and used to find the
 * row) and an HMAC-SHA256 of the whole key under a per-key random salt. A key
 * has a unique name, a scope (infer, or admin which also allows inference),
 * a glob of the models it may use (fnmatch, "*" for all) and two rate limits.
 *
 * Admission. auth_check decides one request from its Authorization header:
 * while no key is active the coordinator is in bootstrap mode and admits only
 * loopback clients (so the first key is created from the coordinator's own
 * machine); once any key is active every request, loopback included, needs a
 * valid "Bearer <key>" whose scope and model pattern allow the request. The
 * HTTP front exempts /healthz itself.
 *
 * Rate limits. Two token buckets per key, requests per minute and tokens per
 * minute (0 = unlimited), each holding at most one minute of budget and
 * refilling continuously. They live in memory (a restart refills them) and
 * are driven by a "now" the caller passes, so tests need no sleeps.
 *
 * Request log. One row per request (key, model, node, tokens, latency,
 * status), pruned by age.
 *
 * Storage: its own SQLite file, normally <data>/auth.db, with its own
 * numbered migrations (common/db.h). Not <data>/coordinator.db: common/db.h
 * keeps one schema_version per file, so two modules with independent
 * migration lists cannot share a file without one skipping the other's
 * steps, and sharing the registry's connection would tie the two modules'
 * schemas and lifetimes together.
 *
 * Lifecycle:
 *   1. auth_open succeeds → the handle must be closed with auth_close.
 *   2. No call may run on a handle during or after auth_close.
 *
 * Thread safety: every function may be called from any thread at once; the
 * database connection is serialized and the buckets are under one mutex.
 */
#ifndef MLX_COORDINATOR_AUTH_H
#define MLX_COORDINATOR_AUTH_H

#include <stdbool.h>
#include <stdint.h>

#include "common/err.h"
#include "common/limits.h"

typedef struct auth auth;

/* Key names are shown in tables and logs and used as metric labels:
 * 1..63 of [A-Za-z0-9._-], starting with a letter or digit. */
#define AUTH_MAX_KEY_NAME 63

/* "mlx-" + 8 id characters + 32 secret characters, all base62: the id is
 * public (the stored prefix), the secret carries ~190 bits. */
#define AUTH_KEY_ID_CHARS     8
#define AUTH_KEY_SECRET_CHARS 32
#define AUTH_KEY_PREFIX_LEN   (4 + AUTH_KEY_ID_CHARS)
#define AUTH_KEY_LEN          (AUTH_KEY_PREFIX_LEN + AUTH_KEY_SECRET_CHARS)
#define AUTH_KEY_SIZE         (AUTH_KEY_LEN + 1)

/* A model glob is at most as long as a model name. */
#define AUTH_MAX_MODELS_PATTERN MLX_MAX_MODEL_NAME

/* Requests or tokens per minute a key may be given; keeps bucket
 * arithmetic (budget × 60,000 per minute) far from overflow. */
#define AUTH_MAX_RATE 1000000000u

typedef enum auth_scope {
    AUTH_SCOPE_INFER, /* inference endpoints only */
    AUTH_SCOPE_ADMIN, /* admin endpoints too */
} auth_scope;

/* "infer" / "admin". */
const char *auth_scope_name(auth_scope s);
/* MLX_EINVAL with a sentence for anything else. */
int auth_scope_parse(const char *text, auth_scope *out, mlx_err *err);

/* Opens (creating if needed) the database at path. *out: auth_close. */
int auth_open(const char *path, auth **out, mlx_err *err);
void auth_close(auth *a);

/* ---- keys ---------------------------------------------------------------- */

typedef struct auth_key_spec {
    const char *name;           /* see AUTH_MAX_KEY_NAME */
    auth_scope scope;
    const char *models_pattern; /* fnmatch glob; NULL or "" means "*" */
    uint32_t rpm;               /* requests per minute, 0 = unlimited */
    uint32_t tpm;               /* tokens per minute, 0 = unlimited */
} auth_key_spec;

/* Creates a key and writes it, NUL-terminated, to key_out (the only time it
 * exists in clear: the caller shows it once and forgets it). MLX_EINVAL for
 * a bad name, pattern or limit; MLX_EEXIST when an active key has the name.
 * now_unix_ms is the creation time recorded. */
int auth_key_create(auth *a, const auth_key_spec *spec, int64_t now_unix_ms,
                    char key_out[AUTH_KEY_SIZE], mlx_err *err);

/* What auth_key_list shows of a key; never the key. Valid during the call. */
typedef struct auth_key_info {
    const char *name;
    const char *prefix; /* "mlx-XXXXXXXX" */
    auth_scope scope;
    const char *models_pattern;
    uint32_t rpm, tpm;
    int64_t created_unix_ms;
    int64_t last_used_unix_ms; /* 0: never used */
    int64_t revoked_unix_ms;   /* 0: active */
} auth_key_info;

/* Calls fn for every key, revoked ones too, oldest first. A non-zero return
 * from fn stops the walk and is returned. */
typedef int (*auth_key_fn)(void *arg, const auth_key_info *key);
int auth_key_list(auth *a, auth_key_fn fn, void *arg, mlx_err *err);

/* Revokes the active key named name: it is refused from now on, and its name
 * may be given to a new key. MLX_ENOENT when no active key has that name. */
int auth_key_revoke(auth *a, const char *name, int64_t now_unix_ms, mlx_err *err);

/* ---- admission ----------------------------------------------------------- */

typedef struct auth_result {
    int status;      /* HTTP status: 200 admitted, 401 or 403 refused */
    bool bootstrap;  /* admitted without a key: no key is active, loopback */
    char key_name[AUTH_MAX_KEY_NAME + 1]; /* the key, on 200 and 403; else "" */
    auth_scope scope;
    char models_pattern[AUTH_MAX_MODELS_PATTERN + 1]; /* to filter model lists */
    char message[MLX_MAX_ERR_MSG]; /* why it was refused, one sentence */
} auth_result;

/* Decides one request. authorization: the Authorization header or NULL;
 * loopback: the client's address is 127.0.0.0/8 or ::1; admin_endpoint: the
 * endpoint needs the admin scope; model: the model the request names, or
 * NULL when it names none. Returns 0 when *out holds a decision, or a
 * negative code (database failure: answer 500) with *out.status 500.
 * now_unix_ms is recorded as the key's last use (at most once a minute). */
int auth_check(auth *a, const char *authorization, bool loopback, bool admin_endpoint,
               const char *model, int64_t now_unix_ms, auth_result *out, mlx_err *err);

/* Whether the key's pattern admits model (for filtering /v1/models). */
bool auth_model_allowed(const auth_result *r, const char *model);

/* ---- rate limits --------------------------------------------------------- */

/* Takes one request and tokens_estimate tokens from key_name's buckets at
 * now_ms (any monotonic milliseconds). 0: go ahead. MLX_EBUSY: over a limit,
 * nothing taken, *retry_after_s (>= 1) is when both buckets will hold enough,
 * and err says which limit. MLX_ENOENT: no active key has that name. A key
 * name NULL or "" (a bootstrap request) is never limited. An estimate larger
 * than a whole minute's tokens waits for a full bucket and empties it. */
int auth_take(auth *a, const char *key_name, int64_t now_ms, uint32_t tokens_estimate,
              uint32_t *retry_after_s, mlx_err *err);

/* Settles a request that auth_take admitted: used tokens are charged and the
 * reserved estimate given back, so the bucket pays for what was used. The
 * bucket may go into debt (down to minus one minute's budget), which delays
 * the key's next requests. Unknown names are ignored. */
void auth_charge_tokens(auth *a, const char *key_name, uint32_t reserved, uint32_t used,
                        int64_t now_ms);

/* ---- request log --------------------------------------------------------- */

/* One request, as the HTTP front saw it. Strings borrowed; NULL allowed
 * except where noted. */
typedef struct auth_log_entry {
    int64_t time_unix_ms;
    const char *request_id;
    const char *key_name; /* NULL or "" for bootstrap or refused requests */
    const char *model;
    const char *node;     /* the node that served it */
    uint32_t prompt_tokens;
    uint32_t completion_tokens;
    uint32_t latency_ms;
    int status;           /* HTTP status answered */
} auth_log_entry;

/* Queues the entry; a writer thread stores it within LOG_FLUSH_MS
 * (reqlog.c), and prunes entries older than the retention. Fails only when
 * out of memory. */
int auth_log_request(auth *a, const auth_log_entry *e, mlx_err *err);

/* How long entries are kept: retention_ms, or forever when 0. Default
 * AUTH_LOG_RETENTION_MS. The writer prunes at once, then every minute. */
#define AUTH_LOG_RETENTION_MS (30LL * 24 * 3600 * 1000)
void auth_log_set_retention(auth *a, int64_t retention_ms);

/* Deletes entries older than now_unix_ms - retention_ms; *deleted (may be
 * NULL) gets how many. */
int auth_log_prune(auth *a, int64_t now_unix_ms, int64_t retention_ms, uint64_t *deleted,
                   mlx_err *err);

/* Calls fn for up to limit entries at or after since_unix_ms, oldest first;
 * absent strings are "". A non-zero return from fn stops and is returned. */
typedef int (*auth_log_fn)(void *arg, const auth_log_entry *e);
int auth_log_list(auth *a, int64_t since_unix_ms, uint32_t limit, auth_log_fn fn,
                  void *arg, mlx_err *err);

#endif
