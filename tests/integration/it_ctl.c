/*
 * it_ctl.c — mlxctl's run, chat and top end to end: a coordinator and two
 * agents on loopback with stories260K in both stores.
 *
 * Every answer is checked against what an agent gives directly for the
 * same greedy request, asked over its own HTTP API: `run` prints exactly
 * that text (streamed) or the same content as JSON; `chat` with lines piped
 * in answers the second line as the agent answers the whole two-turn
 * conversation (so the history was sent), and after /clear as it answers
 * the second line alone. An unknown model and a wrong API key end in one
 * sentence and exit 1. `top` shows one row per node with its loaded model,
 * prints JSON that parses, and ends cleanly on SIGINT.
 */
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "tests/integration/cluster.h"
#include "tests/integration/serving.h"
#include "tests/support/testutil.h"

#define HB      100
#define SUSPECT 10
#define DOWN    50
#define WAIT_MS 15000
#define RUN_MS  60000

#define FIRST  "Once upon a time"
#define SECOND "The little dog"
#define SYSTEM "You tell short stories."

static cluster *c;
static char *model_file;  /* ../shared/testdata/stories260K.gguf */
static serving direct[2]; /* the agents' own HTTP */

/* ---- setup ------------------------------------------------------------------ */

static int group_setup(void **state)
{
    c = cluster_create("ctl", HB, SUSPECT, DOWN);
    cluster_start_coordinator(c);
    if (!cluster_start_holding(c, 2, model_file, SERVING_MODEL, WAIT_MS))
        return -1;
    for (int i = 0; i < 2; i++)
        snprintf(direct[i].base, sizeof direct[i].base, "http://127.0.0.1:%d",
                 c->agents[i].http_port);
    return 0;
}

static int group_teardown(void **state)
{
    cluster_destroy(c);
    free(model_file);
    return 0;
}

/* ---- helpers ---------------------------------------------------------------- */

/* The conversation [system?, user, assistant, user, …] of turns (user and
 * assistant alternating, NULL-terminated). */
static json_t *conversation(const char *system, const char *const *turns)
{
    json_t *messages = json_array();
    if (system != NULL)
        json_array_append_new(
            messages, json_pack("{s:s, s:s}", "role", "system", "content", system));
    for (int i = 0; turns[i] != NULL; i++)
        json_array_append_new(messages, json_pack("{s:s, s:s}", "role",
                                                  i % 2 ? "assistant" : "user", "content",
                                                  turns[i]));
    return messages;
}

/* Agent 0's own greedy answer, 16 tokens at most (caller frees). */
static char *agent_answer(const char *system, const char *const *turns)
{
    json_t *req =
        json_pack("{s:s, s:o, s:i, s:i}", "model", SERVING_MODEL, "messages",
                  conversation(system, turns), "max_tokens", 16, "temperature", 0);
    char *body = json_dumps(req, JSON_COMPACT);
    json_t *v = serving_post_ok(&direct[0], "/v1/chat/completions", body);
    const char *text = json_string_value(json_object_get(
        json_object_get(json_array_get(json_object_get(v, "choices"), 0), "message"),
        "content"));
    assert_non_null(text);
    assert_true(strlen(text) > 0);
    char *copy = strdup(text);
    json_decref(v);
    json_decref(req);
    free(body);
    return copy;
}

/* mlxctl against the cluster's coordinator: args (NULL-terminated) after
 * the --coordinator flag, with input (NULL: none) as stdin, which is then a
 * file, not a terminal. Returns the exit status. */
static int mlxctl(const char *const *args, const char *input, char **out, char **err)
{
    const char *argv[32];
    int n = 0;
    char *input_path = NULL;
    if (input != NULL) {
        input_path = test_join(c->dir, "input.txt");
        FILE *f = fopen(input_path, "w");
        assert_non_null(f);
        fputs(input, f);
        fclose(f);
        argv[n++] = "-c";
        argv[n++] = "f=$1; shift; exec \"$@\" < \"$f\"";
        argv[n++] = "sh";
        argv[n++] = input_path;
        argv[n++] = h_bin("mlxctl");
    }
    argv[n++] = "--coordinator";
    argv[n++] = c->http_url;
    for (int i = 0; args[i] != NULL; i++) {
        assert_true(n < 31);
        argv[n++] = args[i];
    }
    argv[n] = NULL;
    int status = h_run(input != NULL ? "/bin/sh" : "mlxctl", argv, RUN_MS, out, err);
    free(input_path);
    return status;
}

