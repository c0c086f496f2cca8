/*
 * test_cache_store.c — the store's own rules, through its internal API:
 * blobs are named by their bytes, models need their blobs, gc evicts the
 * least recently used unpinned models and keeps what a process uses, a
 * sweep waits for pulls, verify quarantines corrupt blobs, and other
 * processes' open and mapped files are seen.
 */
#include <fcntl.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "agent/cache/internal.h"
#include "common/db.h"
#include "common/sha256.h"
#include "tests/support/testutil.h"

struct fx {
    char *dir;
    store *s;
};

/* Children holding files open; killed in teardown even when an assertion
 * ended the test early. */
static pid_t holders[4];

static int setup(void **state)
{
    struct fx *f = calloc(1, sizeof *f);
    f->dir = test_tmpdir("cache-store");
    mlx_err err;
    if (store_open(f->dir, &f->s, &err) != 0) {
        fprintf(stderr, "%s\n", err.msg);
        return -1;
    }
    *state = f;
    return 0;
}

static void stop(pid_t pid)
{
    for (size_t i = 0; i < sizeof holders / sizeof holders[0]; i++)
        if (holders[i] == pid)
            holders[i] = 0;
    kill(pid, SIGKILL);
    waitpid(pid, NULL, 0);
}

static int teardown(void **state)
{
    struct fx *f = *state;
    for (size_t i = 0; i < sizeof holders / sizeof holders[0]; i++)
        if (holders[i] > 0)
            stop(holders[i]);
    store_close(f->s);
    test_tmpdir_remove(f->dir);
    free(f);
    return 0;
}

/* Puts n bytes of a pattern seeded by seed into the store; hex gets the digest. */
static void put(store *s, int seed, size_t n, char hex[MLX_SHA256_HEX])
{
    unsigned char *bytes = malloc(n);
    for (size_t i = 0; i < n; i++)
        bytes[i] = (unsigned char)(seed * 31 + i * 7);
    uint8_t digest[MLX_SHA256_LEN];
    assert_int_equal(mlx_sha256_buf(bytes, n, digest, NULL), 0);
    mlx_sha256_hex(digest, hex);
    char tmp[4096];
    snprintf(tmp, sizeof tmp, "%s/put-%d", store_tmp_dir(s), seed);
    FILE *fp = fopen(tmp, "wb");
    assert_non_null(fp);
    assert_int_equal(fwrite(bytes, 1, n, fp), n);
    fclose(fp);
    free(bytes);
    mlx_err err;
    mlx_err_clear(&err);
    if (store_put_blob(s, tmp, hex, n, &err) != 0)
        fail_msg("%s", err.msg);
}

static void add_model(store *s, const char *name, const char *const *hexes,
                      const uint64_t *sizes, size_t n)
{
    store_file files[4];
    assert_true(n <= 4);
    for (size_t i = 0; i < n; i++) {
        static const char *const paths[] = {"model.gguf", "config.json", "a.bin",
                                            "b.bin"};
        files[i].path = paths[i];
        memcpy(files[i].sha256, hexes[i], MLX_SHA256_HEX);
        files[i].size = sizes[i];
    }
    store_model m = {.name = name,
                     .source = STORE_SRC_LOCAL,
                     .origin = "test",
                     .format = "gguf",
                     .files = files,
                     .n_files = n};
    mlx_err err;
    mlx_err_clear(&err);
    if (store_add_model(s, &m, &err) != 0)
        fail_msg("%s", err.msg);
}

static void set_last_use(store *s, const char *name, int64_t ms)
{
    char sql[256];
    snprintf(sql, sizeof sql,
             "UPDATE models SET last_used_unix_ms = %lld WHERE name = '%s'",
             (long long)ms, name);
    assert_int_equal(mlx_db_exec(s->db, sql, NULL), 0);
}

