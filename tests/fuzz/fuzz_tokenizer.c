/*
 * fuzz_tokenizer.c — the tokenizers on arbitrary text, with two small
 * vocabularies built in memory (no files needed): a SentencePiece one
 * ("llama", with byte fallback and control tokens) and a byte-level BPE one
 * ("gpt2", all 256 bytes, merges, control tokens), the latter under each
 * pre-tokenizer split.
 *
 * Input: one byte of options (vocabulary and split, add_bos,
 * parse_special), then the text. An input that starts with "GGUF" is a
 * vocabulary instead: whatever of it loads tokenizes and decodes a fixed
 * text (the corpus holds the built-in vocabularies as files to mutate). Checked: every id
 * is in the vocabulary; decoding gives valid UTF-8, and streaming the ids one at a time
 * gives the same text with no chunk ending inside a character; and, when the text is
 * valid UTF-8 and special tokens are not parsed, decoding gives back the
 * very text (every byte has a token in both vocabularies, and every merge
 * makes a token, so nothing can be lost), unless a SentencePiece text holds
 * a U+2581, which decodes as the space it stands for.
 */
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "agent/engine/gguf.h"
#include "agent/engine/tokenizer.h"
#include "common/alloc.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define SP "\xe2\x96\x81"

static const char *const spm_pieces[] = {
    SP,        "a",         "b",      "e",  "t",    "h",   SP "t",     "he",
    SP "th",   "the",       SP "the", "ab", SP "a", SP SP, "\xc3\xa9", "\xe6\x9d\xb1",
    "<|ctl|>", "<|im_end|>"};

static const char *const bpe_more[] = {"ab",
                                       "abc",
                                       "\xc4\xa0"
                                       "a",
                                       "aa",
                                       "qr",
                                       "qrs",
                                       "th",
                                       "the",
                                       "\xc4\xa0"
                                       "the",
                                       "12",
                                       "<|eot_id|>",
                                       "<|begin_of_text|>"};
static const char *const bpe_merges[] = {"a b",          "ab c", "\xc4\xa0 a", "a a",
                                         "q r",          "qr s", "t h",        "th e",
                                         "\xc4\xa0 the", "1 2"};

static void fail(const char *what)
{
    fprintf(stderr, "fuzz_tokenizer: %s\n", what);
    abort();
}

static tokenizer *load(gguf_writer *w)
{
    void *mem = NULL;
    size_t len = 0;
    gguf_file *f = NULL;
    tokenizer *t = NULL;
    mlx_err err;
    if (gguf_writer_to_mem(w, &mem, &len, &err) != 0 ||
        gguf_open_mem(mem, len, &f, &err) != 0 || tokenizer_load(f, &t, &err) != 0) {
        fprintf(stderr, "%s\n", err.msg);
        fail("the built-in vocabulary does not load");
    }
    gguf_close(f);
    mlx_free(mem);
    gguf_writer_free(w);
    return t;
}

static tokenizer *spm_vocab(void)
{
    enum { N = 3 + 256 + sizeof spm_pieces / sizeof spm_pieces[0] };
    static char bytes[256][7];
    const char *tokens[N] = {"<unk>", "<s>", "</s>"};
    float scores[N] = {0};
    int32_t types[N] = {2, 3, 3};
    for (int b = 0; b < 256; b++) {
        snprintf(bytes[b], sizeof bytes[b], "<0x%02X>", b);
        tokens[3 + b] = bytes[b];
        types[3 + b] = 6;
    }
    for (size_t i = 259; i < N; i++) {
        tokens[i] = spm_pieces[i - 259];
        scores[i] = -(float)(i % 7); /* ties on purpose */
        types[i] = i + 2 >= N ? 3 : 1;
    }
    gguf_writer *w = NULL;
    gguf_writer_new(&w, NULL);
    gguf_writer_set_str(w, "tokenizer.ggml.model", "llama", NULL);
    gguf_writer_set_arr_str(w, "tokenizer.ggml.tokens", tokens, N, NULL);
    gguf_writer_set_arr_f32(w, "tokenizer.ggml.scores", scores, N, NULL);
    gguf_writer_set_arr_i32(w, "tokenizer.ggml.token_type", types, N, NULL);
    return load(w);
}

static tokenizer *bpe_vocab(const char *pre)
{
    enum { N = 256 + sizeof bpe_more / sizeof bpe_more[0] };
    static char bytes[256][3];
    const char *tokens[N];
    int32_t types[N];
    int k = 0;
    for (int b = 0; b < 256; b++) {
        bool printable =
            (b >= 0x21 && b <= 0x7E) || (b >= 0xA1 && b <= 0xAC) || b >= 0xAE;
        uint32_t cp = printable ? (uint32_t)b : 0x100 + (uint32_t)k++;
        if (cp < 0x80) {
            bytes[b][0] = (char)cp;
        } else {
            bytes[b][0] = (char)(0xC0 | cp >> 6);
            bytes[b][1] = (char)(0x80 | (cp & 0x3F));
        }
        tokens[b] = bytes[b];
        types[b] = 1;
    }
    for (size_t i = 256; i < N; i++) {
        tokens[i] = bpe_more[i - 256];
        types[i] = i + 2 >= N ? 3 : 1;
    }
    gguf_writer *w = NULL;
    gguf_writer_new(&w, NULL);
    gguf_writer_set_str(w, "tokenizer.ggml.model", "gpt2", NULL);
    gguf_writer_set_str(w, "tokenizer.ggml.pre", pre, NULL);
    gguf_writer_set_arr_str(w, "tokenizer.ggml.tokens", tokens, N, NULL);
    gguf_writer_set_arr_i32(w, "tokenizer.ggml.token_type", types, N, NULL);
    gguf_writer_set_arr_str(w, "tokenizer.ggml.merges", bpe_merges,
                            sizeof bpe_merges / sizeof bpe_merges[0], NULL);
    gguf_writer_set_u32(w, "tokenizer.ggml.bos_token_id", N - 1, NULL);
    return load(w);
}

