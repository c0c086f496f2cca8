/*
 * it_pull.c — `mlx-agent cache pull` against mlx-test-hub, a loopback
 * HuggingFace Hub and Ollama registry serving real GGUF files from the
 * shared test data: whole repositories and single files (LFS and small git
 * files), Ollama models, URLs with --sha256; redirects, tokens and where
 * they go; 404s and server errors; a truncated body resumed by the next
 * pull; a wrong digest; a pull killed mid-way and continued; a stalled
 * server; two pulls of one blob at once; TLS verification against
 * `openssl s_server`; malformed sources that leave the store untouched.
 * Every stored blob is re-hashed against its name.
 */
#include <arpa/inet.h>
#include <dirent.h>
#include <netinet/in.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "tests/integration/pull_hub.h"
#include "tests/support/testutil.h"

#define C1 "0123456789abcdef0123456789abcdef01234567"
#define C2 "89abcdef0123456789abcdef0123456789abcdef"

static struct {
    char *dir;
    char *stories, *q4; /* shared test models */
    hub hub;
    int n_data;
    char ollama_name[128];
} g;

static const char config_fmt[] =
    "{\"blobs\": {\"q4\": {\"path\": \"%s\"}, \"gq4\": {\"path\": \"%s\"},"
    "  \"stories\": {\"path\": \"%s\"}, \"stories260K.gguf\": {\"path\": \"%s\"},"
    "  \"cfg\": {\"text\": \"{\\\"model_type\\\": \\\"llama\\\"}\\n\"},"
    "  \"tmpl\": {\"text\": \"{{ .Prompt }}\"},"
    "  \"params\": {\"text\": \"{\\\"stop\\\": [\\\"</s>\\\"]}\"},"
    "  \"ocfg\": {\"text\": \"{\\\"model_format\\\": \\\"gguf\\\"}\"}},"
    " \"hf\": [{\"repo\": \"org/tiny\", \"commit\": \"" C1 "\","
    "           \"files\": [{\"name\": \"syn256-q4_0.gguf\", \"blob\": \"q4\", \"lfs\": "
    "true},"
    "                     {\"name\": \"config.json\", \"blob\": \"cfg\", \"lfs\": "
    "false}]},"
    "          {\"repo\": \"org/gated\", \"commit\": \"" C2 "\", \"token\": \"s3cret\","
    "           \"files\": [{\"name\": \"model.gguf\", \"blob\": \"gq4\", \"lfs\": "
    "true}]}],"
    " \"ollama\": [{\"repo\": \"library/tiny\", \"tag\": \"latest\", \"config\": "
    "\"ocfg\","
    "   \"layers\": [{\"media_type\": \"application/vnd.ollama.image.model\","
    "                \"blob\": \"stories\"},"
    "               {\"media_type\": \"application/vnd.ollama.image.template\","
    "                \"blob\": \"tmpl\"},"
    "               {\"media_type\": \"application/vnd.ollama.image.params\","
    "                \"blob\": \"params\"}]}]}";

static int setup(void **state)
{
    g.stories = test_testdata("stories260K.gguf");
    g.q4 = test_testdata("syn256-q4_0.gguf");
    if (g.stories == NULL || g.q4 == NULL) {
        printf("skipping: stories260K.gguf and syn256-q4_0.gguf are not in the shared "
               "test data (../shared/testdata or $MLX_TESTDATA)\n");
        exit(TEST_SKIP);
    }
    unsetenv("HF_TOKEN");
    unsetenv("HF_ENDPOINT");
    g.dir = test_tmpdir("it-pull");
    size_t n = sizeof config_fmt + 4 * strlen(g.stories) + 4 * strlen(g.q4);
    char *config = malloc(n);
    snprintf(config, n, config_fmt, g.q4, g.q4, g.stories, g.stories);
    hub_start(&g.hub, g.dir, config);
    free(config);
    snprintf(g.ollama_name, sizeof g.ollama_name, "127.0.0.1:%d/library/tiny:latest",
             g.hub.port);
    return 0;
}

