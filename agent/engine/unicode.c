/*
 * unicode.c — UTF-8 in and out for the tokenizers (see unicode.h for why
 * the reader is lenient in exactly llama.cpp's way).
 */
#include "agent/engine/unicode.h"

static inline int is_cont(uint8_t b)
{
    return (b & 0xC0) == 0x80;
}

size_t unicode_decode(const uint8_t *s, size_t n, uint32_t *cp)
{
    uint8_t b = s[0];
    if (b < 0x80) {
        *cp = b;
        return 1;
    }
    /* The lead byte alone decides the length: 110xxxxx two bytes, 1110xxxx
     * three, 11110xxx four; a continuation byte or 11111xxx cannot lead. */
    if ((b & 0xE0) == 0xC0 && n >= 2 && is_cont(s[1])) {
        *cp = (uint32_t)(b & 0x1F) << 6 | (s[1] & 0x3F);
        return 2;
    }
    if ((b & 0xF0) == 0xE0 && n >= 3 && is_cont(s[1]) && is_cont(s[2])) {
        *cp = (uint32_t)(b & 0x0F) << 12 | (uint32_t)(s[1] & 0x3F) << 6 | (s[2] & 0x3F);
        return 3;
    }
    if ((b & 0xF8) == 0xF0 && n >= 4 && is_cont(s[1]) && is_cont(s[2]) && is_cont(s[3])) {
        uint32_t v = (uint32_t)(b & 0x07) << 18 | (uint32_t)(s[1] & 0x3F) << 12 |
                     (uint32_t)(s[2] & 0x3F) << 6 | (s[3] & 0x3F);
        if (v <= 0x10FFFF) {
            *cp = v;
            return 4;
        }
    }
    *cp = UNICODE_REPLACEMENT;
    return 1;
}

size_t unicode_encode(uint32_t cp, uint8_t out[4])
{
    if (cp < 0x80) {
        out[0] = (uint8_t)cp;
        return 1;
    }
    if (cp < 0x800) {
        out[0] = (uint8_t)(0xC0 | cp >> 6);
        out[1] = (uint8_t)(0x80 | (cp & 0x3F));
        return 2;
    }
    if (cp < 0x10000) {
        out[0] = (uint8_t)(0xE0 | cp >> 12);
        out[1] = (uint8_t)(0x80 | (cp >> 6 & 0x3F));
        out[2] = (uint8_t)(0x80 | (cp & 0x3F));
        return 3;
    }
    out[0] = (uint8_t)(0xF0 | cp >> 18);
    out[1] = (uint8_t)(0x80 | (cp >> 12 & 0x3F));
    out[2] = (uint8_t)(0x80 | (cp >> 6 & 0x3F));
    out[3] = (uint8_t)(0x80 | (cp & 0x3F));
    return 4;
}
