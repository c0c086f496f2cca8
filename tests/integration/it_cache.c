/*
 * it_cache.c — `mlx-agent cache scan`, `dedup`, `status` and `verify` on a
 * HuggingFace cache, an Ollama store and a plain folder built here as those
 * tools build them, holding real GGUF bytes from ../shared/testdata. One
 * model is in all three; another has the same size but other bytes.
 *
 * Expected values come from the fixture itself (file sizes, digests taken
 * with OpenSSL here), never from the program under test.
 */
#include <errno.h>
#include <fcntl.h>
#include <linux/fiemap.h>
#include <linux/fs.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <unistd.h>

#include <cmocka.h>
#include <jansson.h>

#include "tests/integration/harness.h"
#include "tests/integration/trees.h"
#include "tests/support/testutil.h"

#define TIMEOUT_MS 60000
#define REV_MAIN   "1111111111111111111111111111111111111111"
#define REV_OLD    "2222222222222222222222222222222222222222"

static void *stories, *q4, *q8;
static size_t stories_len, q4_len, q8_len;
static char stories_sha[65];

struct fx {
    char *dir, *data, *hf, *ollama, *plain;
};

/* Every file under the fixture, with its digest, to prove nothing was lost. */
struct snapshot {
    char path[64][1024];
    char sha[64][65];
    size_t n;
};

static void take(struct snapshot *s, const char *path)
{
    assert_true(s->n < 64);
    snprintf(s->path[s->n], sizeof s->path[0], "%s", path);
    assert_true(tree_sha256_file(path, s->sha[s->n]));
    s->n++;
}

static void check_unchanged(const struct snapshot *s)
{
    for (size_t i = 0; i < s->n; i++) {
        char now[65];
        if (!tree_sha256_file(s->path[i], now))
            fail_msg("%s can no longer be read: %s", s->path[i], strerror(errno));
        if (strcmp(now, s->sha[i]) != 0)
            fail_msg("%s changed: %s, was %s", s->path[i], now, s->sha[i]);
    }
}

static char *path_of(const char *dir, const char *rel)
{
    return test_join(dir, rel);
}

static int group_setup(void **state)
{
    char *a = test_testdata("stories260K.gguf"), *b = test_testdata("syn256-q4_0.gguf"),
         *c = test_testdata("syn256-q8_0.gguf");
    if (a == NULL || b == NULL || c == NULL) {
        fprintf(stderr,
                "skipped: the shared test models (../shared/testdata) are absent\n");
        exit(TEST_SKIP);
    }
    stories = tree_read(a, &stories_len);
    q4 = tree_read(b, &q4_len);
    q8 = tree_read(c, &q8_len);
    tree_sha256(stories, stories_len, stories_sha);
    free(a);
    free(b);
    free(c);
    return 0;
}

static int setup(void **state)
{
    struct fx *f = calloc(1, sizeof *f);
    f->dir = test_tmpdir("it-cache");
    chmod(f->dir, 0755); /* a test that runs the agent as another user needs in */
    f->data = path_of(f->dir, "data");
    f->hf = path_of(f->dir, "hf");
    f->ollama = path_of(f->dir, "ollama");
    f->plain = path_of(f->dir, "plain");
    tree_mkdirs(f->hf);
    tree_mkdirs(f->ollama);
    tree_mkdirs(f->plain);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fx *f = *state;
    test_tmpdir_remove(f->dir);
    free(f->data);
    free(f->hf);
    free(f->ollama);
    free(f->plain);
    free(f);
    return 0;
}

