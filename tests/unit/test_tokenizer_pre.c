/*
 * test_tokenizer_pre.c — the pre-tokenizer splits of byte-level BPE
 * vocabularies (agent/engine/tokenizer_pre.c). Each expected split was
 * worked out by hand from the pattern, trying its alternatives in order at
 * each position and taking the first that matches, greedily:
 *
 *   llama-bpe  (?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|
 *              \p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+
 *   qwen2      the same with \p{N}
 *   gpt-2      's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|
 *              \s+(?!\S)|\s+
 *   smollm     each \p{N} alone, then gpt-2 between them
 *
 * Words are shown joined by '|' (no test text has one).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "agent/engine/tokenizer_int.h"

struct joined {
    const uint8_t *text;
    char out[512];
    size_t len;
    size_t next; /* where the next word must start */
};

static int collect(void *arg, size_t start, size_t end)
{
    struct joined *j = arg;
    assert_int_equal(start, j->next); /* the words tile the text */
    assert_true(end > start);
    if (j->len > 0)
        j->out[j->len++] = '|';
    memcpy(j->out + j->len, j->text + start, end - start);
    j->len += end - start;
    j->out[j->len] = '\0';
    j->next = end;
    return 0;
}

static void expect_split(tok_pre pre, const char *text, const char *want)
{
    struct joined j = {(const uint8_t *)text, "", 0, 0};
    assert_int_equal(tok_pre_split(pre, j.text, strlen(text), collect, &j), 0);
    assert_int_equal(j.next, strlen(text));
    if (strcmp(j.out, want) != 0)
        fail_msg("'%s': got '%s', want '%s'", text, j.out, want);
}

static void test_llama3(void **state)
{
    tok_pre p = TOK_PRE_LLAMA3;
    expect_split(p, "Hello world", "Hello| world");
    /* contractions, in any case */
    expect_split(p, "I'm sure you've heard they'll do it",
                 "I|'m| sure| you|'ve| heard| they|'ll| do| it");
    expect_split(p, "DON'T WE'RE", "DON|'T| WE|'RE");
    expect_split(p, "x's 'hello", "x|'s| '|hello");
    expect_split(p, "'hello", "'hello");
    /* digits in threes; a space before a digit stands alone */
    expect_split(p, "12345 and 3.14159", "123|45| and| |3|.|141|59");
    expect_split(p, "abc1234567def", "abc|123|456|7|def");
    /* newlines: \s*[\r\n]+ takes the run through its last newline */
    expect_split(p, "a\n\nb", "a|\n\n|b");
    expect_split(p, "a \n b", "a| \n| b");
    expect_split(p, "a\r\n", "a|\r\n");
    /* runs of spaces: all but the last, which goes with the next word */
    expect_split(p, "a   b", "a|  | b");
    expect_split(p, "  leading", " | leading");
    expect_split(p, "trailing  ", "trailing|  ");
    expect_split(p, "\tand", "\tand");
    /* punctuation takes a space before it and newlines after it */
    expect_split(p, "hello!!!\n\nworld ?!", "hello|!!!\n\n|world| ?!");
    expect_split(p, "  !", " | !");
    /* letters beyond ASCII, symbols, invalid bytes (U+FFFD, a symbol) */
    expect_split(p, "café naïve résumé", "café| naïve| résumé");
    expect_split(p, "東京は日本の首都です", "東京は日本の首都です");
    expect_split(p, "emoji 🎉🚀 done", "emoji| 🎉🚀| done");
    expect_split(p,
                 "a\xff\xfe"
                 "b",
                 "a|\xff\xfe|b");
    expect_split(p, "Ωmega ٣٤٥٦", "Ωmega| |٣٤٥|٦");
    /* a no-break space is white space */
    expect_split(p,
                 "a\xc2\xa0\xc2\xa0"
                 "b",
                 "a|\xc2\xa0|\xc2\xa0"
                 "b");
    expect_split(p, "", "");
}

static void test_qwen2(void **state)
{
    tok_pre p = TOK_PRE_QWEN2;
    expect_split(p, "12345 and 3.14", "1|2|3|4|5| and| |3|.|1|4");
    expect_split(p, "I'M here", "I|'M| here");
    expect_split(p, "a \n\n  b", "a| \n\n| | b");
}

static void test_gpt2(void **state)
{
    tok_pre p = TOK_PRE_GPT2;
    expect_split(p, "Hello world", "Hello| world");
    /* contractions in lower case only */
    expect_split(p, "I'm DON'T", "I|'m| DON|'|T");
    expect_split(p, "x 12345 3.5", "x| 12345| 3|.|5");
    /* no newline rule: \s+(?!\S) leaves one for the next word */
    expect_split(p, "a\n\nb", "a|\n|\n|b");
    expect_split(p, "a   b", "a|  | b");
    expect_split(p, "end  ", "end|  ");
    expect_split(p, "hi!!\n", "hi|!!|\n");
    expect_split(p, "naïve 東京", "naïve| 東京");
}

static void test_smollm(void **state)
{
    tok_pre p = TOK_PRE_SMOLLM;
    expect_split(p, "abc123", "abc|1|2|3");
    expect_split(p, "a 12 b", "a| |1|2| b");
    expect_split(p, "x1y", "x|1|y");
    expect_split(p, "it's 2am", "it|'s| |2|am");
}

static int stop_at_second(void *arg, size_t start, size_t end)
{
    int *calls = arg;
    return ++*calls == 2 ? -7 : 0;
}

static void test_stop(void **state)
{
    int calls = 0;
    const uint8_t text[] = "one two three";
    assert_int_equal(tok_pre_split(TOK_PRE_LLAMA3, text, 13, stop_at_second, &calls), -7);
    assert_int_equal(calls, 2);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_llama3), cmocka_unit_test(test_qwen2),
        cmocka_unit_test(test_gpt2),   cmocka_unit_test(test_smollm),
        cmocka_unit_test(test_stop),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
