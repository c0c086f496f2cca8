/*
 * model.c — from a parsed GGUF file to a model the forward pass can run:
 * the architecture's hyper-parameters from its metadata keys, and a view of
 * every weight tensor, each checked for presence, shape and a type the
 * engine computes with, so a bad file fails here with a sentence and never
 * in the middle of a forward pass.
 *
 * Metadata keys are prefixed by the architecture: llama.embedding_length,
 * qwen2.attention.head_count, … The two supported architectures share the
 * graph; qwen2 adds Q/K/V biases and rotates halves of each head (NeoX
 * RoPE) where llama rotates adjacent pairs.
 */
#include <stdio.h>
#include <string.h>

#include "agent/engine/model.h"
#include "common/alloc.h"
#include "common/limits.h"

/* "llama" + ".block_count" */
static void key_of(const char *arch, const char *suffix, char *out, size_t size)
{
    snprintf(out, size, "%s.%s", arch, suffix);
}

/* Reads a u32 hyper-parameter; absent is an error when required, else *out
 * keeps its default. */
static int read_u32(const gguf_file *f, const char *arch, const char *suffix,
                    bool required, uint32_t max, uint32_t *out, mlx_err *err)
{
    char key[128];
    key_of(arch, suffix, key, sizeof key);
    int rc = gguf_get_u32(f, key, out, err);
    if (rc == MLX_ENOENT && !required)
        return 0;
    if (rc == MLX_ENOENT)
        return mlx_err_set(err, MLX_ECORRUPT, "the model has no '%s'; it is incomplete",
                           key);
    if (rc != 0)
        return rc;
    if (*out == 0 || *out > max)
        return mlx_err_set(err, MLX_ECORRUPT, "'%s' is %u; it must be from 1 to %u", key,
                           *out, max);
    return 0;
}

static int read_f32(const gguf_file *f, const char *arch, const char *suffix, float *out,
                    mlx_err *err)
{
    char key[128];
    key_of(arch, suffix, key, sizeof key);
    int rc = gguf_get_f32(f, key, out, err);
    return rc == MLX_ENOENT ? 0 : rc;
}

static int read_rope_scaling(const gguf_file *f, const char *arch, model_config *c,
                             mlx_err *err)
{
    char key[128];
    gguf_str type = {"none", 4};
    key_of(arch, "rope.scaling.type", key, sizeof key);
    int rc = gguf_get_str(f, key, &type, err);
    if (rc != 0 && rc != MLX_ENOENT)
        return rc;
    float factor = 1.0f;
    if ((rc = read_f32(f, arch, "rope.scaling.factor", &factor, err)) != 0)
        return rc;
    if (gguf_str_eq(type, "none") || factor == 1.0f) {
        /* An older key says the same as linear scaling. */
        float scale = 1.0f;
        if ((rc = read_f32(f, arch, "rope.scale_linear", &scale, err)) != 0)
            return rc;
        c->rope_scale = scale > 0 ? 1.0f / scale : 1.0f;
        return 0;
    }
    if (!gguf_str_eq(type, "linear")) {
        char shown[64];
        return mlx_err_set(err, MLX_EINVAL,
                           "RoPE scaling '%s' is not supported (none and linear are)",
                           gguf_show_str(type, shown));
    }
    if (!(factor > 0))
        return mlx_err_set(err, MLX_ECORRUPT, "'%s.rope.scaling.factor' must be positive",
                           arch);
    c->rope_scale = 1.0f / factor;
    return 0;
}

