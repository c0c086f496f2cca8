/*
 * test_nng_util.c — common/nng_util on loopback: a REP listener and a REQ
 * dialer exchange messages (the REP side echoes from a helper thread), a
 * request with nobody listening times out within its timeout, a dialer
 * started before its listener reaches it once it appears, frames over the
 * receive maximum are dropped, a second listener on one address is EBUSY
 * with a sentence naming the flag, and NNG codes map to MLX_E* codes.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmocka.h>

#include "common/clock.h"
#include "common/nng_util.h"

/* A loopback TCP port nobody listens on right now (the kernel picks it). */
static int free_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    assert_true(fd >= 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = 0};
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_int_equal(bind(fd, (struct sockaddr *)&sa, sizeof sa), 0);
    socklen_t len = sizeof sa;
    assert_int_equal(getsockname(fd, (struct sockaddr *)&sa, &len), 0);
    close(fd);
    return ntohs(sa.sin_port);
}

static void loopback_url(char *url, size_t size)
{
    snprintf(url, size, "tcp://127.0.0.1:%d", free_port());
}

/* The REP side: answers each request with "echo:" + request until closed. */
static void *echo_loop(void *arg)
{
    nng_socket sock = *(nng_socket *)arg;
    for (;;) {
        nng_msg *m;
        if (nng_recvmsg(sock, &m, 0) != 0)
            break; /* NNG_ECLOSED when the test closes the socket */
        if (nng_msg_insert(m, "echo:", 5) != 0 || nng_sendmsg(sock, m, 0) != 0)
            nng_msg_free(m);
    }
    return NULL;
}

struct echo_server {
    nng_socket sock;
    pthread_t thread;
};

static void echo_start(struct echo_server *s, const char *url, size_t max_msg)
{
    mlx_err e;
    mlx_err_clear(&e);
    int rc = mlx_nng_rep_listen(url, max_msg, "--listen", &s->sock, &e);
    if (rc != 0)
        fail_msg("listen on %s: %s", url, e.msg);
    assert_int_equal(pthread_create(&s->thread, NULL, echo_loop, &s->sock), 0);
}

static void echo_stop(struct echo_server *s)
{
    nng_close(s->sock);
    pthread_join(s->thread, NULL);
}

static void assert_reply(nng_msg *reply, const char *want)
{
    assert_non_null(reply);
    assert_int_equal(nng_msg_len(reply), strlen(want));
    assert_memory_equal(nng_msg_body(reply), want, strlen(want));
    nng_msg_free(reply);
}

static void test_nng_request_reply_round_trip(void **state)
{
    (void)state;
    char url[64];
    loopback_url(url, sizeof url);
    struct echo_server srv;
    echo_start(&srv, url, 1024);
    nng_socket req;
    assert_int_equal(mlx_nng_req_dial(url, 1024, 5000, &req, NULL), 0);
    for (int i = 0; i < 3; i++) {
        char text[32], want[40];
        snprintf(text, sizeof text, "ping %d", i);
        snprintf(want, sizeof want, "echo:%s", text);
        nng_msg *reply = NULL;
        mlx_err e;
        mlx_err_clear(&e);
        int rc = mlx_nng_request(req, text, strlen(text), &reply, &e);
        if (rc != 0)
            fail_msg("request %d: %s", i, e.msg);
        assert_reply(reply, want);
    }
    nng_close(req);
    echo_stop(&srv);
}

static void test_nng_request_without_listener_times_out(void **state)
{
    (void)state;
    char url[64];
    loopback_url(url, sizeof url);
    nng_socket req;
    assert_int_equal(mlx_nng_req_dial(url, 1024, 300, &req, NULL), 0);
    nng_msg *reply = NULL;
    mlx_err e;
    mlx_err_clear(&e);
    int64_t start = mlx_time_mono_ms();
    int rc = mlx_nng_request(req, "hello", 5, &reply, &e);
    int64_t took = mlx_time_mono_ms() - start;
    assert_int_equal(rc, MLX_ETIMEDOUT);
    assert_int_equal(e.code, MLX_ETIMEDOUT);
    assert_true(e.msg[0] != '\0');
    assert_null(reply);
    assert_true(took >= 250); /* it did wait for its timeout */
    assert_true(took < 5000); /* and not much longer */
    nng_close(req);
}

