/*
 * test_auth.c — the coordinator's access control (coordinator/auth/auth.h):
 * a key is shown once and never reaches the database files in clear; valid,
 * tampered, malformed and revoked keys; scopes; model globs; the bootstrap
 * rule (no active key: loopback only); key name and pattern validation; keys
 * survive reopening; the token buckets' refill arithmetic and Retry-After
 * with an injected clock; tokens charged after a request; threads taking at
 * once never exceed the budget; the request log and its retention.
 */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>

#include "common/clock.h"
#include "common/err.h"
#include "common/log.h"
#include "coordinator/auth/auth.h"
#include "tests/support/testutil.h"

/* 2023-11-14T22:13:20.123Z */
#define T0 INT64_C(1700000000123)

struct fixture {
    char *dir;
    char *path;
    auth *a;
};

static int setup(void **state)
{
    struct fixture *f = calloc(1, sizeof *f);
    if (f == NULL)
        return -1;
    f->dir = test_tmpdir("auth");
    f->path = test_join(f->dir, "auth.db");
    mlx_err err;
    mlx_err_clear(&err);
    if (auth_open(f->path, &f->a, &err) != 0) {
        fprintf(stderr, "auth_open: %s\n", err.msg);
        return -1;
    }
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fixture *f = *state;
    auth_close(f->a);
    free(f->path);
    test_tmpdir_remove(f->dir);
    free(f);
    return 0;
}

static void must(int rc, const mlx_err *err, const char *what)
{
    if (rc != 0)
        fail_msg("%s: %s (%s)", what, err->msg, mlx_errname(rc));
}

static void create(auth *a, const char *name, auth_scope scope, const char *models,
                   uint32_t rpm, uint32_t tpm, char key[AUTH_KEY_SIZE])
{
    auth_key_spec spec = {
        .name = name, .scope = scope, .models_pattern = models, .rpm = rpm, .tpm = tpm};
    mlx_err err;
    mlx_err_clear(&err);
    must(auth_key_create(a, &spec, T0, key, &err), &err, "auth_key_create");
}

static int create_rc(auth *a, const char *name, const char *models, uint32_t rpm,
                     mlx_err *err)
{
    char key[AUTH_KEY_SIZE];
    auth_key_spec spec = {
        .name = name, .scope = AUTH_SCOPE_INFER, .models_pattern = models, .rpm = rpm};
    mlx_err_clear(err);
    return auth_key_create(a, &spec, T0, key, err);
}

/* auth_check with "Bearer <key>" (key NULL: no header). */
static auth_result check(auth *a, const char *key, bool loopback, bool admin,
                         const char *model)
{
    char header[128];
    if (key != NULL)
        snprintf(header, sizeof header, "Bearer %s", key);
    auth_result r;
    mlx_err err;
    mlx_err_clear(&err);
    must(auth_check(a, key != NULL ? header : NULL, loopback, admin, model, T0, &r, &err),
         &err, "auth_check");
    return r;
}

static bool contains(const char *data, size_t len, const char *needle)
{
    size_t n = strlen(needle);
    for (size_t i = 0; n <= len && i <= len - n; i++) {
        if (memcmp(data + i, needle, n) == 0)
            return true;
    }
    return false;
}

/* Whether needle is in the database file or its WAL. */
static bool in_db_files(const char *path, const char *needle)
{
    bool found = false;
    const char *suffixes[] = {"", "-wal", "-shm"};
    for (size_t i = 0; i < 3; i++) {
        char p[1024];
        snprintf(p, sizeof p, "%s%s", path, suffixes[i]);
        size_t len = 0;
        char *data = test_read_file(p, &len);
        if (data != NULL && contains(data, len, needle))
            found = true;
        free(data);
    }
    return found;
}

/* ---- keys ----------------------------------------------------------------- */

