/*
 * pull_source.c — reading SRC strings and URLs given to `cache pull`.
 *
 * SRC comes from a person or from an order a coordinator relays: every part
 * is checked against the character set and length its owner allows (the
 * Hub, Ollama, RFC 3986) before it is put into a URL or a store name, so
 * nothing like "hf:../../etc/passwd" can reach a path or a request.
 */
#include <curl/curl.h>
#include <stdio.h>
#include <string.h>

#include "agent/cache/pull.h"

static bool is_alnum(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
}

/* A HuggingFace organisation or repository name, as the Hub allows them. */
static bool hf_part_ok(const char *s, size_t n)
{
    if (n == 0 || n > PULL_MAX_HF_PART || s[0] == '.' || s[0] == '-' || s[n - 1] == '.')
        return false;
    for (size_t i = 0; i < n; i++) {
        if (!is_alnum(s[i]) && s[i] != '.' && s[i] != '_' && s[i] != '-')
            return false;
        if (i > 0 && (s[i] == '.' || s[i] == '-') && s[i - 1] == s[i])
            return false; /* the Hub refuses ".." and "--" */
    }
    return true;
}

/* A branch, tag or commit: one URL path segment that cannot climb. */
static bool hf_rev_ok(const char *s, size_t n)
{
    if (n == 0 || n > PULL_MAX_HF_REV || s[0] == '.' || s[0] == '-')
        return false;
    for (size_t i = 0; i < n; i++)
        if (!is_alnum(s[i]) && s[i] != '.' && s[i] != '_' && s[i] != '-')
            return false;
    return true;
}

static void copy_part(char *out, const char *s, size_t n)
{
    memcpy(out, s, n);
    out[n] = '\0';
}

static int parse_hf(const char *text, pull_source *out, mlx_err *err)
{
    static const char form[] = "use hf:ORG/NAME[@REV][/FILE]";
    const char *p = text + 3;
    size_t n = strcspn(p, "/");
    if (p[n] != '/')
        return mlx_err_set(err, MLX_EUSAGE, "'%.200s' names no repository; %s", text,
                           form);
    if (!hf_part_ok(p, n))
        return mlx_err_set(err, MLX_EUSAGE,
                           "'%.200s': the organisation '%.*s' is not a HuggingFace name "
                           "(1-%d letters, digits, '-', '_', '.'; not starting with '.' "
                           "or '-'); %s",
                           text, (int)(n > 100 ? 100 : n), p, PULL_MAX_HF_PART, form);
    copy_part(out->org, p, n);
    p += n + 1;
    n = strcspn(p, "@/");
    if (!hf_part_ok(p, n))
        return mlx_err_set(err, MLX_EUSAGE,
                           "'%.200s': the repository '%.*s' is not a HuggingFace name "
                           "(1-%d letters, digits, '-', '_', '.'; not starting with '.' "
                           "or '-'); %s",
                           text, (int)(n > 100 ? 100 : n), p, PULL_MAX_HF_PART, form);
    copy_part(out->repo, p, n);
    p += n;
    snprintf(out->rev, sizeof out->rev, "main");
    if (*p == '@') {
        p++;
        n = strcspn(p, "/");
        if (!hf_rev_ok(p, n))
            return mlx_err_set(err, MLX_EUSAGE,
                               "'%.200s': the revision '%.*s' is not a branch, tag or "
                               "commit (1-%d letters, digits, '-', '_', '.'); %s",
                               text, (int)(n > 100 ? 100 : n), p, PULL_MAX_HF_REV, form);
        copy_part(out->rev, p, n);
        p += n;
    }
    if (*p == '/') {
        p++;
        mlx_err e;
        mlx_err_clear(&e);
        if (store_check_name(p, &e) != 0)
            return mlx_err_set(err, MLX_EUSAGE, "'%.200s': the file is not usable: %s",
                               text, e.msg);
        snprintf(out->file, sizeof out->file, "%s", p);
    }
    return 0;
}

static bool ollama_part_ok(const char *s, size_t n, bool tag)
{
    if (n == 0 || n > PULL_MAX_OLLAMA_PART || !(is_alnum(s[0]) || (tag && s[0] == '_')))
        return false;
    for (size_t i = 0; i < n; i++)
        if (!is_alnum(s[i]) && s[i] != '.' && s[i] != '_' && s[i] != '-')
            return false;
    return true;
}

/* A registry host: a DNS name or IPv4 address, and an optional port. */
static bool ollama_host_ok(const char *s, size_t n)
{
    if (n == 0 || n > PULL_MAX_OLLAMA_HOST || !is_alnum(s[0]))
        return false;
    size_t i = 0;
    for (; i < n && s[i] != ':'; i++)
        if (!is_alnum(s[i]) && s[i] != '.' && s[i] != '-')
            return false;
    if (i == n)
        return true;
    size_t digits = n - i - 1;
    if (digits == 0 || digits > 5)
        return false;
    for (i++; i < n; i++)
        if (s[i] < '0' || s[i] > '9')
            return false;
    return true;
}