static int teardown(void **state)
{
    hub_stop(&g.hub);
    test_tmpdir_remove(g.dir);
    free(g.stories);
    free(g.q4);
    return 0;
}

/* A data directory no pull has used yet (caller frees). */
static char *new_data(void)
{
    char name[32];
    snprintf(name, sizeof name, "data%d", ++g.n_data);
    return test_join(g.dir, name);
}

/* Pulls src and expects status; returns the JSON of --json (caller decrefs)
 * when status is 0, else NULL; *err_out (caller frees) may be NULL. */
static json_t *pull(const char *data, const char *src, int status, const char *needle,
                    const char *const *extra)
{
    const char *args[16];
    int n = 0;
    for (; extra != NULL && extra[n] != NULL; n++)
        args[n] = extra[n];
    if (status == 0)
        args[n++] = "--json";
    args[n] = NULL;
    char *out = NULL, *err = NULL;
    int rc = hub_pull(&g.hub, data, src, args, &out, &err);
    if (rc != status)
        fail_msg("pull %s: exit %d, expected %d; stderr: %s", src, rc, status, err);
    if (needle != NULL && strstr(err, needle) == NULL)
        fail_msg("pull %s: stderr lacks '%s': %s", src, needle, err);
    json_t *v = NULL;
    if (status == 0 && (v = json_loads(out, 0, NULL)) == NULL)
        fail_msg("pull %s printed no JSON: %s", src, out);
    if (status != 0 &&
        (strncmp(err, "mlx-agent: ", 11) != 0 || strchr(err, '\n') == NULL))
        fail_msg("pull %s: the error is not one sentence: %s", src, err);
    free(out);
    free(err);
    return v;
}

static const char *str(json_t *obj, const char *key)
{
    const char *s = json_string_value(json_object_get(obj, key));
    if (s == NULL)
        fail_msg("no string '%s'", key);
    return s;
}

static int64_t num(json_t *obj, const char *key)
{
    json_t *v = json_object_get(obj, key);
    if (!json_is_integer(v))
        fail_msg("no integer '%s'", key);
    return json_integer_value(v);
}

/* File path of the pull's JSON, by position. */
static json_t *file_at(json_t *result, size_t i)
{
    json_t *f = json_array_get(json_object_get(result, "files"), i);
    if (f == NULL)
        fail_msg("the pull has no file %zu", i);
    return f;
}

/* The model is in the store as status shows it, every file's digest that
 * of its blob, every blob sound. */
static void expect_stored(const char *data, const char *name, const char *source,
                          size_t n_files)
{
    json_t *models = store_models(data);
    json_t *m = store_model(models, name);
    if (m == NULL)
        fail_msg("model %s is not in the store", name);
    assert_string_equal(str(m, "source"), source);
    json_t *files = json_object_get(m, "files");
    assert_int_equal(json_array_size(files), n_files);
    char *blobs = test_join(data, "blobs/sha256");
    for (size_t i = 0; i < n_files; i++) {
        json_t *f = json_array_get(files, i);
        char *path = test_join(blobs, str(f, "sha256"));
        char hex[65];
        assert_true(file_sha256(path, hex));
        assert_string_equal(hex, str(f, "sha256"));
        assert_int_equal(file_size(path), num(f, "size_bytes"));
        free(path);
    }
    free(blobs);
    json_decref(models);
    assert_int_equal(store_bad_blobs(data, NULL), 0);
}

static void expect_no_models(const char *data)
{
    json_t *models = store_models(data);
    assert_non_null(models);
    assert_int_equal(json_array_size(models), 0);
    json_decref(models);
}

static char *partial_path(const char *data, const char *prefix, const char *hex)
{
    char name[128];
    snprintf(name, sizeof name, "tmp/%s%s.partial", prefix, hex);
    return test_join(data, name);
}

