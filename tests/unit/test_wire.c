/*
 * test_wire.c — the envelope on the wire (proto/wire.h): every control-plane
 * body survives a pack/unpack round trip field for field (the data plane's
 * are test_wire_dataplane.c's); versions (another major
 * is refused but still returned, another minor accepted); unknown fields are
 * skipped; truncated, garbage, oversized and bodiless input is refused with
 * its own code; node id syntax; and allocation failures during unpack are
 * clean (the ASan build checks that nothing leaks).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "common/alloc.h"
#include "common/err.h"
#include "common/limits.h"
#include "proto/wire.h"

/* ---- helpers ---------------------------------------------------------- */

/* Packs env with wire_pack and unpacks it again; the result must succeed. */
static wire_envelope *round_trip(wire_envelope *env)
{
    uint8_t *buf = NULL;
    size_t len = 0;
    mlx_err err;
    mlx_err_clear(&err);
    assert_int_equal(wire_pack(env, MLX_MAX_CONTROL_MSG, &buf, &len, &err), 0);
    assert_non_null(buf);
    assert_true(len > 0);
    wire_envelope *out = NULL;
    int rc = wire_unpack(buf, len, MLX_MAX_CONTROL_MSG, &out, &err);
    if (rc != 0)
        fail_msg("wire_unpack: %s", err.msg);
    mlx_free(buf);
    assert_non_null(out);
    assert_int_equal(out->version, WIRE_VERSION);
    return out;
}

/* Encodes env as-is (keeping its version), bypassing wire_pack. */
static uint8_t *raw_pack(const wire_envelope *env, size_t *len)
{
    *len = fleet__envelope__get_packed_size(env);
    uint8_t *buf = mlx_malloc(*len);
    assert_non_null(buf);
    fleet__envelope__pack(env, buf);
    return buf;
}

static void fill_hardware(Fleet__Hardware *hw)
{
    fleet__hardware__init(hw);
    hw->hostname = (char *)"studio-7.lan";
    hw->os_name = (char *)"macOS";
    hw->os_version = (char *)"15.1";
    hw->arch = (char *)"arm64";
    hw->cpu_model = (char *)"Apple M2 Max";
    hw->cpu_cores = 12;
    hw->performance_cores = 8;
    hw->memory_total_bytes = UINT64_C(96) << 30;
    hw->chip = (char *)"Apple M2 Max";
    hw->disk_free_bytes = UINT64_C(1234567890123);
    hw->disk_total_bytes = UINT64_C(2000398934016);
}

static void fill_register(Fleet__Register *reg, Fleet__Hardware *hw)
{
    fill_hardware(hw);
    fleet__register__init(reg);
    reg->name = (char *)"studio-7";
    reg->listen = (char *)"tcp://0.0.0.0:7401";
    reg->advertise = (char *)"tcp://10.0.0.7:7401";
    reg->http = (char *)"127.0.0.1:7481";
    reg->agent_version = (char *)"0.1.0";
    reg->heartbeat_ms = 1000;
    reg->hardware = hw;
}

/* A valid packed Register envelope; caller frees with mlx_free. */
static uint8_t *packed_register(size_t *len)
{
    Fleet__Hardware hw;
    Fleet__Register reg;
    fill_register(&reg, &hw);
    wire_envelope env = FLEET__ENVELOPE__INIT;
    env.request_id = (char *)"req-42";
    env.node_id = (char *)"0123456789abcdef";
    env.body_case = FLEET__ENVELOPE__BODY_REGISTER;
    env.register_ = &reg;
    uint8_t *buf = NULL;
    assert_int_equal(wire_pack(&env, MLX_MAX_CONTROL_MSG, &buf, len, NULL), 0);
    return buf;
}

/* ---- round trips ------------------------------------------------------ */

