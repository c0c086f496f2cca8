/*
 * tokenizer_load.c — a tokenizer from the tokenizer.ggml.* metadata of a
 * GGUF file, and the accessors of a loaded one.
 *
 * The vocabulary is outside data: every array must have the type and
 * length the format gives it, every id must name a token, and whatever
 * llama.cpp would crash or silently misbehave on (duplicate token texts,
 * a byte token that is not "<0xXX>", a NaN score) is refused with a
 * sentence naming the key. Everything needed later is copied, so the
 * gguf_file may be closed once this returns.
 *
 * The defaults and the rules that are not in the file are llama.cpp's:
 * "llama" vocabularies add BOS and the dummy-prefix space; "gpt2" ones add
 * BOS only for the Llama 3 pre-tokenizer (or when tokenizer.ggml.add_bos_token
 * says so); end-of-turn tokens are recognised by their text and made
 * control tokens (tokenizer_special.c).
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "agent/engine/tokenizer_int.h"
#include "common/alloc.h"

static int corrupt(mlx_err *err, const char *fmt, const char *key)
{
    return mlx_err_set(err, MLX_ECORRUPT, fmt, key);
}

/* An optional array of n elements of type elem; NULL when absent. */
static int optional_arr(const gguf_file *f, const char *key, gguf_type elem, uint64_t n,
                        const gguf_kv **out, mlx_err *err)
{
    *out = NULL;
    if (gguf_find(f, key) == NULL)
        return 0;
    int rc = gguf_get_arr(f, key, elem, out, err);
    if (rc != 0)
        return rc;
    if ((*out)->v.arr.n != n)
        return mlx_err_set(err, MLX_ECORRUPT,
                           "metadata key '%s' has %llu elements, but "
                           "tokenizer.ggml.tokens has %llu",
                           key, (unsigned long long)(*out)->v.arr.n,
                           (unsigned long long)n);
    return 0;
}

static int read_model(tokenizer *t, const gguf_file *f, mlx_err *err)
{
    gguf_str model;
    int rc = gguf_get_str(f, "tokenizer.ggml.model", &model, err);
    if (rc == MLX_ENOENT)
        return corrupt(err, "the model has no tokenizer: metadata key '%s' is missing",
                       "tokenizer.ggml.model");
    if (rc != 0)
        return rc;
    if (gguf_str_eq(model, "llama")) {
        t->kind = TOK_SPM;
        t->add_bos = true;
        t->add_space_prefix = true;
        return 0;
    }
    if (gguf_str_eq(model, "gpt2")) {
        t->kind = TOK_BPE;
        return 0;
    }
    return mlx_err_set(err, MLX_ECORRUPT,
                       "tokenizer.ggml.model is '%.*s', which is not supported; "
                       "'llama' (SentencePiece) and 'gpt2' (byte-level BPE) are",
                       (int)(model.len > 40 ? 40 : model.len), model.ptr);
}

/* tokenizer.ggml.pre: which split a "gpt2" vocabulary uses, named as
 * llama.cpp names them. Absent: the Llama 3 split. */
static int read_pre(tokenizer *t, const gguf_file *f, mlx_err *err)
{
    static const struct {
        const char *name;
        tok_pre pre;
    } names[] = {
        {"llama-bpe", TOK_PRE_LLAMA3}, {"llama3", TOK_PRE_LLAMA3},
        {"llama-v3", TOK_PRE_LLAMA3},  {"falcon3", TOK_PRE_LLAMA3},
        {"pixtral", TOK_PRE_LLAMA3},   {"qwen2", TOK_PRE_QWEN2},
        {"megrez", TOK_PRE_QWEN2},     {"deepseek-r1-qwen", TOK_PRE_QWEN2},
        {"smollm", TOK_PRE_SMOLLM},    {"gpt-2", TOK_PRE_GPT2},
    };
    t->pre = TOK_PRE_LLAMA3;
    gguf_str pre = {"llama-bpe", 9};
    int rc = gguf_get_str(f, "tokenizer.ggml.pre", &pre, err);
    if (rc != 0 && rc != MLX_ENOENT)
        return rc;
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        if (gguf_str_eq(pre, names[i].name)) {
            t->pre = names[i].pre;
            /* llama.cpp keeps Llama 3's whole-word tokens and adds its BOS */
            t->ignore_merges = t->add_bos = t->pre == TOK_PRE_LLAMA3;
            return 0;
        }
    }
    return mlx_err_set(err, MLX_ECORRUPT,
                       "tokenizer.ggml.pre is '%.*s', a pre-tokenizer that is not "
                       "supported; llama-bpe, qwen2, smollm and gpt-2 are",
                       (int)(pre.len > 40 ? 40 : pre.len), pre.ptr);
}

