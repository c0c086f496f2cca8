/*
 * uplink.h — the agent's control-plane link to its coordinator.
 *
 * A background thread registers the node, then heartbeats at a fixed
 * interval with the sampler's latest figures, and carries out what the replies
 * say. It never gives up: while the coordinator is unreachable it keeps
 * trying (NNG redials in the background) and logs the outage once, not
 * once per attempt.
 *
 * States of the link (one log line per change):
 *
 *   REGISTERING  no registration accepted yet, or the coordinator asked for
 *                a new one; sends Register until a RegisterReply arrives.
 *   REGISTERED   sends Heartbeat every heartbeat_ms. Goes back to
 *                REGISTERING when a reply carries a different coordinator
 *                epoch (the coordinator restarted) or an UNKNOWN_NODE error
 *                (its registry lost us).
 *
 * Lifecycle:
 *   1. uplink_start copies what it needs from cfg and starts the thread; it
 *      fails only for bad arguments or resources, never because the
 *      coordinator is down.
 *   2. uplink_stop asks the thread to stop, which sends Deregister (bounded
 *      by the request timeout), then joins it and frees everything.
 *
 * Thread safety: uplink_stop and uplink_snapshot may be called from any one
 * thread while the link runs.
 */
#ifndef MLX_AGENT_UPLINK_H
#define MLX_AGENT_UPLINK_H

#include <stdbool.h>
#include <stdint.h>

#include "agent/metrics/metrics.h"
#include "common/err.h"

typedef struct uplink uplink;

typedef struct uplink_config {
    const char *coordinator; /* tcp://HOST:PORT */
    const char *node_id;     /* MLX_NODE_ID_LEN hex digits */
    const char *name;
    const char *listen;    /* data-plane address */
    const char *advertise; /* may be "" */
    const char *http;      /* agent HTTP HOST:PORT */
    const char *data_dir;  /* for disk facts */
    int heartbeat_ms;
    metrics_sampler *sampler; /* borrowed: the latest sample goes in each heartbeat */
} uplink_config;

/* What the link has achieved so far, for status output and tests. */
typedef struct uplink_status {
    bool registered;
    uint64_t registrations; /* successful Register exchanges since start */
    uint64_t heartbeats;    /* successful Heartbeat exchanges since start */
} uplink_status;

int uplink_start(const uplink_config *cfg, uplink **out, mlx_err *err);
void uplink_stop(uplink *u, const char *reason);
void uplink_snapshot(uplink *u, uplink_status *out);

#endif
