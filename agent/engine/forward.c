/*
 * forward.c — one pass of a llama-family transformer over a batch of
 * tokens: a chunk of one prompt, one new token from each of many
 * sequences, or both.
 *
 * For each layer, with x the residual stream (one row of n_embd per token):
 *
 *   xb  = rmsnorm(x) * attn_norm
 *   q, k, v = Wq xb, Wk xb, Wv xb  (+ biases for qwen2); RoPE on q and k
 *   k, v -> each token's sequence's cache, at its position (F16)
 *   xb  = per token and head: softmax(q . k[0..pos] / sqrt(head_dim)) . v,
 *         heads sharing their key/value head in groups (GQA)
 *   x  += Wo xb
 *   xb  = rmsnorm(x) * ffn_norm
 *   x  += W_down (silu(W_gate xb) * W_up xb)
 *
 * and for the tokens whose logits are wanted, W_out (rmsnorm(x) *
 * output_norm). Every product is one matrix times all the tokens' vectors,
 * so each weight row is read once per pass: a prompt costs far less than
 * its tokens one by one, and sixteen sequences decoding together little
 * more than one (decoding is bound by reading the weights).
 *
 * Work is split across the model's threads by matrix rows and by (token,
 * head) pairs of attention; each output value is computed by one thread in
 * one order, so the logits do not depend on the number of threads.
 */
#include <math.h>
#include <string.h>

#include "agent/engine/model.h"

#define MAX_PARTS 3

/* Several matrices applied to the same inputs (Q, K and V; gate and up) in
 * one job, their rows numbered one after the other. */
struct matmul_job {
    const kernels *k;
    size_t n_acts;
    const model_matrix *w[MAX_PARTS];
    const void *acts[MAX_PARTS]; /* each in its matrix's activation format */
    size_t act_bytes[MAX_PARTS];
    float *y[MAX_PARTS];
    size_t ldy[MAX_PARTS];
    size_t parts;
};

static void matmul_rows(void *arg, size_t begin, size_t end, int worker)
{
    const struct matmul_job *j = arg;
    size_t first = 0;
    for (size_t p = 0; p < j->parts; p++) {
        const model_matrix *w = j->w[p];
        size_t last = first + w->rows;
        if (begin < last && end > first) {
            size_t r0 = begin > first ? begin - first : 0;
            size_t r1 = (end < last ? end : last) - first;
            j->k->matmul(w->type, w->data, w->row_bytes, w->cols, r0, r1, j->acts[p],
                         j->act_bytes[p], j->n_acts, j->y[p], j->ldy[p]);
        }
        first = last;
    }
}

/* Inputs x (n rows of cols floats, stride ldx) in the format matrix w
 * multiplies with: the floats themselves for float weights, else rows
 * quantized into buf. */
struct prepared {
    const void *acts;
    size_t act_bytes;
};

struct quantize_job {
    const kernels *k;
    ggml_type type;
    const float *x;
    size_t ldx, cols, act_bytes;
    uint8_t *out;
};

static void quantize_rows(void *arg, size_t begin, size_t end, int worker)
{
    const struct quantize_job *j = arg;
    for (size_t t = begin; t < end; t++)
        j->k->quantize_act(j->type, j->x + t * j->ldx, j->out + t * j->act_bytes,
                           j->cols);
}

static struct prepared prepare(engine_model *m, const model_matrix *w, const float *x,
                               size_t ldx, uint32_t n, uint8_t *buf)
{
    if (kernels_act_type(w->type) == GGML_TYPE_F32)
        return (struct prepared){x, ldx * sizeof(float)};
    struct quantize_job j = {
        m->k, w->type, x, ldx, w->cols, kernels_act_row_bytes(w->type, w->cols), buf};
    pool_run(m->workers, n, quantize_rows, &j);
    return (struct prepared){buf, j.act_bytes};
}

/* y = w x for the n token rows of x. */
static void matmul(engine_model *m, const model_matrix *w, const float *x, size_t ldx,
                   uint32_t n, float *y, size_t ldy)
{
    struct prepared in = prepare(m, w, x, ldx, n, m->work.act);
    struct matmul_job j = {.k = m->k,
                           .n_acts = n,
                           .w = {w},
                           .acts = {in.acts},
                           .act_bytes = {in.act_bytes},
                           .y = {y},
                           .ldy = {ldy},
                           .parts = 1};
    pool_run(m->workers, w->rows, matmul_rows, &j);
}

/* y[p] = w[p] x for matrices that share their input: quantized once per
 * activation format (they differ in a Q4_K_M file: a Q6_K V beside Q4_K
 * Q and K still takes Q8_K, so usually once). */