static void key_is_shown_once_and_never_stored(void **state)
{
    struct fixture *f = *state;
    char k1[AUTH_KEY_SIZE], k2[AUTH_KEY_SIZE];
    create(f->a, "ci", AUTH_SCOPE_INFER, NULL, 0, 0, k1);
    create(f->a, "ops", AUTH_SCOPE_ADMIN, NULL, 0, 0, k2);

    assert_int_equal(strlen(k1), AUTH_KEY_LEN);
    assert_memory_equal(k1, "mlx-", 4);
    for (size_t i = 4; i < AUTH_KEY_LEN; i++) {
        char c = k1[i];
        assert_true((c >= '0' && c <= '9') || (c >= 'A' && c <= 'Z') ||
                    (c >= 'a' && c <= 'z'));
    }
    assert_string_not_equal(k1, k2);

    /* The prefix is stored (so the scan reads the right bytes), the key and
     * its secret part are not, neither while open nor after a checkpoint. */
    char prefix[AUTH_KEY_PREFIX_LEN + 1];
    memcpy(prefix, k1, AUTH_KEY_PREFIX_LEN);
    prefix[AUTH_KEY_PREFIX_LEN] = '\0';
    for (int pass = 0; pass < 2; pass++) {
        assert_true(in_db_files(f->path, prefix));
        assert_false(in_db_files(f->path, k1));
        assert_false(in_db_files(f->path, k1 + AUTH_KEY_PREFIX_LEN));
        assert_false(in_db_files(f->path, k2));
        assert_false(in_db_files(f->path, k2 + AUTH_KEY_PREFIX_LEN));
        auth_close(f->a);
        mlx_err err;
        must(auth_open(f->path, &f->a, &err), &err, "auth_open");
    }
}

static void valid_invalid_and_revoked_keys(void **state)
{
    struct fixture *f = *state;
    char key[AUTH_KEY_SIZE], other[AUTH_KEY_SIZE];
    create(f->a, "ci", AUTH_SCOPE_INFER, NULL, 0, 0, key);
    /* A second key keeps the coordinator out of bootstrap mode below. */
    create(f->a, "other", AUTH_SCOPE_INFER, NULL, 0, 0, other);

    auth_result r = check(f->a, key, false, false, "llama3.2:1b");
    assert_int_equal(r.status, 200);
    assert_string_equal(r.key_name, "ci");
    assert_false(r.bootstrap);

    /* Scheme is case-insensitive, extra blanks are tolerated. */
    char header[128];
    snprintf(header, sizeof header, "  bearer   %s  ", key);
    mlx_err err;
    must(auth_check(f->a, header, false, false, NULL, T0, &r, &err), &err, "auth_check");
    assert_int_equal(r.status, 200);

    /* One character changed in the secret part. */
    char bad[AUTH_KEY_SIZE];
    memcpy(bad, key, sizeof bad);
    bad[AUTH_KEY_LEN - 1] = bad[AUTH_KEY_LEN - 1] == 'a' ? 'b' : 'a';
    r = check(f->a, bad, false, false, NULL);
    assert_int_equal(r.status, 401);
    assert_string_equal(r.key_name, "");
    assert_non_null(strstr(r.message, "not valid"));

    /* Changed in the prefix: no such row. */
    memcpy(bad, key, sizeof bad);
    bad[5] = bad[5] == 'a' ? 'b' : 'a';
    assert_int_equal(check(f->a, bad, false, false, NULL).status, 401);

    /* Malformed: short, long, wrong characters. */
    assert_int_equal(check(f->a, "mlx-short", false, false, NULL).status, 401);
    char longer[AUTH_KEY_SIZE + 1];
    snprintf(longer, sizeof longer, "%sx", key);
    assert_int_equal(check(f->a, longer, false, false, NULL).status, 401);
    memcpy(bad, key, sizeof bad);
    bad[20] = '/';
    assert_int_equal(check(f->a, bad, false, false, NULL).status, 401);

    /* No header, and another scheme. */
    r = check(f->a, NULL, false, false, NULL);
    assert_int_equal(r.status, 401);
    assert_non_null(strstr(r.message, "Bearer"));
    snprintf(header, sizeof header, "Basic %s", key);
    must(auth_check(f->a, header, false, false, NULL, T0, &r, &err), &err, "auth_check");
    assert_int_equal(r.status, 401);

    /* Revoked. */
    must(auth_key_revoke(f->a, "ci", T0 + 5, &err), &err, "auth_key_revoke");
    r = check(f->a, key, false, false, NULL);
    assert_int_equal(r.status, 401);
    assert_non_null(strstr(r.message, "revoked"));
    assert_int_equal(auth_key_revoke(f->a, "ci", T0 + 6, &err), MLX_ENOENT);
    assert_int_equal(auth_key_revoke(f->a, "nobody", T0 + 6, &err), MLX_ENOENT);

    /* The name is free again; the old key stays refused. */
    char again[AUTH_KEY_SIZE];
    create(f->a, "ci", AUTH_SCOPE_INFER, NULL, 0, 0, again);
    assert_int_equal(check(f->a, again, false, false, NULL).status, 200);
    assert_int_equal(check(f->a, key, false, false, NULL).status, 401);
}

