/*
 * test_buf.c — common/buf: appends grow a NUL-terminated buffer up to its
 * ceiling; any failed append (past the maximum, out of memory) empties the
 * buffer and leaves it usable; take hands over the bytes; reset keeps memory.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "common/alloc.h"
#include "common/buf.h"
#include "common/err.h"

static int teardown(void **state)
{
    (void)state;
    mlx_alloc_fail_reset();
    return 0;
}

static void assert_buf_empty(const mlx_buf *b)
{
    assert_int_equal(b->len, 0);
    assert_string_equal(mlx_buf_str(b), "");
}

static void test_buf_new_buffer_is_empty_and_unallocated(void **state)
{
    (void)state;
    mlx_buf b;
    mlx_buf_init(&b, 100);
    assert_null(b.data);
    assert_int_equal(b.max, 100);
    assert_buf_empty(&b);
    mlx_buf_fini(&b);
}

static void test_buf_appends_accumulate_and_stay_terminated(void **state)
{
    (void)state;
    mlx_buf b;
    mlx_buf_init(&b, 1000);
    assert_int_equal(mlx_buf_append(&b, "ab", 2), 0);
    assert_int_equal(mlx_buf_append_str(&b, "cd"), 0);
    assert_int_equal(mlx_buf_printf(&b, "-%d-%s", 42, "x"), 0);
    assert_int_equal(b.len, 9);
    assert_string_equal(mlx_buf_str(&b), "abcd-42-x");
    assert_int_equal(b.data[b.len], '\0');
    mlx_buf_fini(&b);
    assert_null(b.data);
}

static void test_buf_grows_past_initial_capacity(void **state)
{
    (void)state;
    mlx_buf b;
    mlx_buf_init(&b, 100000);
    char expect[5000];
    for (size_t i = 0; i < sizeof expect; i++) {
        char c = (char)('a' + i % 26);
        expect[i] = c;
        assert_int_equal(mlx_buf_append(&b, &c, 1), 0);
    }
    assert_int_equal(b.len, sizeof expect);
    assert_true(b.cap > b.len);
    assert_memory_equal(b.data, expect, sizeof expect);
    assert_int_equal(b.data[b.len], '\0');
    mlx_buf_fini(&b);
}

static void test_buf_keeps_binary_data_with_nuls(void **state)
{
    (void)state;
    mlx_buf b;
    mlx_buf_init(&b, 64);
    const char bin[] = {'a', '\0', 'b', '\0'};
    assert_int_equal(mlx_buf_append(&b, bin, sizeof bin), 0);
    assert_int_equal(b.len, 4);
    assert_memory_equal(b.data, bin, 4);
    mlx_buf_fini(&b);
}

static void test_buf_append_up_to_max_succeeds(void **state)
{
    (void)state;
    mlx_buf b;
    mlx_buf_init(&b, 10);
    assert_int_equal(mlx_buf_append(&b, "01234", 5), 0);
    assert_int_equal(mlx_buf_append(&b, "56789", 5), 0);
    assert_int_equal(b.len, 10);
    assert_string_equal(mlx_buf_str(&b), "0123456789");
    mlx_buf_fini(&b);
}

static void test_buf_append_past_max_empties_buffer(void **state)
{
    (void)state;
    mlx_buf b;
    mlx_buf_init(&b, 10);
    assert_int_equal(mlx_buf_append(&b, "0123456789", 10), 0);
    assert_int_equal(mlx_buf_append(&b, "x", 1), MLX_ETOOBIG);
    assert_buf_empty(&b);
    assert_null(b.data);
    assert_int_equal(b.max, 10);
    /* Still usable, with the same ceiling. */
    assert_int_equal(mlx_buf_append_str(&b, "again"), 0);
    assert_string_equal(mlx_buf_str(&b), "again");
    assert_int_equal(mlx_buf_append_str(&b, "toolong"), MLX_ETOOBIG);
    assert_buf_empty(&b);
    mlx_buf_fini(&b);
}

static void test_buf_single_append_larger_than_max_fails(void **state)
{
    (void)state;
    mlx_buf b;
    mlx_buf_init(&b, 3);
    assert_int_equal(mlx_buf_append(&b, "abcd", 4), MLX_ETOOBIG);
    assert_buf_empty(&b);
    /* A length that would overflow size_t arithmetic is refused too. */
    assert_int_equal(mlx_buf_append(&b, "a", 1), 0);
    assert_int_equal(mlx_buf_append(&b, "a", SIZE_MAX), MLX_ETOOBIG);
    assert_buf_empty(&b);
    mlx_buf_fini(&b);
}

static void test_buf_printf_past_max_empties_buffer(void **state)
{
    (void)state;
    mlx_buf b;
    mlx_buf_init(&b, 8);
    assert_int_equal(mlx_buf_printf(&b, "%s", "1234"), 0);
    assert_int_equal(mlx_buf_printf(&b, "%d", 12345), MLX_ETOOBIG);
    assert_buf_empty(&b);
    assert_int_equal(mlx_buf_printf(&b, "%d", 12345678), 0);
    assert_string_equal(mlx_buf_str(&b), "12345678");
    mlx_buf_fini(&b);
}

