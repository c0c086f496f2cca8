/*
 * seq.c — sequences: their KV caches, and what is kept when they end.
 *
 * A sequence's cache holds, per layer and position, the keys and values of
 * the tokens it has seen (F16: half the memory of floats, and attention
 * reads it at the speed memory allows). Its token ids are kept beside, so
 * a new sequence whose prompt starts like one the model has seen can copy
 * that stretch of cache instead of computing it again: a chat's next turn
 * repeats the whole conversation so far, and many requests share a system
 * prompt. Sequences that end are kept for that too (retired), a few and
 * within a byte budget, newest first.
 */
#include <string.h>

#include "agent/engine/model.h"
#include "common/alloc.h"

static void seq_release(engine_seq *s)
{
    mlx_free(s->k_cache);
    mlx_free(s->v_cache);
    mlx_free(s->tokens);
    mlx_free(s->logits);
    mlx_free(s);
}

/* Unlinks s from the model's list (under seqs_lock). */
static void unlink_seq(engine_model *m, engine_seq *s)
{
    for (engine_seq **p = &m->seqs; *p != NULL; p = &(*p)->next)
        if (*p == s) {
            *p = s->next;
            return;
        }
}

int engine_seq_new(engine_model *m, engine_seq **out, mlx_err *err)
{
    *out = NULL;
    const model_config *c = &m->cfg;
    size_t kv = (size_t)c->n_layer * m->n_ctx * c->n_head_kv * c->head_dim;
    engine_seq *s = mlx_calloc(1, sizeof *s);
    if (s == NULL)
        return mlx_err_set(err, MLX_ENOMEM, "out of memory");
    s->m = m;
    s->k_cache = mlx_malloc(kv * sizeof(uint16_t));
    s->v_cache = mlx_malloc(kv * sizeof(uint16_t));
    s->tokens = mlx_calloc(m->n_ctx, sizeof(int32_t));
    s->logits = mlx_calloc(c->n_vocab, sizeof(float));
    s->bytes = 2 * kv * sizeof(uint16_t) + m->n_ctx * sizeof(int32_t) +
               c->n_vocab * sizeof(float);
    if (s->k_cache == NULL || s->v_cache == NULL || s->tokens == NULL ||
        s->logits == NULL) {
        seq_release(s);
        return mlx_err_set(
            err, MLX_ENOMEM,
            "out of memory for a sequence of %u tokens (its KV cache needs "
            "%zu MiB)",
            m->n_ctx, 2 * kv * sizeof(uint16_t) >> 20);
    }
    pthread_mutex_lock(&m->seqs_lock);
    s->next = m->seqs;
    m->seqs = s;
    pthread_mutex_unlock(&m->seqs_lock);
    *out = s;
    return 0;
}

/* Frees retired sequences, oldest first, until the model keeps at most
 * `count` of them within `bytes` (under seqs_lock; forward_lock too, since
 * a pass may be copying from one). */
static void trim_retired(engine_model *m, size_t count, size_t bytes)
{
    while (m->n_retired > count || m->retired_bytes > bytes) {
        engine_seq *oldest = NULL;
        for (engine_seq *s = m->seqs; s != NULL; s = s->next)
            if (s->retired)
                oldest = s;
        if (oldest == NULL)
            return;
        unlink_seq(m, oldest);
        m->n_retired--;
        m->retired_bytes -= oldest->bytes;
        seq_release(oldest);
    }
}

void engine_seq_free(engine_seq *s)
{
    if (s == NULL)
        return;
    engine_model *m = s->m;
    pthread_mutex_lock(&m->forward_lock);
    pthread_mutex_lock(&m->seqs_lock);
    if (s->len > 0 && s->bytes <= MODEL_RETIRED_MAX_BYTES) {
        /* Kept, newest first, for a prompt that starts the same way. */
        unlink_seq(m, s);
        s->retired = true;
        s->next = m->seqs;
        m->seqs = s;
        m->n_retired++;
        m->retired_bytes += s->bytes;
        trim_retired(m, MODEL_RETIRED_MAX, MODEL_RETIRED_MAX_BYTES);
    } else {
        unlink_seq(m, s);
        seq_release(s);
    }
    pthread_mutex_unlock(&m->seqs_lock);
    pthread_mutex_unlock(&m->forward_lock);
}

void model_seqs_free(engine_model *m)
{
    pthread_mutex_lock(&m->seqs_lock);
    trim_retired(m, 0, 0);
    pthread_mutex_unlock(&m->seqs_lock);
}

uint32_t model_seq_reuse_prefix(engine_seq *s, const int32_t *ids, size_t n)
{
    engine_model *m = s->m;
    const engine_seq *best = NULL;
    uint32_t best_len = 0;
    pthread_mutex_lock(&m->seqs_lock);
    for (const engine_seq *o = m->seqs; o != NULL; o = o->next) {
        if (o == s)
            continue;
        /* At least the last id is computed: its logits are wanted. */
        uint32_t limit = o->len < n - 1 ? o->len : (uint32_t)(n - 1);
        uint32_t k = 0;
        while (k < limit && o->tokens[k] == ids[k])
            k++;
        if (k > best_len) {
            best = o;
            best_len = k;
        }
    }
    if (best != NULL) {
        const model_config *c = &m->cfg;
        size_t kv_dim = (size_t)c->n_head_kv * c->head_dim;
        size_t layer = (size_t)m->n_ctx * kv_dim;
        for (uint32_t l = 0; l < c->n_layer; l++) {
            memcpy(s->k_cache + l * layer, best->k_cache + l * layer,
                   best_len * kv_dim * sizeof(uint16_t));
            memcpy(s->v_cache + l * layer, best->v_cache + l * layer,
                   best_len * kv_dim * sizeof(uint16_t));
        }
        memcpy(s->tokens, ids, best_len * sizeof(int32_t));
        s->len = best_len;
        m->reused_tokens += best_len;
    }
    pthread_mutex_unlock(&m->seqs_lock);
    return best_len;
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
