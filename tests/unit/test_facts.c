/*
 * test_facts.c — what agents report, as the coordinator checks and stores it
 * (coordinator/control/facts.h): facts_check_register accepts a well-formed
 * Register and refuses each kind of bad field with a sentence naming it;
 * facts_resolve_address picks the data-plane address to dial; the hardware
 * and metrics JSON carry the input values (NaN and infinity become 0).
 * facts_peer_ip needs a message from a live pipe and is left to the
 * integration tests.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>
#include <jansson.h>
#include <math.h>

#include "common/alloc.h"
#include "common/err.h"
#include "common/limits.h"
#include "coordinator/control/facts.h"

struct good {
    Fleet__Hardware hw;
    Fleet__Register reg;
};

/* A Register as an agent on a Linux box would send it. */
static void make_good(struct good *g)
{
    fleet__hardware__init(&g->hw);
    g->hw.hostname = (char *)"rack-3.lan";
    g->hw.os_name = (char *)"Linux";
    g->hw.os_version = (char *)"Debian GNU/Linux 12 (bookworm), kernel 6.1.0-18-amd64";
    g->hw.arch = (char *)"x86_64";
    g->hw.cpu_model = (char *)"AMD EPYC 7763 64-Core Processor";
    g->hw.cpu_cores = 128;
    g->hw.performance_cores = 128;
    g->hw.memory_total_bytes = UINT64_C(540000000000);
    g->hw.chip = (char *)"";
    g->hw.disk_free_bytes = UINT64_C(1000000000000);
    g->hw.disk_total_bytes = UINT64_C(2000000000000);
    fleet__register__init(&g->reg);
    g->reg.name = (char *)"rack-3";
    g->reg.listen = (char *)"tcp://0.0.0.0:7401";
    g->reg.advertise = (char *)"";
    g->reg.http = (char *)"127.0.0.1:7481";
    g->reg.agent_version = (char *)"0.1.0";
    g->reg.heartbeat_ms = 1000;
    g->reg.hardware = &g->hw;
}

/* Expects reg to be refused with a sentence that starts with (or, when
 * anywhere is set, contains) field. */
static void expect_refused(const Fleet__Register *reg, const char *field, int anywhere)
{
    mlx_err err;
    mlx_err_clear(&err);
    int rc = facts_check_register(reg, &err);
    if (rc == 0)
        fail_msg("a register with a bad %s was accepted", field);
    assert_true(rc < 0);
    assert_int_equal(err.code, rc);
    int named = anywhere ? strstr(err.msg, field) != NULL
                         : strncmp(err.msg, field, strlen(field)) == 0;
    if (!named)
        fail_msg("sentence does not name %s: %s", field, err.msg);
    /* Without an mlx_err the verdict must be the same. */
    assert_int_equal(facts_check_register(reg, NULL), rc);
}

/* ---- facts_check_register --------------------------------------------- */

static void well_formed_register_is_accepted(void **state)
{
    (void)state;
    struct good g;
    make_good(&g);
    mlx_err err;
    mlx_err_clear(&err);
    int rc = facts_check_register(&g.reg, &err);
    if (rc != 0)
        fail_msg("refused: %s", err.msg);

    /* Also with every optional field used: advertise, IPv6, TLS, UTF-8. */
    g.reg.advertise = (char *)"tls+tcp://[2001:db8::7]:7401";
    g.reg.listen = (char *)"tcp://[::]:7401";
    g.reg.http = (char *)"[::1]:7481";
    g.reg.name = (char *)"r\xc3\xa9seau-\xe6\x9d\xb1\xe4\xba\xac"; /* "réseau-東京" */
    g.reg.heartbeat_ms = 0; /* coordinator default */
    g.hw.chip = (char *)"Apple M2 Max";
    rc = facts_check_register(&g.reg, &err);
    if (rc != 0)
        fail_msg("refused: %s", err.msg);
}

static void name_of_63_bytes_is_accepted(void **state)
{
    (void)state;
    struct good g;
    make_good(&g);
    char name[MLX_MAX_NODE_NAME + 1];
    memset(name, 'n', MLX_MAX_NODE_NAME);
    name[MLX_MAX_NODE_NAME] = '\0';
    g.reg.name = name;
    assert_int_equal(facts_check_register(&g.reg, NULL), 0);
}