static void test_buf_zero_max_accepts_only_empty_appends(void **state)
{
    (void)state;
    mlx_buf b;
    mlx_buf_init(&b, 0);
    assert_int_equal(mlx_buf_append(&b, "", 0), 0);
    assert_string_equal(mlx_buf_str(&b), "");
    assert_int_equal(mlx_buf_append(&b, "a", 1), MLX_ETOOBIG);
    mlx_buf_fini(&b);
}

static void test_buf_take_hands_over_and_empties(void **state)
{
    (void)state;
    mlx_buf b;
    mlx_buf_init(&b, 100);
    mlx_buf_append_str(&b, "payload");
    char *p = mlx_buf_take(&b);
    assert_string_equal(p, "payload");
    assert_null(b.data);
    assert_int_equal(b.cap, 0);
    assert_buf_empty(&b);
    mlx_free(p);
    /* Appending after take starts a fresh allocation. */
    assert_int_equal(mlx_buf_append_str(&b, "x"), 0);
    assert_string_equal(mlx_buf_str(&b), "x");
    mlx_buf_fini(&b);
}

static void test_buf_take_of_empty_buffer_is_allocated_empty_string(void **state)
{
    (void)state;
    mlx_buf b;
    mlx_buf_init(&b, 100);
    char *p = mlx_buf_take(&b);
    assert_non_null(p);
    assert_string_equal(p, "");
    mlx_free(p);
}

static void test_buf_take_of_empty_buffer_out_of_memory_is_null(void **state)
{
    (void)state;
    mlx_buf b;
    mlx_buf_init(&b, 100);
    mlx_alloc_fail_after(0);
    char *p = mlx_buf_take(&b);
    mlx_alloc_fail_reset();
    assert_null(p);
}

static void test_buf_reset_empties_but_keeps_allocation(void **state)
{
    (void)state;
    mlx_buf b;
    mlx_buf_init(&b, 100);
    mlx_buf_append_str(&b, "hello");
    char *data = b.data;
    size_t cap = b.cap;
    mlx_buf_reset(&b);
    assert_buf_empty(&b);
    assert_ptr_equal(b.data, data);
    assert_int_equal(b.cap, cap);
    mlx_buf_append_str(&b, "yo");
    assert_string_equal(mlx_buf_str(&b), "yo");
    mlx_buf_fini(&b);
    /* Reset of a never-used buffer is harmless. */
    mlx_buf_init(&b, 1);
    mlx_buf_reset(&b);
    assert_buf_empty(&b);
}

/* Appends enough to need several reallocations, failing the nth allocation. */
static int grow_with_failure_at(long n, mlx_buf *b)
{
    char chunk[100];
    memset(chunk, 'z', sizeof chunk);
    mlx_alloc_fail_after(n);
    int rc = 0;
    for (int i = 0; i < 50 && rc == 0; i++)
        rc = mlx_buf_append(b, chunk, sizeof chunk);
    if (rc == 0)
        rc = mlx_buf_printf(b, "%s", "end");
    mlx_alloc_fail_reset();
    return rc;
}

static void test_buf_out_of_memory_at_every_step_fails_cleanly(void **state)
{
    (void)state;
    long n;
    for (n = 0; n < 100; n++) {
        mlx_buf b;
        mlx_buf_init(&b, 1 << 20);
        int rc = grow_with_failure_at(n, &b);
        if (rc == 0) {
            assert_int_equal(b.len, 50 * 100 + 3);
            mlx_buf_fini(&b);
            break;
        }
        assert_int_equal(rc, MLX_ENOMEM);
        assert_buf_empty(&b);
        assert_null(b.data);
        /* Usable again once memory is back. */
        assert_int_equal(mlx_buf_append_str(&b, "ok"), 0);
        assert_string_equal(mlx_buf_str(&b), "ok");
        mlx_buf_fini(&b);
    }
    assert_true(n > 0);   /* the first allocation did fail */
    assert_true(n < 100); /* and it eventually succeeded */
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_buf_new_buffer_is_empty_and_unallocated),
        cmocka_unit_test(test_buf_appends_accumulate_and_stay_terminated),
        cmocka_unit_test(test_buf_grows_past_initial_capacity),
        cmocka_unit_test(test_buf_keeps_binary_data_with_nuls),
        cmocka_unit_test(test_buf_append_up_to_max_succeeds),
        cmocka_unit_test(test_buf_append_past_max_empties_buffer),
        cmocka_unit_test(test_buf_single_append_larger_than_max_fails),
        cmocka_unit_test(test_buf_printf_past_max_empties_buffer),
        cmocka_unit_test(test_buf_zero_max_accepts_only_empty_appends),
        cmocka_unit_test(test_buf_take_hands_over_and_empties),
        cmocka_unit_test(test_buf_take_of_empty_buffer_is_allocated_empty_string),
        cmocka_unit_test_teardown(test_buf_take_of_empty_buffer_out_of_memory_is_null,
                                  teardown),
        cmocka_unit_test(test_buf_reset_empties_but_keeps_allocation),
        cmocka_unit_test_teardown(test_buf_out_of_memory_at_every_step_fails_cleanly,
                                  teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
