/*
 * test_parse.c — common/parse: strict integers (int64 bounds, no coercion),
 * booleans, HOST:PORT and [IPV6]:PORT, NNG URLs, and the UTF-8 cleanliness
 * check. Failures leave the outputs untouched and quote the input.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "common/parse.h"

/* ---- integers ---------------------------------------------------------- */

static void assert_int64_ok(const char *text, int64_t want)
{
    int64_t v = 12345;
    mlx_err e;
    mlx_err_clear(&e);
    assert_int_equal(mlx_parse_int64(text, &v, &e), 0);
    assert_true(v == want);
    assert_int_equal(e.code, 0);
}

static void assert_int64_bad(const char *text)
{
    int64_t v = 12345;
    mlx_err e;
    mlx_err_clear(&e);
    assert_int_equal(mlx_parse_int64(text, &v, &e), MLX_EINVAL);
    assert_true(v == 12345); /* untouched */
    assert_int_equal(e.code, MLX_EINVAL);
    char quoted[64];
    snprintf(quoted, sizeof quoted, "'%s'", text);
    assert_non_null(strstr(e.msg, quoted));
}

static void test_parse_int64_accepts_plain_decimals(void **state)
{
    (void)state;
    assert_int64_ok("0", 0);
    assert_int64_ok("7", 7);
    assert_int64_ok("42", 42);
    assert_int64_ok("-42", -42);
    assert_int64_ok("-0", 0);
    assert_int64_ok("1000000", 1000000);
}

static void test_parse_int64_accepts_the_extremes(void **state)
{
    (void)state;
    assert_int64_ok("9223372036854775807", INT64_MAX);
    assert_int64_ok("-9223372036854775808", INT64_MIN);
    assert_int64_ok("9223372036854775806", INT64_MAX - 1);
    assert_int64_ok("-9223372036854775807", INT64_MIN + 1);
}

static void test_parse_int64_refuses_overflow_by_one(void **state)
{
    (void)state;
    assert_int64_bad("9223372036854775808");
    assert_int64_bad("-9223372036854775809");
    assert_int64_bad("18446744073709551616");
    assert_int64_bad("99999999999999999999999");
    mlx_err e;
    int64_t v;
    mlx_parse_int64("9223372036854775808", &v, &e);
    assert_non_null(strstr(e.msg, "range"));
}

static void test_parse_int64_refuses_anything_but_digits(void **state)
{
    (void)state;
    assert_int64_bad("");
    assert_int64_bad(" 1");
    assert_int64_bad("1 ");
    assert_int64_bad("1x");
    assert_int64_bad("x1");
    assert_int64_bad("-");
    assert_int64_bad("+1");
    assert_int64_bad("--1");
    assert_int64_bad("0x10");
    assert_int64_bad("1.5");
    assert_int64_bad("1e3");
    assert_int64_bad("1,000");
}

static void test_parse_int64_works_without_err(void **state)
{
    (void)state;
    int64_t v = 1;
    assert_int_equal(mlx_parse_int64("nope", &v, NULL), MLX_EINVAL);
    assert_int_equal(mlx_parse_int64("5", &v, NULL), 0);
    assert_true(v == 5);
}

/* ---- booleans ---------------------------------------------------------- */

static void test_parse_bool_accepts_the_documented_words(void **state)
{
    (void)state;
    const char *yes[] = {"true", "TRUE", "True", "yes", "YES", "on", "On", "1"};
    const char *no[] = {"false", "FALSE", "no", "No", "off", "OFF", "0"};
    for (size_t i = 0; i < sizeof yes / sizeof yes[0]; i++) {
        bool b = false;
        assert_int_equal(mlx_parse_bool(yes[i], &b, NULL), 0);
        assert_true(b);
    }
    for (size_t i = 0; i < sizeof no / sizeof no[0]; i++) {
        bool b = true;
        assert_int_equal(mlx_parse_bool(no[i], &b, NULL), 0);
        assert_false(b);
    }
}

