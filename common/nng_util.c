/* nng_util.c — socket setup with limits, timeouts and background dialing. */
#include "common/nng_util.h"

#include <nng/protocol/reqrep0/rep.h>
#include <nng/protocol/reqrep0/req.h>
#include <nng/supplemental/util/platform.h>
#include <pthread.h>
#include <stdbool.h>
#include <string.h>

#include "common/alloc.h"

/* Redial quickly at first, then back off to a few seconds: an agent waiting
 * for a restarting coordinator reconnects within the heartbeat window. */
#define RECONNECT_MIN_MS 100
#define RECONNECT_MAX_MS 2000

/* REQ and REP put a 4-byte request id in front of the body on the wire, and
 * NNG counts it against NNG_OPT_RECVMAXSZ: allow for it, so that a body of
 * exactly max_msg bytes still arrives. */
#define REQREP_HEADER 4

static size_t recv_max(size_t max_msg)
{
    return max_msg > SIZE_MAX - REQREP_HEADER ? SIZE_MAX : max_msg + REQREP_HEADER;
}

int mlx_nng_code(int nng_rc)
{
    switch (nng_rc) {
    case 0:
        return 0;
    case NNG_ETIMEDOUT:
        return MLX_ETIMEDOUT;
    case NNG_ENOMEM:
        return MLX_ENOMEM;
    case NNG_ECLOSED:
    case NNG_ECANCELED:
        return MLX_ECLOSED;
    case NNG_ECONNREFUSED:
    case NNG_EUNREACHABLE:
    case NNG_ECONNRESET:
    case NNG_ECONNSHUT:
        return MLX_EUNREACH;
    case NNG_EMSGSIZE:
        return MLX_ETOOBIG;
    case NNG_EADDRINUSE:
        return MLX_EBUSY;
    case NNG_EADDRINVAL:
    case NNG_EINVAL:
        return MLX_EINVAL;
    case NNG_EPERM:
        return MLX_EPERM;
    default:
        return MLX_EIO;
    }
}

int mlx_nng_rep_listen(const char *url, size_t max_msg, const char *flag, nng_socket *out,
                       mlx_err *err)
{
    nng_socket sock;
    int rv = nng_rep0_open(&sock);
    if (rv != 0)
        return mlx_err_set(err, mlx_nng_code(rv), "cannot open a reply socket: %s",
                           nng_strerror(rv));
    rv = nng_socket_set_size(sock, NNG_OPT_RECVMAXSZ, recv_max(max_msg));
    if (rv == 0)
        rv = nng_listen(sock, url, NULL, 0);
    if (rv != 0) {
        nng_close(sock);
        if (rv == NNG_EADDRINUSE)
            return mlx_err_set(
                err, MLX_EBUSY,
                "cannot listen on %s: the address is in use; stop the other "
                "process or choose another address with %s",
                url, flag);
        return mlx_err_set(err, mlx_nng_code(rv), "cannot listen on %s: %s; check %s",
                           url, nng_strerror(rv), flag);
    }
    *out = sock;
    return 0;
}

int mlx_nng_req_dial_watched(const char *url, size_t max_msg, int timeout_ms,
                             int reconnect_max_ms, mlx_nng_pipe_fn on_pipe, void *arg,
                             nng_socket *out, mlx_err *err)
{
    nng_socket sock;
    int rv = nng_req0_open(&sock);
    if (rv != 0)
        return mlx_err_set(err, mlx_nng_code(rv), "cannot open a request socket: %s",
                           nng_strerror(rv));
    if (rv == 0)
        rv = nng_socket_set_size(sock, NNG_OPT_RECVMAXSZ, recv_max(max_msg));
    if (rv == 0)
        rv = nng_socket_set_ms(sock, NNG_OPT_SENDTIMEO, timeout_ms);
    if (rv == 0)
        rv = nng_socket_set_ms(sock, NNG_OPT_RECVTIMEO, timeout_ms);
    /* We time requests out ourselves; NNG's own resend would duplicate them. */
    if (rv == 0)
        rv = nng_socket_set_ms(sock, NNG_OPT_REQ_RESENDTIME, NNG_DURATION_INFINITE);
    if (rv == 0)
        rv = nng_socket_set_ms(sock, NNG_OPT_RECONNMINT, RECONNECT_MIN_MS);
    if (rv == 0)
        rv = nng_socket_set_ms(sock, NNG_OPT_RECONNMAXT,
                               reconnect_max_ms > 0 ? reconnect_max_ms : RECONNECT_MAX_MS);
    if (rv == 0 && on_pipe != NULL)
        rv = nng_pipe_notify(sock, NNG_PIPE_EV_ADD_POST, on_pipe, arg);
    if (rv == 0 && on_pipe != NULL)
        rv = nng_pipe_notify(sock, NNG_PIPE_EV_REM_POST, on_pipe, arg);
    /* Non-blocking: succeed now and keep dialing in the background. */
    if (rv == 0)
        rv = nng_dial(sock, url, NULL, NNG_FLAG_NONBLOCK);
    if (rv != 0) {
        nng_close(sock);
        return mlx_err_set(err, mlx_nng_code(rv), "cannot dial %s: %s", url,
                           nng_strerror(rv));
    }
    *out = sock;
    return 0;
}