/* Strictly valid UTF-8 (no overlong forms, surrogates, or beyond U+10FFFF). */
static bool valid_utf8(const uint8_t *s, size_t n)
{
    for (size_t i = 0; i < n;) {
        if (s[i] < 0x80) {
            i++;
            continue;
        }
        size_t k = s[i] >= 0xF0 ? 4 : s[i] >= 0xE0 ? 3 : s[i] >= 0xC0 ? 2 : 0;
        if (k == 0 || s[i] > 0xF4 || i + k > n)
            return false;
        uint32_t cp = s[i] & (0x7F >> k);
        for (size_t j = 1; j < k; j++) {
            if ((s[i + j] & 0xC0) != 0x80)
                return false;
            cp = cp << 6 | (s[i + j] & 0x3F);
        }
        static const uint32_t least[5] = {0, 0, 0x80, 0x800, 0x10000};
        if (cp < least[k] || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF))
            return false;
        i += k;
    }
    return true;
}

static bool has_spm_space(const uint8_t *s, size_t n)
{
    for (size_t i = 0; i + 3 <= n; i++)
        if (memcmp(s + i, SP, 3) == 0)
            return true;
    return false;
}

/* round_trip: whether decode(encode(text)) must be the text itself. */
static void check(const tokenizer *t, const uint8_t *text, size_t len, bool bos,
                  bool special, bool round_trip)
{
    int32_t *ids = NULL;
    size_t n = 0;
    mlx_err err;
    if (tokenizer_encode(t, (const char *)text, len, bos, special, &ids, &n, &err) != 0)
        fail(err.msg);
    for (size_t i = 0; i < n; i++)
        if (ids[i] < 0 || ids[i] >= tokenizer_n_vocab(t))
            fail("an id outside the vocabulary");
    char *whole = NULL;
    size_t whole_len = 0;
    if (tokenizer_decode(t, ids, n, &whole, &whole_len, &err) != 0)
        fail(err.msg);
    if (!valid_utf8((const uint8_t *)whole, whole_len))
        fail("decoding gave invalid UTF-8");
    if (round_trip && !special && valid_utf8(text, len) &&
        (whole_len != len || memcmp(whole, text, len) != 0))
        fail("decode(encode(text)) is not the text");
    engine_decoder d;
    tokenizer_stream_init(&d);
    size_t at = 0;
    for (size_t i = 0; i < n; i++) {
        char chunk[ENGINE_MAX_PIECE];
        size_t k;
        if (tokenizer_stream_push(t, &d, ids[i], chunk, sizeof chunk, &k, &err) != 0)
            fail(err.msg);
        if (!valid_utf8((const uint8_t *)chunk, k))
            fail("a streamed chunk ends inside a character");
        if (k > whole_len - at || memcmp(chunk, whole + at, k) != 0)
            fail("the stream differs from the decode");
        at += k;
    }
    char tail[8];
    at += tokenizer_stream_flush(&d, tail, sizeof tail);
    if (at != whole_len)
        fail("the stream is shorter than the decode");
    mlx_free(whole);
    mlx_free(ids);
}

/* A vocabulary from the input: loaded or refused, never a crash; one that
 * loads must tokenize and decode. */
static void check_vocab(const uint8_t *data, size_t size)
{
    gguf_file *f = NULL;
    tokenizer *t = NULL;
    if (gguf_open_mem(data, size, &f, NULL) != 0)
        return;
    int rc = tokenizer_load(f, &t, NULL);
    gguf_close(f);
    if (rc != 0)
        return;
    static const char text[] = " the <s>\xe6\x9d\xb1 ab\nqrs  12 <|eot_id|>\xff it's";
    for (int special = 0; special < 2; special++)
        check(t, (const uint8_t *)text, sizeof text - 1, special, special, false);
    for (int32_t id = 0; id < tokenizer_n_vocab(t); id++) {
        size_t len;
        tokenizer_piece(t, id, &len);
        tokenizer_is_eog(t, id);
    }
    tokenizer_free(t);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static tokenizer *ts[5];
    if (ts[0] == NULL) {
        ts[0] = spm_vocab();
        ts[1] = bpe_vocab("llama-bpe");
        ts[2] = bpe_vocab("qwen2");
        ts[3] = bpe_vocab("gpt-2");
        ts[4] = bpe_vocab("smollm");
    }
    if (size == 0)
        return 0;
    if (size >= 4 && memcmp(data, "GGUF", 4) == 0) {
        check_vocab(data, size);
        return 0;
    }
    uint8_t opt = data[0];
    const uint8_t *text = data + 1;
    size_t len = size - 1;
    /* SentencePiece writes spaces as U+2581: one in the text comes back a space */
    bool round_trip = opt % 5 != 0 || !has_spm_space(text, len);
    check(ts[opt % 5], text, len, (opt >> 3) & 1, (opt >> 4) & 1, round_trip);
    return 0;
}
