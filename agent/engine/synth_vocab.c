/*
 * synth_vocab.c — the vocabulary of a synthetic model: a small
 * SentencePiece-style ("llama") vocabulary, laid out as Llama 2's is.
 *
 *   id 0        <unk>                  type 2 (UNKNOWN)
 *   id 1, 2     <s>, </s>              type 3 (CONTROL), bos and eos
 *   id 3..258   <0x00>..<0xFF>         type 6 (BYTE): the fallback that
 *                                      lets any text be encoded
 *   then        "▁" and the printable ASCII characters, one per token
 *   then        frequent English pieces ("▁t", "▁th", "▁the", …), each
 *               preceded by its shorter prefixes, so the tokenizer's
 *               pairwise merges can always build it
 *   then        as many letter pieces as the size asks for: "▁a".."▁z",
 *               then two-, three- and four-letter pieces, bare and after
 *               "▁" — each again after its prefixes
 *
 * Scores rank merges as SentencePiece does: the earlier a piece, the higher
 * (less negative) its score; single characters score below every piece.
 * A size below the full list keeps the first n tokens, which still obey the
 * prefix rule. Token types are llama.cpp's numbers.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "agent/engine/synth.h"
#include "common/alloc.h"

enum { TOKEN_NORMAL = 1, TOKEN_UNKNOWN = 2, TOKEN_CONTROL = 3, TOKEN_BYTE = 6 };

#define SPACE "\xe2\x96\x81" /* U+2581, SentencePiece's visible space */

/* Frequent pieces of English text (and of the TinyStories the small models
 * are usually tried on), most frequent first. */
static const char *const pieces[] = {
    SPACE "t",     SPACE "a",      "he",         "in",           SPACE "the",
    "er",          "on",           SPACE "s",    "an",           "re",
    SPACE "w",     SPACE "o",      "at",         "en",           "nd",
    SPACE "c",     SPACE "b",      "ou",         SPACE "and",    SPACE "f",
    "is",          "ed",           "it",         SPACE "h",      SPACE "m",
    SPACE "p",     "ing",          "es",         "or",           SPACE "of",
    SPACE "to",    SPACE "in",     "ar",         "al",           SPACE "d",
    "as",          SPACE "l",      "ll",         SPACE "n",      "le",
    SPACE "g",     SPACE "is",     "om",         "ic",           SPACE "e",
    SPACE "it",    SPACE "re",     "ve",         SPACE "y",      SPACE "you",
    SPACE "was",   SPACE "he",     SPACE "be",   SPACE "on",     "ion",
    SPACE "for",   SPACE "that",   SPACE "with", "ly",           SPACE "I",
    SPACE "A",     SPACE "T",      SPACE "S",    "ent",          SPACE "st",
    "ch",          "ro",           "ay",         SPACE "we",     SPACE "as",
    SPACE "are",   SPACE "this",   SPACE "his",  SPACE "her",    SPACE "she",
    SPACE "they",  SPACE "had",    SPACE "not",  SPACE "but",    SPACE "at",
    SPACE "have",  SPACE "from",   SPACE "one",  SPACE "all",    SPACE "said",
    SPACE "there", SPACE "time",   SPACE "day",  SPACE "up",     SPACE "so",
    SPACE "can",   SPACE "will",   SPACE "what", SPACE "when",   SPACE "would",
    SPACE "were",  SPACE "an",     SPACE "my",   SPACE "me",     SPACE "do",
    SPACE "no",    SPACE "if",     SPACE "or",   SPACE "by",     SPACE "Once",
    SPACE "upon",  SPACE "little", SPACE "girl", SPACE "boy",    SPACE "big",
    SPACE "happy", SPACE "play",   SPACE "saw",  SPACE "named",  SPACE "Lily",
    SPACE "very",  SPACE "friend", SPACE "went", SPACE "wanted", SPACE "The",
    SPACE "He",    SPACE "She",    SPACE "It",   SPACE "Tom",    SPACE "mom",
};

struct builder {
    synth_vocab *v;
    size_t cap;   /* tokens wanted */
    int32_t rank; /* merges added so far: the next score is -(rank + 1) */
};

/* Linear: only used while the fixed pieces go in (a few hundred tokens). */
static bool has_token(const synth_vocab *v, const char *s, size_t len)
{
    for (size_t i = 0; i < v->n; i++)
        if (strlen(v->tokens[i]) == len && memcmp(v->tokens[i], s, len) == 0)
            return true;
    return false;
}