/* stderr is one sentence of mlxctl's: one line, "mlxctl: …". */
static void assert_one_sentence(const char *err)
{
    assert_non_null(err);
    if (strncmp(err, "mlxctl: ", 8) != 0 || strchr(err, '\n') == NULL ||
        strchr(err, '\n')[1] != '\0')
        fail_msg("stderr is not one sentence: '%s'", err);
}

static char *joined(const char *a, const char *b)
{
    size_t n = strlen(a) + strlen(b) + 1;
    char *s = malloc(n);
    assert_non_null(s);
    snprintf(s, n, "%s%s", a, b);
    return s;
}

/* ---- run ---------------------------------------------------------------------- */

static void test_run_prints_the_agent_s_answer(void **state)
{
    char *want = agent_answer(NULL, (const char *const[]){FIRST, NULL});
    const char *args[] = {"run", SERVING_MODEL,   FIRST, "--max-tokens",
                          "16",  "--temperature", "0",   NULL};
    char *out = NULL, *err = NULL;
    int status = mlxctl(args, NULL, &out, &err);
    if (status != 0)
        fail_msg("mlxctl run: exit %d: %s", status, err);
    char *expected = joined(want, "\n"); /* the text, then a newline */
    assert_string_equal(out, expected);
    assert_string_equal(err, "");
    free(expected);
    free(out);
    free(err);
    free(want);
}

static void test_run_sends_the_system_prompt(void **state)
{
    char *want = agent_answer(SYSTEM, (const char *const[]){FIRST, NULL});
    const char *args[] = {
        "run",          SERVING_MODEL, FIRST,           "--system", SYSTEM,
        "--max-tokens", "16",          "--temperature", "0",        NULL};
    char *out = NULL, *err = NULL;
    assert_int_equal(mlxctl(args, NULL, &out, &err), 0);
    char *expected = joined(want, "\n");
    assert_string_equal(out, expected);
    free(expected);
    free(out);
    free(err);
    free(want);
}

static void test_run_json_is_the_api_s_answer(void **state)
{
    char *want = agent_answer(NULL, (const char *const[]){FIRST, NULL});
    const char *args[] = {"run", SERVING_MODEL,   FIRST, "--max-tokens",
                          "16",  "--temperature", "0",   "--json",
                          NULL};
    char *out = NULL, *err = NULL;
    assert_int_equal(mlxctl(args, NULL, &out, &err), 0);
    /* One line of JSON. */
    assert_non_null(strchr(out, '\n'));
    assert_string_equal(strchr(out, '\n'), "\n");
    json_error_t jerr;
    json_t *v = json_loads(out, 0, &jerr);
    if (v == NULL)
        fail_msg("mlxctl run --json printed what is not JSON (%s): %s", jerr.text, out);
    assert_string_equal(json_string_value(json_object_get(v, "object")),
                        "chat.completion");
    json_t *choice = json_array_get(json_object_get(v, "choices"), 0);
    assert_string_equal(
        json_string_value(json_object_get(json_object_get(choice, "message"), "content")),
        want);
    json_decref(v);
    free(out);
    free(err);
    free(want);
}

static void test_run_unknown_model_is_one_sentence(void **state)
{
    const char *args[] = {"run", "no-such-model", FIRST, NULL};
    char *out = NULL, *err = NULL;
    assert_int_equal(mlxctl(args, NULL, &out, &err), 1);
    assert_one_sentence(err);
    assert_non_null(strstr(err, "'no-such-model'"));
    assert_string_equal(out, "");
    free(out);
    free(err);

    const char *json_args[] = {"run", "no-such-model", FIRST, "--json", NULL};
    assert_int_equal(mlxctl(json_args, NULL, &out, &err), 1);
    assert_one_sentence(err);
    assert_non_null(strstr(err, "'no-such-model'"));
    free(out);
    free(err);
}

