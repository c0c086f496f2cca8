/*
 * test_err.c — common/err: codes, names, default texts, sentences, prefixes
 * and the exit statuses DESIGN.md promises (0 success, 2 usage/config, 1 else).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "common/err.h"

static void test_err_set_records_code_and_sentence(void **state)
{
    (void)state;
    mlx_err e;
    mlx_err_clear(&e);
    int rc = mlx_err_set(&e, MLX_EIO, "cannot read %s: %d", "/tmp/x", 7);
    assert_int_equal(rc, MLX_EIO);
    assert_int_equal(e.code, MLX_EIO);
    assert_string_equal(e.msg, "cannot read /tmp/x: 7");
}

static void test_err_set_with_null_err_returns_code(void **state)
{
    (void)state;
    assert_int_equal(mlx_err_set(NULL, MLX_ENOENT, "no %s", "file"), MLX_ENOENT);
    mlx_err_clear(NULL); /* must not crash */
}

static void test_err_clear_resets_code_and_text(void **state)
{
    (void)state;
    mlx_err e;
    mlx_err_set(&e, MLX_EIO, "broken");
    mlx_err_clear(&e);
    assert_int_equal(e.code, 0);
    assert_string_equal(e.msg, "");
}

static void test_err_set_cuts_long_sentence_at_buffer_end(void **state)
{
    (void)state;
    char big[2 * MLX_MAX_ERR_MSG];
    memset(big, 'x', sizeof big - 1);
    big[sizeof big - 1] = '\0';
    mlx_err e;
    mlx_err_set(&e, MLX_EINVAL, "%s", big);
    assert_int_equal(strlen(e.msg), MLX_MAX_ERR_MSG - 1);
}

/* "é" is two bytes: a sentence of them cut at an odd length would end in
 * half of one. */
static void test_err_set_never_cuts_a_character_in_half(void **state)
{
    (void)state;
    char big[2 * MLX_MAX_ERR_MSG + 1];
    for (size_t i = 0; i + 1 < sizeof big; i += 2)
        memcpy(big + i, "\xc3\xa9", 2);
    big[sizeof big - 1] = '\0';
    for (int shift = 0; shift < 2; shift++) {
        mlx_err e;
        mlx_err_set(&e, MLX_EINVAL, "%.*s%s", shift, "x", big);
        size_t len = strlen(e.msg);
        assert_true(len >= MLX_MAX_ERR_MSG - 2 && len <= MLX_MAX_ERR_MSG - 1);
        assert_int_equal((len - (size_t)shift) % 2, 0); /* only whole "é"s */
        mlx_err_prefix(&e, MLX_EINVAL, "%.*s", 1 - shift, "y");
        len = strlen(e.msg);
        assert_int_equal((len - 3) % 2, 0); /* "y: " or ": x", then "é"s */
    }
}

static void test_err_prefix_puts_context_in_front(void **state)
{
    (void)state;
    mlx_err e;
    mlx_err_set(&e, MLX_ECONFIG, "unknown key 'x'");
    int rc = mlx_err_prefix(&e, MLX_ECONFIG, "reading %s", "fleet.ini");
    assert_int_equal(rc, MLX_ECONFIG);
    assert_int_equal(e.code, MLX_ECONFIG);
    assert_string_equal(e.msg, "reading fleet.ini: unknown key 'x'");
}

static void test_err_prefix_cuts_at_buffer_end(void **state)
{
    (void)state;
    mlx_err e;
    char old[MLX_MAX_ERR_MSG];
    memset(old, 'o', sizeof old - 1);
    old[sizeof old - 1] = '\0';
    mlx_err_set(&e, MLX_EIO, "%s", old);
    mlx_err_prefix(&e, MLX_EIO, "ctx");
    assert_int_equal(strlen(e.msg), MLX_MAX_ERR_MSG - 1);
    assert_memory_equal(e.msg, "ctx: ooo", 8);
}

static void test_err_prefix_with_null_err_still_returns_the_code(void **state)
{
    (void)state;
    assert_int_equal(mlx_err_prefix(NULL, MLX_EIO, "ctx %d", 1), MLX_EIO);
}

static void test_err_prefix_sets_the_code_it_passes_up(void **state)
{
    (void)state;
    mlx_err e;
    mlx_err_set(&e, MLX_EINVAL, "'x' is not a number");
    assert_int_equal(mlx_err_prefix(&e, MLX_ECONFIG, "--port"), MLX_ECONFIG);
    assert_int_equal(e.code, MLX_ECONFIG);
    assert_string_equal(e.msg, "--port: 'x' is not a number");
}