static int read_flag(const gguf_file *f, const char *key, bool *v, mlx_err *err)
{
    int rc = gguf_get_bool(f, key, v, err);
    return rc == MLX_ENOENT ? 0 : rc;
}

/* Copies the token texts (an empty one becomes "[EMPTY_<id>]", as in
 * llama.cpp) and indexes them; a text given twice is refused. */
static int read_texts(tokenizer *t, const gguf_kv *tokens, mlx_err *err)
{
    uint32_t n = (uint32_t)t->n_vocab;
    uint64_t total = 0, pos = 0;
    for (uint32_t i = 0; i < n; i++) {
        gguf_str s = gguf_arr_str_next(tokens, &pos);
        total += s.len > 0 ? s.len : 20;
    }
    if (total > UINT32_MAX)
        return corrupt(err, "metadata key '%s' holds more than 4 GiB of text",
                       "tokenizer.ggml.tokens");
    t->text.bytes = mlx_malloc((size_t)total + 1);
    t->text.off = mlx_malloc(((size_t)n + 1) * sizeof *t->text.off);
    if (t->text.bytes == NULL || t->text.off == NULL ||
        tok_strmap_init(&t->text_map, n) != 0)
        return mlx_err_set(err, MLX_ENOMEM, "out of memory while loading the vocabulary");
    t->text.n = n;
    t->text.off[0] = 0;
    pos = 0;
    for (uint32_t i = 0; i < n; i++) {
        gguf_str s = gguf_arr_str_next(tokens, &pos);
        char *dst = t->text.bytes + t->text.off[i];
        size_t len = (size_t)s.len;
        if (len > 0)
            memcpy(dst, s.ptr, len);
        else
            len = (size_t)snprintf(dst, 21, "[EMPTY_%u]", i);
        t->text.off[i + 1] = t->text.off[i] + (uint32_t)len;
        int32_t dup = tok_strmap_add(&t->text_map, &t->text, i);
        if (dup >= 0)
            return mlx_err_set(err, MLX_ECORRUPT,
                               "tokenizer.ggml.tokens holds '%.*s' twice, as tokens "
                               "%d and %u",
                               (int)(len > 40 ? 40 : len), dst, dup, i);
    }
    return 0;
}

static int hex_digit(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    return -1;
}

/* The byte of a "<0xXX>" token, or -1. */
static int byte_token_value(const char *s, size_t len)
{
    if (len != 6 || memcmp(s, "<0x", 3) != 0 || s[5] != '>')
        return -1;
    int hi = hex_digit(s[3]), lo = hex_digit(s[4]);
    return hi < 0 || lo < 0 ? -1 : hi * 16 + lo;
}