static int count_entries(const char *dir)
{
    DIR *d = opendir(dir);
    int n = 0;
    struct dirent *e;
    while (d != NULL && (e = readdir(d)) != NULL)
        n += e->d_name[0] != '.';
    if (d != NULL)
        closedir(d);
    return n;
}

/* ---- sources --------------------------------------------------------------- */

static void test_hf_whole_repository(void **state)
{
    char *d = new_data();
    json_t *r = pull(d, "hf:org/tiny", 0, NULL, NULL);
    assert_string_equal(str(r, "name"), "hf:org/tiny");
    assert_string_equal(str(r, "source"), "hf");
    assert_string_equal(str(r, "origin"), "hf:org/tiny@" C1);
    assert_string_equal(str(r, "format"), "gguf");
    assert_int_equal(json_array_size(json_object_get(r, "files")), 2);
    assert_string_equal(str(file_at(r, 0), "path"), "config.json");
    assert_string_equal(str(file_at(r, 0), "sha256"), hub_sha256(&g.hub, "cfg"));
    assert_string_equal(str(file_at(r, 1), "path"), "syn256-q4_0.gguf");
    assert_string_equal(str(file_at(r, 1), "sha256"), hub_sha256(&g.hub, "q4"));
    assert_int_equal(num(r, "downloaded_bytes"), num(r, "size_bytes"));
    assert_int_equal(num(r, "reused_bytes"), 0);
    json_decref(r);
    expect_stored(d, "hf:org/tiny", "hf", 2);
    free(d);
}

static void test_hf_single_files(void **state)
{
    char *d = new_data();
    json_t *r = pull(d, "hf:org/tiny/syn256-q4_0.gguf", 0, NULL, NULL);
    assert_string_equal(str(r, "name"), "hf:org/tiny/syn256-q4_0.gguf");
    assert_int_equal(json_array_size(json_object_get(r, "files")), 1);
    assert_int_equal(num(file_at(r, 0), "size_bytes"), hub_count(&g.hub, "q4", "size"));
    json_decref(r);
    /* A small file kept in git, at a pinned commit. */
    r = pull(d, "hf:org/tiny@" C1 "/config.json", 0, NULL, NULL);
    assert_string_equal(str(r, "name"), "hf:org/tiny/config.json");
    assert_string_equal(str(r, "origin"), "hf:org/tiny@" C1);
    assert_string_equal(str(file_at(r, 0), "sha256"), hub_sha256(&g.hub, "cfg"));
    json_decref(r);
    expect_stored(d, "hf:org/tiny/syn256-q4_0.gguf", "hf", 1);
    expect_stored(d, "hf:org/tiny/config.json", "hf", 1);
    free(d);
}

static void test_blobs_in_store_not_fetched_again(void **state)
{
    char *d = new_data();
    json_decref(pull(d, "hf:org/tiny", 0, NULL, NULL));
    hub_reset(&g.hub);
    json_t *r = pull(d, "hf:org/tiny", 0, NULL, NULL);
    assert_int_equal(num(r, "downloaded_bytes"), 0);
    assert_int_equal(num(r, "reused_bytes"), num(r, "size_bytes"));
    assert_true(json_is_true(json_object_get(file_at(r, 0), "reused")));
    json_decref(r);
    assert_int_equal(hub_count(&g.hub, "q4", "gets"), 0);
    assert_int_equal(hub_count(&g.hub, "cfg", "gets"), 0);
    /* The same bytes by URL: known by digest, so not even asked for. */
    char url[256];
    snprintf(url, sizeof url, "%s/files/q4", g.hub.base);
    const char *sha[] = {"--sha256", hub_sha256(&g.hub, "q4"), "--name", "q4-copy", NULL};
    r = pull(d, url, 0, NULL, sha);
    assert_int_equal(num(r, "downloaded_bytes"), 0);
    json_decref(r);
    assert_int_equal(hub_count(&g.hub, "q4", "gets") + hub_count(&g.hub, "q4", "heads"),
                     0);
    expect_stored(d, "q4-copy", "url", 1);
    free(d);
}