static void matmul_shared(engine_model *m, const model_matrix *const *w, float *const *y,
                          const size_t *ldy, size_t parts, const float *x, size_t ldx,
                          uint32_t n)
{
    struct matmul_job j = {.k = m->k, .n_acts = n, .parts = parts};
    size_t rows = 0;
    for (size_t p = 0; p < parts; p++) {
        size_t same = p;
        for (size_t q = 0; q < p; q++)
            if (kernels_act_type(w[q]->type) == kernels_act_type(w[p]->type) &&
                w[q]->cols == w[p]->cols)
                same = q;
        if (same == p) {
            /* Each distinct format gets its own stretch of the buffer. */
            struct prepared in =
                prepare(m, w[p], x, ldx, n, m->work.act + p * m->work.act_part);
            j.acts[p] = in.acts;
            j.act_bytes[p] = in.act_bytes;
        } else {
            j.acts[p] = j.acts[same];
            j.act_bytes[p] = j.act_bytes[same];
        }
        j.w[p] = w[p];
        j.y[p] = y[p];
        j.ldy[p] = ldy[p];
        rows += w[p]->rows;
    }
    pool_run(m->workers, rows, matmul_rows, &j);
}

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

/* The rotation of every token of the pass, once for all layers: for
 * dimension pair i of a token at position pos, the angle pos * base^(-2i /
 * n_rot) (divided by rope_freqs[i] where the model has them, Llama 3.1's
 * long context), kept as (cos, sin). */
static void rope_angles(engine_model *m, uint32_t n)
{
    const model_config *c = &m->cfg;
    uint32_t half = c->n_rot / 2;
    for (uint32_t t = 0; t < n; t++) {
        double p = (double)m->work.pos[t] * c->rope_scale;
        float *cs = m->work.rope + (size_t)t * c->n_rot;
        for (uint32_t i = 0; i < half; i++) {
            double theta = p * pow(c->rope_base, -2.0 * i / c->n_rot);
            if (m->rope_freqs != NULL)
                theta /= m->rope_freqs[i];
            cs[2 * i] = (float)cos(theta);
            cs[2 * i + 1] = (float)sin(theta);
        }
    }
}

/* Rotates each head of vec (n_heads heads of head_dim) by token t's angles:
 * adjacent pairs (llama) or the two halves (NeoX, qwen2). */
static void rope(const engine_model *m, float *vec, uint32_t n_heads, uint32_t t)
{
    const model_config *c = &m->cfg;
    uint32_t half = c->n_rot / 2;
    const float *cs = m->work.rope + (size_t)t * c->n_rot;
    for (uint32_t i = 0; i < half; i++) {
        uint32_t a = c->rope == ROPE_NORM ? 2 * i : i;
        uint32_t b = c->rope == ROPE_NORM ? 2 * i + 1 : i + half;
        for (uint32_t h = 0; h < n_heads; h++) {
            float *head = vec + (size_t)h * c->head_dim;
            float x0 = head[a], x1 = head[b];
            head[a] = x0 * cs[2 * i] - x1 * cs[2 * i + 1];
            head[b] = x0 * cs[2 * i + 1] + x1 * cs[2 * i];
        }
    }
}

static void add_bias(float *v, const float *bias, uint32_t n)
{
    if (bias != NULL)
        for (uint32_t i = 0; i < n; i++)
            v[i] += bias[i];
}

struct attention_job {
    engine_model *m;
    uint32_t layer;
};

/* (token, head) pairs [begin, end) of one layer's attention. */
static void attention_pairs(void *arg, size_t begin, size_t end, int worker)
{
    const struct attention_job *j = arg;
    engine_model *m = j->m;
    const model_config *c = &m->cfg;
    const model_work *w = &m->work;
    uint32_t q_dim = c->n_head * c->head_dim, kv_dim = c->n_head_kv * c->head_dim;
    uint32_t group = c->n_head / c->n_head_kv;
    float scale = 1.0f / sqrtf((float)c->head_dim);
    float *att = w->scores + (size_t)worker * m->n_ctx;
    for (size_t pair = begin; pair < end; pair++) {
        size_t t = pair / c->n_head, h = pair % c->n_head;
        const engine_seq *s = w->seq[t];
        uint32_t pos = w->pos[t];
        size_t base = (size_t)j->layer * m->n_ctx * kv_dim + (h / group) * c->head_dim;
        const float *q = w->q + t * q_dim + h * c->head_dim;
        float max = -INFINITY;
        for (uint32_t p = 0; p <= pos; p++) {
            att[p] =
                m->k->dot_f16(q, s->k_cache + base + (size_t)p * kv_dim, c->head_dim) *
                scale;
            if (att[p] > max)
                max = att[p];
        }
        double sum = 0;
        for (uint32_t p = 0; p <= pos; p++) {
            att[p] = expf(att[p] - max);
            sum += att[p];
        }
        float *out = w->xb + t * q_dim + h * c->head_dim;
        memset(out, 0, c->head_dim * sizeof *out);
        for (uint32_t p = 0; p <= pos; p++)
            m->k->axpy_f16((float)(att[p] / sum), s->v_cache + base + (size_t)p * kv_dim,
                           out, c->head_dim);
    }
}