static void test_nng_empty_request_round_trip(void **state)
{
    (void)state;
    char url[64];
    loopback_url(url, sizeof url);
    struct echo_server srv;
    echo_start(&srv, url, 1024);
    nng_socket req;
    assert_int_equal(mlx_nng_req_dial(url, 1024, 5000, &req, NULL), 0);
    nng_msg *reply = NULL;
    assert_int_equal(mlx_nng_request(req, NULL, 0, &reply, NULL), 0);
    assert_reply(reply, "echo:");
    nng_close(req);
    echo_stop(&srv);
}

static void test_nng_dialer_reaches_listener_started_later(void **state)
{
    (void)state;
    char url[64];
    loopback_url(url, sizeof url);
    nng_socket req;
    /* Dialing succeeds with nobody there; NNG keeps redialing. */
    assert_int_equal(mlx_nng_req_dial(url, 1024, 5000, &req, NULL), 0);
    struct echo_server srv;
    echo_start(&srv, url, 1024);
    nng_msg *reply = NULL;
    mlx_err e;
    mlx_err_clear(&e);
    int rc = mlx_nng_request(req, "late", 4, &reply, &e);
    if (rc != 0)
        fail_msg("request: %s", e.msg);
    assert_reply(reply, "echo:late");
    nng_close(req);
    echo_stop(&srv);
}

static void test_nng_listen_twice_is_busy_naming_flag(void **state)
{
    (void)state;
    char url[64];
    loopback_url(url, sizeof url);
    nng_socket a, b;
    assert_int_equal(mlx_nng_rep_listen(url, 1024, "--listen", &a, NULL), 0);
    mlx_err e;
    mlx_err_clear(&e);
    assert_int_equal(mlx_nng_rep_listen(url, 1024, "--listen", &b, &e), MLX_EBUSY);
    assert_int_equal(e.code, MLX_EBUSY);
    assert_non_null(strstr(e.msg, url));
    assert_non_null(strstr(e.msg, "--listen"));
    nng_close(a);
    /* Free again once the first listener is closed. */
    assert_int_equal(mlx_nng_rep_listen(url, 1024, "--listen", &b, NULL), 0);
    nng_close(b);
}

static void test_nng_listener_drops_oversized_request(void **state)
{
    (void)state;
    char url[64];
    loopback_url(url, sizeof url);
    struct echo_server srv;
    echo_start(&srv, url, 64);
    nng_socket req;
    assert_int_equal(mlx_nng_req_dial(url, 1024, 5000, &req, NULL), 0);
    char big[1000];
    memset(big, 'b', sizeof big);
    nng_msg *reply = NULL;
    mlx_err e;
    mlx_err_clear(&e);
    /* The listener drops the frame and the connection that sent it: the
     * request fails at once as unreachable rather than waiting 5 s. */
    int64_t start = mlx_time_mono_ms();
    assert_int_equal(mlx_nng_request(req, big, sizeof big, &reply, &e), MLX_EUNREACH);
    assert_true(mlx_time_mono_ms() - start < 4000);
    assert_null(reply);
    assert_non_null(strstr(e.msg, "no reply"));

    /* One byte over the limit is dropped too... */
    assert_int_equal(mlx_nng_request(req, big, 65, &reply, NULL), MLX_EUNREACH);
    /* ...and exactly the limit is served (the dialer reconnects). */
    assert_int_equal(mlx_nng_request(req, big, 64, &reply, NULL), 0);
    assert_int_equal(nng_msg_len(reply), 69);
    nng_msg_free(reply);
    nng_close(req);
    echo_stop(&srv);
}