static void test_parse_bool_refuses_other_words(void **state)
{
    (void)state;
    const char *bad[] = {"", "2", "y", "n", "truee", " true", "true ", "enable", "-1"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        bool b = true;
        mlx_err e;
        mlx_err_clear(&e);
        assert_int_equal(mlx_parse_bool(bad[i], &b, &e), MLX_EINVAL);
        assert_true(b);
        char quoted[32];
        snprintf(quoted, sizeof quoted, "'%s'", bad[i]);
        assert_non_null(strstr(e.msg, quoted));
    }
}

/* ---- host:port --------------------------------------------------------- */

static void assert_hostport_ok(const char *text, const char *want_host, int want_port)
{
    char host[64] = "unset";
    int port = -1;
    mlx_err e;
    mlx_err_clear(&e);
    assert_int_equal(mlx_parse_hostport(text, host, sizeof host, &port, &e), 0);
    assert_string_equal(host, want_host);
    assert_int_equal(port, want_port);
}

static void assert_hostport_bad(const char *text)
{
    char host[64] = "unset";
    int port = -1;
    mlx_err e;
    mlx_err_clear(&e);
    assert_int_equal(mlx_parse_hostport(text, host, sizeof host, &port, &e), MLX_EINVAL);
    assert_string_equal(host, "unset");
    assert_int_equal(port, -1);
    char quoted[80];
    snprintf(quoted, sizeof quoted, "'%s'", text);
    assert_non_null(strstr(e.msg, quoted));
}

static void test_parse_hostport_accepts_names_and_ipv4(void **state)
{
    (void)state;
    assert_hostport_ok("127.0.0.1:7480", "127.0.0.1", 7480);
    assert_hostport_ok("localhost:1", "localhost", 1);
    assert_hostport_ok("example.com:65535", "example.com", 65535);
    assert_hostport_ok("0.0.0.0:7400", "0.0.0.0", 7400);
}

static void test_parse_hostport_accepts_bracketed_ipv6(void **state)
{
    (void)state;
    assert_hostport_ok("[::1]:7400", "::1", 7400);
    assert_hostport_ok("[2001:db8::1]:80", "2001:db8::1", 80);
    assert_hostport_ok("[::]:65535", "::", 65535);
}

static void test_parse_hostport_refuses_bad_ports(void **state)
{
    (void)state;
    assert_hostport_bad("127.0.0.1");
    assert_hostport_bad("127.0.0.1:");
    assert_hostport_bad("host:0");
    assert_hostport_bad("host:65536");
    assert_hostport_bad("host:-1");
    assert_hostport_bad("host:+80");
    assert_hostport_bad("host:80x");
    assert_hostport_bad("host: 80");
    assert_hostport_bad("host:99999999999999999999");
    assert_hostport_bad("[::1]:0");
    assert_hostport_bad("[::1]:65536");
}

static void test_parse_hostport_refuses_bad_hosts(void **state)
{
    (void)state;
    assert_hostport_bad("");
    assert_hostport_bad(":80");
    assert_hostport_bad("::1:80"); /* bare IPv6 needs brackets */
    assert_hostport_bad("[::1]");
    assert_hostport_bad("[::1]80");
    assert_hostport_bad("[::1:80");
    assert_hostport_bad("[]:80");
}

static void test_parse_hostport_refuses_host_longer_than_buffer(void **state)
{
    (void)state;
    char host[8] = "unset";
    int port = -1;
    /* 7 characters fit with the NUL, 8 do not. */
    assert_int_equal(mlx_parse_hostport("abcdefg:1", host, sizeof host, &port, NULL), 0);
    assert_string_equal(host, "abcdefg");
    memcpy(host, "unset", 6);
    assert_int_equal(mlx_parse_hostport("abcdefgh:1", host, sizeof host, &port, NULL),
                     MLX_EINVAL);
    assert_string_equal(host, "unset");
}

/* ---- NNG URLs ---------------------------------------------------------- */

