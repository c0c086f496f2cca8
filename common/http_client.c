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

static size_t on_data(char *data, size_t size, size_t nmemb, void *arg)
{
    mlx_buf *b = arg;
    size_t n = size * nmemb;
    return mlx_buf_append(b, data, n) == 0 ? n : 0; /* 0 makes curl stop */
}

int mlx_http_request(const char *method, const char *url, const char *bearer,
                     const char *body, int timeout_ms, mlx_http_result *out, mlx_err *err)
{
    CURL *curl = curl_easy_init();
    if (curl == NULL)
        return mlx_err_set(err, MLX_ENOMEM, "out of memory starting an HTTP request");
    mlx_buf resp;
    mlx_buf_init(&resp, MLX_MAX_HTTP_RESPONSE);
    struct curl_slist *headers = NULL;
    char auth[512];
    int rc = 0;

    curl_easy_setopt(curl, CURLOPT_URL, url);
    curl_easy_setopt(curl, CURLOPT_CUSTOMREQUEST, method);
    curl_easy_setopt(curl, CURLOPT_TIMEOUT_MS, (long)timeout_ms);
    curl_easy_setopt(curl, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, on_data);
    curl_easy_setopt(curl, CURLOPT_WRITEDATA, &resp);
    curl_easy_setopt(curl, CURLOPT_PROTOCOLS_STR, "http,https");
    if (bearer != NULL && bearer[0] != '\0') {
        snprintf(auth, sizeof auth, "Authorization: Bearer %s", bearer);
        headers = curl_slist_append(headers, auth);
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
        out->body_len = resp.len;
        out->body = mlx_buf_take(&resp);
        if (out->body == NULL)
            rc = mlx_err_set(err, MLX_ENOMEM, "out of memory");
    } else if (cc == CURLE_OPERATION_TIMEDOUT) {
        rc = mlx_err_set(err, MLX_ETIMEDOUT, "%s did not answer within %d ms", url, timeout_ms);
    } else if (cc == CURLE_COULDNT_CONNECT || cc == CURLE_COULDNT_RESOLVE_HOST) {
        rc = mlx_err_set(err, MLX_EUNREACH, "cannot reach %s: %s", url,
                         curl_easy_strerror(cc));
    } else if (cc == CURLE_WRITE_ERROR) {
        rc = mlx_err_set(err, MLX_ETOOBIG, "the answer from %s is larger than %u bytes", url,
                         MLX_MAX_HTTP_RESPONSE);
    } else {
        rc = mlx_err_set(err, MLX_EHTTP, "request to %s failed: %s", url,
                         curl_easy_strerror(cc));
    }
    mlx_buf_fini(&resp);
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
