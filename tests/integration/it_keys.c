/*
 * it_keys.c — access control end to end: a real coordinator on loopback and
 * mlxctl. The bootstrap rule (no key: loopback only), the first admin key
 * created with mlxctl, 401 with WWW-Authenticate without one, 403 for an
 * infer key on the admin API, a listing that never shows a secret,
 * revocation, 429 with Retry-After past a key's requests per minute,
 * malformed key bodies answered 400 while the coordinator keeps serving, and
 * keys that survive a restart on the same data directory.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <curl/curl.h>

#include "tests/integration/cluster.h"
#include "tests/support/testutil.h"

typedef struct reply {
    long status;
    char body[8192];
    size_t body_len;
    char headers[8192];
    size_t headers_len;
} reply;

static size_t on_body(char *data, size_t size, size_t n, void *arg)
{
    reply *r = arg;
    size_t len = size * n;
    size_t room = sizeof r->body - 1 - r->body_len;
    size_t take = len < room ? len : room;
    memcpy(r->body + r->body_len, data, take);
    r->body_len += take;
    r->body[r->body_len] = '\0';
    return len;
}

static size_t on_header(char *data, size_t size, size_t n, void *arg)
{
    reply *r = arg;
    size_t len = size * n;
    size_t room = sizeof r->headers - 1 - r->headers_len;
    size_t take = len < room ? len : room;
    memcpy(r->headers + r->headers_len, data, take);
    r->headers_len += take;
    r->headers[r->headers_len] = '\0';
    return len;
}

/* One request; key and body may be NULL. */
static void request(const cluster *c, const char *method, const char *path,
                    const char *key, const char *body, reply *r)
{
    memset(r, 0, sizeof *r);
    char url[256], auth[256];
    snprintf(url, sizeof url, "%s%s", c->http_url, path);
    CURL *curl = curl_easy_init();
    assert_non_null(curl);
    struct curl_slist *h = NULL;
    if (key != NULL) {
        snprintf(auth, sizeof auth, "Authorization: Bearer %s", key);
        h = curl_slist_append(h, auth);
    }
    curl_easy_setopt(curl, CURLOPT_URL, url);
    curl_easy_setopt(curl, CURLOPT_CUSTOMREQUEST, method);
    curl_easy_setopt(curl, CURLOPT_HTTPHEADER, h);
    curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(curl, CURLOPT_WRITEDATA, r);
    curl_easy_setopt(curl, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(curl, CURLOPT_HEADERDATA, r);
    curl_easy_setopt(curl, CURLOPT_TIMEOUT_MS, 10000L);
    if (body != NULL) {
        curl_easy_setopt(curl, CURLOPT_POSTFIELDS, body);
        curl_easy_setopt(curl, CURLOPT_POSTFIELDSIZE, (long)strlen(body));
    }
    if (curl_easy_perform(curl) == CURLE_OK)
        curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &r->status);
    curl_slist_free_all(h);
    curl_easy_cleanup(curl);
}

/* The status is want and the body the fleet's error with this type. */
static void expect_error(const reply *r, long want, const char *type, const char *what)
{
    if (r->status != want)
        fail_msg("%s: HTTP %ld, expected %ld: %s", what, r->status, want, r->body);
    json_error_t je;
    json_t *v = json_loads(r->body, 0, &je);
    if (v == NULL)
        fail_msg("%s: the body is not JSON: %s", what, r->body);
    const json_t *e = json_object_get(v, "error");
    const char *got = json_string_value(json_object_get(e, "type"));
    const char *message = json_string_value(json_object_get(e, "message"));
    if (got == NULL || strcmp(got, type) != 0 || message == NULL || message[0] == '\0' ||
        !json_is_string(json_object_get(e, "code")))
        fail_msg("%s: not a %s error: %s", what, type, r->body);
    json_decref(v);
}

static bool has_header(const reply *r, const char *needle)
{
    return strstr(r->headers, needle) != NULL;
}

static bool healthy(void *arg)
{
    reply r;
    request(arg, "GET", "/healthz", NULL, NULL, &r);
    return r.status == 200;
}

static char *ctl(const cluster *c, const char *key, const char *const *words, int want)
{
    const char *args[16];
    int n = 0;
    args[n++] = "--coordinator";
    args[n++] = c->http_url;
    if (key != NULL) {
        args[n++] = "--api-key";
        args[n++] = key;
    }
    for (int i = 0; words[i] != NULL && n < 15; i++)
        args[n++] = words[i];
    args[n] = NULL;
    char *out = NULL, *err = NULL;
    int status = h_run("mlxctl", args, 20000, &out, &err);
    if (status != want)
        fail_msg("mlxctl %s: exit %d, expected %d; stderr: %s", words[0], status, want,
                 err);
    free(err);
    return out;
}

/* The key mlxctl printed: stdout is the key and a newline, nothing else. */
static void take_key(char *out, char *key, size_t size)
{
    size_t len = strlen(out);
    assert_true(len > 4 && out[len - 1] == '\n');
    out[len - 1] = '\0';
    assert_null(strchr(out, '\n'));
    assert_memory_equal(out, "mlx-", 4);
    snprintf(key, size, "%s", out);
    free(out);
}