static void test_blob_named_by_content(void **state)
{
    struct fx *f = *state;
    char hex[MLX_SHA256_HEX], path[4096];
    put(f->s, 1, 1000, hex);
    assert_true(store_has_blob(f->s, hex));
    store_blob_path(f->s, hex, path, sizeof path);
    char got[MLX_SHA256_HEX];
    assert_int_equal(cache_hash_path(path, got, NULL), 0);
    assert_string_equal(got, hex);
    /* The same bytes again: one blob, the temp file gone. */
    put(f->s, 1, 1000, hex);
    char tmp[4096];
    snprintf(tmp, sizeof tmp, "%s/put-1", store_tmp_dir(f->s));
    assert_int_equal(access(tmp, F_OK), -1);
}

static void test_blob_size_must_match(void **state)
{
    struct fx *f = *state;
    char tmp[4096];
    snprintf(tmp, sizeof tmp, "%s/short", store_tmp_dir(f->s));
    test_write_file(tmp, "abc");
    mlx_err err;
    mlx_err_clear(&err);
    assert_int_equal(
        store_put_blob(f->s, tmp,
                       "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff6"
                       "1f20015ad",
                       4, &err),
        MLX_ECORRUPT);
    assert_non_null(strstr(err.msg, "3 bytes where 4"));
    assert_int_equal(store_put_blob(f->s, tmp, "not-a-digest", 3, &err), MLX_EINVAL);
}

static void test_model_needs_its_blobs(void **state)
{
    struct fx *f = *state;
    store_file file = {.path = "model.gguf",
                       .sha256 =
                           "0000000000000000000000000000000000000000000000000000000000"
                           "000000",
                       .size = 1};
    store_model m = {
        .name = "ghost", .origin = "t", .format = "gguf", .files = &file, .n_files = 1};
    mlx_err err;
    mlx_err_clear(&err);
    assert_int_equal(store_add_model(f->s, &m, &err), MLX_ENOENT);
    assert_non_null(strstr(err.msg, "not in the store"));
    file.path = "../escape";
    assert_int_equal(store_add_model(f->s, &m, &err), MLX_EINVAL);
    m.name = "../../etc/passwd";
    assert_int_equal(store_add_model(f->s, &m, &err), MLX_EINVAL);
    cache_model_list l;
    assert_int_equal(cache_list_models(f->s, NULL, &l, NULL), 0);
    assert_int_equal(l.n, 0);
    cache_model_list_free(&l);
}

static void test_list_remove_pin(void **state)
{
    struct fx *f = *state;
    char a[MLX_SHA256_HEX], b[MLX_SHA256_HEX];
    put(f->s, 1, 100, a);
    put(f->s, 2, 200, b);
    const char *both[] = {a, b};
    const uint64_t sizes[] = {100, 200};
    add_model(f->s, "m:two", both, sizes, 2);
    add_model(f->s, "m:one", both, sizes, 1);

    cache_model_list l;
    assert_int_equal(cache_list_models(f->s, NULL, &l, NULL), 0);
    assert_int_equal(l.n, 2);
    assert_string_equal(l.items[0].name, "m:one");
    assert_string_equal(l.items[1].name, "m:two");
    assert_true(l.items[1].size == 300);
    assert_int_equal(l.items[1].n_files, 2);
    assert_string_equal(l.items[1].files[0].path, "config.json");
    assert_string_equal(l.items[1].files[0].sha256, b);
    assert_string_equal(l.items[1].source, "local");
    cache_model_list_free(&l);

    mlx_err err;
    assert_int_equal(cache_pin_model(f->s, "m:one", true, &err), 0);
    assert_int_equal(cache_list_models(f->s, "m:one", &l, NULL), 0);
    assert_true(l.items[0].pinned);
    cache_model_list_free(&l);
    assert_int_equal(cache_pin_model(f->s, "nope", true, &err), MLX_ENOENT);

    /* rm forgets the model; the sweep frees only what nothing else uses. */
    assert_int_equal(cache_remove_model(f->s, "m:two", &err), 0);
    gc_report r = {0};
    assert_int_equal(cache_sweep_blobs(f->s, &r, &err), 0);
    assert_int_equal(r.blobs_removed, 1);
    assert_true(r.blob_bytes == 200);
    assert_true(store_has_blob(f->s, a));
    assert_false(store_has_blob(f->s, b));
    assert_int_equal(cache_remove_model(f->s, "m:two", &err), MLX_ENOENT);
}

