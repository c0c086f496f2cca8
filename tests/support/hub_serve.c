/* hub_serve.c — mlx-test-hub's answers: bytes with ranges and faults,
 * redirects, and the control endpoints the tests read and steer. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/http_server.h"
#include "common/parse.h"
#include "tests/support/hub_fixture.h"

struct blob *hub_find_blob(const char *key)
{
    for (size_t i = 0; i < hub.n_blobs; i++)
        if (strcmp(hub.blobs[i].key, key) == 0)
            return &hub.blobs[i];
    return NULL;
}

struct blob *hub_find_blob_sha(const char *sha)
{
    for (size_t i = 0; i < hub.n_blobs; i++)
        if (strcmp(hub.blobs[i].sha256, sha) == 0)
            return &hub.blobs[i];
    return NULL;
}

/* ---- bodies ------------------------------------------------------------- */

struct body {
    struct blob *b;
    struct fault f;
    uint64_t start, len; /* the file's bytes [start, start + len) */
    struct timespec began;
};

static double since(const struct timespec *t)
{
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    return (double)(now.tv_sec - t->tv_sec) + (double)(now.tv_nsec - t->tv_nsec) / 1e9;
}

static void nap(double secs)
{
    struct timespec ts = {(time_t)secs, (long)((secs - (double)(time_t)secs) * 1e9)};
    nanosleep(&ts, NULL);
}

static ssize_t read_body(void *cls, uint64_t pos, char *buf, size_t max)
{
    struct body *bd = cls;
    uint64_t at = bd->start + pos; /* offset in the file */
    if (pos >= bd->len)
        return MHD_CONTENT_READER_END_OF_STREAM;
    if (bd->f.truncate > 0 && at >= (uint64_t)bd->f.truncate)
        return MHD_CONTENT_READER_END_WITH_ERROR;
    if (bd->f.stall > 0 && at >= (uint64_t)bd->f.stall) {
        for (int i = 0; i < 600 && !hub.stopping; i++)
            nap(0.05);
        return MHD_CONTENT_READER_END_WITH_ERROR;
    }
    size_t n = bd->len - pos < max ? (size_t)(bd->len - pos) : max;
    if (bd->f.truncate > 0 && at + n > (uint64_t)bd->f.truncate)
        n = (size_t)((uint64_t)bd->f.truncate - at);
    if (bd->f.stall > 0 && at + n > (uint64_t)bd->f.stall)
        n = (size_t)((uint64_t)bd->f.stall - at);
    if (bd->f.throttle > 0) {
        size_t slice = (size_t)(bd->f.throttle / 20 > 0 ? bd->f.throttle / 20 : 1);
        if (n > slice)
            n = slice;
        /* Wait until sending these bytes keeps the average at the rate. */
        double due = (double)(pos + n) / (double)bd->f.throttle;
        while (!hub.stopping && since(&bd->began) < due)
            nap(0.01);
        if (hub.stopping)
            return MHD_CONTENT_READER_END_WITH_ERROR;
    }
    memcpy(buf, bd->b->data + at, n);
    uint64_t mid = bd->b->size / 2;
    if (bd->f.corrupt && mid >= at && mid < at + n)
        buf[mid - at] ^= 0x5a;
    pthread_mutex_lock(&hub.lock);
    bd->b->bytes += (int64_t)n;
    pthread_mutex_unlock(&hub.lock);
    return (ssize_t)n;
}

enum MHD_Result hub_queue(struct MHD_Connection *c, unsigned status,
                          struct MHD_Response *r)
{
    enum MHD_Result ok = MHD_queue_response(c, status, r);
    MHD_destroy_response(r);
    return ok;
}

enum MHD_Result hub_send_text(struct MHD_Connection *c, unsigned status, const char *type,
                              const char *text)
{
    struct MHD_Response *r = MHD_create_response_from_buffer(strlen(text), (void *)text,
                                                             MHD_RESPMEM_MUST_COPY);
    MHD_add_response_header(r, "Content-Type", type);
    return hub_queue(c, status, r);
}

enum MHD_Result hub_send_json(struct MHD_Connection *c, unsigned status, json_t *v,
                              const char *type)
{
    char *text = json_dumps(v, JSON_COMPACT);
    json_decref(v);
    enum MHD_Result ok = hub_send_text(c, status, type, text != NULL ? text : "{}");
    free(text);
    return ok;
}

struct fault hub_fault_of(struct blob *b)
{
    pthread_mutex_lock(&hub.lock);
    struct fault f = b->fault;
    pthread_mutex_unlock(&hub.lock);
    return f;
}