static int read_types_scores(tokenizer *t, const gguf_file *f, mlx_err *err)
{
    uint64_t n = (uint64_t)t->n_vocab;
    const gguf_kv *types, *scores;
    /* llama.cpp reads the types as 32-bit integers whatever their sign */
    const gguf_kv *kv = gguf_find(f, "tokenizer.ggml.token_type");
    gguf_type tt =
        kv != NULL && kv->type == GGUF_TYPE_ARRAY && kv->v.arr.type == GGUF_TYPE_UINT32
            ? GGUF_TYPE_UINT32
            : GGUF_TYPE_INT32;
    int rc = optional_arr(f, "tokenizer.ggml.token_type", tt, n, &types, err);
    if (rc == 0)
        rc = optional_arr(f, "tokenizer.ggml.scores", GGUF_TYPE_FLOAT32, n, &scores, err);
    if (rc != 0)
        return rc;
    t->attr = mlx_calloc(n, 1);
    t->scores = mlx_calloc(n, sizeof *t->scores);
    if (t->attr == NULL || t->scores == NULL)
        return mlx_err_set(err, MLX_ENOMEM, "out of memory while loading the vocabulary");
    static const uint8_t attr_of_type[] = {0,
                                           TOK_ATTR_NORMAL,
                                           TOK_ATTR_UNKNOWN,
                                           TOK_ATTR_CONTROL,
                                           TOK_ATTR_USER,
                                           TOK_ATTR_UNUSED,
                                           TOK_ATTR_BYTE};
    for (uint64_t i = 0; i < n; i++) {
        int32_t type = 1;
        if (types != NULL)
            memcpy(&type, types->v.arr.data + 4 * i, 4);
        if (type < 0 || type > 6)
            return mlx_err_set(err, MLX_ECORRUPT,
                               "tokenizer.ggml.token_type gives token %llu the type %d; "
                               "types are 0 to 6",
                               (unsigned long long)i, (int)type);
        t->attr[i] = attr_of_type[type];
        size_t len;
        const char *s = tok_str(&t->text, (uint32_t)i, &len);
        if (type == 6 && t->kind == TOK_SPM && byte_token_value(s, len) < 0)
            return mlx_err_set(err, MLX_ECORRUPT,
                               "tokenizer.ggml.token_type makes token %llu ('%.*s') a "
                               "byte token, but it is not written <0xXX>",
                               (unsigned long long)i, (int)(len > 40 ? 40 : len), s);
        if (scores != NULL) {
            float v;
            memcpy(&v, scores->v.arr.data + 4 * i, 4);
            if (isnan(v))
                return mlx_err_set(err, MLX_ECORRUPT,
                                   "tokenizer.ggml.scores is NaN for token %llu",
                                   (unsigned long long)i);
            t->scores[i] = v == 0 ? 0.0f : v; /* -0 ranks as 0 */
        }
    }
    return 0;
}

/* What each token decodes to (see tokenizer_piece in tokenizer.h). */
static int build_pieces(tokenizer *t, mlx_err *err)
{
    uint32_t n = (uint32_t)t->n_vocab;
    size_t cap = (size_t)t->text.off[n] + 16;
    t->piece.off = mlx_malloc(((size_t)n + 1) * sizeof *t->piece.off);
    t->piece.bytes = mlx_malloc(cap);
    if (t->piece.off == NULL || t->piece.bytes == NULL)
        return mlx_err_set(err, MLX_ENOMEM, "out of memory while loading the vocabulary");
    t->piece.n = n;
    t->piece.off[0] = 0;
    size_t used = 0;
    for (uint32_t id = 0; id < n; id++) {
        size_t len;
        const char *s = tok_str(&t->text, id, &len);
        uint8_t a = t->attr[id];
        /* a longer piece is refused below; room = the most that is kept */
        size_t room = len + ENGINE_MAX_PIECE;
        int rc = tok_work_grow((void **)&t->piece.bytes, &cap, used + room, 1, err);
        if (rc != 0)
            return rc;
        char *dst = t->piece.bytes + used;
        size_t k = 0;
        if (a & (TOK_ATTR_CONTROL | TOK_ATTR_UNKNOWN)) {
            k = 0;
        } else if (a & TOK_ATTR_USER) {
            memcpy(dst, s, len);
            k = len;
        } else if ((a & TOK_ATTR_BYTE) && t->kind == TOK_SPM) {
            dst[k++] = (char)byte_token_value(s, len);
        } else if ((a & TOK_ATTR_NORMAL) && t->kind == TOK_SPM) {
            for (size_t i = 0; i < len; i++) {
                if (i + 3 <= len && memcmp(s + i, "\xe2\x96\x81", 3) == 0) {
                    dst[k++] = ' ';
                    i += 2;
                } else {
                    dst[k++] = s[i];
                }
            }
        } else if (a & TOK_ATTR_NORMAL) {
            k = tok_bpe_piece(s, len, dst, room);
        }
        /* ENGINE_MAX_PIECE must hold what one streamed token can release */
        if (k > room || tok_piece_bound(dst, k) > ENGINE_MAX_PIECE)
            return mlx_err_set(err, MLX_ECORRUPT,
                               "token %u of tokenizer.ggml.tokens decodes to %zu bytes, "
                               "too many for one streamed piece (at most %d)",
                               id, k, ENGINE_MAX_PIECE);
        used += k;
        t->piece.off[id + 1] = (uint32_t)used;
    }
    return 0;
}

