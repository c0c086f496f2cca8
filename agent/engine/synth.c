/*
 * synth.c — writing a synthetic llama model: its metadata and its tensors.
 *
 * Tensors, with llama.cpp's names and shapes (ne0, the row length, first):
 *
 *   token_embd.weight         [dim, vocab]     type
 *   output_norm.weight        [dim]            F32
 *   output.weight             [dim, vocab]     type
 *   blk.N.attn_norm.weight    [dim]            F32
 *   blk.N.attn_q.weight       [dim, dim]       type
 *   blk.N.attn_k.weight       [dim, kv_dim]    type   kv_dim = dim / heads * kv_heads
 *   blk.N.attn_v.weight       [dim, kv_dim]    type
 *   blk.N.attn_output.weight  [dim, dim]       type
 *   blk.N.ffn_norm.weight     [dim]            F32
 *   blk.N.ffn_gate.weight     [dim, ff]        type
 *   blk.N.ffn_up.weight       [dim, ff]        type
 *   blk.N.ffn_down.weight     [ff, dim]        type
 *
 * Values: every matrix is uniform on [-a, a) with a = sqrt(3 / ne0), so
 * each has standard deviation 1/sqrt(row length) and a matrix-vector
 * product keeps its input's scale through the layers (the logits come out
 * with a spread of about 1, so sampling sees varied tokens); the norm
 * weights are 1 ± 0.1, not exactly 1, so a forward pass that forgets to
 * apply them gives different numbers.
 *
 * Each tensor draws from its own splitmix64 stream, seeded from the seed
 * and the tensor's name, so a tensor's values do not depend on the order of
 * writing nor on the other tensors' shapes. A value is k * (a / 2^23) for a
 * 24-bit integer k: one exactly rounded multiplication, the same on every
 * machine (this file is built with floating-point contraction off).
 */
#include <math.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "agent/engine/quant.h"
#include "agent/engine/synth.h"
#include "common/alloc.h"

void synth_config_default(synth_config *c)
{
    *c = (synth_config){
        .n_layers = 2,
        .dim = 128,
        .n_heads = 4,
        .n_kv_heads = 2,
        .ff = 384,
        .vocab = 512,
        .ctx = 2048,
        .type = GGML_TYPE_F32,
        .seed = 42,
    };
}

int synth_parse_type(const char *text, ggml_type *out, mlx_err *err)
{
    static const struct {
        const char *name;
        ggml_type type;
    } types[] = {{"f32", GGML_TYPE_F32},
                 {"f16", GGML_TYPE_F16},
                 {"bf16", GGML_TYPE_BF16},
                 {"q8_0", GGML_TYPE_Q8_0},
                 {"q4_0", GGML_TYPE_Q4_0}};
    for (size_t i = 0; i < sizeof types / sizeof types[0]; i++) {
        const char *a = text, *b = types[i].name;
        while (*a != '\0' && (*a == *b || (*a >= 'A' && *a <= 'Z' && (*a | 0x20) == *b)))
            a++, b++;
        if (*a == '\0' && *b == '\0') {
            *out = types[i].type;
            return 0;
        }
    }
    return mlx_err_set(
        err, MLX_EUSAGE,
        "'%s' is not a type synth writes; choose f32, f16, bf16, q8_0 or q4_0", text);
}

