/* wire.c — envelope encoding with size and version checks. */
#include "proto/wire.h"

#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "common/alloc.h"

/* data, when not NULL, is a bool set when an allocation fails, so that
 * wire_unpack can tell running out of memory from a malformed message
 * (protobuf-c returns NULL for both). */
static void *pb_alloc(void *data, size_t size)
{
    void *p = mlx_malloc(size);
    if (p == NULL && data != NULL)
        *(bool *)data = true;
    return p;
}

static void pb_free(void *data, void *p)
{
    (void)data;
    mlx_free(p);
}

/* protobuf-c allocates through our allocator so fault injection reaches it. */
static ProtobufCAllocator pb_allocator = {pb_alloc, pb_free, NULL};

void wire_version_text(uint32_t version, char *out, size_t size)
{
    snprintf(out, size, "%u.%u", version >> 16, version & 0xffffu);
}

int wire_pack(wire_envelope *env, size_t max, uint8_t **out, size_t *len, mlx_err *err)
{
    env->version = WIRE_VERSION;
    size_t n = fleet__envelope__get_packed_size(env);
    if (n > max)
        return mlx_err_set(err, MLX_ETOOBIG,
                           "%s message of %zu bytes exceeds the %zu-byte limit",
                           wire_body_name(env), n, max);
    uint8_t *buf = mlx_malloc(n);
    if (buf == NULL)
        return mlx_err_set(err, MLX_ENOMEM, "out of memory packing a %zu-byte message",
                           n);
    fleet__envelope__pack(env, buf);
    *out = buf;
    *len = n;
    return 0;
}

int wire_unpack(const uint8_t *data, size_t len, size_t max, wire_envelope **out,
                mlx_err *err)
{
    if (len > max)
        return mlx_err_set(err, MLX_ETOOBIG,
                           "message of %zu bytes exceeds the %zu-byte limit", len, max);
    bool alloc_failed = false;
    ProtobufCAllocator allocator = {pb_alloc, pb_free, &alloc_failed};
    wire_envelope *env = fleet__envelope__unpack(&allocator, len, data);
    if (env == NULL && alloc_failed)
        return mlx_err_set(err, MLX_ENOMEM, "out of memory unpacking a %zu-byte message",
                           len);
    if (env == NULL)
        return mlx_err_set(
            err, MLX_EPROTO,
            "malformed or truncated message (%zu bytes): not a fleet envelope", len);
    /* Every sender sets the version; 0 means the field is absent (an empty or
     * cut-off message), not a peer of major version 0. */
    if (env->version == 0) {
        fleet__envelope__free_unpacked(env, &pb_allocator);
        return mlx_err_set(
            err, MLX_EPROTO,
            "malformed message (%zu bytes): it carries no protocol version", len);
    }
    if (env->version >> 16 != WIRE_MAJOR) {
        char theirs[24];
        wire_version_text(env->version, theirs, sizeof theirs);
        *out = env;
        return mlx_err_set(
            err, MLX_EVERSION,
            "peer speaks protocol %s but this program speaks %d.x; run the "
            "same major release of mlx-agent and mlx-coordinator",
            theirs, WIRE_MAJOR);
    }
    if (env->body_case == FLEET__ENVELOPE__BODY__NOT_SET) {
        fleet__envelope__free_unpacked(env, &pb_allocator);
        return mlx_err_set(err, MLX_EPROTO, "message has no body");
    }
    *out = env;
    return 0;
}

void wire_free(wire_envelope *env)
{
    if (env != NULL)
        fleet__envelope__free_unpacked(env, &pb_allocator);
}

const char *wire_body_name(const wire_envelope *env)
{
    switch (env->body_case) {
    case FLEET__ENVELOPE__BODY_REGISTER:
        return "register";
    case FLEET__ENVELOPE__BODY_REGISTER_REPLY:
        return "register_reply";
    case FLEET__ENVELOPE__BODY_HEARTBEAT:
        return "heartbeat";
    case FLEET__ENVELOPE__BODY_HEARTBEAT_REPLY:
        return "heartbeat_reply";
    case FLEET__ENVELOPE__BODY_DEREGISTER:
        return "deregister";
    case FLEET__ENVELOPE__BODY_ACK:
        return "ack";
    case FLEET__ENVELOPE__BODY_ERROR:
        return "error";
    case FLEET__ENVELOPE__BODY_INFER:
        return "infer";
    case FLEET__ENVELOPE__BODY_INFER_ACCEPTED:
        return "infer_accepted";
    case FLEET__ENVELOPE__BODY_NEXT:
        return "next";
    case FLEET__ENVELOPE__BODY_TOKEN_CHUNK:
        return "token_chunk";
    case FLEET__ENVELOPE__BODY_CANCEL:
        return "cancel";
    case FLEET__ENVELOPE__BODY_LOAD:
        return "load";
    case FLEET__ENVELOPE__BODY_LOADED:
        return "loaded";
    default:
        return "none";
    }
}

int wire_check_node_id(const char *id, mlx_err *err)
{
    size_t n = 0;
    for (; id[n] != '\0' && n <= MLX_NODE_ID_LEN; n++) {
        char c = id[n];
        if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f')))
            break;
    }
    if (n != MLX_NODE_ID_LEN || id[n] != '\0')
        return mlx_err_set(err, MLX_EPROTO,
                           "'%.40s' is not a node id (%d lower-case hex digits)", id,
                           MLX_NODE_ID_LEN);
    return 0;
}

Fleet__Error__Code wire_refusal_code(int rc)
{
    if (rc == MLX_EVERSION)
        return FLEET__ERROR__CODE__VERSION;
    if (rc == MLX_ETOOBIG)
        return FLEET__ERROR__CODE__TOO_BIG;
    return FLEET__ERROR__CODE__BAD_MESSAGE;
}

void wire_set_error(wire_envelope *env, Fleet__Error *error, Fleet__Error__Code code,
                    const char *message)
{
    fleet__error__init(error);
    error->code = code;
    error->message = (char *)message;
    env->body_case = FLEET__ENVELOPE__BODY_ERROR;
    env->error = error;
}