static int read_config(const gguf_file *f, const char *arch, model_config *c,
                       mlx_err *err)
{
    memset(c, 0, sizeof *c);
    c->rope_base = 10000.0f;
    c->rms_eps = strcmp(arch, "qwen2") == 0 ? 1e-6f : 1e-5f;
    c->rope = strcmp(arch, "qwen2") == 0 ? ROPE_NEOX : ROPE_NORM;
    c->n_ctx_train = 2048;
    int rc;
    if ((rc = read_u32(f, arch, "embedding_length", true, MLX_MAX_MODEL_EMBD, &c->n_embd,
                       err)) != 0 ||
        (rc = read_u32(f, arch, "block_count", true, MLX_MAX_MODEL_LAYERS, &c->n_layer,
                       err)) != 0 ||
        (rc = read_u32(f, arch, "feed_forward_length", true, MLX_MAX_MODEL_FF, &c->n_ff,
                       err)) != 0 ||
        (rc = read_u32(f, arch, "attention.head_count", true, MLX_MAX_MODEL_HEADS,
                       &c->n_head, err)) != 0 ||
        (rc = read_u32(f, arch, "context_length", false, MLX_MAX_MODEL_CTX,
                       &c->n_ctx_train, err)) != 0)
        return rc;
    c->n_head_kv = c->n_head;
    c->head_dim = c->n_embd / c->n_head;
    uint32_t value_dim = 0;
    if ((rc = read_u32(f, arch, "attention.head_count_kv", false, MLX_MAX_MODEL_HEADS,
                       &c->n_head_kv, err)) != 0 ||
        (rc = read_u32(f, arch, "attention.key_length", false, MLX_MAX_MODEL_EMBD,
                       &c->head_dim, err)) != 0 ||
        (rc = read_u32(f, arch, "attention.value_length", false, MLX_MAX_MODEL_EMBD,
                       &value_dim, err)) != 0)
        return rc;
    if (value_dim != 0 && value_dim != c->head_dim)
        return mlx_err_set(err, MLX_EINVAL,
                           "heads with keys of %u and values of %u dimensions are not "
                           "supported",
                           c->head_dim, value_dim);
    if (c->head_dim == 0 || c->head_dim % 2 != 0)
        return mlx_err_set(
            err, MLX_ECORRUPT,
            "a head of %u dimensions (%u wide, %u heads) cannot be rotated", c->head_dim,
            c->n_embd, c->n_head);
    if (c->n_head % c->n_head_kv != 0)
        return mlx_err_set(err, MLX_ECORRUPT,
                           "%u attention heads cannot share %u key/value heads evenly",
                           c->n_head, c->n_head_kv);
    c->n_rot = c->head_dim;
    if ((rc = read_u32(f, arch, "rope.dimension_count", false, c->head_dim, &c->n_rot,
                       err)) != 0)
        return rc;
    if (c->n_rot % 2 != 0)
        return mlx_err_set(err, MLX_ECORRUPT, "'%s.rope.dimension_count' is odd (%u)",
                           arch, c->n_rot);
    if ((rc = read_f32(f, arch, "rope.freq_base", &c->rope_base, err)) != 0 ||
        (rc = read_f32(f, arch, "attention.layer_norm_rms_epsilon", &c->rms_eps, err)) !=
            0)
        return rc;
    if (!(c->rope_base > 0) || !(c->rms_eps > 0) || c->rms_eps > 1)
        return mlx_err_set(
            err, MLX_ECORRUPT,
            "rope.freq_base (%g) and the RMS epsilon (%g) must be positive",
            (double)c->rope_base, (double)c->rms_eps);
    return read_rope_scaling(f, arch, c, err);
}

static int find(const gguf_file *f, const char *name, const gguf_tensor **out,
                mlx_err *err)
{
    *out = gguf_find_tensor(f, name);
    if (*out == NULL)
        return mlx_err_set(err, MLX_ECORRUPT, "the model has no tensor '%s'", name);
    return 0;
}

static int check_shape(const gguf_tensor *t, const char *name, uint64_t ne0, uint64_t ne1,
                       mlx_err *err)
{
    bool ok = t->ne[0] == ne0 && t->ne[1] == ne1;
    for (uint32_t d = 2; d < GGUF_MAX_DIMS; d++)
        ok = ok && t->ne[d] == 1;
    if (!ok)
        return mlx_err_set(err, MLX_ECORRUPT,
                           "tensor '%s' has shape [%llu, %llu], expected [%llu, %llu]",
                           name, (unsigned long long)t->ne[0],
                           (unsigned long long)t->ne[1], (unsigned long long)ne0,
                           (unsigned long long)ne1);
    return 0;
}

