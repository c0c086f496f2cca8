/*
 * it_run.c — `mlx-agent run` as a person uses it: a GGUF file or a model of
 * the store, the text on stdout as it is generated, greedy and seeded runs
 * repeatable, --json, and clear errors. Expected text comes from
 * llama.cpp's greedy run of the same model (reference.json), not from us.
 */
#include <setjmp.h>
#include <stdbool.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <jansson.h>

#include "tests/integration/harness.h"
#include "tests/integration/serving.h"
#include "tests/support/testutil.h"

#define TIMEOUT_MS 120000

static char *stories, *dir, *data;

static int run(const char *const *args, char **out, char **err)
{
    return h_run("mlx-agent", args, TIMEOUT_MS, out, err);
}

static void test_greedy_run_prints_the_reference_continuation(void **state)
{
    static const char *const prompts[] = {"Once upon a time", "The little dog",
                                          "Lily and Tom went to the park."};
    for (size_t i = 0; i < 3; i++) {
        const char *args[] = {"run", stories,  prompts[i], "-n",
                              "48",  "--temp", "0",        NULL};
        char *out = NULL, *err = NULL;
        int status = run(args, &out, &err);
        if (status != 0)
            fail_msg("exit %d: %s", status, err);
        /* The prompt is not echoed: stdout is the continuation alone. The
         * reference decodes the generated ids on their own, which drops
         * the first piece's leading space; after a prompt that space is
         * real ("The little dog" + " was"), so we keep it. */
        char want[4096];
        snprintf(want, sizeof want, "%s", serving_greedy_text(prompts[i]));
        const char *got = out[0] == ' ' && want[0] != ' ' ? out + 1 : out;
        if (strcmp(got, want) != 0)
            fail_msg("\"%s\" gave\n[%s]\nllama.cpp gives\n[%s]", prompts[i], out, want);
        assert_non_null(strstr(err, "tokens/s")); /* timings go to stderr */
        free(out);
        free(err);
    }
}

static void test_a_model_of_the_store_runs_by_name(void **state)
{
    const char *add[] = {"cache",   "add",    stories, "--name",
                         "stories", "--data", data,    NULL};
    assert_int_equal(run(add, NULL, NULL), 0);
    const char *args[] = {"run",    "stories", "Once upon a time", "-n", "48",
                          "--temp", "0",       "--data",           data, NULL};
    char *out = NULL;
    assert_int_equal(run(args, &out, NULL), 0);
    char want[4096];
    snprintf(want, sizeof want, "%s", serving_greedy_text("Once upon a time"));
    assert_string_equal(out, want);
    free(out);
    const char *missing[] = {"run", "nope:latest", "hi", "--data", data, NULL};
    char *err = NULL;
    assert_int_equal(run(missing, NULL, &err), 1);
    assert_non_null(
        strstr(err, "'nope:latest' is neither a GGUF file nor a model of the store"));
    free(err);
}

static void test_seeded_runs_repeat_and_seeds_differ(void **state)
{
    char *texts[3];
    static const char *const seeds[] = {"7", "7", "8"};
    for (int i = 0; i < 3; i++) {
        const char *args[] = {"run",    stories, "Once upon a time", "-n",     "40",
                              "--temp", "1.0",   "--seed",           seeds[i], NULL};
        assert_int_equal(run(args, &texts[i], NULL), 0);
        assert_true(strlen(texts[i]) > 20);
    }
    assert_string_equal(texts[0], texts[1]);
    assert_string_not_equal(texts[0], texts[2]);
    for (int i = 0; i < 3; i++)
        free(texts[i]);
}

static void test_json_and_stop_strings(void **state)
{
    const char *args[] = {"run",    stories, "Once upon a time", "-n",   "48",
                          "--temp", "0",     "--stop",           "Lily", "--json",
                          NULL};
    char *out = NULL;
    assert_int_equal(run(args, &out, NULL), 0);
    json_t *v = json_loads(out, 0, NULL);
    assert_non_null(v);
    /* ", there was a little girl named Lily. …": everything before "Lily". */
    assert_string_equal(json_string_value(json_object_get(v, "text")),
                        ", there was a little girl named ");
    assert_string_equal(json_string_value(json_object_get(v, "finish_reason")), "stop");
    assert_int_equal(json_integer_value(json_object_get(v, "prompt_tokens")), 5);
    json_t *t = json_object_get(v, "timings");
    assert_true(json_number_value(json_object_get(t, "generation_tokens_per_s")) > 0);
    json_decref(v);
    free(out);
}

static void test_bad_input_says_what_is_wrong(void **state)
{
    char *not_gguf = test_join(dir, "notes.gguf");
    test_write_file(not_gguf, "these are not weights");
    static const struct {
        const char *flag, *value, *says;
        int status;
    } cases[] = {
        {"--temp", "-1", "temperature", 2},
        {"--top-p", "1.5", "top_p", 2},
        {"--temp", "hot", "'hot' is not a number", 2},
        {"-n", "x", "'x'", 2},
        {"--ctx", "-4", "out of range", 2},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const char *args[] = {"run", stories, "hi", cases[i].flag, cases[i].value, NULL};
        char *err = NULL;
        int status = run(args, NULL, &err);
        if (status != cases[i].status || strstr(err, cases[i].says) == NULL)
            fail_msg("%s %s: exit %d, \"%s\"", cases[i].flag, cases[i].value, status,
                     err);
        free(err);
    }
    const char *args[] = {"run", not_gguf, "hi", NULL};
    char *err = NULL;
    assert_int_equal(run(args, NULL, &err), 1);
    assert_non_null(strstr(err, "notes.gguf"));
    free(err);
    free(not_gguf);
}

static int group_setup(void **state)
{
    stories = test_testdata("stories260K.gguf");
    char *ref = test_testdata("reference.json");
    bool absent = stories == NULL || ref == NULL;
    free(ref);
    if (absent) {
        fprintf(stderr,
                "skipped: the shared test models (../shared/testdata) are absent\n");
        exit(TEST_SKIP);
    }
    dir = test_tmpdir("it-run");
    data = test_join(dir, "data");
    return 0;
}

static int group_teardown(void **state)
{
    test_tmpdir_remove(dir);
    free(data);
    free(stories);
    return 0;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_greedy_run_prints_the_reference_continuation),
        cmocka_unit_test(test_a_model_of_the_store_runs_by_name),
        cmocka_unit_test(test_seeded_runs_repeat_and_seeds_differ),
        cmocka_unit_test(test_json_and_stop_strings),
        cmocka_unit_test(test_bad_input_says_what_is_wrong),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
