/*
 * nng_util.h — NNG sockets set up the way the fleet uses them.
 *
 * Every socket gets a maximum receive size (NNG drops larger frames and the
 * connection that sent them before anything is allocated for them) and, for
 * requesters, send and receive timeouts, so no call blocks forever. Dialers
 * dial in the background and redial with backoff, so a peer that is down at
 * start or restarts later is reached again without our code noticing.
 *
 * Thread safety: NNG sockets are thread-safe; these helpers keep no state.
 */
#ifndef MLX_COMMON_NNG_UTIL_H
#define MLX_COMMON_NNG_UTIL_H

#include <nng/nng.h>
#include <stddef.h>
#include <stdint.h>

#include "common/err.h"

/* Maps an NNG error to an MLX_E* code. */
int mlx_nng_code(int nng_rc);

/* A REP socket listening on url, accepting message bodies up to max_msg bytes.
 * flag names the option the address came from, for the error sentence. */
int mlx_nng_rep_listen(const char *url, size_t max_msg, const char *flag, nng_socket *out,
                       mlx_err *err);

/* Called by NNG (on its own threads) when a connection of the socket comes
 * (NNG_PIPE_EV_ADD_POST) or goes (NNG_PIPE_EV_REM_POST). */
typedef void (*mlx_nng_pipe_fn)(nng_pipe pipe, nng_pipe_ev ev, void *arg);

/* mlx_nng_req_dial, with on_pipe told of every connection made and lost,
 * from before the first dial, so none is missed, and redials at most
 * reconnect_max_ms apart (0: the default, 2 s). */
int mlx_nng_req_dial_watched(const char *url, size_t max_msg, int timeout_ms,
                             int reconnect_max_ms, mlx_nng_pipe_fn on_pipe, void *arg,
                             nng_socket *out, mlx_err *err);

/* A REQ socket dialing url in the background, accepting replies up to
 * max_msg bytes. timeout_ms bounds each send and each wait for a reply. */
int mlx_nng_req_dial(const char *url, size_t max_msg, int timeout_ms, nng_socket *out,
                     mlx_err *err);

/* Sends len bytes and waits for the reply (at most the socket's maximum).
 * *reply: caller frees with nng_msg_free. MLX_ETIMEDOUT when no reply came in
 * time (peer down or slow). */
int mlx_nng_request(nng_socket sock, const void *data, size_t len, nng_msg **reply,
                    mlx_err *err);

/* Closes sock, waiting at most timeout_ms. NNG 1.5 can block for ever in
 * nng_close when the socket's pipes close at the same moment (nanomsg/nng
 * issues 1813 and 1827, fixed in later releases); past the timeout the close
 * goes on in a detached thread and is left to the process's exit. Returns 0,
 * or MLX_ETIMEDOUT when the close was left behind. */
int mlx_nng_close(nng_socket sock, int timeout_ms);

#endif