/* The bytes of b, with Range and the blob's faults; commit may be NULL. */
enum MHD_Result hub_send_blob(struct MHD_Connection *c, struct blob *b, bool head,
                              const char *etag, const char *commit)
{
    struct fault f = hub_fault_of(b);
    const char *range = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Range");
    pthread_mutex_lock(&hub.lock);
    if (head)
        b->heads++;
    else
        b->gets++;
    if (range != NULL && !head)
        b->ranges++;
    pthread_mutex_unlock(&hub.lock);
    if (f.status != 0)
        return hub_send_text(c, (unsigned)f.status, "application/json",
                             "{\"error\":\"injected\"}");
    uint64_t start = 0, len = b->size;
    int rr = mlx_http_parse_range(range, b->size, &start, &len);
    char value[128];
    if (rr < 0) {
        struct MHD_Response *r =
            MHD_create_response_from_buffer(0, (void *)"", MHD_RESPMEM_PERSISTENT);
        snprintf(value, sizeof value, "bytes */%zu", b->size);
        MHD_add_response_header(r, "Content-Range", value);
        return hub_queue(c, 416, r);
    }
    struct body *bd = calloc(1, sizeof *bd);
    bd->b = b;
    bd->f = f;
    bd->start = start;
    bd->len = len;
    clock_gettime(CLOCK_MONOTONIC, &bd->began);
    struct MHD_Response *r = MHD_create_response_from_callback(
        f.short_size ? MHD_SIZE_UNKNOWN : len, 64 * 1024, read_body, bd, free);
    MHD_add_response_header(r, "Content-Type", "application/octet-stream");
    MHD_add_response_header(r, "Accept-Ranges", "bytes");
    snprintf(value, sizeof value, "\"%s\"", etag);
    MHD_add_response_header(r, "ETag", value);
    if (commit != NULL)
        MHD_add_response_header(r, "X-Repo-Commit", commit);
    if (rr > 0) {
        snprintf(value, sizeof value, "bytes %llu-%llu/%zu", (unsigned long long)start,
                 (unsigned long long)(start + len - 1), b->size);
        MHD_add_response_header(r, "Content-Range", value);
    }
    return hub_queue(c, rr > 0 ? 206 : 200, r);
}

/* A redirect to /cdn/KEY as the blob's fault says to write it. */
enum MHD_Result hub_send_redirect(struct MHD_Connection *c, unsigned status,
                                  struct blob *b, struct MHD_Response **keep)
{
    char location[512];
    enum redirect how = hub_fault_of(b).redirect;
    if (how == REDIRECT_RELATIVE)
        snprintf(location, sizeof location, "/cdn/%s", b->key);
    else
        snprintf(location, sizeof location, "http://%s:%d/cdn/%s",
                 how == REDIRECT_OTHER_HOST ? "localhost" : "127.0.0.1", hub.port,
                 b->key);
    static const char text[] = "Found. Redirecting";
    struct MHD_Response *r = MHD_create_response_from_buffer(
        sizeof text - 1, (void *)text, MHD_RESPMEM_PERSISTENT);
    MHD_add_response_header(r, "Location", location);
    if (keep != NULL) {
        *keep = r;
        return MHD_YES;
    }
    return hub_queue(c, status, r);
}

/* ---- control --------------------------------------------------------------- */

static int64_t query_int(struct MHD_Connection *c, const char *name)
{
    const char *v = MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, name);
    int64_t out = 0;
    if (v != NULL && mlx_parse_int64(v, &out, NULL) != 0)
        out = 0;
    return out;
}

enum MHD_Result hub_control(struct MHD_Connection *c, const char *url)
{
    if (strcmp(url, "/healthz") == 0)
        return hub_send_text(c, 200, "application/json", "{\"ok\":true}");
    pthread_mutex_lock(&hub.lock);
    if (strcmp(url, "/_reset") == 0) {
        for (size_t i = 0; i < hub.n_blobs; i++)
            hub.blobs[i].gets = hub.blobs[i].heads = hub.blobs[i].ranges =
                hub.blobs[i].bytes = 0;
        hub.requests = hub.auth_seen = hub.auth_localhost = 0;
        pthread_mutex_unlock(&hub.lock);
        return hub_send_text(c, 200, "application/json", "{\"ok\":true}");
    }
    if (strcmp(url, "/_stats") == 0) {
        json_t *blobs = json_object();
        for (size_t i = 0; i < hub.n_blobs; i++) {
            struct blob *b = &hub.blobs[i];
            json_object_set_new(
                blobs, b->key,
                json_pack("{s:I, s:I, s:I, s:I, s:s, s:s, s:I}", "gets",
                          (json_int_t)b->gets, "heads", (json_int_t)b->heads, "ranges",
                          (json_int_t)b->ranges, "bytes", (json_int_t)b->bytes, "sha256",
                          b->sha256, "git_sha1", b->gitsha1, "size",
                          (json_int_t)b->size));
        }
        json_t *v =
            json_pack("{s:o, s:I, s:I, s:I}", "blobs", blobs, "requests",
                      (json_int_t)hub.requests, "auth_seen", (json_int_t)hub.auth_seen,
                      "auth_localhost", (json_int_t)hub.auth_localhost);
        pthread_mutex_unlock(&hub.lock);
        return hub_send_json(c, 200, v, "application/json");
    }
    pthread_mutex_unlock(&hub.lock);
    const char *key = MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, "blob");
    struct blob *b = key != NULL ? hub_find_blob(key) : NULL;
    if (b == NULL)
        return hub_send_text(c, 404, "application/json", "{\"error\":\"no such blob\"}");
    struct fault f = {
        .status = (int)query_int(c, "status"),
        .truncate = query_int(c, "truncate"),
        .stall = query_int(c, "stall"),
        .throttle = query_int(c, "throttle"),
        .corrupt = query_int(c, "corrupt") != 0,
        .short_size = query_int(c, "short_size") != 0,
    };
    const char *how = MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, "redirect");
    if (how != NULL && strcmp(how, "absolute") == 0)
        f.redirect = REDIRECT_ABSOLUTE;
    else if (how != NULL && strcmp(how, "other-host") == 0)
        f.redirect = REDIRECT_OTHER_HOST;
    pthread_mutex_lock(&hub.lock);
    b->fault = f;
    pthread_mutex_unlock(&hub.lock);
    return hub_send_text(c, 200, "application/json", "{\"ok\":true}");
}