/* A weight matrix of rows x cols in any supported type. */
static int get_matrix(engine_model *m, const char *name, uint32_t cols, uint32_t rows,
                      model_matrix *out, mlx_err *err)
{
    const gguf_tensor *t;
    int rc = find(m->file, name, &t, err);
    if (rc == 0)
        rc = check_shape(t, name, cols, rows, err);
    if (rc != 0)
        return rc;
    if (!ggml_type_supported(t->type))
        return mlx_err_set(err, MLX_EINVAL,
                           "tensor '%s' is %s, which the engine cannot compute with; it "
                           "supports F32, F16, BF16, Q8_0, Q4_0, Q4_K and Q6_K",
                           name, ggml_type_name(t->type));
    if ((rc = quant_check_row(t->type, cols, false, err)) != 0)
        return mlx_err_prefix(err, MLX_ECORRUPT, "tensor '%s'", name);
    out->data = t->data;
    out->type = t->type;
    out->cols = cols;
    out->rows = rows;
    out->row_bytes = quant_row_bytes(t->type, cols);
    out->ops = quant_ops_get(t->type);
    m->info.n_params += (uint64_t)cols * rows;
    m->info.weight_bytes += t->nbytes;
    return 0;
}

/* A vector of n floats (norm weights, biases). */
static int get_vector(engine_model *m, const char *name, uint32_t n, bool required,
                      const float **out, mlx_err *err)
{
    const gguf_tensor *t = gguf_find_tensor(m->file, name);
    *out = NULL;
    if (t == NULL && !required)
        return 0;
    int rc = find(m->file, name, &t, err);
    if (rc == 0)
        rc = check_shape(t, name, n, 1, err);
    if (rc != 0)
        return rc;
    if (t->type != GGML_TYPE_F32)
        return mlx_err_set(err, MLX_EINVAL, "tensor '%s' is %s; vectors must be F32",
                           name, ggml_type_name(t->type));
    if (((uintptr_t)t->data & (sizeof(float) - 1)) != 0)
        return mlx_err_set(err, MLX_ECORRUPT, "tensor '%s' is not aligned for floats",
                           name);
    *out = t->data;
    m->info.n_params += n;
    m->info.weight_bytes += t->nbytes;
    return 0;
}

static int get_layer(engine_model *m, uint32_t i, mlx_err *err)
{
    const model_config *c = &m->cfg;
    model_layer *l = &m->layers[i];
    uint32_t q_dim = c->n_head * c->head_dim, kv_dim = c->n_head_kv * c->head_dim;
    bool biases = strcmp(m->info.arch, "qwen2") == 0;
    char name[96];
#define NAME(suffix) (snprintf(name, sizeof name, "blk.%u." suffix, i), name)
    int rc;
    if ((rc = get_vector(m, NAME("attn_norm.weight"), c->n_embd, true, &l->attn_norm,
                         err)) != 0 ||
        (rc = get_matrix(m, NAME("attn_q.weight"), c->n_embd, q_dim, &l->wq, err)) != 0 ||
        (rc = get_matrix(m, NAME("attn_k.weight"), c->n_embd, kv_dim, &l->wk, err)) !=
            0 ||
        (rc = get_matrix(m, NAME("attn_v.weight"), c->n_embd, kv_dim, &l->wv, err)) !=
            0 ||
        (rc = get_matrix(m, NAME("attn_output.weight"), q_dim, c->n_embd, &l->wo, err)) !=
            0 ||
        (rc = get_vector(m, NAME("attn_q.bias"), q_dim, biases, &l->bq, err)) != 0 ||
        (rc = get_vector(m, NAME("attn_k.bias"), kv_dim, biases, &l->bk, err)) != 0 ||
        (rc = get_vector(m, NAME("attn_v.bias"), kv_dim, biases, &l->bv, err)) != 0 ||
        (rc = get_vector(m, NAME("ffn_norm.weight"), c->n_embd, true, &l->ffn_norm,
                         err)) != 0 ||
        (rc = get_matrix(m, NAME("ffn_gate.weight"), c->n_embd, c->n_ff, &l->w_gate,
                         err)) != 0 ||
        (rc = get_matrix(m, NAME("ffn_up.weight"), c->n_embd, c->n_ff, &l->w_up, err)) !=
            0 ||
        (rc = get_matrix(m, NAME("ffn_down.weight"), c->n_ff, c->n_embd, &l->w_down,
                         err)) != 0)
        return rc;
#undef NAME
    return 0;
}

