/*
 * test_json.c — common/json: strict parsing that reports line and column,
 * compact dumping, the type names used in sentences, the typed getters
 * (absent optional member leaves *out alone, required one is an error naming
 * it, wrong type and out-of-range sentences), and clean ENOMEM under fault
 * injection with jansson allocating through mlx_malloc.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "common/alloc.h"
#include "common/json.h"

static int teardown(void **state)
{
    (void)state;
    mlx_alloc_fail_reset();
    return 0;
}

static json_t *parse_ok(const char *text)
{
    json_t *v = NULL;
    mlx_err e;
    mlx_err_clear(&e);
    assert_int_equal(mlx_json_parse(text, strlen(text), &v, &e), 0);
    assert_non_null(v);
    return v;
}

static void parse_bad(const char *text, size_t len, const char *want_in_msg)
{
    json_t *v = NULL;
    mlx_err e;
    mlx_err_clear(&e);
    assert_int_equal(mlx_json_parse(text, len, &v, &e), MLX_EINVAL);
    assert_null(v);
    assert_int_equal(e.code, MLX_EINVAL);
    if (want_in_msg != NULL)
        assert_non_null(strstr(e.msg, want_in_msg));
}

/* ---- parse ------------------------------------------------------------- */

static void test_json_parse_object(void **state)
{
    (void)state;
    json_t *v = parse_ok("{\"model\":\"llama\",\"n\":3}");
    assert_true(json_is_object(v));
    assert_string_equal(json_string_value(json_object_get(v, "model")), "llama");
    assert_int_equal(json_integer_value(json_object_get(v, "n")), 3);
    json_decref(v);
}

static void test_json_parse_reads_only_len_bytes(void **state)
{
    (void)state;
    const char text[] = "[1,2]garbage";
    json_t *v = NULL;
    assert_int_equal(mlx_json_parse(text, 5, &v, NULL), 0);
    assert_true(json_is_array(v));
    assert_int_equal(json_array_size(v), 2);
    json_decref(v);
    /* Not NUL-terminated at all. */
    const char raw[4] = {'t', 'r', 'u', 'e'};
    assert_int_equal(mlx_json_parse(raw, sizeof raw, &v, NULL), 0);
    assert_true(json_is_true(v));
    json_decref(v);
}

static void test_json_parse_accepts_any_value(void **state)
{
    (void)state;
    json_t *v = parse_ok("42");
    assert_true(json_is_integer(v));
    json_decref(v);
    v = parse_ok("\"s\"");
    assert_true(json_is_string(v));
    json_decref(v);
    v = parse_ok("null");
    assert_true(json_is_null(v));
    json_decref(v);
}

static void test_json_parse_error_names_line_and_column(void **state)
{
    (void)state;
    const char *text = "{\n  \"a\": 1,\n  \"b\": tru\n}";
    parse_bad(text, strlen(text), "line 3, column");
    parse_bad("{\"a\":}", 6, "line 1, column 6");
}

static void test_json_parse_refuses_bad_documents(void **state)
{
    (void)state;
    parse_bad("", 0, NULL);
    parse_bad("{", 1, NULL);
    parse_bad("{} x", 4, NULL);         /* trailing garbage */
    parse_bad("[1,]", 4, NULL);         /* trailing comma */
    parse_bad("{'a':1}", 7, NULL);      /* single quotes */
    parse_bad("\"a\0b\"", 5, NULL);     /* NUL inside the text */
    parse_bad("\"\xc3\x28\"", 4, NULL); /* invalid UTF-8 */
}

static void test_json_parse_refuses_duplicate_keys(void **state)
{
    (void)state;
    const char *text = "{\"a\":1,\"a\":2}";
    parse_bad(text, strlen(text), "a");
}

/* ---- dump -------------------------------------------------------------- */

static void test_json_dump_is_compact(void **state)
{
    (void)state;
    json_t *v = json_pack("{s:i, s:[b, n], s:s}", "a", 1, "b", 1, "c", "x\"y");
    assert_non_null(v);
    char *text = NULL;
    assert_int_equal(mlx_json_dump(v, &text, NULL), 0);
    assert_string_equal(text, "{\"a\":1,\"b\":[true,null],\"c\":\"x\\\"y\"}");
    mlx_free(text);
    json_decref(v);
}

