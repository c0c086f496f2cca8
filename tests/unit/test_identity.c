/*
 * test_identity.c — the agent's node id (agent/agent.h,
 * identity_load_or_create): a new data dir gets a fresh 16-hex-digit id in
 * <dir>/node-id, later calls return the same id, an existing valid file is
 * used as is, and a file holding anything else is refused as corrupt with a
 * sentence naming the file and what to do, and is never replaced.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <cmocka.h>

#include "agent/agent.h"
#include "common/err.h"
#include "common/limits.h"
#include "common/log.h"
#include "tests/support/testutil.h"

static int setup(void **state)
{
    *state = test_tmpdir("identity");
    return 0;
}

static int teardown(void **state)
{
    test_tmpdir_remove(*state);
    return 0;
}

static int is_node_id(const char *s)
{
    if (strlen(s) != MLX_NODE_ID_LEN)
        return 0;
    for (size_t i = 0; i < MLX_NODE_ID_LEN; i++) {
        char c = s[i];
        if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f')))
            return 0;
    }
    return 1;
}

static void load(const char *dir, char *id)
{
    mlx_err err;
    mlx_err_clear(&err);
    memset(id, 'X', MLX_NODE_ID_LEN + 1);
    int rc = identity_load_or_create(dir, id, &err);
    if (rc != 0)
        fail_msg("identity_load_or_create(%s): %s", dir, err.msg);
}

/* Writes text to dir/node-id, expects it refused as corrupt and left alone. */
static void expect_corrupt(const char *dir, const char *text)
{
    char *path = test_join(dir, "node-id");
    test_write_file(path, text);
    char id[MLX_NODE_ID_LEN + 1];
    mlx_err err;
    mlx_err_clear(&err);
    int rc = identity_load_or_create(dir, id, &err);
    if (rc != MLX_ECORRUPT)
        fail_msg("node-id holding '%.40s' gave %s: %s", text, mlx_errname(rc), err.msg);
    assert_int_equal(err.code, MLX_ECORRUPT);
    if (strstr(err.msg, path) == NULL)
        fail_msg("sentence does not name %s: %s", path, err.msg);
    /* It tells the user what to do about it. */
    assert_non_null(strstr(err.msg, "delete"));
    size_t len = 0;
    char *after = test_read_file(path, &len);
    assert_non_null(after);
    assert_int_equal(len, strlen(text));
    assert_memory_equal(after, text, len);
    free(after);
    free(path);
}

static void new_data_dir_gets_an_id_in_node_id_file(void **state)
{
    const char *dir = *state;
    char id[MLX_NODE_ID_LEN + 1];
    load(dir, id);
    if (!is_node_id(id))
        fail_msg("'%.17s' is not 16 lower-case hex digits", id);
    char *path = test_join(dir, "node-id");
    size_t len = 0;
    char *text = test_read_file(path, &len);
    assert_non_null(text);
    /* The file holds the id, optionally followed by one line ending. */
    assert_true(len >= MLX_NODE_ID_LEN);
    assert_memory_equal(text, id, MLX_NODE_ID_LEN);
    assert_true(strcmp(text + MLX_NODE_ID_LEN, "") == 0 ||
                strcmp(text + MLX_NODE_ID_LEN, "\n") == 0);
    free(text);
    free(path);
}

static void second_call_returns_the_same_id(void **state)
{
    const char *dir = *state;
    char first[MLX_NODE_ID_LEN + 1], second[MLX_NODE_ID_LEN + 1];
    load(dir, first);
    load(dir, second);
    assert_string_equal(first, second);
}

static void another_data_dir_gets_another_id(void **state)
{
    const char *dir = *state;
    char *other = test_tmpdir("identity-other");
    char a[MLX_NODE_ID_LEN + 1], b[MLX_NODE_ID_LEN + 1];
    load(dir, a);
    load(other, b);
    assert_string_not_equal(a, b);
    test_tmpdir_remove(other);
}

static void existing_id_file_is_used_as_is(void **state)
{
    const char *dir = *state;
    char *path = test_join(dir, "node-id");
    char id[MLX_NODE_ID_LEN + 1];

    test_write_file(path, "0123456789abcdef\n");
    load(dir, id);
    assert_string_equal(id, "0123456789abcdef");

    test_write_file(path, "fedcba9876543210"); /* no line ending */
    load(dir, id);
    assert_string_equal(id, "fedcba9876543210");

    test_write_file(path, "00000000deadbeef\r\n"); /* edited on Windows */
    load(dir, id);
    assert_string_equal(id, "00000000deadbeef");
    free(path);
}

static void garbage_id_file_is_corrupt_and_left_unchanged(void **state)
{
    expect_corrupt(*state, "this is not a node id\n");
}

static void wrong_length_or_case_is_corrupt(void **state)
{
    const char *dir = *state;
    expect_corrupt(dir, "0123456789abcde\n");   /* 15 digits */
    expect_corrupt(dir, "0123456789abcdef0\n"); /* 17 digits */
    expect_corrupt(dir, "0123456789ABCDEF\n");  /* upper case */
    expect_corrupt(dir, "");                    /* empty file */
    expect_corrupt(dir, "\n0123456789abcdef\n");
}

static void id_followed_by_more_text_is_corrupt(void **state)
{
    expect_corrupt(*state, "0123456789abcdef\nsomething else\n");
    expect_corrupt(*state, "0123456789abcdef junk\n");
}

static void large_garbage_id_file_is_corrupt_and_left_unchanged(void **state)
{
    char big[4096 + 1];
    memset(big, 'z', sizeof big - 1);
    big[sizeof big - 1] = '\0';
    expect_corrupt(*state, big);
}

static void missing_data_dir_is_an_error(void **state)
{
    char *missing = test_join(*state, "not-there");
    char id[MLX_NODE_ID_LEN + 1];
    mlx_err err;
    mlx_err_clear(&err);
    int rc = identity_load_or_create(missing, id, &err);
    assert_true(rc < 0);
    assert_non_null(strstr(err.msg, missing));
    struct stat st;
    assert_int_not_equal(stat(missing, &st), 0); /* nothing was created */
    free(missing);
}

int main(void)
{
    mlx_log_set_level(MLX_LOG_WARN); /* keep "created node identity" out of the output */
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(new_data_dir_gets_an_id_in_node_id_file, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(second_call_returns_the_same_id, setup, teardown),
        cmocka_unit_test_setup_teardown(another_data_dir_gets_another_id, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(existing_id_file_is_used_as_is, setup, teardown),
        cmocka_unit_test_setup_teardown(garbage_id_file_is_corrupt_and_left_unchanged,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(wrong_length_or_case_is_corrupt, setup, teardown),
        cmocka_unit_test_setup_teardown(id_followed_by_more_text_is_corrupt, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(
            large_garbage_id_file_is_corrupt_and_left_unchanged, setup, teardown),
        cmocka_unit_test_setup_teardown(missing_data_dir_is_an_error, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