static void test_hf_token_and_redirects(void **state)
{
    char *d = new_data();
    pull(d, "hf:org/gated", 1, "HF_TOKEN", NULL);
    expect_no_models(d);
    /* The CDN is another host: the token must not follow the redirect. */
    hub_fault(&g.hub, "gq4", "redirect=other-host");
    hub_reset(&g.hub);
    setenv("HF_TOKEN", "s3cret", 1);
    json_t *r = pull(d, "hf:org/gated", 0, NULL, NULL);
    json_decref(r);
    assert_true(hub_count(&g.hub, NULL, "auth_seen") >= 2);
    assert_int_equal(hub_count(&g.hub, NULL, "auth_localhost"), 0);
    assert_int_equal(hub_count(&g.hub, "gq4", "gets"), 1);
    expect_stored(d, "hf:org/gated", "hf", 1);
    /* An absolute Location on the Hub's own host. */
    char *d2 = new_data();
    hub_fault(&g.hub, "gq4", "redirect=absolute");
    json_decref(pull(d2, "hf:org/gated/model.gguf", 0, NULL, NULL));
    expect_stored(d2, "hf:org/gated/model.gguf", "hf", 1);
    unsetenv("HF_TOKEN");
    hub_fault(&g.hub, "gq4", "");
    free(d);
    free(d2);
}

static void test_ollama_model(void **state)
{
    char *d = new_data();
    json_t *r = pull(d, "ollama:tiny", 0, NULL, NULL);
    assert_string_equal(str(r, "name"), g.ollama_name);
    assert_string_equal(str(r, "source"), "ollama");
    assert_string_equal(str(r, "format"), "gguf");
    static const char *const paths[] = {"model", "template", "params", "config"};
    static const char *const blobs[] = {"stories", "tmpl", "params", "ocfg"};
    for (size_t i = 0; i < 4; i++) {
        assert_string_equal(str(file_at(r, i), "path"), paths[i]);
        assert_string_equal(str(file_at(r, i), "sha256"), hub_sha256(&g.hub, blobs[i]));
    }
    json_decref(r);
    expect_stored(d, g.ollama_name, "ollama", 4);
    /* Another name for the same model: everything is there already. */
    const char *named[] = {"--name", "tiny-local", NULL};
    r = pull(d, "ollama:library/tiny:latest", 0, NULL, named);
    assert_string_equal(str(r, "name"), "tiny-local");
    assert_int_equal(num(r, "reused_bytes"), num(r, "size_bytes"));
    json_decref(r);
    expect_stored(d, "tiny-local", "ollama", 4);
    free(d);
}

static void test_url_with_digest(void **state)
{
    char *d = new_data();
    char url[256];
    snprintf(url, sizeof url, "%s/files/stories260K.gguf", g.hub.base);
    pull(d, url, 2, "--sha256", NULL);
    const char *sha[] = {"--sha256", hub_sha256(&g.hub, "stories"), NULL};
    json_t *r = pull(d, url, 0, NULL, sha);
    assert_string_equal(str(r, "name"), "stories260K");
    assert_string_equal(str(r, "source"), "url");
    assert_string_equal(str(r, "origin"), url);
    assert_string_equal(str(file_at(r, 0), "path"), "stories260K.gguf");
    json_decref(r);
    expect_stored(d, "stories260K", "url", 1);
    free(d);
}

/* ---- failures -------------------------------------------------------------- */

