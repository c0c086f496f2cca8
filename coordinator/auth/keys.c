/*
 * keys.c — API keys: making them, storing only a salted hash, checking them.
 *
 * A key is "mlx-" + 8 base62 id characters + 32 base62 secret characters,
 * every character drawn from OpenSSL's CSPRNG without modulo bias. The row
 * keeps the first 12 characters (the prefix, public: it finds the row and
 * names the key in lists) and HMAC-SHA256(salt, whole key) with a 16-byte
 * random salt per key.
 *
 * Why a fast hash and not PBKDF2: slow hashes protect low-entropy secrets
 * (passwords) from guessing; a key's 190 random secret bits cannot be guessed
 * at any hash speed, while a slow hash would cost every request milliseconds
 * of CPU. The salt still makes each stored hash unique, so a leaked database
 * offers nothing to compare across keys or installations.
 */
#include <fnmatch.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "common/db.h"
#include "common/log.h"
#include "common/rand.h"
#include "coordinator/auth/internal.h"

#define SALT_LEN 16
#define HASH_LEN 32

/* A key's last use is written at most this often, so checking a key is
 * a read, not a write, on nearly every request. */
#define LAST_USED_EVERY_MS 60000

/* New prefixes that already exist (a 1-in-2^47 event) are drawn again. */
#define CREATE_TRIES 4

static const char base62[] =
    "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

static bool is_base62(char c)
{
    return (c >= '0' && c <= '9') || (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z');
}

/* n random base62 characters: bytes >= 248 (= 4 × 62) are dropped, so each
 * character is uniform. */
static int random_base62(char *out, size_t n, mlx_err *err)
{
    size_t filled = 0;
    while (filled < n) {
        unsigned char bytes[64];
        int rc = mlx_rand_bytes(bytes, sizeof bytes, err);
        if (rc != 0)
            return rc;
        for (size_t i = 0; i < sizeof bytes && filled < n; i++) {
            if (bytes[i] < 248)
                out[filled++] = base62[bytes[i] % 62];
        }
        OPENSSL_cleanse(bytes, sizeof bytes);
    }
    return 0;
}

static int key_hash(const unsigned char salt[SALT_LEN], const char *key,
                    unsigned char out[HASH_LEN], mlx_err *err)
{
    unsigned int len = 0;
    if (HMAC(EVP_sha256(), salt, SALT_LEN, (const unsigned char *)key, strlen(key), out,
             &len) == NULL ||
        len != HASH_LEN)
        return mlx_err_set(err, MLX_EINTERNAL, "OpenSSL could not compute HMAC-SHA256");
    return 0;
}

static int check_name(const char *name, mlx_err *err)
{
    size_t len = name != NULL ? strlen(name) : 0;
    if (len == 0)
        return mlx_err_set(err, MLX_EINVAL, "a key needs a name: pass --name NAME");
    if (len > AUTH_MAX_KEY_NAME)
        return mlx_err_set(err, MLX_EINVAL,
                           "key name is %zu characters long; use at most %d", len,
                           AUTH_MAX_KEY_NAME);
    if (!is_base62(name[0]))
        return mlx_err_set(err, MLX_EINVAL,
                           "key name must start with a letter or a digit");
    for (size_t i = 0; i < len; i++) {
        char c = name[i];
        if (!is_base62(c) && c != '.' && c != '_' && c != '-')
            return mlx_err_set(err, MLX_EINVAL,
                               "key name has a character other than letters, digits, "
                               "'.', '_' and '-' at position %zu; choose another name",
                               i + 1);
    }
    return 0;
}

static int check_pattern(const char *pattern, mlx_err *err)
{
    size_t len = strlen(pattern);
    if (len > AUTH_MAX_MODELS_PATTERN)
        return mlx_err_set(err, MLX_EINVAL,
                           "model pattern is %zu characters long; use at most %d", len,
                           AUTH_MAX_MODELS_PATTERN);
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)pattern[i];
        if (c < 0x21 || c > 0x7e)
            return mlx_err_set(err, MLX_EINVAL,
                               "model pattern has a space or control character at "
                               "position %zu; use a glob such as 'llama3*'",
                               i + 1);
    }
    return 0;
}