static void empty_name_is_refused(void **state)
{
    (void)state;
    struct good g;
    make_good(&g);
    g.reg.name = (char *)"";
    expect_refused(&g.reg, "name", 0);
}

static void name_of_64_bytes_is_refused(void **state)
{
    (void)state;
    struct good g;
    make_good(&g);
    char name[MLX_MAX_NODE_NAME + 2];
    memset(name, 'n', MLX_MAX_NODE_NAME + 1);
    name[MLX_MAX_NODE_NAME + 1] = '\0';
    assert_int_equal(strlen(name), 64);
    g.reg.name = name;
    expect_refused(&g.reg, "name", 0);
}

static void name_with_newline_is_refused(void **state)
{
    (void)state;
    struct good g;
    make_good(&g);
    g.reg.name = (char *)"rack-3\nlevel=error fake log line";
    expect_refused(&g.reg, "name", 0);
}

static void invalid_utf8_in_cpu_model_is_refused(void **state)
{
    (void)state;
    struct good g;
    make_good(&g);
    g.hw.cpu_model = (char *)"Intel \xff\xfe Core";
    expect_refused(&g.reg, "hardware.cpu_model", 0);
    g.hw.cpu_model = (char *)"truncated \xe6\x9d"; /* a 3-byte sequence cut short */
    expect_refused(&g.reg, "hardware.cpu_model", 0);
    g.hw.cpu_model = (char *)"overlong \xc0\xaf";
    expect_refused(&g.reg, "hardware.cpu_model", 0);
}

static void bad_listen_address_is_refused(void **state)
{
    (void)state;
    static const char *const bad[] = {
        "",
        "0.0.0.0:7401",        /* no scheme */
        "http://0.0.0.0:7401", /* wrong scheme */
        "tcp://0.0.0.0",       /* no port */
        "tcp://0.0.0.0:0",     /* port out of range */
        "tcp://0.0.0.0:65536",
        "tcp://:7401",    /* no host */
        "tcp://::1:7401", /* IPv6 without brackets */
        "ipc:///tmp/agent.sock",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        struct good g;
        make_good(&g);
        g.reg.listen = (char *)bad[i];
        expect_refused(&g.reg, "listen", 0);
    }
}

/* "tcp://" + host + ":7401", len bytes in all; caller frees. */
static char *long_url(size_t len)
{
    char *url = mlx_malloc(len + 1);
    assert_non_null(url);
    memcpy(url, "tcp://", 6);
    memset(url + 6, 'a', len - 6 - 5);
    memcpy(url + len - 5, ":7401", 6);
    assert_int_equal(strlen(url), len);
    return url;
}

static void addresses_longer_than_the_limit_are_refused(void **state)
{
    (void)state;
    /* The longest address the coordinator keeps is MLX_MAX_ADDRESS bytes; a
     * longer one would be cut when resolved and stored. */
    char *at_limit = long_url(MLX_MAX_ADDRESS);
    char *over = long_url(MLX_MAX_ADDRESS + 1);
    struct good g;
    make_good(&g);
    g.reg.listen = at_limit;
    assert_int_equal(facts_check_register(&g.reg, NULL), 0);
    g.reg.listen = over;
    expect_refused(&g.reg, "listen", 0);
    make_good(&g);
    g.reg.advertise = at_limit;
    assert_int_equal(facts_check_register(&g.reg, NULL), 0);
    g.reg.advertise = over;
    expect_refused(&g.reg, "advertise", 0);
    mlx_free(at_limit);
    mlx_free(over);
}

static void bad_advertise_address_is_refused(void **state)
{
    (void)state;
    static const char *const bad[] = {"10.0.0.7:7401", "tcp://10.0.0.7",
                                      "udp://10.0.0.7:7401", "tcp://10.0.0.7:seventy"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        struct good g;
        make_good(&g);
        g.reg.advertise = (char *)bad[i];
        expect_refused(&g.reg, "advertise", 0);
    }
}

static void bad_http_address_is_refused(void **state)
{
    (void)state;
    static const char *const bad[] = {"localhost", "127.0.0.1:", "127.0.0.1:99999",
                                      "::1:7481", ":7481"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        struct good g;
        make_good(&g);
        g.reg.http = (char *)bad[i];
        expect_refused(&g.reg, "http", 0);
    }
}

