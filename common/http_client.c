/* http_client.c — libcurl easy interface with a bounded response buffer. */
#include "common/http_client.h"

#include <curl/curl.h>
#include <string.h>

#include "common/alloc.h"
#include "common/buf.h"

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
    CURL *curl = curl_easy_init();
    if (curl == NULL)
        return mlx_err_set(err, MLX_ENOMEM, "out of memory starting an HTTP request");
    struct sink sink = {.error = 0};
    mlx_buf_init(&sink.body, MLX_MAX_HTTP_RESPONSE);
    mlx_buf auth;
    mlx_buf_init(&auth, 64 * 1024);
    struct curl_slist *headers = NULL;
    int rc = 0;

    curl_easy_setopt(curl, CURLOPT_URL, url);
    curl_easy_setopt(curl, CURLOPT_CUSTOMREQUEST, method);
    curl_easy_setopt(curl, CURLOPT_TIMEOUT_MS, (long)timeout_ms);
    curl_easy_setopt(curl, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, on_data);
    curl_easy_setopt(curl, CURLOPT_WRITEDATA, &sink);
    curl_easy_setopt(curl, CURLOPT_PROTOCOLS_STR, "http,https");
    if (bearer != NULL && bearer[0] != '\0') {
        if (mlx_buf_printf(&auth, "Authorization: Bearer %s", bearer) != 0) {
            rc = mlx_err_set(err, MLX_EINVAL, "the API key is longer than %zu bytes",
                             auth.max);
            goto out;
        }
        headers = curl_slist_append(headers, mlx_buf_str(&auth));
    }
    if (body != NULL) {
        headers = curl_slist_append(headers, "Content-Type: application/json");
        curl_easy_setopt(curl, CURLOPT_POSTFIELDS, body);
        curl_easy_setopt(curl, CURLOPT_POSTFIELDSIZE, (long)strlen(body));
    }
    curl_easy_setopt(curl, CURLOPT_HTTPHEADER, headers);

    CURLcode cc = curl_easy_perform(curl);
    if (cc == CURLE_OK) {
        curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &out->status);
        out->body_len = sink.body.len;
        out->body = mlx_buf_take(&sink.body);
        if (out->body == NULL)
            rc = mlx_err_set(err, MLX_ENOMEM, "out of memory");
    } else if (cc == CURLE_OPERATION_TIMEDOUT) {
        rc = mlx_err_set(err, MLX_ETIMEDOUT, "%s did not answer within %d ms", url,
                         timeout_ms);
    } else if (cc == CURLE_COULDNT_CONNECT || cc == CURLE_COULDNT_RESOLVE_HOST) {
        rc = mlx_err_set(err, MLX_EUNREACH, "cannot reach %s: %s", url,
                         curl_easy_strerror(cc));
    } else if (cc == CURLE_WRITE_ERROR && sink.error == MLX_ETOOBIG) {
        rc = mlx_err_set(err, MLX_ETOOBIG, "the answer from %s is larger than %u bytes",
                         url, MLX_MAX_HTTP_RESPONSE);
    } else if (cc == CURLE_WRITE_ERROR && sink.error == MLX_ENOMEM) {
        rc =
            mlx_err_set(err, MLX_ENOMEM, "out of memory reading the answer from %s", url);
    } else {
        rc = mlx_err_set(err, MLX_EHTTP, "request to %s failed: %s", url,
                         curl_easy_strerror(cc));
    }
out:
    mlx_buf_fini(&sink.body);
    mlx_buf_fini(&auth);
    curl_slist_free_all(headers);
    curl_easy_cleanup(curl);
    return rc;
}

void mlx_http_result_free(mlx_http_result *r)
{
    mlx_free(r->body);
    r->body = NULL;
    r->body_len = 0;
}