static int create_key(auth *a, const auth_key_spec *spec, int64_t now_unix_ms,
                      char key_out[AUTH_KEY_SIZE], mlx_err *err)
{
    const char *pattern =
        spec->models_pattern != NULL && spec->models_pattern[0] != '\0'
            ? spec->models_pattern
            : "*";
    int rc = check_name(spec->name, err);
    if (rc == 0)
        rc = check_pattern(pattern, err);
    if (rc != 0)
        return rc;
    if (spec->scope != AUTH_SCOPE_INFER && spec->scope != AUTH_SCOPE_ADMIN)
        return mlx_err_set(err, MLX_EINVAL, "unknown key scope: use infer or admin");
    if (spec->rpm > AUTH_MAX_RATE || spec->tpm > AUTH_MAX_RATE)
        return mlx_err_set(err, MLX_EINVAL,
                           "rate limits go up to %u per minute; use 0 for unlimited",
                           AUTH_MAX_RATE);

    char key[AUTH_KEY_SIZE];
    unsigned char salt[SALT_LEN], hash[HASH_LEN];
    for (int attempt = 0; attempt < CREATE_TRIES; attempt++) {
        memcpy(key, "mlx-", 4);
        rc = random_base62(key + 4, AUTH_KEY_LEN - 4, err);
        key[AUTH_KEY_LEN] = '\0';
        if (rc == 0)
            rc = mlx_rand_bytes(salt, sizeof salt, err);
        if (rc == 0)
            rc = key_hash(salt, key, hash, err);
        sqlite3_stmt *st = NULL;
        if (rc == 0)
            rc = mlx_db_prepare(a->db,
                                "INSERT INTO keys (name, prefix, salt, hash, scope, models,"
                                "                  rpm, tpm, created_ms)"
                                " VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
                                &st, err);
        if (rc != 0)
            break;
        sqlite3_bind_text(st, 1, spec->name, -1, SQLITE_STATIC);
        sqlite3_bind_text(st, 2, key, AUTH_KEY_PREFIX_LEN, SQLITE_STATIC);
        sqlite3_bind_blob(st, 3, salt, SALT_LEN, SQLITE_STATIC);
        sqlite3_bind_blob(st, 4, hash, HASH_LEN, SQLITE_STATIC);
        sqlite3_bind_text(st, 5, auth_scope_name(spec->scope), -1, SQLITE_STATIC);
        sqlite3_bind_text(st, 6, pattern, -1, SQLITE_STATIC);
        sqlite3_bind_int64(st, 7, spec->rpm);
        sqlite3_bind_int64(st, 8, spec->tpm);
        sqlite3_bind_int64(st, 9, now_unix_ms);
        /* The error message is the connection's: read it before another
         * thread's statement replaces it (see auth_db_run). */
        sqlite3_mutex *mu = sqlite3_db_mutex(a->db);
        sqlite3_mutex_enter(mu);
        int step = sqlite3_step(st);
        const char *msg = sqlite3_errmsg(a->db);
        /* SQLite names the index's column: "UNIQUE constraint failed: keys.name". */
        bool name_taken = step == SQLITE_CONSTRAINT && strstr(msg, "keys.name") != NULL;
        bool prefix_taken = step == SQLITE_CONSTRAINT && strstr(msg, "keys.prefix") != NULL;
        if (step == SQLITE_DONE)
            rc = 0;
        else if (name_taken)
            rc = mlx_err_set(err, MLX_EEXIST,
                             "a key named %s already exists; revoke it first or choose "
                             "another name",
                             spec->name);
        else
            rc = mlx_db_fail(a->db, step, err, "storing a new API key");
        sqlite3_mutex_leave(mu);
        sqlite3_finalize(st);
        if (!prefix_taken)
            break;
    }
    if (rc == 0) {
        memcpy(key_out, key, AUTH_KEY_SIZE);
        rc = auth_limits_set(a, spec->name, spec->rpm, spec->tpm, err);
        mlx_log_info("auth", "API key created", "name=%s prefix=%.*s scope=%s models=%s"
                     " rpm=%u tpm=%u", spec->name, AUTH_KEY_PREFIX_LEN, key,
                     auth_scope_name(spec->scope), pattern, spec->rpm, spec->tpm);
    }
    OPENSSL_cleanse(key, sizeof key);
    return rc;
}

