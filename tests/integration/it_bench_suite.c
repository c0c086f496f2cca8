/*
 * it_bench_suite.c — `mlx-agent bench MODEL --suite` and `mlx-agent history`
 * as a person uses them, on a small synthetic model and a fresh data
 * directory: the suite's JSON adds up (its rates and percentiles are
 * recomputed here from the rows it reports), history shows the same run,
 * and failures say what is wrong.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <cmocka.h>
#include <jansson.h>
#include <math.h>

#include "tests/integration/harness.h"
#include "tests/support/testutil.h"

#define TIMEOUT_MS 60000
#define PROMPTS    10

static char *dir, *data, *model;

static int agent(const char *const *args, char **out, char **err)
{
    return h_run("mlx-agent", args, TIMEOUT_MS, out, err);
}

/* Equal within floating-point noise: the figures are sums and ratios of
 * the same nanosecond counts, printed with all their digits. */
static void assert_close(double got, double want, const char *what)
{
    if (fabs(got - want) > 1e-9 * fmax(1.0, fabs(want)))
        fail_msg("%s: %.17g, expected %.17g", what, got, want);
}

static double num(const json_t *obj, const char *key)
{
    const json_t *v = json_object_get(obj, key);
    if (!json_is_number(v))
        fail_msg("\"%s\" is missing or not a number", key);
    return json_number_value(v);
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static json_t *run_suite_json(const char *data_dir, const char *gen_tokens)
{
    const char *args[] = {"bench",  model,          "--suite",  "--json", "--data",
                          data_dir, "--gen-tokens", gen_tokens, NULL};
    char *out = NULL, *err = NULL;
    int status = agent(args, &out, &err);
    if (status != 0)
        fail_msg("exit %d: %s", status, err);
    json_error_t jerr;
    json_t *v = json_loads(out, 0, &jerr);
    if (v == NULL)
        fail_msg("not JSON (%s): %s", jerr.text, out);
    free(out);
    free(err);
    return v;
}

/* Each row: counts within bounds, latency = ttft + gen, its own rate. */
static void check_rows(const json_t *rows, int64_t gen_tokens)
{
    size_t i;
    const json_t *r;
    json_array_foreach(rows, i, r)
    {
        int64_t c = (int64_t)num(r, "completion_tokens");
        assert_true(num(r, "prompt_tokens") > 0);
        assert_true(c > 0 && c <= gen_tokens);
        double gen = num(r, "gen_ms"), ttft = num(r, "ttft_ms");
        assert_true(ttft > 0 && gen > 0);
        assert_close(num(r, "latency_ms"), ttft + gen, "latency_ms");
        assert_close(num(r, "tokens_per_s"), (double)(c - 1) * 1000.0 / gen, "row rate");
    }
}

/* The summary from the rows: sums, the overall rate, nearest-rank
 * percentiles (ranks 5, 10 and 10 of ten). */
static void check_summary(const json_t *rows, const json_t *s)
{
    double ttft[PROMPTS], lat[PROMPTS], gen = 0, after_first = 0, prompt = 0, done = 0;
    for (size_t i = 0; i < PROMPTS; i++) {
        const json_t *r = json_array_get(rows, i);
        ttft[i] = num(r, "ttft_ms");
        lat[i] = num(r, "latency_ms");
        gen += num(r, "gen_ms");
        prompt += num(r, "prompt_tokens");
        done += num(r, "completion_tokens");
        after_first += num(r, "completion_tokens") - 1;
    }
    qsort(ttft, PROMPTS, sizeof ttft[0], cmp_double);
    qsort(lat, PROMPTS, sizeof lat[0], cmp_double);
    assert_int_equal((int)num(s, "prompts"), PROMPTS);
    assert_close(num(s, "prompt_tokens"), prompt, "summary prompt_tokens");
    assert_close(num(s, "completion_tokens"), done, "summary completion_tokens");
    assert_close(num(s, "tokens_per_s"), after_first * 1000.0 / gen, "summary rate");
    assert_close(num(s, "ttft_p50_ms"), ttft[4], "ttft p50");
    assert_close(num(s, "latency_p50_ms"), lat[4], "latency p50");
    assert_close(num(s, "latency_p95_ms"), lat[9], "latency p95");
    assert_close(num(s, "latency_p99_ms"), lat[9], "latency p99");
    assert_true(num(s, "latency_p50_ms") <= num(s, "latency_p95_ms"));
    assert_true(num(s, "latency_p95_ms") <= num(s, "latency_p99_ms"));
    assert_true(num(s, "tokens_per_s") > 0);
}

/* Ten different prompts: kinds distinct, prompt lengths not all alike. */
static void check_varied(const json_t *rows)
{
    double shortest = 1e18, longest = 0;
    for (size_t i = 0; i < PROMPTS; i++) {
        const json_t *r = json_array_get(rows, i);
        const char *kind = json_string_value(json_object_get(r, "kind"));
        assert_non_null(kind);
        for (size_t j = 0; j < i; j++)
            assert_string_not_equal(kind, json_string_value(json_object_get(
                                              json_array_get(rows, j), "kind")));
        shortest = fmin(shortest, num(r, "prompt_tokens"));
        longest = fmax(longest, num(r, "prompt_tokens"));
    }
    assert_true(longest >= 3 * shortest);
}

/* The run in `history --json` whose unix_ms is the suite's, or a failure. */
static const json_t *find_run(const json_t *history, double unix_ms)
{
    size_t i;
    const json_t *b;
    json_array_foreach(json_object_get(history, "bench_runs"), i, b)
    {
        if (num(b, "unix_ms") == unix_ms)
            return b;
    }
    fail_msg("history has no bench run at %.0f", unix_ms);
    return NULL;
}

static json_t *history_json(void)
{
    const char *args[] = {"history", "--since", "1h", "--json", "--data", data, NULL};
    char *out = NULL;
    assert_int_equal(agent(args, &out, NULL), 0);
    json_t *v = json_loads(out, 0, NULL);
    assert_non_null(v);
    free(out);
    return v;
}

static void test_suite_json_adds_up_and_history_has_it(void **state)
{
    json_t *v = run_suite_json(data, "0");
    const json_t *rows = json_object_get(v, "prompts"),
                 *s = json_object_get(v, "summary");
    assert_int_equal(json_array_size(rows), PROMPTS);
    assert_string_equal(json_string_value(json_object_get(v, "model")), model);
    assert_int_equal((int)num(v, "gen_tokens"), 64);
    assert_true(json_is_true(json_object_get(v, "recorded")));
    check_rows(rows, 64);
    check_summary(rows, s);
    check_varied(rows);

    json_t *h = history_json();
    const json_t *b = find_run(h, num(v, "unix_ms"));
    assert_string_equal(json_string_value(json_object_get(b, "model")), model);
    assert_int_equal((int)num(b, "prompts"), PROMPTS);
    static const char *const same[] = {"tokens_per_s", "ttft_p50_ms", "latency_p50_ms",
                                       "latency_p95_ms", "latency_p99_ms"};
    for (size_t i = 0; i < sizeof same / sizeof same[0]; i++)
        assert_close(num(b, same[i]), num(s, same[i]), same[i]);
    json_decref(h);
    json_decref(v);
}

/* --gen-tokens bounds each prompt's answer (the synthetic model never
 * stops early, so it is exactly that). */
static void test_gen_tokens_bounds_each_answer(void **state)
{
    json_t *v = run_suite_json(data, "8");
    const json_t *rows = json_object_get(v, "prompts");
    assert_int_equal((int)num(v, "gen_tokens"), 8);
    check_rows(rows, 8);
    check_summary(rows, json_object_get(v, "summary"));
    assert_close(num(json_object_get(v, "summary"), "completion_tokens"), 8 * PROMPTS,
                 "tokens");
    json_decref(v);
}

static void test_tables_show_the_run(void **state)
{
    const char *args[] = {"bench", model, "--suite", "--data", data, NULL};
    char *out = NULL;
    assert_int_equal(agent(args, &out, NULL), 0);
    assert_non_null(strstr(out, "TTFT ms"));
    assert_non_null(strstr(out, "explanation")); /* the tenth row */
    assert_non_null(strstr(out, "latency p50"));
    assert_non_null(strstr(out, "Recorded"));
    free(out);
    const char *hist[] = {"history", "--since", "1h", "--data", data, NULL};
    assert_int_equal(agent(hist, &out, NULL), 0);
    assert_non_null(strstr(out, "LATENCY p50"));
    /* The whole path, however long: cut, it could name another model. */
    char want[1024];
    snprintf(want, sizeof want, "  %s  ", model);
    assert_non_null(strstr(out, want));
    assert_null(strstr(out, "No benchmark runs"));
    free(out);
}

static void test_unknown_model_fails_and_records_nothing(void **state)
{
    json_t *before = history_json();
    size_t runs = json_array_size(json_object_get(before, "bench_runs"));
    json_decref(before);
    const char *args[] = {"bench",  "nope:latest", "--suite", "--json",
                          "--data", data,          NULL};
    char *out = NULL, *err = NULL;
    assert_int_equal(agent(args, &out, &err), 1);
    assert_string_equal(out, "");
    assert_non_null(
        strstr(err, "'nope:latest' is neither a GGUF file nor a model of the store"));
    free(out);
    free(err);
    json_t *after = history_json();
    assert_int_equal(json_array_size(json_object_get(after, "bench_runs")), runs);
    json_decref(after);
}

/* A history that cannot be written costs the record, not the results. */
static void test_unwritable_history_still_prints(void **state)
{
    char *other = test_join(dir, "other");
    char *db = test_join(other, "metrics.db");
    assert_int_equal(mkdir(other, 0700), 0);
    assert_int_equal(mkdir(db, 0700), 0); /* a directory where the file goes */
    const char *args[] = {"bench", model, "--suite", "--json", "--data", other, NULL};
    char *out = NULL, *err = NULL;
    assert_int_equal(agent(args, &out, &err), 0);
    json_t *v = json_loads(out, 0, NULL);
    assert_non_null(v);
    assert_int_equal(json_array_size(json_object_get(v, "prompts")), PROMPTS);
    assert_true(json_is_false(json_object_get(v, "recorded")));
    assert_non_null(strstr(err, "warning: the run was not recorded"));
    json_decref(v);
    free(out);
    free(err);
    free(db);
    free(other);
}

static int group_setup(void **state)
{
    dir = test_tmpdir("it-bench-suite");
    data = test_join(dir, "data"); /* not there yet: the suite makes it */
    model = test_join(dir, "tiny-synthetic-model-for-the-bench-suite.gguf");
    const char *args[] = {"model", "synth", "--out", model, NULL};
    return agent(args, NULL, NULL) == 0 ? 0 : -1;
}

static int group_teardown(void **state)
{
    test_tmpdir_remove(dir);
    free(data);
    free(model);
    return 0;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_suite_json_adds_up_and_history_has_it),
        cmocka_unit_test(test_gen_tokens_bounds_each_answer),
        cmocka_unit_test(test_tables_show_the_run),
        cmocka_unit_test(test_unknown_model_fails_and_records_nothing),
        cmocka_unit_test(test_unwritable_history_still_prints),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