int synth_check(const synth_config *c, mlx_err *err)
{
    struct {
        const char *flag;
        uint32_t v, min, max;
    } bounds[] = {
        {"--layers", c->n_layers, 1, SYNTH_MAX_LAYERS},
        {"--dim", c->dim, 2, SYNTH_MAX_DIM},
        {"--heads", c->n_heads, 1, SYNTH_MAX_HEADS},
        {"--kv-heads", c->n_kv_heads, 1, SYNTH_MAX_HEADS},
        {"--ff", c->ff, 1, SYNTH_MAX_FF},
        {"--vocab", c->vocab, SYNTH_MIN_VOCAB, SYNTH_MAX_VOCAB},
        {"--ctx", c->ctx, 1, SYNTH_MAX_CTX},
    };
    for (size_t i = 0; i < sizeof bounds / sizeof bounds[0]; i++)
        if (bounds[i].v < bounds[i].min || bounds[i].v > bounds[i].max)
            return mlx_err_set(err, MLX_EUSAGE,
                               "%s %u is out of range; it must be %u to %u",
                               bounds[i].flag, bounds[i].v, bounds[i].min, bounds[i].max);
    if (c->dim % c->n_heads != 0)
        return mlx_err_set(err, MLX_EUSAGE,
                           "--dim %u is not divisible by --heads %u; each head takes an "
                           "equal share of the dimension",
                           c->dim, c->n_heads);
    if (c->n_heads % c->n_kv_heads != 0)
        return mlx_err_set(err, MLX_EUSAGE,
                           "--heads %u is not divisible by --kv-heads %u; each KV head "
                           "serves an equal group of query heads",
                           c->n_heads, c->n_kv_heads);
    if (c->dim / c->n_heads % 2 != 0)
        return mlx_err_set(err, MLX_EUSAGE,
                           "the head size --dim / --heads is %u; rotary embeddings need "
                           "an even head size",
                           c->dim / c->n_heads);
    const quant_ops *ops = quant_ops_get(c->type);
    if (ops == NULL || ops->quantize == NULL)
        return mlx_err_set(err, MLX_EUSAGE,
                           "--type %s cannot be written; choose f32, "
                           "f16, bf16, q8_0 or q4_0",
                           ggml_type_name(c->type));
    if (c->dim % ops->block_elems != 0 || c->ff % ops->block_elems != 0)
        return mlx_err_set(
            err, MLX_EUSAGE,
            "--type %s stores rows in blocks of %u elements, so --dim (%u) "
            "and --ff (%u) must be multiples of %u",
            ggml_type_name(c->type), ops->block_elems, c->dim, c->ff, ops->block_elems);
    return 0;
}

/* One tensor's stream of values. */
struct tensor_gen {
    char name[48];
    uint64_t ne[2]; /* row length, rows */
    uint32_t n_dims;
    ggml_type type;
    bool norm; /* 1 ± 0.1 instead of ±a */
    uint64_t state;
};

static uint64_t splitmix64(uint64_t *state)
{
    uint64_t z = (*state += 0x9e3779b97f4a7c15u);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9u;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebu;
    return z ^ (z >> 31);
}

static uint64_t fnv1a64(const char *s)
{
    uint64_t h = 0xcbf29ce484222325u;
    for (; *s != '\0'; s++)
        h = (h ^ (unsigned char)*s) * 0x100000001b3u;
    return h;
}

/* Makes the tensor's rows and hands them, converted, to the sink. */
static int fill_tensor(void *arg, gguf_sink *sink, mlx_err *err)
{
    struct tensor_gen *g = arg;
    size_t n = (size_t)g->ne[0], row_bytes = quant_row_bytes(g->type, n);
    float *row = mlx_malloc(n * sizeof *row);
    void *out = mlx_malloc(row_bytes);
    int rc = 0;
    if (row == NULL || out == NULL) {
        rc = mlx_err_set(err, MLX_ENOMEM, "out of memory");
        goto out;
    }
    uint64_t state = g->state; /* a second write gives the same bytes */
    float scale = g->norm ? 0.1f / 8388608.0f : sqrtf(3.0f / (float)n) / 8388608.0f;
    for (uint64_t r = 0; r < g->ne[1] && rc == 0; r++) {
        for (size_t i = 0; i < n; i++) {
            int32_t k = (int32_t)(splitmix64(&state) >> 40) - 8388608; /* [-2^23, 2^23) */
            float v = (float)k * scale;
            if (g->norm)
                v += 1.0f;
            row[i] = v;
        }
        if (quant_quantize_row(g->type, row, out, n) != 0)
            rc = mlx_err_set(err, MLX_EINTERNAL, "cannot convert a row to %s",
                             ggml_type_name(g->type));
        else
            rc = gguf_sink_write(sink, out, row_bytes, err);
    }
out:
    mlx_free(row);
    mlx_free(out);
    return rc;
}