static const char *column_text(sqlite3_stmt *st, int col)
{
    const char *s = (const char *)sqlite3_column_text(st, col);
    return s != NULL ? s : "";
}

int auth_key_list(auth *a, auth_key_fn fn, void *arg, mlx_err *err)
{
    sqlite3_stmt *st;
    int rc = mlx_db_prepare(a->db,
                            "SELECT name, prefix, scope, models, rpm, tpm, created_ms,"
                            "       last_used_ms, revoked_ms"
                            " FROM keys ORDER BY created_ms, id",
                            &st, err);
    if (rc != 0)
        return rc;
    int step;
    while (rc == 0 && (step = sqlite3_step(st)) == SQLITE_ROW) {
        auth_key_info k = {
            .name = column_text(st, 0),
            .prefix = column_text(st, 1),
            .scope = strcmp(column_text(st, 2), "admin") == 0 ? AUTH_SCOPE_ADMIN
                                                                : AUTH_SCOPE_INFER,
            .models_pattern = column_text(st, 3),
            .rpm = (uint32_t)sqlite3_column_int64(st, 4),
            .tpm = (uint32_t)sqlite3_column_int64(st, 5),
            .created_unix_ms = sqlite3_column_int64(st, 6),
            .last_used_unix_ms = sqlite3_column_int64(st, 7),
            .revoked_unix_ms = sqlite3_column_int64(st, 8),
        };
        rc = fn(arg, &k);
    }
    if (rc == 0 && step != SQLITE_DONE)
        rc = mlx_db_fail(a->db, step, err, "reading the API keys");
    sqlite3_finalize(st);
    return rc;
}

static int revoke_key(auth *a, const char *name, int64_t now_unix_ms, mlx_err *err)
{
    sqlite3_stmt *st;
    int rc = mlx_db_prepare(
        a->db, "UPDATE keys SET revoked_ms = ?2 WHERE name = ?1 AND revoked_ms = 0", &st,
        err);
    if (rc != 0)
        return rc;
    sqlite3_bind_text(st, 1, name, -1, SQLITE_STATIC);
    /* 0 means "active": a revocation at the epoch is stored as 1 ms. */
    sqlite3_bind_int64(st, 2, now_unix_ms > 0 ? now_unix_ms : 1);
    int changes = 0;
    rc = auth_db_run(a, st, &changes, err, "revoking an API key");
    if (rc == 0 && changes == 0)
        return mlx_err_set(err, MLX_ENOENT,
                           "no active key is named %s; see mlxctl keys list", name);
    if (rc == 0) {
        auth_limits_drop(a, name);
        mlx_log_info("auth", "API key revoked", "name=%s", name);
    }
    return rc;
}

/* Whether any key is active is known in memory (any_active_key) until a
 * key is created or revoked. The change is committed before the memory is
 * forgotten, and a lookup holds the lock from its query to storing the
 * answer, so a lookup that raced the change cannot leave a stale answer. */
static void forget_active(auth *a)
{
    pthread_mutex_lock(&a->keys_mu);
    a->active_known = false;
    pthread_mutex_unlock(&a->keys_mu);
}

int auth_key_create(auth *a, const auth_key_spec *spec, int64_t now_unix_ms,
                    char key_out[AUTH_KEY_SIZE], mlx_err *err)
{
    int rc = create_key(a, spec, now_unix_ms, key_out, err);
    forget_active(a);
    return rc;
}

int auth_key_revoke(auth *a, const char *name, int64_t now_unix_ms, mlx_err *err)
{
    int rc = revoke_key(a, name, now_unix_ms, err);
    forget_active(a);
    return rc;
}

int auth_key_limits(auth *a, const char *name, uint32_t *rpm, uint32_t *tpm,
                    mlx_err *err)
{
    sqlite3_stmt *st;
    int rc = mlx_db_prepare(a->db,
                            "SELECT rpm, tpm FROM keys WHERE name = ?1 AND revoked_ms = 0",
                            &st, err);
    if (rc != 0)
        return rc;
    sqlite3_bind_text(st, 1, name, -1, SQLITE_STATIC);
    int step = sqlite3_step(st);
    if (step == SQLITE_ROW) {
        *rpm = (uint32_t)sqlite3_column_int64(st, 0);
        *tpm = (uint32_t)sqlite3_column_int64(st, 1);
    } else if (step == SQLITE_DONE) {
        rc = mlx_err_set(err, MLX_ENOENT, "no active key is named %s", name);
    } else {
        rc = mlx_db_fail(a->db, step, err, "reading a key's rate limits");
    }
    sqlite3_finalize(st);
    return rc;
}