static void register_with_full_hardware_round_trips(void **state)
{
    (void)state;
    Fleet__Hardware hw;
    Fleet__Register reg;
    fill_register(&reg, &hw);
    wire_envelope env = FLEET__ENVELOPE__INIT;
    env.request_id = (char *)"req-1";
    env.node_id = (char *)"0123456789abcdef";
    env.body_case = FLEET__ENVELOPE__BODY_REGISTER;
    env.register_ = &reg;

    wire_envelope *out = round_trip(&env);
    assert_string_equal(out->request_id, "req-1");
    assert_string_equal(out->node_id, "0123456789abcdef");
    assert_int_equal(out->body_case, FLEET__ENVELOPE__BODY_REGISTER);
    assert_string_equal(wire_body_name(out), "register");
    const Fleet__Register *r = out->register_;
    assert_non_null(r);
    assert_string_equal(r->name, reg.name);
    assert_string_equal(r->listen, reg.listen);
    assert_string_equal(r->advertise, reg.advertise);
    assert_string_equal(r->http, reg.http);
    assert_string_equal(r->agent_version, reg.agent_version);
    assert_int_equal(r->heartbeat_ms, reg.heartbeat_ms);
    const Fleet__Hardware *h = r->hardware;
    assert_non_null(h);
    assert_string_equal(h->hostname, hw.hostname);
    assert_string_equal(h->os_name, hw.os_name);
    assert_string_equal(h->os_version, hw.os_version);
    assert_string_equal(h->arch, hw.arch);
    assert_string_equal(h->cpu_model, hw.cpu_model);
    assert_int_equal(h->cpu_cores, hw.cpu_cores);
    assert_int_equal(h->performance_cores, hw.performance_cores);
    assert_true(h->memory_total_bytes == hw.memory_total_bytes);
    assert_string_equal(h->chip, hw.chip);
    assert_true(h->disk_free_bytes == hw.disk_free_bytes);
    assert_true(h->disk_total_bytes == hw.disk_total_bytes);
    wire_free(out);
}

static void register_reply_round_trips(void **state)
{
    (void)state;
    Fleet__RegisterReply reply = FLEET__REGISTER_REPLY__INIT;
    reply.coordinator_epoch = (char *)"epoch-9f8e7d";
    reply.address = (char *)"tcp://[fd00::7]:7401";
    wire_envelope env = FLEET__ENVELOPE__INIT;
    env.request_id = (char *)"req-2";
    env.body_case = FLEET__ENVELOPE__BODY_REGISTER_REPLY;
    env.register_reply = &reply;

    wire_envelope *out = round_trip(&env);
    assert_string_equal(out->request_id, "req-2");
    assert_string_equal(out->node_id, "");
    assert_int_equal(out->body_case, FLEET__ENVELOPE__BODY_REGISTER_REPLY);
    assert_string_equal(wire_body_name(out), "register_reply");
    assert_string_equal(out->register_reply->coordinator_epoch, "epoch-9f8e7d");
    assert_string_equal(out->register_reply->address, "tcp://[fd00::7]:7401");
    wire_free(out);
}

static void heartbeat_with_metrics_and_load_round_trips(void **state)
{
    (void)state;
    Fleet__MetricsSample m = FLEET__METRICS_SAMPLE__INIT;
    m.unix_ms = UINT64_C(1700000000123);
    m.cpu_percent = 37.25;
    m.memory_used_bytes = UINT64_C(12884901888);
    m.memory_total_bytes = UINT64_C(34359738368);
    m.load1 = 1.5;
    m.load5 = 0.75;
    m.load15 = 0.125;
    m.disk_free_bytes = UINT64_C(987654321987);
    Fleet__Load load = FLEET__LOAD__INIT;
    load.requests_running = 3;
    load.requests_queued = 17;
    Fleet__Heartbeat hb = FLEET__HEARTBEAT__INIT;
    hb.seq = UINT64_C(5000000000);
    hb.metrics = &m;
    hb.load = &load;
    wire_envelope env = FLEET__ENVELOPE__INIT;
    env.request_id = (char *)"req-3";
    env.node_id = (char *)"fedcba9876543210";
    env.body_case = FLEET__ENVELOPE__BODY_HEARTBEAT;
    env.heartbeat = &hb;

    wire_envelope *out = round_trip(&env);
    assert_string_equal(out->node_id, "fedcba9876543210");
    assert_int_equal(out->body_case, FLEET__ENVELOPE__BODY_HEARTBEAT);
    assert_string_equal(wire_body_name(out), "heartbeat");
    const Fleet__Heartbeat *h = out->heartbeat;
    assert_true(h->seq == hb.seq);
    assert_non_null(h->metrics);
    assert_true(h->metrics->unix_ms == m.unix_ms);
    assert_true(h->metrics->cpu_percent == m.cpu_percent);
    assert_true(h->metrics->memory_used_bytes == m.memory_used_bytes);
    assert_true(h->metrics->memory_total_bytes == m.memory_total_bytes);
    assert_true(h->metrics->load1 == m.load1);
    assert_true(h->metrics->load5 == m.load5);
    assert_true(h->metrics->load15 == m.load15);
    assert_true(h->metrics->disk_free_bytes == m.disk_free_bytes);
    assert_non_null(h->load);
    assert_int_equal(h->load->requests_running, 3);
    assert_int_equal(h->load->requests_queued, 17);
    wire_free(out);
}