static void scopes(void **state)
{
    struct fixture *f = *state;
    char infer[AUTH_KEY_SIZE], admin[AUTH_KEY_SIZE];
    create(f->a, "app", AUTH_SCOPE_INFER, NULL, 0, 0, infer);
    create(f->a, "root", AUTH_SCOPE_ADMIN, NULL, 0, 0, admin);

    auth_result r = check(f->a, infer, true, true, NULL);
    assert_int_equal(r.status, 403);
    assert_non_null(strstr(r.message, "admin scope"));
    assert_int_equal(check(f->a, infer, false, false, "m").status, 200);
    r = check(f->a, admin, false, true, NULL);
    assert_int_equal(r.status, 200);
    assert_int_equal(r.scope, AUTH_SCOPE_ADMIN);
    assert_int_equal(check(f->a, admin, false, false, "m").status, 200);

    auth_scope s;
    assert_int_equal(auth_scope_parse("admin", &s, NULL), 0);
    assert_int_equal(s, AUTH_SCOPE_ADMIN);
    assert_int_equal(auth_scope_parse("infer", &s, NULL), 0);
    assert_int_equal(s, AUTH_SCOPE_INFER);
    assert_int_equal(auth_scope_parse("root", &s, NULL), MLX_EINVAL);
}

static void model_patterns(void **state)
{
    struct fixture *f = *state;
    char llama[AUTH_KEY_SIZE], hf[AUTH_KEY_SIZE], all[AUTH_KEY_SIZE];
    create(f->a, "llama", AUTH_SCOPE_INFER, "llama3*", 0, 0, llama);
    create(f->a, "hf", AUTH_SCOPE_INFER, "hf:*", 0, 0, hf);
    create(f->a, "all", AUTH_SCOPE_INFER, "", 0, 0, all);

    assert_int_equal(check(f->a, llama, false, false, "llama3.2:1b").status, 200);
    auth_result r = check(f->a, llama, false, false, "qwen2:0.5b");
    assert_int_equal(r.status, 403);
    assert_non_null(strstr(r.message, "llama3*"));
    assert_string_equal(r.key_name, "llama");
    /* A request naming no model (a model list) passes; the list is filtered. */
    r = check(f->a, llama, false, false, NULL);
    assert_int_equal(r.status, 200);
    assert_true(auth_model_allowed(&r, "llama3:8b"));
    assert_false(auth_model_allowed(&r, "mistral"));

    /* '/' is an ordinary character to the glob. */
    assert_int_equal(check(f->a, hf, false, false, "hf:TinyLlama/TinyLlama-1.1B").status,
                     200);
    assert_int_equal(check(f->a, hf, false, false, "llama3.2:1b").status, 403);
    assert_int_equal(check(f->a, all, false, false, "anything/at:all").status, 200);
}

static void loopback_only_until_a_key_exists(void **state)
{
    struct fixture *f = *state;
    auth_result r = check(f->a, NULL, true, true, NULL);
    assert_int_equal(r.status, 200);
    assert_true(r.bootstrap);
    r = check(f->a, NULL, false, false, NULL);
    assert_int_equal(r.status, 401);
    assert_non_null(strstr(r.message, "accepts only loopback clients"));

    char key[AUTH_KEY_SIZE];
    create(f->a, "first", AUTH_SCOPE_ADMIN, NULL, 0, 0, key);
    /* Loopback now needs a key too. */
    r = check(f->a, NULL, true, false, NULL);
    assert_int_equal(r.status, 401);
    assert_false(r.bootstrap);
    assert_int_equal(check(f->a, key, true, true, NULL).status, 200);
    assert_int_equal(check(f->a, key, false, true, NULL).status, 200);

    /* With every key revoked it is back to loopback only. */
    mlx_err err;
    must(auth_key_revoke(f->a, "first", T0, &err), &err, "auth_key_revoke");
    assert_true(check(f->a, NULL, true, false, NULL).bootstrap);
    assert_int_equal(check(f->a, key, false, false, NULL).status, 401);
}

static int count_keys(void *arg, const auth_key_info *k)
{
    (void)k;
    (*(int *)arg)++;
    return 0;
}

