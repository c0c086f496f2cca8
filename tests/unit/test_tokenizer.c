/*
 * test_tokenizer.c — the tokenizers (agent/engine/tokenizer.h) on small
 * vocabularies written here with the GGUF writer, whose expected ids are
 * worked out by hand from the rules llama.cpp follows: SentencePiece merges
 * by score with ties to the leftmost pair, byte fallback, the dummy prefix
 * at the start and after special tokens; BPE merges by rank, whole-word
 * tokens for llama-bpe, single-byte fallback; special tokens longest first;
 * end-of-turn tokens found by their text. Then decoding and streaming
 * (never half a character; the stream equals the whole decode), refusals
 * of malformed vocabularies with a sentence naming the key, arbitrary bytes,
 * and a failed allocation at every step of loading and encoding.
 */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "agent/engine/gguf.h"
#include "agent/engine/tokenizer.h"
#include "common/alloc.h"

#define SP "\xe2\x96\x81" /* U+2581 */

/* ---- vocabularies ------------------------------------------------------ */

/* A key a test replaces: the builder leaves it out and calls mutate. */
typedef void (*mutate_fn)(gguf_writer *w);

enum { N_SPM = 278, N_BPE = 264 };

static const char *spm_extra[] = {SP,        "a",     "b",     "c",         SP "a",
                                  "ab",      SP "ab", "bc",    "aa",        "<|user|>",
                                  "<|ctl|>", "<|a|>", "<|b|>", "a|><|b",    SP SP,
                                  "x",       "y",     SP "x",  "<|im_end|>"};

/* <unk> <s> </s>, the 256 byte tokens, then spm_extra. */
static void spm_tokens(const char **tokens)
{
    static char bytes[256][7];
    tokens[0] = "<unk>";
    tokens[1] = "<s>";
    tokens[2] = "</s>";
    for (int b = 0; b < 256; b++) {
        snprintf(bytes[b], sizeof bytes[b], "<0x%02X>", b);
        tokens[3 + b] = bytes[b];
    }
    for (int i = 0; i < 19; i++)
        tokens[259 + i] = spm_extra[i];
}

/* spm_tokens with falling scores; <|user|> is user-defined, <|ctl|> <|a|>
 * <|b|> a|><|b control, and <|im_end|> typed normal (the loader must make
 * it control). */
static gguf_writer *spm_vocab(const char *skip, mutate_fn mutate)
{
    const char *tokens[N_SPM];
    float scores[N_SPM];
    int32_t types[N_SPM];
    spm_tokens(tokens);
    for (int i = 0; i < N_SPM; i++) {
        types[i] = i < 3 ? 3 : i < 259 ? 6 : 1;
        scores[i] = i < 259 ? 0 : -1.0f - (float)(i - 259);
    }
    types[0] = 2;
    types[268] = 4;
    types[269] = types[270] = types[271] = types[272] = 3;
    gguf_writer *w = NULL;
    assert_int_equal(gguf_writer_new(&w, NULL), 0);
    if (mutate != NULL)
        mutate(w);
    const char *s = skip == NULL ? "" : skip;
    if (strcmp(s, "tokenizer.ggml.model") != 0)
        assert_int_equal(gguf_writer_set_str(w, "tokenizer.ggml.model", "llama", NULL),
                         0);
    if (strcmp(s, "tokenizer.ggml.tokens") != 0)
        assert_int_equal(
            gguf_writer_set_arr_str(w, "tokenizer.ggml.tokens", tokens, N_SPM, NULL), 0);
    if (strcmp(s, "tokenizer.ggml.scores") != 0)
        assert_int_equal(
            gguf_writer_set_arr_f32(w, "tokenizer.ggml.scores", scores, N_SPM, NULL), 0);
    if (strcmp(s, "tokenizer.ggml.token_type") != 0)
        assert_int_equal(
            gguf_writer_set_arr_i32(w, "tokenizer.ggml.token_type", types, N_SPM, NULL),
            0);
    if (strcmp(s, "tokenizer.ggml.bos_token_id") != 0)
        assert_int_equal(gguf_writer_set_u32(w, "tokenizer.ggml.bos_token_id", 1, NULL),
                         0);
    return w;
}

