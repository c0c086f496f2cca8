/*
 * tokenizer_spm.c — SentencePiece-style BPE over a "llama" vocabulary, as
 * llama.cpp's SPM tokenizer does it.
 *
 * The text arrives escaped (tokenizer_encode.c: the dummy-prefix space
 * added, every space written U+2581 '▁'). It starts as one symbol per
 * UTF-8 character, where a character's length is read off its lead byte
 * alone (so invalid UTF-8 still splits the way llama.cpp splits it). Then,
 * over and over, the adjacent pair whose concatenation is the token of
 * highest score is merged (ties to the leftmost pair) until no adjacent
 * pair forms a token. A final symbol that is no token becomes its bytes'
 * <0xXX> tokens.
 *
 * Speed: the pairs wait in a priority queue, so a text of n characters
 * costs O(n log n). A merge never joins symbols across a place where no
 * token could span, so the text is cut at such places and merged one word
 * at a time: the same merges in the same relative order, with a queue that
 * stays a few entries long, and a word seen before costs one lookup
 * (tok_cache). The cuts: before a '▁' that follows another character, when
 * no token has a '▁' after another character (true of SentencePiece
 * vocabularies, which keep '▁' at the front of a piece); and around an
 * ASCII character that is in no longer token (a newline for Llama 2).
 */
#include <string.h>

#include "agent/engine/tokenizer_int.h"

#define SPACE     "\xe2\x96\x81" /* U+2581 */
#define SPACE_LEN 3

static bool is_space_at(const char *s, size_t len, size_t i)
{
    return i + SPACE_LEN <= len && memcmp(s + i, SPACE, SPACE_LEN) == 0;
}

void tok_spm_setup(tokenizer *t)
{
    /* llama.cpp's byte fallback: "<0xXX>", else the byte as a token of its
     * own; here the unknown token rather than a crash when neither exists */
    static const char hex[] = "0123456789ABCDEF";
    for (int b = 0; b < 256; b++) {
        char name[6] = {'<', '0', 'x', hex[b >> 4], hex[b & 15], '>'};
        char one = (char)b;
        int32_t id = tok_strmap_find(&t->text_map, &t->text, name, sizeof name);
        if (id < 0)
            id = tok_strmap_find(&t->text_map, &t->text, &one, 1);
        t->byte_tok[b] = id >= 0 ? id : t->unk;
    }
    /* A character that no longer token contains stays a symbol of its own
     * (a newline, for Llama 2), so the text may be cut around it. */
    for (int b = 0; b < 128; b++)
        t->spm_alone[b] = true;
    for (int32_t id = 0; id < t->n_vocab; id++) {
        size_t len;
        const char *s = tok_str(&t->text, (uint32_t)id, &len);
        for (size_t i = 0; i < len && len > 1; i++)
            if ((uint8_t)s[i] < 128)
                t->spm_alone[(uint8_t)s[i]] = false;
    }
    t->spm_words = true;
    for (int32_t id = 0; id < t->n_vocab && t->spm_words; id++) {
        size_t len;
        const char *s = tok_str(&t->text, (uint32_t)id, &len);
        for (size_t i = 1; i < len; i++) {
            if (is_space_at(s, len, i) &&
                (i < SPACE_LEN || !is_space_at(s, len, i - 3))) {
                t->spm_words = false;
                break;
            }
        }
    }
}

/* Orders scores so that the highest is the smallest key, as the queue pops
 * the smallest (the float's bits, made monotonic, then reversed). */
static uint32_t score_key(float score)
{
    uint32_t u;
    memcpy(&u, &score, sizeof u);
    u = (u & 0x80000000u) ? ~u : u | 0x80000000u;
    return ~u;
}

static int try_pair(const tokenizer *t, tok_work *w, const uint8_t *base, int32_t left,
                    int32_t right, mlx_err *err)
{
    if (left < 0 || right < 0)
        return 0;
    const tok_sym *l = &w->sym[left], *r = &w->sym[right];
    int32_t id = tok_strmap_find(&t->text_map, &t->text, base + l->start, l->n + r->n);
    if (id < 0)
        return 0;
    tok_cand c = {(uint64_t)score_key(t->scores[id]) << 32 | (uint32_t)left,
                  left,
                  right,
                  l->n,
                  r->n,
                  id};
    return tok_heap_push(w, &c, err);
}