static void heartbeat_reply_with_several_orders_round_trips(void **state)
{
    (void)state;
    Fleet__Order o[3];
    const Fleet__Order__Kind kinds[3] = {
        FLEET__ORDER__KIND__PULL, FLEET__ORDER__KIND__EVICT, FLEET__ORDER__KIND__LOAD};
    const char *models[3] = {"llama3.2:1b", "hf:Qwen/Qwen2-0.5B", "smollm:135m"};
    const char *sources[3] = {"http://10.0.0.8:7481/blobs/sha256/ab", "", "ollama"};
    Fleet__Order *list[3];
    for (int i = 0; i < 3; i++) {
        fleet__order__init(&o[i]);
        o[i].kind = kinds[i];
        o[i].model = (char *)models[i];
        o[i].source = (char *)sources[i];
        list[i] = &o[i];
    }
    Fleet__HeartbeatReply reply = FLEET__HEARTBEAT_REPLY__INIT;
    reply.coordinator_epoch = (char *)"epoch-1";
    reply.n_orders = 3;
    reply.orders = list;
    wire_envelope env = FLEET__ENVELOPE__INIT;
    env.request_id = (char *)"req-4";
    env.body_case = FLEET__ENVELOPE__BODY_HEARTBEAT_REPLY;
    env.heartbeat_reply = &reply;

    wire_envelope *out = round_trip(&env);
    assert_int_equal(out->body_case, FLEET__ENVELOPE__BODY_HEARTBEAT_REPLY);
    assert_string_equal(wire_body_name(out), "heartbeat_reply");
    const Fleet__HeartbeatReply *r = out->heartbeat_reply;
    assert_string_equal(r->coordinator_epoch, "epoch-1");
    assert_int_equal(r->n_orders, 3);
    for (int i = 0; i < 3; i++) {
        assert_int_equal(r->orders[i]->kind, kinds[i]);
        assert_string_equal(r->orders[i]->model, models[i]);
        assert_string_equal(r->orders[i]->source, sources[i]);
    }
    wire_free(out);
}

static void deregister_round_trips(void **state)
{
    (void)state;
    Fleet__Deregister d = FLEET__DEREGISTER__INIT;
    d.reason = (char *)"shutting down: SIGTERM";
    wire_envelope env = FLEET__ENVELOPE__INIT;
    env.request_id = (char *)"req-5";
    env.node_id = (char *)"0123456789abcdef";
    env.body_case = FLEET__ENVELOPE__BODY_DEREGISTER;
    env.deregister = &d;

    wire_envelope *out = round_trip(&env);
    assert_int_equal(out->body_case, FLEET__ENVELOPE__BODY_DEREGISTER);
    assert_string_equal(wire_body_name(out), "deregister");
    assert_string_equal(out->deregister->reason, "shutting down: SIGTERM");
    assert_string_equal(out->request_id, "req-5");
    assert_string_equal(out->node_id, "0123456789abcdef");
    wire_free(out);
}