static void test_not_found_and_server_errors(void **state)
{
    char *d = new_data();
    pull(d, "hf:org/missing", 1, "check the name", NULL);
    pull(d, "hf:org/tiny/missing.gguf", 1, "check the name", NULL);
    pull(d, "ollama:missing", 1, "check the name", NULL);
    pull(d, "ollama:tiny:nope", 1, "check the name", NULL);
    hub_fault(&g.hub, "cfg", "status=503");
    pull(d, "hf:org/tiny", 1, "try again later", NULL);
    hub_fault(&g.hub, "cfg", "");
    hub_fault(&g.hub, "stories", "status=404");
    pull(d, "ollama:tiny", 1, "check the name", NULL);
    hub_fault(&g.hub, "stories", "");
    expect_no_models(d);
    /* Nothing came, so nothing is kept to resume. */
    char *tmp = test_join(d, "tmp");
    assert_int_equal(count_entries(tmp), 0);
    free(tmp);
    free(d);
}

static void test_truncated_body_then_resume(void **state)
{
    char *d = new_data();
    int64_t size = hub_count(&g.hub, "q4", "size");
    int64_t cut = size / 3;
    char q[64], needle[128];
    snprintf(q, sizeof q, "truncate=%lld", (long long)cut);
    hub_fault(&g.hub, "q4", q);
    snprintf(needle, sizeof needle, "closed the connection after %lld of %lld bytes",
             (long long)cut, (long long)size);
    pull(d, "hf:org/tiny/syn256-q4_0.gguf", 1, needle, NULL);
    char *partial = partial_path(d, "", hub_sha256(&g.hub, "q4"));
    assert_int_equal(file_size(partial), cut);
    expect_no_models(d);

    hub_fault(&g.hub, "q4", "");
    hub_reset(&g.hub);
    json_t *r = pull(d, "hf:org/tiny/syn256-q4_0.gguf", 0, NULL, NULL);
    assert_int_equal(num(file_at(r, 0), "resumed_from_bytes"), cut);
    assert_int_equal(num(file_at(r, 0), "downloaded_bytes"), size - cut);
    json_decref(r);
    assert_int_equal(hub_count(&g.hub, "q4", "ranges"), 1);
    assert_int_equal(hub_count(&g.hub, "q4", "bytes"), size - cut);
    assert_int_equal(file_size(partial), -1);
    expect_stored(d, "hf:org/tiny/syn256-q4_0.gguf", "hf", 1);
    free(partial);
    free(d);
}

static void test_wrong_digest(void **state)
{
    char *d = new_data();
    const char *sha = hub_sha256(&g.hub, "stories");
    char expected[65];
    snprintf(expected, sizeof expected, "%s", sha);
    hub_fault(&g.hub, "stories", "corrupt=1");
    pull(d, "ollama:tiny", 1, expected, NULL);
    pull(d, "ollama:tiny", 1, "does not match its digest", NULL);
    hub_fault(&g.hub, "stories", "");
    char *partial = partial_path(d, "", expected);
    assert_int_equal(file_size(partial), -1);
    free(partial);
    char *blob = test_join(d, "blobs/sha256");
    char *path = test_join(blob, expected);
    assert_int_equal(file_size(path), -1);
    free(path);
    free(blob);
    /* A small git file is checked by its git blob id. */
    hub_fault(&g.hub, "cfg", "corrupt=1");
    pull(d, "hf:org/tiny/config.json", 1, "git blob id", NULL);
    hub_fault(&g.hub, "cfg", "");
    expect_no_models(d);
    assert_int_equal(store_bad_blobs(d, NULL), 0);
    free(d);
}

static void test_more_bytes_than_stated(void **state)
{
    char *d = new_data();
    hub_fault(&g.hub, "stories", "short_size=1");
    pull(d, "ollama:tiny", 1, "more than the", NULL);
    expect_no_models(d);
    hub_fault(&g.hub, "stories", "");
    json_decref(pull(d, "ollama:tiny", 0, NULL, NULL));
    expect_stored(d, g.ollama_name, "ollama", 4);
    free(d);
}

