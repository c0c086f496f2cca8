/*
 * tokenizer_bpe.c — byte-level BPE over a "gpt2" vocabulary, as llama.cpp's
 * BPE tokenizer does it.
 *
 * A fragment of text (what lies between special tokens) is first made
 * canonical the way llama.cpp reads it: each invalid byte becomes U+FFFD
 * and overlong forms are written short. The pre-tokenizer (tokenizer_pre.c)
 * cuts it into words. A word that is a token as a whole is kept whole
 * (Llama 3's rule); otherwise it starts as one symbol per byte and, over
 * and over, the adjacent pair with the lowest merge rank is joined (ties to
 * the leftmost), until no adjacent pair has a merge. A final symbol that is
 * no token falls back to the tokens of the single bytes of its spelling,
 * where there are such tokens.
 *
 * Pieces are string indices (tokenizer_bpe_load.c), so a candidate pair is
 * one probe of the merge table, and the merged piece's index comes with
 * it. Words are short, so the queue stays small; a long word (a run of
 * letters with no space) costs O(n log n).
 */
#include <string.h>

#include "agent/engine/tokenizer_int.h"
#include "agent/engine/unicode.h"

static int try_pair(const tokenizer *t, tok_work *w, int32_t left, int32_t right,
                    mlx_err *err)
{
    if (left < 0 || right < 0)
        return 0;
    const tok_sym *l = &w->sym[left], *r = &w->sym[right];
    if (l->id < 0 || r->id < 0)
        return 0;
    const tok_merge *m = tok_pairmap_slot(&t->merges, l->id, r->id);
    if (m->key == UINT64_MAX)
        return 0;
    tok_cand c = {
        (uint64_t)m->rank << 32 | (uint32_t)left, left, right, l->n, r->n, m->result};
    return tok_heap_push(w, &c, err);
}

static int emit(const tokenizer *t, const uint8_t *word, const tok_sym *s, tok_out *out,
                mlx_err *err)
{
    if (s->id >= 0 && s->id < t->n_vocab)
        return tok_out_push(out, s->id, err);
    for (uint32_t i = 0; i < s->n; i++) {
        const int32_t *fb = t->byte_fb[word[s->start + i]];
        for (int j = 0; j < 2; j++) {
            if (fb[j] >= 0) {
                int rc = tok_out_push(out, fb[j], err);
                if (rc != 0)
                    return rc;
            }
        }
    }
    return 0;
}

static int encode_word(const tokenizer *t, tok_work *w, const uint8_t *word, size_t n,
                       tok_out *out, mlx_err *err)
{
    if (t->ignore_merges) {
        int32_t id = tok_strmap_find(&t->raw_map, &t->raw, word, n);
        if (id >= 0 && id < t->n_vocab)
            return tok_out_push(out, id, err);
    }
    int rc = tok_work_grow((void **)&w->sym, &w->sym_cap, n, sizeof *w->sym, err);
    if (rc != 0)
        return rc;
    int32_t count = (int32_t)n;
    for (int32_t i = 0; i < count; i++)
        w->sym[i] = (tok_sym){(uint32_t)i, 1, i - 1, i + 1 == count ? -1 : i + 1,
                              t->byte_sid[word[i]]};
    w->heap_n = 0;
    for (int32_t i = 1; i < count && rc == 0; i++)
        rc = try_pair(t, w, i - 1, i, err);
    while (rc == 0 && w->heap_n > 0) {
        tok_cand c;
        tok_heap_pop(w, &c);
        tok_sym *l = &w->sym[c.left], *r = &w->sym[c.right];
        if (l->n != c.ln || r->n != c.rn)
            continue; /* one side has changed since */
        l->n += r->n;
        r->n = 0;
        l->id = c.id;
        l->next = r->next;
        if (r->next >= 0)
            w->sym[r->next].prev = c.left;
        rc = try_pair(t, w, l->prev, c.left, err);
        if (rc == 0)
            rc = try_pair(t, w, c.left, l->next, err);
    }
    for (int32_t i = 0; i >= 0 && rc == 0; i = w->sym[i].next)
        rc = emit(t, word, &w->sym[i], out, err);
    return rc;
}

struct split_ctx {
    const tokenizer *t;
    tok_work *w;
    const uint8_t *text;
    tok_out *out;
    mlx_err *err;
};

static int on_word(void *arg, size_t start, size_t end)
{
    struct split_ctx *c = arg;
    const uint8_t *word = c->text + start;
    size_t n = end - start, n_ids;
    const int32_t *hit = tok_cache_get(&c->w->cache, word, n, &n_ids);
    if (hit != NULL)
        return tok_out_append(c->out, hit, n_ids, c->err);
    size_t before = c->out->n;
    int rc = encode_word(c->t, c->w, word, n, c->out, c->err);
    if (rc == 0)
        rc = tok_cache_put(&c->w->cache, word, n, c->out->ids + before,
                           c->out->n - before, c->err);
    return rc;
}

/* Whether s is already what llama.cpp would make of it: valid, shortest
 * UTF-8 (surrogates included, as it reads them). */
static bool is_canonical(const uint8_t *s, size_t n)
{
    for (size_t i = 0; i < n;) {
        if (s[i] < 0x80) {
            i++;
            continue;
        }
        uint32_t cp;
        uint8_t enc[4];
        size_t k = unicode_decode(s + i, n - i, &cp);
        if (cp == UNICODE_REPLACEMENT && k == 1)
            return false;
        if (unicode_encode(cp, enc) != k)
            return false;
        i += k;
    }
    return true;
}

int tok_bpe_encode(const tokenizer *t, tok_work *w, const uint8_t *s, size_t n,
                   tok_out *out, mlx_err *err)
{
    const uint8_t *text = s;
    size_t len = n;
    if (!is_canonical(s, n)) {
        int rc = tok_work_grow((void **)&w->buf, &w->buf_cap, 3 * n, 1, err);
        if (rc != 0)
            return rc;
        len = 0;
        for (size_t i = 0; i < n;) {
            uint32_t cp;
            i += unicode_decode(s + i, n - i, &cp);
            len += unicode_encode(cp, w->buf + len);
        }
        text = w->buf;
    }
    struct split_ctx c = {t, w, text, out, err};
    return tok_pre_split(t->pre, text, len, on_word, &c);
}
