/*
 * tokenizer_bpe_load.c — the tables of a byte-level BPE ("gpt2")
 * vocabulary.
 *
 * GPT-2's vocabularies spell bytes as printable characters: the 188 bytes
 * that are printable Latin-1 stand for themselves (U+0021..U+007E,
 * U+00A1..U+00AC, U+00AE..U+00FF), the other 68 become U+0100..U+0143 in
 * byte order (so a space is 'Ġ', U+0120). A text is split into words, each
 * word's bytes are spelled so, and merges join adjacent pieces by the rank
 * of the pair in tokenizer.ggml.merges ("Ġ t" first, …).
 *
 * Rather than spell every word of every prompt, the tables are turned
 * around once here: each token and each half of a merge becomes the raw
 * bytes it stands for, a string index in t->raw, so the merge loop works on
 * the text's own bytes and a pair of indices finds its merge in one hash
 * probe. A merge half that is no token gets an index of its own (past the
 * tokens), so that malformed vocabularies still merge as llama.cpp merges
 * them. Merges with a half outside the alphabet can never apply and are
 * left out; their ranks stay as the file numbers them.
 */
#include <string.h>

#include "agent/engine/tokenizer_int.h"
#include "agent/engine/unicode.h"
#include "common/alloc.h"

#define N_REMAPPED 68 /* bytes that are not printable Latin-1 */

static int byte_of_cp(uint32_t cp)
{
    if ((cp >= 0x21 && cp <= 0x7E) || (cp >= 0xA1 && cp <= 0xAC) ||
        (cp >= 0xAE && cp <= 0xFF))
        return (int)cp;
    if (cp < 0x100 || cp >= 0x100 + N_REMAPPED)
        return -1;
    uint32_t k = cp - 0x100;
    if (k <= 0x20)
        return (int)k; /* 0x00..0x20 */
    if (k < 33 + 34)
        return (int)(0x7F + k - 33); /* 0x7F..0xA0 */
    return 0xAD;
}

static uint32_t cp_of_byte(int b)
{
    if (b <= 0x20)
        return 0x100 + (uint32_t)b;
    if (b >= 0x7F && b <= 0xA0)
        return 0x100 + 33 + (uint32_t)(b - 0x7F);
    if (b == 0xAD)
        return 0x100 + 67;
    return (uint32_t)b;
}

bool tok_bpe_unmap(const char *text, size_t len, uint8_t *out, size_t *out_len)
{
    const uint8_t *s = (const uint8_t *)text;
    size_t n = 0;
    for (size_t i = 0; i < len;) {
        uint32_t cp;
        uint8_t enc[4];
        size_t k = unicode_decode(s + i, len - i, &cp);
        int b = byte_of_cp(cp);
        /* Only the canonical spelling can ever equal a spelled word. */
        if (b < 0 || unicode_encode(cp, enc) != k)
            return false;
        out[n++] = (uint8_t)b;
        i += k;
    }
    *out_len = n;
    return true;
}

static void put(char *out, size_t cap, size_t *n, const void *p, size_t len)
{
    if (*n < cap)
        memcpy(out + *n, p, len < cap - *n ? len : cap - *n);
    *n += len;
}

size_t tok_bpe_piece(const char *text, size_t len, char *out, size_t cap)
{
    static const char hex[] = "0123456789abcdef";
    const uint8_t *s = (const uint8_t *)text;
    size_t n = 0;
    for (size_t i = 0; i < len;) {
        uint32_t cp;
        i += unicode_decode(s + i, len - i, &cp);
        int b = byte_of_cp(cp);
        if (b >= 0) {
            uint8_t c = (uint8_t)b;
            put(out, cap, &n, &c, 1);
            continue;
        }
        uint8_t enc[4];
        size_t k = unicode_encode(cp, enc);
        put(out, cap, &n, "[UNK_BYTE_0x", 12);
        for (size_t j = 0; j < k; j++) {
            char h[2] = {hex[enc[j] >> 4], hex[enc[j] & 15]};
            put(out, cap, &n, h, 2);
        }
        put(out, cap, &n, text, len);
        put(out, cap, &n, "]", 1);
    }
    return n;
}

