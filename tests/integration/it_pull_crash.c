/*
 * it_pull_crash.c — `cache pull` killed with SIGKILL at random moments.
 *
 * Each round starts a throttled pull of an Ollama model (one large layer,
 * three small blobs) and kills it after a random delay: while it connects,
 * streams, hashes, renames a blob or records the model. After every kill
 * the store must hold no blob whose bytes differ from its name and no model
 * with a missing blob; whatever .partial is left is the next round's
 * starting point. A store that got the whole model starts over empty, so
 * every round has something to interrupt. At the end one pull must finish
 * and `cache verify` must find the store sound.
 *
 * The delays come from a seeded generator; the seed is printed, and
 * MLX_TEST_SEED=N repeats a failing run.
 */
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>

#include "common/parse.h"
#include "tests/integration/pull_hub.h"
#include "tests/support/testutil.h"

#define ROUNDS 50

static struct {
    char *dir;
    char *stories;
    hub hub;
    char model[128];
    uint64_t rng;
} g;

static const char config_fmt[] =
    "{\"blobs\": {\"stories\": {\"path\": \"%s\"},"
    "  \"tmpl\": {\"text\": \"{{ .Prompt }}\"},"
    "  \"params\": {\"text\": \"{\\\"stop\\\": [\\\"</s>\\\"]}\"},"
    "  \"ocfg\": {\"text\": \"{\\\"model_format\\\": \\\"gguf\\\"}\"}},"
    " \"ollama\": [{\"repo\": \"library/tiny\", \"tag\": \"latest\", \"config\": "
    "\"ocfg\","
    "   \"layers\": [{\"media_type\": \"application/vnd.ollama.image.model\","
    "                \"blob\": \"stories\"},"
    "               {\"media_type\": \"application/vnd.ollama.image.template\","
    "                \"blob\": \"tmpl\"},"
    "               {\"media_type\": \"application/vnd.ollama.image.params\","
    "                \"blob\": \"params\"}]}]}";

/* xorshift64*: small, seedable, the same sequence everywhere. */
static uint64_t next_random(void)
{
    g.rng ^= g.rng >> 12;
    g.rng ^= g.rng << 25;
    g.rng ^= g.rng >> 27;
    return g.rng * 2685821657736338717ull;
}

static int setup(void **state)
{
    g.stories = test_testdata("stories260K.gguf");
    if (g.stories == NULL) {
        printf("skipping: stories260K.gguf is not in the shared test data "
               "(../shared/testdata or $MLX_TESTDATA)\n");
        exit(TEST_SKIP);
    }
    int64_t seed = (int64_t)time(NULL);
    const char *given = getenv("MLX_TEST_SEED");
    if (given != NULL && mlx_parse_int64(given, &seed, NULL) != 0) {
        printf("MLX_TEST_SEED must be an integer\n");
        return -1;
    }
    printf("seed=%lld (MLX_TEST_SEED=%lld repeats this run)\n", (long long)seed,
           (long long)seed);
    fflush(stdout);
    g.rng = (uint64_t)seed * 0x9e3779b97f4a7c15ull + 1;
    g.dir = test_tmpdir("it-pull-crash");
    size_t n = sizeof config_fmt + strlen(g.stories);
    char *config = malloc(n);
    snprintf(config, n, config_fmt, g.stories);
    hub_start(&g.hub, g.dir, config);
    free(config);
    snprintf(g.model, sizeof g.model, "127.0.0.1:%d/library/tiny:latest", g.hub.port);
    return 0;
}

static int teardown(void **state)
{
    hub_stop(&g.hub);
    test_tmpdir_remove(g.dir);
    free(g.stories);
    return 0;
}

/* No blob differs from its name; every recorded model has all its blobs.
 * Returns true when the model is recorded (complete). */
static bool check_store(const char *data, int round)
{
    int n_blobs = 0;
    int bad = store_bad_blobs(data, &n_blobs);
    if (bad != 0)
        fail_msg("round %d: %d corrupt blob(s) of %d", round, bad, n_blobs);
    json_t *models = store_models(data);
    if (models == NULL) {
        /* No store yet: the pull died before creating it. */
        return false;
    }
    bool complete = false;
    size_t i, k;
    json_t *m, *f;
    json_array_foreach(models, i, m)
    {
        json_array_foreach(json_object_get(m, "files"), k, f)
        {
            const char *loc = json_string_value(json_object_get(f, "location"));
            json_int_t size = json_integer_value(json_object_get(f, "size_bytes"));
            if (loc == NULL || file_size(loc) != size)
                fail_msg("round %d: model %s lists %s, which is missing", round,
                         json_string_value(json_object_get(m, "name")),
                         loc != NULL ? loc : "(no location)");
        }
        const char *name = json_string_value(json_object_get(m, "name"));
        complete = complete || (name != NULL && strcmp(name, g.model) == 0);
    }
    if (complete)
        assert_int_equal(
            json_array_size(json_object_get(store_model(models, g.model), "files")), 4);
    json_decref(models);
    return complete;
}

static void test_kill_at_random_moments(void **state)
{
    int64_t size = hub_count(&g.hub, "stories", "size");
    /* About 0.4 s for the whole model, so a delay up to 0.5 s lands
     * anywhere from connecting to recording, and sometimes after. */
    char q[64];
    snprintf(q, sizeof q, "throttle=%lld", (long long)(size * 5 / 2));
    hub_fault(&g.hub, "stories", q);
    char *data = test_join(g.dir, "data");
    int completed = 0, resumed = 0;
    int64_t t0 = h_now_ms();
    for (int round = 0; round < ROUNDS; round++) {
        int delay_ms = (int)(next_random() % 500);
        h_proc *p = h_spawn("pull", g.dir, "mlx-agent",
                            hub_pull_args(&g.hub, data, "ollama:tiny"));
        struct timespec ts = {0, (long)delay_ms * 1000000L};
        nanosleep(&ts, NULL); /* the random moment itself is the point here */
        h_signal(p, SIGKILL);
        int status = h_wait_exit(p, 10000);
        h_stop(p);
        if (status != 128 + SIGKILL && status != 0)
            fail_msg("round %d (delay %d ms): the pull exited %d before the kill; see "
                     "%s/pull.log",
                     round, delay_ms, status, g.dir);
        if (check_store(data, round)) {
            completed++;
            test_rm_rf(data); /* start the next round with nothing */
        } else {
            resumed++;
        }
    }
    printf("%d rounds: %d completed before the kill, %d interrupted, %.1f s\n", ROUNDS,
           completed, resumed, (double)(h_now_ms() - t0) / 1000.0);

    /* One last pull, then verify, after whatever the last round left. */
    hub_fault(&g.hub, "stories", "");
    char *out = NULL, *err = NULL;
    int rc = hub_pull(&g.hub, data, "ollama:tiny", NULL, &out, &err);
    if (rc != 0)
        fail_msg("the final pull failed (%d): %s", rc, err);
    free(out);
    free(err);
    assert_true(check_store(data, ROUNDS));
    const char *verify[] = {"cache", "verify", "--data", data, "--json", NULL};
    rc = h_run("mlx-agent", verify, 60000, &out, &err);
    json_t *v = json_loads(out != NULL ? out : "", 0, NULL);
    if (rc != 0 || !json_is_true(json_object_get(v, "ok")))
        fail_msg("cache verify: exit %d: %s %s", rc, out, err);
    json_decref(v);
    free(out);
    free(err);
    free(data);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_kill_at_random_moments),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