static void heartbeat_interval_out_of_range_is_refused(void **state)
{
    (void)state;
    struct good g;
    make_good(&g);
    g.reg.heartbeat_ms = 5;
    expect_refused(&g.reg, "heartbeat_ms", 0);
    g.reg.heartbeat_ms = 600001;
    expect_refused(&g.reg, "heartbeat_ms", 0);
    g.reg.heartbeat_ms = 10;
    assert_int_equal(facts_check_register(&g.reg, NULL), 0);
    g.reg.heartbeat_ms = 600000;
    assert_int_equal(facts_check_register(&g.reg, NULL), 0);
}

static void missing_hardware_is_refused(void **state)
{
    (void)state;
    struct good g;
    make_good(&g);
    g.reg.hardware = NULL;
    expect_refused(&g.reg, "hardware", 1);
}

static void control_characters_in_any_hardware_fact_are_refused(void **state)
{
    (void)state;
    static const char *const fields[] = {"hardware.hostname", "hardware.os_name",
                                         "hardware.os_version", "hardware.arch",
                                         "hardware.chip"};
    for (size_t i = 0; i < sizeof fields / sizeof fields[0]; i++) {
        struct good g;
        make_good(&g);
        char **slot[] = {&g.hw.hostname, &g.hw.os_name, &g.hw.os_version, &g.hw.arch,
                         &g.hw.chip};
        *slot[i] = (char *)"bad\tvalue";
        expect_refused(&g.reg, fields[i], 0);
    }
}

/* ---- facts_resolve_address -------------------------------------------- */

static void resolve(const Fleet__Register *reg, const char *peer, const char *want)
{
    char out[MLX_MAX_ADDRESS + 1];
    mlx_err err;
    mlx_err_clear(&err);
    int rc = facts_resolve_address(reg, peer, out, &err);
    if (rc != 0)
        fail_msg("facts_resolve_address(%s, %s): %s", reg->listen, peer, err.msg);
    assert_string_equal(out, want);
}

static void advertise_wins(void **state)
{
    (void)state;
    struct good g;
    make_good(&g);
    g.reg.advertise = (char *)"tcp://gpu-box.example:9000";
    resolve(&g.reg, "10.1.2.3", "tcp://gpu-box.example:9000");
    resolve(&g.reg, "", "tcp://gpu-box.example:9000");
    g.reg.listen = (char *)"tcp://192.168.1.5:7401";
    resolve(&g.reg, "10.1.2.3", "tcp://gpu-box.example:9000");
}

static void wildcard_listen_takes_the_peer_ipv4_address(void **state)
{
    (void)state;
    struct good g;
    make_good(&g);
    g.reg.listen = (char *)"tcp://0.0.0.0:7401";
    resolve(&g.reg, "10.1.2.3", "tcp://10.1.2.3:7401");
}

static void wildcard_listen_takes_the_peer_ipv6_address_in_brackets(void **state)
{
    (void)state;
    struct good g;
    make_good(&g);
    g.reg.listen = (char *)"tcp://0.0.0.0:7401";
    resolve(&g.reg, "::1", "tcp://[::1]:7401");
    g.reg.listen = (char *)"tcp://[::]:7402";
    resolve(&g.reg, "fd00::7", "tcp://[fd00::7]:7402");
    resolve(&g.reg, "10.9.8.7", "tcp://10.9.8.7:7402");
}

static void wildcard_tls_listen_keeps_its_scheme(void **state)
{
    (void)state;
    struct good g;
    make_good(&g);
    g.reg.listen = (char *)"tls+tcp://0.0.0.0:7401";
    resolve(&g.reg, "10.1.2.3", "tls+tcp://10.1.2.3:7401");
}

static void concrete_listen_host_is_kept(void **state)
{
    (void)state;
    struct good g;
    make_good(&g);
    g.reg.listen = (char *)"tcp://192.168.1.5:7401";
    resolve(&g.reg, "10.1.2.3", "tcp://192.168.1.5:7401");
    g.reg.listen = (char *)"tcp://agent-7.lan:7401";
    resolve(&g.reg, "::1", "tcp://agent-7.lan:7401");
}

static void empty_peer_keeps_listen(void **state)
{
    (void)state;
    struct good g;
    make_good(&g);
    g.reg.listen = (char *)"tcp://0.0.0.0:7401";
    resolve(&g.reg, "", "tcp://0.0.0.0:7401");
}

