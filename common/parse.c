/* parse.c — strict parsers for values typed by people. */
#include "common/parse.h"

#include <math.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

int mlx_parse_int64(const char *text, int64_t *out, mlx_err *err)
{
    const char *p = text;
    bool negative = false;
    if (*p == '-') {
        negative = true;
        p++;
    }
    if (*p == '\0')
        return mlx_err_set(err, MLX_EINVAL, "'%s' is not a whole number", text);
    uint64_t limit = negative ? (uint64_t)INT64_MAX + 1 : (uint64_t)INT64_MAX;
    uint64_t value = 0;
    for (; *p != '\0'; p++) {
        if (*p < '0' || *p > '9')
            return mlx_err_set(err, MLX_EINVAL, "'%s' is not a whole number", text);
        unsigned digit = (unsigned)(*p - '0');
        if (value > (limit - digit) / 10)
            return mlx_err_set(err, MLX_EINVAL, "'%s' is out of range", text);
        value = value * 10 + digit;
    }
    /* -(INT64_MAX + 1) is representable; negate in unsigned to avoid overflow. */
    *out = negative ? (int64_t)(0 - value) : (int64_t)value;
    return 0;
}

int mlx_parse_duration_ms(const char *text, int64_t *out, mlx_err *err)
{
    static const struct {
        const char *unit;
        int64_t ms;
    } units[] = {{"ms", 1}, {"s", 1000}, {"m", 60000}, {"h", 3600000}, {"d", 86400000}};
    size_t digits = strspn(text, "0123456789");
    char number[20];
    if (digits == 0 || digits >= sizeof number)
        goto bad;
    memcpy(number, text, digits);
    number[digits] = '\0';
    int64_t n;
    if (mlx_parse_int64(number, &n, NULL) != 0 || n == 0)
        goto bad;
    for (size_t i = 0; i < sizeof units / sizeof units[0]; i++) {
        if (strcmp(text + digits, units[i].unit) != 0)
            continue;
        if (n > INT64_MAX / units[i].ms)
            return mlx_err_set(err, MLX_EINVAL, "'%s' is too long a duration", text);
        *out = n * units[i].ms;
        return 0;
    }
bad:
    return mlx_err_set(err, MLX_EINVAL,
                       "'%s' is not a duration: give a whole number and a unit, "
                       "ms, s, m, h or d (for example 30m or 24h)",
                       text);
}

int mlx_parse_double(const char *text, double *out, mlx_err *err)
{
    /* [-]digits[.digits][(e|E)[+-]digits], or [-].digits: the digits become
     * one integer and a power of ten, and the value is their quotient or
     * product, which is exact to the last bit for the numbers people type
     * (up to 15 significant digits, exponents to 22). */
    const char *p = text;
    bool negative = *p == '-';
    p += negative;
    uint64_t mantissa = 0;
    int digits = 0, scale = 0;
    for (; *p >= '0' && *p <= '9'; p++, digits++)
        if (digits < 19)
            mantissa = mantissa * 10 + (uint64_t)(*p - '0');
        else
            scale++; /* digits past what a u64 holds only shift the value */
    if (*p == '.')
        for (p++; *p >= '0' && *p <= '9'; p++, digits++)
            if (digits < 19) {
                mantissa = mantissa * 10 + (uint64_t)(*p - '0');
                scale--;
            }
    if (digits == 0)
        goto bad;
    if (*p == 'e' || *p == 'E') {
        p++;
        bool neg_exp = *p == '-';
        p += *p == '-' || *p == '+';
        int exp = 0, exp_digits = 0;
        for (; *p >= '0' && *p <= '9'; p++, exp_digits++)
            if (exp < 10000)
                exp = exp * 10 + (*p - '0');
        if (exp_digits == 0)
            goto bad;
        scale += neg_exp ? -exp : exp;
    }
    if (*p != '\0')
        goto bad;
    double v = (double)mantissa;
    for (; scale > 0 && v != 0; scale -= scale > 22 ? 22 : scale)
        v *= pow(10, scale > 22 ? 22 : scale);
    for (; scale < 0 && v != 0; scale += scale < -22 ? 22 : -scale)
        v /= pow(10, scale < -22 ? 22 : -scale);
    if (!isfinite(v))
        return mlx_err_set(err, MLX_EINVAL, "'%s' is too large a number", text);
    *out = negative ? -v : v;
    return 0;
bad:
    return mlx_err_set(err, MLX_EINVAL, "'%s' is not a number (like 0.7, 1e-5 or -2)",
                       text);
}