static void test_json_dump_accepts_a_bare_value(void **state)
{
    (void)state;
    json_t *v = json_string("hi");
    char *text = NULL;
    assert_int_equal(mlx_json_dump(v, &text, NULL), 0);
    assert_string_equal(text, "\"hi\"");
    mlx_free(text);
    json_decref(v);
}

/* ---- type names -------------------------------------------------------- */

static void test_json_type_names_read_in_a_sentence(void **state)
{
    (void)state;
    json_t *values[] = {json_object(),  json_array(), json_string("s"), json_integer(1),
                        json_real(1.5), json_true(),  json_false(),     json_null()};
    const char *want[] = {"an object", "an array",  "a string",  "an integer",
                          "a number",  "a boolean", "a boolean", "null"};
    for (size_t i = 0; i < sizeof values / sizeof values[0]; i++) {
        assert_string_equal(mlx_json_type_name(values[i]), want[i]);
        json_decref(values[i]);
    }
}

/* ---- getters ----------------------------------------------------------- */

static const char *request =
    "{\"model\":\"llama3.2:1b\",\"max_tokens\":128,\"temperature\":0.7,\"stream\":true,"
    "\"seed\":null,\"n\":2.5,\"stop\":[\"x\"]}";

static void test_json_get_string_present(void **state)
{
    (void)state;
    json_t *o = parse_ok(request);
    const char *s = NULL;
    assert_int_equal(mlx_json_get_string(o, "model", MLX_JSON_REQUIRED, &s, NULL), 0);
    assert_string_equal(s, "llama3.2:1b");
    json_decref(o);
}

static void test_json_get_absent_optional_leaves_out_alone(void **state)
{
    (void)state;
    json_t *o = parse_ok(request);
    const char *s = "default";
    int64_t i = -7;
    double d = -7.5;
    bool b = false;
    assert_int_equal(mlx_json_get_string(o, "user", MLX_JSON_OPTIONAL, &s, NULL), 0);
    assert_int_equal(mlx_json_get_int(o, "top_k", MLX_JSON_OPTIONAL, 0, 100, &i, NULL),
                     0);
    assert_int_equal(mlx_json_get_number(o, "top_p", MLX_JSON_OPTIONAL, 0, 1, &d, NULL),
                     0);
    assert_int_equal(mlx_json_get_bool(o, "echo", MLX_JSON_OPTIONAL, &b, NULL), 0);
    assert_string_equal(s, "default");
    assert_true(i == -7);
    assert_true(d == -7.5);
    assert_false(b);
    /* null counts as absent */
    assert_int_equal(mlx_json_get_int(o, "seed", MLX_JSON_OPTIONAL, 0, 100, &i, NULL), 0);
    assert_true(i == -7);
    json_decref(o);
}

static void test_json_get_absent_required_names_member(void **state)
{
    (void)state;
    json_t *o = parse_ok(request);
    const char *s = "default";
    mlx_err e;
    mlx_err_clear(&e);
    assert_int_equal(mlx_json_get_string(o, "prompt", MLX_JSON_REQUIRED, &s, &e),
                     MLX_EINVAL);
    assert_string_equal(e.msg, "'prompt' is required");
    assert_string_equal(s, "default");
    int64_t i = 5;
    mlx_err_clear(&e);
    assert_int_equal(mlx_json_get_int(o, "seed", MLX_JSON_REQUIRED, 0, 9, &i, &e),
                     MLX_EINVAL);
    assert_non_null(strstr(e.msg, "'seed'"));
    assert_true(i == 5);
    json_decref(o);
}

static void test_json_get_wrong_type_names_member_and_type(void **state)
{
    (void)state;
    json_t *o = parse_ok(request);
    mlx_err e;
    const char *s = "default";
    mlx_err_clear(&e);
    assert_int_equal(mlx_json_get_string(o, "max_tokens", MLX_JSON_OPTIONAL, &s, &e),
                     MLX_EINVAL);
    assert_string_equal(e.msg, "'max_tokens' must be a string, got an integer");
    assert_string_equal(s, "default");

    int64_t i = 9;
    mlx_err_clear(&e);
    assert_int_equal(mlx_json_get_int(o, "model", MLX_JSON_OPTIONAL, 1, 100, &i, &e),
                     MLX_EINVAL);
    assert_string_equal(e.msg, "'model' must be an integer, got a string");
    mlx_err_clear(&e);
    assert_int_equal(mlx_json_get_int(o, "n", MLX_JSON_OPTIONAL, 1, 100, &i, &e),
                     MLX_EINVAL);
    assert_string_equal(e.msg, "'n' must be an integer, got a number");
    assert_true(i == 9);

    double d = 1;
    mlx_err_clear(&e);
    assert_int_equal(mlx_json_get_number(o, "stop", MLX_JSON_OPTIONAL, 0, 1, &d, &e),
                     MLX_EINVAL);
    assert_string_equal(e.msg, "'stop' must be a number, got an array");

    bool b = false;
    mlx_err_clear(&e);
    assert_int_equal(mlx_json_get_bool(o, "model", MLX_JSON_OPTIONAL, &b, &e),
                     MLX_EINVAL);
    assert_string_equal(e.msg, "'model' must be true or false, got a string");
    assert_false(b);
    json_decref(o);
}

