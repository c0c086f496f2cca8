/*
 * engine.h — GGUF llama-family inference, the one header the rest of the
 * agent uses: load a model, turn text into tokens and back, run sequences
 * through the model, pick the next token; and the `mlx-agent run` and
 * `mlx-agent model synth` commands.
 *
 * A model is config + read-only weights (mapped from the GGUF file) +
 * tokenizer + chat format. A sequence is one conversation's state: its KV
 * cache and position. Feeding tokens to a sequence runs the model over
 * them; the logits of the last one are then ready for a sampler, which
 * owns its seeded random state, so the same seed and input give the same
 * output.
 *
 * Lifecycle:
 *   1. engine_load maps the file and checks every tensor the architecture
 *      needs against its expected shape and a supported type.
 *   2. engine_seq_new per conversation; engine_seq_feed any number of times
 *      (prompt, then one sampled token at a time) while the context lasts.
 *   3. engine_seq_free every sequence, then engine_free the model.
 *
 * Thread safety: a loaded model is immutable and may be shared by threads;
 * a sequence, a sampler, a decoder and a stop matcher each belong to one
 * caller at a time. A forward pass runs on the model's own worker threads
 * (engine_opts.threads); engine_seq_feed blocks until it is done, and two
 * sequences of one model may be fed from two threads at once.
 */
#ifndef MLX_AGENT_ENGINE_ENGINE_H
#define MLX_AGENT_ENGINE_ENGINE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/config.h"
#include "common/err.h"

/* The engine's commands (run, model synth), NULL-terminated. */
extern const mlx_cmd *const engine_cmds[];

/* ---- models ------------------------------------------------------------- */

typedef struct engine_model engine_model;

typedef struct engine_opts {
    int threads;    /* worker threads for a forward pass; 0: one per performance
                       (or physical) core */
    uint32_t n_ctx; /* tokens a sequence may hold; 0: the model's own context
                       length, capped at ENGINE_DEFAULT_CTX */
} engine_opts;

/* What engine_opts.n_ctx = 0 allows at most: a KV cache for a model's full
 * context (128k for Llama 3) would be gigabytes per sequence. */
#define ENGINE_DEFAULT_CTX 4096

typedef struct engine_info {
    const char *arch;        /* "llama", "qwen2" (static, as are the strings below) */
    char name[128];          /* general.name, or ""; a copy of info is whole */
    const char *chat_format; /* "chatml", "llama3", … (see engine_chat_prompt) */
    bool chat_template;      /* the model has a chat template (a chat model) */
    const char *quantization; /* as llama.cpp names a file's type: "Q4_K_M", "F16" */
    uint32_t n_vocab, n_ctx_train, n_ctx;
    uint32_t n_embd, n_layer, n_head, n_head_kv, n_ff;
    uint64_t n_params;     /* elements of all weight tensors */
    uint64_t weight_bytes; /* bytes of all weight tensors, as stored */
    uint64_t seq_bytes;    /* memory one sequence takes (KV cache of n_ctx) */
    uint64_t work_bytes;   /* memory of the model's forward-pass workspace */
    int32_t bos, eos;      /* -1 when the vocabulary has none */
    int threads;           /* of a forward pass */
    const char *kernels;   /* the arithmetic path: "avx2", "neon", "scalar" */
} engine_info;

/* Maps and checks the GGUF file at path. Errors say what is wrong with the
 * file ("tensor 'blk.0.attn_q.weight' has shape [64, 32], expected [64,
 * 64]", "architecture 'gpt2' is not supported; llama and qwen2 are"):
 * MLX_ENOENT, MLX_EIO, MLX_ECORRUPT, MLX_EINVAL, MLX_ENOMEM. *out:
 * engine_free. */
int engine_load(const char *path, const engine_opts *opts, engine_model **out,
                mlx_err *err);
void engine_free(engine_model *m);

/* Borrowed; lives as long as m. */
const engine_info *engine_model_info(const engine_model *m);

/* What the GGUF file at path holds, from its metadata and tensor table
 * alone — no tokenizer, no workspace, so listing many models stays fast:
 * arch, name, chat format, quantization, the sizes, n_ctx_train, n_params
 * and weight_bytes (of all its tensors); n_ctx, threads, kernels and the
 * memory figures stay 0, bos and eos -1. Errors as engine_load's. */
