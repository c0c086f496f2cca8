/*
 * test_pull_source.c — the parsers of `cache pull` (agent/cache/pull.h):
 * SRC strings, base URLs and URL names, response headers and ETags, what
 * the Hub's headers say a file is, the resume rules, and the Hub's revision
 * listing (including every allocation failing in turn).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "agent/cache/pull.h"
#include "common/alloc.h"
#include "common/json.h"

#define SHA256_A "6f597c2ecfa9dd3f6d5dc7f965b5d75a42b7c5ffa9fad98b95104580fbb14073"
#define SHA1_A   "479e18224e7827e7909c8a78f287e3306c1de8bb"
#define COMMIT   "0123456789abcdef0123456789abcdef01234567"

static pull_source parse_ok(const char *text)
{
    pull_source s;
    mlx_err err;
    mlx_err_clear(&err);
    int rc = pull_parse_source(text, &s, &err);
    if (rc != 0)
        fail_msg("'%s' was refused: %s", text, err.msg);
    return s;
}

static void test_hf_sources(void **state)
{
    pull_source s = parse_ok("hf:TheBloke/TinyLlama-1.1B-GGUF");
    assert_int_equal(s.kind, PULL_HF);
    assert_string_equal(s.org, "TheBloke");
    assert_string_equal(s.repo, "TinyLlama-1.1B-GGUF");
    assert_string_equal(s.rev, "main");
    assert_string_equal(s.file, "");

    s = parse_ok("hf:org/name@v1.0");
    assert_string_equal(s.rev, "v1.0");
    assert_string_equal(s.file, "");

    s = parse_ok("hf:org/name/model-q4_0.gguf");
    assert_string_equal(s.rev, "main");
    assert_string_equal(s.file, "model-q4_0.gguf");

    s = parse_ok("hf:org/name@" COMMIT "/sub/dir/model.gguf");
    assert_string_equal(s.rev, COMMIT);
    assert_string_equal(s.file, "sub/dir/model.gguf");
}

static void test_ollama_sources(void **state)
{
    pull_source s = parse_ok("ollama:llama3.2");
    assert_int_equal(s.kind, PULL_OLLAMA);
    assert_string_equal(s.host, "");
    assert_string_equal(s.ns, "library");
    assert_string_equal(s.name, "llama3.2");
    assert_string_equal(s.tag, "latest");

    s = parse_ok("ollama:llama3.2:1b");
    assert_string_equal(s.name, "llama3.2");
    assert_string_equal(s.tag, "1b");

    s = parse_ok("ollama:someone/model:q4_K_M");
    assert_string_equal(s.ns, "someone");
    assert_string_equal(s.name, "model");
    assert_string_equal(s.tag, "q4_K_M");

    s = parse_ok("ollama:registry.example.com:5000/team/model");
    assert_string_equal(s.host, "registry.example.com:5000");
    assert_string_equal(s.ns, "team");
    assert_string_equal(s.tag, "latest");
}

static void test_url_sources(void **state)
{
    pull_source s = parse_ok("https://example.com/models/stories260K.gguf?download=1");
    assert_int_equal(s.kind, PULL_URL);
    assert_string_equal(s.url, "https://example.com/models/stories260K.gguf?download=1");
    char name[MLX_MAX_MODEL_NAME + 1];
    assert_int_equal(pull_url_model_name(s.url, name, sizeof name, NULL), 0);
    assert_string_equal(name, "stories260K");
    assert_int_equal(
        pull_url_model_name("http://h/a/b.safetensors", name, sizeof name, NULL), 0);
    assert_string_equal(name, "b");
    assert_int_equal(pull_url_model_name("http://h/a/plain", name, sizeof name, NULL), 0);
    assert_string_equal(name, "plain");
    mlx_err err;
    assert_int_equal(pull_url_model_name("http://h/", name, sizeof name, &err),
                     MLX_EUSAGE);
    assert_non_null(strstr(err.msg, "--name"));
    assert_int_equal(pull_url_model_name("http://h/a%20b.gguf", name, sizeof name, &err),
                     MLX_EUSAGE);
}

static void test_bad_sources(void **state)
{
    static const char *const bad[] = {
        "",
        "hf:",
        "hf:org",
        "hf:org/",
        "hf:../../etc/passwd",
        "hf:org/..",
        "hf:org/name with space",
        "hf:org/name@",
        "hf:org/name@../x",
        "hf:org/name@a/",
        "hf:org/name/",
        "hf:org/name/../../x",
        "hf:org/name//x",
        "hf:org/name/a b.gguf",
        "hf:-org/name",
        "hf:org/a..b",
        "hf:org/a--b",
        "ollama:",
        "ollama::tag",
        "ollama:name:",
        "ollama:na me",
        "ollama:/name",
        "ollama:a/b/c/d",
        "ollama:bad!host/ns/name",
        "ollama:host:99999x/ns/name",
        "ollama:name:a:b",
        "ollama:.hidden",
        "/etc/passwd",
        "./model.gguf",
        "file:///etc/passwd",
        "ftp://example.com/x",
        "http://",
        "https:///x",
        "http://x y/z",
        "https://example.com/\x01",
        "HF:org/name",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        pull_source s;
        mlx_err err;
        mlx_err_clear(&err);
        int rc = pull_parse_source(bad[i], &s, &err);
        if (rc != MLX_EUSAGE)
            fail_msg("'%s' gave %d, not MLX_EUSAGE", bad[i], rc);
        assert_true(strlen(err.msg) > 10);
    }
    /* Past the limits. */
    char long_part[300];
    memset(long_part, 'a', sizeof long_part - 1);
    long_part[sizeof long_part - 1] = '\0';
    char text[400];
    snprintf(text, sizeof text, "hf:org/%s", long_part);
    assert_int_equal(pull_parse_source(text, &(pull_source){0}, NULL), MLX_EUSAGE);
    snprintf(text, sizeof text, "ollama:%s", long_part);
    assert_int_equal(pull_parse_source(text, &(pull_source){0}, NULL), MLX_EUSAGE);
    char *url = malloc(PULL_MAX_URL + 64);
    snprintf(url, PULL_MAX_URL + 64, "https://example.com/");
    memset(url + strlen(url), 'x', PULL_MAX_URL);
    url[PULL_MAX_URL + 30] = '\0';
    assert_int_equal(pull_parse_source(url, &(pull_source){0}, NULL), MLX_EUSAGE);
    free(url);
}

