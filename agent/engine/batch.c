/*
 * batch.c — feeding tokens to sequences: checks, prefix reuse, and laying
 * the tokens of one or many sequences out in passes of the model.
 *
 * Everything is checked before anything runs, so a refused call changes no
 * sequence. The tokens of all items then go through in passes of at most
 * MODEL_MAX_BATCH, item after item; a pass may hold the end of one prompt,
 * several one-token decode steps and the start of another prompt. Within a
 * pass a sequence's tokens are at consecutive positions, and its keys and
 * values are all cached before any of them attends, so a prompt chunk sees
 * itself.
 */
#include <string.h>

#include "agent/engine/model.h"

static int check(engine_model *m, const engine_batch_item *items, size_t n, mlx_err *err)
{
    for (size_t i = 0; i < n; i++) {
        const engine_batch_item *it = &items[i];
        if (it->seq == NULL || it->seq->m != m || it->seq->retired)
            return mlx_err_set(err, MLX_EINVAL,
                               "item %zu is not a sequence of this model", i);
        for (size_t j = 0; j < i; j++)
            if (items[j].seq == it->seq)
                return mlx_err_set(err, MLX_EINVAL,
                                   "items %zu and %zu feed the same sequence", j, i);
        for (size_t k = 0; k < it->n; k++)
            if (it->ids[k] < 0 || (uint32_t)it->ids[k] >= m->cfg.n_vocab)
                return mlx_err_set(err, MLX_EINVAL,
                                   "token id %d is outside the vocabulary of %u tokens",
                                   (int)it->ids[k], m->cfg.n_vocab);
        uint32_t room = m->n_ctx - it->seq->len;
        if (it->n > room)
            return mlx_err_set(err, MLX_ETOOBIG,
                               "%zu more tokens do not fit: the sequence holds %u of %u, "
                               "%zu too many",
                               it->n, it->seq->len, m->n_ctx, it->n - room);
    }
    return 0;
}

int engine_feed_batch(engine_model *m, const engine_batch_item *items, size_t n,
                      mlx_err *err)
{
    int rc = check(m, items, n, err);
    if (rc != 0)
        return rc;
    model_work *w = &m->work;
    pthread_mutex_lock(&m->forward_lock);
    size_t item = 0, done = 0; /* the next token to lay out: items[item].ids[done] */
    while (item < n) {
        const engine_batch_item *it = &items[item];
        if (done == 0 && it->seq->len == 0 && it->n > 1)
            done = model_seq_reuse_prefix(it->seq, it->ids, it->n);
        uint32_t count = 0, n_want = 0;
        /* Fill one pass. */
        while (item < n && count < w->max_batch) {
            it = &items[item];
            if (done == 0 && it->seq->len == 0 && it->n > 1 && count > 0)
                break; /* reuse a prefix at the start of a pass, with the lock held */
            size_t take = it->n - done;
            if (take > w->max_batch - count)
                take = w->max_batch - count;
            for (size_t k = 0; k < take; k++, count++) {
                w->ids[count] = it->ids[done + k];
                w->seq[count] = it->seq;
                w->pos[count] = it->seq->len + (uint32_t)k;
            }
            it->seq->len += (uint32_t)take;
            done += take;
            if (done == it->n) {
                if (take > 0)
                    w->want[n_want++] = count - 1;
                item++;
                done = 0;
            }
        }
        if (count > 0)
            model_forward_pass(m, count, n_want);
    }
    pthread_mutex_unlock(&m->forward_lock);
    return 0;
}

int engine_seq_feed(engine_seq *s, const int32_t *ids, size_t n, mlx_err *err)
{
    engine_batch_item item = {s, ids, n};
    return engine_feed_batch(s->m, &item, 1, err);
}
