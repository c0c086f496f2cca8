/*
 * pull_http.c — the libcurl side of a pull: the options every transfer
 * shares, HEAD without redirects, small bounded GETs, and the sentences for
 * what can go wrong.
 *
 * Every transfer speaks only http and https (redirects included), always
 * verifies TLS certificates (--ca-bundle adds a private CA; nothing turns
 * verification off), and gives up when it moves fewer than PULL_LOW_SPEED
 * bytes a second for stall_s seconds, so a stalled server fails the pull
 * instead of hanging it. The bearer token goes only to its own origin:
 * it is set only for URLs there, and libcurl does not repeat credentials
 * to another host after a redirect (CURLOPT_UNRESTRICTED_AUTH stays off).
 */
#include <stdio.h>
#include <string.h>

#include "agent/cache/pull.h"

int pull_http_setup(const pull_net *n, CURL *curl, const char *url, char *errbuf,
                    mlx_err *err)
{
    errbuf[0] = '\0';
    long stall = n->stall_s > 0 ? n->stall_s : 30;
    if (curl_easy_setopt(curl, CURLOPT_URL, url) != CURLE_OK ||
        curl_easy_setopt(curl, CURLOPT_PROTOCOLS_STR, "http,https") != CURLE_OK ||
        curl_easy_setopt(curl, CURLOPT_REDIR_PROTOCOLS_STR, "http,https") != CURLE_OK)
        return mlx_err_set(err, MLX_EINTERNAL,
                           "libcurl refused the URL or the protocol list; it may be "
                           "older than 7.85");
    curl_easy_setopt(curl, CURLOPT_ERRORBUFFER, errbuf);
    curl_easy_setopt(curl, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(curl, CURLOPT_SSL_VERIFYPEER, 1L);
    curl_easy_setopt(curl, CURLOPT_SSL_VERIFYHOST, 2L);
    if (n->ca_bundle != NULL && n->ca_bundle[0] != '\0')
        curl_easy_setopt(curl, CURLOPT_CAINFO, n->ca_bundle);
    curl_easy_setopt(curl, CURLOPT_CONNECTTIMEOUT, stall);
    curl_easy_setopt(curl, CURLOPT_LOW_SPEED_LIMIT, (long)PULL_LOW_SPEED);
    curl_easy_setopt(curl, CURLOPT_LOW_SPEED_TIME, stall);
    curl_easy_setopt(curl, CURLOPT_MAXREDIRS, (long)PULL_MAX_REDIRECTS);
    curl_easy_setopt(curl, CURLOPT_USERAGENT, "mlx-fleet/" MLX_VERSION);
    char origin[PULL_MAX_URL + 1];
    if (n->token != NULL && n->token[0] != '\0' &&
        pull_url_origin(url, origin, sizeof origin, NULL) == 0 &&
        strcmp(origin, n->token_origin) == 0) {
        curl_easy_setopt(curl, CURLOPT_HTTPAUTH, (long)CURLAUTH_BEARER);
        curl_easy_setopt(curl, CURLOPT_XOAUTH2_BEARER, n->token);
    }
    return 0;
}

static size_t on_header(char *line, size_t size, size_t nitems, void *arg)
{
    pull_headers_line(arg, line, size * nitems);
    return size * nitems;
}

int pull_http_transfer_error(int curl_code, const char *url, const char *errbuf,
                             int stall_s, mlx_err *err)
{
    CURLcode cc = (CURLcode)curl_code;
    const char *detail =
        errbuf != NULL && errbuf[0] != '\0' ? errbuf : curl_easy_strerror(cc);
    char host[PULL_MAX_URL + 1];
    if (pull_url_host(url, host, sizeof host, NULL) != 0)
        snprintf(host, sizeof host, "the server");
    switch (cc) {
    case CURLE_PEER_FAILED_VERIFICATION:
    case CURLE_SSL_CONNECT_ERROR:
    case CURLE_SSL_ISSUER_ERROR:
    case CURLE_SSL_CERTPROBLEM:
        return mlx_err_set(err, MLX_EUNREACH,
                           "cannot verify the TLS certificate of %s (%s); if it is "
                           "signed by a private CA, give that CA's certificate with "
                           "--ca-bundle FILE",
                           host, detail);
    case CURLE_SSL_CACERT_BADFILE:
        return mlx_err_set(err, MLX_ECONFIG,
                           "cannot read the CA bundle (%s); check the --ca-bundle file",
                           detail);
    case CURLE_COULDNT_RESOLVE_HOST:
    case CURLE_COULDNT_RESOLVE_PROXY:
    case CURLE_COULDNT_CONNECT:
        return mlx_err_set(err, MLX_EUNREACH, "cannot reach %s: %s", host, detail);
    case CURLE_OPERATION_TIMEDOUT:
        return mlx_err_set(err, MLX_ETIMEDOUT,
                           "%s stalled (under %d bytes/s for %d s); run the pull again "
                           "to resume",
                           host, PULL_LOW_SPEED, stall_s);
    case CURLE_TOO_MANY_REDIRECTS:
        return mlx_err_set(err, MLX_EHTTP, "%.200s redirected more than %d times", url,
                           PULL_MAX_REDIRECTS);
    case CURLE_UNSUPPORTED_PROTOCOL:
        return mlx_err_set(err, MLX_EHTTP,
                           "%.200s redirected to something other than http or https",
                           url);
    default:
        return mlx_err_set(err, MLX_EHTTP, "the transfer from %s failed: %s", host,
                           detail);
    }
}

int pull_http_status_error(long status, const char *what, const char *url, bool hf,
                           mlx_err *err)
{
    if ((status == 401 || status == 403) && hf)
        return mlx_err_set(err, MLX_EPERM,
                           "the Hub refused access to %s (HTTP %ld); check the name, "
                           "and if the repository is gated or private, accept its terms "
                           "on the Hub and set HF_TOKEN to a token that can read it",
                           what, status);
    if (status == 401 || status == 403)
        return mlx_err_set(err, MLX_EPERM, "%.200s refused access to %s (HTTP %ld)", url,
                           what, status);
    if (status == 404)
        return mlx_err_set(err, MLX_ENOENT, "no %s at %.200s; check the name", what, url);
    if (status == 429)
        return mlx_err_set(err, MLX_EHTTP,
                           "%.200s answered too many requests (HTTP 429); wait a while "
                           "and run the pull again",
                           url);
    if (status >= 500)
        return mlx_err_set(
            err, MLX_EHTTP,
            "the server failed on %s (HTTP %ld at %.200s); try again later", what, status,
            url);
    return mlx_err_set(err, MLX_EHTTP, "%.200s answered HTTP %ld for %s", url, status,
                       what);
}

/* Performs curl; a failed transfer becomes a sentence about url. */
static int perform(const pull_net *n, CURL *curl, const char *url, const char *errbuf,
                   mlx_err *err)
{
    CURLcode cc = curl_easy_perform(curl);
    if (cc == CURLE_OK)
        return 0;
    return pull_http_transfer_error(cc, url, errbuf, n->stall_s, err);
}

int pull_http_head(const pull_net *n, const char *url, pull_headers *h, mlx_err *err)
{
    pull_headers_reset(h);
    CURL *curl = curl_easy_init();
    if (curl == NULL)
        return mlx_err_set(err, MLX_ENOMEM, "out of memory starting an HTTP request");
    char errbuf[CURL_ERROR_SIZE];
    int rc = pull_http_setup(n, curl, url, errbuf, err);
    if (rc == 0) {
        curl_easy_setopt(curl, CURLOPT_NOBODY, 1L);
        curl_easy_setopt(curl, CURLOPT_FOLLOWLOCATION, 0L);
        curl_easy_setopt(curl, CURLOPT_HEADERFUNCTION, on_header);
        curl_easy_setopt(curl, CURLOPT_HEADERDATA, h);
        rc = perform(n, curl, url, errbuf, err);
    }
    /* libcurl resolves a relative Location against the URL asked for. */
    char *next = NULL;
    if (rc == 0 && h->status >= 300 && h->status < 400 &&
        curl_easy_getinfo(curl, CURLINFO_REDIRECT_URL, &next) == CURLE_OK &&
        next != NULL) {
        if (strlen(next) > PULL_MAX_URL)
            rc = mlx_err_set(err, MLX_EPROTO, "%.200s redirects to a URL over %d bytes",
                             url, PULL_MAX_URL);
        else
            snprintf(h->location, sizeof h->location, "%s", next);
    }
    curl_easy_cleanup(curl);
    return rc;
}

static size_t on_small_body(char *data, size_t size, size_t nmemb, void *arg)
{
    return mlx_buf_append(arg, data, size * nmemb) == 0 ? size * nmemb : 0;
}

int pull_http_get_small(const pull_net *n, const char *url, const char *accept,
                        mlx_buf *body, pull_headers *h, mlx_err *err)
{
    pull_headers_reset(h);
    mlx_buf_reset(body);
    CURL *curl = curl_easy_init();
    if (curl == NULL)
        return mlx_err_set(err, MLX_ENOMEM, "out of memory starting an HTTP request");
    char errbuf[CURL_ERROR_SIZE];
    struct curl_slist *headers = NULL;
    char line[512];
    int rc = pull_http_setup(n, curl, url, errbuf, err);
    if (rc == 0 && accept != NULL) {
        snprintf(line, sizeof line, "Accept: %s", accept);
        headers = curl_slist_append(NULL, line);
        if (headers == NULL)
            rc = mlx_err_set(err, MLX_ENOMEM, "out of memory");
        curl_easy_setopt(curl, CURLOPT_HTTPHEADER, headers);
    }
    if (rc == 0) {
        curl_easy_setopt(curl, CURLOPT_FOLLOWLOCATION, 1L);
        curl_easy_setopt(curl, CURLOPT_HEADERFUNCTION, on_header);
        curl_easy_setopt(curl, CURLOPT_HEADERDATA, h);
        curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, on_small_body);
        curl_easy_setopt(curl, CURLOPT_WRITEDATA, body);
        CURLcode cc = curl_easy_perform(curl);
        if (cc == CURLE_WRITE_ERROR)
            rc = mlx_err_set(err, MLX_ETOOBIG,
                             "the answer from %.200s is larger than %zu bytes", url,
                             body->max);
        else if (cc != CURLE_OK)
            rc = pull_http_transfer_error(cc, url, errbuf, n->stall_s, err);
    }
    curl_slist_free_all(headers);
    curl_easy_cleanup(curl);
    return rc;
}