/* ---- chat --------------------------------------------------------------------- */

static void test_chat_sends_the_conversation(void **state)
{
    char *first = agent_answer(SYSTEM, (const char *const[]){FIRST, NULL});
    char *second =
        agent_answer(SYSTEM, (const char *const[]){FIRST, first, SECOND, NULL});
    /* Else this test could not tell whether the history was sent. */
    char *alone = agent_answer(SYSTEM, (const char *const[]){SECOND, NULL});
    assert_string_not_equal(second, alone);

    const char *args[] = {"chat", SERVING_MODEL,   "--system", SYSTEM, "--max-tokens",
                          "16",   "--temperature", "0",        NULL};
    char *out = NULL, *err = NULL;
    int status = mlxctl(args, FIRST "\n" SECOND "\n", &out, &err);
    if (status != 0)
        fail_msg("mlxctl chat: exit %d: %s", status, err);
    /* Piped: only the answers, each followed by a newline. */
    char *a = joined(first, "\n"), *b = joined(second, "\n");
    char *expected = joined(a, b);
    assert_string_equal(out, expected);
    assert_string_equal(err, "");
    free(expected);
    free(a);
    free(b);
    free(out);
    free(err);
    free(first);
    free(second);
    free(alone);
}

static void test_chat_clear_forgets_the_conversation(void **state)
{
    char *first = agent_answer(NULL, (const char *const[]){FIRST, NULL});
    char *alone = agent_answer(NULL, (const char *const[]){SECOND, NULL});
    const char *args[] = {"chat", SERVING_MODEL, "--max-tokens", "16", "--temperature",
                          "0",    NULL};
    char *out = NULL, *err = NULL;
    /* Blank lines are skipped; /bye ends before the last line. */
    assert_int_equal(
        mlxctl(args, FIRST "\n\n/clear\n" SECOND "\n/bye\n" FIRST "\n", &out, &err), 0);
    char *a = joined(first, "\n"), *b = joined(alone, "\n");
    char *expected = joined(a, b);
    assert_string_equal(out, expected);
    assert_string_equal(err, "");
    free(expected);
    free(a);
    free(b);
    free(out);
    free(err);
    free(first);
    free(alone);
}

static void test_chat_json_prints_each_answer(void **state)
{
    char *first = agent_answer(NULL, (const char *const[]){FIRST, NULL});
    char *second = agent_answer(NULL, (const char *const[]){FIRST, first, SECOND, NULL});
    const char *args[] = {"chat",          SERVING_MODEL, "--max-tokens", "16",
                          "--temperature", "0",           "--json",       NULL};
    char *out = NULL, *err = NULL;
    assert_int_equal(mlxctl(args, FIRST "\n" SECOND "\n", &out, &err), 0);
    const char *want[] = {first, second};
    char *line = out;
    for (int i = 0; i < 2; i++) {
        char *end = strchr(line, '\n');
        assert_non_null(end);
        *end = '\0';
        json_t *v = json_loads(line, 0, NULL);
        if (v == NULL)
            fail_msg("answer %d is not one line of JSON: %s", i + 1, line);
        json_t *choice = json_array_get(json_object_get(v, "choices"), 0);
        assert_string_equal(json_string_value(json_object_get(
                                json_object_get(choice, "message"), "content")),
                            want[i]);
        json_decref(v);
        line = end + 1;
    }
    assert_string_equal(line, "");
    free(out);
    free(err);
    free(first);
    free(second);
}

static void test_chat_failure_ends_a_piped_chat(void **state)
{
    const char *args[] = {"chat", "no-such-model", NULL};
    char *out = NULL, *err = NULL;
    assert_int_equal(mlxctl(args, FIRST "\n" SECOND "\n", &out, &err), 1);
    assert_one_sentence(err); /* the first failure ends it: one sentence */
    assert_non_null(strstr(err, "'no-such-model'"));
    free(out);
    free(err);

    const char *unknown[] = {"chat", SERVING_MODEL, NULL};
    assert_int_equal(mlxctl(unknown, "/frobnicate\n", &out, &err), 2);
    assert_one_sentence(err);
    assert_non_null(strstr(err, "/frobnicate"));
    free(out);
    free(err);
}

