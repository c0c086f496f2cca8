/*
 * test_path.c — common/path: "~" expansion from $HOME, joining, mkdir -p,
 * atomic small-file writes read back with read_small (absent → ENOENT, too
 * big → ETOOBIG), and the exclusive data-directory lock (second → EBUSY).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <dirent.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "common/alloc.h"
#include "common/path.h"
#include "tests/support/testutil.h"

/* Each test gets a fresh directory and HOME is restored after it. */
struct fixture {
    char *dir;
    char *old_home;
};

static int setup(void **state)
{
    struct fixture *f = calloc(1, sizeof *f);
    if (f == NULL)
        return -1;
    f->dir = test_tmpdir("path");
    const char *home = getenv("HOME");
    f->old_home = home != NULL ? strdup(home) : NULL;
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fixture *f = *state;
    mlx_alloc_fail_reset();
    if (f->old_home != NULL)
        setenv("HOME", f->old_home, 1);
    else
        unsetenv("HOME");
    free(f->old_home);
    test_tmpdir_remove(f->dir);
    free(f);
    return 0;
}

static size_t count_entries(const char *dir)
{
    DIR *d = opendir(dir);
    assert_non_null(d);
    size_t n = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0)
            n++;
    }
    closedir(d);
    return n;
}

/* ---- expand_user / join ------------------------------------------------ */

static void assert_expands(const char *in, const char *want)
{
    char *out = NULL;
    assert_int_equal(mlx_path_expand_user(in, &out, NULL), 0);
    assert_string_equal(out, want);
    mlx_free(out);
}

static void test_path_expand_user_uses_home(void **state)
{
    (void)state;
    setenv("HOME", "/home/tester", 1);
    assert_expands("~", "/home/tester");
    assert_expands("~/.mlxfleet", "/home/tester/.mlxfleet");
    assert_expands("~/a/b", "/home/tester/a/b");
}

static void test_path_expand_user_home_with_trailing_slash(void **state)
{
    (void)state;
    setenv("HOME", "/home/tester/", 1);
    assert_expands("~/x", "/home/tester/x");
}

static void test_path_expand_user_copies_other_paths(void **state)
{
    (void)state;
    setenv("HOME", "/home/tester", 1);
    assert_expands("/abs/path", "/abs/path");
    assert_expands("relative", "relative");
    assert_expands("~other/x", "~other/x");
    assert_expands("a/~/b", "a/~/b");
    assert_expands("", "");
}

static void test_path_expand_user_out_of_memory(void **state)
{
    (void)state;
    setenv("HOME", "/home/tester", 1);
    char *out = (char *)"untouched";
    mlx_err e;
    mlx_err_clear(&e);
    mlx_alloc_fail_after(0);
    int rc = mlx_path_expand_user("~/x", &out, &e);
    mlx_alloc_fail_reset();
    assert_int_equal(rc, MLX_ENOMEM);
    assert_int_equal(e.code, MLX_ENOMEM);
}