static void test_access_control(void **state)
{
    cluster *c = cluster_create("it-keys", 200, 3, 8);
    cluster_start_coordinator(c);
    assert_true(h_wait_for(healthy, c, 10000));
    reply r;

    /* Bootstrap: no key, loopback admitted. */
    request(c, "GET", "/api/v1/nodes", NULL, NULL, &r);
    assert_int_equal(r.status, 200);
    assert_int_equal(h_count_lines(c->coordinator->log_path, "only loopback clients"), 1);

    char admin[128], infer[128], limited[128];
    const char *create_admin[] = {"keys",    "create", "--name", "admin1",
                                  "--scope", "admin",  NULL};
    take_key(ctl(c, NULL, create_admin, 0), admin, sizeof admin);

    /* From now on every request needs a key, loopback included. */
    request(c, "GET", "/api/v1/nodes", NULL, NULL, &r);
    expect_error(&r, 401, "authentication_error", "no key");
    assert_true(has_header(&r, "WWW-Authenticate: Bearer"));
    request(c, "GET", "/api/v1/nodes", "mlx-notakey", NULL, &r);
    expect_error(&r, 401, "authentication_error", "a wrong key");
    request(c, "GET", "/api/v1/nodes", admin, NULL, &r);
    assert_int_equal(r.status, 200);
    request(c, "GET", "/healthz", NULL, NULL, &r);
    assert_int_equal(r.status, 200);
    const char *nodes[] = {"nodes", NULL};
    free(ctl(c, NULL, nodes, 1));
    free(ctl(c, admin, nodes, 0));

    /* An infer key may not use the admin API. */
    const char *create_infer[] = {"keys", "create", "--name", "reader", NULL};
    take_key(ctl(c, admin, create_infer, 0), infer, sizeof infer);
    request(c, "GET", "/api/v1/keys", infer, NULL, &r);
    expect_error(&r, 403, "permission_error", "an infer key on /api/v1/keys");

    /* The listing shows both, and never a secret. */
    const char *list[] = {"keys", "list", NULL};
    char *out = ctl(c, admin, list, 0);
    assert_non_null(strstr(out, "admin1"));
    assert_non_null(strstr(out, "reader"));
    assert_non_null(strstr(out, "LAST USED"));
    assert_null(strstr(out, admin));
    assert_null(strstr(out, infer));
    char prefix[16];
    snprintf(prefix, sizeof prefix, "%.12s", infer);
    assert_non_null(strstr(out, prefix));
    free(out);
    const char *list_json[] = {"keys", "list", "--json", NULL};
    out = ctl(c, admin, list_json, 0);
    assert_null(strstr(out, admin + 12));
    assert_null(strstr(out, infer + 12));
    free(out);

    /* Revoked: refused from now on. */
    const char *revoke[] = {"keys", "revoke", "reader", NULL};
    free(ctl(c, admin, revoke, 0));
    request(c, "GET", "/api/v1/nodes", infer, NULL, &r);
    expect_error(&r, 401, "authentication_error", "a revoked key");
    free(ctl(c, admin, revoke, 1)); /* no longer active: 404 */
    request(c, "DELETE", "/api/v1/keys/nobody", admin, NULL, &r);
    expect_error(&r, 404, "invalid_request_error", "revoking an unknown key");

    /* Two requests a minute: the third is refused until the bucket refills. */
    const char *create_limited[] = {"keys",  "create", "--name", "slow", "--scope",
                                    "admin", "--rpm",  "2",      NULL};
    take_key(ctl(c, admin, create_limited, 0), limited, sizeof limited);
    request(c, "GET", "/api/v1/nodes", limited, NULL, &r);
    assert_int_equal(r.status, 200);
    request(c, "GET", "/api/v1/nodes", limited, NULL, &r);
    assert_int_equal(r.status, 200);
    request(c, "GET", "/api/v1/nodes", limited, NULL, &r);
    expect_error(&r, 429, "rate_limit_error", "the third request");
    assert_true(has_header(&r, "Retry-After: "));
    request(c, "GET", "/api/v1/nodes", admin, NULL, &r); /* other keys unaffected */
    assert_int_equal(r.status, 200);

    /* Malformed key specs: 400 with a sentence, and the coordinator serves on. */
    static const char *const bad[] = {
        "{\"name\":",
        "[1,2]",
        "{\"name\":\"../x\"}",
        "{\"name\":\"x\",\"scope\":\"root\"}",
        "{\"name\":\"x\",\"rpm\":-1}",
        "{\"name\":\"x\",\"rpm\":\"ten\"}",
        "{\"name\":\"x\",\"rmp\":10}",
        "{\"scope\":\"admin\"}",
        "{\"name\":\"x\",\"models\":\"\\u0001\"}",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        request(c, "POST", "/api/v1/keys", admin, bad[i], &r);
        expect_error(&r, 400, "invalid_request_error", bad[i]);
    }
    request(c, "POST", "/api/v1/keys", admin, "{\"name\":\"admin1\"}", &r);
    expect_error(&r, 409, "invalid_request_error", "a duplicate name");
    const char *bad_scope[] = {"keys", "create", "--name", "x", "--scope", "root", NULL};
    free(ctl(c, admin, bad_scope, 2));
    const char *no_name[] = {"keys", "create", NULL};
    free(ctl(c, admin, no_name, 2));
    request(c, "GET", "/healthz", NULL, NULL, &r);
    assert_int_equal(r.status, 200);

    /* Keys live in the data directory: valid after a restart. */
    assert_int_equal(h_stop(c->coordinator), 0);
    c->coordinator = NULL;
    cluster_start_coordinator(c);
    assert_true(h_wait_for(healthy, c, 10000));
    request(c, "GET", "/api/v1/nodes", admin, NULL, &r);
    assert_int_equal(r.status, 200);
    request(c, "GET", "/api/v1/nodes", NULL, NULL, &r);
    expect_error(&r, 401, "authentication_error", "no key after a restart");
    request(c, "GET", "/api/v1/nodes", infer, NULL, &r);
    expect_error(&r, 401, "authentication_error", "a revoked key after a restart");
    cluster_destroy(c);
}

int main(void)
{
    curl_global_init(CURL_GLOBAL_DEFAULT);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_access_control),
    };
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    curl_global_cleanup();
    return rc;
}