static void test_parse_nng_url_accepts_tcp_and_tls(void **state)
{
    (void)state;
    char host[64];
    int port = 0;
    assert_int_equal(
        mlx_parse_nng_url("tcp://127.0.0.1:7400", host, sizeof host, &port, NULL), 0);
    assert_string_equal(host, "127.0.0.1");
    assert_int_equal(port, 7400);
    assert_int_equal(
        mlx_parse_nng_url("tls+tcp://[2001:db8::2]:7401", host, sizeof host, &port, NULL),
        0);
    assert_string_equal(host, "2001:db8::2");
    assert_int_equal(port, 7401);
}

static void test_parse_nng_url_refuses_other_forms(void **state)
{
    (void)state;
    const char *bad[] = {"",
                         "127.0.0.1:7400",
                         "http://127.0.0.1:7400",
                         "tcp://",
                         "tcp://host",
                         "tcp://host:0",
                         "ipc:///tmp/x",
                         "TCP://host:1",
                         "tcp://host:65536"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        char host[64] = "unset";
        int port = -1;
        mlx_err e;
        mlx_err_clear(&e);
        assert_int_equal(mlx_parse_nng_url(bad[i], host, sizeof host, &port, &e),
                         MLX_EINVAL);
        assert_int_equal(port, -1);
        char quoted[64];
        snprintf(quoted, sizeof quoted, "'%s'", bad[i]);
        assert_non_null(strstr(e.msg, quoted));
        assert_non_null(strstr(e.msg, "tcp://HOST:PORT"));
    }
}

/* ---- UTF-8 cleanliness ------------------------------------------------- */

static void test_utf8_prefix_never_ends_inside_a_character(void **state)
{
    (void)state;
    const char *emoji = "ab\xf0\x9f\x98\x80z"; /* U+1F600 at bytes 2..5 */
    size_t want[] = {0, 1, 2, 2, 2, 2, 6, 7, 7};
    for (size_t max = 0; max < sizeof want / sizeof want[0]; max++)
        assert_int_equal(mlx_utf8_prefix(emoji, max), want[max]);
    assert_int_equal(mlx_utf8_prefix("h\xc3\xa9", 2), 1);
    assert_int_equal(mlx_utf8_prefix("h\xc3\xa9", 3), 3);
    assert_int_equal(mlx_utf8_prefix("", 5), 0);
}

static void test_text_is_clean_accepts_ascii_and_multibyte(void **state)
{
    (void)state;
    assert_true(mlx_text_is_clean("", 0));
    assert_true(mlx_text_is_clean("hello world ~!", 100));
    assert_true(mlx_text_is_clean("h\xc3\xa9llo", 100));             /* é, 2 bytes */
    assert_true(mlx_text_is_clean("\xc2\xa0", 100));                 /* U+00A0 */
    assert_true(mlx_text_is_clean("\xe6\x97\xa5\xe6\x9c\xac", 100)); /* 日本 */
    assert_true(mlx_text_is_clean("\xe0\xa0\x80", 100));             /* U+0800 */
    assert_true(mlx_text_is_clean("\xef\xbf\xbd", 100));             /* U+FFFD */
    assert_true(mlx_text_is_clean("\xf0\x9f\x98\x80", 100));         /* U+1F600 */
    assert_true(mlx_text_is_clean("\xf0\x90\x80\x80", 100));         /* U+10000 */
    assert_true(mlx_text_is_clean("\xf4\x8f\xbf\xbf", 100));         /* U+10FFFF */
}

static void test_text_is_clean_refuses_overlong_forms(void **state)
{
    (void)state;
    assert_false(mlx_text_is_clean("\xc0\xaf", 100)); /* '/' in 2 bytes */
    assert_false(mlx_text_is_clean("\xc1\xbf", 100));
    assert_false(mlx_text_is_clean("\xe0\x80\xaf", 100));     /* '/' in 3 bytes */
    assert_false(mlx_text_is_clean("\xe0\x9f\xbf", 100));     /* U+07FF in 3 bytes */
    assert_false(mlx_text_is_clean("\xf0\x80\x80\xaf", 100)); /* '/' in 4 bytes */
    assert_false(mlx_text_is_clean("\xf0\x8f\xbf\xbf", 100)); /* U+FFFF in 4 bytes */
}

