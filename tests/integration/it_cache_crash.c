/*
 * it_cache_crash.c — `kill -9` during `cache dedup --apply`, again and
 * again, at random moments: before, while and after it hashes, compares,
 * links and renames. After each kill every file of the HF and Ollama trees
 * must still read back with its original SHA-256, the next command must
 * clean up what the killed one left (no temp files, verify passes), and a
 * dedup run to the end must then finish the job.
 *
 * The moments are drawn from a seeded generator; the seed is printed, and
 * MLX_CRASH_SEED=<seed> replays a failing run. The loop goes on until RUNS
 * kills have landed while dedup was working.
 */
#include <dirent.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>
#include <jansson.h>

#include "common/parse.h"
#include "tests/integration/harness.h"
#include "tests/integration/trees.h"
#include "tests/support/testutil.h"

#define RUNS       50
#define TIMEOUT_MS 60000

static const char *const models[] = {"stories260K.gguf", "syn256-q4_0.gguf",
                                     "syn256-q8_0.gguf", "syn256-f16.gguf"};
#define N_MODELS (sizeof models / sizeof models[0])
static void *bytes[N_MODELS];
static size_t lens[N_MODELS];
static char shas[N_MODELS][65];

static char *dir;

struct tree {
    char root[512], data[600], hf[600], ollama[600], plain[600];
    char paths[3 * N_MODELS][1024]; /* every copy, HF's through its snapshot link */
    size_t n;
};

/* Each model three times: in an HF repository, in Ollama, in a folder. */
static void build(struct tree *t, int run)
{
    memset(t, 0, sizeof *t);
    snprintf(t->root, sizeof t->root, "%s/run-%d", dir, run);
    snprintf(t->data, sizeof t->data, "%s/data", t->root);
    snprintf(t->hf, sizeof t->hf, "%s/hf", t->root);
    snprintf(t->ollama, sizeof t->ollama, "%s/ollama", t->root);
    snprintf(t->plain, sizeof t->plain, "%s/plain", t->root);
    tree_mkdirs(t->plain);
    for (size_t i = 0; i < N_MODELS; i++) {
        char name[32];
        snprintf(name, sizeof name, "m%zu", i);
        tree_file f = {models[i], bytes[i], lens[i], true};
        tree_hf_repo(t->hf, "org", name, "1111", true, &f, 1);
        tree_layer l = {"application/vnd.ollama.image.model", bytes[i], lens[i]};
        tree_ollama_model(t->ollama, name, "latest", &l, 1);
        snprintf(t->paths[t->n++], sizeof t->paths[0],
                 "%s/models--org--%s/snapshots/1111/%s", t->hf, name, models[i]);
        snprintf(t->paths[t->n++], sizeof t->paths[0], "%s/blobs/sha256-%s", t->ollama,
                 shas[i]);
        snprintf(t->paths[t->n], sizeof t->paths[0], "%s/%s", t->plain, models[i]);
        tree_write(t->paths[t->n++], bytes[i], lens[i]);
    }
}

static void check_every_copy(const struct tree *t, int run)
{
    for (size_t k = 0; k < t->n; k++) {
        char now[65];
        if (!tree_sha256_file(t->paths[k], now))
            fail_msg("run %d: %s is gone", run, t->paths[k]);
        if (strcmp(now, shas[k / 3]) != 0)
            fail_msg("run %d: %s is corrupt (%s)", run, t->paths[k], now);
    }
}

/* Files dedup names .mlx-dedup-* while it works, anywhere under root. */
static size_t count_temps(const char *root)
{
    DIR *d = opendir(root);
    if (d == NULL)
        return 0;
    size_t n = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
            continue;
        char path[2048];
        snprintf(path, sizeof path, "%s/%s", root, e->d_name);
        struct stat st;
        if (strncmp(e->d_name, ".mlx-dedup-", 11) == 0)
            n++;
        else if (lstat(path, &st) == 0 && S_ISDIR(st.st_mode))
            n += count_temps(path);
    }
    closedir(d);
    return n;
}

static const char **dedup_args(const struct tree *t, const char **args)
{
    const char *a[] = {"cache", "dedup",  "--apply", "--json",   "--data",
                       t->data, "--hf",   t->hf,     "--ollama", t->ollama,
                       "--dir", t->plain, NULL};
    memcpy(args, a, sizeof a);
    return args;
}

static json_t *run_json(const char *const *args, int *status)
{
    char *out = NULL, *err = NULL;
    *status = h_run("mlx-agent", args, TIMEOUT_MS, &out, &err);
    json_t *v = json_loads(out, 0, NULL);
    if (v == NULL)
        fail_msg("%s %s printed no JSON (exit %d): %s", args[0], args[1], *status, err);
    free(out);
    free(err);
    return v;
}

static int group_setup(void **state)
{
    for (size_t i = 0; i < N_MODELS; i++) {
        char *path = test_testdata(models[i]);
        if (path == NULL) {
            fprintf(stderr, "skipped: the shared test models (../shared/testdata) are "
                            "absent\n");
            exit(TEST_SKIP);
        }
        bytes[i] = tree_read(path, &lens[i]);
        tree_sha256(bytes[i], lens[i], shas[i]);
        free(path);
    }
    dir = test_tmpdir("it-cache-crash");
    return 0;
}