/* ---- top ---------------------------------------------------------------------- */

/* Both agents show SERVING_MODEL loaded in /api/v1/ps. */
static bool loaded_on_both(void *arg)
{
    char url[128];
    snprintf(url, sizeof url, "%s/api/v1/ps", c->http_url);
    json_t *doc = h_get_json(url, NULL);
    size_t i, k;
    json_t *n, *m;
    int loaded = 0;
    json_array_foreach(json_object_get(doc, "nodes"), i, n)
    {
        json_array_foreach(json_object_get(n, "models"), k, m)
        {
            const char *name = json_string_value(json_object_get(m, "name"));
            loaded += name != NULL && strcmp(name, SERVING_MODEL) == 0;
        }
    }
    json_decref(doc);
    return loaded == 2;
}

static void load_on_both(void)
{
    for (int i = 0; i < 2; i++)
        free(agent_answer(NULL, (const char *const[]){FIRST, NULL}));
    /* agent_answer asks agent 0; agent 1 loads with its own request. */
    json_decref(serving_post_ok(&direct[1], "/v1/chat/completions",
                                "{\"model\":\"stories\",\"messages\":[{\"role\":\"user\","
                                "\"content\":\"hi\"}],\"max_tokens\":2}"));
    if (!h_wait_for(loaded_on_both, NULL, WAIT_MS))
        fail_msg("the coordinator never showed %s loaded on both agents", SERVING_MODEL);
}

/* The line of text that starts with name followed by a space, or NULL. */
static const char *row_of(const char *text, const char *name)
{
    size_t n = strlen(name);
    for (const char *p = text; p != NULL && *p != '\0';) {
        if (strncmp(p, name, n) == 0 && p[n] == ' ')
            return p;
        p = strchr(p, '\n');
        if (p != NULL)
            p++;
    }
    return NULL;
}

static int count(const char *text, const char *needle)
{
    int k = 0;
    for (const char *p = strstr(text, needle); p != NULL; p = strstr(p + 1, needle))
        k++;
    return k;
}

static void test_top_shows_each_node_and_its_models(void **state)
{
    load_on_both();
    const char *args[] = {"top", "--iterations", "2", "--interval-ms", "200", NULL};
    char *out = NULL, *err = NULL;
    int64_t start = h_now_ms();
    int status = mlxctl(args, NULL, &out, &err);
    if (status != 0)
        fail_msg("mlxctl top: exit %d: %s", status, err);
    assert_true(h_now_ms() - start >= 200); /* it waited between the two */
    /* Piped: two refreshes, each a header line and a table, a blank line
     * between them; no terminal codes. */
    assert_int_equal(count(out, "NODE "), 2);
    assert_int_equal(count(out, "\n\nmlxctl top "), 1);
    assert_null(strchr(out, '\033'));
    const char *second = strstr(out, "\n\nmlxctl top ");
    for (int i = 0; i < 2; i++) {
        const char *row = row_of(second, c->agents[i].name);
        if (row == NULL)
            fail_msg("no row for %s in: %s", c->agents[i].name, out);
        const char *end = strchr(row, '\n');
        char line[512];
        snprintf(line, sizeof line, "%.*s", (int)(end - row), row);
        if (strstr(line, " up ") == NULL || strstr(line, SERVING_MODEL) == NULL)
            fail_msg("the row of %s does not show it up with %s: '%s'", c->agents[i].name,
                     SERVING_MODEL, line);
    }
    assert_string_equal(err, "");
    free(out);
    free(err);
}