static void ack_round_trips(void **state)
{
    (void)state;
    Fleet__Ack ack = FLEET__ACK__INIT;
    wire_envelope env = FLEET__ENVELOPE__INIT;
    env.request_id = (char *)"req-6";
    env.body_case = FLEET__ENVELOPE__BODY_ACK;
    env.ack = &ack;

    wire_envelope *out = round_trip(&env);
    assert_int_equal(out->body_case, FLEET__ENVELOPE__BODY_ACK);
    assert_string_equal(wire_body_name(out), "ack");
    assert_non_null(out->ack);
    assert_string_equal(out->request_id, "req-6");
    wire_free(out);
}

static void error_round_trips(void **state)
{
    (void)state;
    Fleet__Error error;
    wire_envelope env = FLEET__ENVELOPE__INIT;
    env.request_id = (char *)"req-7";
    wire_set_error(&env, &error, FLEET__ERROR__CODE__UNKNOWN_NODE,
                   "node 0123456789abcdef is not registered; register again");
    assert_int_equal(env.body_case, FLEET__ENVELOPE__BODY_ERROR);

    wire_envelope *out = round_trip(&env);
    assert_int_equal(out->body_case, FLEET__ENVELOPE__BODY_ERROR);
    assert_string_equal(wire_body_name(out), "error");
    assert_int_equal(out->error->code, FLEET__ERROR__CODE__UNKNOWN_NODE);
    assert_string_equal(out->error->message,
                        "node 0123456789abcdef is not registered; register again");
    assert_string_equal(out->request_id, "req-7");
    wire_free(out);
}

/* ---- versions --------------------------------------------------------- */

static void pack_sets_version_to_ours(void **state)
{
    (void)state;
    Fleet__Ack ack = FLEET__ACK__INIT;
    wire_envelope env = FLEET__ENVELOPE__INIT;
    env.version = (7u << 16) | 3u; /* whatever the caller left there */
    env.body_case = FLEET__ENVELOPE__BODY_ACK;
    env.ack = &ack;
    uint8_t *buf = NULL;
    size_t len = 0;
    assert_int_equal(wire_pack(&env, MLX_MAX_CONTROL_MSG, &buf, &len, NULL), 0);
    assert_int_equal(env.version, WIRE_VERSION);
    /* Decode independently of wire_unpack to see what went on the wire. */
    Fleet__Envelope *raw = fleet__envelope__unpack(NULL, len, buf);
    assert_non_null(raw);
    assert_int_equal(raw->version, WIRE_VERSION);
    assert_int_equal(raw->version >> 16, WIRE_MAJOR);
    fleet__envelope__free_unpacked(raw, NULL);
    mlx_free(buf);
}

static void other_major_version_is_refused_but_returned(void **state)
{
    (void)state;
    Fleet__Ack ack = FLEET__ACK__INIT;
    wire_envelope env = FLEET__ENVELOPE__INIT;
    env.version = (uint32_t)(WIRE_MAJOR + 1) << 16; /* 2.0 */
    env.request_id = (char *)"req-from-the-future";
    env.body_case = FLEET__ENVELOPE__BODY_ACK;
    env.ack = &ack;
    size_t len;
    uint8_t *buf = raw_pack(&env, &len);

    wire_envelope *out = NULL;
    mlx_err err;
    mlx_err_clear(&err);
    assert_int_equal(wire_unpack(buf, len, MLX_MAX_CONTROL_MSG, &out, &err),
                     MLX_EVERSION);
    assert_int_equal(err.code, MLX_EVERSION);
    assert_non_null(out);
    assert_string_equal(out->request_id, "req-from-the-future");
    char theirs[24], ours[24];
    wire_version_text(env.version, theirs, sizeof theirs);
    assert_string_equal(theirs, "2.0");
    snprintf(ours, sizeof ours, "%d.", WIRE_MAJOR);
    if (strstr(err.msg, theirs) == NULL || strstr(err.msg, ours) == NULL)
        fail_msg("sentence does not name both versions: %s", err.msg);
    wire_free(out);
    mlx_free(buf);
}

