/*
 * pull_headers.c — reading HTTP response headers, and the resume rules.
 *
 * Headers arrive one raw line at a time from libcurl, for every response of
 * a redirect chain; a status line starts a new response. Only the headers a
 * download needs are kept, each bounded; a size or range that does not
 * parse marks the response malformed rather than being guessed at.
 *
 * The Hub describes a file in the headers of HEAD /resolve/ (as
 * huggingface_hub reads them): an LFS file answers 302 with X-Linked-Etag
 * (its SHA-256, quoted) and X-Linked-Size; a small file kept in git answers
 * 200 with an ETag that is its git blob id (SHA-1) and a Content-Length.
 */
#include <stdio.h>
#include <string.h>

#include "agent/cache/pull.h"
#include "common/parse.h"

void pull_headers_reset(pull_headers *h)
{
    memset(h, 0, sizeof *h);
    h->linked_size = PULL_SIZE_UNKNOWN;
    h->content_length = PULL_SIZE_UNKNOWN;
    h->range_total = PULL_SIZE_UNKNOWN;
}

static bool is_digit(char c)
{
    return c >= '0' && c <= '9';
}

/* An unsigned decimal of 1..19 digits spanning [p, end). */
static bool parse_size(const char *p, const char *end, uint64_t *out)
{
    size_t n = (size_t)(end - p);
    if (n == 0 || n > 19)
        return false;
    char text[20];
    for (size_t i = 0; i < n; i++) {
        if (!is_digit(p[i]))
            return false;
        text[i] = p[i];
    }
    text[n] = '\0';
    int64_t v = 0;
    if (mlx_parse_int64(text, &v, NULL) != 0 || v < 0)
        return false;
    *out = (uint64_t)v;
    return true;
}

int pull_parse_content_range(const char *value, uint64_t *start, uint64_t *end,
                             uint64_t *total)
{
    if (strncmp(value, "bytes ", 6) != 0)
        return MLX_EPROTO;
    const char *p = value + 6;
    const char *dash = strchr(p, '-');
    const char *slash = dash != NULL ? strchr(dash, '/') : NULL;
    if (dash == NULL || slash == NULL)
        return MLX_EPROTO;
    uint64_t a, b, t = PULL_SIZE_UNKNOWN;
    if (!parse_size(p, dash, &a) || !parse_size(dash + 1, slash, &b) || b < a)
        return MLX_EPROTO;
    if (strcmp(slash + 1, "*") != 0) {
        if (!parse_size(slash + 1, slash + 1 + strlen(slash + 1), &t) || b >= t)
            return MLX_EPROTO;
    }
    *start = a;
    *end = b;
    *total = t;
    return 0;
}

/* Copies a kept header value; false when it does not fit. */
static bool keep(char *out, size_t size, const char *v, size_t n)
{
    if (n >= size)
        return false;
    memcpy(out, v, n);
    out[n] = '\0';
    return true;
}

static bool name_is(const char *line, size_t name_len, const char *name)
{
    if (strlen(name) != name_len)
        return false;
    for (size_t i = 0; i < name_len; i++) {
        char a = line[i], b = name[i];
        if (a >= 'A' && a <= 'Z')
            a = (char)(a - 'A' + 'a');
        if (b >= 'A' && b <= 'Z')
            b = (char)(b - 'A' + 'a');
        if (a != b)
            return false;
    }
    return true;
}

static int status_line(pull_headers *h, const char *line, size_t len)
{
    pull_headers_reset(h);
    const char *sp = memchr(line, ' ', len);
    size_t rest = sp != NULL ? len - (size_t)(sp + 1 - line) : 0;
    if (sp == NULL || rest < 3 || !is_digit(sp[1]) || !is_digit(sp[2]) ||
        !is_digit(sp[3]) || (rest > 3 && is_digit(sp[4]))) {
        h->malformed = true;
        return MLX_EPROTO;
    }
    h->status = (sp[1] - '0') * 100 + (sp[2] - '0') * 10 + (sp[3] - '0');
    return 0;
}

int pull_headers_line(pull_headers *h, const char *line, size_t len)
{
    if (len >= 5 && memcmp(line, "HTTP/", 5) == 0)
        return status_line(h, line, len);
    const char *colon = memchr(line, ':', len);
    if (colon == NULL)
        return 0; /* the blank line that ends the headers, or junk we ignore */
    size_t name_len = (size_t)(colon - line);
    const char *v = colon + 1;
    const char *end = line + len;
    while (v < end && (*v == ' ' || *v == '\t'))
        v++;
    while (end > v &&
           (end[-1] == '\r' || end[-1] == '\n' || end[-1] == ' ' || end[-1] == '\t'))
        end--;
    size_t n = (size_t)(end - v);
    bool ok = true;
    if (name_is(line, name_len, "etag")) {
        ok = keep(h->etag, sizeof h->etag, v, n);
    } else if (name_is(line, name_len, "x-linked-etag")) {
        ok = keep(h->linked_etag, sizeof h->linked_etag, v, n);
    } else if (name_is(line, name_len, "x-repo-commit")) {
        ok = keep(h->repo_commit, sizeof h->repo_commit, v, n);
        for (size_t i = 0; ok && h->repo_commit[i] != '\0'; i++)
            ok = is_digit(h->repo_commit[i]) ||
                 (h->repo_commit[i] >= 'a' && h->repo_commit[i] <= 'f');
        if (!ok)
            h->repo_commit[0] = '\0';
    } else if (name_is(line, name_len, "location")) {
        ok = keep(h->location, sizeof h->location, v, n);
    } else if (name_is(line, name_len, "x-linked-size")) {
        ok = parse_size(v, end, &h->linked_size);
    } else if (name_is(line, name_len, "content-length")) {
        ok = parse_size(v, end, &h->content_length);
    } else if (name_is(line, name_len, "content-range")) {
        char text[96];
        ok = keep(text, sizeof text, v, n);
        /* A 416 says "bytes STAR/N": there is no range to keep. */
        if (ok && strncmp(text, "bytes */", 8) != 0)
            ok = pull_parse_content_range(text, &h->range_start, &h->range_end,
                                          &h->range_total) == 0;
        h->has_range = ok && strncmp(text, "bytes */", 8) != 0;
    }
    if (!ok) {
        h->malformed = true;
        return MLX_EPROTO;
    }
    return 0;
}