static int parse_ollama(const char *text, pull_source *out, mlx_err *err)
{
    static const char form[] = "use ollama:NAME[:TAG], ollama:NS/NAME[:TAG] or "
                               "ollama:HOST/NS/NAME[:TAG]";
    const char *p = text + 7;
    if (*p == '\0')
        return mlx_err_set(err, MLX_EUSAGE, "'%.200s' names no model; %s", text, form);
    const char *seg[3];
    size_t len[3], n_seg = 0;
    for (const char *q = p;;) {
        if (n_seg == 3)
            return mlx_err_set(err, MLX_EUSAGE, "'%.200s' has too many '/' parts; %s",
                               text, form);
        seg[n_seg] = q;
        len[n_seg] = strcspn(q, "/");
        q += len[n_seg++];
        if (*q == '\0')
            break;
        q++;
    }
    /* The tag is what follows ':' in the last part; a host may have a port. */
    const char *last = seg[n_seg - 1];
    size_t name_len = strcspn(last, ":");
    const char *tag = name_len < len[n_seg - 1] ? last + name_len + 1 : NULL;
    size_t tag_len = tag != NULL ? len[n_seg - 1] - name_len - 1 : 0;
    if (!ollama_part_ok(last, name_len, false))
        return mlx_err_set(err, MLX_EUSAGE,
                           "'%.200s': the model name '%.*s' is not valid (1-%d letters, "
                           "digits, '.', '_', '-', starting with a letter or digit); %s",
                           text, (int)(name_len > 100 ? 100 : name_len), last,
                           PULL_MAX_OLLAMA_PART, form);
    if (tag != NULL && !ollama_part_ok(tag, tag_len, true))
        return mlx_err_set(err, MLX_EUSAGE,
                           "'%.200s': the tag '%.*s' is not valid (1-%d letters, digits, "
                           "'.', '_', '-'); %s",
                           text, (int)(tag_len > 100 ? 100 : tag_len), tag,
                           PULL_MAX_OLLAMA_PART, form);
    copy_part(out->name, last, name_len);
    if (tag != NULL)
        copy_part(out->tag, tag, tag_len);
    else
        snprintf(out->tag, sizeof out->tag, "latest");
    snprintf(out->ns, sizeof out->ns, "library");
    if (n_seg >= 2) {
        const char *ns = seg[n_seg - 2];
        size_t ns_len = len[n_seg - 2];
        if (!ollama_part_ok(ns, ns_len, false))
            return mlx_err_set(err, MLX_EUSAGE,
                               "'%.200s': the namespace '%.*s' is not valid (1-%d "
                               "letters, digits, '.', '_', '-'); %s",
                               text, (int)(ns_len > 100 ? 100 : ns_len), ns,
                               PULL_MAX_OLLAMA_PART, form);
        copy_part(out->ns, ns, ns_len);
    }
    if (n_seg == 3) {
        if (!ollama_host_ok(seg[0], len[0]))
            return mlx_err_set(err, MLX_EUSAGE,
                               "'%.200s': the registry '%.*s' is not a host name with an "
                               "optional :PORT; %s",
                               text, (int)(len[0] > 100 ? 100 : len[0]), seg[0], form);
        copy_part(out->host, seg[0], len[0]);
    }
    return 0;
}

/* Checks url is an absolute http(s) URL of printable ASCII that curl reads
 * the same way; *h: curl_url_cleanup. */
static int parse_url(const char *url, CURLU **h, mlx_err *err)
{
    *h = NULL;
    size_t n = strlen(url);
    if (n > PULL_MAX_URL)
        return mlx_err_set(err, MLX_EINVAL, "a URL of %zu bytes is longer than %d", n,
                           PULL_MAX_URL);
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)url[i] <= 0x20 || (unsigned char)url[i] >= 0x7f)
            return mlx_err_set(err, MLX_EINVAL,
                               "'%.200s' has a space or a character a URL cannot hold; "
                               "percent-encode it",
                               url);
    const char *rest = strncmp(url, "http://", 7) == 0    ? url + 7
                       : strncmp(url, "https://", 8) == 0 ? url + 8
                                                          : NULL;
    if (rest == NULL || rest[0] == '/' || rest[0] == '\0')
        return mlx_err_set(err, MLX_EINVAL,
                           "'%.200s' is not an http:// or https:// URL with a host", url);
    *h = curl_url();
    if (*h == NULL)
        return mlx_err_set(err, MLX_ENOMEM, "out of memory");
    char *host = NULL;
    if (curl_url_set(*h, CURLUPART_URL, url, 0) != CURLUE_OK ||
        curl_url_get(*h, CURLUPART_HOST, &host, 0) != CURLUE_OK || host == NULL ||
        host[0] == '\0') {
        curl_free(host);
        curl_url_cleanup(*h);
        *h = NULL;
        return mlx_err_set(err, MLX_EINVAL, "'%.200s' is not a valid URL", url);
    }
    curl_free(host);
    return 0;
}

