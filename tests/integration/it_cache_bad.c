/*
 * it_cache_bad.c — the store facing broken and hostile input: corrupt
 * Ollama manifests, HF snapshot symlinks that loop, dangle or point out of
 * their repository, files and folders it may not read, and names such as
 * ../../etc/passwd. Each gets a sentence that says what is wrong, the rest
 * of the scan goes on, and nothing anywhere is deleted or changed.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>
#include <jansson.h>

#include "tests/integration/harness.h"
#include "tests/integration/trees.h"
#include "tests/support/testutil.h"

#define TIMEOUT_MS 60000
#define NOBODY     65534

static char *dir, *data, *hf, *ollama, *plain, *locked_dir;
static void *gguf;
static size_t gguf_len;

/* Every regular file of the fixture and its digest, taken before the runs. */
static struct {
    char path[64][1024];
    char sha[64][65];
    size_t n;
} before;

static void remember(const char *path)
{
    snprintf(before.path[before.n], sizeof before.path[0], "%s", path);
    if (!tree_sha256_file(path, before.sha[before.n]))
        before.sha[before.n][0] = '\0'; /* unreadable on purpose: check it exists */
    before.n++;
}

static void write_file(const char *rel, const void *bytes, size_t len)
{
    char *path = test_join(dir, rel);
    tree_write(path, bytes, len);
    remember(path);
    free(path);
}

static void symlink_at(const char *target, const char *rel)
{
    char *path = test_join(dir, rel);
    char parent[1024];
    snprintf(parent, sizeof parent, "%s", path);
    *strrchr(parent, '/') = '\0';
    tree_mkdirs(parent);
    assert_int_equal(symlink(target, path), 0);
    free(path);
}

#define HEX "3333333333333333333333333333333333333333333333333333333333333333"

static void build(void)
{
    /* Ollama: one good model, then manifests that are wrong in every way. */
    tree_layer layer = {"application/vnd.ollama.image.model", gguf, gguf_len};
    tree_ollama_model(ollama, "good", "latest", &layer, 1);
    char sha[65], m[1024];
    tree_sha256(gguf, gguf_len, sha);
    write_file("ollama/manifests/registry.ollama.ai/library/notjson/latest", "{not json",
               9);
    static const char v1[] = "{\"schemaVersion\":1,\"layers\":[]}";
    write_file("ollama/manifests/registry.ollama.ai/library/oldschema/latest", v1,
               sizeof v1 - 1);
    int n = snprintf(m, sizeof m,
                     "{\"schemaVersion\":2,\"config\":{\"mediaType\":\"c\",\"digest\":"
                     "\"sha256:%s\",\"size\":%zu},\"layers\":[{\"mediaType\":"
                     "\"application/vnd.ollama.image.model\",\"digest\":\"sha256:" HEX
                     "\",\"size\":10}]}",
                     sha, gguf_len);
    write_file("ollama/manifests/registry.ollama.ai/library/missingblob/latest", m,
               (size_t)n);
    n = snprintf(m, sizeof m,
                 "{\"schemaVersion\":2,\"config\":{\"mediaType\":\"c\",\"digest\":"
                 "\"sha256:%s\",\"size\":7},\"layers\":[{\"mediaType\":\"m\",\"digest\":"
                 "\"sha256:%s\",\"size\":7}]}",
                 sha, sha);
    write_file("ollama/manifests/registry.ollama.ai/library/sizelie/latest", m,
               (size_t)n);
    static const char baddigest[] = "{\"schemaVersion\":2,\"config\":{\"mediaType\":"
                                    "\"c\",\"digest\":\"sha256:../../x\","
                                    "\"size\":1},\"layers\":[{\"mediaType\":\"m\","
                                    "\"digest\":\"sha256:zz\",\"size\":1}]}";
    write_file("ollama/manifests/registry.ollama.ai/library/baddigest/latest", baddigest,
               sizeof baddigest - 1);
    write_file("ollama/manifests/registry.ollama.ai/stray", "x", 1);

    /* HF: a good repository, then snapshots whose links go wrong. */
    tree_file good = {"model.gguf", gguf, gguf_len, true};
    tree_hf_repo(hf, "org", "good", "1111", true, &good, 1);
    write_file("hf/models--evil--escape/refs/main", "1111", 4);
    symlink_at("/etc/passwd", "hf/models--evil--escape/snapshots/1111/model.gguf");
    char other[256];
    snprintf(other, sizeof other, "../../../models--org--good/blobs/%s", sha);
    symlink_at(other, "hf/models--evil--escape/snapshots/1111/b.gguf");
    /* The link has HF's own shape, but the blob it names is a symlink out. */
    write_file("hf/models--evil--blobjump/refs/main", "1111", 4);
    symlink_at("/etc/passwd", "hf/models--evil--blobjump/blobs/" HEX);
    symlink_at("../../blobs/" HEX, "hf/models--evil--blobjump/snapshots/1111/m.gguf");
    write_file("hf/models--evil--loop/refs/main", "1111", 4);
    symlink_at("b.gguf", "hf/models--evil--loop/snapshots/1111/a.gguf");
    symlink_at("a.gguf", "hf/models--evil--loop/snapshots/1111/b.gguf");
    write_file("hf/models--evil--dangling/refs/main", "1111", 4);
    symlink_at("../../blobs/" HEX, "hf/models--evil--dangling/snapshots/1111/m.gguf");
    write_file("hf/models--a--../refs/main", "1111", 4);
    write_file("hf/models--a--../snapshots/1111/m.gguf", "GGUF", 4);

    /* A plain folder: a file of the same size as another that may not be
     * read (so it has to be hashed and cannot be), and a folder that may
     * not be opened. */
    write_file("plain/ok.gguf", gguf, gguf_len);
    char *locked = test_join(plain, "locked.gguf");
    tree_write(locked, gguf, gguf_len);
    assert_int_equal(chmod(locked, 0), 0);
    remember(locked);
    free(locked);
    locked_dir = test_join(plain, "closed");
    tree_mkdirs(locked_dir);
    char *inner = test_join(locked_dir, "inner.gguf");
    tree_write(inner, gguf, gguf_len);
    remember(inner);
    free(inner);
    assert_int_equal(chmod(locked_dir, 0), 0);
}