static void names_and_patterns_are_validated(void **state)
{
    struct fixture *f = *state;
    mlx_err err;
    const char *bad[] = {"",    "../x", "a/b",       ".hidden",     "-flag",
                         "a b", "a\nb", "tab\there", "caf\xc3\xa9", "x;drop"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        if (create_rc(f->a, bad[i], NULL, 0, &err) != MLX_EINVAL)
            fail_msg("name '%s' was accepted", bad[i]);
        assert_true(strlen(err.msg) > 0);
    }
    assert_int_equal(create_rc(f->a, NULL, NULL, 0, &err), MLX_EINVAL);

    char name[AUTH_MAX_KEY_NAME + 2];
    memset(name, 'n', sizeof name);
    name[AUTH_MAX_KEY_NAME + 1] = '\0';
    assert_int_equal(create_rc(f->a, name, NULL, 0, &err), MLX_EINVAL);
    assert_non_null(strstr(err.msg, "at most"));
    name[AUTH_MAX_KEY_NAME] = '\0';
    must(create_rc(f->a, name, NULL, 0, &err), &err, "63-character name");
    must(create_rc(f->a, "web-1.prod_A", NULL, 0, &err), &err, "name with . _ -");
    assert_int_equal(create_rc(f->a, "web-1.prod_A", NULL, 0, &err), MLX_EEXIST);
    assert_non_null(strstr(err.msg, "already exists"));

    assert_int_equal(create_rc(f->a, "p1", "llama 3", 0, &err), MLX_EINVAL);
    assert_int_equal(create_rc(f->a, "p2", "llama\x01", 0, &err), MLX_EINVAL);
    char pattern[AUTH_MAX_MODELS_PATTERN + 2];
    memset(pattern, 'm', sizeof pattern);
    pattern[AUTH_MAX_MODELS_PATTERN + 1] = '\0';
    assert_int_equal(create_rc(f->a, "p3", pattern, 0, &err), MLX_EINVAL);
    assert_int_equal(create_rc(f->a, "p4", NULL, AUTH_MAX_RATE + 1, &err), MLX_EINVAL);

    /* Nothing refused was stored. */
    int count = 0;
    must(auth_key_list(f->a, count_keys, &count, &err), &err, "auth_key_list");
    assert_int_equal(count, 2);
}

struct listing {
    int n;
    auth_key_info keys[8];
    char names[8][AUTH_MAX_KEY_NAME + 1];
    char prefixes[8][AUTH_KEY_PREFIX_LEN + 1];
    char patterns[8][AUTH_MAX_MODELS_PATTERN + 1];
};

static int collect(void *arg, const auth_key_info *k)
{
    struct listing *l = arg;
    if (l->n == 8)
        return -1;
    l->keys[l->n] = *k;
    snprintf(l->names[l->n], sizeof l->names[0], "%s", k->name);
    snprintf(l->prefixes[l->n], sizeof l->prefixes[0], "%s", k->prefix);
    snprintf(l->patterns[l->n], sizeof l->patterns[0], "%s", k->models_pattern);
    l->n++;
    return 0;
}