/* GPT-2's byte alphabet, written out independently of the engine's. */
static uint32_t byte_cp(int b)
{
    if ((b >= 0x21 && b <= 0x7E) || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE))
        return (uint32_t)b;
    int k = 0;
    for (int c = 0; c < b; c++)
        if (!((c >= 0x21 && c <= 0x7E) || (c >= 0xA1 && c <= 0xAC) || (c >= 0xAE)))
            k++;
    return 0x100 + (uint32_t)k;
}

static const char *bpe_merges[] = {"a b", "ab c", "\xc4\xa0 a", "a a", "q r", "qr s"};

/* Token b (0..255) is byte b spelled in the alphabet; then ab abc Ġa aa
 * qrs xyz <|eot_id|> <|begin_of_text|> (BOS); merges as bpe_merges. */
static gguf_writer *bpe_vocab(const char *pre, const char *skip, mutate_fn mutate)
{
    static char bytes[256][3];
    const char *tokens[N_BPE];
    int32_t types[N_BPE];
    for (int b = 0; b < 256; b++) {
        uint32_t cp = byte_cp(b);
        if (cp < 0x80) {
            bytes[b][0] = (char)cp;
            bytes[b][1] = 0;
        } else {
            bytes[b][0] = (char)(0xC0 | cp >> 6);
            bytes[b][1] = (char)(0x80 | (cp & 0x3F));
            bytes[b][2] = 0;
        }
        tokens[b] = bytes[b];
        types[b] = 1;
    }
    const char *more[] = {"ab",
                          "abc",
                          "\xc4\xa0"
                          "a",
                          "aa",
                          "qrs",
                          "xyz",
                          "<|eot_id|>",
                          "<|begin_of_text|>"};
    for (int i = 0; i < 8; i++) {
        tokens[256 + i] = more[i];
        types[256 + i] = i >= 6 ? 3 : 1;
    }
    gguf_writer *w = NULL;
    assert_int_equal(gguf_writer_new(&w, NULL), 0);
    if (mutate != NULL)
        mutate(w);
    const char *s = skip == NULL ? "" : skip;
    assert_int_equal(gguf_writer_set_str(w, "tokenizer.ggml.model", "gpt2", NULL), 0);
    if (pre != NULL)
        assert_int_equal(gguf_writer_set_str(w, "tokenizer.ggml.pre", pre, NULL), 0);
    assert_int_equal(
        gguf_writer_set_arr_str(w, "tokenizer.ggml.tokens", tokens, N_BPE, NULL), 0);
    assert_int_equal(
        gguf_writer_set_arr_i32(w, "tokenizer.ggml.token_type", types, N_BPE, NULL), 0);
    if (strcmp(s, "tokenizer.ggml.merges") != 0)
        assert_int_equal(
            gguf_writer_set_arr_str(w, "tokenizer.ggml.merges", bpe_merges, 6, NULL), 0);
    assert_int_equal(gguf_writer_set_u32(w, "tokenizer.ggml.bos_token_id", 263, NULL), 0);
    assert_int_equal(gguf_writer_set_u32(w, "tokenizer.ggml.eos_token_id", 262, NULL), 0);
    return w;
}

/* Loads the writer's vocabulary (and frees the writer); the tokenizer
 * outlives the file, which is closed here. */
static int load(gguf_writer *w, tokenizer **t, mlx_err *err)
{
    void *data = NULL;
    size_t len = 0;
    gguf_file *f = NULL;
    assert_int_equal(gguf_writer_to_mem(w, &data, &len, NULL), 0);
    gguf_writer_free(w);
    assert_int_equal(gguf_open_mem(data, len, &f, NULL), 0);
    *t = NULL;
    int rc = tokenizer_load(f, t, err);
    gguf_close(f);
    mlx_free(data);
    return rc;
}