/* The stories model in all three places, plus one model only in each tool. */
static void build(struct fx *f, struct snapshot *snap)
{
    static const char config[] = "{\"architectures\":[\"LlamaForCausalLM\"]}";
    tree_file hf_files[] = {{"stories260K.gguf", stories, stories_len, true},
                            {"config.json", config, sizeof config - 1, false}};
    tree_hf_repo(f->hf, "ggml-org", "stories260K", REV_OLD, false, hf_files + 1, 1);
    tree_hf_repo(f->hf, "ggml-org", "stories260K", REV_MAIN, true, hf_files, 2);
    tree_file q4_file = {"gguf/syn256-q4_0.gguf", q4, q4_len, true};
    tree_hf_repo(f->hf, "ggml-org", "syn256", REV_MAIN, true, &q4_file, 1);

    static const char template[] = "{{ .Prompt }}", params[] = "{\"stop\":[\"</s>\"]}";
    tree_layer layers[] = {
        {"application/vnd.ollama.image.model", stories, stories_len},
        {"application/vnd.ollama.image.template", template, sizeof template - 1},
        {"application/vnd.ollama.image.params", params, sizeof params - 1},
    };
    tree_ollama_model(f->ollama, "stories", "latest", layers, 3);
    tree_layer q8_layer = {"application/vnd.ollama.image.model", q8, q8_len};
    tree_ollama_model(f->ollama, "synq8", "latest", &q8_layer, 1);

    char *copy = path_of(f->plain, "stories.gguf"),
         *flipped = path_of(f->plain, "flip.gguf");
    tree_write(copy, stories, stories_len);
    /* Same size, other bytes: hashed, never taken for a duplicate. */
    ((unsigned char *)stories)[stories_len / 2] ^= 0xff;
    tree_write(flipped, stories, stories_len);
    ((unsigned char *)stories)[stories_len / 2] ^= 0xff;
    free(copy);
    free(flipped);

    if (snap != NULL) {
        char path[1024];
        snprintf(path, sizeof path, "%s/models--ggml-org--stories260K/snapshots/%s/%s",
                 f->hf, REV_MAIN, "stories260K.gguf");
        take(snap, path);
        snprintf(path, sizeof path, "%s/models--ggml-org--stories260K/snapshots/%s/%s",
                 f->hf, REV_MAIN, "config.json");
        take(snap, path);
        snprintf(path, sizeof path, "%s/models--ggml-org--syn256/snapshots/%s/%s", f->hf,
                 REV_MAIN, "gguf/syn256-q4_0.gguf");
        take(snap, path);
        snprintf(path, sizeof path, "%s/blobs/sha256-%s", f->ollama, stories_sha);
        take(snap, path);
        snprintf(path, sizeof path, "%s/stories.gguf", f->plain);
        take(snap, path);
        snprintf(path, sizeof path, "%s/flip.gguf", f->plain);
        take(snap, path);
    }
}

/* Runs `mlx-agent cache <words…> --json --data D [--hf H --ollama O --dir P]`
 * and returns its JSON; *status gets the exit status. */
static json_t *cache_json(const struct fx *f, const char *const *words, int *status)
{
    const char *args[24];
    size_t n = 0;
    args[n++] = "cache";
    for (; *words != NULL; words++)
        args[n++] = *words;
    /* Only the commands that read the other tools' caches take their roots. */
    bool roots = strcmp(args[1], "scan") == 0 || strcmp(args[1], "dedup") == 0 ||
                 strcmp(args[1], "doctor") == 0;
    const char *rest[] = {"--json",   "--data",  f->data, "--hf",   f->hf,
                          "--ollama", f->ollama, "--dir", f->plain, NULL};
    for (size_t i = 0; rest[i] != NULL && (roots || i < 3); i++)
        args[n++] = rest[i];
    args[n] = NULL;
    char *out = NULL, *err = NULL;
    *status = h_run("mlx-agent", args, TIMEOUT_MS, &out, &err);
    json_error_t je;
    json_t *v = json_loads(out, 0, &je);
    if (v == NULL)
        fail_msg("cache %s printed no JSON (exit %d): %s / %s", args[1], *status, out,
                 err);
    free(out);
    free(err);
    return v;
}

static json_t *find_model(json_t *models, const char *name)
{
    size_t i;
    json_t *m;
    json_array_foreach(models, i, m)
    {
        if (strcmp(json_string_value(json_object_get(m, "name")), name) == 0)
            return m;
    }
    fail_msg("no model '%s' in the answer", name);
    return NULL;
}

static int64_t int_of(json_t *obj, const char *key)
{
    json_t *v = json_object_get(obj, key);
    if (!json_is_integer(v))
        fail_msg("'%s' is not an integer", key);
    return json_integer_value(v);
}