static void list_shows_keys_and_survives_reopen(void **state)
{
    struct fixture *f = *state;
    char k1[AUTH_KEY_SIZE], k2[AUTH_KEY_SIZE];
    create(f->a, "ci", AUTH_SCOPE_INFER, "qwen*", 30, 5000, k1);
    create(f->a, "ops", AUTH_SCOPE_ADMIN, NULL, 0, 0, k2);
    mlx_err err;
    auth_result r;
    char header[128];
    snprintf(header, sizeof header, "Bearer %s", k1);
    must(auth_check(f->a, header, false, false, "qwen2", T0 + 1000, &r, &err), &err,
         "auth_check");
    assert_int_equal(r.status, 200);
    must(auth_key_revoke(f->a, "ops", T0 + 2000, &err), &err, "auth_key_revoke");

    auth_close(f->a);
    f->a = NULL;
    must(auth_open(f->path, &f->a, &err), &err, "auth_open again");

    struct listing l = {0};
    must(auth_key_list(f->a, collect, &l, &err), &err, "auth_key_list");
    assert_int_equal(l.n, 2);
    assert_string_equal(l.names[0], "ci");
    assert_memory_equal(l.prefixes[0], k1, AUTH_KEY_PREFIX_LEN);
    assert_int_equal(strlen(l.prefixes[0]), AUTH_KEY_PREFIX_LEN);
    assert_int_equal(l.keys[0].scope, AUTH_SCOPE_INFER);
    assert_string_equal(l.patterns[0], "qwen*");
    assert_int_equal(l.keys[0].rpm, 30);
    assert_int_equal(l.keys[0].tpm, 5000);
    assert_int_equal(l.keys[0].created_unix_ms, T0);
    assert_int_equal(l.keys[0].last_used_unix_ms, T0 + 1000);
    assert_int_equal(l.keys[0].revoked_unix_ms, 0);
    assert_string_equal(l.names[1], "ops");
    assert_int_equal(l.keys[1].scope, AUTH_SCOPE_ADMIN);
    assert_string_equal(l.patterns[1], "*");
    assert_int_equal(l.keys[1].last_used_unix_ms, 0);
    assert_int_equal(l.keys[1].revoked_unix_ms, T0 + 2000);

    /* The reopened database still checks the key, and the revocation. */
    assert_int_equal(check(f->a, k1, false, false, "qwen2").status, 200);
    assert_int_equal(check(f->a, k2, true, true, NULL).status, 401);

    /* A walk stops at the callback's first non-zero return. */
    l.n = 7;
    assert_int_equal(auth_key_list(f->a, collect, &l, &err), -1);
}

/* ---- rate limits ------------------------------------------------------------ */

static int take(auth *a, const char *name, int64_t now, uint32_t tokens, uint32_t *retry)
{
    mlx_err err;
    mlx_err_clear(&err);
    int rc = auth_take(a, name, now, tokens, retry, &err);
    if (rc != 0 && rc != MLX_EBUSY)
        fail_msg("auth_take: %s (%s)", err.msg, mlx_errname(rc));
    return rc;
}

static void requests_per_minute_bucket(void **state)
{
    struct fixture *f = *state;
    char key[AUTH_KEY_SIZE];
    create(f->a, "r", AUTH_SCOPE_INFER, NULL, 60, 0, key);
    const int64_t t = 5000000; /* monotonic ms */
    uint32_t retry = 99;

    /* A new bucket holds a whole minute: 60 requests at once, not 61. */
    for (int i = 0; i < 60; i++)
        assert_int_equal(take(f->a, "r", t, 0, &retry), 0);
    assert_int_equal(retry, 0);
    mlx_err err;
    mlx_err_clear(&err);
    assert_int_equal(auth_take(f->a, "r", t, 0, &retry, &err), MLX_EBUSY);
    assert_int_equal(retry, 1);
    assert_non_null(strstr(err.msg, "60 requests per minute"));

    /* 60 per minute is one per 1000 ms, exactly. */
    assert_int_equal(take(f->a, "r", t + 999, 0, &retry), MLX_EBUSY);
    assert_int_equal(retry, 1);
    assert_int_equal(take(f->a, "r", t + 1000, 0, &retry), 0);
    assert_int_equal(take(f->a, "r", t + 1000, 0, &retry), MLX_EBUSY);

    /* A clock going back earns nothing. */
    assert_int_equal(take(f->a, "r", t, 0, &retry), MLX_EBUSY);

    /* Idle for an hour: full again, but only one minute's worth. */
    int64_t later = t + 3600000;
    for (int i = 0; i < 60; i++)
        assert_int_equal(take(f->a, "r", later, 0, &retry), 0);
    assert_int_equal(take(f->a, "r", later, 0, &retry), MLX_EBUSY);

    /* 6 per minute: one per 10 s; after 2.5 s a quarter is there, and the
     * rest takes 7.5 s, rounded up to 8. */
    char k6[AUTH_KEY_SIZE];
    create(f->a, "six", AUTH_SCOPE_INFER, NULL, 6, 0, k6);
    for (int i = 0; i < 6; i++)
        assert_int_equal(take(f->a, "six", t, 0, &retry), 0);
    assert_int_equal(take(f->a, "six", t, 0, &retry), MLX_EBUSY);
    assert_int_equal(retry, 10);
    assert_int_equal(take(f->a, "six", t + 2500, 0, &retry), MLX_EBUSY);
    assert_int_equal(retry, 8);
    assert_int_equal(take(f->a, "six", t + 9999, 0, &retry), MLX_EBUSY);
    assert_int_equal(retry, 1);
    assert_int_equal(take(f->a, "six", t + 10000, 0, &retry), 0);
}

