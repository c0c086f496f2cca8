/*
 * tokenizer_special.c — the vocabulary's special tokens, as llama.cpp
 * works them out:
 *
 *  - the special ids (BOS, EOS, EOT, EOM, unknown, padding, fill-in-the-
 *    middle) from tokenizer.ggml.*_token_id, with llama.cpp's defaults
 *    where a key is absent (BOS 1 / EOS 2 / unknown 0 for "llama", 11 / 11
 *    for "gpt2"); 4294967295 (or -1) means "none", as converters write it;
 *  - end-of-turn tokens that the metadata does not name, found by their
 *    text (<|eot_id|>, <|im_end|>, <end_of_turn>, …) and made control
 *    tokens, because converters sometimes type them as normal text;
 *  - which ids end generation: EOS, EOT, EOM, the fill-in-the-middle
 *    padding/repository/file separators, and every token spelled like an
 *    end of turn or of text;
 *  - the tokens a text is searched for before it is tokenized: control,
 *    user-defined and unknown ones, longest first.
 */
#include <stdlib.h>
#include <string.h>

#include "agent/engine/tokenizer_int.h"
#include "common/alloc.h"

/* Ids read from the metadata; those that are not fields of the tokenizer
 * are only needed here. */
struct ids {
    int32_t bos, eos, eot, eom, unk, pad, fim_pre, fim_suf, fim_mid, fim_pad, fim_rep,
        fim_sep;
};

static int read_id(const gguf_file *f, const char *key, int32_t n_vocab, int32_t *id,
                   mlx_err *err)
{
    const gguf_kv *kv = gguf_find(f, key);
    if (kv == NULL)
        return 0;
    int64_t v;
    switch (kv->type) {
    case GGUF_TYPE_UINT8:
    case GGUF_TYPE_UINT16:
    case GGUF_TYPE_UINT32:
    case GGUF_TYPE_UINT64:
        if (kv->v.u64 == UINT32_MAX || kv->v.u64 == UINT64_MAX) {
            *id = -1;
            return 0;
        }
        v = kv->v.u64 > INT32_MAX ? INT64_MAX : (int64_t)kv->v.u64;
        break;
    case GGUF_TYPE_INT8:
    case GGUF_TYPE_INT16:
    case GGUF_TYPE_INT32:
    case GGUF_TYPE_INT64:
        v = kv->v.i64;
        if (v == -1) {
            *id = -1;
            return 0;
        }
        break;
    default:
        return mlx_err_set(err, MLX_ECORRUPT,
                           "metadata key '%s' has type %s; a token id was expected", key,
                           gguf_type_name(kv->type));
    }
    if (v < 0 || v >= n_vocab)
        return mlx_err_set(err, MLX_ECORRUPT,
                           "metadata key '%s' is %lld, which is not a token id (the "
                           "vocabulary has %d tokens)",
                           key, (long long)v, (int)n_vocab);
    *id = (int32_t)v;
    return 0;
}

static int read_ids(tokenizer *t, const gguf_file *f, struct ids *ids, mlx_err *err)
{
    memset(ids, 0xFF, sizeof *ids); /* every id -1 */
    if (t->kind == TOK_SPM) {
        ids->bos = 1;
        ids->eos = 2;
        ids->unk = 0;
    } else {
        ids->bos = ids->eos = 11;
    }
    if (ids->bos >= t->n_vocab)
        ids->bos = ids->eos = -1;
    if (ids->eos >= t->n_vocab)
        ids->eos = -1;
    const struct {
        const char *key;
        int32_t *id;
    } keys[] = {
        {"tokenizer.ggml.bos_token_id", &ids->bos},
        {"tokenizer.ggml.eos_token_id", &ids->eos},
        {"tokenizer.ggml.eot_token_id", &ids->eot},
        {"tokenizer.ggml.eom_token_id", &ids->eom},
        {"tokenizer.ggml.unknown_token_id", &ids->unk},
        {"tokenizer.ggml.padding_token_id", &ids->pad},
        {"tokenizer.ggml.fim_pre_token_id", &ids->fim_pre},
        {"tokenizer.ggml.fim_suf_token_id", &ids->fim_suf},
        {"tokenizer.ggml.fim_mid_token_id", &ids->fim_mid},
        {"tokenizer.ggml.fim_pad_token_id", &ids->fim_pad},
        {"tokenizer.ggml.fim_rep_token_id", &ids->fim_rep},
        {"tokenizer.ggml.fim_sep_token_id", &ids->fim_sep},
        {"tokenizer.ggml.prefix_token_id", &ids->fim_pre},
        {"tokenizer.ggml.suffix_token_id", &ids->fim_suf},
        {"tokenizer.ggml.middle_token_id", &ids->fim_mid},
    };
    for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++) {
        int rc = read_id(f, keys[i].key, t->n_vocab, keys[i].id, err);
        if (rc != 0)
            return rc;
    }
    return 0;
}

