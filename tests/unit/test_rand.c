/*
 * test_rand.c — common/rand: random bytes and lower-case hex identifiers of
 * exactly the requested length, NUL-terminated, never writing past it, and
 * different from one call to the next.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "common/rand.h"

static const char hex_digits[] = "0123456789abcdef";

static void assert_lower_hex(const char *s, size_t n)
{
    assert_int_equal(strlen(s), n);
    for (size_t i = 0; i < n; i++)
        assert_non_null(strchr(hex_digits, s[i]));
}

static void test_rand_bytes_fill_and_differ(void **state)
{
    (void)state;
    unsigned char a[32], b[32], zero[32] = {0};
    memset(a, 0, sizeof a);
    memset(b, 0, sizeof b);
    assert_int_equal(mlx_rand_bytes(a, sizeof a, NULL), 0);
    assert_int_equal(mlx_rand_bytes(b, sizeof b, NULL), 0);
    /* 2^-256 odds of a false failure. */
    assert_memory_not_equal(a, zero, sizeof a);
    assert_memory_not_equal(a, b, sizeof a);
}

static void test_rand_bytes_zero_length_is_fine(void **state)
{
    (void)state;
    unsigned char a[1] = {0x5a};
    assert_int_equal(mlx_rand_bytes(a, 0, NULL), 0);
    assert_int_equal(a[0], 0x5a);
}

static void test_rand_hex_gives_node_id_shape(void **state)
{
    (void)state;
    char a[17], b[17];
    assert_int_equal(mlx_rand_hex(a, 16, NULL), 0);
    assert_int_equal(mlx_rand_hex(b, 16, NULL), 0);
    assert_lower_hex(a, 16);
    assert_lower_hex(b, 16);
    assert_string_not_equal(a, b); /* 2^-64 odds of a false failure */
}

static void test_rand_hex_odd_length_stops_exactly(void **state)
{
    (void)state;
    char out[16];
    memset(out, '#', sizeof out);
    assert_int_equal(mlx_rand_hex(out, 5, NULL), 0);
    assert_lower_hex(out, 5);
    for (size_t i = 6; i < sizeof out; i++)
        assert_int_equal(out[i], '#');
}

static void test_rand_hex_zero_digits_is_empty(void **state)
{
    (void)state;
    char out[2] = {'#', '#'};
    assert_int_equal(mlx_rand_hex(out, 0, NULL), 0);
    assert_string_equal(out, "");
    assert_int_equal(out[1], '#');
}

static void test_rand_hex_uses_every_digit(void **state)
{
    (void)state;
    /* 128 digits many times over: each of the 16 digits shows up, so the
     * nibble split covers both halves of each byte. */
    bool seen[16] = {false};
    char out[129];
    for (int round = 0; round < 20; round++) {
        assert_int_equal(mlx_rand_hex(out, 128, NULL), 0);
        assert_lower_hex(out, 128);
        for (size_t i = 0; i < 128; i++) {
            const char *p = strchr(hex_digits, out[i]);
            seen[p - hex_digits] = true;
        }
    }
    for (size_t i = 0; i < 16; i++)
        assert_true(seen[i]);
}

static void test_rand_hex_refuses_more_than_it_can_make(void **state)
{
    (void)state;
    char out[300];
    memset(out, '#', sizeof out);
    mlx_err e;
    mlx_err_clear(&e);
    assert_int_equal(mlx_rand_hex(out, 129, &e), MLX_EINVAL);
    assert_int_equal(e.code, MLX_EINVAL);
    assert_non_null(strstr(e.msg, "128"));
    assert_int_equal(out[0], '#');
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_rand_bytes_fill_and_differ),
        cmocka_unit_test(test_rand_bytes_zero_length_is_fine),
        cmocka_unit_test(test_rand_hex_gives_node_id_shape),
        cmocka_unit_test(test_rand_hex_odd_length_stops_exactly),
        cmocka_unit_test(test_rand_hex_zero_digits_is_empty),
        cmocka_unit_test(test_rand_hex_uses_every_digit),
        cmocka_unit_test(test_rand_hex_refuses_more_than_it_can_make),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