static void tokens_per_minute_bucket(void **state)
{
    struct fixture *f = *state;
    char key[AUTH_KEY_SIZE];
    create(f->a, "t", AUTH_SCOPE_INFER, NULL, 0, 1000, key);
    const int64_t t = 100;
    uint32_t retry;
    mlx_err err;

    assert_int_equal(take(f->a, "t", t, 600, &retry), 0);
    mlx_err_clear(&err);
    assert_int_equal(auth_take(f->a, "t", t, 600, &retry, &err), MLX_EBUSY);
    assert_non_null(strstr(err.msg, "1000 tokens per minute"));
    /* 400 left, 200 short at 1000 per 60 s: 12 s. */
    assert_int_equal(retry, 12);

    /* The request used only 100 of the 600 reserved: 500 come back. */
    auth_charge_tokens(f->a, "t", 600, 100, t);
    assert_int_equal(take(f->a, "t", t, 600, &retry), 0);
    /* 300 left; this one used 1300, 700 beyond its reservation: 400 in debt,
     * so 100 tokens need 500 tokens of refill, 30 s. */
    auth_charge_tokens(f->a, "t", 600, 1300, t);
    assert_int_equal(take(f->a, "t", t, 100, &retry), MLX_EBUSY);
    assert_int_equal(retry, 30);
    assert_int_equal(take(f->a, "t", t + 30000, 100, &retry), 0);

    /* More than a minute's tokens: waits for a full bucket, then drains it. */
    char big[AUTH_KEY_SIZE];
    create(f->a, "big", AUTH_SCOPE_INFER, NULL, 0, 100, big);
    assert_int_equal(take(f->a, "big", t, 500, &retry), 0);
    assert_int_equal(take(f->a, "big", t, 1, &retry), MLX_EBUSY);
    assert_int_equal(take(f->a, "big", t + 59999, 500, &retry), MLX_EBUSY);
    assert_int_equal(retry, 1);
    assert_int_equal(take(f->a, "big", t + 60000, 500, &retry), 0);

    /* Both limits: the longer wait wins and nothing is taken on refusal. */
    char both[AUTH_KEY_SIZE];
    create(f->a, "both", AUTH_SCOPE_INFER, NULL, 2, 60, both);
    assert_int_equal(take(f->a, "both", t, 60, &retry), 0);
    assert_int_equal(take(f->a, "both", t, 30, &retry), MLX_EBUSY);
    assert_int_equal(retry, 30); /* tokens: 30 s; requests: none needed */
    /* 30 s later: 30 tokens and a second request have been earned. */
    assert_int_equal(take(f->a, "both", t + 30000, 30, &retry), 0);
    assert_int_equal(take(f->a, "both", t + 30000, 0, &retry), 0);
    /* Requests spent now, tokens not needed: the request limit answers. */
    mlx_err_clear(&err);
    assert_int_equal(auth_take(f->a, "both", t + 30000, 0, &retry, &err), MLX_EBUSY);
    assert_int_equal(retry, 30);
    assert_non_null(strstr(err.msg, "2 requests per minute"));
}

static void unlimited_unknown_and_bootstrap(void **state)
{
    struct fixture *f = *state;
    char key[AUTH_KEY_SIZE];
    create(f->a, "free", AUTH_SCOPE_INFER, NULL, 0, 0, key);
    uint32_t retry;
    for (int i = 0; i < 10000; i++)
        assert_int_equal(take(f->a, "free", 0, 1000000, &retry), 0);
    mlx_err err;
    assert_int_equal(auth_take(f->a, "ghost", 0, 1, &retry, &err), MLX_ENOENT);
    assert_int_equal(auth_take(f->a, "", 0, 1, &retry, &err), 0);
    assert_int_equal(auth_take(f->a, NULL, 0, 1, &retry, &err), 0);
    auth_charge_tokens(f->a, "ghost", 1, 2, 0); /* ignored */

    /* Limits are read from the database for a key not yet checked since
     * opening, and a revoked key is no longer taken from. */
    char lim[AUTH_KEY_SIZE];
    create(f->a, "lim", AUTH_SCOPE_INFER, NULL, 1, 0, lim);
    auth_close(f->a);
    f->a = NULL;
    must(auth_open(f->path, &f->a, &err), &err, "auth_open again");
    assert_int_equal(take(f->a, "lim", 7, 0, &retry), 0);
    assert_int_equal(take(f->a, "lim", 7, 0, &retry), MLX_EBUSY);
    assert_int_equal(retry, 60);
    must(auth_key_revoke(f->a, "lim", T0, &err), &err, "auth_key_revoke");
    assert_int_equal(auth_take(f->a, "lim", 70000, 0, &retry, &err), MLX_ENOENT);
}