static int get_weights(engine_model *m, mlx_err *err)
{
    const model_config *c = &m->cfg;
    int rc =
        get_matrix(m, "token_embd.weight", c->n_embd, c->n_vocab, &m->token_embd, err);
    if (rc == 0)
        rc = get_vector(m, "output_norm.weight", c->n_embd, true, &m->output_norm, err);
    if (rc == 0 && gguf_find_tensor(m->file, "output.weight") == NULL)
        m->output = m->token_embd; /* tied to the embedding */
    else if (rc == 0)
        rc = get_matrix(m, "output.weight", c->n_embd, c->n_vocab, &m->output, err);
    if (rc == 0)
        rc = get_vector(m, "rope_freqs.weight", c->n_rot / 2, false, &m->rope_freqs, err);
    for (uint32_t i = 0; rc == 0 && i < c->n_layer; i++)
        rc = get_layer(m, i, err);
    return rc;
}

void model_work_free(engine_model *m)
{
    model_work *w = &m->work;
    mlx_free(w->x);
    mlx_free(w->xb);
    mlx_free(w->x2);
    mlx_free(w->q);
    mlx_free(w->k);
    mlx_free(w->v);
    mlx_free(w->hb);
    mlx_free(w->hb2);
    mlx_free(w->act);
    mlx_free(w->scores);
    mlx_free(w->logits);
    mlx_free(w->rope);
    mlx_free(w->ids);
    mlx_free(w->pos);
    mlx_free(w->seq);
    mlx_free(w->want);
    memset(w, 0, sizeof *w);
}

/* Allocates one workspace buffer and counts it in w->bytes. */
static void *work_buffer(model_work *w, size_t bytes)
{
    w->bytes += bytes;
    return mlx_malloc(bytes);
}

int model_work_alloc(engine_model *m, mlx_err *err)
{
    const model_config *c = &m->cfg;
    model_work *w = &m->work;
    size_t B = MODEL_MAX_BATCH, q_dim = (size_t)c->n_head * c->head_dim;
    size_t kv_dim = (size_t)c->n_head_kv * c->head_dim;
    size_t widest = q_dim > c->n_embd ? q_dim : c->n_embd;
    size_t act_cols = widest > c->n_ff ? widest : c->n_ff;
    w->max_batch = MODEL_MAX_BATCH;
    /* F32 rows are the largest activation format (4 bytes an element). */
    w->act_part = B * act_cols * sizeof(float);
    w->x = work_buffer(w, B * c->n_embd * sizeof(float));
    w->xb = work_buffer(w, B * widest * sizeof(float));
    w->x2 = work_buffer(w, B * c->n_embd * sizeof(float));
    w->q = work_buffer(w, B * q_dim * sizeof(float));
    w->k = work_buffer(w, B * kv_dim * sizeof(float));
    w->v = work_buffer(w, B * kv_dim * sizeof(float));
    w->hb = work_buffer(w, B * c->n_ff * sizeof(float));
    w->hb2 = work_buffer(w, B * c->n_ff * sizeof(float));
    w->act = work_buffer(w, 3 * w->act_part);
    w->scores = work_buffer(w, (size_t)pool_threads(m->workers) * m->n_ctx * sizeof(float));
    w->logits = work_buffer(w, (size_t)MODEL_LOGIT_ROWS * c->n_vocab * sizeof(float));
    w->rope = work_buffer(w, B * c->n_rot * sizeof(float));
    w->ids = work_buffer(w, B * sizeof *w->ids);
    w->pos = work_buffer(w, B * sizeof *w->pos);
    w->seq = work_buffer(w, B * sizeof *w->seq);
    w->want = work_buffer(w, B * sizeof *w->want);
    if (w->x == NULL || w->xb == NULL || w->x2 == NULL || w->q == NULL || w->k == NULL ||
        w->v == NULL || w->hb == NULL || w->hb2 == NULL || w->act == NULL ||
        w->scores == NULL || w->logits == NULL || w->rope == NULL || w->ids == NULL ||
        w->pos == NULL || w->seq == NULL || w->want == NULL) {
        model_work_free(m);
        return mlx_err_set(err, MLX_ENOMEM, "out of memory for the model's workspace");
    }
    return 0;
}

void model_close(engine_model *m)
{
    if (m == NULL)
        return;
    model_seqs_free(m);
    model_work_free(m);
    pool_free(m->workers);
    pthread_mutex_destroy(&m->forward_lock);
    pthread_mutex_destroy(&m->seqs_lock);
    mlx_free(m->layers);
    mlx_free(m);
}

