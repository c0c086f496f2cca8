/*
 * test_sha256.c — common/sha256 against the published FIPS 180-2 / NIST
 * vectors (one-shot, streamed in uneven chunks, and from a file bigger than
 * the 1 MiB read chunk), plus hex formatting and parsing.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "common/alloc.h"
#include "common/sha256.h"
#include "tests/support/testutil.h"

/* FIPS 180-2 appendix B and the NIST CAVS examples. */
#define SHA_EMPTY "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
#define SHA_ABC   "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
#define MSG_448   "abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq"
#define SHA_448   "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1"
#define MSG_896                                                                          \
    "abcdefghbcdefghicdefghijdefghijkefghijklfghijklmghijklmnhijklmnoijklmnopjklmnopqkl" \
    "m"                                                                                  \
    "nopqrlmnopqrsmnopqrstnopqrstu"
#define SHA_896       "cf5b16a778af8380036ce59e7b0492370b249b11e8f07a51afac45037afee9d1"
#define SHA_MILLION_A "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0"
/* Three million 'a' (from coreutils sha256sum), larger than one read chunk. */
#define SHA_3M_A "2a152c894398719c0570f83fac34ac03a0f6e8e474b995c2403aa5434f7b9dd4"

static void assert_digest_hex(const uint8_t d[MLX_SHA256_LEN], const char *want)
{
    char hex[MLX_SHA256_HEX];
    mlx_sha256_hex(d, hex);
    assert_string_equal(hex, want);
}

static void assert_buf_digest(const char *msg, size_t len, const char *want)
{
    uint8_t d[MLX_SHA256_LEN];
    assert_int_equal(mlx_sha256_buf(msg, len, d, NULL), 0);
    assert_digest_hex(d, want);
}

static void test_sha256_empty_message(void **state)
{
    (void)state;
    assert_buf_digest("", 0, SHA_EMPTY);
}

static void test_sha256_abc(void **state)
{
    (void)state;
    assert_buf_digest("abc", 3, SHA_ABC);
}

static void test_sha256_448_bit_message(void **state)
{
    (void)state;
    assert_buf_digest(MSG_448, strlen(MSG_448), SHA_448);
}

static void test_sha256_896_bit_message(void **state)
{
    (void)state;
    assert_buf_digest(MSG_896, strlen(MSG_896), SHA_896);
}

static void test_sha256_million_a_in_uneven_chunks(void **state)
{
    (void)state;
    char *a = malloc(1000000);
    assert_non_null(a);
    memset(a, 'a', 1000000);
    mlx_sha256 h;
    assert_int_equal(mlx_sha256_init(&h, NULL), 0);
    size_t done = 0;
    static const size_t steps[] = {1, 0, 2, 3, 63, 64, 65, 127, 1000, 4097, 55, 56};
    for (size_t i = 0; done < 1000000; i++) {
        size_t n = steps[i % (sizeof steps / sizeof steps[0])];
        if (n > 1000000 - done)
            n = 1000000 - done;
        assert_int_equal(mlx_sha256_update(&h, a + done, n, NULL), 0);
        done += n;
    }
    uint8_t d[MLX_SHA256_LEN];
    assert_int_equal(mlx_sha256_final(&h, d, NULL), 0);
    assert_null(h.md); /* final frees the context */
    assert_digest_hex(d, SHA_MILLION_A);
    free(a);
}

static void test_sha256_abort_frees_unfinished_context(void **state)
{
    (void)state;
    mlx_sha256 h;
    assert_int_equal(mlx_sha256_init(&h, NULL), 0);
    assert_int_equal(mlx_sha256_update(&h, "abc", 3, NULL), 0);
    mlx_sha256_abort(&h); /* ASan's leak check proves it was freed */
    assert_null(h.md);
    mlx_sha256_abort(&h); /* and a second abort is harmless */
}

static void test_sha256_file_matches_vector(void **state)
{
    (void)state;
    char *dir = test_tmpdir("sha");
    char *path = test_join(dir, "abc.txt");
    test_write_file(path, "abc");
    uint8_t d[MLX_SHA256_LEN];
    assert_int_equal(mlx_sha256_file(path, d, NULL), 0);
    assert_digest_hex(d, SHA_ABC);
    free(path);
    test_tmpdir_remove(dir);
}