int engine_describe(const char *path, engine_info *out, mlx_err *err);

/* A parameter count as Ollama writes it: "8.0B", "134.52M", "7B", "260K". */
void engine_format_params(uint64_t n, char *out, size_t size);

/* ---- text --------------------------------------------------------------- */

/* Encodes len bytes of text. add_bos prepends BOS when the model uses one;
 * parse_special matches special tokens (<|eot_id|>, …) written in the text.
 * *ids: mlx_free. */
int engine_tokenize(const engine_model *m, const char *text, size_t len, bool add_bos,
                    bool parse_special, int32_t **ids, size_t *n, mlx_err *err);

/* Decodes ids to text (control tokens give nothing). *out: mlx_free. */
int engine_detokenize(const engine_model *m, const int32_t *ids, size_t n, char **out,
                      size_t *len, mlx_err *err);

/* The bytes token id stands for (may be part of a UTF-8 character; control
 * tokens give ""), borrowed from the model: what OpenAI's logprobs call a
 * token. *len gets its length. */
const char *engine_token_piece(const engine_model *m, int32_t id, size_t *len);

/* True when id ends generation (EOS, EOT, a chat format's end of turn). */
bool engine_is_eog(const engine_model *m, int32_t id);

/* Streaming decoding: text as tokens arrive, never splitting a UTF-8
 * character across two pushes. */
typedef struct engine_decoder {
    bool started;    /* the first piece has been seen (SentencePiece's leading
                        space is dropped there) */
    char pending[8]; /* bytes of an unfinished UTF-8 character */
    size_t n_pending;
} engine_decoder;

void engine_decoder_init(engine_decoder *d);
/* Appends the text id completes to out (cap bytes; ENGINE_MAX_PIECE always
 * suffices) and sets *n. */
int engine_decoder_push(const engine_model *m, engine_decoder *d, int32_t id, char *out,
                        size_t cap, size_t *n, mlx_err *err);
/* What is still pending at the end; invalid bytes become U+FFFD. */
size_t engine_decoder_flush(engine_decoder *d, char *out, size_t cap);

#define ENGINE_MAX_PIECE 512

/* ---- chat --------------------------------------------------------------- */

typedef struct engine_msg {
    const char *role; /* "system", "user" or "assistant" */
    const char *content;
} engine_msg;

/* Renders messages in the model's chat format (detected from
 * tokenizer.chat_template by its markers, never run as code; ChatML when
 * there is none or it is not recognised). add_assistant opens the
 * assistant's turn. The BOS text is not included: tokenize with add_bos.
 * MLX_EINVAL with a sentence for an unknown role or a format's rule broken.
 * *out: mlx_free. */
int engine_chat_prompt(const engine_model *m, const engine_msg *msgs, size_t n,
                       bool add_assistant, char **out, mlx_err *err);

/* ---- sequences ---------------------------------------------------------- */

typedef struct engine_seq engine_seq;

/* A sequence with an empty KV cache (F16) of opts.n_ctx tokens. *out:
 * engine_seq_free, which keeps a few finished sequences' caches for
 * prefix reuse (within a memory budget) until the model is freed. */
int engine_seq_new(engine_model *m, engine_seq **out, mlx_err *err);
void engine_seq_free(engine_seq *s);

/* Runs the model over n tokens at the sequence's next positions (one item
 * of engine_feed_batch).
 * MLX_EINVAL for an id outside the vocabulary, MLX_ETOOBIG when the
 * context would overflow (the sentence says by how much); the sequence is
 * unchanged after a failure. */
int engine_seq_feed(engine_seq *s, const int32_t *ids, size_t n, mlx_err *err);

/* Several sequences of one model fed together: each item's tokens at its
 * sequence's next positions. The tokens of all items go through the model
 * in shared passes, so every weight is read once for all of them: sixteen
 * sequences decoding one token each cost little more than one. Afterwards
 * each sequence's logits are those of its own last token. The sequences
 * must be distinct; every item is checked first, and after a failure no
 * sequence has changed.
 *
 * A sequence fed while empty starts with the longest stretch of its tokens
 * that another sequence of the model holds, live or recently freed, copied
 * instead of computed. */