#define THREADS          8
#define TAKES_PER_THREAD 40000
#define RACE_RPM         100000

struct race {
    auth *a;
    int64_t now;
    pthread_barrier_t start; /* all threads take at once */
};

struct racer {
    struct race *race;
    int admitted;
};

static void *race(void *arg)
{
    struct racer *r = arg;
    pthread_barrier_wait(&r->race->start);
    for (int i = 0; i < TAKES_PER_THREAD; i++) {
        uint32_t retry;
        int rc = auth_take(r->race->a, "busy", r->race->now + i % 3, 7, &retry, NULL);
        if (rc == 0)
            r->admitted++;
        else if (rc != MLX_EBUSY)
            return "unexpected error";
    }
    return NULL;
}

static int run_race(auth *a, int64_t now)
{
    struct race race_ = {.a = a, .now = now};
    assert_int_equal(pthread_barrier_init(&race_.start, NULL, THREADS), 0);
    pthread_t th[THREADS];
    struct racer rs[THREADS];
    for (int i = 0; i < THREADS; i++) {
        rs[i] = (struct racer){.race = &race_};
        assert_int_equal(pthread_create(&th[i], NULL, race, &rs[i]), 0);
    }
    int total = 0;
    for (int i = 0; i < THREADS; i++) {
        void *res;
        assert_int_equal(pthread_join(th[i], &res), 0);
        assert_null(res);
        total += rs[i].admitted;
    }
    pthread_barrier_destroy(&race_.start);
    return total;
}

static void concurrent_takes_never_exceed_the_budget(void **state)
{
    struct fixture *f = *state;
    char key[AUTH_KEY_SIZE];
    /* 100,000 requests, or 1,400,000/7 = 200,000 requests' tokens: the
     * request limit binds; 320,000 attempts from 8 threads at once. */
    create(f->a, "busy", AUTH_SCOPE_INFER, NULL, RACE_RPM, 2 * 7 * RACE_RPM, key);
    /* The threads' clocks span 2 ms, which at 100,000/min earns 3 more
     * requests (2 × 100,000 / 60,000, rounded down). */
    int first = run_race(f->a, 1000);
    assert_in_range(first, RACE_RPM, RACE_RPM + 3);
    /* A minute later, exactly one more minute's worth at most: the bucket
     * caps at a minute however the threads interleave. */
    int second = run_race(f->a, 61000);
    assert_in_range(second, RACE_RPM, RACE_RPM + 3);
}

/* ---- request log ------------------------------------------------------------ */

struct log_listing {
    int n;
    int64_t times[16];
    char keys[16][AUTH_MAX_KEY_NAME + 1];
    auth_log_entry last;
    char last_model[64], last_node[64], last_rid[64];
};

static int collect_log(void *arg, const auth_log_entry *e)
{
    struct log_listing *l = arg;
    if (l->n == 16)
        return -1;
    l->times[l->n] = e->time_unix_ms;
    snprintf(l->keys[l->n], sizeof l->keys[0], "%s", e->key_name);
    l->last = *e;
    snprintf(l->last_model, sizeof l->last_model, "%s", e->model);
    snprintf(l->last_node, sizeof l->last_node, "%s", e->node);
    snprintf(l->last_rid, sizeof l->last_rid, "%s", e->request_id);
    l->n++;
    return 0;
}