static void test_json_get_int_checks_inclusive_range(void **state)
{
    (void)state;
    json_t *o = parse_ok("{\"lo\":1,\"hi\":32768,\"over\":32769,\"under\":0}");
    int64_t i = 0;
    assert_int_equal(mlx_json_get_int(o, "lo", MLX_JSON_REQUIRED, 1, 32768, &i, NULL), 0);
    assert_true(i == 1);
    assert_int_equal(mlx_json_get_int(o, "hi", MLX_JSON_REQUIRED, 1, 32768, &i, NULL), 0);
    assert_true(i == 32768);
    mlx_err e;
    mlx_err_clear(&e);
    i = 77;
    assert_int_equal(mlx_json_get_int(o, "over", MLX_JSON_REQUIRED, 1, 32768, &i, &e),
                     MLX_EINVAL);
    assert_string_equal(e.msg, "'over' must be from 1 to 32768, got 32769");
    assert_true(i == 77);
    mlx_err_clear(&e);
    assert_int_equal(mlx_json_get_int(o, "under", MLX_JSON_REQUIRED, 1, 32768, &i, &e),
                     MLX_EINVAL);
    assert_non_null(strstr(e.msg, "got 0"));
    json_decref(o);
}

static void test_json_get_int_handles_int64_extremes(void **state)
{
    (void)state;
    json_t *o = parse_ok("{\"max\":9223372036854775807,\"min\":-9223372036854775808}");
    int64_t i = 0;
    assert_int_equal(
        mlx_json_get_int(o, "max", MLX_JSON_REQUIRED, INT64_MIN, INT64_MAX, &i, NULL), 0);
    assert_true(i == INT64_MAX);
    assert_int_equal(
        mlx_json_get_int(o, "min", MLX_JSON_REQUIRED, INT64_MIN, INT64_MAX, &i, NULL), 0);
    assert_true(i == INT64_MIN);
    json_decref(o);
}

static void test_json_get_number_accepts_integers_and_checks_range(void **state)
{
    (void)state;
    json_t *o = parse_ok(request);
    double d = 0;
    assert_int_equal(
        mlx_json_get_number(o, "temperature", MLX_JSON_REQUIRED, 0, 2, &d, NULL), 0);
    assert_true(d == 0.7);
    assert_int_equal(
        mlx_json_get_number(o, "max_tokens", MLX_JSON_REQUIRED, 0, 1000, &d, NULL), 0);
    assert_true(d == 128.0);
    mlx_err e;
    mlx_err_clear(&e);
    d = -1;
    assert_int_equal(
        mlx_json_get_number(o, "temperature", MLX_JSON_REQUIRED, 0, 0.5, &d, &e),
        MLX_EINVAL);
    assert_string_equal(e.msg, "'temperature' must be from 0 to 0.5, got 0.7");
    assert_true(d == -1);
    json_decref(o);
}

static void test_json_get_bool_reads_true_and_false(void **state)
{
    (void)state;
    json_t *o = parse_ok("{\"t\":true,\"f\":false}");
    bool b = false;
    assert_int_equal(mlx_json_get_bool(o, "t", MLX_JSON_REQUIRED, &b, NULL), 0);
    assert_true(b);
    assert_int_equal(mlx_json_get_bool(o, "f", MLX_JSON_REQUIRED, &b, NULL), 0);
    assert_false(b);
    json_decref(o);
}

static void test_json_get_on_non_object_is_an_error(void **state)
{
    (void)state;
    json_t *a = parse_ok("[1,2]");
    const char *s = "default";
    mlx_err e;
    mlx_err_clear(&e);
    assert_int_equal(mlx_json_get_string(a, "model", MLX_JSON_OPTIONAL, &s, &e),
                     MLX_EINVAL);
    assert_string_equal(e.msg, "expected a JSON object, got an array");
    assert_string_equal(s, "default");
    json_decref(a);
}

