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
#include "agent/engine/kernels.h"
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

/* Scratch of one forward pass over up to max_batch tokens (engine_model
 * .work). Passes run one at a time (forward_lock), so one workspace serves
 * every sequence of the model; sized once at load. Float shapes are per
 * token of the pass, B = max_batch. */
typedef struct model_work {
    uint32_t max_batch;
    size_t bytes; /* of the buffers below, for engine_info.work_bytes */
    float *x;        /* [B][n_embd] the residual stream */
    float *xb;       /* [B][max(n_embd, q_dim)] a normed input, then attention's output */
    float *x2;       /* [B][n_embd] what a block adds to the stream */
    float *q;        /* [B][q_dim] */
    float *k, *v;    /* [B][kv_dim] this pass's keys and values, before F16 */
    float *hb, *hb2; /* [B][n_ff] */
    uint8_t *act;    /* [3][act_part] inputs in the weights' formats: up to three
                        products share an input but may want different formats */
    size_t act_part; /* B x the largest activation row */
    float *scores;   /* [threads][n_ctx] attention scores, one row per worker */
    float *logits;   /* [MODEL_LOGIT_ROWS][n_vocab] */
    float *rope;     /* [B][n_rot] each token's (cos, sin) per dimension pair */
    /* The tokens of the pass. */
    int32_t *ids;     /* [B] */
    uint32_t *pos;    /* [B] position in its sequence */
    engine_seq **seq; /* [B] */
    uint32_t *want;   /* [B] the tokens whose logits are wanted */
} model_work;

/* Logit rows computed together; a pass wanting more does it in rounds. */
#define MODEL_LOGIT_ROWS 16

/* Tokens of one pass: a longer prompt goes through in chunks. Large enough
 * that each weight row is read once for many tokens, small enough that the
 * workspace of a large model stays in hundreds of MB. */
#define MODEL_MAX_BATCH 128

/* Finished sequences kept for their KV caches, so a new prompt that
 * starts like one of them need not compute that part again: at most this
 * many, holding at most this many bytes. */
#define MODEL_RETIRED_MAX       4
#define MODEL_RETIRED_MAX_BYTES (512u << 20)

struct engine_model {
    gguf_file *file;
    model_config cfg;
    model_matrix token_embd, output; /* output aliases token_embd when tied */
    const float *output_norm;
    const float *rope_freqs; /* [n_rot / 2] per-frequency divisors, or NULL */
    model_layer *layers;     /* [n_layer] */
    tokenizer *tok;          /* NULL for a model opened without one (tests) */
    chat_format chat;
    engine_info info;
    uint32_t n_ctx; /* a sequence's capacity */
    const kernels *k;
    pool *workers;
    model_work work;
    pthread_mutex_t forward_lock; /* one pass at a time: guards work and the
                                     KV caches being read for prefix reuse */
    pthread_mutex_t seqs_lock;    /* guards seqs and the retired counts */
    engine_seq *seqs;             /* live and retired sequences, newest first */
    size_t n_retired;
    size_t retired_bytes;
    uint64_t reused_tokens; /* positions copied by prefix reuse, under seqs_lock */
};

/* Reads the config and maps the weights of an open file; checks every
 * tensor's presence, shape and type (sentences name the tensor). Does not
 * read the tokenizer. *out: model_close (which leaves the file open). */
int model_open(gguf_file *f, const engine_opts *opts, engine_model **out, mlx_err *err);

/* The architecture ("llama", "qwen2"; MLX_EINVAL for another) and its
 * hyper-parameters, from f's metadata. */
int model_read_config(const gguf_file *f, const char **arch, model_config *c,
                      mlx_err *err);

/* How the weights are stored, as llama.cpp names a file's type ("Q4_K_M",
 * "Q8_0", "F16"): general.file_type, else the type of most weight bytes
 * (describe.c). A static string. */
const char *model_quantization(const gguf_file *f);

/* The name, chat format and quantization of the model in f, into info. */
void model_read_identity(const gguf_file *f, engine_info *info, chat_format *chat);
void model_close(engine_model *m);

/* One sequence's state. */
struct engine_seq {
    engine_model *m;
    uint32_t len;      /* positions filled */
    bool has_logits;   /* logits hold the last fed token's */
    bool retired;      /* freed by its owner, kept for prefix reuse */
    uint16_t *k_cache; /* [n_layer][n_ctx][n_head_kv * head_dim] F16 */
    uint16_t *v_cache; /* same */
    int32_t *tokens;   /* [n_ctx] the id at each filled position */
    float *logits;     /* [n_vocab] */
    size_t bytes;      /* of all the above, for the retired budget */
    engine_seq *next;  /* in the model's list */
};

/* The workspace of a model, for max_batch tokens (model.c). */
int model_work_alloc(engine_model *m, mlx_err *err);
void model_work_free(engine_model *m);

/* One pass over the n tokens in m->work (ids, pos, seq filled by the
 * caller): writes their keys and values into their sequences' caches and
 * the logits of the tokens listed in want (n_want of them) into their
 * sequences. Under forward_lock. */
void model_forward_pass(engine_model *m, uint32_t n, uint32_t n_want);

/* Frees the retired sequences (model_close does). */
void model_seqs_free(engine_model *m);

/* Fills the start of an empty sequence with the longest prefix of ids that
 * another sequence of the model (live or retired) holds, leaving at least
 * the last id to compute; returns how many positions it filled. Under
 * forward_lock. */
uint32_t model_seq_reuse_prefix(engine_seq *s, const int32_t *ids, size_t n);

#endif