static void test_urls(void **state)
{
    char out[PULL_MAX_URL + 1];
    assert_int_equal(pull_url_host("http://127.0.0.1:8080/x", out, sizeof out, NULL), 0);
    assert_string_equal(out, "127.0.0.1:8080");
    assert_int_equal(
        pull_url_host("https://Registry.Ollama.AI/v2/", out, sizeof out, NULL), 0);
    assert_string_equal(out, "registry.ollama.ai");
    assert_int_equal(pull_url_origin("https://HF.co/a/b?c", out, sizeof out, NULL), 0);
    assert_string_equal(out, "https://hf.co");
    assert_int_equal(pull_url_origin("http://localhost:9/x", out, sizeof out, NULL), 0);
    assert_string_equal(out, "http://localhost:9");
    assert_int_equal(pull_url_origin("/relative", out, sizeof out, NULL), MLX_EINVAL);

    assert_int_equal(pull_parse_base_url("https://hub.example//", "--hf-endpoint", out,
                                         sizeof out, NULL),
                     0);
    assert_string_equal(out, "https://hub.example");
    assert_int_equal(
        pull_parse_base_url("http://h:1/mirror/", "--x", out, sizeof out, NULL), 0);
    assert_string_equal(out, "http://h:1/mirror");
    mlx_err err;
    assert_int_equal(
        pull_parse_base_url("https://h/?q=1", "--hf-endpoint", out, sizeof out, &err),
        MLX_EUSAGE);
    assert_non_null(strstr(err.msg, "--hf-endpoint"));
    assert_int_equal(pull_parse_base_url("huggingface.co", "--x", out, sizeof out, NULL),
                     MLX_EUSAGE);
}

static void feed(pull_headers *h, const char *const *lines)
{
    for (; *lines != NULL; lines++)
        pull_headers_line(h, *lines, strlen(*lines));
}

