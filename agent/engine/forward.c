/*
 * forward.c — one token through a llama-family transformer, and the
 * sequences that hold what it leaves behind.
 *
 * For each layer, with x the residual stream of n_embd floats:
 *
 *   xb  = rmsnorm(x) * attn_norm
 *   q, k, v = Wq xb, Wk xb, Wv xb  (+ biases for qwen2); RoPE on q and k
 *   k, v -> the cache at this position
 *   xb  = for each head: softmax(q . k[0..pos] / sqrt(head_dim)) . v[0..pos],
 *         heads sharing their key/value head in groups (GQA)
 *   x  += Wo xb
 *   xb  = rmsnorm(x) * ffn_norm
 *   x  += W_down (silu(W_gate xb) * W_up xb)
 *
 * and at the end logits = W_out (rmsnorm(x) * output_norm).
 *
 * Matrix-vector products are split by rows across the model's worker
 * threads, attention by heads: every output element is computed by one
 * thread in one order, so the logits are the same with any number of
 * threads. Everything is float, with double sums in the reductions that
 * llama.cpp also carries in double (norms) and in the scalar row kernels.
 */
#include <math.h>
#include <string.h>

#include "agent/engine/model.h"
#include "common/alloc.h"

/* ---- matrix x vector, split by rows --------------------------------------- */

#define MAX_PARTS 3

/* Several matrices applied to the same input (Q, K and V; gate and up) in
 * one job, their rows numbered one after the other. */
struct matvec_job {
    const float *x;
    const model_matrix *w[MAX_PARTS];
    float *y[MAX_PARTS];
    size_t parts;
};

static void matvec_rows(void *arg, size_t begin, size_t end)
{
    const struct matvec_job *j = arg;
    size_t first = 0;
    for (size_t p = 0; p < j->parts; p++) {
        const model_matrix *w = j->w[p];
        size_t lo = begin > first ? begin - first : 0;
        size_t hi = end - first < w->rows ? end - first : w->rows;
        if (end > first)
            for (size_t r = lo; r < hi; r++)
                j->y[p][r] = w->ops->dot(w->data + r * w->row_bytes, j->x, w->cols);
        first += w->rows;
    }
}

static void matvec(pool *workers, struct matvec_job *j)
{
    size_t rows = 0;
    for (size_t p = 0; p < j->parts; p++)
        rows += j->w[p]->rows;
    pool_run(workers, rows, matvec_rows, j);
}

static void matvec1(pool *workers, const model_matrix *w, const float *x, float *y)
{
    struct matvec_job j = {.x = x, .w = {w}, .y = {y}, .parts = 1};
    matvec(workers, &j);
}

/* ---- the pieces ------------------------------------------------------------ */

static void rmsnorm(float *out, const float *x, const float *weight, uint32_t n,
                    float eps)
{
    double ss = 0;
    for (uint32_t i = 0; i < n; i++)
        ss += (double)x[i] * x[i];
    float scale = (float)(1.0 / sqrt(ss / n + eps));
    for (uint32_t i = 0; i < n; i++)
        out[i] = x[i] * scale * weight[i];
}

/* Rotates each head of vec (n_heads heads of head_dim) by its position:
 * dimension pair i turns by pos * base^(-2i / n_rot), divided by
 * rope_freqs[i] where the model has them (Llama 3.1's long context). */
static void rope(const engine_model *m, float *vec, uint32_t n_heads, uint32_t pos)
{
    const model_config *c = &m->cfg;
    uint32_t half = c->n_rot / 2;
    double p = (double)pos * c->rope_scale;
    for (uint32_t i = 0; i < half; i++) {
        double theta = p * pow(c->rope_base, -2.0 * i / c->n_rot);
        if (m->rope_freqs != NULL)
            theta /= m->rope_freqs[i];
        float cs = (float)cos(theta), sn = (float)sin(theta);
        for (uint32_t h = 0; h < n_heads; h++) {
            float *head = vec + (size_t)h * c->head_dim;
            uint32_t a = c->rope == ROPE_NORM ? 2 * i : i;
            uint32_t b = c->rope == ROPE_NORM ? 2 * i + 1 : i + half;
            float x0 = head[a], x1 = head[b];
            head[a] = x0 * cs - x1 * sn;
            head[b] = x0 * sn + x1 * cs;
        }
    }
}

