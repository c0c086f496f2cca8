/*
 * it_control_abuse.c — hostile and broken input on the coordinator's control
 * port, from a real NNG peer and a raw TCP socket: garbage bytes, an
 * oversized message, a huge frame, malformed and truncated protobuf, another major
 * version, a heartbeat from an unknown node, invalid registration facts, a body the
 * coordinator does not take. Each gets an Error reply where there is a peer
 * to answer, and the coordinator goes on serving a real agent throughout.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmocka.h>
#include <nng/nng.h>
#include <nng/protocol/reqrep0/req.h>

#include "common/alloc.h"
#include "common/limits.h"
#include "common/nng_util.h"
#include "proto/wire.h"
#include "tests/integration/cluster.h"

#define BAD_ID "0123456789abcdef"

static cluster *c;

static nng_socket dial(void)
{
    nng_socket s;
    assert_int_equal(nng_req0_open(&s), 0);
    assert_int_equal(nng_socket_set_ms(s, NNG_OPT_RECVTIMEO, 2000), 0);
    assert_int_equal(nng_socket_set_ms(s, NNG_OPT_SENDTIMEO, 2000), 0);
    assert_int_equal(nng_socket_set_size(s, NNG_OPT_RECVMAXSZ, 0), 0);
    assert_int_equal(nng_dial(s, c->control_url, NULL, 0), 0);
    return s;
}

/* Sends raw bytes; returns the unpacked reply (caller wire_free's) or NULL
 * when no reply came. */
static wire_envelope *exchange_raw(const void *data, size_t len)
{
    nng_socket s = dial();
    wire_envelope *reply = NULL;
    if (nng_send(s, (void *)data, len, 0) == 0) {
        void *buf = NULL;
        size_t n = 0;
        if (nng_recv(s, &buf, &n, NNG_FLAG_ALLOC) == 0) {
            assert_int_equal(wire_unpack(buf, n, MLX_MAX_CONTROL_MSG, &reply, NULL), 0);
            nng_free(buf, n);
        }
    }
    /* Bounded: NNG 1.5 can hang closing a socket whose peer dropped it. */
    mlx_nng_close(s, 2000);
    return reply;
}

static wire_envelope *exchange(wire_envelope *env)
{
    uint8_t *buf;
    size_t len;
    assert_int_equal(wire_pack(env, MLX_MAX_CONTROL_MSG, &buf, &len, NULL), 0);
    wire_envelope *reply = exchange_raw(buf, len);
    mlx_free(buf);
    return reply;
}

static void assert_error(wire_envelope *reply, Fleet__Error__Code code,
                         const char *needle)
{
    assert_non_null(reply);
    assert_int_equal(reply->body_case, FLEET__ENVELOPE__BODY_ERROR);
    assert_int_equal(reply->error->code, code);
    if (needle != NULL && strstr(reply->error->message, needle) == NULL)
        fail_msg("error '%s' does not mention '%s'", reply->error->message, needle);
    wire_free(reply);
}

/* A well-formed Register, to be spoiled by each test. */
static void make_register(wire_envelope *env, Fleet__Register *reg, Fleet__Hardware *hw)
{
    fleet__envelope__init(env);
    fleet__register__init(reg);
    fleet__hardware__init(hw);
    hw->hostname = "intruder";
    reg->name = "intruder";
    reg->listen = "tcp://127.0.0.1:1";
    reg->hardware = hw;
    env->node_id = BAD_ID;
    env->request_id = "abuse-1";
    env->body_case = FLEET__ENVELOPE__BODY_REGISTER;
    env->register_ = reg;
}

static int setup(void **state)
{
    c = cluster_create("it-abuse", 200, 3, 8);
    cluster_start_coordinator(c);
    cluster_add_agent(c, "victim");
    if (!cluster_wait_node_id(c, 0, 10000) ||
        !cluster_wait_agent_state(c, 0, "up", 15000))
        return -1;
    return 0;
}

static int teardown(void **state)
{
    cluster_destroy(c);
    return 0;
}