static void test_headers(void **state)
{
    pull_headers h;
    pull_headers_reset(&h);
    static const char *const lfs[] = {
        "HTTP/1.1 302 Found\r\n",
        "location: /cdn/q4\r\n",
        "ETag: \"" SHA256_A "\"\r\n",
        "X-Linked-Etag:   \"" SHA256_A "\"  \r\n",
        "X-Linked-Size: 1083808\r\n",
        "X-Repo-Commit: " COMMIT "\r\n",
        "Content-Length: 18\r\n",
        "\r\n",
        NULL,
    };
    feed(&h, lfs);
    assert_false(h.malformed);
    assert_int_equal(h.status, 302);
    assert_string_equal(h.location, "/cdn/q4");
    assert_string_equal(h.linked_etag, "\"" SHA256_A "\"");
    assert_int_equal(h.linked_size, 1083808);
    assert_int_equal(h.content_length, 18);
    assert_string_equal(h.repo_commit, COMMIT);

    /* A new status line (the next hop) starts over. */
    static const char *const range[] = {
        "HTTP/2 206\r\n",
        "content-range: bytes 100-199/1000\r\n",
        NULL,
    };
    feed(&h, range);
    assert_int_equal(h.status, 206);
    assert_string_equal(h.location, "");
    assert_int_equal(h.linked_size, PULL_SIZE_UNKNOWN);
    assert_true(h.has_range);
    assert_int_equal(h.range_start, 100);
    assert_int_equal(h.range_end, 199);
    assert_int_equal(h.range_total, 1000);

    static const char *const bad[] = {
        "Content-Length: 12x\r\n",
        "Content-Length: -1\r\n",
        "Content-Length: 99999999999999999999\r\n",
        "X-Linked-Size: \r\n",
        "Content-Range: bytes 5-4/10\r\n",
        "Content-Range: bytes 0-10/10\r\n",
        "Content-Range: items 0-1/2\r\n",
        NULL,
    };
    for (const char *const *l = bad; *l != NULL; l++) {
        pull_headers_reset(&h);
        assert_int_equal(pull_headers_line(&h, *l, strlen(*l)), MLX_EPROTO);
        assert_true(h.malformed);
    }
    pull_headers_reset(&h);
    assert_int_equal(pull_headers_line(&h, "HTTP/1.1 2000 x\r\n", 17), MLX_EPROTO);
    /* A value longer than we keep. */
    char *huge = malloc(PULL_MAX_HEADER + 32);
    snprintf(huge, PULL_MAX_HEADER + 32, "ETag: ");
    memset(huge + 6, 'a', PULL_MAX_HEADER + 10);
    huge[PULL_MAX_HEADER + 16] = '\0';
    pull_headers_reset(&h);
    assert_int_equal(pull_headers_line(&h, huge, strlen(huge)), MLX_EPROTO);
    free(huge);
    /* A 416's "bytes * / N" is no range, and no error. */
    pull_headers_reset(&h);
    assert_int_equal(pull_headers_line(&h, "Content-Range: bytes */10\r\n", 27), 0);
    assert_false(h.has_range);

    uint64_t a, b, t;
    assert_int_equal(pull_parse_content_range("bytes 0-0/*", &a, &b, &t), 0);
    assert_int_equal(t, PULL_SIZE_UNKNOWN);
    assert_int_equal(pull_parse_content_range("bytes 0-/5", &a, &b, &t), MLX_EPROTO);
}