int tokenizer_load(const gguf_file *f, tokenizer **out, mlx_err *err)
{
    tokenizer *t = mlx_calloc(1, sizeof *t);
    if (t == NULL)
        return mlx_err_set(err, MLX_ENOMEM, "out of memory while loading the vocabulary");
    const gguf_kv *tokens;
    int rc = read_model(t, f, err);
    if (rc == 0 && t->kind == TOK_BPE)
        rc = read_pre(t, f, err);
    if (rc == 0)
        rc = gguf_get_arr(f, "tokenizer.ggml.tokens", GGUF_TYPE_STRING, &tokens, err);
    if (rc == MLX_ENOENT)
        rc = corrupt(err, "the model has a tokenizer but no token list ('%s')",
                     "tokenizer.ggml.tokens");
    if (rc != 0)
        goto fail;
    if (tokens->v.arr.n == 0 || tokens->v.arr.n > INT32_MAX) {
        rc = corrupt(err, "metadata key '%s' holds no tokens", "tokenizer.ggml.tokens");
        goto fail;
    }
    t->n_vocab = (int32_t)tokens->v.arr.n;
    rc = read_flag(f, "tokenizer.ggml.add_space_prefix", &t->add_space_prefix, err);
    if (rc == 0)
        rc = read_flag(f, "tokenizer.ggml.add_bos_token", &t->add_bos, err);
    if (rc == 0)
        rc = read_texts(t, tokens, err);
    if (rc == 0)
        rc = read_types_scores(t, f, err);
    if (rc == 0 && t->kind == TOK_BPE) {
        const gguf_kv *merges;
        rc = gguf_get_arr(f, "tokenizer.ggml.merges", GGUF_TYPE_STRING, &merges, err);
        if (rc == MLX_ENOENT)
            rc = corrupt(err, "the byte-level BPE vocabulary has no merges ('%s')",
                         "tokenizer.ggml.merges");
        if (rc == 0)
            rc = tok_bpe_load(t, merges, err);
    }
    if (rc == 0)
        rc = tok_special_setup(t, f, err);
    if (rc == 0)
        rc = build_pieces(t, err);
    if (rc != 0)
        goto fail;
    *out = t;
    return 0;
fail:
    tokenizer_free(t);
    return rc;
}

void tokenizer_free(tokenizer *t)
{
    if (t == NULL)
        return;
    mlx_free(t->attr);
    mlx_free(t->scores);
    mlx_free(t->text.bytes);
    mlx_free(t->text.off);
    mlx_free(t->piece.bytes);
    mlx_free(t->piece.off);
    tok_strmap_fini(&t->text_map);
    mlx_free(t->specials);
    mlx_free(t->by_byte_off);
    mlx_free(t->by_byte);
    mlx_free(t->raw.bytes);
    mlx_free(t->raw.off);
    tok_strmap_fini(&t->raw_map);
    tok_pairmap_fini(&t->merges);
    mlx_free(t);
}

int32_t tokenizer_n_vocab(const tokenizer *t)
{
    return t->n_vocab;
}

int32_t tokenizer_bos(const tokenizer *t)
{
    return t->bos;
}

int32_t tokenizer_eos(const tokenizer *t)
{
    return t->eos;
}

bool tokenizer_adds_bos(const tokenizer *t)
{
    return t->add_bos && t->bos >= 0;
}

bool tokenizer_is_eog(const tokenizer *t, int32_t id)
{
    return id >= 0 && id < t->n_vocab && (t->attr[id] & TOK_ATTR_EOG) != 0;
}

const char *tokenizer_piece(const tokenizer *t, int32_t id, size_t *len)
{
    if (id < 0 || id >= t->n_vocab) {
        *len = 0;
        return "";
    }
    return tok_str(&t->piece, (uint32_t)id, len);
}