static int group_teardown(void **state)
{
    test_tmpdir_remove(dir);
    for (size_t i = 0; i < N_MODELS; i++)
        free(bytes[i]);
    return 0;
}

static void test_kill_dedup_at_random_moments(void **state)
{
    /* How long a whole run takes here, so kills land across all of it. */
    struct tree t;
    build(&t, -1);
    const char *args[16];
    int64_t start = h_now_ms();
    int status;
    json_t *v = run_json(dedup_args(&t, args), &status);
    int64_t whole_ms = h_now_ms() - start;
    assert_int_equal(status, 0);
    assert_int_equal(json_integer_value(json_object_get(v, "replaced")), 2 * N_MODELS);
    json_decref(v);
    check_every_copy(&t, -1);
    test_rm_rf(t.root);

    const char *env = getenv("MLX_CRASH_SEED");
    int64_t chosen;
    unsigned seed = env != NULL && mlx_parse_int64(env, &chosen, NULL) == 0
                        ? (unsigned)chosen
                        : (unsigned)time(NULL);
    printf("seed %u (MLX_CRASH_SEED=%u replays it); a whole run takes %lld ms\n", seed,
           seed, (long long)whole_ms);
    srand(seed);
    /* Until RUNS kills have landed while dedup worked: a run that finished
     * first (the machine got faster) narrows the window for the next. */
    double window_us = 1.2 * (double)whole_ms * 1000;
    int interrupted = 0, attempts = 0;
    for (int run = 0; interrupted < RUNS && attempts < 4 * RUNS; run++, attempts++) {
        build(&t, run);
        long delay_us = (long)((double)rand() / RAND_MAX * window_us);
        h_proc *p = h_spawn("dedup", t.root, "mlx-agent", dedup_args(&t, args));
        usleep((useconds_t)delay_us);
        h_signal(p, SIGKILL);
        int code = h_wait_exit(p, 10000);
        free(p);
        if (code == 128 + SIGKILL)
            interrupted++;
        else
            window_us *= 0.9;

        /* Whatever moment it died at, nothing is lost or damaged... */
        check_every_copy(&t, run);
        /* ...the next command cleans up after it and finds every byte sound... */
        const char *verify[] = {"cache", "verify", "--json", "--data", t.data, NULL};
        v = run_json(verify, &status);
        if (status != 0 || !json_is_true(json_object_get(v, "ok")))
            fail_msg("run %d (killed after %ld us): verify failed", run, delay_us);
        json_decref(v);
        if (count_temps(t.root) != 0)
            fail_msg("run %d: a temporary file was left behind", run);
        /* ...and a run to the end finishes the job. */
        v = run_json(dedup_args(&t, args), &status);
        assert_int_equal(status, 0);
        json_decref(v);
        const char *scan[] = {"cache", "scan",     "--json", "--data", t.data,  "--hf",
                              t.hf,    "--ollama", t.ollama, "--dir",  t.plain, NULL};
        v = run_json(scan, &status);
        if (json_array_size(json_object_get(v, "duplicates")) != 0)
            fail_msg("run %d: duplicates remain after a full run", run);
        json_decref(v);
        check_every_copy(&t, run);
        test_rm_rf(t.root);
    }
    printf("%d of %d runs were killed before they finished\n", interrupted, attempts);
    assert_int_equal(interrupted, RUNS);
}

/* The narrowest windows, hit on purpose: the process dies right after the
 * journal row is written, after the temp link exists, and after the rename
 * (before the journal row is gone). */
static void test_die_at_each_step(void **state)
{
    static const char *const points[] = {"dedup-journaled", "dedup-linked",
                                         "dedup-replaced"};
    for (size_t i = 0; i < sizeof points / sizeof points[0]; i++) {
        struct tree t;
        build(&t, 100 + (int)i);
        const char *args[16];
        char *out = NULL;
        setenv("MLX_CRASH_POINT", points[i], 1);
        int status = h_run("mlx-agent", dedup_args(&t, args), TIMEOUT_MS, &out, NULL);
        unsetenv("MLX_CRASH_POINT");
        free(out);
        if (status != 128 + SIGKILL)
            fail_msg("dedup did not die at %s (exit %d)", points[i], status);
        check_every_copy(&t, (int)i);
        size_t temps = count_temps(t.root);
        assert_int_equal(temps, strcmp(points[i], "dedup-linked") == 0 ? 1 : 0);

        const char *verify[] = {"cache", "verify", "--json", "--data", t.data, NULL};
        json_t *v = run_json(verify, &status);
        assert_int_equal(status, 0);
        json_decref(v);
        assert_int_equal(count_temps(t.root), 0);
        v = run_json(dedup_args(&t, args), &status);
        assert_int_equal(status, 0);
        /* The step that died after its rename is done already. */
        assert_int_equal(json_integer_value(json_object_get(v, "replaced")),
                         2 * N_MODELS - (strcmp(points[i], "dedup-replaced") == 0));
        json_decref(v);
        check_every_copy(&t, (int)i);
        test_rm_rf(t.root);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_die_at_each_step),
        cmocka_unit_test(test_kill_dedup_at_random_moments),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