struct attention_job {
    engine_seq *s;
    uint32_t layer, pos;
};

/* Heads [begin, end) of one layer's attention at position pos. */
static void attention_heads(void *arg, size_t begin, size_t end)
{
    const struct attention_job *j = arg;
    engine_seq *s = j->s;
    const model_config *c = &s->m->cfg;
    uint32_t kv_dim = c->n_head_kv * c->head_dim, group = c->n_head / c->n_head_kv;
    size_t layer_off = (size_t)j->layer * s->m->n_ctx * kv_dim;
    float scale = 1.0f / sqrtf((float)c->head_dim);
    for (size_t h = begin; h < end; h++) {
        const float *q = s->q + h * c->head_dim;
        float *att = s->att + h * s->m->n_ctx;
        size_t kv_off = layer_off + (h / group) * c->head_dim;
        float max = -INFINITY;
        for (uint32_t t = 0; t <= j->pos; t++) {
            const float *k = s->k_cache + kv_off + (size_t)t * kv_dim;
            float score = 0;
            for (uint32_t i = 0; i < c->head_dim; i++)
                score += q[i] * k[i];
            att[t] = score * scale;
            if (att[t] > max)
                max = att[t];
        }
        double sum = 0;
        for (uint32_t t = 0; t <= j->pos; t++) {
            att[t] = expf(att[t] - max);
            sum += att[t];
        }
        float *out = s->xb + h * c->head_dim;
        memset(out, 0, c->head_dim * sizeof *out);
        for (uint32_t t = 0; t <= j->pos; t++) {
            const float *v = s->v_cache + kv_off + (size_t)t * kv_dim;
            float a = (float)(att[t] / sum);
            for (uint32_t i = 0; i < c->head_dim; i++)
                out[i] += a * v[i];
        }
    }
}

static void add_bias(float *v, const float *bias, uint32_t n)
{
    if (bias != NULL)
        for (uint32_t i = 0; i < n; i++)
            v[i] += bias[i];
}

static void layer_forward(engine_seq *s, uint32_t l, uint32_t pos)
{
    engine_model *m = s->m;
    const model_config *c = &m->cfg;
    const model_layer *w = &m->layers[l];
    uint32_t kv_dim = c->n_head_kv * c->head_dim;
    size_t cache_off = ((size_t)l * m->n_ctx + pos) * kv_dim;
    float *k = s->k_cache + cache_off, *v = s->v_cache + cache_off;

    rmsnorm(s->xb, s->x, w->attn_norm, c->n_embd, c->rms_eps);
    struct matvec_job qkv = {
        .x = s->xb, .w = {&w->wq, &w->wk, &w->wv}, .y = {s->q, k, v}, .parts = 3};
    matvec(m->workers, &qkv);
    add_bias(s->q, w->bq, c->n_head * c->head_dim);
    add_bias(k, w->bk, kv_dim);
    add_bias(v, w->bv, kv_dim);
    rope(m, s->q, c->n_head, pos);
    rope(m, k, c->n_head_kv, pos);

    struct attention_job att = {.s = s, .layer = l, .pos = pos};
    pool_run(m->workers, c->n_head, attention_heads, &att);
    matvec1(m->workers, &w->wo, s->xb, s->xb2);
    for (uint32_t i = 0; i < c->n_embd; i++)
        s->x[i] += s->xb2[i];

    rmsnorm(s->xb, s->x, w->ffn_norm, c->n_embd, c->rms_eps);
    struct matvec_job gate_up = {
        .x = s->xb, .w = {&w->w_gate, &w->w_up}, .y = {s->hb, s->hb2}, .parts = 2};
    matvec(m->workers, &gate_up);
    for (uint32_t i = 0; i < c->n_ff; i++) {
        float g = s->hb[i];
        s->hb[i] = g / (1.0f + expf(-g)) * s->hb2[i]; /* silu(gate) * up */
    }
    matvec1(m->workers, &w->w_down, s->hb, s->xb2);
    for (uint32_t i = 0; i < c->n_embd; i++)
        s->x[i] += s->xb2[i];
}

