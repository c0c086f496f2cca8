/*
 * transport_floor.h — what one round trip costs on this machine, below
 * any server: a plain TCP echo, and an NNG REQ/REP exchange made as the
 * data plane makes it (a context and an aio waited for on each side).
 * Both peers are threads of this process on loopback, so the figures are
 * the least a proxy adds with each transport: nginx pays about one TCP
 * round trip, the coordinator one data-plane exchange.
 */
#ifndef MLX_TESTS_TRANSPORT_FLOOR_H
#define MLX_TESTS_TRANSPORT_FLOOR_H

typedef struct transport_floor {
    double tcp_p50, tcp_p99; /* ms */
    double nng_p50, nng_p99; /* ms */
} transport_floor;

/* Times n round trips of each (after a warm-up) with messages of 128
 * bytes. Returns 0, or -1 after printing what could not be set up. */
int transport_floor_measure(int n, transport_floor *out);

#endif