/* ---- admission ----------------------------------------------------------- */

static int refuse(auth_result *out, int status, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Records a refusal in out; returns 0 (a decision, not a failure). */
static int refuse(auth_result *out, int status, const char *fmt, ...)
{
    out->status = status;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(out->message, sizeof out->message, fmt, ap);
    va_end(ap);
    return 0;
}

/* Whether any key is active (not revoked). */
/* Asked for every request, answered from memory (see forget_active). */
static int any_active_key(auth *a, bool *out, mlx_err *err)
{
    pthread_mutex_lock(&a->keys_mu);
    if (a->active_known) {
        *out = a->any_active;
        pthread_mutex_unlock(&a->keys_mu);
        return 0;
    }
    sqlite3_stmt *st;
    int rc = mlx_db_prepare(a->db, "SELECT EXISTS (SELECT 1 FROM keys WHERE revoked_ms = 0)",
                            &st, err);
    if (rc == 0) {
        int step = sqlite3_step(st);
        if (step == SQLITE_ROW) {
            *out = a->any_active = sqlite3_column_int(st, 0) != 0;
            a->active_known = true;
        } else {
            rc = mlx_db_fail(a->db, step, err, "reading the API keys");
        }
        sqlite3_finalize(st);
    }
    pthread_mutex_unlock(&a->keys_mu);
    return rc;
}

/* The key in an "Authorization: Bearer <key>" header, or NULL. */
static const char *bearer_token(const char *header, size_t *len)
{
    if (header == NULL)
        return NULL;
    while (*header == ' ' || *header == '\t')
        header++;
    if (strncasecmp(header, "Bearer", 6) != 0 || (header[6] != ' ' && header[6] != '\t'))
        return NULL;
    const char *t = header + 6;
    while (*t == ' ' || *t == '\t')
        t++;
    size_t n = strlen(t);
    while (n > 0 && (t[n - 1] == ' ' || t[n - 1] == '\t'))
        n--;
    *len = n;
    return n > 0 ? t : NULL;
}

static void touch(auth *a, const char *prefix, int64_t now_unix_ms)
{
    sqlite3_stmt *st;
    if (mlx_db_prepare(a->db,
                       "UPDATE keys SET last_used_ms = ?2"
                       " WHERE prefix = ?1 AND last_used_ms <= ?2 - ?3",
                       &st, NULL) != 0)
        return;
    sqlite3_bind_text(st, 1, prefix, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 2, now_unix_ms);
    sqlite3_bind_int64(st, 3, LAST_USED_EVERY_MS);
    /* A lost last-use time is not worth failing the request over. */
    auth_db_run(a, st, NULL, NULL, "recording a key's last use");
}

/* Looks the presented key up; fills out (status 200 or 401). */
static int verify_key(auth *a, const char *token, size_t len, int64_t now_unix_ms,
                      auth_result *out, mlx_err *err)
{
    bool well_formed = len == AUTH_KEY_LEN && strncmp(token, "mlx-", 4) == 0;
    for (size_t i = 4; well_formed && i < len; i++)
        well_formed = is_base62(token[i]);
    if (!well_formed)
        return refuse(out, 401,
                      "the API key is not valid: check the key you sent in the "
                      "Authorization header");

    char key[AUTH_KEY_SIZE], prefix[AUTH_KEY_PREFIX_LEN + 1];
    memcpy(key, token, AUTH_KEY_LEN);
    key[AUTH_KEY_LEN] = '\0';
    memcpy(prefix, token, AUTH_KEY_PREFIX_LEN);
    prefix[AUTH_KEY_PREFIX_LEN] = '\0';

    sqlite3_stmt *st;
    int rc = mlx_db_prepare(a->db,
                            "SELECT name, salt, hash, scope, models, rpm, tpm, revoked_ms"
                            " FROM keys WHERE prefix = ?1",
                            &st, err);
    if (rc != 0)
        goto out;
    sqlite3_bind_text(st, 1, prefix, -1, SQLITE_STATIC);
    int step = sqlite3_step(st);
    if (step != SQLITE_ROW && step != SQLITE_DONE) {
        rc = mlx_db_fail(a->db, step, err, "looking up an API key");
    } else {
        bool match = false;
        if (step == SQLITE_ROW && sqlite3_column_bytes(st, 1) == SALT_LEN &&
            sqlite3_column_bytes(st, 2) == HASH_LEN) {
            unsigned char salt[SALT_LEN], want[HASH_LEN];
            memcpy(salt, sqlite3_column_blob(st, 1), SALT_LEN);
            rc = key_hash(salt, key, want, err);
            match = rc == 0 && CRYPTO_memcmp(want, sqlite3_column_blob(st, 2),
                                             HASH_LEN) == 0;
        }
        if (rc != 0) {
            /* err holds the failure */
        } else if (!match) {
            refuse(out, 401,
                   "the API key is not valid: check the key you sent in the "
                   "Authorization header");
        } else if (sqlite3_column_int64(st, 7) != 0) {
            refuse(out, 401, "the API key %s was revoked: ask an admin for a new key",
                   column_text(st, 0));
        } else {
            out->status = 200;
            snprintf(out->key_name, sizeof out->key_name, "%s", column_text(st, 0));
            snprintf(out->models_pattern, sizeof out->models_pattern, "%s",
                     column_text(st, 4));
            out->scope = strcmp(column_text(st, 3), "admin") == 0 ? AUTH_SCOPE_ADMIN
                                                                   : AUTH_SCOPE_INFER;
            uint32_t rpm = (uint32_t)sqlite3_column_int64(st, 5);
            uint32_t tpm = (uint32_t)sqlite3_column_int64(st, 6);
            /* Limits changed in the database reach the buckets here. */
            rc = auth_limits_set(a, out->key_name, rpm, tpm, err);
        }
    }
    sqlite3_finalize(st);
    if (rc == 0 && out->status == 200)
        touch(a, prefix, now_unix_ms);
out:
    OPENSSL_cleanse(key, sizeof key);
    return rc;
}

int auth_check(auth *a, const char *authorization, bool loopback, bool admin_endpoint,
               const char *model, int64_t now_unix_ms, auth_result *out, mlx_err *err)
{
    memset(out, 0, sizeof *out);
    out->status = 500;
    bool active = false;
    int rc = any_active_key(a, &active, err);
    if (rc != 0)
        return rc;
    if (!active) {
        if (!loopback)
            return refuse(out, 401,
                          "no API key is active, so this coordinator accepts only "
                          "loopback clients: create a key on its machine with "
                          "mlxctl keys create --name NAME --scope admin");
        out->status = 200;
        out->bootstrap = true;
        out->scope = AUTH_SCOPE_ADMIN;
        snprintf(out->models_pattern, sizeof out->models_pattern, "*");
        return 0;
    }
    size_t len = 0;
    const char *token = bearer_token(authorization, &len);
    if (token == NULL)
        return refuse(out, 401,
                      "this coordinator requires an API key: send the header "
                      "Authorization: Bearer <key>");
    rc = verify_key(a, token, len, now_unix_ms, out, err);
    if (rc != 0) {
        out->status = 500;
        return rc;
    }
    if (out->status != 200)
        return 0;
    if (admin_endpoint && out->scope != AUTH_SCOPE_ADMIN)
        return refuse(out, 403,
                      "the API key %s has the infer scope and this endpoint needs the "
                      "admin scope: use an admin key",
                      out->key_name);
    if (model != NULL && !auth_model_allowed(out, model)) {
        refuse(out, 403,
                 "the API key %s may use only models matching '%s', not %s: use "
                 "another model or key",
                 out->key_name, out->models_pattern, model);
    }
    return 0;
}

bool auth_model_allowed(const auth_result *r, const char *model)
{
    /* No FNM_PATHNAME: "hf:*" must match "hf:org/name". */
    return r->status == 200 && model != NULL && fnmatch(r->models_pattern, model, 0) == 0;
}