/* ---- out of memory ----------------------------------------------------- */

static void test_json_parse_out_of_memory_at_every_step(void **state)
{
    (void)state;
    mlx_json_use_mlx_alloc();
    const char *text =
        "{\"model\":\"llama\",\"messages\":[{\"role\":\"user\",\"content\":"
        "\"a fairly long string so that the lexer must grow its buffer "
        "beyond the first allocation it makes\"}],\"n\":[1,2,3,4,5]}";
    long n;
    for (n = 0; n < 1000; n++) {
        json_t *v = NULL;
        mlx_err e;
        mlx_err_clear(&e);
        mlx_alloc_fail_after(n);
        int rc = mlx_json_parse(text, strlen(text), &v, &e);
        mlx_alloc_fail_reset();
        if (rc == 0) {
            assert_non_null(json_object_get(v, "messages"));
            json_decref(v);
            break;
        }
        assert_int_equal(rc, MLX_ENOMEM);
        assert_int_equal(e.code, MLX_ENOMEM);
        assert_null(v);
    }
    assert_true(n > 0 && n < 1000);
}

static void test_json_dump_out_of_memory_at_every_step(void **state)
{
    (void)state;
    mlx_json_use_mlx_alloc();
    json_t *v = json_pack("{s:s, s:[i,i,i], s:{s:b}}", "model",
                          "a long enough string to need more than one buffer growth step "
                          "in the dumper, which starts small",
                          "n", 1, 2, 3, "o", "k", 1);
    assert_non_null(v);
    long n;
    for (n = 0; n < 1000; n++) {
        char *text = NULL;
        mlx_err e;
        mlx_err_clear(&e);
        mlx_alloc_fail_after(n);
        int rc = mlx_json_dump(v, &text, &e);
        mlx_alloc_fail_reset();
        if (rc == 0) {
            assert_non_null(strstr(text, "\"n\":[1,2,3]"));
            mlx_free(text);
            break;
        }
        assert_int_equal(rc, MLX_ENOMEM);
        assert_int_equal(e.code, MLX_ENOMEM);
        assert_null(text);
    }
    assert_true(n > 0 && n < 1000);
    json_decref(v);
}

#define T(fn) cmocka_unit_test_teardown(fn, teardown)

static void test_json_print_writes_one_line(void **state)
{
    char path[] = "/tmp/mlx-json-print-XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    fflush(stdout);
    int saved = dup(STDOUT_FILENO);
    dup2(fd, STDOUT_FILENO);
    int rc = mlx_json_print(json_pack("{s:i, s:s}", "a", 1, "b", "x"), NULL);
    fflush(stdout);
    dup2(saved, STDOUT_FILENO);
    close(saved);
    assert_int_equal(rc, 0);
    char buf[64] = "";
    assert_true(pread(fd, buf, sizeof buf - 1, 0) > 0);
    close(fd);
    unlink(path);
    assert_string_equal(buf, "{\"a\":1,\"b\":\"x\"}\n");
    mlx_err err;
    mlx_err_clear(&err);
    assert_int_equal(mlx_json_print(NULL, &err), MLX_ENOMEM); /* a failed json_pack */
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        T(test_json_print_writes_one_line),
        T(test_json_parse_object),
        T(test_json_parse_reads_only_len_bytes),
        T(test_json_parse_accepts_any_value),
        T(test_json_parse_error_names_line_and_column),
        T(test_json_parse_refuses_bad_documents),
        T(test_json_parse_refuses_duplicate_keys),
        T(test_json_dump_is_compact),
        T(test_json_dump_accepts_a_bare_value),
        T(test_json_type_names_read_in_a_sentence),
        T(test_json_get_string_present),
        T(test_json_get_absent_optional_leaves_out_alone),
        T(test_json_get_absent_required_names_member),
        T(test_json_get_wrong_type_names_member_and_type),
        T(test_json_get_int_checks_inclusive_range),
        T(test_json_get_int_handles_int64_extremes),
        T(test_json_get_number_accepts_integers_and_checks_range),
        T(test_json_get_bool_reads_true_and_false),
        T(test_json_get_on_non_object_is_an_error),
        T(test_json_parse_out_of_memory_at_every_step),
        T(test_json_dump_out_of_memory_at_every_step),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