static void older_major_version_is_refused_too(void **state)
{
    (void)state;
    Fleet__Ack ack = FLEET__ACK__INIT;
    wire_envelope env = FLEET__ENVELOPE__INIT;
    env.version = 5; /* 0.5 */
    env.body_case = FLEET__ENVELOPE__BODY_ACK;
    env.ack = &ack;
    size_t len;
    uint8_t *buf = raw_pack(&env, &len);
    wire_envelope *out = NULL;
    mlx_err err;
    mlx_err_clear(&err);
    assert_int_equal(wire_unpack(buf, len, MLX_MAX_CONTROL_MSG, &out, &err),
                     MLX_EVERSION);
    assert_non_null(out);
    assert_non_null(strstr(err.msg, "0.5"));
    wire_free(out);
    mlx_free(buf);
}

static void other_minor_version_is_accepted(void **state)
{
    (void)state;
    Fleet__Deregister d = FLEET__DEREGISTER__INIT;
    d.reason = (char *)"bye";
    wire_envelope env = FLEET__ENVELOPE__INIT;
    env.version = (uint32_t)WIRE_MAJOR << 16 | (WIRE_MINOR + 7);
    env.body_case = FLEET__ENVELOPE__BODY_DEREGISTER;
    env.deregister = &d;
    size_t len;
    uint8_t *buf = raw_pack(&env, &len);
    wire_envelope *out = NULL;
    mlx_err err;
    mlx_err_clear(&err);
    int rc = wire_unpack(buf, len, MLX_MAX_CONTROL_MSG, &out, &err);
    if (rc != 0)
        fail_msg("a newer minor version was refused: %s", err.msg);
    assert_int_equal(out->version, env.version);
    assert_string_equal(out->deregister->reason, "bye");
    wire_free(out);
    mlx_free(buf);
}

static void version_text_is_major_dot_minor(void **state)
{
    (void)state;
    char text[24];
    wire_version_text(WIRE_VERSION, text, sizeof text);
    char want[24];
    snprintf(want, sizeof want, "%d.%d", WIRE_MAJOR, WIRE_MINOR);
    assert_string_equal(text, want);
    wire_version_text((3u << 16) | 12u, text, sizeof text);
    assert_string_equal(text, "3.12");
}

/* ---- malformed input -------------------------------------------------- */

static void unknown_fields_are_ignored(void **state)
{
    (void)state;
    size_t len;
    uint8_t *valid = packed_register(&len);
    uint8_t *buf = mlx_malloc(len + 16);
    assert_non_null(buf);
    memcpy(buf, valid, len);
    size_t n = len;
    /* Field 99, wire type 0 (varint): tag = 99 << 3 = 792 = 0x98 0x06; value 300. */
    buf[n++] = 0x98;
    buf[n++] = 0x06;
    buf[n++] = 0xac;
    buf[n++] = 0x02;
    /* Field 98, wire type 2 (bytes): tag = 98 << 3 | 2 = 786 = 0x92 0x06; "hey". */
    buf[n++] = 0x92;
    buf[n++] = 0x06;
    buf[n++] = 3;
    buf[n++] = 'h';
    buf[n++] = 'e';
    buf[n++] = 'y';

    wire_envelope *out = NULL;
    mlx_err err;
    mlx_err_clear(&err);
    int rc = wire_unpack(buf, n, MLX_MAX_CONTROL_MSG, &out, &err);
    if (rc != 0)
        fail_msg("unknown fields made the envelope fail: %s", err.msg);
    assert_int_equal(out->body_case, FLEET__ENVELOPE__BODY_REGISTER);
    assert_string_equal(out->request_id, "req-42");
    assert_string_equal(out->register_->name, "studio-7");
    assert_string_equal(out->register_->hardware->chip, "Apple M2 Max");
    wire_free(out);
    mlx_free(buf);
    mlx_free(valid);
}

/* Appends v as a protobuf varint at buf[*n]. */
static void put_varint(uint8_t *buf, size_t *n, uint64_t v)
{
    while (v >= 0x80) {
        buf[(*n)++] = (uint8_t)(v | 0x80);
        v >>= 7;
    }
    buf[(*n)++] = (uint8_t)v;
}