static void test_path_join_adds_one_slash(void **state)
{
    (void)state;
    const char *cases[][3] = {
        {"a", "b", "a/b"}, {"a/", "b", "a/b"}, {"/", "etc", "/etc"},
        {"", "b", "b"},    {"a", "", "a"},     {"/data/x", "lock", "/data/x/lock"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char *j = mlx_path_join(cases[i][0], cases[i][1]);
        assert_non_null(j);
        assert_string_equal(j, cases[i][2]);
        mlx_free(j);
    }
}

static void test_path_join_out_of_memory_is_null(void **state)
{
    (void)state;
    mlx_alloc_fail_after(0);
    char *j = mlx_path_join("a", "b");
    mlx_alloc_fail_reset();
    assert_null(j);
}

/* ---- mkdirs ------------------------------------------------------------ */

static void test_path_mkdirs_creates_nested_with_mode(void **state)
{
    struct fixture *f = *state;
    char *deep = test_join(f->dir, "a/b/c");
    assert_int_equal(mlx_path_mkdirs(deep, 0700, NULL), 0);
    struct stat st;
    assert_int_equal(stat(deep, &st), 0);
    assert_true(S_ISDIR(st.st_mode));
    assert_int_equal(st.st_mode & 0777, 0700);
    /* Again: already there is success. */
    assert_int_equal(mlx_path_mkdirs(deep, 0700, NULL), 0);
    free(deep);
}

static void test_path_mkdirs_accepts_trailing_slash(void **state)
{
    struct fixture *f = *state;
    char *deep = test_join(f->dir, "x/y/");
    assert_int_equal(mlx_path_mkdirs(deep, 0755, NULL), 0);
    struct stat st;
    assert_int_equal(stat(deep, &st), 0);
    assert_true(S_ISDIR(st.st_mode));
    free(deep);
}

static void test_path_mkdirs_refuses_file_in_the_way(void **state)
{
    struct fixture *f = *state;
    char *file = test_join(f->dir, "file");
    test_write_file(file, "x");
    mlx_err e;
    mlx_err_clear(&e);
    assert_int_equal(mlx_path_mkdirs(file, 0700, &e), MLX_EIO);
    assert_non_null(strstr(e.msg, file));
    assert_non_null(strstr(e.msg, "not a directory"));

    char *below = test_join(file, "sub");
    mlx_err_clear(&e);
    assert_true(mlx_path_mkdirs(below, 0700, &e) < 0);
    assert_non_null(strstr(e.msg, file));
    free(below);
    free(file);
}

static void test_path_mkdirs_refuses_empty_path(void **state)
{
    (void)state;
    mlx_err e;
    mlx_err_clear(&e);
    assert_int_equal(mlx_path_mkdirs("", 0700, &e), MLX_EINVAL);
    assert_int_equal(e.code, MLX_EINVAL);
}

/* ---- read_small / write_atomic ----------------------------------------- */

static void test_path_write_atomic_then_read_small(void **state)
{
    struct fixture *f = *state;
    char *file = test_join(f->dir, "node-id");
    assert_int_equal(mlx_path_write_atomic(file, "3f2a9c0d11223344\n", 17, NULL), 0);
    char *text = NULL;
    assert_int_equal(mlx_path_read_small(file, 100, &text, NULL), 0);
    assert_string_equal(text, "3f2a9c0d11223344\n");
    mlx_free(text);
    /* Only the target remains: the temporary name was renamed away. */
    assert_int_equal(count_entries(f->dir), 1);
    free(file);
}

static void test_path_write_atomic_replaces_longer_content(void **state)
{
    struct fixture *f = *state;
    char *file = test_join(f->dir, "pid");
    test_write_file(file, "a much longer previous content\n");
    assert_int_equal(mlx_path_write_atomic(file, "42", 2, NULL), 0);
    size_t len = 0;
    char *text = test_read_file(file, &len);
    assert_int_equal(len, 2);
    assert_string_equal(text, "42");
    free(text);
    assert_int_equal(count_entries(f->dir), 1);
    free(file);
}

static void test_path_write_atomic_empty_content(void **state)
{
    struct fixture *f = *state;
    char *file = test_join(f->dir, "empty");
    assert_int_equal(mlx_path_write_atomic(file, "", 0, NULL), 0);
    char *text = NULL;
    assert_int_equal(mlx_path_read_small(file, 10, &text, NULL), 0);
    assert_string_equal(text, "");
    mlx_free(text);
    free(file);
}

static void test_path_write_atomic_into_missing_dir_fails(void **state)
{
    struct fixture *f = *state;
    char *file = test_join(f->dir, "no/such/dir/file");
    mlx_err e;
    mlx_err_clear(&e);
    assert_int_equal(mlx_path_write_atomic(file, "x", 1, &e), MLX_EIO);
    assert_non_null(strstr(e.msg, file));
    free(file);
}

static void test_path_read_small_missing_is_enoent(void **state)
{
    struct fixture *f = *state;
    char *file = test_join(f->dir, "absent");
    char *text = (char *)"untouched";
    mlx_err e;
    mlx_err_clear(&e);
    assert_int_equal(mlx_path_read_small(file, 100, &text, &e), MLX_ENOENT);
    assert_string_equal(text, "untouched");
    assert_non_null(strstr(e.msg, file));
    free(file);
}

static void test_path_read_small_exactly_max_is_ok(void **state)
{
    struct fixture *f = *state;
    char *file = test_join(f->dir, "ten");
    test_write_file(file, "0123456789");
    char *text = NULL;
    assert_int_equal(mlx_path_read_small(file, 10, &text, NULL), 0);
    assert_string_equal(text, "0123456789");
    mlx_free(text);
    free(file);
}

static void test_path_read_small_too_big_is_etoobig(void **state)
{
    struct fixture *f = *state;
    char *file = test_join(f->dir, "eleven");
    test_write_file(file, "01234567890");
    char *text = (char *)"untouched";
    mlx_err e;
    mlx_err_clear(&e);
    assert_int_equal(mlx_path_read_small(file, 10, &text, &e), MLX_ETOOBIG);
    assert_string_equal(text, "untouched");
    assert_non_null(strstr(e.msg, file));
    assert_non_null(strstr(e.msg, "10 bytes"));
    free(file);
}

static void test_path_read_small_larger_than_read_chunk(void **state)
{
    struct fixture *f = *state;
    char *file = test_join(f->dir, "big");
    char *big = malloc(10001);
    assert_non_null(big);
    for (size_t i = 0; i < 10000; i++)
        big[i] = (char)('a' + i % 26);
    big[10000] = '\0';
    test_write_file(file, big);
    char *text = NULL;
    assert_int_equal(mlx_path_read_small(file, 10000, &text, NULL), 0);
    assert_string_equal(text, big);
    mlx_free(text);
    assert_int_equal(mlx_path_read_small(file, 9999, &text, NULL), MLX_ETOOBIG);
    free(big);
    free(file);
}

static void test_path_read_small_out_of_memory_at_every_step(void **state)
{
    struct fixture *f = *state;
    char *file = test_join(f->dir, "f");
    char content[9000];
    memset(content, 'q', sizeof content - 1);
    content[sizeof content - 1] = '\0';
    test_write_file(file, content);
    long n;
    for (n = 0; n < 100; n++) {
        char *text = NULL;
        mlx_err e;
        mlx_err_clear(&e);
        mlx_alloc_fail_after(n);
        int rc = mlx_path_read_small(file, 100000, &text, &e);
        mlx_alloc_fail_reset();
        if (rc == 0) {
            assert_string_equal(text, content);
            mlx_free(text);
            break;
        }
        assert_int_equal(rc, MLX_ENOMEM);
        assert_int_equal(e.code, MLX_ENOMEM);
        assert_null(strstr(e.msg, "larger than")); /* the sentence fits the code */
    }
    assert_true(n > 0 && n < 100);
    free(file);
}

/* ---- lock -------------------------------------------------------------- */

static void test_path_lock_second_holder_is_busy(void **state)
{
    struct fixture *f = *state;
    int fd1 = -1, fd2 = -1;
    assert_int_equal(mlx_path_lock(f->dir, "lock", "mlx-agent", &fd1, NULL), 0);
    assert_true(fd1 >= 0);
    mlx_err e;
    mlx_err_clear(&e);
    assert_int_equal(mlx_path_lock(f->dir, "lock", "mlx-agent", &fd2, &e), MLX_EBUSY);
    assert_int_equal(fd2, -1);
    assert_non_null(strstr(e.msg, "mlx-agent"));
    assert_non_null(strstr(e.msg, f->dir));
    assert_non_null(strstr(e.msg, "--data"));
    close(fd1);
    /* Released with the descriptor: the next taker succeeds. */
    assert_int_equal(mlx_path_lock(f->dir, "lock", "mlx-agent", &fd2, NULL), 0);
    assert_true(fd2 >= 0);
    close(fd2);
}

static void test_path_lock_in_missing_dir_fails(void **state)
{
    struct fixture *f = *state;
    char *missing = test_join(f->dir, "missing");
    int fd = -1;
    mlx_err e;
    mlx_err_clear(&e);
    assert_int_equal(mlx_path_lock(missing, "lock", "mlx-agent", &fd, &e), MLX_EIO);
    assert_int_equal(fd, -1);
    assert_non_null(strstr(e.msg, missing));
    free(missing);
}

#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)

int main(void)
{
    const struct CMUnitTest tests[] = {
        T(test_path_expand_user_uses_home),
        T(test_path_expand_user_home_with_trailing_slash),
        T(test_path_expand_user_copies_other_paths),
        T(test_path_expand_user_out_of_memory),
        T(test_path_join_adds_one_slash),
        T(test_path_join_out_of_memory_is_null),
        T(test_path_mkdirs_creates_nested_with_mode),
        T(test_path_mkdirs_accepts_trailing_slash),
        T(test_path_mkdirs_refuses_file_in_the_way),
        T(test_path_mkdirs_refuses_empty_path),
        T(test_path_write_atomic_then_read_small),
        T(test_path_write_atomic_replaces_longer_content),
        T(test_path_write_atomic_empty_content),
        T(test_path_write_atomic_into_missing_dir_fails),
        T(test_path_read_small_missing_is_enoent),
        T(test_path_read_small_exactly_max_is_ok),
        T(test_path_read_small_too_big_is_etoobig),
        T(test_path_read_small_larger_than_read_chunk),
        T(test_path_read_small_out_of_memory_at_every_step),
        T(test_path_lock_second_holder_is_busy),
        T(test_path_lock_in_missing_dir_fails),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