static int group_setup(void **state)
{
    char *model = test_testdata("stories260K.gguf");
    if (model == NULL) {
        fprintf(stderr,
                "skipped: the shared test models (../shared/testdata) are absent\n");
        exit(TEST_SKIP);
    }
    gguf = tree_read(model, &gguf_len);
    free(model);
    dir = test_tmpdir("it-cache-bad");
    chmod(dir, 0755);
    data = test_join(dir, "data");
    hf = test_join(dir, "hf");
    ollama = test_join(dir, "ollama");
    plain = test_join(dir, "plain");
    build();
    /* As root every file is readable: run the agent as nobody, who owns
     * its data directory and may read all but the locked files. */
    if (geteuid() == 0) {
        tree_mkdirs(data);
        assert_int_equal(chown(data, NOBODY, NOBODY), 0);
    }
    return 0;
}

static int group_teardown(void **state)
{
    chmod(locked_dir, 0755);
    test_tmpdir_remove(dir);
    free(gguf);
    return 0;
}

static int run_cache(const char *const *args, char **out, char **err)
{
    if (geteuid() == 0)
        return h_run_as(NOBODY, NOBODY, "mlx-agent", args, TIMEOUT_MS, out, err);
    return h_run("mlx-agent", args, TIMEOUT_MS, out, err);
}

static void check_nothing_changed(void)
{
    chmod(locked_dir, 0755);
    for (size_t i = 0; i < before.n; i++) {
        char now[65];
        if (before.sha[i][0] == '\0') {
            assert_int_equal(access(before.path[i], F_OK), 0);
            continue;
        }
        if (!tree_sha256_file(before.path[i], now))
            fail_msg("%s is gone: %s", before.path[i], strerror(errno));
        if (strcmp(now, before.sha[i]) != 0)
            fail_msg("%s changed", before.path[i]);
    }
    chmod(locked_dir, 0);
}

/* The problem sentence that mentions needle, or a failure naming it. */
static const char *problem(json_t *problems, const char *needle)
{
    size_t i;
    json_t *p;
    json_array_foreach(problems, i, p)
    {
        if (strstr(json_string_value(p), needle) != NULL)
            return json_string_value(p);
    }
    fail_msg("no problem sentence mentions '%s'", needle);
    return NULL;
}