static void unknown_fields_inside_a_body_are_ignored(void **state)
{
    (void)state;
    /* A newer agent's Register with an extra field 42 (varint 7), wrapped by
     * hand in an envelope: version (field 1) then register (field 10). */
    Fleet__Hardware hw;
    Fleet__Register reg;
    fill_register(&reg, &hw);
    size_t reg_len = fleet__register__get_packed_size(&reg);
    uint8_t *body = mlx_malloc(reg_len + 3);
    assert_non_null(body);
    fleet__register__pack(&reg, body);
    body[reg_len++] = 0xd0; /* 42 << 3 | 0 = 336 = 0xd0 0x02 */
    body[reg_len++] = 0x02;
    body[reg_len++] = 7;
    uint8_t *buf = mlx_malloc(reg_len + 32);
    assert_non_null(buf);
    size_t n = 0;
    buf[n++] = 0x08;
    put_varint(buf, &n, (uint32_t)WIRE_MAJOR << 16 | (WIRE_MINOR + 1));
    buf[n++] = 0x52; /* 10 << 3 | 2 */
    put_varint(buf, &n, reg_len);
    memcpy(buf + n, body, reg_len);
    n += reg_len;

    wire_envelope *out = NULL;
    mlx_err err;
    mlx_err_clear(&err);
    int rc = wire_unpack(buf, n, MLX_MAX_CONTROL_MSG, &out, &err);
    if (rc != 0)
        fail_msg("an unknown field inside register made it fail: %s", err.msg);
    assert_int_equal(out->body_case, FLEET__ENVELOPE__BODY_REGISTER);
    assert_string_equal(out->register_->listen, "tcp://0.0.0.0:7401");
    assert_int_equal(out->register_->heartbeat_ms, 1000);
    assert_int_equal(out->register_->hardware->cpu_cores, 12);
    wire_free(out);
    mlx_free(buf);
    mlx_free(body);
}

static void every_truncation_fails_cleanly_or_decodes(void **state)
{
    (void)state;
    size_t len;
    uint8_t *valid = packed_register(&len);
    size_t refused = 0;
    for (size_t cut = 0; cut < len; cut++) {
        /* An exact-size copy so ASan sees any read past the prefix. */
        uint8_t *prefix = mlx_malloc(cut);
        assert_non_null(prefix);
        memcpy(prefix, valid, cut);
        wire_envelope *out = NULL;
        mlx_err err;
        mlx_err_clear(&err);
        int rc = wire_unpack(prefix, cut, MLX_MAX_CONTROL_MSG, &out, &err);
        if (rc == 0) {
            assert_non_null(out);
            wire_free(out);
        } else {
            if (rc != MLX_EPROTO)
                fail_msg("prefix of %zu/%zu bytes gave %s: %s", cut, len, mlx_errname(rc),
                         err.msg);
            assert_int_equal(err.code, MLX_EPROTO);
            assert_true(err.msg[0] != '\0');
            refused++;
        }
        mlx_free(prefix);
    }
    /* Cutting inside the register body must be noticed at least sometimes. */
    assert_true(refused > 0);
    mlx_free(valid);
}

static void garbage_is_malformed(void **state)
{
    (void)state;
    static const char *const samples[] = {
        "this is not a protobuf message at all",
        "\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff",
        "\x08",                     /* version tag without its varint */
        "\x52\x40only-a-few-bytes", /* register (field 10) claiming 64 bytes */
        "\x0f\x01\x02\x03",         /* wire type 7 does not exist */
    };
    for (size_t i = 0; i < sizeof samples / sizeof samples[0]; i++) {
        wire_envelope *out = NULL;
        mlx_err err;
        mlx_err_clear(&err);
        int rc = wire_unpack((const uint8_t *)samples[i], strlen(samples[i]),
                             MLX_MAX_CONTROL_MSG, &out, &err);
        if (rc != MLX_EPROTO)
            fail_msg("garbage sample %zu gave %s", i, mlx_errname(rc));
        assert_null(out);
        assert_true(err.msg[0] != '\0');
    }
}

/* xorshift64: deterministic "random" bytes, so a failure reproduces. */
static uint64_t next_random(uint64_t *s)
{
    uint64_t x = *s;
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    *s = x;
    return x;
}

