/*
 * synth.h — synthetic llama-architecture GGUF models (engine-internal).
 *
 * `mlx-agent model synth` writes a model with the layout, metadata and
 * tokenizer of a real Llama file and pseudo-random weights, so that the
 * engine, the demo and most tests run anywhere without downloading a model.
 * The same configuration and seed always give the same bytes, on every
 * machine: the weights come from an integer generator seeded per tensor and
 * are turned into floats and quantized with exactly rounded operations only.
 *
 * Weights are written a row at a time while the file is written, so memory
 * stays at a few rows (plus the vocabulary) whatever the model's size: a
 * 1 GB model needs about as much memory as a 1 MB one.
 *
 * Thread safety: pure functions over the caller's data.
 */
#ifndef MLX_AGENT_ENGINE_SYNTH_H
#define MLX_AGENT_ENGINE_SYNTH_H

#include <stddef.h>
#include <stdint.h>

#include "agent/engine/gguf.h"
#include "common/config.h"
#include "common/err.h"

/* Bounds on the command's numbers: generous for benchmarks (a 7B-sized
 * layer is dim 4096, ff 11008), small enough that no size computed from
 * them can overflow. */
#define SYNTH_MAX_LAYERS 256
#define SYNTH_MAX_DIM    16384
#define SYNTH_MAX_HEADS  256
#define SYNTH_MAX_FF     65536
#define SYNTH_MIN_VOCAB  259 /* <unk>, <s>, </s> and the 256 byte tokens */
#define SYNTH_MAX_VOCAB  262144
#define SYNTH_MAX_CTX    (1 << 20)

typedef struct synth_config {
    uint32_t n_layers;   /* llama.block_count */
    uint32_t dim;        /* llama.embedding_length */
    uint32_t n_heads;    /* llama.attention.head_count */
    uint32_t n_kv_heads; /* llama.attention.head_count_kv (GQA when < n_heads) */
    uint32_t ff;         /* llama.feed_forward_length */
    uint32_t vocab;      /* tokens */
    uint32_t ctx;        /* llama.context_length */
    ggml_type type;      /* of every matrix; norms are F32 */
    uint64_t seed;
} synth_config;

/* What a write produced. */
typedef struct synth_stats {
    uint64_t n_params; /* elements of all tensors */
    uint64_t n_tensors;
    uint64_t bytes; /* size of the file */
} synth_stats;

/* The defaults of the command: 2 layers, dim 128, 4 heads, 2 KV heads,
 * ff 384, 512 tokens, context 2048, F32, seed 42 — about 2 MB. */
void synth_config_default(synth_config *c);

/* 0, or MLX_EUSAGE with a sentence naming the flags that do not fit
 * together (a dim not divisible by the heads, a row length that is not a
 * whole number of the type's blocks, a number out of bounds…). */
int synth_check(const synth_config *c, mlx_err *err);

/* "f32", "f16", "bf16", "q8_0", "q4_0" (any case) → the type; MLX_EUSAGE. */
int synth_parse_type(const char *text, ggml_type *out, mlx_err *err);

/* Checks c and writes the model to path (through a temporary file, so path
 * is either the whole model or untouched). stats may be NULL. */
int synth_write(const synth_config *c, const char *path, synth_stats *stats,
                mlx_err *err);

/* The vocabulary (synth_vocab.c): n tokens in id order, their scores and
 * token types, as tokenizer.ggml.{tokens,scores,token_type} hold them.
 * *v: synth_vocab_free. */
typedef struct synth_vocab {
    char **tokens; /* n NUL-terminated strings */
    float *scores;
    int32_t *types;
    size_t n;
} synth_vocab;

int synth_vocab_build(uint32_t n, synth_vocab *v, mlx_err *err);
void synth_vocab_free(synth_vocab *v);

/* `mlx-agent model synth`. */
extern const mlx_cmd engine_cmd_synth;

#endif