int mlx_nng_req_dial(const char *url, size_t max_msg, int timeout_ms, nng_socket *out,
                     mlx_err *err)
{
    return mlx_nng_req_dial_watched(url, max_msg, timeout_ms, 0, NULL, NULL, out, err);
}

int mlx_nng_request(nng_socket sock, const void *data, size_t len, nng_msg **reply,
                    mlx_err *err)
{
    nng_msg *msg;
    int rv = nng_msg_alloc(&msg, len);
    if (rv != 0)
        return mlx_err_set(err, MLX_ENOMEM, "out of memory");
    if (len > 0) /* data may be NULL for an empty request */
        memcpy(nng_msg_body(msg), data, len);
    rv = nng_sendmsg(sock, msg, 0);
    if (rv != 0) {
        nng_msg_free(msg); /* a failed send leaves the message with us */
        return mlx_err_set(err, mlx_nng_code(rv), "sending failed: %s", nng_strerror(rv));
    }
    rv = nng_recvmsg(sock, reply, 0);
    if (rv != 0)
        return mlx_err_set(err, mlx_nng_code(rv), "no reply: %s", nng_strerror(rv));
    return 0;
}

/* Shared by mlx_nng_close and its closing thread; the last one out frees it. */
struct closing {
    nng_socket sock;
    nng_mtx *mtx;
    nng_cv *cv;
    bool done;
    int refs;
};

static void closing_release(struct closing *c)
{
    nng_mtx_lock(c->mtx);
    bool last = --c->refs == 0;
    nng_mtx_unlock(c->mtx);
    if (last) {
        nng_cv_free(c->cv);
        nng_mtx_free(c->mtx);
        mlx_free(c);
    }
}

static void *closing_run(void *arg)
{
    struct closing *c = arg;
    nng_close(c->sock);
    nng_mtx_lock(c->mtx);
    c->done = true;
    nng_cv_wake(c->cv);
    nng_mtx_unlock(c->mtx);
    closing_release(c);
    return NULL;
}

int mlx_nng_close(nng_socket sock, int timeout_ms)
{
    struct closing *c = mlx_calloc(1, sizeof *c);
    pthread_t thread;
    if (c == NULL || nng_mtx_alloc(&c->mtx) != 0) {
        mlx_free(c);
        nng_close(sock); /* no room for a watchdog: close in place */
        return 0;
    }
    if (nng_cv_alloc(&c->cv, c->mtx) != 0) {
        nng_mtx_free(c->mtx);
        mlx_free(c);
        nng_close(sock);
        return 0;
    }
    c->sock = sock;
    c->refs = 2;
    if (pthread_create(&thread, NULL, closing_run, c) != 0) {
        c->refs = 1;
        closing_run(c);
        return 0;
    }
    pthread_detach(thread);
    nng_time deadline = nng_clock() + (nng_time)timeout_ms;
    nng_mtx_lock(c->mtx);
    while (!c->done && nng_cv_until(c->cv, deadline) != NNG_ETIMEDOUT) {
    }
    bool done = c->done;
    nng_mtx_unlock(c->mtx);
    closing_release(c);
    return done ? 0 : MLX_ETIMEDOUT;
}