static int add_gen(gguf_writer *w, struct tensor_gen *g, const synth_config *c,
                   const char *name, uint64_t ne0, uint64_t ne1, mlx_err *err)
{
    snprintf(g->name, sizeof g->name, "%s", name);
    g->ne[0] = ne0;
    g->ne[1] = ne1;
    g->n_dims = ne1 == 0 ? 1 : 2;
    g->norm = ne1 == 0;
    if (g->norm)
        g->ne[1] = 1;
    g->type = g->norm ? GGML_TYPE_F32 : c->type;
    g->state = c->seed ^ fnv1a64(name);
    return gguf_writer_add_tensor_fill(w, g->name, g->type, g->n_dims, g->ne, fill_tensor,
                                       g, err);
}

static int add_tensors(gguf_writer *w, struct tensor_gen *gens, const synth_config *c,
                       synth_stats *st, mlx_err *err)
{
    uint64_t dim = c->dim, kv_dim = (uint64_t)c->dim / c->n_heads * c->n_kv_heads;
    static const struct {
        const char *suffix;
        int in, out; /* 0: none (a norm), 1: dim, 2: kv_dim, 3: ff */
    } block[] = {{"attn_norm", 1, 0}, {"attn_q", 1, 1},      {"attn_k", 1, 2},
                 {"attn_v", 1, 2},    {"attn_output", 1, 1}, {"ffn_norm", 1, 0},
                 {"ffn_gate", 1, 3},  {"ffn_up", 1, 3},      {"ffn_down", 3, 1}};
    const uint64_t size_of[] = {0, dim, kv_dim, c->ff};
    size_t k = 0;
    int rc = add_gen(w, &gens[k++], c, "token_embd.weight", dim, c->vocab, err);
    if (rc == 0)
        rc = add_gen(w, &gens[k++], c, "output_norm.weight", dim, 0, err);
    if (rc == 0)
        rc = add_gen(w, &gens[k++], c, "output.weight", dim, c->vocab, err);
    for (uint32_t l = 0; l < c->n_layers && rc == 0; l++)
        for (size_t i = 0; i < sizeof block / sizeof block[0] && rc == 0; i++) {
            char name[48];
            snprintf(name, sizeof name, "blk.%u.%s.weight", l, block[i].suffix);
            rc = add_gen(w, &gens[k++], c, name, size_of[block[i].in],
                         size_of[block[i].out], err);
        }
    st->n_tensors = k;
    for (size_t i = 0; i < k; i++)
        st->n_params += gens[i].ne[0] * gens[i].ne[1];
    return rc;
}

/* llama.cpp's general.file_type numbers for the types synth writes. */
static uint32_t file_type_of(ggml_type t)
{
    switch (t) {
    case GGML_TYPE_F16:
        return 1;
    case GGML_TYPE_Q4_0:
        return 2;
    case GGML_TYPE_Q8_0:
        return 7;
    case GGML_TYPE_BF16:
        return 32;
    default:
        return 0; /* all F32 */
    }
}

