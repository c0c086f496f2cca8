/*
 * dataplane.h — the agent's side of the fleet's data plane: generations
 * asked for by the coordinator over NNG (proto/fleet.proto, "Data plane").
 *
 * The agent listens with a REP socket; the coordinator dials it with a REQ
 * socket and opens as many contexts as it likes. Each envelope is one of:
 *
 *   Infer  -> InferAccepted, or Error (400 bad values, 404 unknown model,
 *             503 queue full or agent stopping, 507 no memory). The
 *             envelope's request_id names the generation from then on.
 *   Next   -> TokenChunk: all text made since the previous Next, waiting up
 *             to poll_ms for some (an empty chunk when none came, so the
 *             coordinator asks again), done with the finish reason and usage
 *             at the end. Error 404 for an id not (or no longer) known.
 *   Cancel -> Ack: the generation stops before its next token; a later Next
 *             gets what was made and done with finish reason "cancelled".
 *   LoadModel -> Loaded with the load's time (0 when it was loaded), once
 *             the model is in memory: Ollama's request with nothing to
 *             generate. keep_alive_ms -1 unloads it instead (at once, or
 *             when its running requests end; nothing is loaded for that).
 *             Error 400 bad name, 404 unknown model, 503 when
 *             MLX_DATA_LOADS workers already wait on loads, 507 no memory.
 *
 * A generation whose Next has not come for idle_timeout_ms is cancelled and
 * forgotten: its coordinator is taken to be gone. Every incoming message is
 * bounded (max_msg) and decoded with checks; a malformed one is answered
 * with Error BAD_MESSAGE, another major version with Error VERSION, and the
 * agent goes on serving.
 *
 * Infer is validated as the HTTP API validates a request (empty model,
 * sampling values out of range, too many stops or messages…) and maps to
 * runtime_submit; its answer waits for the model to load (up to poll_ms),
 * so an unknown model is an Error rather than an accepted generation.
 *
 * Each Infer refused, each generation ended, and each LoadModel is counted
 * in the agent's inference metrics under endpoint "dataplane", beside its
 * HTTP requests, so an agent's /metrics shows all the work it did.
 *
 * Threads: MLX_DATA_CONTEXTS workers, each with its own NNG context, answer
 * requests one at a time; a Next holds its worker for its long poll, a
 * LoadModel for the load (at most MLX_DATA_LOADS of them at once). The
 * table of generations is guarded by one mutex; two Nexts for the same
 * generation are answered one after the other.
 *
 * Lifecycle: dataplane_start after runtime_start; dataplane_stop before
 * runtime_stop (it cancels and frees every generation it still tracks).
 */
#ifndef MLX_AGENT_DATAPLANE_H
#define MLX_AGENT_DATAPLANE_H

#include <stddef.h>

#include "agent/metrics/metrics.h"
#include "agent/runtime/runtime.h"
#include "common/err.h"

typedef struct dataplane dataplane;

typedef struct dataplane_config {
    const char *listen;           /* NNG URL, tcp://HOST:PORT (borrowed) */
    runtime *rt;                  /* borrowed; must outlive the data plane */
    const char *node_id;          /* put in every reply (copied) */
    size_t max_msg;               /* largest message accepted; 0: MLX_MAX_DATA_MSG */
    int idle_timeout_ms;          /* forget a generation not polled this long; 0: 30 s */
    int poll_ms;                  /* how long a Next waits for text; 0: 1 s */
    metrics_inference *inference; /* borrowed; NULL: generations not counted */
} dataplane_config;

/* Listens on cfg->listen and starts the workers. *out: dataplane_stop.
 * MLX_EBUSY when the address is in use (the sentence names --listen). */
int dataplane_start(const dataplane_config *cfg, dataplane **out, mlx_err *err);

/* Stops answering (within a long poll), cancels and frees every generation,
 * closes the socket. NULL is a no-op. */
void dataplane_stop(dataplane *dp);

#endif
