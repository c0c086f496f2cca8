/* logprobs.c — a generation's log probabilities on their way to the
 * coordinator: the runtime's tokens kept as records in gen.pending_lp (the
 * layout is in internal.h) until a Next cuts them into its TokenChunk.
 *
 * Records rather than runtime_tokens: a runtime_token is about 3 KiB
 * whatever it holds, while a record holds only its pieces, so a coordinator
 * that falls behind costs tens of bytes a token, under the same ceiling as
 * the text (PENDING_MAX).
 */
#include <string.h>

#include "agent/dataplane/internal.h"
#include "common/alloc.h"

#define TOKEN_HEAD 7 /* float logprob, uint16 len, uint8 n_top */
#define ALT_HEAD   6 /* float logprob, uint16 len */

/* Encoded bytes of a TokenLogprob field around its pieces, at most: the
 * field's tag and length (3 bytes cover any length a chunk allows), the
 * logprob's tag and float, the piece's tag and length. An alternative adds
 * the same. */
#define TOKEN_WIRE 13
#define ALT_WIRE   13

_Static_assert(ENGINE_MAX_PIECE <= MLX_MAX_TOKEN_PIECE, "a piece fits a record");
_Static_assert(MLX_MAX_TOKEN_PIECE <= UINT16_MAX, "a piece's length fits uint16");
_Static_assert(RUNTIME_MAX_TOP_LOGPROBS <= MLX_MAX_TOP_LOGPROBS, "alternatives fit");
_Static_assert(MLX_MAX_CHUNK_TOKENS *(TOKEN_WIRE + MLX_MAX_TOKEN_PIECE +
                                      MLX_MAX_TOP_LOGPROBS * ALT_WIRE +
                                      RUNTIME_TOP_TEXT_MAX) <=
                   MLX_MAX_DATA_MSG - MLX_MAX_DATA_CHUNK - 64 * 1024,
               "a chunk's tokens fit beside its text");

/* One record, read back. */
struct record {
    float logprob;
    size_t len;
    const char *text;
    size_t n_top;
    const char *alts; /* the first alternative's head */
    size_t size;      /* bytes of the record */
    size_t wire;      /* its encoded bytes, at most */
};

static size_t put_head(char *p, float logprob, size_t len)
{
    uint16_t n = (uint16_t)len;
    memcpy(p, &logprob, sizeof logprob);
    memcpy(p + 4, &n, sizeof n);
    return ALT_HEAD;
}

static void get_head(const char *p, float *logprob, size_t *len)
{
    uint16_t n;
    memcpy(logprob, p, sizeof *logprob);
    memcpy(&n, p + 4, sizeof n);
    *len = n;
}

/* The record at p; records are ours, so it is whole. */
static void read_record(const char *p, struct record *r)
{
    get_head(p, &r->logprob, &r->len);
    r->n_top = (unsigned char)p[6];
    r->text = p + TOKEN_HEAD;
    r->alts = r->text + r->len;
    r->wire = TOKEN_WIRE + r->len;
    const char *q = r->alts;
    for (size_t k = 0; k < r->n_top; k++) {
        float lp;
        size_t len;
        get_head(q, &lp, &len);
        q += ALT_HEAD + len;
        r->wire += ALT_WIRE + len;
    }
    r->size = (size_t)(q - p);
}