static void request_log_and_retention(void **state)
{
    struct fixture *f = *state;
    mlx_err err;
    const int64_t day = INT64_C(86400000);
    for (int i = 0; i < 10; i++) {
        auth_log_entry e = {
            .time_unix_ms = T0 + i * day,
            .request_id = "req-1",
            .key_name = i % 2 ? "ci" : NULL,
            .model = "llama3.2:1b",
            .node = "studio-7",
            .prompt_tokens = 10 + (uint32_t)i,
            .completion_tokens = 20,
            .latency_ms = 150,
            .status = i == 9 ? 429 : 200,
        };
        must(auth_log_request(f->a, &e, &err), &err, "auth_log_request");
    }
    struct log_listing l = {0};
    must(auth_log_list(f->a, T0 + 7 * day, 100, collect_log, &l, &err), &err,
         "auth_log_list");
    assert_int_equal(l.n, 3);
    assert_int_equal(l.times[0], T0 + 7 * day);
    assert_int_equal(l.times[2], T0 + 9 * day);
    assert_string_equal(l.keys[0], "ci");
    assert_string_equal(l.keys[1], "");
    assert_int_equal(l.last.status, 429);
    assert_int_equal(l.last.prompt_tokens, 19);
    assert_int_equal(l.last.completion_tokens, 20);
    assert_int_equal(l.last.latency_ms, 150);
    assert_string_equal(l.last_model, "llama3.2:1b");
    assert_string_equal(l.last_node, "studio-7");
    assert_string_equal(l.last_rid, "req-1");

    /* limit */
    memset(&l, 0, sizeof l);
    must(auth_log_list(f->a, 0, 4, collect_log, &l, &err), &err, "auth_log_list");
    assert_int_equal(l.n, 4);
    assert_int_equal(l.times[0], T0);

    /* Keep 3 days at T0 + 9 days: entries before T0 + 6 days go. */
    uint64_t deleted = 0;
    must(auth_log_prune(f->a, T0 + 9 * day, 3 * day, &deleted, &err), &err,
         "auth_log_prune");
    assert_int_equal(deleted, 6);
    memset(&l, 0, sizeof l);
    must(auth_log_list(f->a, 0, 100, collect_log, &l, &err), &err, "auth_log_list");
    assert_int_equal(l.n, 4);
    assert_int_equal(l.times[0], T0 + 6 * day);
    must(auth_log_prune(f->a, T0 + 9 * day, 3 * day, &deleted, &err), &err,
         "auth_log_prune again");
    assert_int_equal(deleted, 0);
    assert_int_equal(auth_log_prune(f->a, T0, -1, NULL, &err), MLX_EINVAL);
}

static bool only_recent_left(struct fixture *f)
{
    struct log_listing l = {0};
    mlx_err err;
    must(auth_log_list(f->a, 0, 100, collect_log, &l, &err), &err, "auth_log_list");
    return l.n == 1 && strcmp(l.keys[0], "recent") == 0;
}

/* The writer keeps the log to its retention by itself. */
static void the_writer_prunes_past_the_retention(void **state)
{
    struct fixture *f = *state;
    mlx_err err;
    const int64_t day = INT64_C(86400000);
    int64_t now = mlx_time_wall_ms();
    auth_log_entry old = {
        .time_unix_ms = now - 2 * day, .key_name = "old", .status = 200};
    auth_log_entry recent = {.time_unix_ms = now, .key_name = "recent", .status = 200};
    must(auth_log_request(f->a, &old, &err), &err, "auth_log_request");
    must(auth_log_request(f->a, &recent, &err), &err, "auth_log_request");
    auth_log_set_retention(f->a, day);
    int64_t deadline = mlx_time_mono_ms() + 10000;
    while (!only_recent_left(f)) {
        if (mlx_time_mono_ms() > deadline)
            fail_msg("the writer did not prune the entry older than the retention");
        struct timespec pause = {0, 20 * 1000 * 1000};
        nanosleep(&pause, NULL);
    }
}

int main(void)
{
    /* Key creation and revocation log at info; keep the test output short. */
    mlx_log_set_level(MLX_LOG_WARN);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(key_is_shown_once_and_never_stored, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(valid_invalid_and_revoked_keys, setup, teardown),
        cmocka_unit_test_setup_teardown(scopes, setup, teardown),
        cmocka_unit_test_setup_teardown(model_patterns, setup, teardown),
        cmocka_unit_test_setup_teardown(loopback_only_until_a_key_exists, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(names_and_patterns_are_validated, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(list_shows_keys_and_survives_reopen, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(requests_per_minute_bucket, setup, teardown),
        cmocka_unit_test_setup_teardown(tokens_per_minute_bucket, setup, teardown),
        cmocka_unit_test_setup_teardown(unlimited_unknown_and_bootstrap, setup, teardown),
        cmocka_unit_test_setup_teardown(concurrent_takes_never_exceed_the_budget, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(the_writer_prunes_past_the_retention, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(request_log_and_retention, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