static int cmp_token(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static int push(struct builder *b, const char *s, size_t len, float score, int32_t type,
                mlx_err *err)
{
    if (b->v->n >= b->cap)
        return 0;
    char *copy = mlx_strndup(s, len);
    if (copy == NULL)
        return mlx_err_set(err, MLX_ENOMEM, "out of memory for the vocabulary");
    size_t i = b->v->n++;
    b->v->tokens[i] = copy;
    b->v->scores[i] = score;
    b->v->types[i] = type;
    return 0;
}

/* Length of the UTF-8 character that starts at s. */
static size_t char_len(const char *s)
{
    unsigned char c = (unsigned char)s[0];
    return c < 0x80 ? 1 : c < 0xe0 ? 2 : c < 0xf0 ? 3 : 4;
}

/* Adds piece s (if new) after its prefixes of two characters or more. */
static int push_piece(struct builder *b, const char *s, size_t len, mlx_err *err)
{
    size_t first = char_len(s);
    for (size_t end = first + char_len(s + first); end <= len;) {
        if (!has_token(b->v, s, end)) {
            int rc = push(b, s, end, -(float)++b->rank, TOKEN_NORMAL, err);
            if (rc != 0)
                return rc;
        }
        if (end == len)
            break;
        end += char_len(s + end);
    }
    return 0;
}

/* Letter pieces of the given length, bare (from two letters) and after the
 * visible space, in a fixed order, skipping those already among the fixed
 * ones (fixed: their sorted copy). Generated pieces differ from each other
 * by construction. */
static int push_letters(struct builder *b, size_t letters, char *const *fixed,
                        size_t n_fixed, mlx_err *err)
{
    char s[16];
    char *key = s;
    size_t total = 1;
    for (size_t i = 0; i < letters; i++)
        total *= 26;
    for (int spaced = 1; spaced >= 0; spaced--) {
        if (!spaced && letters < 2)
            continue;
        for (size_t k = 0; k < total && b->v->n < b->cap; k++) {
            size_t len = 0, x = k;
            if (spaced) {
                memcpy(s, SPACE, 3);
                len = 3;
            }
            for (size_t i = 0; i < letters; i++) {
                s[len + letters - 1 - i] = (char)('a' + x % 26);
                x /= 26;
            }
            len += letters;
            s[len] = '\0';
            if (bsearch(&key, fixed, n_fixed, sizeof *fixed, cmp_token) != NULL)
                continue;
            int rc = push(b, s, len, -(float)++b->rank, TOKEN_NORMAL, err);
            if (rc != 0)
                return rc;
        }
    }
    return 0;
}

int synth_vocab_build(uint32_t n, synth_vocab *v, mlx_err *err)
{
    memset(v, 0, sizeof *v);
    if (n < SYNTH_MIN_VOCAB || n > SYNTH_MAX_VOCAB)
        return mlx_err_set(err, MLX_EUSAGE,
                           "--vocab %u is out of range; it must be %d to %d (the first "
                           "%d are the special and byte tokens)",
                           n, SYNTH_MIN_VOCAB, SYNTH_MAX_VOCAB, SYNTH_MIN_VOCAB);
    v->tokens = mlx_calloc(n, sizeof *v->tokens);
    v->scores = mlx_calloc(n, sizeof *v->scores);
    v->types = mlx_calloc(n, sizeof *v->types);
    if (v->tokens == NULL || v->scores == NULL || v->types == NULL) {
        synth_vocab_free(v);
        return mlx_err_set(err, MLX_ENOMEM, "out of memory for the vocabulary");
    }
    struct builder b = {.v = v, .cap = n};
    int rc = push(&b, "<unk>", 5, 0, TOKEN_UNKNOWN, err);
    if (rc == 0)
        rc = push(&b, "<s>", 3, 0, TOKEN_CONTROL, err);
    if (rc == 0)
        rc = push(&b, "</s>", 4, 0, TOKEN_CONTROL, err);
    for (int i = 0; i < 256 && rc == 0; i++) {
        char s[8];
        snprintf(s, sizeof s, "<0x%02X>", i);
        rc = push(&b, s, 6, 0, TOKEN_BYTE, err);
    }
    /* Characters score below every merge: -1e6 - their index. */
    if (rc == 0)
        rc = push(&b, SPACE, 3, -1e6f, TOKEN_NORMAL, err);
    for (int c = 0x21; c < 0x7f && rc == 0; c++) {
        char s[2] = {(char)c, 0};
        rc = push(&b, s, 1, -1e6f - (float)(c - 0x20), TOKEN_NORMAL, err);
    }
    for (size_t i = 0; i < sizeof pieces / sizeof pieces[0] && rc == 0; i++)
        rc = push_piece(&b, pieces[i], strlen(pieces[i]), err);
    size_t n_fixed = v->n;
    char **sorted = NULL;
    if (rc == 0 && v->n < n) {
        sorted = mlx_calloc(n_fixed, sizeof *sorted);
        if (sorted == NULL)
            rc = mlx_err_set(err, MLX_ENOMEM, "out of memory for the vocabulary");
        else
            memcpy(sorted, v->tokens, n_fixed * sizeof *sorted);
    }
    if (sorted != NULL)
        qsort(sorted, n_fixed, sizeof *sorted, cmp_token);
    for (size_t letters = 1; letters <= 4 && rc == 0 && v->n < n; letters++)
        rc = push_letters(&b, letters, sorted, n_fixed, err);
    mlx_free(sorted);
    if (rc == 0 && v->n != n)
        rc = mlx_err_set(err, MLX_EINTERNAL, "the vocabulary has %zu tokens, not %u",
                         v->n, n);
    if (rc != 0)
        synth_vocab_free(v);
    return rc;
}

void synth_vocab_free(synth_vocab *v)
{
    if (v->tokens != NULL)
        for (size_t i = 0; i < v->n; i++)
            mlx_free(v->tokens[i]);
    mlx_free(v->tokens);
    mlx_free(v->scores);
    mlx_free(v->types);
    memset(v, 0, sizeof *v);
}