static void test_scan_finds_every_model_and_the_duplicate(void **state)
{
    struct fx *f = *state;
    build(f, NULL);
    int status;
    json_t *v = cache_json(f, (const char *[]){"scan", NULL}, &status);
    assert_int_equal(status, 0);
    json_t *models = json_object_get(v, "models");
    assert_int_equal(json_array_size(models), 6);

    json_t *m = find_model(models, "hf:ggml-org/stories260K");
    assert_string_equal(json_string_value(json_object_get(m, "source")), "hf-cache");
    assert_string_equal(json_string_value(json_object_get(m, "format")), "gguf");
    /* main's snapshot: the model and its config, not the older revision's. */
    assert_int_equal(json_array_size(json_object_get(m, "files")), 2);
    static const size_t config_len =
        sizeof "{\"architectures\":[\"LlamaForCausalLM\"]}" - 1;
    assert_int_equal(int_of(m, "size_bytes"), (int64_t)(stories_len + config_len));
    m = find_model(models, "hf:ggml-org/syn256");
    assert_int_equal(int_of(m, "size_bytes"), (int64_t)q4_len);
    m = find_model(models, "stories:latest");
    assert_string_equal(json_string_value(json_object_get(m, "source")), "ollama-cache");
    assert_string_equal(json_string_value(json_object_get(m, "format")), "gguf");
    assert_int_equal(json_array_size(json_object_get(m, "files")), 4);
    find_model(models, "synq8:latest");
    find_model(models, "local:stories");
    find_model(models, "local:flip");

    json_t *dups = json_object_get(v, "duplicates");
    assert_int_equal(json_array_size(dups), 1);
    json_t *set = json_array_get(dups, 0);
    assert_string_equal(json_string_value(json_object_get(set, "sha256")), stories_sha);
    assert_int_equal(json_array_size(json_object_get(set, "copies")), 3);
    assert_int_equal(int_of(set, "reclaimable_bytes"), (int64_t)(2 * stories_len));
    assert_int_equal(int_of(v, "reclaimable_bytes"), (int64_t)(2 * stories_len));
    assert_int_equal(json_array_size(json_object_get(v, "problems")), 0);
    json_decref(v);
}

/* True when a and b share their bytes on disk: one inode, or extents the
 * file system marks shared (a clone). */
static bool share_storage(const char *a, const char *b)
{
    struct stat sa, sb;
    if (stat(a, &sa) != 0 || stat(b, &sb) != 0)
        return false;
    if (sa.st_ino == sb.st_ino && sa.st_dev == sb.st_dev)
        return true;
    int fd = open(a, O_RDONLY);
    struct {
        struct fiemap map;
        struct fiemap_extent ext[1];
    } q = {.map = {.fm_length = ~0ull, .fm_extent_count = 1}};
    bool shared = fd >= 0 && ioctl(fd, FS_IOC_FIEMAP, &q) == 0 &&
                  q.map.fm_mapped_extents > 0 &&
                  (q.map.fm_extents[0].fe_flags & FIEMAP_EXTENT_SHARED);
    if (fd >= 0)
        close(fd);
    return shared;
}

static void test_dedup_gives_back_the_bytes_and_keeps_every_file(void **state)
{
    struct fx *f = *state;
    struct snapshot snap = {0};
    build(f, &snap);

    int status;
    json_t *v = cache_json(f, (const char *[]){"dedup", NULL}, &status);
    assert_int_equal(status, 0);
    assert_false(json_is_true(json_object_get(v, "applied")));
    assert_int_equal(int_of(v, "given_back_bytes"), 0);
    json_decref(v);
    /* A dry run touches nothing. */
    assert_false(share_storage(snap.path[0], snap.path[3]));

    v = cache_json(f, (const char *[]){"dedup", "--apply", NULL}, &status);
    assert_int_equal(status, 0);
    assert_int_equal(int_of(v, "given_back_bytes"), (int64_t)(2 * stories_len));
    assert_int_equal(int_of(v, "replaced"), 2);
    assert_int_equal(json_array_size(json_object_get(v, "skipped")), 0);
    json_decref(v);

    /* Every file of both trees reads back as before, through HF's snapshot
     * symlinks and Ollama's blob names, and the copies share their bytes. */
    check_unchanged(&snap);
    assert_true(share_storage(snap.path[0], snap.path[3]));
    assert_true(share_storage(snap.path[0], snap.path[4]));
    assert_false(share_storage(snap.path[0], snap.path[5]));
    char link[1024];
    assert_true(readlink(snap.path[0], link, sizeof link) > 0); /* still a symlink */

    v = cache_json(f, (const char *[]){"scan", NULL}, &status);
    assert_int_equal(status, 0);
    assert_int_equal(json_array_size(json_object_get(v, "duplicates")), 0);
    assert_int_equal(int_of(v, "reclaimable_bytes"), 0);
    json_decref(v);

    v = cache_json(f, (const char *[]){"verify", NULL}, &status);
    assert_int_equal(status, 0);
    assert_true(json_is_true(json_object_get(v, "ok")));
    json_decref(v);

    v = cache_json(f, (const char *[]){"status", NULL}, &status);
    assert_int_equal(status, 0);
    assert_int_equal(int_of(v, "dedup_given_back_bytes"), (int64_t)(2 * stories_len));
    assert_int_equal(json_array_size(json_object_get(v, "models")), 6);
    json_decref(v);
}

/* A digest remembered for a file whose size, mtime and inode did not change
 * is trusted by scan (it reads nothing twice), but dedup compares the bytes
 * before it replaces anything, so a stale digest costs nothing. */