static void test_rm_refuses_models_of_other_tools(void **state)
{
    struct fx *f = *state;
    sqlite3_int64 id;
    assert_int_equal(cache_begin_model(f->s, "llama3.2:1b", "ollama-cache", "/x", "gguf",
                                       1, &id, NULL),
                     0);
    mlx_err err;
    mlx_err_clear(&err);
    assert_int_equal(cache_remove_model(f->s, "llama3.2:1b", &err), MLX_EPERM);
    assert_non_null(strstr(err.msg, "ollama rm"));
}

static void test_gc_evicts_least_recently_used_unpinned(void **state)
{
    struct fx *f = *state;
    char h[4][MLX_SHA256_HEX];
    const uint64_t size = 1000;
    for (int i = 0; i < 4; i++)
        put(f->s, 10 + i, size, h[i]);
    const char *names[] = {"old", "older", "pinned-oldest", "new"};
    for (int i = 0; i < 4; i++) {
        const char *hx[] = {h[i]};
        add_model(f->s, names[i], hx, &size, 1);
    }
    /* "shared" uses the blob of "new": evicting it frees nothing. */
    const char *hx[] = {h[3]};
    add_model(f->s, "shared", hx, &size, 1);
    set_last_use(f->s, "pinned-oldest", 1000);
    set_last_use(f->s, "older", 2000);
    set_last_use(f->s, "old", 3000);
    set_last_use(f->s, "shared", 3500);
    set_last_use(f->s, "new", 4000);
    assert_int_equal(cache_pin_model(f->s, "pinned-oldest", true, NULL), 0);

    gc_opts o = {.max_bytes = 2 * size, .dry_run = true};
    gc_report r;
    mlx_err err;
    assert_int_equal(cache_gc(f->s, &o, &r, &err), 0);
    assert_true(r.store_bytes == 4 * size);
    assert_int_equal(r.n_evicted, 2);
    assert_string_equal(r.evicted[0], "older");
    assert_string_equal(r.evicted[1], "old");
    assert_int_equal(r.n_pinned_kept, 1);
    assert_true(r.store_bytes_after == 2 * size);
    cache_gc_report_free(&r);
    for (int i = 0; i < 4; i++)
        assert_true(store_has_blob(f->s, h[i])); /* a dry run removes nothing */

    o.dry_run = false;
    o.max_bytes = size;
    assert_int_equal(cache_gc(f->s, &o, &r, &err), 0);
    /* older, old; then shared (frees nothing) and new, which frees h[3]. */
    assert_int_equal(r.n_evicted, 4);
    assert_string_equal(r.evicted[2], "shared");
    assert_string_equal(r.evicted[3], "new");
    assert_int_equal(r.blobs_removed, 3);
    assert_true(r.store_bytes_after == size);
    cache_gc_report_free(&r);
    assert_true(store_has_blob(f->s, h[2]));
    assert_false(store_has_blob(f->s, h[0]));
    assert_false(store_has_blob(f->s, h[3]));
}

/* A child that opens path (for writing or reading) or maps it, reports
 * through a pipe that it has, and waits to be killed. */