/* Writes n bytes of junk as the .partial of blob in data. */
static char *plant_partial(const char *data, const char *blob, int64_t n)
{
    char *tmp = test_join(data, "tmp");
    mkdir(data, 0700);
    mkdir(tmp, 0700);
    free(tmp);
    char *path = partial_path(data, "", hub_sha256(&g.hub, blob));
    char *junk = malloc((size_t)n + 1);
    memset(junk, 'j', (size_t)n);
    junk[n] = '\0';
    test_write_file(path, junk);
    free(junk);
    return path;
}

static void test_partials_that_do_not_fit(void **state)
{
    int64_t size = hub_count(&g.hub, "q4", "size");
    /* Larger than the file: thrown away unread. */
    char *d = new_data();
    free(plant_partial(d, "q4", size + 100));
    hub_reset(&g.hub);
    json_t *r = pull(d, "hf:org/tiny/syn256-q4_0.gguf", 0, NULL, NULL);
    assert_int_equal(num(file_at(r, 0), "resumed_from_bytes"), 0);
    json_decref(r);
    assert_int_equal(hub_count(&g.hub, "q4", "ranges"), 0);
    expect_stored(d, "hf:org/tiny/syn256-q4_0.gguf", "hf", 1);
    free(d);
    /* Bad bytes at the start: the resumed file fails its digest, so the
     * same pull fetches it whole. */
    d = new_data();
    free(plant_partial(d, "q4", 1000));
    hub_reset(&g.hub);
    r = pull(d, "hf:org/tiny/syn256-q4_0.gguf", 0, NULL, NULL);
    assert_int_equal(num(file_at(r, 0), "resumed_from_bytes"), 0);
    json_decref(r);
    assert_int_equal(hub_count(&g.hub, "q4", "ranges"), 1);
    assert_int_equal(hub_count(&g.hub, "q4", "bytes"), 2 * size - 1000);
    expect_stored(d, "hf:org/tiny/syn256-q4_0.gguf", "hf", 1);
    free(d);
}

struct grow {
    const char *path;
    int64_t at_least;
};

static bool grown(void *arg)
{
    struct grow *g2 = arg;
    return file_size(g2->path) >= g2->at_least;
}

static void test_killed_pull_resumes(void **state)
{
    char *d = new_data();
    int64_t size = hub_count(&g.hub, "q4", "size");
    char q[64];
    snprintf(q, sizeof q, "throttle=%lld", (long long)(size / 3));
    hub_fault(&g.hub, "q4", q);
    hub_reset(&g.hub);
    h_proc *p = h_spawn("killed-pull", g.dir, "mlx-agent",
                        hub_pull_args(&g.hub, d, "hf:org/tiny/syn256-q4_0.gguf"));
    char *partial = partial_path(d, "", hub_sha256(&g.hub, "q4"));
    struct grow cond = {partial, size / 4};
    assert_true(h_wait_for(grown, &cond, 20000));
    h_signal(p, SIGKILL);
    assert_int_equal(h_wait_exit(p, 10000), 128 + SIGKILL);
    h_stop(p);
    int64_t kept = file_size(partial);
    assert_true(kept >= size / 4 && kept < size);
    expect_no_models(d);

    hub_fault(&g.hub, "q4", "");
    json_t *r = pull(d, "hf:org/tiny/syn256-q4_0.gguf", 0, NULL, NULL);
    assert_int_equal(num(file_at(r, 0), "resumed_from_bytes"), kept);
    json_decref(r);
    /* Nothing already on disk was fetched again. */
    assert_true(hub_count(&g.hub, "q4", "ranges") >= 1);
    assert_true(hub_count(&g.hub, "q4", "bytes") < 2 * size);
    expect_stored(d, "hf:org/tiny/syn256-q4_0.gguf", "hf", 1);
    free(partial);
    free(d);
}