static void random_bytes_never_crash_and_are_mostly_refused(void **state)
{
    (void)state;
    uint64_t seed = UINT64_C(0x9e3779b97f4a7c15);
    size_t proto = 0;
    const size_t rounds = 5000;
    for (size_t round = 0; round < rounds; round++) {
        size_t len = 1 + (size_t)(next_random(&seed) % 200);
        uint8_t *buf = mlx_malloc(len);
        assert_non_null(buf);
        for (size_t i = 0; i < len; i++)
            buf[i] = (uint8_t)next_random(&seed);
        wire_envelope *out = NULL;
        int rc = wire_unpack(buf, len, MLX_MAX_CONTROL_MSG, &out, NULL);
        if (rc == MLX_EPROTO) {
            assert_null(out);
            proto++;
        } else if (rc == 0 || rc == MLX_EVERSION) {
            /* Random bytes may happen to be a valid encoding. */
            assert_non_null(out);
            wire_free(out);
        } else {
            fail_msg("random input gave %s", mlx_errname(rc));
        }
        mlx_free(buf);
    }
    assert_true(proto > rounds * 9 / 10);
}

static void message_longer_than_max_is_too_big(void **state)
{
    (void)state;
    size_t len;
    uint8_t *valid = packed_register(&len);
    wire_envelope *out = NULL;
    mlx_err err;
    mlx_err_clear(&err);
    assert_int_equal(wire_unpack(valid, len, len - 1, &out, &err), MLX_ETOOBIG);
    assert_null(out);
    assert_int_equal(err.code, MLX_ETOOBIG);
    assert_true(err.msg[0] != '\0');
    /* Exactly max is allowed. */
    assert_int_equal(wire_unpack(valid, len, len, &out, NULL), 0);
    wire_free(out);
    mlx_free(valid);
}

static void envelope_without_body_is_malformed(void **state)
{
    (void)state;
    wire_envelope env = FLEET__ENVELOPE__INIT;
    env.request_id = (char *)"req-empty";
    env.node_id = (char *)"0123456789abcdef";
    uint8_t *buf = NULL;
    size_t len = 0;
    assert_int_equal(wire_pack(&env, MLX_MAX_CONTROL_MSG, &buf, &len, NULL), 0);
    wire_envelope *out = NULL;
    mlx_err err;
    mlx_err_clear(&err);
    assert_int_equal(wire_unpack(buf, len, MLX_MAX_CONTROL_MSG, &out, &err), MLX_EPROTO);
    assert_null(out);
    assert_non_null(strstr(err.msg, "body"));
    mlx_free(buf);
    /* Zero bytes are no envelope at all. */
    assert_int_equal(wire_unpack((const uint8_t *)"", 0, MLX_MAX_CONTROL_MSG, &out, NULL),
                     MLX_EPROTO);
    assert_null(out);
}

static void pack_larger_than_max_is_too_big(void **state)
{
    (void)state;
    Fleet__Hardware hw;
    Fleet__Register reg;
    fill_register(&reg, &hw);
    wire_envelope env = FLEET__ENVELOPE__INIT;
    env.body_case = FLEET__ENVELOPE__BODY_REGISTER;
    env.register_ = &reg;
    env.version = WIRE_VERSION; /* as wire_pack will set it */
    size_t need = fleet__envelope__get_packed_size(&env);
    uint8_t *buf = NULL;
    size_t len = 12345;
    mlx_err err;
    mlx_err_clear(&err);
    assert_int_equal(wire_pack(&env, need - 1, &buf, &len, &err), MLX_ETOOBIG);
    assert_null(buf);
    assert_int_equal(len, 12345);
    assert_non_null(strstr(err.msg, "register"));
    assert_int_equal(wire_pack(&env, need, &buf, &len, NULL), 0);
    assert_int_equal(len, need);
    mlx_free(buf);
}

/* ---- node ids --------------------------------------------------------- */

static void node_id_of_16_lower_hex_digits_is_accepted(void **state)
{
    (void)state;
    assert_int_equal(wire_check_node_id("0123456789abcdef", NULL), 0);
    assert_int_equal(wire_check_node_id("ffffffffffffffff", NULL), 0);
    assert_int_equal(wire_check_node_id("0000000000000000", NULL), 0);
}