/* t->raw while it grows: bytes and offsets with their capacities. */
struct rawtab {
    size_t bytes_cap, off_cap;
};

static int raw_append(tokenizer *t, struct rawtab *rt, const uint8_t *s, size_t len,
                      mlx_err *err)
{
    tok_strtab *r = &t->raw;
    size_t used = r->off[r->n];
    if (used + len > UINT32_MAX || r->n >= INT32_MAX - 1)
        return mlx_err_set(err, MLX_ECORRUPT,
                           "the vocabulary's tokens and merges are too large");
    int rc = tok_work_grow((void **)&r->bytes, &rt->bytes_cap, used + len + 1, 1, err);
    if (rc == 0)
        rc = tok_work_grow((void **)&r->off, &rt->off_cap, (size_t)r->n + 2,
                           sizeof *r->off, err);
    if (rc != 0)
        return rc;
    memcpy(r->bytes + used, s, len);
    r->n++;
    r->off[r->n] = (uint32_t)(used + len);
    return 0;
}

/* The halves of merge string s, split at the first space after its first
 * byte as llama.cpp splits them. */
static int merge_halves(const gguf_str *s, uint64_t i, gguf_str *a, gguf_str *b,
                        mlx_err *err)
{
    const char *sp = s->len > 1 ? memchr(s->ptr + 1, ' ', s->len - 1) : NULL;
    if (sp == NULL || sp + 1 == s->ptr + s->len)
        return mlx_err_set(err, MLX_ECORRUPT,
                           "tokenizer.ggml.merges entry %llu ('%.*s') is not two pieces "
                           "separated by a space",
                           (unsigned long long)i, (int)(s->len > 60 ? 60 : s->len),
                           s->ptr);
    a->ptr = s->ptr;
    a->len = (uint64_t)(sp - s->ptr);
    b->ptr = sp + 1;
    b->len = s->len - a->len - 1;
    return 0;
}

/* The string index of raw bytes, adding them when absent. */
static int find_or_add(tokenizer *t, struct rawtab *rt, const uint8_t *s, size_t len,
                       int32_t *idx, mlx_err *err)
{
    *idx = tok_strmap_find(&t->raw_map, &t->raw, s, len);
    if (*idx >= 0)
        return 0;
    if (tok_strmap_reserve(&t->raw_map, 1) != 0)
        return mlx_err_set(err, MLX_ENOMEM, "out of memory while loading the BPE merges");
    int rc = raw_append(t, rt, s, len, err);
    if (rc != 0)
        return rc;
    *idx = (int32_t)t->raw.n - 1;
    tok_strmap_add(&t->raw_map, &t->raw, t->raw.n - 1);
    return 0;
}

/* Adds the merges, and their halves that are no token. */
static int add_merges(tokenizer *t, struct rawtab *rt, const gguf_kv *merges,
                      uint8_t *buf, mlx_err *err)
{
    uint64_t pos = 0;
    for (uint64_t i = 0; i < merges->v.arr.n; i++) {
        gguf_str s = gguf_arr_str_next(merges, &pos), h[2];
        int rc = merge_halves(&s, i, &h[0], &h[1], err);
        if (rc != 0)
            return rc;
        int32_t idx[2];
        bool usable = true;
        for (int k = 0; k < 2 && usable; k++) {
            size_t len;
            usable = tok_bpe_unmap(h[k].ptr, h[k].len, buf, &len);
            if (usable && (rc = find_or_add(t, rt, buf, len, &idx[k], err)) != 0)
                return rc;
        }
        if (!usable)
            continue;
        tok_merge *m = tok_pairmap_slot(&t->merges, idx[0], idx[1]);
        if (m->key == UINT64_MAX) { /* a repeated pair keeps its first rank */
            m->key = (uint64_t)(uint32_t)idx[0] << 32 | (uint32_t)idx[1];
            m->rank = (uint32_t)i;
        }
    }
    return 0;
}