static void test_remembered_digests_are_used_but_never_trusted_to_destroy(void **state)
{
    struct fx *f = *state;
    struct snapshot snap = {0};
    build(f, &snap);
    /* A second link makes HF's copy the one dedup keeps (the most linked). */
    char *extra = path_of(f->dir, "extra-link");
    char hf_blob[1024];
    snprintf(hf_blob, sizeof hf_blob, "%s/models--ggml-org--stories260K/blobs/%s", f->hf,
             stories_sha);
    assert_int_equal(link(hf_blob, extra), 0);
    free(extra);
    int status;
    json_decref(cache_json(f, (const char *[]){"scan", NULL}, &status));
    assert_int_equal(status, 0);

    /* Change the plain copy's bytes behind the store's back, keeping its
     * size and mtime. */
    const char *copy = snap.path[4];
    struct stat st;
    assert_int_equal(stat(copy, &st), 0);
    int fd = open(copy, O_WRONLY);
    assert_true(fd >= 0);
    assert_int_equal(pwrite(fd, "X", 1, 100), 1);
    struct timespec times[2] = {st.st_atim, st.st_mtim};
    assert_int_equal(futimens(fd, times), 0);
    close(fd);
    char changed[65];
    assert_true(tree_sha256_file(copy, changed));

    json_t *v = cache_json(f, (const char *[]){"scan", NULL}, &status);
    json_t *set = json_array_get(json_object_get(v, "duplicates"), 0);
    assert_int_equal(json_array_size(json_object_get(set, "copies")),
                     3); /* not re-read */
    json_decref(v);

    v = cache_json(f, (const char *[]){"dedup", "--apply", NULL}, &status);
    assert_int_equal(status, 0);
    assert_int_equal(int_of(v, "replaced"), 1); /* Ollama's copy, which still matched */
    json_t *skipped = json_object_get(v, "skipped");
    assert_int_equal(json_array_size(skipped), 1);
    assert_string_equal(
        json_string_value(json_object_get(json_array_get(skipped, 0), "path")), copy);
    json_decref(v);
    char now[65];
    assert_true(tree_sha256_file(copy, now));
    assert_string_equal(now, changed);
    assert_false(share_storage(snap.path[0], copy));
    assert_true(share_storage(snap.path[0], snap.path[3]));
}

static void test_verify_reports_a_corrupt_file_of_another_tool_in_place(void **state)
{
    struct fx *f = *state;
    build(f, NULL);
    int status;
    json_decref(cache_json(f, (const char *[]){"scan", NULL}, &status));
    char q8_sha[65], path[1024];
    tree_sha256(q8, q8_len, q8_sha);
    snprintf(path, sizeof path, "%s/blobs/sha256-%s", f->ollama, q8_sha);
    int fd = open(path, O_WRONLY);
    assert_int_equal(pwrite(fd, "\0\0\0\0", 4, 4096), 4);
    close(fd);

    json_t *v = cache_json(f, (const char *[]){"verify", NULL}, &status);
    assert_int_equal(status, 1);
    assert_false(json_is_true(json_object_get(v, "ok")));
    json_t *problems = json_object_get(v, "problems");
    assert_int_equal(json_array_size(problems), 1);
    json_t *p = json_array_get(problems, 0);
    assert_string_equal(json_string_value(json_object_get(p, "kind")), "corrupt");
    assert_string_equal(json_string_value(json_object_get(p, "path")), path);
    assert_string_equal(json_string_value(json_object_get(p, "expected_sha256")), q8_sha);
    assert_string_equal(json_string_value(json_object_get(p, "models")), "synq8:latest");
    assert_true(json_is_null(json_object_get(p, "quarantined_to")) ||
                json_object_get(p, "quarantined_to") == NULL);
    json_decref(v);
    assert_int_equal(access(path, F_OK), 0); /* Ollama's file stays where it is */

    v = cache_json(f, (const char *[]){"status", NULL}, &status);
    json_t *m = find_model(json_object_get(v, "models"), "synq8:latest");
    assert_true(json_is_true(json_object_get(m, "broken")));
    json_decref(v);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_scan_finds_every_model_and_the_duplicate,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(
            test_dedup_gives_back_the_bytes_and_keeps_every_file, setup, teardown),
        cmocka_unit_test_setup_teardown(
            test_remembered_digests_are_used_but_never_trusted_to_destroy, setup,
            teardown),
        cmocka_unit_test_setup_teardown(
            test_verify_reports_a_corrupt_file_of_another_tool_in_place, setup, teardown),
    };
    return cmocka_run_group_tests(tests, group_setup, NULL);
}
