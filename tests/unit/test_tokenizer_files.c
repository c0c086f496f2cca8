/*
 * test_tokenizer_files.c — the tokenizers against llama.cpp on the shared
 * vocabularies (../shared/testdata, see REFERENCE.md there): every
 * "tokenize" case of reference.json and the prompt ids of every run of
 * every model in it, id for id; all of War and Peace with the 32k
 * SentencePiece vocabulary of llama-2-tiny-random.gguf and with the Llama 3
 * vocabulary, id for id (the first difference printed with its context),
 * and decoded back to the very text, whole and streamed one id at a time;
 * streamed CJK and emoji text never shows half a character. Skips (77)
 * when the folder is absent.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "agent/engine/gguf.h"
#include "agent/engine/tokenizer.h"
#include "common/alloc.h"
#include "common/json.h"
#include "tests/support/testutil.h"

static tokenizer *load_shared(const char *name)
{
    char *path = test_testdata(name);
    if (path == NULL)
        fail_msg("%s is missing from the shared test data", name);
    gguf_file *f = NULL;
    tokenizer *t = NULL;
    mlx_err err;
    if (gguf_open(path, &f, &err) != 0 || tokenizer_load(f, &t, &err) != 0)
        fail_msg("%s: %s", name, err.msg);
    gguf_close(f); /* the tokenizer keeps what it needs */
    free(path);
    return t;
}

static void print_ids(const char *label, const int32_t *ids, size_t n)
{
    fprintf(stderr, "  %s:", label);
    for (size_t i = 0; i < n; i++)
        fprintf(stderr, " %d", ids[i]);
    fprintf(stderr, "\n");
}

/* Tokenizes text as the reference did (BOS as the metadata says, special
 * tokens parsed) and compares with want; returns the number of failures. */
static int check_ids(const char *file, const tokenizer *t, const char *text,
                     const json_t *want)
{
    int32_t *ids = NULL;
    size_t n = 0;
    mlx_err err;
    if (tokenizer_encode(t, text, strlen(text), tokenizer_adds_bos(t), true, &ids, &n,
                         &err) != 0)
        fail_msg("%s: '%s': %s", file, text, err.msg);
    bool same = n == json_array_size(want);
    for (size_t i = 0; same && i < n; i++)
        same = ids[i] == json_integer_value(json_array_get(want, i));
    if (!same) {
        fprintf(stderr, "%s: '%s' tokenized differently\n", file, text);
        print_ids("got ", ids, n);
        fprintf(stderr, "  want:");
        for (size_t i = 0; i < json_array_size(want); i++)
            fprintf(stderr, " %lld",
                    (long long)json_integer_value(json_array_get(want, i)));
        fprintf(stderr, "\n");
    }
    mlx_free(ids);
    return same ? 0 : 1;
}

static json_t *load_reference(void)
{
    char *path = test_testdata("reference.json");
    if (path == NULL)
        fail_msg("reference.json is missing from the shared test data");
    size_t len;
    char *text = test_read_file(path, &len);
    json_t *root = NULL;
    mlx_err err;
    if (text == NULL || mlx_json_parse(text, len, &root, &err) != 0)
        fail_msg("reference.json: %s", text == NULL ? "unreadable" : err.msg);
    free(text);
    free(path);
    return root;
}

static void test_reference_cases(void **state)
{
    json_t *root = load_reference();
    json_t *groups = json_object_get(root, "tokenize");
    int failures = 0, cases = 0;
    for (size_t g = 0; g < json_array_size(groups); g++) {
        json_t *group = json_array_get(groups, g);
        const char *file = json_string_value(json_object_get(group, "file"));
        tokenizer *t = load_shared(file);
        json_t *list = json_object_get(group, "cases");
        for (size_t i = 0; i < json_array_size(list); i++, cases++) {
            json_t *c = json_array_get(list, i);
            failures += check_ids(file, t, json_string_value(json_object_get(c, "text")),
                                  json_object_get(c, "ids"));
        }
        tokenizer_free(t);
    }
    json_decref(root);
    assert_true(cases >= 25);
    assert_int_equal(failures, 0);
}

static void test_reference_prompts(void **state)
{
    json_t *root = load_reference();
    json_t *models = json_object_get(root, "models");
    int failures = 0, runs = 0;
    for (size_t m = 0; m < json_array_size(models); m++) {
        json_t *model = json_array_get(models, m);
        const char *file = json_string_value(json_object_get(model, "file"));
        tokenizer *t = load_shared(file);
        json_t *list = json_object_get(model, "runs");
        for (size_t i = 0; i < json_array_size(list); i++, runs++) {
            json_t *r = json_array_get(list, i);
            failures +=
                check_ids(file, t, json_string_value(json_object_get(r, "prompt")),
                          json_object_get(r, "prompt_ids"));
        }
        tokenizer_free(t);
    }
    json_decref(root);
    assert_true(runs >= 15);
    assert_int_equal(failures, 0);
}

/* The ids of a .ids file (decimal, separated by spaces). Caller frees. */
static int32_t *read_ids(const char *name, size_t *n)
{
    char *path = test_testdata(name);
    size_t len;
    char *text = path == NULL ? NULL : test_read_file(path, &len);
    if (text == NULL)
        fail_msg("%s is missing from the shared test data", name);
    int32_t *ids = malloc((len / 2 + 1) * sizeof *ids);
    assert_non_null(ids);
    *n = 0;
    for (size_t i = 0; i < len;) {
        if (text[i] < '0' || text[i] > '9') {
            i++;
            continue;
        }
        int64_t v = 0;
        while (i < len && text[i] >= '0' && text[i] <= '9')
            v = v * 10 + (text[i++] - '0');
        ids[(*n)++] = (int32_t)v;
    }
    free(text);
    free(path);
    return ids;
}

