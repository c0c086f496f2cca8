/*
 * test_alloc.c — common/alloc: the wrappers behave like the C library, the
 * fault-injection counter fails exactly the Nth allocation and every one
 * after it until reset, and jansson allocates through the seam once installed.
 */
#include <setjmp.h>
#include <pthread.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>
#include <jansson.h>

#include "common/alloc.h"
#include "common/json.h"

static int teardown(void **state)
{
    (void)state;
    mlx_alloc_fail_reset();
    return 0;
}

static void test_alloc_malloc_and_free_work(void **state)
{
    (void)state;
    char *p = mlx_malloc(16);
    assert_non_null(p);
    memset(p, 'x', 16);
    mlx_free(p);
    mlx_free(NULL);
    /* Zero bytes still gives a pointer that can be freed, not a failure. */
    p = mlx_malloc(0);
    assert_non_null(p);
    mlx_free(p);
}

static void test_alloc_calloc_zeroes_memory(void **state)
{
    (void)state;
    unsigned char *p = mlx_calloc(100, 3);
    assert_non_null(p);
    for (size_t i = 0; i < 300; i++)
        assert_int_equal(p[i], 0);
    mlx_free(p);
}

static void test_alloc_calloc_overflow_returns_null(void **state)
{
    (void)state;
    assert_null(mlx_calloc(SIZE_MAX / 2 + 1, 2));
    assert_null(mlx_calloc(SIZE_MAX, SIZE_MAX));
}

static void test_alloc_realloc_keeps_content(void **state)
{
    (void)state;
    char *p = mlx_malloc(4);
    assert_non_null(p);
    memcpy(p, "abc", 4);
    p = mlx_realloc(p, 4096);
    assert_non_null(p);
    assert_string_equal(p, "abc");
    mlx_free(p);
}

static void test_alloc_strdup_copies(void **state)
{
    (void)state;
    const char *src = "hello";
    char *c = mlx_strdup(src);
    assert_non_null(c);
    assert_ptr_not_equal(c, src);
    assert_string_equal(c, "hello");
    mlx_free(c);
    c = mlx_strdup("");
    assert_string_equal(c, "");
    mlx_free(c);
}

static void test_alloc_strndup_stops_at_n_or_nul(void **state)
{
    (void)state;
    char *c = mlx_strndup("hello world", 5);
    assert_string_equal(c, "hello");
    mlx_free(c);
    c = mlx_strndup("hi", 10);
    assert_string_equal(c, "hi");
    mlx_free(c);
    c = mlx_strndup("abc", 0);
    assert_string_equal(c, "");
    mlx_free(c);
}

static void test_alloc_fail_after_zero_fails_first_allocation(void **state)
{
    (void)state;
    mlx_alloc_fail_after(0);
    assert_null(mlx_malloc(8));
    assert_null(mlx_calloc(1, 8));
    assert_null(mlx_realloc(NULL, 8));
    assert_null(mlx_strdup("x"));
    assert_null(mlx_strndup("x", 1));
    mlx_alloc_fail_reset();
    void *p = mlx_malloc(8);
    assert_non_null(p);
    mlx_free(p);
}

static void test_alloc_fail_after_n_lets_n_succeed_then_fails_all(void **state)
{
    (void)state;
    void *ok[3];
    mlx_alloc_fail_after(3);
    ok[0] = mlx_malloc(8);
    ok[1] = mlx_calloc(2, 8);
    ok[2] = mlx_strdup("abc");
    assert_non_null(ok[0]);
    assert_non_null(ok[1]);
    assert_non_null(ok[2]);
    for (int i = 0; i < 5; i++)
        assert_null(mlx_malloc(8));
    mlx_alloc_fail_reset();
    for (int i = 0; i < 3; i++)
        mlx_free(ok[i]);
}

static void test_alloc_failed_realloc_keeps_old_block(void **state)
{
    (void)state;
    char *p = mlx_strdup("keep");
    mlx_alloc_fail_after(0);
    assert_null(mlx_realloc(p, 1024));
    mlx_alloc_fail_reset();
    assert_string_equal(p, "keep");
    mlx_free(p);
}

static void test_alloc_negative_disables_injection(void **state)
{
    (void)state;
    mlx_alloc_fail_after(0);
    mlx_alloc_fail_after(-1);
    void *p = mlx_malloc(8);
    assert_non_null(p);
    mlx_free(p);
}

static void test_alloc_jansson_allocates_through_the_seam(void **state)
{
    (void)state;
    mlx_json_use_mlx_alloc();
    mlx_alloc_fail_after(0);
    json_t *o = json_object();
    mlx_alloc_fail_reset();
    assert_null(o);
    o = json_pack("{s:i}", "a", 1);
    assert_non_null(o);
    json_decref(o);
}

static void test_alloc_failures_counts_failed_allocations(void **state)
{
    (void)state;
    unsigned long before = mlx_alloc_failures();
    void *p = mlx_malloc(8);
    assert_int_equal(mlx_alloc_failures(), before); /* a success is not counted */
    mlx_free(p);
    mlx_alloc_fail_after(0);
    assert_null(mlx_malloc(8));
    assert_null(mlx_realloc(NULL, 8));
    mlx_alloc_fail_reset();
    assert_int_equal(mlx_alloc_failures(), before + 2);
    assert_null(mlx_calloc(SIZE_MAX, 2)); /* overflow is a failure too */
    assert_int_equal(mlx_alloc_failures(), before + 3);
}

static void *fail_one(void *arg)
{
    (void)arg;
    mlx_alloc_fail_after(0);
    void *p = mlx_malloc(8);
    mlx_alloc_fail_reset();
    return p == NULL && mlx_alloc_failures() == 1 ? (void *)1 : NULL;
}

static void test_alloc_failures_are_counted_per_thread(void **state)
{
    (void)state;
    unsigned long before = mlx_alloc_failures();
    pthread_t t;
    void *ok = NULL;
    assert_int_equal(pthread_create(&t, NULL, fail_one, NULL), 0);
    assert_int_equal(pthread_join(t, &ok), 0);
    assert_ptr_equal(ok, (void *)1);
    assert_int_equal(mlx_alloc_failures(), before);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_teardown(test_alloc_malloc_and_free_work, teardown),
        cmocka_unit_test_teardown(test_alloc_calloc_zeroes_memory, teardown),
        cmocka_unit_test_teardown(test_alloc_calloc_overflow_returns_null, teardown),
        cmocka_unit_test_teardown(test_alloc_realloc_keeps_content, teardown),
        cmocka_unit_test_teardown(test_alloc_strdup_copies, teardown),
        cmocka_unit_test_teardown(test_alloc_strndup_stops_at_n_or_nul, teardown),
        cmocka_unit_test_teardown(test_alloc_fail_after_zero_fails_first_allocation,
                                  teardown),
        cmocka_unit_test_teardown(test_alloc_fail_after_n_lets_n_succeed_then_fails_all,
                                  teardown),
        cmocka_unit_test_teardown(test_alloc_failed_realloc_keeps_old_block, teardown),
        cmocka_unit_test_teardown(test_alloc_negative_disables_injection, teardown),
        cmocka_unit_test_teardown(test_alloc_jansson_allocates_through_the_seam,
                                  teardown),
        cmocka_unit_test_teardown(test_alloc_failures_counts_failed_allocations,
                                  teardown),
        cmocka_unit_test_teardown(test_alloc_failures_are_counted_per_thread, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