static void test_garbage_on_raw_tcp_is_dropped(void **state)
{
    for (int round = 0; round < 3; round++) {
        int fd = socket(AF_INET, SOCK_STREAM, 0);
        struct sockaddr_in sa = {.sin_family = AF_INET,
                                 .sin_port = htons((uint16_t)c->control_port),
                                 .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
        assert_int_equal(connect(fd, (struct sockaddr *)&sa, sizeof sa), 0);
        uint8_t junk[4096];
        for (size_t i = 0; i < sizeof junk; i++)
            junk[i] = (uint8_t)(i * 131 + (size_t)round * 7);
        if (round == 1) /* a valid SP header for REQ, then a frame claiming 2^60 bytes */
            memcpy(junk,
                   "\0SP\0\0\x30\0\0"
                   "\x10\0\0\0\0\0\0\0",
                   16);
        ssize_t n = write(fd, junk, sizeof junk);
        (void)n;
        close(fd);
    }
    assert_true(cluster_wait_agent_state(c, 0, "up", 1000));
}

static void test_oversized_message_gets_too_big(void **state)
{
    size_t len = MLX_MAX_CONTROL_MSG + 1;
    uint8_t *big = calloc(1, len);
    assert_error(exchange_raw(big, len), FLEET__ERROR__CODE__TOO_BIG, "limit");
    free(big);
}

static void test_huge_frame_is_dropped_unread_and_hurts_no_one(void **state)
{
    size_t len = MLX_MAX_CONTROL_FRAME + 1;
    uint8_t *huge = calloc(1, len);
    assert_null(exchange_raw(huge, len));
    free(huge);
    /* The coordinator still answers on a new connection. */
    assert_error(exchange_raw("x", 1), FLEET__ERROR__CODE__BAD_MESSAGE, "malformed");
}

static void test_malformed_protobuf_gets_bad_message(void **state)
{
    assert_error(exchange_raw("\xff\xff\xff\xff\xff", 5), FLEET__ERROR__CODE__BAD_MESSAGE,
                 "malformed");
}

static void test_truncated_register_gets_bad_message(void **state)
{
    wire_envelope env;
    Fleet__Register reg;
    Fleet__Hardware hw;
    make_register(&env, &reg, &hw);
    uint8_t *buf;
    size_t len;
    assert_int_equal(wire_pack(&env, MLX_MAX_CONTROL_MSG, &buf, &len, NULL), 0);
    assert_error(exchange_raw(buf, len - 3), FLEET__ERROR__CODE__BAD_MESSAGE, NULL);
    mlx_free(buf);
}

static void test_other_major_version_is_refused(void **state)
{
    wire_envelope env;
    Fleet__Register reg;
    Fleet__Hardware hw;
    make_register(&env, &reg, &hw);
    uint8_t *buf;
    size_t len;
    assert_int_equal(wire_pack(&env, MLX_MAX_CONTROL_MSG, &buf, &len, NULL), 0);
    /* Re-encode with version 2.0 (wire_pack always writes ours). */
    wire_envelope *copy = NULL;
    assert_int_equal(wire_unpack(buf, len, MLX_MAX_CONTROL_MSG, &copy, NULL), 0);
    mlx_free(buf);
    copy->version = 2u << 16;
    len = fleet__envelope__get_packed_size(copy);
    buf = malloc(len);
    fleet__envelope__pack(copy, buf);
    wire_free(copy);
    wire_envelope *reply = exchange_raw(buf, len);
    free(buf);
    assert_non_null(reply);
    assert_string_equal(reply->request_id, "abuse-1");
    assert_error(reply, FLEET__ERROR__CODE__VERSION, "2.0");
}

static void test_heartbeat_from_unknown_node_is_refused(void **state)
{
    wire_envelope env = FLEET__ENVELOPE__INIT;
    Fleet__Heartbeat hb = FLEET__HEARTBEAT__INIT;
    env.node_id = BAD_ID;
    env.body_case = FLEET__ENVELOPE__BODY_HEARTBEAT;
    env.heartbeat = &hb;
    assert_error(exchange(&env), FLEET__ERROR__CODE__UNKNOWN_NODE, "register");
}

static void test_invalid_registrations_are_refused_with_the_field(void **state)
{
    wire_envelope env;
    Fleet__Register reg;
    Fleet__Hardware hw;

    make_register(&env, &reg, &hw);
    reg.name = "two\nlines";
    assert_error(exchange(&env), FLEET__ERROR__CODE__BAD_MESSAGE, "name");

    make_register(&env, &reg, &hw);
    reg.listen = "http://nope";
    assert_error(exchange(&env), FLEET__ERROR__CODE__BAD_MESSAGE, "listen");

    make_register(&env, &reg, &hw);
    reg.hardware = NULL;
    assert_error(exchange(&env), FLEET__ERROR__CODE__BAD_MESSAGE, "hardware");

    make_register(&env, &reg, &hw);
    hw.cpu_model = "\xc3\x28";
    assert_error(exchange(&env), FLEET__ERROR__CODE__BAD_MESSAGE, "cpu_model");

    make_register(&env, &reg, &hw);
    env.node_id = "../../etc/passwd";
    assert_error(exchange(&env), FLEET__ERROR__CODE__BAD_MESSAGE, "node id");

    /* None of them made it into the registry. */
    json_t *nodes = cluster_nodes(c);
    assert_int_equal(json_array_size(json_object_get(nodes, "nodes")), 1);
    json_decref(nodes);
}

static void test_unexpected_body_is_refused(void **state)
{
    wire_envelope env = FLEET__ENVELOPE__INIT;
    Fleet__Ack ack = FLEET__ACK__INIT;
    env.node_id = BAD_ID;
    env.body_case = FLEET__ENVELOPE__BODY_ACK;
    env.ack = &ack;
    assert_error(exchange(&env), FLEET__ERROR__CODE__BAD_MESSAGE, "ack");
}

struct seen_after {
    int64_t after;
};

static bool victim_heartbeat_after(void *arg)
{
    struct seen_after *s = arg;
    json_t *nodes = cluster_nodes(c);
    json_t *n = cluster_find_node(nodes, c->agents[0].node_id);
    bool ok = n != NULL &&
              json_integer_value(json_object_get(n, "last_seen_unix_ms")) > s->after;
    json_decref(nodes);
    return ok;
}

static void test_coordinator_still_serves_everyone(void **state)
{
    /* The victim keeps heartbeating... */
    json_t *nodes = cluster_nodes(c);
    json_t *n = cluster_find_node(nodes, c->agents[0].node_id);
    assert_non_null(n);
    struct seen_after s = {json_integer_value(json_object_get(n, "last_seen_unix_ms"))};
    assert_string_equal(json_string_value(json_object_get(n, "state")), "up");
    json_decref(nodes);
    assert_true(h_wait_for(victim_heartbeat_after, &s, 5000));
    /* ...a newcomer can join... */
    int i = cluster_add_agent(c, "newcomer");
    assert_true(cluster_wait_node_id(c, i, 10000));
    assert_true(cluster_wait_agent_state(c, i, "up", 10000));
    /* ...and each refusal was one warning line in the coordinator's log. */
    assert_true(h_count_lines(c->coordinator->log_path, "msg=\"refused") >= 7);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_garbage_on_raw_tcp_is_dropped),
        cmocka_unit_test(test_oversized_message_gets_too_big),
        cmocka_unit_test(test_huge_frame_is_dropped_unread_and_hurts_no_one),
        cmocka_unit_test(test_malformed_protobuf_gets_bad_message),
        cmocka_unit_test(test_truncated_register_gets_bad_message),
        cmocka_unit_test(test_other_major_version_is_refused),
        cmocka_unit_test(test_heartbeat_from_unknown_node_is_refused),
        cmocka_unit_test(test_invalid_registrations_are_refused_with_the_field),
        cmocka_unit_test(test_unexpected_body_is_refused),
        cmocka_unit_test(test_coordinator_still_serves_everyone),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
