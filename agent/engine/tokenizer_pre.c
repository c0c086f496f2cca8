/*
 * tokenizer_pre.c — the pre-tokenizers of byte-level BPE vocabularies:
 * the split of a text into words that BPE then merges one at a time. Each
 * split is the regular expression the model's tokenizer was trained with,
 * implemented by hand (no regex engine) the way llama.cpp matches it:
 *
 *   llama-bpe  (?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|
 *              \p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+
 *   qwen2      the same with \p{N} for \p{N}{1,3}
 *   gpt-2      's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|
 *              \s+(?!\S)|\s+
 *   smollm     every \p{N} alone first, then gpt-2 on the text between
 *
 * At each position the alternatives are tried in order and the first that
 * matches is taken whole (greedy, as a backtracking engine does here); a
 * character no alternative takes is a word by itself. \s is the Unicode
 * White_Space property; a byte that is not valid UTF-8 is U+FFFD, a symbol.
 * Classes come from unicode_data.c.
 */
#include "agent/engine/tokenizer_int.h"
#include "agent/engine/unicode.h"

#define NONE 0xFFFFFFFFu /* the "character" past the end */

/* The character at byte i of s[0..n): its code point, class and length;
 * past the end NONE, class 0 and length 0. */
static inline size_t at(const uint8_t *s, size_t n, size_t i, uint32_t *cp, unsigned *cls)
{
    if (i >= n) {
        *cp = NONE;
        *cls = 0;
        return 0;
    }
    if (s[i] < 0x80) {
        *cp = s[i];
        *cls = unicode_ascii_class[s[i]];
        return 1;
    }
    size_t len = unicode_decode(s + i, n - i, cp);
    *cls = unicode_class(*cp);
    return len;
}

static inline unsigned cls_at(const uint8_t *s, size_t n, size_t i)
{
    uint32_t cp;
    unsigned cls;
    at(s, n, i, &cp, &cls);
    return cls;
}

static inline uint32_t lower(uint32_t cp)
{
    return cp >= 'A' && cp <= 'Z' ? cp + 32 : cp;
}

/* The end of a contraction ('s 't 're 've 'm 'll 'd) at i, or 0. llama-bpe
 * and qwen2 match it in any case: only ASCII letters lower to these. */
static size_t contraction(const uint8_t *s, size_t n, size_t i, bool any_case)
{
    uint32_t c1, c2;
    unsigned k;
    if (s[i] != '\'' || i + 1 >= n)
        return 0;
    size_t l1 = at(s, n, i + 1, &c1, &k);
    if (any_case)
        c1 = lower(c1);
    if (c1 == 's' || c1 == 't' || c1 == 'm' || c1 == 'd')
        return i + 1 + l1;
    size_t l2 = at(s, n, i + 1 + l1, &c2, &k);
    if (any_case)
        c2 = lower(c2);
    if ((c1 == 'r' && c2 == 'e') || (c1 == 'v' && c2 == 'e') || (c1 == 'l' && c2 == 'l'))
        return i + 1 + l1 + l2;
    return 0;
}

/* The end of a run of white space at i, as the last three alternatives of
 * the llama-bpe pattern (rn set) or the last two of gpt-2's take it:
 * through the last \r or \n of the run when there is one; else all of a
 * run that ends the text or is one character; else all but its last
 * character, which goes with what follows. 0 when i is not white space. */
static size_t space_run(const uint8_t *s, size_t n, size_t i, bool rn)
{
    size_t p = i, last = i, after_rn = 0, count = 0;
    for (;;) {
        uint32_t cp;
        unsigned cls;
        size_t len = at(s, n, p, &cp, &cls);
        if (!(cls & UNICODE_SPACE))
            break;
        if (cp == '\r' || cp == '\n')
            after_rn = p + 1;
        last = p;
        p += len;
        count++;
    }
    if (rn && after_rn > 0)
        return after_rn;
    if (count > 1 && p < n)
        return last;
    return count > 0 ? p : 0;
}

