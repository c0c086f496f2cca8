/*
 * test_cache_manifest.c — model names and Ollama manifests, the outside
 * data the store names things by: what is accepted, what is refused, and
 * that each refusal says what was wrong.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "agent/cache/internal.h"

#define HEX_A "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
#define HEX_B "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb"

static void test_names_accepted(void **state)
{
    static const char *const ok[] = {
        "llama3.2:1b",
        "hf:TheBloke/Llama-2-7B-GGUF",
        "hf:org/name/sub/model.Q4_K_M.gguf",
        "registry.example.com/ns/name:tag",
        "local:stories260K",
        "a",
        "x+y@1.0_b-c",
    };
    for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++) {
        mlx_err err;
        mlx_err_clear(&err);
        assert_int_equal(store_check_name(ok[i], &err), 0);
    }
}

static void test_names_refused_with_reason(void **state)
{
    char long_name[MLX_MAX_MODEL_NAME + 2];
    memset(long_name, 'a', sizeof long_name - 1);
    long_name[sizeof long_name - 1] = '\0';
    static const struct {
        const char *name, *says;
    } bad[] = {
        {"../../etc/passwd", "'..'"},
        {"/etc/passwd", "starts with '/'"},
        {"a//b", "empty path segment"},
        {"a/", "empty path segment"},
        {"a/./b", "'.' segment"},
        {".", "'.' segment"},
        {"a/..", "'..'"},
        {"", "1 to"},
        {"has space", "' '"},
        {"tab\there", "'?'"},
        {"semi;colon", "';'"},
        {"caf\xc3\xa9", "'?'"},
        {"back\\slash", "'\\'"},
        {"new\nline", "'?'"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        mlx_err err;
        mlx_err_clear(&err);
        assert_int_equal(store_check_name(bad[i].name, &err), MLX_EINVAL);
        if (strstr(err.msg, bad[i].says) == NULL)
            fail_msg("name #%zu: '%s' does not say %s", i, err.msg, bad[i].says);
    }
    mlx_err err;
    assert_int_equal(store_check_name(long_name, &err), MLX_EINVAL);
    assert_non_null(strstr(err.msg, "characters"));
}

static const char *const good_manifest =
    "{\"schemaVersion\":2,"
    "\"mediaType\":\"application/vnd.docker.distribution.manifest.v2+json\","
    "\"config\":{\"mediaType\":\"application/vnd.docker.container.image.v1+json\","
    "\"digest\":\"sha256:" HEX_A "\",\"size\":485},"
    "\"layers\":["
    "{\"mediaType\":\"application/vnd.ollama.image.model\",\"digest\":\"sha256:" HEX_B
    "\",\"size\":1185376,\"from\":\"/ignored\"},"
    "{\"mediaType\":\"application/vnd.ollama.image.template\",\"digest\":\"sha256:" HEX_A
    "\",\"size\":12},"
    "{\"mediaType\":\"application/vnd.ollama.image.adapter\",\"digest\":\"sha256:" HEX_A
    "\",\"size\":7},"
    "{\"mediaType\":\"application/vnd.ollama.image.adapter\",\"digest\":\"sha256:" HEX_B
    "\",\"size\":8},"
    "{\"mediaType\":\"application/x-unknown\",\"digest\":\"sha256:" HEX_B "\",\"size\":9}"
    "]}";

static void test_manifest_parsed(void **state)
{
    manifest m;
    mlx_err err;
    assert_int_equal(cache_parse_manifest(good_manifest, strlen(good_manifest), &m, &err),
                     0);
    assert_string_equal(m.config.digest, HEX_A);
    assert_true(m.config.size == 485);
    assert_int_equal(m.n_layers, 5);
    assert_string_equal(m.layers[0].media_type, "application/vnd.ollama.image.model");
    assert_string_equal(m.layers[0].digest, HEX_B);
    assert_true(m.layers[0].size == 1185376);

    static const char *const names[] = {"model", "template", "adapter", "adapter-1",
                                        "layer"};
    for (size_t i = 0; i < m.n_layers; i++) {
        char name[64];
        cache_manifest_file_name(&m, i, name, sizeof name);
        assert_string_equal(name, names[i]);
    }
}

static void test_manifest_refused_with_reason(void **state)
{
    static const struct {
        const char *text, *says;
    } bad[] = {
        {"", "manifest"},
        {"{", "manifest"},
        {"[]", "not a JSON object"},
        {"{\"schemaVersion\":1,\"layers\":[]}", "schemaVersion 1"},
        {"{\"schemaVersion\":\"2\"}", "schemaVersion"},
        {"{\"schemaVersion\":2,\"config\":{}}", "no layers"},
        {"{\"schemaVersion\":2,\"layers\":[]}", "no layers"},
        {"{\"schemaVersion\":2,\"layers\":[1]}", "config"},
        {"{\"schemaVersion\":2,\"config\":{\"mediaType\":\"x\",\"digest\":\"sha256:" HEX_A
         "\",\"size\":1},\"layers\":[{\"mediaType\":\"m\",\"digest\":\"md5:abc\","
         "\"size\":1}]}",
         "digest"},
        {"{\"schemaVersion\":2,\"config\":{\"mediaType\":\"x\",\"digest\":\"sha256:" HEX_A
         "\",\"size\":1},\"layers\":[{\"mediaType\":\"m\",\"digest\":\"sha256:" HEX_A
         "\",\"size\":-5}]}",
         "size"},
        {"{\"schemaVersion\":2,\"config\":{\"mediaType\":\"x\",\"digest\":\"sha256:" HEX_A
         "\",\"size\":1},\"layers\":[{\"mediaType\":\"m\",\"digest\":\"sha256:" HEX_A
         "\",\"size\":99999999999999999}]}",
         "size"},
        {"{\"schemaVersion\":2,\"config\":{\"mediaType\":\"x\",\"digest\":\"sha256:" HEX_A
         "\",\"size\":1},\"layers\":[{\"mediaType\":\"m\",\"digest\":\"sha256:"
         "AAAAaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\",\"size\":1}]"
         "}",
         "lower-case"},
        {"{\"schemaVersion\":2,\"config\":{\"mediaType\":\"x\",\"digest\":\"sha256:" HEX_A
         "\",\"size\":1},\"layers\":[{\"mediaType\":\"bad\\u0001type\",\"digest\":"
         "\"sha256:" HEX_A "\",\"size\":1}]}",
         "mediaType"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        manifest m;
        mlx_err err;
        mlx_err_clear(&err);
        assert_int_equal(cache_parse_manifest(bad[i].text, strlen(bad[i].text), &m, &err),
                         MLX_ECORRUPT);
        if (strstr(err.msg, bad[i].says) == NULL)
            fail_msg("manifest #%zu: '%s' does not say %s", i, err.msg, bad[i].says);
        assert_int_equal(m.n_layers, 0);
    }
}

static void test_manifest_layer_count_bounded(void **state)
{
    char text[32768];
    size_t n =
        (size_t)snprintf(text, sizeof text,
                         "{\"schemaVersion\":2,\"config\":{\"mediaType\":\"x\","
                         "\"digest\":\"sha256:" HEX_A "\",\"size\":1},\"layers\":[");
    for (int i = 0; i <= MANIFEST_MAX_LAYERS; i++)
        n += (size_t)snprintf(text + n, sizeof text - n,
                              "%s{\"mediaType\":\"m\",\"digest\":\"sha256:" HEX_A
                              "\",\"size\":1}",
                              i ? "," : "");
    snprintf(text + n, sizeof text - n, "]}");
    manifest m;
    mlx_err err;
    assert_int_equal(cache_parse_manifest(text, strlen(text), &m, &err), MLX_ECORRUPT);
    assert_non_null(strstr(err.msg, "layers"));
}

static void test_ollama_names(void **state)
{
    char out[256];
    cache_ollama_name("registry.ollama.ai", "library", "llama3.2", "1b", out, sizeof out);
    assert_string_equal(out, "llama3.2:1b");
    cache_ollama_name("registry.ollama.ai", "someone", "tiny", "latest", out, sizeof out);
    assert_string_equal(out, "someone/tiny:latest");
    cache_ollama_name("hf.co", "org", "model", "Q4_K_M", out, sizeof out);
    assert_string_equal(out, "hf.co/org/model:Q4_K_M");
}

static void test_digests_and_sizes(void **state)
{
    assert_true(cache_is_digest(HEX_A));
    assert_false(cache_is_digest(HEX_A "a"));
    assert_false(cache_is_digest("AAAA"));
    assert_false(cache_is_digest(""));
    char out[32];
    cache_format_bytes(512, out, sizeof out);
    assert_string_equal(out, "512 B");
    cache_format_bytes(1536, out, sizeof out);
    assert_string_equal(out, "1.5 KiB");
    cache_format_bytes(3ull << 30, out, sizeof out);
    assert_string_equal(out, "3.0 GiB");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_names_accepted),
        cmocka_unit_test(test_names_refused_with_reason),
        cmocka_unit_test(test_manifest_parsed),
        cmocka_unit_test(test_manifest_refused_with_reason),
        cmocka_unit_test(test_manifest_layer_count_bounded),
        cmocka_unit_test(test_ollama_names),
        cmocka_unit_test(test_digests_and_sizes),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