int model_read_config(const gguf_file *f, const char **arch, model_config *c,
                      mlx_err *err)
{
    gguf_str s;
    int rc = gguf_get_str(f, "general.architecture", &s, err);
    if (rc == MLX_ENOENT)
        return mlx_err_set(err, MLX_ECORRUPT,
                           "the model does not say its architecture "
                           "(general.architecture)");
    if (rc != 0)
        return rc;
    *arch = gguf_str_eq(s, "llama") ? "llama" : gguf_str_eq(s, "qwen2") ? "qwen2" : NULL;
    if (*arch == NULL) {
        char shown[64];
        return mlx_err_set(err, MLX_EINVAL,
                           "architecture '%s' is not supported; llama and qwen2 are",
                           gguf_show_str(s, shown));
    }
    return read_config(f, *arch, c, err);
}

int model_open(gguf_file *f, const engine_opts *opts, engine_model **out, mlx_err *err)
{
    *out = NULL;
    engine_model *m = mlx_calloc(1, sizeof *m);
    if (m == NULL)
        return mlx_err_set(err, MLX_ENOMEM, "out of memory");
    pthread_mutex_init(&m->forward_lock, NULL);
    pthread_mutex_init(&m->seqs_lock, NULL);
    m->file = f;
    m->k = kernels_get();
    int rc = model_read_config(f, &m->info.arch, &m->cfg, err);
    if (rc != 0) {
        model_close(m);
        return rc;
    }
    const gguf_tensor *embd = gguf_find_tensor(f, "token_embd.weight");
    if (embd == NULL || embd->ne[1] == 0 || embd->ne[1] > MLX_MAX_MODEL_VOCAB) {
        model_close(m);
        return mlx_err_set(err, MLX_ECORRUPT,
                           embd == NULL
                               ? "the model has no tensor 'token_embd.weight'"
                               : "the vocabulary of token_embd.weight is too large");
    }
    m->cfg.n_vocab = (uint32_t)embd->ne[1];
    m->layers = mlx_calloc(m->cfg.n_layer, sizeof *m->layers);
    int threads =
        opts != NULL && opts->threads > 0 ? opts->threads : pool_default_threads();
    if (m->layers == NULL)
        rc = mlx_err_set(err, MLX_ENOMEM, "out of memory");
    if (rc == 0)
        rc = get_weights(m, err);
    if (rc == 0)
        rc = pool_new(threads, &m->workers, err);
    if (rc != 0) {
        model_close(m);
        return rc;
    }
    uint32_t n_ctx = opts != NULL ? opts->n_ctx : 0;
    if (n_ctx == 0)
        n_ctx = m->cfg.n_ctx_train < ENGINE_DEFAULT_CTX ? m->cfg.n_ctx_train
                                                        : ENGINE_DEFAULT_CTX;
    if (n_ctx > MLX_MAX_MODEL_CTX) {
        model_close(m);
        return mlx_err_set(err, MLX_EINVAL, "a context of %u tokens is over the %u limit",
                           n_ctx, MLX_MAX_MODEL_CTX);
    }
    m->n_ctx = n_ctx;
    if ((rc = model_work_alloc(m, err)) != 0) {
        model_close(m);
        return rc;
    }
    const model_config *c = &m->cfg;
    m->info.n_vocab = c->n_vocab;
    m->info.n_ctx_train = c->n_ctx_train;
    m->info.n_ctx = n_ctx;
    m->info.n_embd = c->n_embd;
    m->info.n_layer = c->n_layer;
    m->info.n_head = c->n_head;
    m->info.n_head_kv = c->n_head_kv;
    m->info.n_ff = c->n_ff;
    size_t kv_dim = (size_t)c->n_head_kv * c->head_dim;
    m->info.seq_bytes = 2 * (uint64_t)c->n_layer * n_ctx * kv_dim * sizeof(uint16_t) +
                        (uint64_t)n_ctx * sizeof(int32_t) + (uint64_t)c->n_vocab * sizeof(float);
    m->info.work_bytes = m->work.bytes;
    m->info.threads = pool_threads(m->workers);
    m->info.kernels = m->k->name;
    m->info.bos = m->info.eos = -1;
    m->info.chat_format = "chatml";
    *out = m;
    return 0;
}