int pull_parse_etag(const char *value, char out[65], mlx_err *err)
{
    const char *p = value;
    if (strncmp(p, "W/", 2) == 0)
        p += 2;
    size_t n = strlen(p);
    if (n >= 2 && p[0] == '"' && p[n - 1] == '"') {
        p++;
        n -= 2;
    }
    bool ok = n == 40 || n == 64;
    for (size_t i = 0; ok && i < n; i++) {
        char c = p[i];
        if (c >= 'A' && c <= 'F')
            c = (char)(c - 'A' + 'a');
        ok = is_digit(c) || (c >= 'a' && c <= 'f');
        out[i] = c;
    }
    if (!ok)
        return mlx_err_set(err, MLX_EPROTO,
                           "the ETag '%.100s' is not a SHA-1 or SHA-256 digest", value);
    out[n] = '\0';
    return 0;
}

int pull_hf_expected(const pull_headers *h, const char *file, pull_digest_kind *kind,
                     char expected[65], uint64_t *size, mlx_err *err)
{
    int rc;
    if (h->linked_etag[0] != '\0') {
        if ((rc = pull_parse_etag(h->linked_etag, expected, err)) != 0)
            return mlx_err_prefix(err, rc, "%s: X-Linked-Etag", file);
        if (strlen(expected) != 64)
            return mlx_err_set(err, MLX_EPROTO,
                               "%s: X-Linked-Etag '%.100s' is not a SHA-256 digest", file,
                               h->linked_etag);
        *kind = PULL_DIGEST_SHA256;
    } else if (h->etag[0] != '\0') {
        if ((rc = pull_parse_etag(h->etag, expected, err)) != 0)
            return mlx_err_prefix(err, rc, "%s", file);
        *kind = strlen(expected) == 64 ? PULL_DIGEST_SHA256 : PULL_DIGEST_GIT_SHA1;
    } else {
        return mlx_err_set(err, MLX_EPROTO,
                           "the Hub gave no ETag for %s, so it cannot be verified", file);
    }
    if (h->linked_size != PULL_SIZE_UNKNOWN)
        *size = h->linked_size;
    else if (h->status == 200 && h->content_length != PULL_SIZE_UNKNOWN)
        *size = h->content_length;
    else
        return mlx_err_set(err, MLX_EPROTO, "the Hub gave no size for %s", file);
    if (*size > BLOB_MAX_BYTES)
        return mlx_err_set(err, MLX_EPROTO,
                           "the Hub says %s has %llu bytes, over the limit", file,
                           (unsigned long long)*size);
    return 0;
}

pull_resume pull_decide_resume(uint64_t partial, uint64_t declared)
{
    if (partial == 0)
        return PULL_RESUME_FRESH;
    if (declared == PULL_SIZE_UNKNOWN)
        return PULL_RESUME_RANGE;
    if (partial > declared)
        return PULL_RESUME_DISCARD;
    if (partial == declared)
        return PULL_RESUME_CHECK;
    return PULL_RESUME_RANGE;
}

pull_answer pull_decide_answer(const pull_headers *h, uint64_t from, mlx_err *err)
{
    if (h->malformed) {
        mlx_err_set(err, MLX_EPROTO, "the server sent a malformed header");
        return PULL_ANSWER_FAIL;
    }
    switch (h->status) {
    case 200:
        return PULL_ANSWER_RESTART;
    case 206:
        if (!h->has_range) {
            mlx_err_set(err, MLX_EPROTO,
                        "the server answered 206 without a valid Content-Range");
            return PULL_ANSWER_FAIL;
        }
        if (h->range_start != from) {
            mlx_err_set(err, MLX_EPROTO,
                        "the server sent bytes from %llu where %llu were asked for",
                        (unsigned long long)h->range_start, (unsigned long long)from);
            return PULL_ANSWER_FAIL;
        }
        return PULL_ANSWER_APPEND;
    case 416:
        if (from > 0)
            return PULL_ANSWER_RETRY;
        break;
    default:
        break;
    }
    mlx_err_set(err, MLX_EHTTP, "the server answered %ld", h->status);
    return PULL_ANSWER_FAIL;
}