typedef struct engine_batch_item {
    engine_seq *seq;
    const int32_t *ids;
    size_t n;
} engine_batch_item;

int engine_feed_batch(engine_model *m, const engine_batch_item *items, size_t n,
                      mlx_err *err);

/* The logits after the last token fed: n_vocab floats, borrowed until the
 * next feed. NULL before the first feed. */
const float *engine_seq_logits(const engine_seq *s);

/* Tokens the sequence holds. */
uint32_t engine_seq_len(const engine_seq *s);

/* Forgets everything from position pos on (0 empties it), so a prompt that
 * shares a prefix with what the cache holds is not computed again. */
void engine_seq_truncate(engine_seq *s, uint32_t pos);

/* ---- sampling ----------------------------------------------------------- */

typedef struct engine_sampling {
    float temperature;     /* 0: greedy (argmax of the logits after the
                              penalties; ties to the lower id) */
    int32_t top_k;         /* 0: off */
    float top_p;           /* 1: off */
    float min_p;           /* 0: off */
    float repeat_penalty;  /* 1: off; over the last repeat_last_n tokens */
    int32_t repeat_last_n; /* 0: off */
    float presence_penalty, frequency_penalty; /* 0: off */
    uint64_t seed;
} engine_sampling;

/* temperature 0.8, top_k 40, top_p 0.95, min_p 0.05, no repeat penalty
 * (1.0, over the last 64 tokens when set), no presence or frequency
 * penalty, seed 0: llama.cpp's defaults. (Ollama's API defaults differ:
 * top_p 0.9, repeat_penalty 1.1; its endpoints set those.) */
engine_sampling engine_sampling_defaults(void);

typedef struct engine_sampler engine_sampler;

/* MLX_EINVAL with a sentence that names the parameter out of range
 * (negative temperature, top_p outside [0, 1], …), or 0. */
int engine_sampling_check(const engine_sampling *p, mlx_err *err);

/* MLX_EINVAL as engine_sampling_check says, or for n_vocab out of range.
 * *out: engine_sampler_free. */
int engine_sampler_new(const engine_sampling *p, uint32_t n_vocab, engine_sampler **out,
                       mlx_err *err);
void engine_sampler_free(engine_sampler *s);

/* Picks the next token from logits (n_vocab floats, left unchanged) and
 * remembers it for the penalties. *logprob (may be NULL) gets its log
 * probability under the model's distribution (the softmax of the logits
 * before penalties, temperature and filters). */
int32_t engine_sampler_sample(engine_sampler *s, const float *logits, float *logprob);

/* Remembers a token the sampler did not pick (the prompt's), for the
 * penalties. */
void engine_sampler_accept(engine_sampler *s, int32_t id);

typedef struct engine_logprob {
    int32_t id;
    float logprob;
} engine_logprob;

/* The k most likely tokens under softmax(logits), most likely first (ties
 * to the lower id); returns how many were written (at most k). */
size_t engine_top_logprobs(const float *logits, uint32_t n_vocab, size_t k,
                           engine_logprob *out);

/* ---- stop strings ------------------------------------------------------- */

/* Watches generated text for stop strings. Text that could still be the
 * start of one is held back; text that is certainly not is released; when
 * one completes, what came before it is released and generation stops. */
typedef struct engine_stop engine_stop;

/* stops: n strings (copied; empty ones are ignored). *out: engine_stop_free. */
int engine_stop_new(const char *const *stops, size_t n, engine_stop **out, mlx_err *err);
void engine_stop_free(engine_stop *st);

/* Takes len bytes of new text; appends what may be shown to out (which
 * holds len + the longest stop string) and sets *n. Returns true when a
 * stop string completed: nothing after it is released, ever. */
bool engine_stop_push(engine_stop *st, const char *text, size_t len, char *out,
                      size_t *n);
/* At the end of generation: what was held back (no stop came). */
size_t engine_stop_flush(engine_stop *st, char *out);

#endif