static tokenizer *must_load(gguf_writer *w)
{
    tokenizer *t;
    mlx_err err;
    if (load(w, &t, &err) != 0)
        fail_msg("%s", err.msg);
    return t;
}

/* ---- encoding ---------------------------------------------------------- */

static void expect_ids(const tokenizer *t, const char *text, size_t len, bool bos,
                       bool special, const int32_t *want, size_t n_want)
{
    int32_t *ids = NULL;
    size_t n = 0;
    mlx_err err;
    if (tokenizer_encode(t, text, len, bos, special, &ids, &n, &err) != 0)
        fail_msg("%s", err.msg);
    bool same = n == n_want && (n == 0 || memcmp(ids, want, n * sizeof *ids) == 0);
    if (!same) {
        fprintf(stderr, "'%.*s': got", (int)len, text);
        for (size_t i = 0; i < n; i++)
            fprintf(stderr, " %d", ids[i]);
        fprintf(stderr, "\n");
    }
    mlx_free(ids);
    assert_true(same);
}

#define EXPECT(t, text, bos, special, ...)                                               \
    do {                                                                                 \
        const int32_t want_[] = {__VA_ARGS__};                                           \
        expect_ids(t, text, sizeof(text) - 1, bos, special, want_,                       \
                   sizeof want_ / sizeof want_[0]);                                      \
    } while (0)

static void test_spm_merges(void **state)
{
    tokenizer *t = must_load(spm_vocab(NULL, NULL));
    assert_int_equal(tokenizer_n_vocab(t), N_SPM);
    assert_int_equal(tokenizer_bos(t), 1);
    assert_int_equal(tokenizer_eos(t), 2);
    assert_true(tokenizer_adds_bos(t));
    /* ▁a (-5) before ab (-6), then ▁ab */
    EXPECT(t, "ab", true, true, 1, 265);
    /* two words: ▁ + bc, and ▁a */
    EXPECT(t, "bc a", false, true, 259, 266, 263);
    /* after ▁a, the two aa candidates tie: the left one wins */
    EXPECT(t, "aaa", false, true, 263, 267);
    /* ▁a first, then ▁▁ of the two leading spaces */
    EXPECT(t, "  a", false, true, 273, 263);
    /* é has no token: its bytes' <0xXX> tokens */
    EXPECT(t, "\xc3\xa9", false, true, 259, 3 + 0xC3, 3 + 0xA9);
    /* a lead byte takes the next byte along, even an ASCII one */
    EXPECT(t,
           "\xc3"
           "a",
           false, true, 259, 3 + 0xC3, 3 + 'a');
    EXPECT(t, "", true, true, 1);
    expect_ids(t, "", 0, false, true, NULL, 0);
    tokenizer_free(t);
}

static void test_spm_specials(void **state)
{
    tokenizer *t = must_load(spm_vocab(NULL, NULL));
    /* the dummy prefix again after a special token */
    EXPECT(t, "x<|ctl|>y", false, true, 276, 269, 259, 275);
    /* user-defined tokens are cut out even without parse_special */
    EXPECT(t, "a<|user|>b", false, false, 263, 268, 259, 261);
    /* longest first: a|><|b takes the middle, <|a|> and <|b|> lose */
    EXPECT(t, "<|a|><|b|>", false, true, 259, 3 + '<', 3 + '|', 272, 259, 3 + '|',
           3 + '>');
    /* typed normal, but an end of turn: control, so parsed, and ends generation */
    EXPECT(t, "<|im_end|>", false, true, 277);
    assert_true(tokenizer_is_eog(t, 277));
    assert_true(tokenizer_is_eog(t, 2));
    assert_false(tokenizer_is_eog(t, 1));
    assert_false(tokenizer_is_eog(t, 269));
    assert_false(tokenizer_is_eog(t, -1));
    assert_false(tokenizer_is_eog(t, N_SPM));
    /* without parse_special a control token is plain text */
    int32_t *ids = NULL;
    size_t n = 0;
    assert_int_equal(tokenizer_encode(t, "<|ctl|>", 7, false, false, &ids, &n, NULL), 0);
    for (size_t i = 0; i < n; i++)
        assert_int_not_equal(ids[i], 269);
    mlx_free(ids);
    tokenizer_free(t);
}