static void test_stalled_server(void **state)
{
    char *d = new_data();
    int64_t size = hub_count(&g.hub, "q4", "size");
    char q[64];
    snprintf(q, sizeof q, "stall=%lld", (long long)(size / 2));
    hub_fault(&g.hub, "q4", q);
    int64_t t0 = h_now_ms();
    const char *fast[] = {"--stall-timeout", "1s", NULL};
    pull(d, "hf:org/tiny/syn256-q4_0.gguf", 1, "stalled", fast);
    assert_true(h_now_ms() - t0 < 20000);
    hub_fault(&g.hub, "q4", "");
    expect_no_models(d);
    free(d);
}

static void test_two_pulls_of_one_blob(void **state)
{
    char *d = new_data();
    int64_t size = hub_count(&g.hub, "q4", "size");
    char q[64];
    snprintf(q, sizeof q, "throttle=%lld", (long long)size);
    hub_fault(&g.hub, "q4", q);
    hub_reset(&g.hub);
    h_proc *a = h_spawn("pull-a", g.dir, "mlx-agent",
                        hub_pull_args(&g.hub, d, "hf:org/tiny/syn256-q4_0.gguf"));
    char *partial = partial_path(d, "", hub_sha256(&g.hub, "q4"));
    struct grow cond = {partial, 1};
    assert_true(h_wait_for(grown, &cond, 20000));
    h_proc *b =
        h_spawn("pull-b", g.dir, "mlx-agent", hub_pull_args(&g.hub, d, "hf:org/tiny"));
    assert_int_equal(h_wait_exit(a, 30000), 0);
    assert_int_equal(h_wait_exit(b, 30000), 0);
    h_stop(a);
    h_stop(b);
    /* The second waited for the first and then found the blob stored. */
    assert_int_equal(hub_count(&g.hub, "q4", "bytes"), size);
    hub_fault(&g.hub, "q4", "");
    expect_stored(d, "hf:org/tiny/syn256-q4_0.gguf", "hf", 1);
    expect_stored(d, "hf:org/tiny", "hf", 2);
    free(partial);
    free(d);
}

/* ---- sources that are refused ------------------------------------------------ */

/* Every path, size and modification time under dir, one line each. */
static void fingerprint(const char *dir, char *out, size_t size, size_t *used)
{
    DIR *d = opendir(dir);
    struct dirent *e;
    while (d != NULL && (e = readdir(d)) != NULL) {
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
            continue;
        char *path = test_join(dir, e->d_name);
        struct stat st;
        if (lstat(path, &st) == 0 && *used < size) {
            *used += (size_t)snprintf(out + *used, size - *used, "%s %lld %lld.%09ld\n",
                                      path, (long long)st.st_size,
                                      (long long)st.st_mtim.tv_sec, st.st_mtim.tv_nsec);
            if (S_ISDIR(st.st_mode))
                fingerprint(path, out, size, used);
        }
        free(path);
    }
    if (d != NULL)
        closedir(d);
}