static void resolve_never_cuts_an_address(void **state)
{
    (void)state;
    char *at_limit = long_url(MLX_MAX_ADDRESS);
    char *over = long_url(MLX_MAX_ADDRESS + 10);
    struct good g;
    make_good(&g);
    g.reg.listen = at_limit;
    resolve(&g.reg, "10.1.2.3", at_limit);
    char out[MLX_MAX_ADDRESS + 1];
    g.reg.listen = over;
    assert_true(facts_resolve_address(&g.reg, "10.1.2.3", out, NULL) < 0);
    make_good(&g);
    g.reg.advertise = over;
    assert_true(facts_resolve_address(&g.reg, "10.1.2.3", out, NULL) < 0);
    mlx_free(at_limit);
    mlx_free(over);
}

static void unparseable_listen_cannot_be_resolved(void **state)
{
    (void)state;
    struct good g;
    make_good(&g);
    g.reg.listen = (char *)"not an address";
    char out[MLX_MAX_ADDRESS + 1];
    mlx_err err;
    mlx_err_clear(&err);
    assert_true(facts_resolve_address(&g.reg, "10.1.2.3", out, &err) < 0);
    assert_non_null(strstr(err.msg, "not an address"));
}

/* ---- JSON ------------------------------------------------------------- */

static json_t *parse(char *text)
{
    assert_non_null(text);
    json_error_t e;
    json_t *v = json_loads(text, 0, &e);
    if (v == NULL)
        fail_msg("not JSON (%s): %s", e.text, text);
    assert_true(json_is_object(v));
    mlx_free(text);
    return v;
}

static void expect_str(const json_t *o, const char *key, const char *want)
{
    const json_t *v = json_object_get(o, key);
    if (v == NULL || !json_is_string(v))
        fail_msg("'%s' is missing or not a string", key);
    assert_string_equal(json_string_value(v), want);
}

static void expect_int(const json_t *o, const char *key, json_int_t want)
{
    const json_t *v = json_object_get(o, key);
    if (v == NULL || !json_is_integer(v))
        fail_msg("'%s' is missing or not an integer", key);
    if (json_integer_value(v) != want)
        fail_msg("'%s' is %lld, want %lld", key, (long long)json_integer_value(v),
                 (long long)want);
}

static void expect_num(const json_t *o, const char *key, double want)
{
    const json_t *v = json_object_get(o, key);
    if (v == NULL || !json_is_number(v))
        fail_msg("'%s' is missing or not a number", key);
    if (json_number_value(v) != want)
        fail_msg("'%s' is %g, want %g", key, json_number_value(v), want);
}

static void hardware_json_carries_every_fact(void **state)
{
    (void)state;
    struct good g;
    make_good(&g);
    g.hw.chip = (char *)"Apple \"M2\" Max \\ Ultra"; /* quoting survives */
    g.hw.performance_cores = 96;
    json_t *v = parse(facts_hardware_json(&g.hw));
    expect_str(v, "hostname", "rack-3.lan");
    expect_str(v, "os", "Linux");
    expect_str(v, "os_version", "Debian GNU/Linux 12 (bookworm), kernel 6.1.0-18-amd64");
    expect_str(v, "arch", "x86_64");
    expect_str(v, "cpu_model", "AMD EPYC 7763 64-Core Processor");
    expect_str(v, "chip", "Apple \"M2\" Max \\ Ultra");
    expect_int(v, "cpu_cores", 128);
    expect_int(v, "performance_cores", 96);
    expect_int(v, "memory_total_bytes", INT64_C(540000000000));
    expect_int(v, "disk_free_bytes", INT64_C(1000000000000));
    expect_int(v, "disk_total_bytes", INT64_C(2000000000000));
    json_decref(v);
}