static pid_t hold_file(const char *path, int how)
{
    int p[2];
    assert_int_equal(pipe(p), 0);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        /* Dies with the test, and never holds the test's output open. */
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        int null = open("/dev/null", O_WRONLY);
        dup2(null, STDOUT_FILENO);
        dup2(null, STDERR_FILENO);
        close(p[0]);
        int fd = open(path, how == 'w' ? O_WRONLY : O_RDONLY);
        if (how == 'm') {
            struct stat st;
            fstat(fd, &st);
            void *map = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_SHARED, fd, 0);
            close(fd);
            if (map == MAP_FAILED)
                _exit(1);
        }
        if (write(p[1], "x", 1) != 1)
            _exit(1);
        pause();
        _exit(0);
    }
    close(p[1]); /* so a child that fails gives EOF, not a hang */
    for (size_t i = 0; i < sizeof holders / sizeof holders[0]; i++)
        if (holders[i] == 0) {
            holders[i] = pid;
            break;
        }
    char c;
    ssize_t n = read(p[0], &c, 1);
    close(p[0]);
    assert_int_equal(n, 1);
    return pid;
}

static void test_files_in_use_are_seen(void **state)
{
    struct fx *f = *state;
    char hex[MLX_SHA256_HEX], path[4096];
    put(f->s, 3, 5000, hex);
    store_blob_path(f->s, hex, path, sizeof path);
    chmod(path, 0644);
    struct stat st;
    assert_int_equal(stat(path, &st), 0);

    assert_false(cache_open_for_writing(st.st_dev, st.st_ino));
    pid_t writer = hold_file(path, 'w');
    assert_true(cache_open_for_writing(st.st_dev, st.st_ino));
    stop(writer);
    assert_false(cache_open_for_writing(st.st_dev, st.st_ino));

    pid_t reader = hold_file(path, 'r');
    inuse_set set;
    assert_int_equal(cache_inuse_collect(&set, INUSE_OPEN | INUSE_MAPPED, NULL), 0);
    assert_true(cache_inuse_has(&set, st.st_dev, st.st_ino, false));
    assert_false(cache_inuse_has(&set, st.st_dev, st.st_ino, true));
    cache_inuse_free(&set);
    stop(reader);

    pid_t mapper = hold_file(path, 'm');
    assert_int_equal(cache_inuse_collect(&set, INUSE_MAPPED, NULL), 0);
    assert_true(cache_inuse_has(&set, st.st_dev, st.st_ino, false));
    cache_inuse_free(&set);

    /* gc keeps a model a process maps, even over budget. */
    const char *hx[] = {hex};
    const uint64_t size = 5000;
    add_model(f->s, "mapped", hx, &size, 1);
    gc_opts o = {.max_bytes = 0};
    gc_report r;
    assert_int_equal(cache_gc(f->s, &o, &r, NULL), 0);
    assert_int_equal(r.n_evicted, 0);
    assert_int_equal(r.n_in_use_kept, 1);
    cache_gc_report_free(&r);
    stop(mapper);
    assert_int_equal(cache_gc(f->s, &o, &r, NULL), 0);
    assert_int_equal(r.n_evicted, 1);
    cache_gc_report_free(&r);
}

static void test_sweep_waits_for_a_pull(void **state)
{
    struct fx *f = *state;
    /* A second handle puts a blob (as a pull does) and keeps the store open. */
    store *puller;
    assert_int_equal(store_open(f->dir, &puller, NULL), 0);
    char hex[MLX_SHA256_HEX];
    put(puller, 4, 300, hex);
    mlx_err err;
    mlx_err_clear(&err);
    gc_report r = {0};
    assert_int_equal(cache_sweep_blobs(f->s, &r, &err), MLX_EBUSY);
    assert_non_null(strstr(err.msg, "pull"));
    assert_true(store_has_blob(f->s, hex));
    store_close(puller);
    assert_int_equal(cache_sweep_blobs(f->s, &r, &err), 0);
    assert_false(store_has_blob(f->s, hex)); /* no model took it */
}