void model_forward(engine_seq *s, int32_t id, bool want_logits)
{
    engine_model *m = s->m;
    const model_config *c = &m->cfg;
    const model_matrix *e = &m->token_embd;
    quant_dequantize_row(e->type, e->data + (size_t)id * e->row_bytes, s->x, c->n_embd);
    for (uint32_t l = 0; l < c->n_layer; l++)
        layer_forward(s, l, s->len);
    s->len++;
    s->has_logits = want_logits;
    if (want_logits) {
        rmsnorm(s->xb, s->x, m->output_norm, c->n_embd, c->rms_eps);
        matvec1(m->workers, &m->output, s->xb, s->logits);
    }
}

/* ---- sequences -------------------------------------------------------------- */

void engine_seq_free(engine_seq *s)
{
    if (s == NULL)
        return;
    mlx_free(s->k_cache);
    mlx_free(s->v_cache);
    mlx_free(s->x);
    mlx_free(s->xb);
    mlx_free(s->xb2);
    mlx_free(s->q);
    mlx_free(s->att);
    mlx_free(s->hb);
    mlx_free(s->hb2);
    mlx_free(s->logits);
    mlx_free(s);
}

int engine_seq_new(engine_model *m, engine_seq **out, mlx_err *err)
{
    *out = NULL;
    const model_config *c = &m->cfg;
    size_t kv = (size_t)c->n_layer * m->n_ctx * c->n_head_kv * c->head_dim;
    size_t q_dim = (size_t)c->n_head * c->head_dim;
    engine_seq *s = mlx_calloc(1, sizeof *s);
    if (s == NULL)
        return mlx_err_set(err, MLX_ENOMEM, "out of memory");
    s->m = m;
    s->k_cache = mlx_calloc(kv, sizeof(float));
    s->v_cache = mlx_calloc(kv, sizeof(float));
    s->x = mlx_calloc(c->n_embd, sizeof(float));
    s->xb = mlx_calloc(q_dim > c->n_embd ? q_dim : c->n_embd, sizeof(float));
    s->xb2 = mlx_calloc(c->n_embd, sizeof(float));
    s->q = mlx_calloc(q_dim, sizeof(float));
    s->att = mlx_calloc((size_t)c->n_head * m->n_ctx, sizeof(float));
    s->hb = mlx_calloc(c->n_ff, sizeof(float));
    s->hb2 = mlx_calloc(c->n_ff, sizeof(float));
    s->logits = mlx_calloc(c->n_vocab, sizeof(float));
    if (s->k_cache == NULL || s->v_cache == NULL || s->x == NULL || s->xb == NULL ||
        s->xb2 == NULL || s->q == NULL || s->att == NULL || s->hb == NULL ||
        s->hb2 == NULL || s->logits == NULL) {
        engine_seq_free(s);
        return mlx_err_set(
            err, MLX_ENOMEM,
            "out of memory for a sequence of %u tokens (its KV cache needs "
            "%zu MiB)",
            m->n_ctx, 2 * kv * sizeof(float) >> 20);
    }
    *out = s;
    return 0;
}

int engine_seq_feed(engine_seq *s, const int32_t *ids, size_t n, mlx_err *err)
{
    engine_model *m = s->m;
    for (size_t i = 0; i < n; i++)
        if (ids[i] < 0 || (uint32_t)ids[i] >= m->cfg.n_vocab)
            return mlx_err_set(err, MLX_EINVAL,
                               "token id %d is outside the vocabulary of %u tokens",
                               (int)ids[i], m->cfg.n_vocab);
    if (n > m->n_ctx - s->len)
        return mlx_err_set(err, MLX_ETOOBIG,
                           "%zu more tokens do not fit: the sequence holds %u of %u, "
                           "%zu too many",
                           n, s->len, m->n_ctx, n - (m->n_ctx - s->len));
    pthread_mutex_lock(&m->forward_lock);
    for (size_t i = 0; i < n; i++)
        model_forward(s, ids[i], i + 1 == n);
    pthread_mutex_unlock(&m->forward_lock);
    return 0;
}

const float *engine_seq_logits(const engine_seq *s)
{
    return s->has_logits ? s->logits : NULL;
}

uint32_t engine_seq_len(const engine_seq *s)
{
    return s->len;
}

void engine_seq_truncate(engine_seq *s, uint32_t pos)
{
    if (pos < s->len) {
        s->len = pos;
        s->has_logits = false;
    }
}
