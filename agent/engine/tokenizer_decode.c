/*
 * tokenizer_decode.c — ids back to text, whole (tokenizer_decode) or one id
 * at a time (tokenizer_stream_*).
 *
 * A token's piece may be part of a character: byte-level BPE and the
 * <0xXX> tokens split multi-byte characters across tokens. Both ways of
 * decoding pass the pieces through the same UTF-8 checker, which holds the
 * start of a character back until its last byte arrives and turns what can
 * never become a character into U+FFFD, one per maximal invalid sequence
 * (as the Unicode standard recommends). So a stream never shows a broken
 * character, and the streamed chunks put together are exactly
 * tokenizer_decode's text: valid UTF-8, equal to the original text for
 * ids that came from valid UTF-8.
 *
 * For "llama" vocabularies the space that the encoder put in front of the
 * text (the dummy prefix) is dropped again from the first piece that has
 * any bytes.
 */
#include <string.h>

#include "agent/engine/tokenizer_int.h"
#include "common/alloc.h"
#include "common/buf.h"

/* The length of the character a byte starts, 0 when it cannot start one. */
static size_t seq_len(uint8_t b)
{
    if (b >= 0xC2 && b <= 0xDF)
        return 2;
    if (b >= 0xE0 && b <= 0xEF)
        return 3;
    if (b >= 0xF0 && b <= 0xF4)
        return 4;
    return 0;
}

/* Whether b may be byte k (k >= 1) of a character that starts with lead:
 * the second byte is narrowed to rule out overlong forms, surrogates and
 * code points above U+10FFFF. */
static bool cont_ok(uint8_t lead, size_t k, uint8_t b)
{
    if (k == 1) {
        if (lead == 0xE0)
            return b >= 0xA0 && b <= 0xBF;
        if (lead == 0xED)
            return b >= 0x80 && b <= 0x9F;
        if (lead == 0xF0)
            return b >= 0x90 && b <= 0xBF;
        if (lead == 0xF4)
            return b >= 0x80 && b <= 0x8F;
    }
    return b >= 0x80 && b <= 0xBF;
}

/* Output of the checker; with data NULL it only counts. */
struct sink {
    char *data;
    size_t cap, len;
    bool full;
};

static void put(struct sink *o, const void *p, size_t n)
{
    if (o->data != NULL) {
        if (n > o->cap - o->len) {
            o->full = true;
            return;
        }
        memcpy(o->data + o->len, p, n);
    }
    o->len += n;
}

static const char replacement[3] = {'\xef', '\xbf', '\xbd'};

/* Feeds n bytes through the checker whose unfinished character is
 * pend[0..*np). */
static void feed(uint8_t *pend, size_t *np, const uint8_t *in, size_t n, struct sink *o)
{
    for (size_t i = 0; i < n && !o->full; i++) {
        uint8_t b = in[i];
        if (*np > 0) {
            if (cont_ok(pend[0], *np, b)) {
                pend[(*np)++] = b;
                if (*np == seq_len(pend[0])) {
                    put(o, pend, *np);
                    *np = 0;
                }
                continue;
            }
            put(o, replacement, sizeof replacement); /* cut short: b starts afresh */
            *np = 0;
        }
        if (b < 0x80)
            put(o, &b, 1);
        else if (seq_len(b) > 0)
            pend[(*np)++] = b;
        else
            put(o, replacement, sizeof replacement);
    }
}

size_t tok_piece_bound(const char *piece, size_t len)
{
    uint8_t pend[4];
    size_t np = 0;
    struct sink o = {NULL, 0, 0, false};
    feed(pend, &np, (const uint8_t *)piece, len, &o);
    /* a pending character before the piece may end as U+FFFD; one at its
     * end is held back, at most U+FFFD later */
    return o.len + 3 + (np > 0 ? 3 : 0);
}

/* The bytes of id's piece that are decoded, given whether a piece with
 * bytes has been seen yet. */
static const char *piece_of(const tokenizer *t, int32_t id, bool started, size_t *len)
{
    const char *p = tok_str(&t->piece, (uint32_t)id, len);
    if (!started && t->add_space_prefix && *len > 0 && p[0] == ' ') {
        p++;
        (*len)--;
    }
    return p;
}

static int bad_id(const tokenizer *t, int32_t id, mlx_err *err)
{
    return mlx_err_set(err, MLX_EINVAL, "token id %d is outside the vocabulary (0 to %d)",
                       (int)id, (int)t->n_vocab - 1);
}

int tokenizer_decode(const tokenizer *t, const int32_t *ids, size_t n, char **out,
                     size_t *out_len, mlx_err *err)
{
    *out = NULL;
    if (out_len != NULL)
        *out_len = 0;
    size_t bound = 16;
    for (size_t i = 0; i < n; i++) {
        if (ids[i] < 0 || ids[i] >= t->n_vocab)
            return bad_id(t, ids[i], err);
        size_t len;
        tok_str(&t->piece, (uint32_t)ids[i], &len);
        bound += 3 * len;
    }
    struct sink o = {mlx_malloc(bound), bound - 1, 0, false};
    if (o.data == NULL)
        return mlx_err_set(err, MLX_ENOMEM, "out of memory while decoding tokens");
    uint8_t pend[4];
    size_t np = 0;
    bool started = false;
    for (size_t i = 0; i < n; i++) {
        size_t len, full;
        const char *p = piece_of(t, ids[i], started, &len);
        tok_str(&t->piece, (uint32_t)ids[i], &full);
        started = started || full > 0;
        feed(pend, &np, (const uint8_t *)p, len, &o);
    }
    if (np > 0)
        put(&o, replacement, sizeof replacement);
    o.data[o.len] = '\0';
    *out = o.data;
    if (out_len != NULL)
        *out_len = o.len;
    return 0;
}

void tokenizer_stream_init(engine_decoder *s)
{
    memset(s, 0, sizeof *s);
}

int tokenizer_stream_push(const tokenizer *t, engine_decoder *s, int32_t id, char *out,
                          size_t cap, size_t *n, mlx_err *err)
{
    *n = 0;
    if (id < 0 || id >= t->n_vocab)
        return bad_id(t, id, err);
    size_t len, full;
    const char *p = piece_of(t, id, s->started, &len);
    tok_str(&t->piece, (uint32_t)id, &full);
    /* work on a copy, so that a chunk too big for out changes nothing */
    uint8_t pend[4];
    size_t np = s->n_pending;
    memcpy(pend, s->pending, np);
    struct sink o = {out, cap, 0, false};
    feed(pend, &np, (const uint8_t *)p, len, &o);
    if (o.full)
        return mlx_err_set(
            err, MLX_ETOOBIG,
            "token %d decodes to more than the %zu bytes the caller has room "
            "for",
            (int)id, cap);
    memcpy(s->pending, pend, np);
    s->n_pending = np;
    s->started = s->started || full > 0;
    if (o.len < cap)
        out[o.len] = '\0';
    *n = o.len;
    return 0;
}

size_t tokenizer_stream_flush(engine_decoder *s, char *out, size_t cap)
{
    if (s->n_pending == 0 || cap < sizeof replacement)
        return 0;
    memcpy(out, replacement, sizeof replacement);
    s->n_pending = 0;
    if (cap > sizeof replacement)
        out[sizeof replacement] = '\0';
    return sizeof replacement;
}
