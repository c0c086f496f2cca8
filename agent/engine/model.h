/*
 * model.h — a llama-family model's configuration, weights and sequences
 * (engine-internal).
 *
 * Config comes from the GGUF metadata of the architecture ("llama",
 * "qwen2"), weights are views into the mapped file (never copied), and a
 * sequence owns everything a forward pass writes: its KV cache and its
 * activations, allocated once so the decode loop allocates nothing.
 *
 * Shapes follow GGUF: a weight [ne0, ne1] has ne1 rows of ne0 elements,
 * and multiplying it by a vector of ne0 gives ne1 outputs.
 *
 *   token_embd        [n_embd, n_vocab]     one row per token
 *   attn_norm         [n_embd]              F32
 *   attn_q            [n_embd, n_head * head_dim]
 *   attn_k, attn_v    [n_embd, n_head_kv * head_dim]
 *   attn_q/k/v bias   [n_head(_kv) * head_dim]   qwen2 only, F32
 *   attn_output       [n_head * head_dim, n_embd]
 *   ffn_norm          [n_embd]              F32
 *   ffn_gate, ffn_up  [n_embd, n_ff]
 *   ffn_down          [n_ff, n_embd]
 *   output_norm       [n_embd]              F32
 *   output            [n_embd, n_vocab]     absent when tied to token_embd
 */
#ifndef MLX_AGENT_ENGINE_MODEL_H
#define MLX_AGENT_ENGINE_MODEL_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include "agent/engine/chat.h"
#include "agent/engine/engine.h"
#include "agent/engine/gguf.h"
#include "agent/engine/pool.h"
#include "agent/engine/quant.h"
#include "agent/engine/tokenizer.h"

typedef enum rope_style {
    ROPE_NORM, /* rotates adjacent pairs (x[2i], x[2i+1]): llama */
    ROPE_NEOX, /* rotates halves (x[i], x[i + n_rot/2]): qwen2 */
} rope_style;

typedef struct model_config {
    uint32_t n_vocab, n_ctx_train;
    uint32_t n_embd, n_layer, n_head, n_head_kv, head_dim, n_ff;
    uint32_t n_rot; /* dimensions of a head that RoPE rotates (<= head_dim) */
    float rms_eps;
    float rope_base;  /* rope.freq_base */
    float rope_scale; /* positions are multiplied by this (linear scaling: 1/factor) */
    rope_style rope;
} model_config;

/* A weight matrix: rows of one tensor type, read through its kernels. */
typedef struct model_matrix {
    const uint8_t *data; /* into the mapping */
    ggml_type type;
    uint32_t cols; /* ne0: elements per row */
    uint32_t rows; /* ne1 */
    size_t row_bytes;
    const quant_ops *ops;
} model_matrix;

typedef struct model_layer {
    const float *attn_norm;            /* [n_embd] */
    model_matrix wq, wk, wv, wo;       /* see the head comment */
    const float *bq, *bk, *bv;         /* NULL unless the model has biases */
    const float *ffn_norm;             /* [n_embd] */
    model_matrix w_gate, w_up, w_down; /* SwiGLU: down(silu(gate x) * up x) */
} model_layer;

struct engine_model {
    gguf_file *file;
    model_config cfg;
    model_matrix token_embd, output; /* output aliases token_embd when tied */
    const float *output_norm;
    const float *rope_freqs; /* [head_dim / 2] per-frequency divisors, or NULL */
    model_layer *layers;     /* [n_layer] */
    tokenizer *tok;          /* NULL for a model opened without one (tests) */
    chat_format chat;
    engine_info info;
    char name[128]; /* general.name, NUL-terminated, for info.name */
    uint32_t n_ctx; /* a sequence's capacity */
    pool *workers;
    pthread_mutex_t forward_lock; /* one forward pass at a time uses the pool */
};

/* Reads the config and maps the weights of an open file; checks every
 * tensor's presence, shape and type (sentences name the tensor). Does not
 * read the tokenizer. *out: model_close (which leaves the file open). */
int model_open(gguf_file *f, const engine_opts *opts, engine_model **out, mlx_err *err);
void model_close(engine_model *m);

/* One sequence's state. Shapes in floats. */
struct engine_seq {
    engine_model *m;
    uint32_t len;    /* positions filled in the cache */
    bool has_logits; /* logits hold the last fed token's */
    float *k_cache;  /* [n_layer][n_ctx][n_head_kv * head_dim] */
    float *v_cache;  /* same */
    float *x;        /* [n_embd] the residual stream */
    float *xb;       /* [max(n_embd, n_head * head_dim)] a normed or attended copy */
    float *xb2;      /* [n_embd] */
    float *q;        /* [n_head * head_dim] */
    float *att;      /* [n_head][n_ctx] attention scores */
    float *hb, *hb2; /* [n_ff] */
    float *logits;   /* [n_vocab] */
};

/* One token through the model at position s->len; with want_logits the
 * logits of the vocabulary are computed too (the prompt's tokens before
 * the last need none). The caller has checked id and the capacity. */
void model_forward(engine_seq *s, int32_t id, bool want_logits);

#endif