static int32_t find_text(const tokenizer *t, const char *s)
{
    return tok_strmap_find(&t->text_map, &t->text, s, strlen(s));
}

/* When *id is unset: the lowest id among the tokens spelled as one of
 * texts (NULL-terminated), which becomes a control token. */
static void detect(tokenizer *t, int32_t *id, const char *const *texts)
{
    if (*id >= 0)
        return;
    for (size_t i = 0; texts[i] != NULL; i++) {
        int32_t k = find_text(t, texts[i]);
        if (k >= 0 && (*id < 0 || k < *id))
            *id = k;
    }
    if (*id >= 0)
        t->attr[*id] = TOK_ATTR_CONTROL;
}

static void mark_eog(tokenizer *t, int32_t id)
{
    if (id >= 0)
        t->attr[id] |= TOK_ATTR_EOG;
}

static void find_specials(tokenizer *t, struct ids *ids)
{
    static const char *const eot[] = {"<|eot_id|>",
                                      "<|im_end|>",
                                      "<|end|>",
                                      "<end_of_turn>",
                                      "<|endoftext|>",
                                      "<EOT>",
                                      "_<EOT>",
                                      "<\xef\xbd\x9c"
                                      "end\xe2\x96\x81of\xe2\x96\x81sentence"
                                      "\xef\xbd\x9c>", /* DeepSeek */
                                      "<end_of_utterance>",
                                      NULL};
    static const char *const eom[] = {"<|eom_id|>", NULL};
    static const char *const pre[] = {"<|fim_prefix|>", "<fim-prefix>",
                                      "<\xef\xbd\x9c"
                                      "fim\xe2\x96\x81"
                                      "begin\xef\xbd\x9c>",
                                      "<PRE>", NULL};
    static const char *const suf[] = {"<|fim_suffix|>", "<fim-suffix>",
                                      "<\xef\xbd\x9c"
                                      "fim\xe2\x96\x81hole\xef\xbd\x9c>",
                                      "<SUF>", NULL};
    static const char *const mid[] = {"<|fim_middle|>", "<fim-middle>",
                                      "<\xef\xbd\x9c"
                                      "fim\xe2\x96\x81"
                                      "end\xef\xbd\x9c>",
                                      "<MID>", NULL};
    static const char *const pad[] = {"<|fim_pad|>", "<fim-pad>", "<PAD>", NULL};
    static const char *const rep[] = {"<|fim_repo|>", "<|repo_name|>", "<fim-repo>",
                                      "<REPO>", NULL};
    static const char *const sep[] = {"<|file_sep|>", NULL};
    /* tokens that end generation whatever the metadata says */
    static const char *const eog[] = {
        "<|eot_id|>",      "<|im_end|>",         "<|end|>", "<end_of_turn>",
        "<|endoftext|>",   "<|eom_id|>",         "<EOT>",   "_<EOT>",
        "<|end_of_text|>", "<end_of_utterance>", NULL};
    detect(t, &ids->eot, eot);
    detect(t, &ids->eom, eom);
    detect(t, &ids->fim_pre, pre);
    detect(t, &ids->fim_suf, suf);
    detect(t, &ids->fim_mid, mid);
    detect(t, &ids->fim_pad, pad);
    detect(t, &ids->fim_rep, rep);
    detect(t, &ids->fim_sep, sep);
    for (size_t i = 0; eog[i] != NULL; i++) {
        int32_t id = find_text(t, eog[i]);
        if (id >= 0) {
            t->attr[id] = (uint8_t)(TOK_ATTR_CONTROL | (t->attr[id] & TOK_ATTR_EOG));
            mark_eog(t, id);
        }
    }
    mark_eog(t, ids->fim_pad);
    mark_eog(t, ids->fim_rep);
    mark_eog(t, ids->fim_sep);
    mark_eog(t, ids->eos);
    mark_eog(t, ids->eot);
    mark_eog(t, ids->eom);
}

