/*
 * fuzz_model.c — the model loader and the forward pass on models built from
 * the fuzz input: dimensions, heads, tensor types and shapes, RoPE keys and
 * deliberate inconsistencies (a wrong shape, a missing tensor, a key of
 * the wrong type). Whatever model_open accepts must then run tokens
 * without reading or writing out of bounds; whatever it refuses must say
 * why.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "agent/engine/model.h"
#include "common/alloc.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

struct input {
    const uint8_t *p;
    size_t left;
    /* Tensor bytes the writer borrows until it writes the file. */
    void *owned[64];
    size_t n_owned;
};

static unsigned take(struct input *in, unsigned range)
{
    if (in->left == 0)
        return 0;
    in->left--;
    return *in->p++ % range;
}

static const ggml_type types[] = {GGML_TYPE_F32,  GGML_TYPE_F16,  GGML_TYPE_BF16,
                                  GGML_TYPE_Q8_0, GGML_TYPE_Q4_0, GGML_TYPE_Q4_K,
                                  GGML_TYPE_Q6_K, GGML_TYPE_Q5_K};

/* A tensor of shape [ne0, ne1] and type t with pseudo-random bytes. */
static void add_tensor(gguf_writer *w, struct input *in, const char *name, uint64_t ne0,
                       uint64_t ne1, ggml_type t)
{
    if (take(in, 32) == 0)
        return; /* now and then, a tensor is missing */
    if (take(in, 32) == 0)
        ne0 += 32; /* or has another shape */
    uint64_t ne[2] = {ne0, ne1};
    size_t row = quant_row_bytes(t, ne0);
    if (row == 0) {
        t = GGML_TYPE_F32;
        row = ne0 * 4;
    }
    size_t n = row * ne1;
    uint8_t *bytes = mlx_malloc(n > 0 ? n : 1);
    if (bytes == NULL)
        return;
    for (size_t i = 0; i < n; i++)
        bytes[i] = (uint8_t)(i * 131 + 7);
    /* Scales of quantized blocks stay finite: halves with small exponents. */
    if (t != GGML_TYPE_F32)
        for (size_t i = 1; i < n; i += 2)
            bytes[i] &= 0x3b;
    else
        for (size_t i = 3; i < n; i += 4)
            bytes[i] = 0x3c;
    gguf_writer_add_tensor(w, name, t, 2, ne, bytes, n, NULL);
    if (in->n_owned < sizeof in->owned / sizeof in->owned[0])
        in->owned[in->n_owned++] = bytes;
    else
        mlx_free(bytes); /* never: a model here has at most 3 + 2 * 11 tensors */
}