/* Streams ids one at a time into a buffer: no chunk ends inside a
 * character, and the whole is the decode of all ids. Returns the text
 * (mlx_free). */
static char *stream(const tokenizer *t, const int32_t *ids, size_t n, size_t *len)
{
    char *whole = NULL;
    size_t whole_len = 0;
    mlx_err err;
    if (tokenizer_decode(t, ids, n, &whole, &whole_len, &err) != 0)
        fail_msg("%s", err.msg);
    char *out = mlx_malloc(whole_len + 16);
    engine_decoder d;
    tokenizer_stream_init(&d);
    *len = 0;
    for (size_t i = 0; i < n; i++) {
        char chunk[ENGINE_MAX_PIECE];
        size_t k;
        if (tokenizer_stream_push(t, &d, ids[i], chunk, sizeof chunk, &k, &err) != 0)
            fail_msg("%s", err.msg);
        /* a chunk ends after an ASCII byte or the last byte of a character */
        if (k > 0) {
            size_t start = k - 1;
            while (start > 0 && ((uint8_t)chunk[start] & 0xC0) == 0x80)
                start--;
            uint8_t lead = (uint8_t)chunk[start];
            size_t want = lead < 0x80 ? 1 : lead >= 0xF0 ? 4 : lead >= 0xE0 ? 3 : 2;
            assert_int_equal(k - start, want);
        }
        assert_true(*len + k <= whole_len);
        memcpy(out + *len, chunk, k);
        *len += k;
    }
    *len += tokenizer_stream_flush(&d, out + *len, 16);
    assert_int_equal(*len, whole_len);
    assert_memory_equal(out, whole, whole_len);
    mlx_free(whole);
    return out;
}

static void test_stream_cjk_emoji(void **state)
{
    static const char *const texts[] = {
        "東京は日本の首都です", "emoji 🎉🚀 done", "Ünïcödé bytes",
        "混合 text with 漢字, ひらがな and 한국어 🇯🇵👍🏽",
        "ð"};
    static const char *const vocabs[] = {"llama-2-tiny-random.gguf", "llama3-vocab.gguf",
                                         "stories260K.gguf"};
    for (size_t v = 0; v < 3; v++) {
        tokenizer *t = load_shared(vocabs[v]);
        for (size_t i = 0; i < sizeof texts / sizeof texts[0]; i++) {
            int32_t *ids = NULL;
            size_t n = 0, len;
            assert_int_equal(tokenizer_encode(t, texts[i], strlen(texts[i]),
                                              tokenizer_adds_bos(t), true, &ids, &n,
                                              NULL),
                             0);
            char *back = stream(t, ids, n, &len);
            assert_int_equal(len, strlen(texts[i]));
            assert_memory_equal(back, texts[i], len);
            mlx_free(back);
            mlx_free(ids);
        }
        tokenizer_free(t);
    }
}

static void check_book(const char *vocab, const char *ids_file)
{
    char *path = test_testdata("war-and-peace.txt");
    size_t len;
    char *text = path == NULL ? NULL : test_read_file(path, &len);
    if (text == NULL)
        fail_msg("war-and-peace.txt is missing from the shared test data");
    size_t n_want;
    int32_t *want = read_ids(ids_file, &n_want);
    tokenizer *t = load_shared(vocab);
    int32_t *ids = NULL;
    size_t n = 0;
    mlx_err err;
    if (tokenizer_encode(t, text, len, tokenizer_adds_bos(t), true, &ids, &n, &err) != 0)
        fail_msg("%s: %s", vocab, err.msg);
    size_t i = 0;
    while (i < n && i < n_want && ids[i] == want[i])
        i++;
    if (i < n || i < n_want) {
        size_t from = i > 8 ? i - 8 : 0;
        fprintf(stderr, "%s: the ids differ first at index %zu (%zu ids, %zu wanted)\n",
                vocab, i, n, n_want);
        print_ids("got ", ids + from, (i + 8 < n ? i + 8 : n) - from);
        print_ids("want", want + from, (i + 8 < n_want ? i + 8 : n_want) - from);
        char *ctx = NULL;
        if (tokenizer_decode(t, want + from, (i + 8 < n_want ? i + 8 : n_want) - from,
                             &ctx, NULL, &err) == 0)
            fprintf(stderr, "  text: '%s'\n", ctx);
        mlx_free(ctx);
        fail();
    }
    char *back = NULL;
    size_t back_len = 0;
    if (tokenizer_decode(t, want, n_want, &back, &back_len, &err) != 0)
        fail_msg("%s: %s", vocab, err.msg);
    assert_int_equal(back_len, len);
    assert_memory_equal(back, text, len);
    mlx_free(back);
    back = stream(t, want, n_want, &back_len);
    assert_int_equal(back_len, len);
    mlx_free(back);
    mlx_free(ids);
    tokenizer_free(t);
    free(want);
    free(text);
    free(path);
}

static void test_book_llama2(void **state)
{
    check_book("llama-2-tiny-random.gguf", "war-and-peace.llama2.ids");
}

static void test_book_llama3(void **state)
{
    check_book("llama3-vocab.gguf", "war-and-peace.llama3.ids");
}

int main(void)
{
    char *probe = test_testdata("reference.json");
    if (probe == NULL) {
        printf("skipped: the shared test data (../shared/testdata or $MLX_TESTDATA) "
               "is absent\n");
        return TEST_SKIP;
    }
    free(probe);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_reference_cases),  cmocka_unit_test(test_reference_prompts),
        cmocka_unit_test(test_stream_cjk_emoji), cmocka_unit_test(test_book_llama2),
        cmocka_unit_test(test_book_llama3),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