static int split_llama3(const uint8_t *s, size_t n, size_t digits, tok_word_fn fn,
                        void *arg)
{
    for (size_t pos = 0; pos < n;) {
        uint32_t c;
        unsigned f;
        size_t l = at(s, n, pos, &c, &f), end = contraction(s, n, pos, true);
        if (end > 0)
            goto word;
        /* [^\r\n\p{L}\p{N}]?\p{L}+ */
        if (c != '\r' && c != '\n' && !(f & UNICODE_NUMBER) &&
            ((f & UNICODE_LETTER) || (cls_at(s, n, pos + l) & UNICODE_LETTER))) {
            end = pos + l;
            while (cls_at(s, n, end) & UNICODE_LETTER)
                end += at(s, n, end, &c, &f);
            goto word;
        }
        /* \p{N}{1,digits} */
        if (f & UNICODE_NUMBER) {
            end = pos;
            for (size_t k = 0; k < digits && (cls_at(s, n, end) & UNICODE_NUMBER); k++)
                end += at(s, n, end, &c, &f);
            goto word;
        }
        /* ' ?[^\s\p{L}\p{N}]+[\r\n]*' */
        end = c == ' ' ? pos + l : pos;
        if (cls_at(s, n, end) == UNICODE_OTHER) {
            while (cls_at(s, n, end) == UNICODE_OTHER)
                end += at(s, n, end, &c, &f);
            while (end < n && (s[end] == '\r' || s[end] == '\n'))
                end++;
            goto word;
        }
        end = space_run(s, n, pos, true);
        if (end == 0)
            end = pos + l;
    word:;
        int rc = fn(arg, pos, end);
        if (rc != 0)
            return rc;
        pos = end;
    }
    return 0;
}

/* GPT-2's split of s[0..n), whose words are reported at base + offset. */
static int split_gpt2(const uint8_t *s, size_t n, size_t base, tok_word_fn fn, void *arg)
{
    for (size_t pos = 0; pos < n;) {
        uint32_t c;
        unsigned f;
        size_t l = at(s, n, pos, &c, &f), end = contraction(s, n, pos, false);
        if (end > 0)
            goto word;
        /* ' ?\p{L}+', ' ?\p{N}+', ' ?[^\s\p{L}\p{N}]+': one class, repeated */
        end = c == ' ' ? pos + l : pos;
        unsigned run = cls_at(s, n, end);
        if (run == UNICODE_LETTER || run == UNICODE_NUMBER || run == UNICODE_OTHER) {
            while (cls_at(s, n, end) == run)
                end += at(s, n, end, &c, &f);
            goto word;
        }
        end = space_run(s, n, pos, false);
        if (end == 0)
            end = pos + l;
    word:;
        int rc = fn(arg, base + pos, base + end);
        if (rc != 0)
            return rc;
        pos = end;
    }
    return 0;
}

/* SmolLM: each number character is a word; GPT-2's split between them. */
static int split_smollm(const uint8_t *s, size_t n, tok_word_fn fn, void *arg)
{
    size_t from = 0;
    for (size_t pos = 0; pos < n;) {
        uint32_t c;
        unsigned f;
        size_t l = at(s, n, pos, &c, &f);
        if (f & UNICODE_NUMBER) {
            int rc = split_gpt2(s + from, pos - from, from, fn, arg);
            if (rc == 0)
                rc = fn(arg, pos, pos + l);
            if (rc != 0)
                return rc;
            from = pos + l;
        }
        pos += l;
    }
    return split_gpt2(s + from, n - from, from, fn, arg);
}

int tok_pre_split(tok_pre pre, const uint8_t *s, size_t n, tok_word_fn fn, void *arg)
{
    switch (pre) {
    case TOK_PRE_QWEN2:
        return split_llama3(s, n, 1, fn, arg);
    case TOK_PRE_GPT2:
        return split_gpt2(s, n, 0, fn, arg);
    case TOK_PRE_SMOLLM:
        return split_smollm(s, n, fn, arg);
    case TOK_PRE_LLAMA3:
    default:
        return split_llama3(s, n, 3, fn, arg);
    }
}