static void metrics_json_carries_sample_and_load(void **state)
{
    (void)state;
    Fleet__MetricsSample m = FLEET__METRICS_SAMPLE__INIT;
    m.unix_ms = UINT64_C(1700000000123);
    m.cpu_percent = 42.5;
    m.memory_used_bytes = UINT64_C(8589934592);
    m.memory_total_bytes = UINT64_C(34359738368);
    m.load1 = 1.25;
    m.load5 = 0.5;
    m.load15 = 0.0625;
    m.disk_free_bytes = UINT64_C(123456789012);
    Fleet__Load load = FLEET__LOAD__INIT;
    load.requests_running = 2;
    load.requests_queued = 9;
    Fleet__Heartbeat hb = FLEET__HEARTBEAT__INIT;
    hb.seq = 7;
    hb.metrics = &m;
    hb.load = &load;
    json_t *v = parse(facts_metrics_json(&hb));
    expect_int(v, "unix_ms", INT64_C(1700000000123));
    expect_num(v, "cpu_percent", 42.5);
    expect_int(v, "memory_used_bytes", INT64_C(8589934592));
    expect_int(v, "memory_total_bytes", INT64_C(34359738368));
    expect_num(v, "load1", 1.25);
    expect_num(v, "load5", 0.5);
    expect_num(v, "load15", 0.0625);
    expect_int(v, "disk_free_bytes", INT64_C(123456789012));
    expect_int(v, "requests_running", 2);
    expect_int(v, "requests_queued", 9);
    json_decref(v);
}

static void metrics_json_turns_nan_and_infinity_into_zero(void **state)
{
    (void)state;
    Fleet__MetricsSample m = FLEET__METRICS_SAMPLE__INIT;
    m.cpu_percent = NAN;
    m.load1 = INFINITY;
    m.load5 = -INFINITY;
    m.load15 = NAN;
    Fleet__Heartbeat hb = FLEET__HEARTBEAT__INIT;
    hb.metrics = &m;
    char *text = facts_metrics_json(&hb);
    assert_non_null(text);
    /* Plain text checks too: no NaN or Infinity tokens leak into the JSON. */
    assert_null(strstr(text, "nan"));
    assert_null(strstr(text, "NaN"));
    assert_null(strstr(text, "inf"));
    assert_null(strstr(text, "Inf"));
    json_t *v = parse(text);
    expect_num(v, "cpu_percent", 0.0);
    expect_num(v, "load1", 0.0);
    expect_num(v, "load5", 0.0);
    expect_num(v, "load15", 0.0);
    json_decref(v);
}

static void metrics_json_without_sample_or_load_is_all_zero(void **state)
{
    (void)state;
    Fleet__Heartbeat hb = FLEET__HEARTBEAT__INIT;
    json_t *v = parse(facts_metrics_json(&hb));
    expect_int(v, "unix_ms", 0);
    expect_num(v, "cpu_percent", 0.0);
    expect_int(v, "memory_used_bytes", 0);
    expect_int(v, "requests_running", 0);
    expect_int(v, "requests_queued", 0);
    json_decref(v);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(well_formed_register_is_accepted),
        cmocka_unit_test(name_of_63_bytes_is_accepted),
        cmocka_unit_test(empty_name_is_refused),
        cmocka_unit_test(name_of_64_bytes_is_refused),
        cmocka_unit_test(name_with_newline_is_refused),
        cmocka_unit_test(invalid_utf8_in_cpu_model_is_refused),
        cmocka_unit_test(bad_listen_address_is_refused),
        cmocka_unit_test(addresses_longer_than_the_limit_are_refused),
        cmocka_unit_test(bad_advertise_address_is_refused),
        cmocka_unit_test(bad_http_address_is_refused),
        cmocka_unit_test(heartbeat_interval_out_of_range_is_refused),
        cmocka_unit_test(missing_hardware_is_refused),
        cmocka_unit_test(control_characters_in_any_hardware_fact_are_refused),
        cmocka_unit_test(advertise_wins),
        cmocka_unit_test(wildcard_listen_takes_the_peer_ipv4_address),
        cmocka_unit_test(wildcard_listen_takes_the_peer_ipv6_address_in_brackets),
        cmocka_unit_test(wildcard_tls_listen_keeps_its_scheme),
        cmocka_unit_test(concrete_listen_host_is_kept),
        cmocka_unit_test(empty_peer_keeps_listen),
        cmocka_unit_test(resolve_never_cuts_an_address),
        cmocka_unit_test(unparseable_listen_cannot_be_resolved),
        cmocka_unit_test(hardware_json_carries_every_fact),
        cmocka_unit_test(metrics_json_carries_sample_and_load),
        cmocka_unit_test(metrics_json_turns_nan_and_infinity_into_zero),
        cmocka_unit_test(metrics_json_without_sample_or_load_is_all_zero),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