static void attention_block(engine_model *m, uint32_t l, uint32_t n)
{
    const model_config *c = &m->cfg;
    const model_layer *L = &m->layers[l];
    model_work *w = &m->work;
    uint32_t q_dim = c->n_head * c->head_dim, kv_dim = c->n_head_kv * c->head_dim;
    size_t xb_stride = q_dim > c->n_embd ? q_dim : c->n_embd;

    for (uint32_t t = 0; t < n; t++)
        rmsnorm(w->xb + t * xb_stride, w->x + (size_t)t * c->n_embd, L->attn_norm,
                c->n_embd, c->rms_eps);
    const model_matrix *qkv[] = {&L->wq, &L->wk, &L->wv};
    float *y[] = {w->q, w->k, w->v};
    size_t ldy[] = {q_dim, kv_dim, kv_dim};
    matmul_shared(m, qkv, y, ldy, 3, w->xb, xb_stride, n);

    for (uint32_t t = 0; t < n; t++) {
        float *q = w->q + (size_t)t * q_dim, *k = w->k + (size_t)t * kv_dim;
        float *v = w->v + (size_t)t * kv_dim;
        add_bias(q, L->bq, q_dim);
        add_bias(k, L->bk, kv_dim);
        add_bias(v, L->bv, kv_dim);
        rope(m, q, c->n_head, t);
        rope(m, k, c->n_head_kv, t);
        engine_seq *s = w->seq[t];
        size_t at = ((size_t)l * m->n_ctx + w->pos[t]) * kv_dim;
        m->k->f32_to_f16(k, s->k_cache + at, kv_dim);
        m->k->f32_to_f16(v, s->v_cache + at, kv_dim);
    }
    /* Every key and value of the pass is in its cache before any token
     * attends: a prompt's later tokens see its earlier ones. */
    struct attention_job att = {m, l};
    pool_run(m->workers, (size_t)n * c->n_head, attention_pairs, &att);
    /* attention's output is in xb, q_dim per token */
    matmul(m, &L->wo, w->xb, q_dim, n, w->x2, c->n_embd);
    for (size_t i = 0; i < (size_t)n * c->n_embd; i++)
        w->x[i] += w->x2[i];
}

static void ffn_block(engine_model *m, uint32_t l, uint32_t n)
{
    const model_config *c = &m->cfg;
    const model_layer *L = &m->layers[l];
    model_work *w = &m->work;
    for (uint32_t t = 0; t < n; t++)
        rmsnorm(w->xb + (size_t)t * c->n_embd, w->x + (size_t)t * c->n_embd, L->ffn_norm,
                c->n_embd, c->rms_eps);
    const model_matrix *gate_up[] = {&L->w_gate, &L->w_up};
    float *y[] = {w->hb, w->hb2};
    size_t ldy[] = {c->n_ff, c->n_ff};
    matmul_shared(m, gate_up, y, ldy, 2, w->xb, c->n_embd, n);
    for (size_t i = 0; i < (size_t)n * c->n_ff; i++) {
        float g = w->hb[i];
        w->hb[i] = g / (1.0f + expf(-g)) * w->hb2[i]; /* silu(gate) * up */
    }
    matmul(m, &L->w_down, w->hb, c->n_ff, n, w->x2, c->n_embd);
    for (size_t i = 0; i < (size_t)n * c->n_embd; i++)
        w->x[i] += w->x2[i];
}

/* The logits of the wanted tokens, MODEL_LOGIT_ROWS at a time. */
static void logits_block(engine_model *m, uint32_t n_want)
{
    const model_config *c = &m->cfg;
    model_work *w = &m->work;
    for (uint32_t first = 0; first < n_want; first += MODEL_LOGIT_ROWS) {
        uint32_t rows =
            n_want - first < MODEL_LOGIT_ROWS ? n_want - first : MODEL_LOGIT_ROWS;
        for (uint32_t r = 0; r < rows; r++)
            rmsnorm(w->xb + (size_t)r * c->n_embd,
                    w->x + (size_t)w->want[first + r] * c->n_embd, m->output_norm,
                    c->n_embd, c->rms_eps);
        matmul(m, &m->output, w->xb, c->n_embd, rows, w->logits, c->n_vocab);
        for (uint32_t r = 0; r < rows; r++) {
            engine_seq *s = w->seq[w->want[first + r]];
            memcpy(s->logits, w->logits + (size_t)r * c->n_vocab,
                   c->n_vocab * sizeof(float));
            s->has_logits = true;
        }
    }
}

void model_forward_pass(engine_model *m, uint32_t n, uint32_t n_want)
{
    const model_config *c = &m->cfg;
    model_work *w = &m->work;
    const model_matrix *e = &m->token_embd;
    for (uint32_t t = 0; t < n; t++) {
        quant_dequantize_row(e->type, e->data + (size_t)w->ids[t] * e->row_bytes,
                             w->x + (size_t)t * c->n_embd, c->n_embd);
        engine_seq *s = w->seq[t];
        s->tokens[w->pos[t]] = w->ids[t];
        s->has_logits = false;
    }
    rope_angles(m, n);
    for (uint32_t l = 0; l < c->n_layer; l++) {
        attention_block(m, l, n);
        ffn_block(m, l, n);
    }
    logits_block(m, n_want);
}