static void test_text_is_clean_refuses_surrogates_and_out_of_range(void **state)
{
    (void)state;
    assert_false(mlx_text_is_clean("\xed\xa0\x80", 100));     /* U+D800 */
    assert_false(mlx_text_is_clean("\xed\xbf\xbf", 100));     /* U+DFFF */
    assert_false(mlx_text_is_clean("\xf4\x90\x80\x80", 100)); /* U+110000 */
    assert_false(mlx_text_is_clean("\xf5\x80\x80\x80", 100));
    assert_false(mlx_text_is_clean("\xff", 100));
    assert_false(mlx_text_is_clean("\xfe", 100));
}

static void test_text_is_clean_refuses_truncated_sequences(void **state)
{
    (void)state;
    assert_false(mlx_text_is_clean("\xc3", 100));
    assert_false(mlx_text_is_clean("abc\xc3", 100));
    assert_false(mlx_text_is_clean("\xe6\x97", 100));
    assert_false(mlx_text_is_clean("\xf0\x9f\x98", 100));
    assert_false(mlx_text_is_clean("\xc3x", 100)); /* continuation missing */
    assert_false(mlx_text_is_clean("\x80", 100));  /* lone continuation */
    assert_false(mlx_text_is_clean("a\xbf"
                                   "b",
                                   100));
}

static void test_text_is_clean_refuses_control_characters(void **state)
{
    (void)state;
    assert_false(mlx_text_is_clean("a\tb", 100));
    assert_false(mlx_text_is_clean("line\n", 100));
    assert_false(mlx_text_is_clean("\r", 100));
    assert_false(mlx_text_is_clean("\x1b[31m", 100));
    assert_false(mlx_text_is_clean("\x01", 100));
    assert_false(mlx_text_is_clean("del\x7f", 100));
    assert_false(mlx_text_is_clean("\xc2\x85", 100)); /* U+0085, a C1 control */
    assert_false(mlx_text_is_clean("\xc2\x9b", 100)); /* U+009B, CSI */
}

static void test_text_is_clean_refuses_text_over_max(void **state)
{
    (void)state;
    assert_true(mlx_text_is_clean("abc", 3));
    assert_false(mlx_text_is_clean("abc", 2));
    assert_false(mlx_text_is_clean("a", 0));
    /* Counted in bytes: é is two. */
    assert_true(mlx_text_is_clean("\xc3\xa9", 2));
    assert_false(mlx_text_is_clean("\xc3\xa9", 1));
    assert_false(mlx_text_is_clean("\xf0\x9f\x98\x80", 3));
}

static void test_parse_duration_units(void **state)
{
    static const struct {
        const char *text;
        int64_t ms;
    } ok[] = {{"250ms", 250},
              {"90s", 90000},
              {"30m", 1800000},
              {"24h", 86400000},
              {"7d", 604800000}};
    for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++) {
        int64_t v = -1;
        assert_int_equal(mlx_parse_duration_ms(ok[i].text, &v, NULL), 0);
        assert_int_equal(v, ok[i].ms);
    }
    static const char *const bad[] = {"",     "h",    "24",  "0h", "-1h",
                                      "1.5h", "24 h", "24H", "1w", "99999999999999999d"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        int64_t v = 42;
        mlx_err err;
        mlx_err_clear(&err);
        assert_int_equal(mlx_parse_duration_ms(bad[i], &v, &err), MLX_EINVAL);
        assert_int_equal(v, 42);
        assert_non_null(strstr(err.msg, bad[i]));
    }
}