static void lower(char *s)
{
    for (; *s != '\0'; s++)
        if (*s >= 'A' && *s <= 'Z')
            *s = (char)(*s - 'A' + 'a');
}

static int url_parts(const char *url, bool with_scheme, char *out, size_t size,
                     mlx_err *err)
{
    CURLU *h;
    int rc = parse_url(url, &h, err);
    if (rc != 0)
        return rc;
    char *scheme = NULL, *host = NULL, *port = NULL;
    curl_url_get(h, CURLUPART_SCHEME, &scheme, 0);
    curl_url_get(h, CURLUPART_HOST, &host, 0);
    if (curl_url_get(h, CURLUPART_PORT, &port, 0) != CURLUE_OK)
        port = NULL;
    int n = snprintf(out, size, "%s%s%s%s%s", with_scheme ? scheme : "",
                     with_scheme ? "://" : "", host, port != NULL ? ":" : "",
                     port != NULL ? port : "");
    curl_free(scheme);
    curl_free(host);
    curl_free(port);
    curl_url_cleanup(h);
    if (n < 0 || (size_t)n >= size)
        return mlx_err_set(err, MLX_EINVAL, "the host of '%.200s' is too long", url);
    lower(out);
    return 0;
}

int pull_url_host(const char *url, char *out, size_t size, mlx_err *err)
{
    return url_parts(url, false, out, size, err);
}

int pull_url_origin(const char *url, char *out, size_t size, mlx_err *err)
{
    return url_parts(url, true, out, size, err);
}

int pull_parse_base_url(const char *text, const char *flag, char *out, size_t size,
                        mlx_err *err)
{
    CURLU *h;
    int rc = parse_url(text, &h, err);
    if (rc != 0)
        return mlx_err_prefix(err, MLX_EUSAGE, "%s", flag);
    curl_url_cleanup(h);
    if (strpbrk(text, "?#") != NULL)
        return mlx_err_set(err, MLX_EUSAGE,
                           "%s: '%.200s' has a query or fragment; give only "
                           "scheme://host[:port][/path]",
                           flag, text);
    size_t n = strlen(text);
    while (n > 0 && text[n - 1] == '/')
        n--;
    if (n >= size)
        return mlx_err_set(err, MLX_EUSAGE, "%s: '%.200s' is too long", flag, text);
    copy_part(out, text, n);
    return 0;
}

int pull_url_model_name(const char *url, char *out, size_t size, mlx_err *err)
{
    CURLU *h;
    int rc = parse_url(url, &h, err);
    if (rc != 0)
        return mlx_err_prefix(err, MLX_EUSAGE, "SRC");
    char *path = NULL;
    if (curl_url_get(h, CURLUPART_PATH, &path, 0) != CURLUE_OK)
        path = NULL;
    curl_url_cleanup(h);
    const char *base = path != NULL ? strrchr(path, '/') : NULL;
    base = base != NULL ? base + 1 : "";
    size_t n = strlen(base);
    static const char *const exts[] = {".gguf", ".safetensors"};
    for (size_t i = 0; i < sizeof exts / sizeof exts[0]; i++) {
        size_t e = strlen(exts[i]);
        if (n > e && strcmp(base + n - e, exts[i]) == 0) {
            n -= e;
            break;
        }
    }
    int w = snprintf(out, size, "%.*s", (int)n, base);
    curl_free(path);
    mlx_err e;
    mlx_err_clear(&e);
    if (w < 0 || (size_t)w >= size || store_check_name(out, &e) != 0)
        return mlx_err_set(err, MLX_EUSAGE,
                           "cannot name the model after '%.200s' (%s); give a name "
                           "with --name",
                           url, w == 0 ? "it has no file name" : e.msg);
    return 0;
}

int pull_parse_source(const char *text, pull_source *out, mlx_err *err)
{
    memset(out, 0, sizeof *out);
    if (strncmp(text, "hf:", 3) == 0) {
        out->kind = PULL_HF;
        return parse_hf(text, out, err);
    }
    if (strncmp(text, "ollama:", 7) == 0) {
        out->kind = PULL_OLLAMA;
        return parse_ollama(text, out, err);
    }
    if (strncmp(text, "http://", 7) == 0 || strncmp(text, "https://", 8) == 0) {
        out->kind = PULL_URL;
        CURLU *h;
        int rc = parse_url(text, &h, err);
        if (rc != 0)
            return mlx_err_prefix(err, MLX_EUSAGE, "SRC");
        curl_url_cleanup(h);
        snprintf(out->url, sizeof out->url, "%s", text);
        return 0;
    }
    return mlx_err_set(err, MLX_EUSAGE,
                       "'%.200s' is not a source; use hf:ORG/NAME[@REV][/FILE], "
                       "ollama:NAME[:TAG] or an https:// URL with --sha256 (a file on "
                       "this machine goes in with 'cache add')",
                       text);
}