static int emit(const tokenizer *t, const uint8_t *base, const tok_sym *s, tok_out *out,
                mlx_err *err)
{
    int32_t id = s->id >= 0
                     ? s->id
                     : tok_strmap_find(&t->text_map, &t->text, base + s->start, s->n);
    if (id >= 0)
        return tok_out_push(out, id, err);
    for (uint32_t i = 0; i < s->n; i++) {
        int32_t b = t->byte_tok[base[s->start + i]];
        if (b >= 0) {
            int rc = tok_out_push(out, b, err);
            if (rc != 0)
                return rc;
        }
    }
    return 0;
}

/* Merges the n symbols in w->sym (bytes relative to base) and emits them. */
static int merge_word(const tokenizer *t, tok_work *w, const uint8_t *base, int32_t n,
                      tok_out *out, mlx_err *err)
{
    int rc = 0;
    w->heap_n = 0;
    w->sym[n - 1].next = -1; /* the word ends here, whatever follows */
    for (int32_t i = 1; i < n && rc == 0; i++)
        rc = try_pair(t, w, base, i - 1, i, err);
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
        rc = try_pair(t, w, base, l->prev, c.left, err);
        if (rc == 0)
            rc = try_pair(t, w, base, c.left, l->next, err);
    }
    for (int32_t i = 0; i >= 0 && i < n && rc == 0; i = w->sym[i].next)
        rc = emit(t, base, &w->sym[i], out, err);
    return rc;
}

static const uint8_t char_len[16] = {1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 2, 2, 3, 4};

/* Tokenizes one word (the whole text when words cannot be told apart). */
static int encode_word(const tokenizer *t, tok_work *w, const uint8_t *s, size_t n,
                       tok_out *out, mlx_err *err)
{
    size_t n_ids;
    const int32_t *hit = tok_cache_get(&w->cache, s, n, &n_ids);
    if (hit != NULL)
        return tok_out_append(out, hit, n_ids, err);
    int32_t n_sym = 0;
    for (size_t i = 0; i < n; n_sym++) {
        size_t len = char_len[s[i] >> 4];
        if (len > n - i)
            len = n - i;
        if ((size_t)n_sym == w->sym_cap) {
            int rc = tok_work_grow((void **)&w->sym, &w->sym_cap, (size_t)n_sym + 1,
                                   sizeof *w->sym, err);
            if (rc != 0)
                return rc;
        }
        w->sym[n_sym] = (tok_sym){(uint32_t)i, (uint32_t)len, n_sym - 1, n_sym + 1, -1};
        i += len;
    }
    size_t before = out->n;
    int rc = merge_word(t, w, s, n_sym, out, err);
    if (rc == 0)
        rc = tok_cache_put(&w->cache, s, n, out->ids + before, out->n - before, err);
    return rc;
}

int tok_spm_encode(const tokenizer *t, tok_work *w, const uint8_t *s, size_t n,
                   tok_out *out, mlx_err *err)
{
    size_t word = 0; /* where the current word starts */
    bool prev_space = false;
    for (size_t i = 0; i < n;) {
        size_t len = char_len[s[i] >> 4];
        if (len > n - i)
            len = n - i;
        bool space = len == SPACE_LEN && memcmp(s + i, SPACE, SPACE_LEN) == 0;
        bool alone = len == 1 && s[i] < 128 && t->spm_alone[s[i]];
        int rc = 0;
        if ((alone || (space && !prev_space && t->spm_words)) && i > word) {
            rc = encode_word(t, w, s + word, i - word, out, err);
            word = i;
        }
        prev_space = space;
        i += len;
        if (alone && rc == 0) {
            rc = encode_word(t, w, s + word, i - word, out, err);
            word = i;
        }
        if (rc != 0)
            return rc;
    }
    return n > word ? encode_word(t, w, s + word, n - word, out, err) : 0;
}
