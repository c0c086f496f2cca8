/* http_client.c — libcurl easy interface: a bounded response buffer, or a
 * caller's callback fed as the body arrives. */
#include "common/http_client.h"

#include <curl/curl.h>
#include <stdbool.h>
#include <string.h>

#include "common/alloc.h"
#include "common/buf.h"
#include "common/clock.h"

int mlx_http_client_init(mlx_err *err)
{
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK)
        return mlx_err_set(err, MLX_EINTERNAL, "libcurl could not initialise");
    return 0;
}

void mlx_http_client_fini(void)
{
    curl_global_cleanup();
}

/* A request's handle and the memory its options point to. */
struct call {
    CURL *curl;
    struct curl_slist *headers;
    mlx_buf auth;
};

/* Sets up everything both request shapes share. On failure the call is
 * still closed with call_close. */
static int call_open(struct call *c, const char *method, const char *url,
                     const char *bearer, const char *body, mlx_err *err)
{
    c->headers = NULL;
    mlx_buf_init(&c->auth, 64 * 1024);
    c->curl = curl_easy_init();
    if (c->curl == NULL)
        return mlx_err_set(err, MLX_ENOMEM, "out of memory starting an HTTP request");
    curl_easy_setopt(c->curl, CURLOPT_URL, url);
    curl_easy_setopt(c->curl, CURLOPT_CUSTOMREQUEST, method);
    curl_easy_setopt(c->curl, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(c->curl, CURLOPT_PROTOCOLS_STR, "http,https");
    if (bearer != NULL && bearer[0] != '\0') {
        if (mlx_buf_printf(&c->auth, "Authorization: Bearer %s", bearer) != 0)
            return mlx_err_set(err, MLX_EINVAL, "the API key is longer than %zu bytes",
                               c->auth.max);
        c->headers = curl_slist_append(c->headers, mlx_buf_str(&c->auth));
    }
    if (body != NULL) {
        c->headers = curl_slist_append(c->headers, "Content-Type: application/json");
        curl_easy_setopt(c->curl, CURLOPT_POSTFIELDS, body);
        curl_easy_setopt(c->curl, CURLOPT_POSTFIELDSIZE, (long)strlen(body));
    }
    curl_easy_setopt(c->curl, CURLOPT_HTTPHEADER, c->headers);
    return 0;
}

static void call_close(struct call *c)
{
    mlx_buf_fini(&c->auth);
    curl_slist_free_all(c->headers);
    curl_easy_cleanup(c->curl);
}

/* The sentence for a transfer that failed in a way both shapes share. */
static int transfer_failed(CURLcode cc, const char *url, mlx_err *err)
{
    if (cc == CURLE_COULDNT_CONNECT || cc == CURLE_COULDNT_RESOLVE_HOST)
        return mlx_err_set(err, MLX_EUNREACH, "cannot reach %s: %s", url,
                           curl_easy_strerror(cc));
    return mlx_err_set(err, MLX_EHTTP, "request to %s failed: %s", url,
                       curl_easy_strerror(cc));
}

/* ---- the whole response ---------------------------------------------------- */

/* The response body as it arrives, and why taking it stopped. */
struct sink {
    mlx_buf body;
    int error; /* MLX_ETOOBIG or MLX_ENOMEM once an append failed */
};

static size_t on_data(char *data, size_t size, size_t nmemb, void *arg)
{
    struct sink *sink = arg;
    size_t n = size * nmemb;
    int rc = mlx_buf_append(&sink->body, data, n);
    if (rc != 0)
        sink->error = rc;
    return rc == 0 ? n : 0; /* 0 makes curl stop */
}

int mlx_http_request(const char *method, const char *url, const char *bearer,
                     const char *body, int timeout_ms, mlx_http_result *out, mlx_err *err)
{
    struct sink sink = {.error = 0};
    mlx_buf_init(&sink.body, MLX_MAX_HTTP_RESPONSE);
    struct call c;
    int rc = call_open(&c, method, url, bearer, body, err);
    if (rc != 0)
        goto out;
    curl_easy_setopt(c.curl, CURLOPT_TIMEOUT_MS, (long)timeout_ms);
    curl_easy_setopt(c.curl, CURLOPT_WRITEFUNCTION, on_data);
    curl_easy_setopt(c.curl, CURLOPT_WRITEDATA, &sink);

    CURLcode cc = curl_easy_perform(c.curl);
    if (cc == CURLE_OK) {
        curl_easy_getinfo(c.curl, CURLINFO_RESPONSE_CODE, &out->status);
        out->body_len = sink.body.len;
        out->body = mlx_buf_take(&sink.body);
        if (out->body == NULL)
            rc = mlx_err_set(err, MLX_ENOMEM, "out of memory");
    } else if (cc == CURLE_OPERATION_TIMEDOUT) {
        rc = mlx_err_set(err, MLX_ETIMEDOUT, "%s did not answer within %d ms", url,
                         timeout_ms);
    } else if (cc == CURLE_WRITE_ERROR && sink.error == MLX_ETOOBIG) {
        rc = mlx_err_set(err, MLX_ETOOBIG, "the answer from %s is larger than %u bytes",
                         url, MLX_MAX_HTTP_RESPONSE);
    } else if (cc == CURLE_WRITE_ERROR && sink.error == MLX_ENOMEM) {
        rc =
            mlx_err_set(err, MLX_ENOMEM, "out of memory reading the answer from %s", url);
    } else {
        rc = transfer_failed(cc, url, err);
    }
out:
    mlx_buf_fini(&sink.body);
    call_close(&c);
    return rc;
}

void mlx_http_result_free(mlx_http_result *r)
{
    mlx_free(r->body);
    r->body = NULL;
    r->body_len = 0;
}

/* ---- a streamed response --------------------------------------------------- */

struct pieces {
    CURL *curl;
    mlx_http_on_piece fn;
    void *arg;
    long status;  /* read from curl before the first piece */
    bool stopped; /* fn asked to stop */
    int idle_ms;
    int64_t last_ms;   /* monotonic time of the last bytes that moved */
    curl_off_t dl, ul; /* bytes moved by then */
    bool idle;         /* idle_ms passed in silence */
};

static size_t on_piece(char *data, size_t size, size_t nmemb, void *arg)
{
    struct pieces *p = arg;
    size_t n = size * nmemb;
    if (n == 0)
        return 0;
    p->last_ms = mlx_time_mono_ms();
    /* The head is complete before curl hands over any of the body. */
    if (p->status == 0)
        curl_easy_getinfo(p->curl, CURLINFO_RESPONSE_CODE, &p->status);
    if (p->fn(p->arg, p->status, data, n) != 0) {
        p->stopped = true;
        return 0; /* curl stops with CURLE_WRITE_ERROR */
    }
    return n;
}

/* Called by curl at least once a second, data or not: measures silence.
 * (curl's own low-speed check averages over several seconds, so it would
 * notice silence seconds late.) */
static int on_progress(void *arg, curl_off_t dltotal, curl_off_t dlnow,
                       curl_off_t ultotal, curl_off_t ulnow)
{
    (void)dltotal;
    (void)ultotal;
    struct pieces *p = arg;
    int64_t now = mlx_time_mono_ms();
    if (dlnow != p->dl || ulnow != p->ul) {
        p->dl = dlnow;
        p->ul = ulnow;
        p->last_ms = now;
    }
    if (now - p->last_ms >= p->idle_ms) {
        p->idle = true;
        return 1; /* curl stops with CURLE_ABORTED_BY_CALLBACK */
    }
    return 0;
}

int mlx_http_request_stream(const char *method, const char *url, const char *bearer,
                            const char *body, int idle_ms, mlx_http_on_piece fn,
                            void *arg, long *status, mlx_err *err)
{
    if (status != NULL)
        *status = 0;
    struct call c;
    int rc = call_open(&c, method, url, bearer, body, err);
    if (rc != 0)
        goto out;
    struct pieces p = {.curl = c.curl,
                       .fn = fn,
                       .arg = arg,
                       .idle_ms = idle_ms,
                       .last_ms = mlx_time_mono_ms()};
    curl_easy_setopt(c.curl, CURLOPT_CONNECTTIMEOUT_MS, (long)idle_ms);
    curl_easy_setopt(c.curl, CURLOPT_WRITEFUNCTION, on_piece);
    curl_easy_setopt(c.curl, CURLOPT_WRITEDATA, &p);
    curl_easy_setopt(c.curl, CURLOPT_XFERINFOFUNCTION, on_progress);
    curl_easy_setopt(c.curl, CURLOPT_XFERINFODATA, &p);
    curl_easy_setopt(c.curl, CURLOPT_NOPROGRESS, 0L);

    CURLcode cc = curl_easy_perform(c.curl);
    if (cc == CURLE_OK || (cc == CURLE_WRITE_ERROR && p.stopped)) {
        if (status != NULL)
            curl_easy_getinfo(c.curl, CURLINFO_RESPONSE_CODE, status);
    } else if (cc == CURLE_OPERATION_TIMEDOUT ||
               (cc == CURLE_ABORTED_BY_CALLBACK && p.idle)) {
        rc = mlx_err_set(err, MLX_ETIMEDOUT, "%s sent nothing for %d ms", url, idle_ms);
    } else {
        rc = transfer_failed(cc, url, err);
    }
out:
    call_close(&c);
    return rc;
}