static void test_bpe_merges(void **state)
{
    tokenizer *t = must_load(bpe_vocab("llama-bpe", NULL, NULL));
    assert_true(tokenizer_adds_bos(t));
    assert_int_equal(tokenizer_bos(t), 263);
    EXPECT(t, "abc", true, true, 263, 257);
    /* a whole word that is a token stays whole (llama-bpe) */
    EXPECT(t, "xyz", false, true, 261);
    /* Ġa (rank 2) before a a (rank 3), then the right a a */
    EXPECT(t, " aaa", false, true, 258, 259);
    /* equal ranks: the left pair */
    EXPECT(t, "aaa", false, true, 259, 'a');
    /* qr is a merge but no token: its bytes' tokens */
    EXPECT(t, "qr", false, true, 'q', 'r');
    /* an invalid byte is U+FFFD, EF BF BD */
    EXPECT(t, "\xff", false, true, 0xEF, 0xBF, 0xBD);
    /* an overlong NUL is a NUL */
    EXPECT(t, "\xc0\x80", false, true, 0);
    EXPECT(t, "<|eot_id|>abc", false, true, 262, 257);
    assert_true(tokenizer_is_eog(t, 262));
    tokenizer_free(t);

    t = must_load(bpe_vocab("gpt-2", NULL, NULL));
    assert_false(tokenizer_adds_bos(t));
    /* no whole-word rule: x y z have no merges */
    EXPECT(t, "xyz", false, true, 'x', 'y', 'z');
    /* q r → qr (no token), qr s → qrs */
    EXPECT(t, "qrs", false, true, 260);
    EXPECT(t, "abc", false, true, 257);
    tokenizer_free(t);
}

/* ---- refusals ---------------------------------------------------------- */

static void expect_refused(gguf_writer *w, const char *needle)
{
    tokenizer *t;
    mlx_err err;
    int rc = load(w, &t, &err);
    if (rc == 0)
        fail_msg("loaded a vocabulary that should be refused (%s)", needle);
    assert_null(t);
    assert_int_equal(rc, MLX_ECORRUPT);
    if (strstr(err.msg, needle) == NULL)
        fail_msg("'%s' does not mention '%s'", err.msg, needle);
}

static void short_scores(gguf_writer *w)
{
    float s[3] = {0, 0, 0};
    assert_int_equal(gguf_writer_set_arr_f32(w, "tokenizer.ggml.scores", s, 3, NULL), 0);
}

static void int_scores(gguf_writer *w)
{
    int32_t s[N_SPM] = {0};
    assert_int_equal(gguf_writer_set_arr_i32(w, "tokenizer.ggml.scores", s, N_SPM, NULL),
                     0);
}

static void nan_scores(gguf_writer *w)
{
    float s[N_SPM] = {0};
    s[100] = NAN;
    assert_int_equal(gguf_writer_set_arr_f32(w, "tokenizer.ggml.scores", s, N_SPM, NULL),
                     0);
}

static void bad_type(gguf_writer *w)
{
    int32_t ty[N_SPM];
    for (int i = 0; i < N_SPM; i++)
        ty[i] = 1;
    ty[7] = 9;
    assert_int_equal(
        gguf_writer_set_arr_i32(w, "tokenizer.ggml.token_type", ty, N_SPM, NULL), 0);
}