static void build(gguf_writer *w, struct input *in)
{
    bool qwen = take(in, 2);
    const char *arch = qwen ? "qwen2" : "llama";
    uint32_t head_dim = 2 * (1 + take(in, 8)), n_head = 1 + take(in, 4);
    uint32_t n_kv = 1 + take(in, n_head), n_embd = head_dim * n_head;
    uint32_t n_ff = 32 * (1 + take(in, 3)), n_layer = 1 + take(in, 2);
    uint32_t n_vocab = 1 + take(in, 40);
    ggml_type t = types[take(in, sizeof types / sizeof types[0])];
    char key[64];
    gguf_writer_set_str(w, "general.architecture", take(in, 64) ? arch : "gpt2", NULL);
#define KEY(s) (snprintf(key, sizeof key, "%s." s, arch), key)
    gguf_writer_set_u32(w, KEY("embedding_length"), n_embd, NULL);
    gguf_writer_set_u32(w, KEY("block_count"), n_layer, NULL);
    gguf_writer_set_u32(w, KEY("feed_forward_length"), n_ff, NULL);
    gguf_writer_set_u32(w, KEY("attention.head_count"), n_head, NULL);
    gguf_writer_set_u32(w, KEY("attention.head_count_kv"), n_kv, NULL);
    gguf_writer_set_u32(w, KEY("context_length"), 1 + take(in, 64), NULL);
    if (take(in, 4) == 0)
        gguf_writer_set_u32(w, KEY("rope.dimension_count"), take(in, 40), NULL);
    if (take(in, 4) == 0)
        gguf_writer_set_f32(w, KEY("rope.freq_base"), (float)take(in, 3) * 5000.0f, NULL);
    if (take(in, 8) == 0)
        gguf_writer_set_str(w, KEY("rope.scaling.type"), take(in, 2) ? "linear" : "yarn",
                            NULL);
    if (take(in, 8) == 0)
        gguf_writer_set_f32(w, KEY("rope.scaling.factor"), (float)take(in, 5), NULL);
    if (take(in, 16) == 0)
        gguf_writer_set_str(w, KEY("attention.layer_norm_rms_epsilon"), "oops", NULL);
#undef KEY
    /* Quantized rows need whole blocks: widths that are not fall to F32. */
    add_tensor(w, in, "token_embd.weight", n_embd, n_vocab, t);
    add_tensor(w, in, "output_norm.weight", n_embd, 1, GGML_TYPE_F32);
    if (take(in, 2))
        add_tensor(w, in, "output.weight", n_embd, n_vocab, t);
    for (uint32_t l = 0; l < n_layer; l++) {
        char name[64];
#define T(s, a, b, ty)                                                                   \
    (snprintf(name, sizeof name, "blk.%u." s, l), add_tensor(w, in, name, a, b, ty))
        T("attn_norm.weight", n_embd, 1, GGML_TYPE_F32);
        T("attn_q.weight", n_embd, n_head * head_dim, t);
        T("attn_k.weight", n_embd, n_kv * head_dim, t);
        T("attn_v.weight", n_embd, n_kv * head_dim, t);
        T("attn_output.weight", n_head * head_dim, n_embd, t);
        if (qwen) {
            T("attn_q.bias", n_head * head_dim, 1, GGML_TYPE_F32);
            T("attn_k.bias", n_kv * head_dim, 1, GGML_TYPE_F32);
            T("attn_v.bias", n_kv * head_dim, 1, GGML_TYPE_F32);
        }
        T("ffn_norm.weight", n_embd, 1, GGML_TYPE_F32);
        T("ffn_gate.weight", n_embd, n_ff, t);
        T("ffn_up.weight", n_embd, n_ff, t);
        T("ffn_down.weight", n_ff, n_embd, t);
#undef T
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct input in = {.p = data, .left = size};
    gguf_writer *w;
    if (gguf_writer_new(&w, NULL) != 0)
        return 0;
    build(w, &in);
    void *bytes = NULL;
    size_t len = 0;
    int rc = gguf_writer_to_mem(w, &bytes, &len, NULL);
    gguf_writer_free(w);
    for (size_t i = 0; i < in.n_owned; i++)
        mlx_free(in.owned[i]);
    if (rc != 0)
        return 0;
    gguf_file *f = NULL;
    engine_model *m = NULL;
    mlx_err err;
    mlx_err_clear(&err);
    engine_opts o = {.threads = 1 + (int)take(&in, 2), .n_ctx = 8};
    if (gguf_open_mem(bytes, len, &f, NULL) == 0 && model_open(f, &o, &m, &err) == 0) {
        engine_seq *s;
        if (engine_seq_new(m, &s, NULL) == 0) {
            int32_t ids[6];
            for (size_t i = 0; i < 6; i++)
                ids[i] = (int32_t)take(&in, m->cfg.n_vocab + 2) - 1; /* some invalid */
            engine_seq_feed(s, ids, 6, NULL);
            engine_seq_feed(s, ids, 6, NULL); /* past the context: refused */
            engine_seq_free(s);
        }
        model_close(m);
    } else if (f != NULL && err.msg[0] == '\0') {
        abort(); /* a refusal must say why */
    }
    gguf_close(f);
    mlx_free(bytes);
    return 0;
}
