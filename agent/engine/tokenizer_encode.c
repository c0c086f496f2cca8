/*
 * tokenizer_encode.c — tokenizer_encode: text to ids, the way llama.cpp's
 * llama_tokenize does it.
 *
 * 1. Special tokens are cut out of the text first. With parse_special,
 *    control, user-defined and unknown tokens are searched for; without it
 *    only user-defined ones (a vocabulary's added words always win, as in
 *    Hugging Face's tokenizers). llama.cpp takes the special tokens longest
 *    first and, for each, splits every piece of text still unclaimed at
 *    each non-overlapping occurrence, left to right; this finds every
 *    occurrence in one pass and then claims them in that same order.
 * 2. The text between them is tokenized piece by piece: "llama" adds the
 *    dummy-prefix space to a piece that starts the text or follows a
 *    special token, writes spaces as '▁' and merges (tokenizer_spm.c);
 *    "gpt2" pre-tokenizes and merges (tokenizer_bpe.c).
 */
#include <stdlib.h>
#include <string.h>

#include "agent/engine/tokenizer_int.h"
#include "common/alloc.h"

struct match {
    size_t pos;
    uint32_t order; /* the special token's place in t->specials */
};

static int cmp_match(const void *a, const void *b)
{
    const struct match *x = a, *y = b;
    if (x->order != y->order)
        return x->order < y->order ? -1 : 1;
    return (x->pos > y->pos) - (x->pos < y->pos);
}

static int cmp_pos(const void *a, const void *b)
{
    const struct match *x = a, *y = b;
    return (x->pos > y->pos) - (x->pos < y->pos);
}

static size_t special_len(const tokenizer *t, uint32_t order)
{
    int32_t id = t->specials[order];
    return t->text.off[id + 1] - t->text.off[id];
}

/* Every occurrence in s of a special token that applies. */
static int find_occurrences(const tokenizer *t, const uint8_t *s, size_t n,
                            bool parse_special, struct match **occ, size_t *n_occ,
                            size_t *cap, mlx_err *err)
{
    for (size_t pos = 0; pos < n; pos++) {
        uint32_t from = t->by_byte_off[s[pos]], to = t->by_byte_off[s[pos] + 1];
        for (uint32_t k = from; k < to; k++) {
            uint32_t order = t->by_byte[k];
            int32_t id = t->specials[order];
            size_t len = special_len(t, order);
            if ((!parse_special && !(t->attr[id] & TOK_ATTR_USER)) || len > n - pos ||
                memcmp(s + pos, t->text.bytes + t->text.off[id], len) != 0)
                continue;
            int rc = tok_work_grow((void **)occ, cap, *n_occ + 1, sizeof **occ, err);
            if (rc != 0)
                return rc;
            (*occ)[(*n_occ)++] = (struct match){pos, order};
        }
    }
    return 0;
}

/* The special tokens llama.cpp would cut out of s, by position. */
static int find_specials(const tokenizer *t, const uint8_t *s, size_t n,
                         bool parse_special, struct match **out, size_t *n_out,
                         mlx_err *err)
{
    size_t n_occ = 0, cap = 0;
    struct match *occ = NULL;
    *out = NULL;
    *n_out = 0;
    int rc = find_occurrences(t, s, n, parse_special, &occ, &n_occ, &cap, err);
    if (rc != 0 || n_occ == 0) {
        mlx_free(occ);
        return rc;
    }
    uint8_t *claimed = mlx_calloc(n, 1);
    if (claimed == NULL) {
        mlx_free(occ);
        return mlx_err_set(err, MLX_ENOMEM, "out of memory while tokenizing");
    }
    qsort(occ, n_occ, sizeof *occ, cmp_match);
    size_t kept = 0;
    for (size_t i = 0; i < n_occ; i++) {
        size_t len = special_len(t, occ[i].order);
        if (memchr(claimed + occ[i].pos, 1, len) != NULL)
            continue; /* overlaps a longer one, or an earlier one of its own */
        memset(claimed + occ[i].pos, 1, len);
        occ[kept++] = occ[i];
    }
    mlx_free(claimed);
    qsort(occ, kept, sizeof *occ, cmp_pos);
    *out = occ;
    *n_out = kept;
    return 0;
}

/* SentencePiece's escaping of a piece of text: the dummy prefix when asked,
 * every ' ' as U+2581. */
static int spm_piece(const tokenizer *t, tok_work *w, const uint8_t *s, size_t n,
                     bool prefix, tok_out *out, mlx_err *err)
{
    int rc = tok_work_grow((void **)&w->buf, &w->buf_cap, 3 * n + 3, 1, err);
    if (rc != 0)
        return rc;
    size_t len = 0;
    if (prefix)
        for (const char *p = "\xe2\x96\x81"; *p != '\0'; p++)
            w->buf[len++] = (uint8_t)*p;
    for (size_t i = 0; i < n; i++) {
        if (s[i] == ' ') {
            w->buf[len++] = 0xE2;
            w->buf[len++] = 0x96;
            w->buf[len++] = 0x81;
        } else {
            w->buf[len++] = s[i];
        }
    }
    return tok_spm_encode(t, w, w->buf, len, out, err);
}

static int encode_piece(const tokenizer *t, tok_work *w, const uint8_t *s, size_t n,
                        bool after_special, tok_out *out, mlx_err *err)
{
    if (t->kind == TOK_SPM)
        return spm_piece(t, w, s, n, after_special && t->add_space_prefix, out, err);
    return tok_bpe_encode(t, w, s, n, out, err);
}

int tokenizer_encode(const tokenizer *t, const char *text, size_t len, bool add_bos,
                     bool parse_special, int32_t **ids, size_t *n, mlx_err *err)
{
    *ids = NULL;
    *n = 0;
    if (len > TOK_MAX_TEXT)
        return mlx_err_set(err, MLX_ETOOBIG,
                           "the text to tokenize is %zu bytes; at most %u are accepted",
                           len, TOK_MAX_TEXT);
    const uint8_t *s = (const uint8_t *)(len > 0 ? text : "");
    tok_out out = {NULL, 0, 0};
    tok_work w;
    memset(&w, 0, sizeof w);
    struct match *m = NULL;
    size_t n_m = 0;
    int rc = tok_cache_init(&w.cache, len, err);
    if (rc == 0)
        rc = tok_work_grow((void **)&out.ids, &out.cap, len / 4 + 16, sizeof *out.ids,
                           err);
    if (rc == 0 && add_bos && t->bos >= 0)
        rc = tok_out_push(&out, t->bos, err);
    if (rc == 0)
        rc = find_specials(t, s, len, parse_special, &m, &n_m, err);
    size_t pos = 0;
    bool after_special = true; /* the start of the text counts as one */
    for (size_t i = 0; i <= n_m && rc == 0; i++) {
        size_t end = i < n_m ? m[i].pos : len;
        if (end > pos) {
            rc = encode_piece(t, &w, s + pos, end - pos, after_special, &out, err);
            after_special = false;
        }
        if (rc == 0 && i < n_m) {
            rc = tok_out_push(&out, t->specials[m[i].order], err);
            after_special = true;
            pos = end + special_len(t, m[i].order);
        }
    }
    mlx_free(m);
    tok_work_fini(&w);
    if (rc != 0) {
        mlx_free(out.ids);
        return rc;
    }
    *ids = out.ids;
    *n = out.n;
    return 0;
}