int mlx_parse_bytes(const char *text, uint64_t *out, mlx_err *err)
{
    /* Binary multiples, as disk tools report them; "G", "GB" and "GiB" alike. */
    static const struct {
        const char *unit;
        unsigned shift;
    } units[] = {{"", 0},     {"B", 0},   {"K", 10},   {"KB", 10}, {"KiB", 10},
                 {"M", 20},   {"MB", 20}, {"MiB", 20}, {"G", 30},  {"GB", 30},
                 {"GiB", 30}, {"T", 40},  {"TB", 40},  {"TiB", 40}};
    size_t digits = strspn(text, "0123456789");
    char number[20];
    int64_t n;
    if (digits == 0 || digits >= sizeof number)
        goto bad;
    memcpy(number, text, digits);
    number[digits] = '\0';
    if (mlx_parse_int64(number, &n, NULL) != 0)
        goto bad;
    for (size_t i = 0; i < sizeof units / sizeof units[0]; i++) {
        if (strcasecmp(text + digits, units[i].unit) != 0)
            continue;
        if ((uint64_t)n > UINT64_MAX >> units[i].shift)
            return mlx_err_set(err, MLX_EINVAL, "'%s' is too large a size", text);
        *out = (uint64_t)n << units[i].shift;
        return 0;
    }
bad:
    return mlx_err_set(
        err, MLX_EINVAL,
        "'%s' is not a size: give a whole number of bytes, or one with K, M, "
        "G or T (for example 500M or 40G)",
        text);
}

int mlx_parse_bool(const char *text, bool *out, mlx_err *err)
{
    static const char *const yes[] = {"true", "yes", "on", "1"};
    static const char *const no[] = {"false", "no", "off", "0"};
    for (size_t i = 0; i < 4; i++) {
        if (strcasecmp(text, yes[i]) == 0) {
            *out = true;
            return 0;
        }
        if (strcasecmp(text, no[i]) == 0) {
            *out = false;
            return 0;
        }
    }
    return mlx_err_set(err, MLX_EINVAL, "'%s' is not a boolean; use true or false", text);
}

int mlx_parse_hostport(const char *text, char *host, size_t host_size, int *port,
                       mlx_err *err)
{
    const char *host_start = text;
    const char *host_end;
    const char *colon;
    if (text[0] == '[') {
        host_start = text + 1;
        host_end = strchr(host_start, ']');
        if (host_end == NULL || host_end[1] != ':')
            goto bad;
        colon = host_end + 1;
    } else {
        colon = strrchr(text, ':');
        if (colon == NULL)
            goto bad;
        host_end = colon;
        if (memchr(text, ':', (size_t)(colon - text)) != NULL)
            goto bad; /* a bare IPv6 address needs brackets */
    }
    size_t host_len = (size_t)(host_end - host_start);
    if (host_len == 0 || host_len >= host_size)
        goto bad;
    int64_t value;
    if (mlx_parse_int64(colon + 1, &value, NULL) != 0 || value < 1 || value > 65535)
        goto bad;
    memcpy(host, host_start, host_len);
    host[host_len] = '\0';
    *port = (int)value;
    return 0;
bad:
    return mlx_err_set(err, MLX_EINVAL,
                       "'%s' is not an address of the form HOST:PORT (port 1-65535)",
                       text);
}

int mlx_parse_nng_url(const char *text, char *host, size_t host_size, int *port,
                      mlx_err *err)
{
    static const char *const schemes[] = {"tcp://", "tls+tcp://"};
    for (size_t i = 0; i < 2; i++) {
        size_t n = strlen(schemes[i]);
        if (strncmp(text, schemes[i], n) == 0) {
            if (mlx_parse_hostport(text + n, host, host_size, port, NULL) == 0)
                return 0;
            break;
        }
    }
    return mlx_err_set(err, MLX_EINVAL,
                       "'%s' is not a messaging address; use tcp://HOST:PORT or "
                       "tls+tcp://HOST:PORT",
                       text);
}

bool mlx_text_is_clean(const char *s, size_t max)
{
    const unsigned char *p = (const unsigned char *)s;
    size_t len = 0;
    while (p[len] != '\0') {
        unsigned char c = p[len];
        size_t extra;
        uint32_t cp;
        if (c < 0x20 || c == 0x7f)
            return false;
        if (c < 0x80) {
            extra = 0;
            cp = c;
        } else if (c >= 0xc2 && c <= 0xdf) {
            extra = 1;
            cp = c & 0x1f;
        } else if (c >= 0xe0 && c <= 0xef) {
            extra = 2;
            cp = c & 0x0f;
        } else if (c >= 0xf0 && c <= 0xf4) {
            extra = 3;
            cp = c & 0x07;
        } else {
            return false;
        }
        for (size_t i = 1; i <= extra; i++) {
            unsigned char cc = p[len + i];
            if ((cc & 0xc0) != 0x80)
                return false; /* also catches the terminator */
            cp = cp << 6 | (cc & 0x3f);
        }
        /* Overlong forms, surrogates and values past U+10FFFF. */
        if ((extra == 2 && cp < 0x800) ||
            (extra == 3 && (cp < 0x10000 || cp > 0x10ffff)) ||
            (cp >= 0xd800 && cp <= 0xdfff) || (cp >= 0x80 && cp <= 0x9f))
            return false;
        len += extra + 1;
        if (len > max)
            return false;
    }
    return true;
}

size_t mlx_utf8_prefix(const char *s, size_t max)
{
    size_t len = strnlen(s, max);
    /* s[len] is the byte after the cut (the terminator at the latest): a
     * continuation byte there means the cut falls inside a character. */
    while (len > 0 && ((unsigned char)s[len] & 0xc0) == 0x80)
        len--;
    return len;
}