static void test_top_json_is_one_object_per_refresh(void **state)
{
    load_on_both();
    const char *args[] = {"top", "--iterations", "2", "--interval-ms",
                          "200", "--json",       NULL};
    char *out = NULL, *err = NULL;
    assert_int_equal(mlxctl(args, NULL, &out, &err), 0);
    char *line = out;
    for (int refresh = 0; refresh < 2; refresh++) {
        char *end = strchr(line, '\n');
        assert_non_null(end);
        *end = '\0';
        json_t *v = json_loads(line, 0, NULL);
        if (v == NULL)
            fail_msg("refresh %d is not one line of JSON: %s", refresh + 1, line);
        assert_true(json_integer_value(json_object_get(v, "unix_ms")) > 0);
        json_t *nodes = json_object_get(v, "nodes");
        assert_int_equal(json_array_size(nodes), 2);
        for (int i = 0; i < 2; i++) {
            json_t *node = cluster_find_node(v, c->agents[i].node_id);
            assert_non_null(node);
            assert_string_equal(json_string_value(json_object_get(node, "name")),
                                c->agents[i].name);
            assert_true(json_is_object(json_object_get(node, "metrics")));
            assert_true(json_is_object(json_object_get(node, "load")));
            assert_true(json_is_number(json_object_get(node, "tokens_per_s")));
            json_t *model = json_array_get(json_object_get(node, "models"), 0);
            assert_string_equal(json_string_value(json_object_get(model, "name")),
                                SERVING_MODEL);
        }
        json_decref(v);
        line = end + 1;
    }
    assert_string_equal(line, "");
    free(out);
    free(err);
}

static bool log_has_table(void *arg)
{
    return h_count_lines(((h_proc *)arg)->log_path, "NODE") > 0;
}

static void test_top_ends_cleanly_on_sigint(void **state)
{
    const char *args[] = {"--coordinator", c->http_url, "top",
                          "--interval-ms", "100",       NULL};
    h_proc *p = h_spawn("top", c->dir, "mlxctl", args);
    if (!h_wait_for(log_has_table, p, WAIT_MS))
        fail_msg("mlxctl top never drew a table; see %s", p->log_path);
    h_signal(p, SIGINT);
    assert_int_equal(h_wait_exit(p, 5000), 0);
    free(p);
}

/* ---- API keys (last: once a key exists, every request needs one) ------------------ */

static void test_a_wrong_api_key_is_one_sentence(void **state)
{
    const char *create[] = {"keys",    "create", "--name", "ctl-admin",
                            "--scope", "admin",  NULL};
    char *key = NULL, *err = NULL;
    assert_int_equal(mlxctl(create, NULL, &key, &err), 0);
    key[strcspn(key, "\n")] = '\0';
    free(err);

    const char *run_args[] = {"run", SERVING_MODEL, FIRST, "--api-key", "wrong", NULL};
    const char *top_args[] = {"top", "--iterations", "1", "--api-key", "wrong", NULL};
    const char *chat_args[] = {"chat", SERVING_MODEL, "--api-key", "wrong", NULL};
    const char *const *refused[] = {run_args, top_args, chat_args};
    for (int i = 0; i < 3; i++) {
        char *out = NULL;
        assert_int_equal(mlxctl(refused[i], i == 2 ? FIRST "\n" : NULL, &out, &err), 1);
        assert_one_sentence(err);
        assert_non_null(strstr(err, "API key"));
        free(out);
        free(err);
    }
    /* The right key reaches the streamed request too. */
    const char *ok_args[] = {"run", SERVING_MODEL, FIRST, "--max-tokens",
                             "4",   "--api-key",   key,   NULL};
    char *out = NULL;
    int status = mlxctl(ok_args, NULL, &out, &err);
    if (status != 0)
        fail_msg("mlxctl run with a valid key: exit %d: %s", status, err);
    free(out);
    free(err);
    free(key);
}

int main(void)
{
    model_file = test_shared_model("stories260K.gguf");
    if (model_file == NULL)
        return 77;
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_run_prints_the_agent_s_answer),
        cmocka_unit_test(test_run_sends_the_system_prompt),
        cmocka_unit_test(test_run_json_is_the_api_s_answer),
        cmocka_unit_test(test_run_unknown_model_is_one_sentence),
        cmocka_unit_test(test_chat_sends_the_conversation),
        cmocka_unit_test(test_chat_clear_forgets_the_conversation),
        cmocka_unit_test(test_chat_json_prints_each_answer),
        cmocka_unit_test(test_chat_failure_ends_a_piped_chat),
        cmocka_unit_test(test_top_shows_each_node_and_its_models),
        cmocka_unit_test(test_top_json_is_one_object_per_refresh),
        cmocka_unit_test(test_top_ends_cleanly_on_sigint),
        cmocka_unit_test(test_a_wrong_api_key_is_one_sentence),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