static void test_err_names_and_texts_come_from_the_map(void **state)
{
    (void)state;
    assert_string_equal(mlx_errname(MLX_EINVAL), "EINVAL");
    assert_string_equal(mlx_strerror(MLX_EINVAL), "invalid argument");
    assert_string_equal(mlx_errname(MLX_ENOMEM), "ENOMEM");
    assert_string_equal(mlx_strerror(MLX_ENOMEM), "out of memory");
    assert_string_equal(mlx_errname(MLX_ETIMEDOUT), "ETIMEDOUT");
    assert_string_equal(mlx_strerror(MLX_ETIMEDOUT), "timed out");
    assert_string_equal(mlx_errname(MLX_EINTERNAL), "EINTERNAL");
    assert_string_equal(mlx_strerror(MLX_EINTERNAL), "internal error");
    assert_string_equal(mlx_errname(MLX_OK), "OK");
    assert_string_equal(mlx_strerror(MLX_OK), "success");
}

static void test_err_every_code_is_negative_distinct_and_named(void **state)
{
    (void)state;
#define CHECK_(name, text)                                                               \
    assert_true(MLX_##name < 0);                                                         \
    assert_string_equal(mlx_errname(MLX_##name), #name);                                 \
    assert_string_equal(mlx_strerror(MLX_##name), text);
    MLX_ERRNO_MAP(CHECK_)
#undef CHECK_
    /* The enum is consecutive, so distinct names imply distinct codes. */
    int codes[] = {
#define CODE_(name, text) MLX_##name,
        MLX_ERRNO_MAP(CODE_)
#undef CODE_
    };
    size_t n = sizeof codes / sizeof codes[0];
    for (size_t i = 0; i < n; i++)
        for (size_t j = i + 1; j < n; j++)
            assert_int_not_equal(codes[i], codes[j]);
}

static void test_err_unknown_code_has_fallback_text(void **state)
{
    (void)state;
    assert_string_equal(mlx_errname(12345), "EUNKNOWN");
    assert_string_equal(mlx_strerror(12345), "unknown error");
    assert_string_equal(mlx_errname(MLX_ERR_LAST_), "EUNKNOWN");
    assert_string_equal(mlx_errname(-1), "EUNKNOWN");
}

static void test_err_text_prefers_the_sentence(void **state)
{
    (void)state;
    mlx_err e;
    mlx_err_clear(&e);
    assert_string_equal(mlx_err_text(&e, MLX_EIO), "input/output error");
    assert_string_equal(mlx_err_text(NULL, MLX_EBUSY), "busy");
    mlx_err_set(&e, MLX_EIO, "disk on fire");
    assert_string_equal(mlx_err_text(&e, MLX_EIO), "disk on fire");
}

static void test_err_exit_status_follows_design(void **state)
{
    (void)state;
    assert_int_equal(mlx_exit_status(0), 0);
    assert_int_equal(mlx_exit_status(MLX_EUSAGE), 2);
    assert_int_equal(mlx_exit_status(MLX_ECONFIG), 2);
    assert_int_equal(mlx_exit_status(MLX_EIO), 1);
    assert_int_equal(mlx_exit_status(MLX_EINVAL), 1);
    assert_int_equal(mlx_exit_status(MLX_ENOMEM), 1);
    assert_int_equal(mlx_exit_status(MLX_EINTERNAL), 1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_err_set_records_code_and_sentence),
        cmocka_unit_test(test_err_set_with_null_err_returns_code),
        cmocka_unit_test(test_err_clear_resets_code_and_text),
        cmocka_unit_test(test_err_set_cuts_long_sentence_at_buffer_end),
        cmocka_unit_test(test_err_set_never_cuts_a_character_in_half),
        cmocka_unit_test(test_err_prefix_puts_context_in_front),
        cmocka_unit_test(test_err_prefix_cuts_at_buffer_end),
        cmocka_unit_test(test_err_prefix_with_null_err_still_returns_the_code),
        cmocka_unit_test(test_err_prefix_sets_the_code_it_passes_up),
        cmocka_unit_test(test_err_names_and_texts_come_from_the_map),
        cmocka_unit_test(test_err_every_code_is_negative_distinct_and_named),
        cmocka_unit_test(test_err_unknown_code_has_fallback_text),
        cmocka_unit_test(test_err_text_prefers_the_sentence),
        cmocka_unit_test(test_err_exit_status_follows_design),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