static void test_etags(void **state)
{
    char out[65];
    assert_int_equal(pull_parse_etag("\"" SHA256_A "\"", out, NULL), 0);
    assert_string_equal(out, SHA256_A);
    assert_int_equal(pull_parse_etag("W/\"" SHA1_A "\"", out, NULL), 0);
    assert_string_equal(out, SHA1_A);
    assert_int_equal(
        pull_parse_etag("479E18224E7827E7909C8A78F287E3306C1DE8BB", out, NULL), 0);
    assert_string_equal(out, SHA1_A);
    static const char *const bad[] = {
        "",
        "\"\"",
        "\"abc\"",
        "\"" SHA1_A,
        "\"" SHA1_A "0\"",
        "\"479e18224e7827e7909c8a78f287e3306c1de8bz\"",
        "W/",
        "\"" SHA256_A "\"x",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        assert_int_equal(pull_parse_etag(bad[i], out, NULL), MLX_EPROTO);
}

static void test_hf_expected(void **state)
{
    pull_headers h;
    pull_digest_kind kind;
    char hex[65];
    uint64_t size = 0;

    /* An LFS file: the redirect carries the digest and the size. */
    pull_headers_reset(&h);
    h.status = 302;
    snprintf(h.etag, sizeof h.etag, "\"%s\"", SHA256_A);
    snprintf(h.linked_etag, sizeof h.linked_etag, "\"%s\"", SHA256_A);
    h.linked_size = 1083808;
    h.content_length = 18;
    assert_int_equal(pull_hf_expected(&h, "m.gguf", &kind, hex, &size, NULL), 0);
    assert_int_equal(kind, PULL_DIGEST_SHA256);
    assert_string_equal(hex, SHA256_A);
    assert_int_equal(size, 1083808);

    /* A small file in git: its blob id, the body's length. */
    pull_headers_reset(&h);
    h.status = 200;
    snprintf(h.etag, sizeof h.etag, "\"%s\"", SHA1_A);
    h.content_length = 23;
    assert_int_equal(pull_hf_expected(&h, "config.json", &kind, hex, &size, NULL), 0);
    assert_int_equal(kind, PULL_DIGEST_GIT_SHA1);
    assert_string_equal(hex, SHA1_A);
    assert_int_equal(size, 23);

    /* No size: a redirect's Content-Length is the redirect's, not the file's. */
    pull_headers_reset(&h);
    h.status = 302;
    snprintf(h.linked_etag, sizeof h.linked_etag, "\"%s\"", SHA256_A);
    h.content_length = 18;
    mlx_err err;
    assert_int_equal(pull_hf_expected(&h, "m.gguf", &kind, hex, &size, &err), MLX_EPROTO);
    assert_non_null(strstr(err.msg, "m.gguf"));

    /* No digest at all, or a linked one that is not SHA-256. */
    pull_headers_reset(&h);
    h.status = 200;
    h.content_length = 5;
    assert_int_equal(pull_hf_expected(&h, "x", &kind, hex, &size, NULL), MLX_EPROTO);
    snprintf(h.linked_etag, sizeof h.linked_etag, "\"%s\"", SHA1_A);
    assert_int_equal(pull_hf_expected(&h, "x", &kind, hex, &size, NULL), MLX_EPROTO);
    pull_headers_reset(&h);
    h.status = 302;
    snprintf(h.linked_etag, sizeof h.linked_etag, "\"%s\"", SHA256_A);
    h.linked_size = BLOB_MAX_BYTES + 1;
    assert_int_equal(pull_hf_expected(&h, "x", &kind, hex, &size, NULL), MLX_EPROTO);
}

static void test_resume_rules(void **state)
{
    assert_int_equal(pull_decide_resume(0, 100), PULL_RESUME_FRESH);
    assert_int_equal(pull_decide_resume(0, PULL_SIZE_UNKNOWN), PULL_RESUME_FRESH);
    assert_int_equal(pull_decide_resume(40, 100), PULL_RESUME_RANGE);
    assert_int_equal(pull_decide_resume(40, PULL_SIZE_UNKNOWN), PULL_RESUME_RANGE);
    assert_int_equal(pull_decide_resume(100, 100), PULL_RESUME_CHECK);
    assert_int_equal(pull_decide_resume(101, 100), PULL_RESUME_DISCARD);

    pull_headers h;
    pull_headers_reset(&h);
    h.status = 200;
    assert_int_equal(pull_decide_answer(&h, 0, NULL), PULL_ANSWER_RESTART);
    assert_int_equal(pull_decide_answer(&h, 40, NULL), PULL_ANSWER_RESTART);
    h.status = 206;
    assert_int_equal(pull_decide_answer(&h, 40, NULL), PULL_ANSWER_FAIL);
    h.has_range = true;
    h.range_start = 40;
    h.range_end = 99;
    h.range_total = 100;
    assert_int_equal(pull_decide_answer(&h, 40, NULL), PULL_ANSWER_APPEND);
    mlx_err err;
    assert_int_equal(pull_decide_answer(&h, 41, &err), PULL_ANSWER_FAIL);
    assert_non_null(strstr(err.msg, "41"));
    h.status = 416;
    assert_int_equal(pull_decide_answer(&h, 40, NULL), PULL_ANSWER_RETRY);
    assert_int_equal(pull_decide_answer(&h, 0, NULL), PULL_ANSWER_FAIL);
    h.status = 500;
    assert_int_equal(pull_decide_answer(&h, 0, NULL), PULL_ANSWER_FAIL);
    h.status = 200;
    h.malformed = true;
    assert_int_equal(pull_decide_answer(&h, 0, NULL), PULL_ANSWER_FAIL);
}

static const char revision[] =
    "{\"id\":\"org/name\",\"sha\":\"" COMMIT "\",\"private\":false,"
    "\"siblings\":[{\"rfilename\":\"z.gguf\"},{\"rfilename\":\"config.json\"},"
    "{\"rfilename\":\"a b.md\"},{\"rfilename\":\"../up\"},{\"rfilename\":\"z.gguf\"},"
    "{\"rfilename\":\"sub/dir/m.safetensors\"}],\"extra\":[1,2,3]}";

static void test_hf_revision(void **state)
{
    hf_revision r;
    assert_int_equal(pull_parse_hf_revision(revision, strlen(revision), &r, NULL), 0);
    assert_string_equal(r.sha, COMMIT);
    assert_int_equal(r.n_files, 3); /* sorted, the duplicate gone */
    assert_string_equal(r.files[0], "config.json");
    assert_string_equal(r.files[1], "sub/dir/m.safetensors");
    assert_string_equal(r.files[2], "z.gguf");
    assert_int_equal(r.n_skipped, 2);
    assert_string_equal(r.skipped[0], "a b.md");
    assert_string_equal(r.skipped[1], "../up");
    pull_hf_revision_free(&r);

    static const char *const bad[] = {
        "",
        "[]",
        "{\"siblings\":[]}",
        "{\"sha\":\"main\",\"siblings\":[]}",
        "{\"sha\":\"" COMMIT "\"}",
        "{\"sha\":\"" COMMIT "\",\"siblings\":{}}",
        "{\"sha\":\"" COMMIT "\",\"siblings\":[1]}",
        "{\"sha\":\"" COMMIT "\",\"siblings\":[{\"rfilename\":3}]}",
        "{\"sha\":\"" COMMIT "\",\"siblings\":[{}]}",
        "{\"sha\":\"" COMMIT "\",\"siblings\":[",
        "{\"sha\":\"" COMMIT "\",\"sha\":\"" COMMIT "\",\"siblings\":[]}",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        mlx_err err;
        mlx_err_clear(&err);
        int rc = pull_parse_hf_revision(bad[i], strlen(bad[i]), &r, &err);
        if (rc != MLX_ECORRUPT)
            fail_msg("case %zu gave %d: %s", i, rc, err.msg);
        assert_null(r.files);
    }
    /* An empty repository parses; the pull says there is nothing. */
    const char *empty = "{\"sha\":\"" COMMIT "\",\"siblings\":[]}";
    assert_int_equal(pull_parse_hf_revision(empty, strlen(empty), &r, NULL), 0);
    assert_int_equal(r.n_files, 0);
    pull_hf_revision_free(&r);
}

static void test_hf_revision_limits(void **state)
{
    /* More files than a model may have. */
    size_t cap = (size_t)(PULL_MAX_FILES + 1) * 32 + 100;
    char *text = malloc(cap);
    size_t n = (size_t)snprintf(text, cap, "{\"sha\":\"%s\",\"siblings\":[", COMMIT);
    for (int i = 0; i <= PULL_MAX_FILES; i++)
        n += (size_t)snprintf(text + n, cap - n, "%s{\"rfilename\":\"f%d\"}",
                              i ? "," : "", i);
    n += (size_t)snprintf(text + n, cap - n, "]}");
    hf_revision r;
    mlx_err err;
    assert_int_equal(pull_parse_hf_revision(text, n, &r, &err), MLX_ECORRUPT);
    assert_non_null(strstr(err.msg, "files"));
    free(text);
    /* A description over the size limit is refused unread. */
    assert_int_equal(pull_parse_hf_revision("{}", PULL_MAX_REVISION_JSON + 1, &r, NULL),
                     MLX_ECORRUPT);
}

static void test_hf_revision_out_of_memory(void **state)
{
    /* Every allocation fails in turn: a clean MLX_ENOMEM each time. */
    for (long n = 0;; n++) {
        hf_revision r;
        mlx_alloc_fail_after(n);
        int rc = pull_parse_hf_revision(revision, strlen(revision), &r, NULL);
        mlx_alloc_fail_reset();
        if (rc == 0) {
            assert_int_equal(r.n_files, 3);
            pull_hf_revision_free(&r);
            break;
        }
        assert_int_equal(rc, MLX_ENOMEM);
        assert_null(r.files);
        assert_true(n < 1000);
    }
}

int main(void)
{
    mlx_json_use_mlx_alloc();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_hf_sources),
        cmocka_unit_test(test_ollama_sources),
        cmocka_unit_test(test_url_sources),
        cmocka_unit_test(test_bad_sources),
        cmocka_unit_test(test_urls),
        cmocka_unit_test(test_headers),
        cmocka_unit_test(test_etags),
        cmocka_unit_test(test_hf_expected),
        cmocka_unit_test(test_resume_rules),
        cmocka_unit_test(test_hf_revision),
        cmocka_unit_test(test_hf_revision_limits),
        cmocka_unit_test(test_hf_revision_out_of_memory),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