struct by_len {
    uint32_t len;
    int32_t id;
};

static int cmp_by_len(const void *a, const void *b)
{
    const struct by_len *x = a, *y = b;
    if (x->len != y->len)
        return x->len > y->len ? -1 : 1;
    return (x->id > y->id) - (x->id < y->id);
}

/* The special tokens longest first (llama.cpp splits a text around each in
 * that order), and for each first byte where they sit in that order. */
static int list_specials(tokenizer *t)
{
    uint32_t n = 0;
    for (int32_t id = 0; id < t->n_vocab; id++)
        if (t->attr[id] & (TOK_ATTR_CONTROL | TOK_ATTR_USER | TOK_ATTR_UNKNOWN))
            n++;
    struct by_len *v = mlx_malloc(((size_t)n + 1) * sizeof *v);
    t->specials = mlx_malloc(((size_t)n + 1) * sizeof *t->specials);
    t->by_byte = mlx_malloc(((size_t)n + 1) * sizeof *t->by_byte);
    t->by_byte_off = mlx_calloc(257, sizeof *t->by_byte_off);
    if (v == NULL || t->specials == NULL || t->by_byte == NULL ||
        t->by_byte_off == NULL) {
        mlx_free(v);
        return MLX_ENOMEM;
    }
    uint32_t k = 0;
    for (int32_t id = 0; id < t->n_vocab; id++) {
        if (t->attr[id] & (TOK_ATTR_CONTROL | TOK_ATTR_USER | TOK_ATTR_UNKNOWN)) {
            v[k].len = t->text.off[id + 1] - t->text.off[id];
            v[k++].id = id;
        }
    }
    qsort(v, n, sizeof *v, cmp_by_len);
    for (uint32_t i = 0; i < n; i++) {
        t->specials[i] = v[i].id;
        t->by_byte_off[(uint8_t)t->text.bytes[t->text.off[v[i].id]] + 1]++;
    }
    t->n_specials = n;
    for (int b = 0; b < 256; b++)
        t->by_byte_off[b + 1] += t->by_byte_off[b];
    uint32_t fill[256];
    memcpy(fill, t->by_byte_off, sizeof fill);
    for (uint32_t i = 0; i < n; i++)
        t->by_byte[fill[(uint8_t)t->text.bytes[t->text.off[v[i].id]]]++] = i;
    mlx_free(v);
    return 0;
}

int tok_special_setup(tokenizer *t, const gguf_file *f, mlx_err *err)
{
    struct ids ids;
    int rc = read_ids(t, f, &ids, err);
    if (rc != 0)
        return rc;
    find_specials(t, &ids);
    t->bos = ids.bos;
    t->eos = ids.eos;
    t->eot = ids.eot;
    t->eom = ids.eom;
    t->unk = ids.unk;
    t->pad = ids.pad;
    if (list_specials(t) != 0)
        return mlx_err_set(err, MLX_ENOMEM, "out of memory while loading the vocabulary");
    if (t->kind == TOK_SPM)
        tok_spm_setup(t);
    return 0;
}