static void test_verify_quarantines_corrupt_blobs(void **state)
{
    struct fx *f = *state;
    char good[MLX_SHA256_HEX], bad[MLX_SHA256_HEX], path[4096];
    put(f->s, 5, 4096, good);
    put(f->s, 6, 4096, bad);
    const uint64_t size = 4096;
    const char *g[] = {good}, *b[] = {bad};
    add_model(f->s, "good", g, &size, 1);
    add_model(f->s, "bad", b, &size, 1);
    store_blob_path(f->s, bad, path, sizeof path);
    chmod(path, 0644);
    FILE *fp = fopen(path, "r+b");
    fseek(fp, 100, SEEK_SET);
    fputc('!', fp);
    fclose(fp);

    verify_report r;
    mlx_err err;
    assert_int_equal(cache_verify(f->s, &r, &err), 0);
    assert_int_equal(r.checked_files, 2);
    assert_int_equal(r.n_problems, 1);
    assert_int_equal(r.problems[0].kind, VERIFY_CORRUPT);
    assert_string_equal(r.problems[0].expected, bad);
    assert_string_not_equal(r.problems[0].actual, bad);
    assert_string_equal(r.problems[0].models, "bad");
    assert_non_null(r.problems[0].quarantined_to);
    assert_int_equal(access(r.problems[0].quarantined_to, F_OK), 0);
    cache_verify_report_free(&r);
    assert_false(store_has_blob(f->s, bad));

    cache_model_list l;
    assert_int_equal(cache_list_models(f->s, NULL, &l, NULL), 0);
    assert_string_equal(l.items[0].name, "bad");
    assert_true(l.items[0].broken);
    assert_false(l.items[1].broken);
    cache_model_list_free(&l);

    /* Next time the bad model's blob is missing; the good one still checks. */
    assert_int_equal(cache_verify(f->s, &r, &err), 0);
    assert_int_equal(r.n_problems, 1);
    assert_int_equal(r.problems[0].kind, VERIFY_MISSING);
    cache_verify_report_free(&r);
}

static void test_add_copies_and_refuses_non_models(void **state)
{
    struct fx *f = *state;
    char *src = test_join(f->dir, "tiny.gguf");
    test_write_file(src, "GGUF\x03\x00\x00\x00 pretend the rest is here");
    cache_added a;
    mlx_err err;
    mlx_err_clear(&err);
    if (cache_add_file(f->s, src, "tiny", &a, &err) != 0)
        fail_msg("%s", err.msg);
    assert_string_equal(a.path, "tiny.gguf");
    assert_string_equal(a.format, "gguf");
    char path[4096];
    store_blob_path(f->s, a.sha256, path, sizeof path);
    unlink(src); /* the store holds its own copy */
    char got[MLX_SHA256_HEX];
    assert_int_equal(cache_hash_path(path, got, NULL), 0);
    assert_string_equal(got, a.sha256);

    test_write_file(src, "just text");
    assert_int_equal(cache_add_file(f->s, src, "text", &a, &err), MLX_EINVAL);
    assert_non_null(strstr(err.msg, "neither a GGUF nor a safetensors"));
    assert_int_equal(cache_add_file(f->s, f->dir, "dir", &a, &err), MLX_EINVAL);
    assert_int_equal(cache_add_file(f->s, "/nonexistent/x.gguf", "x", &a, &err),
                     MLX_ENOENT);
    free(src);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_blob_named_by_content, setup, teardown),
        cmocka_unit_test_setup_teardown(test_blob_size_must_match, setup, teardown),
        cmocka_unit_test_setup_teardown(test_model_needs_its_blobs, setup, teardown),
        cmocka_unit_test_setup_teardown(test_list_remove_pin, setup, teardown),
        cmocka_unit_test_setup_teardown(test_rm_refuses_models_of_other_tools, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_gc_evicts_least_recently_used_unpinned,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(test_files_in_use_are_seen, setup, teardown),
        cmocka_unit_test_setup_teardown(test_sweep_waits_for_a_pull, setup, teardown),
        cmocka_unit_test_setup_teardown(test_verify_quarantines_corrupt_blobs, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_add_copies_and_refuses_non_models, setup,
                                        teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