static void test_parse_double_forms(void **state)
{
    static const struct {
        const char *text;
        double value;
    } ok[] = {{"0", 0},        {"0.8", 0.8},   {"-2", -2},   {".5", 0.5}, {"1e-5", 1e-5},
              {"2.5E3", 2500}, {"0.95", 0.95}, {"1.1", 1.1}, {"7.", 7},   {"1e+2", 100}};
    for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++) {
        double v = 42;
        assert_int_equal(mlx_parse_double(ok[i].text, &v, NULL), 0);
        assert_true(v == ok[i].value); /* the same double a C compiler makes */
    }
    static const char *const bad[] = {"",    "-",   ".",     "e5", "1e", "0x10",
                                      "nan", "inf", "1.2.3", " 1", "1 ", "1e999"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        double v = 42;
        mlx_err err;
        mlx_err_clear(&err);
        assert_int_equal(mlx_parse_double(bad[i], &v, &err), MLX_EINVAL);
        assert_true(v == 42);
        assert_non_null(strstr(err.msg, bad[i]));
    }
}

static void test_parse_bytes_units(void **state)
{
    static const struct {
        const char *text;
        uint64_t bytes;
    } ok[] = {{"0", 0},
              {"1024", 1024},
              {"12B", 12},
              {"4K", 4096},
              {"500M", 500ull << 20},
              {"40g", 40ull << 30},
              {"40GiB", 40ull << 30},
              {"2TB", 2ull << 40},
              {"16777215T", 16777215ull << 40}};
    for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++) {
        uint64_t v = 1;
        assert_int_equal(mlx_parse_bytes(ok[i].text, &v, NULL), 0);
        assert_true(v == ok[i].bytes);
    }
    static const char *const bad[] = {"",     "G",         "-1G",
                                      "1.5G", "10 G",      "10Gb!",
                                      "10X",  "16777216T", "99999999999999999999"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        uint64_t v = 42;
        mlx_err err;
        mlx_err_clear(&err);
        assert_int_equal(mlx_parse_bytes(bad[i], &v, &err), MLX_EINVAL);
        assert_true(v == 42);
        assert_non_null(strstr(err.msg, bad[i]));
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_parse_bytes_units),
        cmocka_unit_test(test_parse_double_forms),
        cmocka_unit_test(test_parse_duration_units),
        cmocka_unit_test(test_parse_int64_accepts_plain_decimals),
        cmocka_unit_test(test_parse_int64_accepts_the_extremes),
        cmocka_unit_test(test_parse_int64_refuses_overflow_by_one),
        cmocka_unit_test(test_parse_int64_refuses_anything_but_digits),
        cmocka_unit_test(test_parse_int64_works_without_err),
        cmocka_unit_test(test_parse_bool_accepts_the_documented_words),
        cmocka_unit_test(test_parse_bool_refuses_other_words),
        cmocka_unit_test(test_parse_hostport_accepts_names_and_ipv4),
        cmocka_unit_test(test_parse_hostport_accepts_bracketed_ipv6),
        cmocka_unit_test(test_parse_hostport_refuses_bad_ports),
        cmocka_unit_test(test_parse_hostport_refuses_bad_hosts),
        cmocka_unit_test(test_parse_hostport_refuses_host_longer_than_buffer),
        cmocka_unit_test(test_parse_nng_url_accepts_tcp_and_tls),
        cmocka_unit_test(test_parse_nng_url_refuses_other_forms),
        cmocka_unit_test(test_utf8_prefix_never_ends_inside_a_character),
        cmocka_unit_test(test_text_is_clean_accepts_ascii_and_multibyte),
        cmocka_unit_test(test_text_is_clean_refuses_overlong_forms),
        cmocka_unit_test(test_text_is_clean_refuses_surrogates_and_out_of_range),
        cmocka_unit_test(test_text_is_clean_refuses_truncated_sequences),
        cmocka_unit_test(test_text_is_clean_refuses_control_characters),
        cmocka_unit_test(test_text_is_clean_refuses_text_over_max),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