static void test_scan_says_what_is_wrong_and_goes_on(void **state)
{
    for (int round = 0; round < 2; round++) { /* dedup --apply must not change it */
        const char *args[] = {"cache",   round == 0 ? "scan" : "dedup",
                              "--apply", "--data",
                              data,      "--hf",
                              hf,        "--ollama",
                              ollama,    "--dir",
                              plain,     "--json",
                              NULL};
        if (round == 0)
            memmove(&args[2], &args[3], sizeof args - 3 * sizeof args[0]);
        char *out = NULL, *err = NULL;
        int status = run_cache(args, &out, &err);
        if (status != 0)
            fail_msg("exit %d: %s", status, err);
        json_t *v = json_loads(out, 0, NULL);
        assert_non_null(v);
        if (round == 1) {
            /* Three good copies: two replaced, or left alone with a reason
             * where the agent may not write (it runs as nobody under root). */
            assert_int_equal(
                json_integer_value(json_object_get(v, "replaced")) +
                    (json_int_t)json_array_size(json_object_get(v, "skipped")),
                2);
            json_decref(v);
            free(out);
            free(err);
            break;
        }
        json_t *p = json_object_get(v, "problems");
        assert_non_null(strstr(problem(p, "notjson"), "line 1"));
        assert_non_null(strstr(problem(p, "oldschema"), "schemaVersion 1 is not 2"));
        assert_non_null(strstr(problem(p, "'missingblob:latest'"), "which is missing"));
        assert_non_null(strstr(problem(p, "'sizelie:latest' says 7"), "bytes"));
        assert_non_null(strstr(problem(p, "baddigest"), "not sha256:"));
        assert_non_null(strstr(problem(p, "/stray"), "not where a manifest belongs"));
        assert_non_null(strstr(problem(p, "evil--escape/snapshots/1111/model.gguf"),
                               "outside its repository"));
        assert_non_null(strstr(problem(p, "evil--escape/snapshots/1111/b.gguf"),
                               "outside its repository"));
        assert_non_null(strstr(problem(p, "evil--blobjump/snapshots/1111/m.gguf"),
                               "outside its repository"));
        assert_non_null(strstr(problem(p, "evil--loop"), "looping symlink"));
        assert_non_null(strstr(problem(p, "evil--dangling"), "dangling"));
        assert_non_null(strstr(problem(p, "'hf:a/..'"), "not a usable model name"));
        assert_non_null(strstr(problem(p, "locked.gguf"), "Permission denied"));
        assert_non_null(strstr(problem(p, "closed"), "Permission denied"));
        /* The good models are still found, and nothing else. */
        json_t *models = json_object_get(v, "models");
        size_t i;
        json_t *m;
        json_array_foreach(models, i, m)
        {
            const char *name = json_string_value(json_object_get(m, "name"));
            if (strcmp(name, "good:latest") != 0 && strcmp(name, "hf:org/good") != 0 &&
                strcmp(name, "local:ok") != 0 && strcmp(name, "local:locked") != 0)
                fail_msg("'%s' should not have been taken for a model", name);
        }
        json_decref(v);
        free(out);
        free(err);
    }
    check_nothing_changed();
}

static void test_doctor_lists_each_problem(void **state)
{
    const char *args[] = {"cache",    "doctor", "--data", data,  "--hf",   hf,
                          "--ollama", ollama,   "--dir",  plain, "--json", NULL};
    char *out = NULL, *err = NULL;
    run_cache(args, &out, &err);
    json_t *v = json_loads(out, 0, NULL);
    assert_non_null(v);
    size_t i, caches = 0;
    json_t *f;
    json_array_foreach(json_object_get(v, "findings"), i, f)
    {
        if (strcmp(json_string_value(json_object_get(f, "check")), "caches") == 0) {
            caches++;
            assert_string_equal(json_string_value(json_object_get(f, "level")), "warn");
            assert_non_null(json_string_value(json_object_get(f, "fix")));
        }
    }
    assert_true(caches >= 10);
    json_decref(v);
    free(out);
    free(err);
    check_nothing_changed();
}

static void test_bad_names_are_refused(void **state)
{
    char *model = test_join(plain, "ok.gguf");
    static const char *const names[] = {"../../etc/passwd", "/etc/passwd", "a b",
                                        "x/../y", ""};
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        const char *add[] = {"cache",  "add",    model, "--name",
                             names[i], "--data", data,  NULL};
        const char *rm[] = {"cache", "rm", names[i], "--data", data, NULL};
        const char *st[] = {"cache", "status", names[i], "--data", data, NULL};
        const char *const *cmds[] = {add, rm, st};
        for (size_t c = 0; c < 3; c++) {
            if (names[i][0] == '\0' && c > 0)
                continue; /* an empty positional is another mistake */
            char *err = NULL;
            int status = run_cache(cmds[c], NULL, &err);
            if (status != 2)
                fail_msg("'%s' with name '%s': exit %d, %s", cmds[c][1], names[i], status,
                         err);
            assert_non_null(strstr(err, "mlx-agent: "));
            assert_true(strlen(err) > 30);
            free(err);
        }
    }
    free(model);
    /* Nothing was added. */
    const char *args[] = {"cache", "status", "--data", data, "--json", NULL};
    char *out = NULL;
    assert_int_equal(run_cache(args, &out, NULL), 0);
    json_t *v = json_loads(out, 0, NULL);
    size_t i;
    json_t *m;
    json_array_foreach(json_object_get(v, "models"), i, m)
    {
        assert_string_not_equal(json_string_value(json_object_get(m, "source")), "local");
    }
    json_decref(v);
    free(out);
    check_nothing_changed();
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_scan_says_what_is_wrong_and_goes_on),
        cmocka_unit_test(test_doctor_lists_each_problem),
        cmocka_unit_test(test_bad_names_are_refused),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