static int add_metadata(gguf_writer *w, const synth_config *c, const synth_vocab *v,
                        mlx_err *err)
{
    char name[96];
    snprintf(name, sizeof name, "synthetic llama %uL-%ud-%s seed %llu", c->n_layers,
             c->dim, ggml_type_name(c->type), (unsigned long long)c->seed);
    int rc;
    if ((rc = gguf_writer_set_str(w, "general.architecture", "llama", err)) != 0 ||
        (rc = gguf_writer_set_str(w, "general.name", name, err)) != 0 ||
        (rc = gguf_writer_set_u32(w, "general.file_type", file_type_of(c->type), err)) !=
            0 ||
        (rc = gguf_writer_set_u32(w, "general.quantization_version", 2, err)) != 0 ||
        (rc = gguf_writer_set_u32(w, "llama.context_length", c->ctx, err)) != 0 ||
        (rc = gguf_writer_set_u32(w, "llama.embedding_length", c->dim, err)) != 0 ||
        (rc = gguf_writer_set_u32(w, "llama.block_count", c->n_layers, err)) != 0 ||
        (rc = gguf_writer_set_u32(w, "llama.feed_forward_length", c->ff, err)) != 0 ||
        (rc = gguf_writer_set_u32(w, "llama.attention.head_count", c->n_heads, err)) !=
            0 ||
        (rc = gguf_writer_set_u32(w, "llama.attention.head_count_kv", c->n_kv_heads,
                                  err)) != 0 ||
        (rc = gguf_writer_set_f32(w, "llama.attention.layer_norm_rms_epsilon", 1e-5f,
                                  err)) != 0 ||
        (rc = gguf_writer_set_u32(w, "llama.rope.dimension_count", c->dim / c->n_heads,
                                  err)) != 0 ||
        (rc = gguf_writer_set_f32(w, "llama.rope.freq_base", 10000.0f, err)) != 0 ||
        (rc = gguf_writer_set_u32(w, "llama.vocab_size", c->vocab, err)) != 0 ||
        (rc = gguf_writer_set_str(w, "tokenizer.ggml.model", "llama", err)) != 0 ||
        (rc = gguf_writer_set_arr_str(w, "tokenizer.ggml.tokens",
                                      (const char *const *)v->tokens, v->n, err)) != 0 ||
        (rc = gguf_writer_set_arr_f32(w, "tokenizer.ggml.scores", v->scores, v->n,
                                      err)) != 0 ||
        (rc = gguf_writer_set_arr_i32(w, "tokenizer.ggml.token_type", v->types, v->n,
                                      err)) != 0 ||
        (rc = gguf_writer_set_u32(w, "tokenizer.ggml.bos_token_id", 1, err)) != 0 ||
        (rc = gguf_writer_set_u32(w, "tokenizer.ggml.eos_token_id", 2, err)) != 0 ||
        (rc = gguf_writer_set_u32(w, "tokenizer.ggml.unknown_token_id", 0, err)) != 0 ||
        (rc = gguf_writer_set_bool(w, "tokenizer.ggml.add_bos_token", true, err)) != 0 ||
        (rc = gguf_writer_set_bool(w, "tokenizer.ggml.add_eos_token", false, err)) != 0)
        return rc;
    return 0;
}

int synth_write(const synth_config *c, const char *path, synth_stats *stats, mlx_err *err)
{
    synth_stats st = {0};
    synth_vocab vocab = {0};
    gguf_writer *w = NULL;
    struct tensor_gen *gens = NULL;
    int rc = synth_check(c, err);
    if (rc != 0)
        return rc;
    gens = mlx_calloc(3 + 9 * (size_t)c->n_layers, sizeof *gens);
    if (gens == NULL) {
        rc = mlx_err_set(err, MLX_ENOMEM, "out of memory");
        goto out;
    }
    if ((rc = synth_vocab_build(c->vocab, &vocab, err)) != 0 ||
        (rc = gguf_writer_new(&w, err)) != 0 ||
        (rc = add_metadata(w, c, &vocab, err)) != 0 ||
        (rc = add_tensors(w, gens, c, &st, err)) != 0 ||
        (rc = gguf_writer_write(w, path, err)) != 0)
        goto out;
    struct stat sb;
    if (stat(path, &sb) == 0)
        st.bytes = (uint64_t)sb.st_size;
    if (stats != NULL)
        *stats = st;
out:
    gguf_writer_free(w);
    synth_vocab_free(&vocab);
    mlx_free(gens);
    return rc;
}
