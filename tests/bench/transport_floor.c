/* transport_floor.c — one round trip by plain TCP and by NNG REQ/REP, timed
 * between two threads on loopback (see transport_floor.h). */
#include "tests/bench/transport_floor.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <nng/nng.h>
#include <nng/protocol/reqrep0/rep.h>
#include <nng/protocol/reqrep0/req.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "tests/bench/benchutil.h"

#define MSG_BYTES 128
#define WARM_UP   200

static int64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* ---- plain TCP -------------------------------------------------------------- */

static int read_full(int fd, char *p, size_t n)
{
    while (n > 0) {
        ssize_t r = read(fd, p, n);
        if (r <= 0)
            return -1;
        p += r;
        n -= (size_t)r;
    }
    return 0;
}

static void *tcp_echo(void *arg)
{
    int listener = *(int *)arg;
    int fd = accept(listener, NULL, NULL);
    if (fd < 0)
        return NULL;
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    char buf[MSG_BYTES];
    while (read_full(fd, buf, sizeof buf) == 0 && write(fd, buf, sizeof buf) == MSG_BYTES)
        ;
    close(fd);
    return NULL;
}

static int tcp_measure(int n, double *ms)
{
    struct sockaddr_in addr = {.sin_family = AF_INET};
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof addr;
    int listener = socket(AF_INET, SOCK_STREAM, 0);
    if (listener < 0 || bind(listener, (struct sockaddr *)&addr, len) != 0 ||
        listen(listener, 1) != 0 ||
        getsockname(listener, (struct sockaddr *)&addr, &len) != 0) {
        perror("transport floor: TCP listener");
        if (listener >= 0)
            close(listener);
        return -1;
    }
    pthread_t echo;
    if (pthread_create(&echo, NULL, tcp_echo, &listener) != 0) {
        close(listener);
        return -1;
    }
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    int rc = fd >= 0 && connect(fd, (struct sockaddr *)&addr, len) == 0 ? 0 : -1;
    int one = 1;
    if (rc == 0)
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    char buf[MSG_BYTES] = {0};
    for (int i = -WARM_UP; i < n && rc == 0; i++) {
        int64_t t0 = now_ns();
        if (write(fd, buf, sizeof buf) != MSG_BYTES ||
            read_full(fd, buf, sizeof buf) != 0)
            rc = -1;
        else if (i >= 0)
            ms[i] = (double)(now_ns() - t0) / 1e6;
    }
    if (rc != 0)
        perror("transport floor: TCP round trip");
    if (fd >= 0)
        close(fd); /* the echo thread reads EOF and ends */
    pthread_join(echo, NULL);
    close(listener);
    return rc;
}

/* ---- NNG REQ/REP ------------------------------------------------------------ */

static void *nng_echo(void *arg)
{
    nng_socket sock = *(nng_socket *)arg;
    nng_ctx ctx;
    nng_aio *aio;
    if (nng_aio_alloc(&aio, NULL, NULL) != 0)
        return NULL;
    if (nng_ctx_open(&ctx, sock) != 0) {
        nng_aio_free(aio);
        return NULL;
    }
    for (;;) {
        nng_ctx_recv(ctx, aio);
        nng_aio_wait(aio);
        if (nng_aio_result(aio) != 0)
            break; /* closed */
        nng_aio_set_msg(aio, nng_aio_get_msg(aio));
        nng_ctx_send(ctx, aio);
        nng_aio_wait(aio);
        if (nng_aio_result(aio) != 0) {
            nng_msg_free(nng_aio_get_msg(aio));
            break;
        }
    }
    nng_aio_free(aio);
    return NULL;
}

static int nng_measure(int n, double *ms)
{
    nng_socket rep, req;
    nng_listener l;
    char url[64];
    int rv = nng_rep0_open(&rep);
    if (rv == 0 && (rv = nng_listen(rep, "tcp://127.0.0.1:0", &l, 0)) == 0) {
        int port = 0;
        nng_listener_get_int(l, NNG_OPT_TCP_BOUND_PORT, &port);
        snprintf(url, sizeof url, "tcp://127.0.0.1:%d", port);
    }
    if (rv != 0) {
        fprintf(stderr, "transport floor: NNG listener: %s\n", nng_strerror(rv));
        return -1;
    }
    pthread_t echo;
    if (pthread_create(&echo, NULL, nng_echo, &rep) != 0) {
        nng_close(rep);
        return -1;
    }
    nng_ctx ctx;
    nng_aio *aio = NULL;
    if ((rv = nng_req0_open(&req)) == 0 && (rv = nng_dial(req, url, NULL, 0)) == 0 &&
        (rv = nng_aio_alloc(&aio, NULL, NULL)) == 0)
        rv = nng_ctx_open(&ctx, req);
    for (int i = -WARM_UP; i < n && rv == 0; i++) {
        nng_msg *msg;
        if ((rv = nng_msg_alloc(&msg, MSG_BYTES)) != 0)
            break;
        memset(nng_msg_body(msg), 0, MSG_BYTES);
        int64_t t0 = now_ns();
        nng_aio_set_msg(aio, msg);
        nng_ctx_send(ctx, aio);
        nng_aio_wait(aio);
        if ((rv = nng_aio_result(aio)) != 0) {
            nng_msg_free(msg);
            break;
        }
        nng_ctx_recv(ctx, aio);
        nng_aio_wait(aio);
        if ((rv = nng_aio_result(aio)) != 0)
            break;
        nng_msg_free(nng_aio_get_msg(aio));
        if (i >= 0)
            ms[i] = (double)(now_ns() - t0) / 1e6;
    }
    if (rv != 0)
        fprintf(stderr, "transport floor: NNG exchange: %s\n", nng_strerror(rv));
    nng_close(req);
    nng_close(rep); /* the echo thread's receive fails and it ends */
    pthread_join(echo, NULL);
    if (aio != NULL)
        nng_aio_free(aio);
    return rv == 0 ? 0 : -1;
}

int transport_floor_measure(int n, transport_floor *out)
{
    double *ms = malloc((size_t)n * sizeof *ms);
    if (ms == NULL)
        abort();
    int rc = tcp_measure(n, ms);
    if (rc == 0) {
        bench_sort(ms, (size_t)n);
        out->tcp_p50 = bench_percentile(ms, (size_t)n, 50);
        out->tcp_p99 = bench_percentile(ms, (size_t)n, 99);
        rc = nng_measure(n, ms);
    }
    if (rc == 0) {
        bench_sort(ms, (size_t)n);
        out->nng_p50 = bench_percentile(ms, (size_t)n, 50);
        out->nng_p99 = bench_percentile(ms, (size_t)n, 99);
    }
    free(ms);
    return rc;
}