/* The merged string of every merge, looked up once all halves are known. */
static int merges_resolve(tokenizer *t, mlx_err *err)
{
    uint8_t *cat = NULL;
    size_t cap = 0;
    for (uint32_t i = 0; i <= t->merges.mask; i++) {
        tok_merge *m = &t->merges.slots[i];
        if (m->key == UINT64_MAX)
            continue;
        size_t la, lb;
        const char *a = tok_str(&t->raw, (uint32_t)(m->key >> 32), &la);
        const char *b = tok_str(&t->raw, (uint32_t)m->key, &lb);
        int rc = tok_work_grow((void **)&cat, &cap, la + lb, 1, err);
        if (rc != 0) {
            mlx_free(cat);
            return rc;
        }
        memcpy(cat, a, la);
        memcpy(cat + la, b, lb);
        m->result = tok_strmap_find(&t->raw_map, &t->raw, cat, la + lb);
    }
    mlx_free(cat);
    return 0;
}

static int build_raw_tokens(tokenizer *t, struct rawtab *rt, uint8_t *buf, mlx_err *err)
{
    for (int32_t id = 0; id < t->n_vocab; id++) {
        size_t len, raw_len = 0;
        const char *s = tok_str(&t->text, (uint32_t)id, &len);
        bool ok = tok_bpe_unmap(s, len, buf, &raw_len);
        int rc = raw_append(t, rt, buf, ok ? raw_len : 0, err);
        if (rc != 0)
            return rc;
    }
    return 0;
}

/* Indexes the tokens' raw strings; tokens outside the alphabet (empty raw
 * strings) are left out. */
static int index_tokens(tokenizer *t)
{
    if (tok_strmap_init(&t->raw_map, (uint32_t)t->n_vocab) != 0)
        return MLX_ENOMEM;
    for (int32_t id = 0; id < t->n_vocab; id++)
        if (t->raw.off[id + 1] > t->raw.off[id])
            tok_strmap_add(&t->raw_map, &t->raw, (uint32_t)id);
    return 0;
}

static void build_byte_tables(tokenizer *t)
{
    for (int b = 0; b < 256; b++) {
        uint8_t c = (uint8_t)b;
        t->byte_sid[b] = tok_strmap_find(&t->raw_map, &t->raw, &c, 1);
        uint8_t enc[4];
        size_t k = unicode_encode(cp_of_byte(b), enc);
        t->byte_enc[b][0] = (uint8_t)k;
        /* A word piece that is no token falls back to the tokens of the
         * single bytes of its spelling, as llama.cpp does. */
        for (size_t j = 0; j < 2; j++) {
            t->byte_enc[b][1 + j] = j < k ? enc[j] : 0;
            t->byte_fb[b][j] =
                j < k ? tok_strmap_find(&t->text_map, &t->text, &enc[j], 1) : -1;
        }
    }
}

int tok_bpe_load(tokenizer *t, const gguf_kv *merges, mlx_err *err)
{
    struct rawtab rt = {0, 0};
    uint8_t *buf = NULL;
    size_t longest = 0;
    for (uint32_t i = 0; i < t->text.n; i++)
        if (t->text.off[i + 1] - t->text.off[i] > longest)
            longest = t->text.off[i + 1] - t->text.off[i];
    uint64_t pos = 0;
    for (uint64_t i = 0; i < merges->v.arr.n; i++) {
        gguf_str s = gguf_arr_str_next(merges, &pos);
        if (s.len > longest)
            longest = (size_t)s.len;
    }
    int rc = MLX_ENOMEM;
    buf = mlx_malloc(longest + 1);
    t->raw.off = mlx_calloc(1, sizeof *t->raw.off);
    rt.off_cap = 1;
    if (buf == NULL || t->raw.off == NULL)
        goto fail;
    rc = build_raw_tokens(t, &rt, buf, err);
    if (rc != 0)
        goto fail;
    rc = MLX_ENOMEM;
    if (index_tokens(t) != 0 ||
        tok_pairmap_init(&t->merges, (uint32_t)(merges->v.arr.n * 2 / 3 + 1)) != 0)
        goto fail;
    rc = add_merges(t, &rt, merges, buf, err);
    if (rc == 0)
        rc = merges_resolve(t, err);
    if (rc != 0)
        goto fail;
    build_byte_tables(t);
    mlx_free(buf);
    return 0;
fail:
    mlx_free(buf);
    if (rc == MLX_ENOMEM)
        mlx_err_set(err, MLX_ENOMEM, "out of memory while loading the BPE merges");
    return rc;
}