static void test_sha256_file_larger_than_read_chunk(void **state)
{
    (void)state;
    char *dir = test_tmpdir("sha");
    char *path = test_join(dir, "big");
    char *a = malloc(3000001);
    assert_non_null(a);
    memset(a, 'a', 3000000);
    a[3000000] = '\0';
    test_write_file(path, a);
    free(a);
    uint8_t d[MLX_SHA256_LEN];
    assert_int_equal(mlx_sha256_file(path, d, NULL), 0);
    assert_digest_hex(d, SHA_3M_A);
    free(path);
    test_tmpdir_remove(dir);
}

static void test_sha256_file_missing_is_enoent(void **state)
{
    (void)state;
    char *dir = test_tmpdir("sha");
    char *path = test_join(dir, "absent");
    uint8_t d[MLX_SHA256_LEN];
    mlx_err e;
    mlx_err_clear(&e);
    assert_int_equal(mlx_sha256_file(path, d, &e), MLX_ENOENT);
    assert_non_null(strstr(e.msg, path));
    free(path);
    test_tmpdir_remove(dir);
}

static void test_sha256_file_out_of_memory_is_enomem(void **state)
{
    (void)state;
    char *dir = test_tmpdir("sha");
    char *path = test_join(dir, "abc.txt");
    test_write_file(path, "abc");
    uint8_t d[MLX_SHA256_LEN];
    mlx_alloc_fail_after(0);
    int rc = mlx_sha256_file(path, d, NULL);
    mlx_alloc_fail_reset();
    assert_int_equal(rc, MLX_ENOMEM);
    free(path);
    test_tmpdir_remove(dir);
}

static void test_sha256_parse_hex_round_trips_either_case(void **state)
{
    (void)state;
    uint8_t d[MLX_SHA256_LEN];
    assert_int_equal(mlx_sha256_parse_hex(SHA_ABC, d, NULL), 0);
    assert_int_equal(d[0], 0xba);
    assert_int_equal(d[31], 0xad);
    assert_digest_hex(d, SHA_ABC);
    uint8_t u[MLX_SHA256_LEN];
    assert_int_equal(
        mlx_sha256_parse_hex(
            "BA7816BF8F01CFEA414140DE5DAE2223B00361A396177A9CB410FF61F20015AD", u, NULL),
        0);
    assert_memory_equal(u, d, MLX_SHA256_LEN);
}

static void test_sha256_parse_hex_refuses_wrong_length_or_digits(void **state)
{
    (void)state;
    const char *bad[] = {
        "",
        "ba7816bf",
        /* 63 digits */
        "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015a",
        /* 65 digits */
        "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad0",
        /* a 'g' in the middle */
        "ba7816bf8f01cfea414140de5dae2223g00361a396177a9cb410ff61f20015ad",
        /* a space at the end instead of the last digit */
        "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015a ",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        uint8_t d[MLX_SHA256_LEN];
        memset(d, 0x77, sizeof d);
        mlx_err e;
        mlx_err_clear(&e);
        assert_int_equal(mlx_sha256_parse_hex(bad[i], d, &e), MLX_EINVAL);
        assert_non_null(strstr(e.msg, "64 hex digits"));
        for (size_t j = 0; j < sizeof d; j++)
            assert_int_equal(d[j], 0x77); /* untouched */
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_sha256_empty_message),
        cmocka_unit_test(test_sha256_abc),
        cmocka_unit_test(test_sha256_448_bit_message),
        cmocka_unit_test(test_sha256_896_bit_message),
        cmocka_unit_test(test_sha256_million_a_in_uneven_chunks),
        cmocka_unit_test(test_sha256_abort_frees_unfinished_context),
        cmocka_unit_test(test_sha256_file_matches_vector),
        cmocka_unit_test(test_sha256_file_larger_than_read_chunk),
        cmocka_unit_test(test_sha256_file_missing_is_enoent),
        cmocka_unit_test(test_sha256_file_out_of_memory_is_enomem),
        cmocka_unit_test(test_sha256_parse_hex_round_trips_either_case),
        cmocka_unit_test(test_sha256_parse_hex_refuses_wrong_length_or_digits),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