static void byte_type(gguf_writer *w)
{
    int32_t ty[N_SPM];
    for (int i = 0; i < N_SPM; i++)
        ty[i] = 1;
    ty[260] = 6; /* "a" as a byte token */
    assert_int_equal(
        gguf_writer_set_arr_i32(w, "tokenizer.ggml.token_type", ty, N_SPM, NULL), 0);
}

static void bos_out_of_range(gguf_writer *w)
{
    assert_int_equal(gguf_writer_set_u32(w, "tokenizer.ggml.bos_token_id", N_SPM, NULL),
                     0);
}

static void bos_string(gguf_writer *w)
{
    assert_int_equal(gguf_writer_set_str(w, "tokenizer.ggml.bos_token_id", "1", NULL), 0);
}

static void bos_none(gguf_writer *w)
{
    assert_int_equal(
        gguf_writer_set_u32(w, "tokenizer.ggml.bos_token_id", 4294967295u, NULL), 0);
}

static void model_bert(gguf_writer *w)
{
    assert_int_equal(gguf_writer_set_str(w, "tokenizer.ggml.model", "bert", NULL), 0);
}

static void tokens_int(gguf_writer *w)
{
    int32_t v[3] = {1, 2, 3};
    assert_int_equal(gguf_writer_set_arr_i32(w, "tokenizer.ggml.tokens", v, 3, NULL), 0);
}

static void tokens_dup(gguf_writer *w)
{
    const char *v[N_SPM];
    spm_tokens(v);
    v[261] = "a";
    assert_int_equal(gguf_writer_set_arr_str(w, "tokenizer.ggml.tokens", v, N_SPM, NULL),
                     0);
}

static void tokens_long(gguf_writer *w)
{
    static char big[700];
    memset(big, 'x', sizeof big - 1);
    const char *v[N_SPM];
    spm_tokens(v);
    v[268] = big; /* the user-defined token: decodes to itself */
    assert_int_equal(gguf_writer_set_arr_str(w, "tokenizer.ggml.tokens", v, N_SPM, NULL),
                     0);
}

static void merges_no_space(gguf_writer *w)
{
    const char *m[] = {"a b", "abc"};
    assert_int_equal(gguf_writer_set_arr_str(w, "tokenizer.ggml.merges", m, 2, NULL), 0);
}

static void test_refusals(void **state)
{
    expect_refused(spm_vocab("tokenizer.ggml.model", NULL), "tokenizer.ggml.model");
    expect_refused(spm_vocab("tokenizer.ggml.model", model_bert), "'bert'");
    expect_refused(spm_vocab("tokenizer.ggml.tokens", NULL), "tokenizer.ggml.tokens");
    expect_refused(spm_vocab("tokenizer.ggml.tokens", tokens_int),
                   "tokenizer.ggml.tokens");
    expect_refused(spm_vocab("tokenizer.ggml.tokens", tokens_dup), "twice");
    expect_refused(spm_vocab("tokenizer.ggml.tokens", tokens_long), "token 268");
    expect_refused(spm_vocab("tokenizer.ggml.scores", short_scores),
                   "tokenizer.ggml.scores");
    expect_refused(spm_vocab("tokenizer.ggml.scores", int_scores),
                   "tokenizer.ggml.scores");
    expect_refused(spm_vocab("tokenizer.ggml.scores", nan_scores), "NaN");
    expect_refused(spm_vocab("tokenizer.ggml.token_type", bad_type),
                   "tokenizer.ggml.token_type");
    expect_refused(spm_vocab("tokenizer.ggml.token_type", byte_type), "<0xXX>");
    expect_refused(spm_vocab("tokenizer.ggml.bos_token_id", bos_out_of_range),
                   "tokenizer.ggml.bos_token_id");
    expect_refused(spm_vocab("tokenizer.ggml.bos_token_id", bos_string),
                   "tokenizer.ggml.bos_token_id");
    expect_refused(bpe_vocab("llama-bpe", "tokenizer.ggml.merges", NULL),
                   "tokenizer.ggml.merges");
    expect_refused(bpe_vocab("llama-bpe", "tokenizer.ggml.merges", merges_no_space),
                   "'abc'");
    expect_refused(bpe_vocab("no-such-split", NULL, NULL), "tokenizer.ggml.pre");

    /* 4294967295 is how converters write "none" */
    tokenizer *t = must_load(spm_vocab("tokenizer.ggml.bos_token_id", bos_none));
    assert_int_equal(tokenizer_bos(t), -1);
    assert_false(tokenizer_adds_bos(t));
    EXPECT(t, "ab", true, true, 265);
    tokenizer_free(t);
    /* no tokenizer.ggml.pre: the Llama 3 split */
    t = must_load(bpe_vocab(NULL, NULL, NULL));
    EXPECT(t, "xyz", false, true, 261);
    tokenizer_free(t);
}