static void test_bad_sources_change_nothing(void **state)
{
    char *d = new_data();
    json_decref(pull(d, "hf:org/tiny", 0, NULL, NULL));
    static char before[1 << 16], after[1 << 16];
    size_t n = 0;
    fingerprint(d, before, sizeof before, &n);
    static const char *const bad[] = {
        "hf:../../etc/passwd", "ollama:",         "hf:org/name with spaces",
        "/etc/passwd",         "ollama:my model", "hf:org/tiny/../../x",
        "hf:org/tiny@../main", "ollama:a/b/c/d",  "file:///etc/passwd",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        pull(d, bad[i], 2, NULL, NULL);
    const char *bad_name[] = {"--name", "bad name", NULL};
    pull(d, "hf:org/tiny", 2, "--name", bad_name);
    const char *abs_name[] = {"--name", "/abs/path", NULL};
    pull(d, "hf:org/tiny", 2, "--name", abs_name);
    pull(d, "https://example.com/x.gguf", 2, "--sha256", NULL);
    const char *short_sha[] = {"--sha256", "abc", NULL};
    pull(d, "https://example.com/x.gguf", 2, "--sha256", short_sha);
    n = 0;
    fingerprint(d, after, sizeof after, &n);
    assert_string_equal(before, after);
    free(d);
}

/* ---- TLS ------------------------------------------------------------------ */

static bool port_open(void *arg)
{
    int port = *(int *)arg;
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    bool ok = fd >= 0 && connect(fd, (struct sockaddr *)&sa, sizeof sa) == 0;
    if (fd >= 0)
        close(fd);
    return ok;
}

static void test_tls_verification(void **state)
{
    const char *found = h_which("openssl");
    if (found == NULL) {
        printf("skipping TLS: no openssl program (Debian package openssl)\n");
        skip();
    }
    char openssl[1024];
    snprintf(openssl, sizeof openssl, "%s", found);
    char *www = test_join(g.dir, "www");
    mkdir(www, 0700);
    char *cert = test_join(www, "cert.pem"), *key = test_join(www, "key.pem");
    const char *req[] = {"req",
                         "-x509",
                         "-newkey",
                         "ec",
                         "-pkeyopt",
                         "ec_paramgen_curve:prime256v1",
                         "-nodes",
                         "-keyout",
                         key,
                         "-out",
                         cert,
                         "-days",
                         "1",
                         "-subj",
                         "/CN=127.0.0.1",
                         "-addext",
                         "subjectAltName=IP:127.0.0.1",
                         NULL};
    char *err = NULL;
    if (h_run(openssl, req, 30000, NULL, &err) != 0)
        fail_msg("openssl req failed: %s", err);
    free(err);
    char *link = test_join(www, "stories260K.gguf");
    assert_int_equal(symlink(g.stories, link), 0);

    int port = h_free_port();
    char script[2048];
    snprintf(script, sizeof script,
             "cd '%s' && exec '%s' s_server -WWW -quiet -accept 127.0.0.1:%d -cert '%s' "
             "-key '%s'",
             www, openssl, port, cert, key);
    const char *sh[] = {"-c", script, NULL};
    h_proc *server = h_spawn("s_server", g.dir, "/bin/sh", sh);
    assert_true(h_wait_for(port_open, &port, 10000));

    char url[128];
    snprintf(url, sizeof url, "https://127.0.0.1:%d/stories260K.gguf", port);
    char *d = new_data();
    const char *sha[] = {"--sha256", hub_sha256(&g.hub, "stories"), NULL};
    pull(d, url, 1, "certificate", sha);
    pull(d, url, 1, "--ca-bundle", sha);
    expect_no_models(d);
    const char *trusted[] = {"--sha256", hub_sha256(&g.hub, "stories"), "--ca-bundle",
                             cert, NULL};
    json_decref(pull(d, url, 0, NULL, trusted));
    expect_stored(d, "stories260K", "url", 1);
    h_stop(server);
    free(d);
    free(link);
    free(cert);
    free(key);
    free(www);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_hf_whole_repository),
        cmocka_unit_test(test_hf_single_files),
        cmocka_unit_test(test_blobs_in_store_not_fetched_again),
        cmocka_unit_test(test_hf_token_and_redirects),
        cmocka_unit_test(test_ollama_model),
        cmocka_unit_test(test_url_with_digest),
        cmocka_unit_test(test_not_found_and_server_errors),
        cmocka_unit_test(test_truncated_body_then_resume),
        cmocka_unit_test(test_wrong_digest),
        cmocka_unit_test(test_more_bytes_than_stated),
        cmocka_unit_test(test_partials_that_do_not_fit),
        cmocka_unit_test(test_killed_pull_resumes),
        cmocka_unit_test(test_stalled_server),
        cmocka_unit_test(test_two_pulls_of_one_blob),
        cmocka_unit_test(test_bad_sources_change_nothing),
        cmocka_unit_test(test_tls_verification),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