static void test_nng_requester_drops_oversized_reply(void **state)
{
    (void)state;
    char url[64];
    loopback_url(url, sizeof url);
    struct echo_server srv;
    echo_start(&srv, url, 1024);
    nng_socket req;
    /* The echo adds 5 bytes: a 60-byte request gets a 65-byte reply. */
    assert_int_equal(mlx_nng_req_dial(url, 64, 5000, &req, NULL), 0);
    char body[60];
    memset(body, 'r', sizeof body);
    nng_msg *reply = NULL;
    mlx_err e;
    mlx_err_clear(&e);
    int64_t start = mlx_time_mono_ms();
    assert_int_equal(mlx_nng_request(req, body, sizeof body, &reply, &e), MLX_EUNREACH);
    assert_true(mlx_time_mono_ms() - start < 4000);
    assert_null(reply);
    /* 59 bytes come back as 64, exactly the maximum. */
    assert_int_equal(mlx_nng_request(req, body, 59, &reply, NULL), 0);
    assert_int_equal(nng_msg_len(reply), 64);
    nng_msg_free(reply);
    nng_close(req);
    echo_stop(&srv);
}

static void test_nng_bad_addresses_are_reported(void **state)
{
    (void)state;
    nng_socket s;
    mlx_err e;
    mlx_err_clear(&e);
    int rc = mlx_nng_rep_listen("nonsense://x", 1024, "--listen", &s, &e);
    assert_true(rc < 0);
    assert_int_equal(e.code, rc);
    assert_non_null(strstr(e.msg, "nonsense://x"));
    assert_non_null(strstr(e.msg, "--listen"));
    mlx_err_clear(&e);
    rc = mlx_nng_req_dial("nonsense://x", 1024, 100, &s, &e);
    assert_true(rc < 0);
    assert_non_null(strstr(e.msg, "nonsense://x"));
}

static void test_nng_code_maps_errors(void **state)
{
    (void)state;
    assert_int_equal(mlx_nng_code(0), 0);
    assert_int_equal(mlx_nng_code(NNG_ETIMEDOUT), MLX_ETIMEDOUT);
    assert_int_equal(mlx_nng_code(NNG_ENOMEM), MLX_ENOMEM);
    assert_int_equal(mlx_nng_code(NNG_ECLOSED), MLX_ECLOSED);
    assert_int_equal(mlx_nng_code(NNG_ECANCELED), MLX_ECLOSED);
    assert_int_equal(mlx_nng_code(NNG_ECONNREFUSED), MLX_EUNREACH);
    assert_int_equal(mlx_nng_code(NNG_EUNREACHABLE), MLX_EUNREACH);
    assert_int_equal(mlx_nng_code(NNG_ECONNRESET), MLX_EUNREACH);
    assert_int_equal(mlx_nng_code(NNG_ECONNSHUT), MLX_EUNREACH);
    assert_int_equal(mlx_nng_code(NNG_EMSGSIZE), MLX_ETOOBIG);
    assert_int_equal(mlx_nng_code(NNG_EADDRINUSE), MLX_EBUSY);
    assert_int_equal(mlx_nng_code(NNG_EADDRINVAL), MLX_EINVAL);
    assert_int_equal(mlx_nng_code(NNG_EINVAL), MLX_EINVAL);
    assert_int_equal(mlx_nng_code(NNG_EPERM), MLX_EPERM);
    assert_int_equal(mlx_nng_code(NNG_EINTERNAL), MLX_EIO);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_nng_request_reply_round_trip),
        cmocka_unit_test(test_nng_request_without_listener_times_out),
        cmocka_unit_test(test_nng_empty_request_round_trip),
        cmocka_unit_test(test_nng_dialer_reaches_listener_started_later),
        cmocka_unit_test(test_nng_listen_twice_is_busy_naming_flag),
        cmocka_unit_test(test_nng_listener_drops_oversized_request),
        cmocka_unit_test(test_nng_requester_drops_oversized_reply),
        cmocka_unit_test(test_nng_bad_addresses_are_reported),
        cmocka_unit_test(test_nng_code_maps_errors),
    };
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    nng_fini(); /* let ASan see that NNG's own state is released */
    return rc;
}