/* ---- decoding and streaming -------------------------------------------- */

/* Whether s[0..n) is whole, valid UTF-8 (written apart from the engine's). */
static bool valid_utf8(const char *str, size_t n)
{
    const uint8_t *s = (const uint8_t *)str;
    for (size_t i = 0; i < n;) {
        uint32_t cp;
        size_t k;
        if (s[i] < 0x80) {
            i++;
            continue;
        } else if ((s[i] & 0xE0) == 0xC0) {
            k = 2;
            cp = s[i] & 0x1F;
        } else if ((s[i] & 0xF0) == 0xE0) {
            k = 3;
            cp = s[i] & 0x0F;
        } else if ((s[i] & 0xF8) == 0xF0) {
            k = 4;
            cp = s[i] & 0x07;
        } else {
            return false;
        }
        if (i + k > n)
            return false;
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

static char *decode(const tokenizer *t, const int32_t *ids, size_t n, size_t *len)
{
    char *out = NULL;
    mlx_err err;
    if (tokenizer_decode(t, ids, n, &out, len, &err) != 0)
        fail_msg("%s", err.msg);
    return out;
}

/* Pushes ids one at a time: every chunk is whole UTF-8, and all of them
 * together are the decode of all ids. */
static void check_stream(const tokenizer *t, const int32_t *ids, size_t n)
{
    size_t whole_len;
    char *whole = decode(t, ids, n, &whole_len);
    char *joined = mlx_malloc(whole_len + ENGINE_MAX_PIECE + 1);
    size_t len = 0;
    engine_decoder d;
    tokenizer_stream_init(&d);
    for (size_t i = 0; i < n; i++) {
        char chunk[ENGINE_MAX_PIECE];
        size_t k = 0;
        mlx_err err;
        if (tokenizer_stream_push(t, &d, ids[i], chunk, sizeof chunk, &k, &err) != 0)
            fail_msg("%s", err.msg);
        assert_true(valid_utf8(chunk, k));
        assert_true(len + k <= whole_len);
        memcpy(joined + len, chunk, k);
        len += k;
    }
    char tail[ENGINE_MAX_PIECE];
    size_t k = tokenizer_stream_flush(&d, tail, sizeof tail);
    memcpy(joined + len, tail, k);
    len += k;
    assert_int_equal(len, whole_len);
    assert_memory_equal(joined, whole, len);
    assert_true(valid_utf8(whole, whole_len));
    mlx_free(joined);
    mlx_free(whole);
}

/* Encodes text, checks decode gives it back and the stream equals it. */
static void round_trip(const tokenizer *t, const char *text, bool bos)
{
    int32_t *ids = NULL;
    size_t n = 0, len;
    assert_int_equal(tokenizer_encode(t, text, strlen(text), bos, true, &ids, &n, NULL),
                     0);
    char *back = decode(t, ids, n, &len);
    assert_int_equal(len, strlen(text));
    assert_string_equal(back, text);
    check_stream(t, ids, n);
    mlx_free(back);
    mlx_free(ids);
}

static void test_decode(void **state)
{
    tokenizer *t = must_load(spm_vocab(NULL, NULL));
    size_t len;
    /* the dummy prefix goes; BOS and control tokens decode to nothing;
     * user-defined tokens to their text */
    const int32_t a[] = {1, 265, 269, 263, 268, 259, 261};
    char *s = decode(t, a, 7, &len);
    assert_string_equal(s, "ab a<|user|> b");
    mlx_free(s);
    /* byte tokens of an unfinished character: U+FFFD; an invalid byte too */
    const int32_t b[] = {3 + 0xE6, 3 + 'a', 3 + 0xFF, 3 + 0xE6, 3 + 0x9D};
    s = decode(t, b, 5, &len);
    assert_string_equal(s, "\xef\xbf\xbd"
                           "a\xef\xbf\xbd\xef\xbf\xbd");
    mlx_free(s);
    size_t plen;
    assert_memory_equal(tokenizer_piece(t, 263, &plen), " a", 2);
    assert_int_equal(plen, 2);
    tokenizer_piece(t, 269, &plen);
    assert_int_equal(plen, 0);
    assert_memory_equal(tokenizer_piece(t, 3 + 0x41, &plen), "A", 1);
    tokenizer_piece(t, N_SPM, &plen);
    assert_int_equal(plen, 0);

    const int32_t bad[] = {1, N_SPM};
    char *out = NULL;
    mlx_err err;
    assert_int_equal(tokenizer_decode(t, bad, 2, &out, &len, &err), MLX_EINVAL);
    assert_non_null(strstr(err.msg, "278"));
    check_stream(t, b, 5);

    round_trip(t, "ab c aaa bc", true);
    round_trip(t, "  two  spaces  ", true);
    round_trip(t, "東京は日本の首都です 🎉🚀 naïve\tand\nnewlines\n", true);
    /* the dummy prefix after a special token stays: it was never written */
    const int32_t d[] = {276, 269, 259, 3 + 'y'};
    s = decode(t, d, 4, &len);
    assert_string_equal(s, "x y");
    mlx_free(s);
    tokenizer_free(t);

    t = must_load(bpe_vocab("llama-bpe", NULL, NULL));
    const int32_t c[] = {263, 257, 258, 262};
    s = decode(t, c, 4, &len);
    assert_string_equal(s, "abc a");
    mlx_free(s);
    round_trip(t, "  leading and trailing  ", true);
    round_trip(t, "東京は日本の首都です 🎉🚀 naïve\tand\nnewlines\n\n", true);
    tokenizer_free(t);
}

static void test_stream_limits(void **state)
{
    tokenizer *t = must_load(spm_vocab(NULL, NULL));
    engine_decoder d;
    tokenizer_stream_init(&d);
    char out[ENGINE_MAX_PIECE];
    size_t n = 99;
    mlx_err err;
    /* the start of a character is held back; the stream keeps its state
     * when a chunk does not fit */
    assert_int_equal(tokenizer_stream_push(t, &d, 3 + 0xE6, out, sizeof out, &n, NULL),
                     0);
    assert_int_equal(n, 0);
    assert_int_equal(tokenizer_stream_push(t, &d, 3 + 0x9D, out, sizeof out, &n, NULL),
                     0);
    assert_int_equal(n, 0);
    assert_int_equal(tokenizer_stream_push(t, &d, 3 + 0xB1, out, 2, &n, &err),
                     MLX_ETOOBIG);
    assert_int_equal(tokenizer_stream_push(t, &d, 3 + 0xB1, out, sizeof out, &n, NULL),
                     0);
    assert_int_equal(n, 3);
    assert_memory_equal(out, "\xe6\x9d\xb1", 3);
    assert_int_equal(tokenizer_stream_push(t, &d, -1, out, sizeof out, &n, &err),
                     MLX_EINVAL);
    /* what is pending at the end becomes U+FFFD */
    assert_int_equal(tokenizer_stream_push(t, &d, 3 + 0xF0, out, sizeof out, &n, NULL),
                     0);
    assert_int_equal(tokenizer_stream_flush(&d, out, sizeof out), 3);
    assert_memory_equal(out, "\xef\xbf\xbd", 3);
    assert_int_equal(tokenizer_stream_flush(&d, out, sizeof out), 0);
    tokenizer_free(t);
}

/* ---- hostile input ----------------------------------------------------- */

static void test_arbitrary_bytes(void **state)
{
    tokenizer *ts[3] = {must_load(spm_vocab(NULL, NULL)),
                        must_load(bpe_vocab("llama-bpe", NULL, NULL)),
                        must_load(bpe_vocab("smollm", NULL, NULL))};
    uint64_t x = 88172645463325252ull;
    char text[512];
    for (int round = 0; round < 300; round++) {
        size_t len = (size_t)(round * 7 % 500);
        for (size_t i = 0; i < len; i++) {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            /* mostly a small alphabet, so specials and merges happen */
            static const char alpha[] = "ab c<|>\n\x00\xe6\x9d\xf0\x9f";
            text[i] = (x >> 8) % 4 == 0 ? (char)(x >> 16) : alpha[(x >> 24) % 14];
        }
        for (int k = 0; k < 3; k++) {
            int32_t *ids = NULL;
            size_t n = 0, out_len;
            assert_int_equal(tokenizer_encode(ts[k], text, len, round % 2, round % 3 == 0,
                                              &ids, &n, NULL),
                             0);
            char *back = decode(ts[k], ids, n, &out_len);
            assert_true(valid_utf8(back, out_len));
            check_stream(ts[k], ids, n);
            mlx_free(back);
            mlx_free(ids);
        }
    }
    for (int k = 0; k < 3; k++)
        tokenizer_free(ts[k]);
}

/* A failed allocation at any step is MLX_ENOMEM, leaks nothing (ASan) and
 * leaves nothing half made. */
static void test_out_of_memory(void **state)
{
    gguf_writer *ws[2] = {spm_vocab(NULL, NULL), bpe_vocab("llama-bpe", NULL, NULL)};
    char text[6000];
    for (size_t i = 0; i < sizeof text; i++)
        text[i] = "ab c<|ctl|>aaa xyz\n"[i % 19];
    for (int k = 0; k < 2; k++) {
        void *data = NULL;
        size_t len = 0;
        gguf_file *f = NULL;
        assert_int_equal(gguf_writer_to_mem(ws[k], &data, &len, NULL), 0);
        gguf_writer_free(ws[k]);
        assert_int_equal(gguf_open_mem(data, len, &f, NULL), 0);
        tokenizer *t = NULL;
        int rc = MLX_ENOMEM;
        for (long fail = 0; rc != 0; fail++) {
            mlx_alloc_fail_after(fail);
            rc = tokenizer_load(f, &t, NULL);
            mlx_alloc_fail_reset();
            assert_true(rc == 0 || (rc == MLX_ENOMEM && t == NULL));
        }
        rc = MLX_ENOMEM;
        for (long fail = 0; rc != 0; fail++) {
            int32_t *ids = NULL;
            size_t n = 99;
            mlx_alloc_fail_after(fail);
            rc = tokenizer_encode(t, text, sizeof text, true, true, &ids, &n, NULL);
            mlx_alloc_fail_reset();
            assert_true(rc == 0 || (rc == MLX_ENOMEM && ids == NULL && n == 0));
            mlx_free(ids);
        }
        tokenizer_free(t);
        gguf_close(f);
        mlx_free(data);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_spm_merges),      cmocka_unit_test(test_spm_specials),
        cmocka_unit_test(test_bpe_merges),      cmocka_unit_test(test_refusals),
        cmocka_unit_test(test_decode),          cmocka_unit_test(test_stream_limits),
        cmocka_unit_test(test_arbitrary_bytes), cmocka_unit_test(test_out_of_memory),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