static void node_id_of_wrong_length_or_alphabet_is_refused(void **state)
{
    (void)state;
    static const char *const bad[] = {
        "",
        "0123456789abcde",   /* 15 */
        "0123456789abcdef0", /* 17 */
        "0123456789ABCDEF",  /* upper case */
        "0123456789abcdeF",
        "0123456789abcdeg", /* not hex */
        "0123456789abcde ",
        " 0123456789abcdef",
        "0123456789abcdef\n",
        "0x23456789abcdef",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        mlx_err err;
        mlx_err_clear(&err);
        int rc = wire_check_node_id(bad[i], &err);
        if (rc == 0)
            fail_msg("'%s' was accepted as a node id", bad[i]);
        assert_true(rc < 0);
        assert_int_equal(err.code, rc);
        assert_non_null(strstr(err.msg, "node id"));
    }
}

/* ---- allocation failures ---------------------------------------------- */

static void unpack_survives_every_allocation_failure(void **state)
{
    (void)state;
    size_t len;
    uint8_t *valid = packed_register(&len);
    long n = 0;
    for (;; n++) {
        assert_true(n < 1000); /* a Register needs a handful of allocations */
        wire_envelope *out = NULL;
        mlx_err err;
        mlx_err_clear(&err);
        mlx_alloc_fail_after(n);
        int rc = wire_unpack(valid, len, MLX_MAX_CONTROL_MSG, &out, &err);
        mlx_alloc_fail_reset();
        if (rc == 0) {
            assert_string_equal(out->register_->hardware->hostname, "studio-7.lan");
            wire_free(out);
            break;
        }
        if (rc != MLX_ENOMEM)
            fail_msg("allocation %ld failing gave %s (%s), not ENOMEM", n + 1,
                     mlx_errname(rc), err.msg);
        assert_null(out);
        assert_true(err.msg[0] != '\0');
    }
    assert_true(n > 0); /* at least one failure was exercised */
    mlx_free(valid);
}

static void pack_reports_allocation_failure(void **state)
{
    (void)state;
    Fleet__Ack ack = FLEET__ACK__INIT;
    wire_envelope env = FLEET__ENVELOPE__INIT;
    env.body_case = FLEET__ENVELOPE__BODY_ACK;
    env.ack = &ack;
    uint8_t *buf = NULL;
    size_t len = 0;
    mlx_alloc_fail_after(0);
    int rc = wire_pack(&env, MLX_MAX_CONTROL_MSG, &buf, &len, NULL);
    mlx_alloc_fail_reset();
    assert_int_equal(rc, MLX_ENOMEM);
    assert_null(buf);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(register_with_full_hardware_round_trips),
        cmocka_unit_test(register_reply_round_trips),
        cmocka_unit_test(heartbeat_with_metrics_and_load_round_trips),
        cmocka_unit_test(heartbeat_reply_with_several_orders_round_trips),
        cmocka_unit_test(deregister_round_trips),
        cmocka_unit_test(ack_round_trips),
        cmocka_unit_test(error_round_trips),
        cmocka_unit_test(pack_sets_version_to_ours),
        cmocka_unit_test(other_major_version_is_refused_but_returned),
        cmocka_unit_test(older_major_version_is_refused_too),
        cmocka_unit_test(other_minor_version_is_accepted),
        cmocka_unit_test(version_text_is_major_dot_minor),
        cmocka_unit_test(unknown_fields_are_ignored),
        cmocka_unit_test(unknown_fields_inside_a_body_are_ignored),
        cmocka_unit_test(every_truncation_fails_cleanly_or_decodes),
        cmocka_unit_test(garbage_is_malformed),
        cmocka_unit_test(random_bytes_never_crash_and_are_mostly_refused),
        cmocka_unit_test(message_longer_than_max_is_too_big),
        cmocka_unit_test(envelope_without_body_is_malformed),
        cmocka_unit_test(pack_larger_than_max_is_too_big),
        cmocka_unit_test(node_id_of_16_lower_hex_digits_is_accepted),
        cmocka_unit_test(node_id_of_wrong_length_or_alphabet_is_refused),
        cmocka_unit_test(unpack_survives_every_allocation_failure),
        cmocka_unit_test(pack_reports_allocation_failure),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