int dp_lp_keep(struct gen *g, const runtime_token *tokens, size_t n)
{
    /* One append a record, so a failure (which empties the buffer) never
     * leaves half of one. */
    char rec[TOKEN_HEAD + ENGINE_MAX_PIECE + RUNTIME_MAX_TOP_LOGPROBS * ALT_HEAD +
             RUNTIME_TOP_TEXT_MAX];
    for (size_t i = 0; i < n; i++) {
        const runtime_token *t = &tokens[i];
        size_t len = t->len < ENGINE_MAX_PIECE ? t->len : ENGINE_MAX_PIECE;
        size_t n_top =
            t->n_top < RUNTIME_MAX_TOP_LOGPROBS ? t->n_top : RUNTIME_MAX_TOP_LOGPROBS;
        size_t at = put_head(rec, t->logprob, len);
        rec[at++] = (char)n_top;
        memcpy(rec + at, t->text, len);
        at += len;
        size_t off = 0; /* in top_text */
        for (size_t k = 0; k < n_top; k++) {
            size_t stored = t->top_len[k];
            if (stored > RUNTIME_TOP_TEXT_MAX - off)
                stored = RUNTIME_TOP_TEXT_MAX - off;
            size_t alen = stored < MLX_MAX_TOKEN_PIECE ? stored : MLX_MAX_TOKEN_PIECE;
            at += put_head(rec + at, t->top[k].logprob, alen);
            memcpy(rec + at, t->top_text + off, alen);
            at += alen;
            off += stored;
        }
        int rc = mlx_buf_append(&g->pending_lp, rec, at);
        if (rc != 0) {
            g->n_pending_lp = 0;
            return rc;
        }
        g->n_pending_lp++;
    }
    return 0;
}

int dp_lp_take(struct gen *g, size_t room, Fleet__TokenChunk *c)
{
    /* Which records go: at most a chunk's worth, within room, and at least
     * one when the chunk has nothing else, so the stream always moves. */
    size_t k = 0, bytes = 0, wire = 0, n_alts = 0;
    while (k < g->n_pending_lp && k < MLX_MAX_CHUNK_TOKENS) {
        struct record r;
        read_record(g->pending_lp.data + bytes, &r);
        if (wire + r.wire > room && !(k == 0 && c->text.len == 0))
            break;
        k++;
        bytes += r.size;
        wire += r.wire;
        n_alts += r.n_top;
    }
    if (k == 0)
        return 0;
    /* One block, freed with c->logprobs: the pointers, the messages, the
     * alternatives' pointers and messages, then the records' bytes that the
     * pieces point into. Each part's size is a multiple of 8. */
    size_t at_toks = k * sizeof(Fleet__TokenLogprob *);
    size_t at_altp = at_toks + k * sizeof(Fleet__TokenLogprob);
    size_t at_alts = at_altp + n_alts * sizeof(Fleet__TokenAlternative *);
    size_t at_bytes = at_alts + n_alts * sizeof(Fleet__TokenAlternative);
    char *block = mlx_malloc(at_bytes + bytes);
    if (block == NULL)
        return MLX_ENOMEM;
    Fleet__TokenLogprob **ptrs = (Fleet__TokenLogprob **)block;
    Fleet__TokenLogprob *toks = (Fleet__TokenLogprob *)(block + at_toks);
    Fleet__TokenAlternative **altp = (Fleet__TokenAlternative **)(block + at_altp);
    Fleet__TokenAlternative *alts = (Fleet__TokenAlternative *)(block + at_alts);
    char *copy = block + at_bytes;
    memcpy(copy, g->pending_lp.data, bytes);
    const char *p = copy;
    size_t a = 0;
    for (size_t i = 0; i < k; i++) {
        struct record r;
        read_record(p, &r);
        Fleet__TokenLogprob *t = &toks[i];
        fleet__token_logprob__init(t);
        t->logprob = r.logprob;
        t->text.data = (uint8_t *)r.text;
        t->text.len = r.len;
        t->n_top = r.n_top;
        t->top = r.n_top > 0 ? &altp[a] : NULL;
        const char *q = r.alts;
        for (size_t j = 0; j < r.n_top; j++, a++) {
            Fleet__TokenAlternative *alt = &alts[a];
            fleet__token_alternative__init(alt);
            size_t len;
            get_head(q, &alt->logprob, &len);
            alt->text.data = (uint8_t *)(q + ALT_HEAD);
            alt->text.len = len;
            altp[a] = alt;
            q += ALT_HEAD + len;
        }
        ptrs[i] = t;
        p += r.size;
    }
    memmove(g->pending_lp.data, g->pending_lp.data + bytes, g->pending_lp.len - bytes);
    g->pending_lp.len -= bytes;
    g->n_pending_lp -= k;
    c->logprobs = ptrs;
    c->n_logprobs = k;
    return 0;
}
