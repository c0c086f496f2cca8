/*
 * wire.h — the envelope on the wire: packing, unpacking, versions.
 *
 * Layout of one NNG message: the protobuf encoding of one fleet.Envelope and
 * nothing else (NNG frames it). Every envelope carries the sender's protocol
 * version; wire_unpack refuses a different major version, an empty body, a
 * message larger than the caller's limit, and bytes that are not a valid
 * encoding — each with its own code and a sentence fit for a log line:
 *
 *   MLX_ETOOBIG   larger than max
 *   MLX_EPROTO    malformed or truncated, no version or no body
 *   MLX_ENOMEM    out of memory while decoding
 *   MLX_EVERSION  another major version (the message is still returned in
 *                 *out so the caller can answer the peer's request id)
 *
 * Ownership: wire_pack's *out is freed with mlx_free; wire_unpack's *out with
 * wire_free. Strings inside an unpacked envelope are borrowed from it.
 * Thread safety: all functions are safe.
 */
#ifndef MLX_PROTO_WIRE_H
#define MLX_PROTO_WIRE_H

#include <stddef.h>
#include <stdint.h>

#include "common/err.h"
#include "proto/fleet.pb-c.h"

#define WIRE_MAJOR   1
/* 1.1: the data plane (Infer, Next, TokenChunk, Cancel; Error's status).
 * 1.2: the model inventory (StoredModel in Register and Heartbeat).
 * 1.3: InferAccepted.first, Infer.whole, log probabilities, LoadModel. */
#define WIRE_MINOR   3
#define WIRE_VERSION ((uint32_t)(WIRE_MAJOR << 16 | WIRE_MINOR))

typedef Fleet__Envelope wire_envelope;

/* Sets env->version to ours, encodes it, and checks the result fits in max. */
int wire_pack(wire_envelope *env, size_t max, uint8_t **out, size_t *len, mlx_err *err);

int wire_unpack(const uint8_t *data, size_t len, size_t max, wire_envelope **out,
                mlx_err *err);
void wire_free(wire_envelope *env);

/* "1.0" for a version field. out needs 24 bytes. */
void wire_version_text(uint32_t version, char *out, size_t size);

/* Short name of the body for logs: "register", "heartbeat", … */
const char *wire_body_name(const wire_envelope *env);

/* True when id is MLX_NODE_ID_LEN lower-case hex digits. */
int wire_check_node_id(const char *id, mlx_err *err);

/* The Error code that answers a message wire_unpack refused with rc:
 * VERSION, TOO_BIG, or BAD_MESSAGE for anything else. */
Fleet__Error__Code wire_refusal_code(int rc);

/* Fills env as an Error reply (error must outlive env's use). */
void wire_set_error(wire_envelope *env, Fleet__Error *error, Fleet__Error__Code code,
                    const char *message);

#endif
