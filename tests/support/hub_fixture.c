/*
 * hub_fixture.c — mlx-test-hub: the HuggingFace Hub and an Ollama registry
 * on loopback, for tests that cannot reach the real ones.
 *
 *   mlx-test-hub PORT CONFIG.json        prints "ready" once it serves
 *
 * CONFIG names the bytes ("blobs", from a file or inline text) and what
 * serves them:
 *
 *   {"blobs":  {"KEY": {"path": "/abs/file"} | {"text": "…"}, …},
 *    "hf":     [{"repo": "org/name", "commit": "<40 hex>", "token": "…"?,
 *                "files": [{"name": "x.gguf", "blob": "KEY", "lfs": true}]}],
 *    "ollama": [{"repo": "ns/name", "tag": "latest", "config": "KEY",
 *                "layers": [{"media_type": "…", "blob": "KEY"}]}]}
 *
 * Endpoints, as the real services document them:
 *   GET  /api/models/ORG/NAME/revision/REV   {"sha", "siblings":[{"rfilename"}]}
 *   HEAD|GET /ORG/NAME/resolve/REV/FILE      LFS: 302 to /cdn/KEY with
 *        X-Linked-Etag, X-Linked-Size, ETag, X-Repo-Commit; small files: 200
 *        with their git blob id as ETag
 *   GET  /v2/NS/NAME/manifests/TAG           an image manifest
 *   GET  /v2/NS/NAME/blobs/sha256:HEX        307 to /cdn/KEY
 *   HEAD|GET /cdn/KEY, /files/KEY            the bytes, with Range (206)
 *
 * Control, for the test: GET /healthz; GET /_stats (per blob: gets, heads,
 * ranges, bytes served; requests carrying Authorization, and those among
 * them sent to the host name "localhost"); GET /_reset (zero the counters);
 * GET /_fault?blob=KEY&status=N&truncate=N&corrupt=1&throttle=N&stall=N&
 * redirect=relative|absolute|other-host (replaces that blob's faults):
 * answer with status N; close the connection at byte N of the file; serve
 * the bytes with one flipped; send N bytes/s; stop sending at byte N;
 * redirect to /cdn/ by a relative Location, an absolute one, or an absolute
 * one naming "localhost" instead of 127.0.0.1 (another host to a client).
 */
#include <arpa/inet.h>
#include <jansson.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <openssl/evp.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "common/http_server.h"
#include "common/parse.h"
#include "tests/support/testutil.h"

#define MAX_BLOBS 32

enum redirect { REDIRECT_RELATIVE, REDIRECT_ABSOLUTE, REDIRECT_OTHER_HOST };

struct fault {
    int status;       /* answer with this instead, 0: none */
    int64_t truncate; /* close at this file offset, 0: none */
    int64_t stall;    /* stop sending at this file offset, 0: none */
    int64_t throttle; /* bytes per second, 0: unlimited */
    bool corrupt;     /* flip the middle byte */
    enum redirect redirect;
};

struct blob {
    char key[128];
    char *data;
    size_t size;
    char sha256[65], gitsha1[41];
    struct fault fault;                 /* under lock */
    int64_t gets, heads, ranges, bytes; /* under lock */
};

static struct {
    struct blob blobs[MAX_BLOBS];
    size_t n_blobs;
    json_t *config;
    int port;
    pthread_mutex_t lock;
    int64_t requests, auth_seen, auth_localhost; /* under lock */
    volatile sig_atomic_t stopping;
} hub = {.lock = PTHREAD_MUTEX_INITIALIZER};

static void die(const char *what)
{
    fprintf(stderr, "mlx-test-hub: %s\n", what);
    exit(2);
}

static void hex(const unsigned char *d, unsigned n, char *out)
{
    for (unsigned i = 0; i < n; i++)
        snprintf(out + 2 * i, 3, "%02x", d[i]);
}

static void digest_blob(struct blob *b)
{
    unsigned char d[EVP_MAX_MD_SIZE];
    unsigned n = 0;
    EVP_Digest(b->data, b->size, d, &n, EVP_sha256(), NULL);
    hex(d, n, b->sha256);
    char head[40];
    int hn = snprintf(head, sizeof head, "blob %zu", b->size);
    EVP_MD_CTX *md = EVP_MD_CTX_new();
    EVP_DigestInit_ex(md, EVP_sha1(), NULL);
    EVP_DigestUpdate(md, head, (size_t)hn + 1);
    EVP_DigestUpdate(md, b->data, b->size);
    EVP_DigestFinal_ex(md, d, &n);
    EVP_MD_CTX_free(md);
    hex(d, n, b->gitsha1);
}

static struct blob *find_blob(const char *key)
{
    for (size_t i = 0; i < hub.n_blobs; i++)
        if (strcmp(hub.blobs[i].key, key) == 0)
            return &hub.blobs[i];
    return NULL;
}

static struct blob *find_blob_sha(const char *sha)
{
    for (size_t i = 0; i < hub.n_blobs; i++)
        if (strcmp(hub.blobs[i].sha256, sha) == 0)
            return &hub.blobs[i];
    return NULL;
}

static void load_config(const char *path)
{
    json_error_t je;
    hub.config = json_load_file(path, 0, &je);
    if (hub.config == NULL)
        die(je.text);
    const char *key;
    json_t *v;
    json_object_foreach(json_object_get(hub.config, "blobs"), key, v)
    {
        if (hub.n_blobs == MAX_BLOBS)
            die("too many blobs");
        struct blob *b = &hub.blobs[hub.n_blobs++];
        snprintf(b->key, sizeof b->key, "%s", key);
        const char *file = json_string_value(json_object_get(v, "path"));
        const char *text = json_string_value(json_object_get(v, "text"));
        if (file != NULL) {
            b->data = test_read_file(file, &b->size);
            if (b->data == NULL)
                die("cannot read a blob's file");
        } else if (text != NULL) {
            b->data = strdup(text);
            b->size = strlen(text);
        } else {
            die("a blob needs a path or a text");
        }
        digest_blob(b);
    }
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

static enum MHD_Result queue(struct MHD_Connection *c, unsigned status,
                             struct MHD_Response *r)
{
    enum MHD_Result ok = MHD_queue_response(c, status, r);
    MHD_destroy_response(r);
    return ok;
}

static enum MHD_Result send_text(struct MHD_Connection *c, unsigned status,
                                 const char *type, const char *text)
{
    struct MHD_Response *r = MHD_create_response_from_buffer(strlen(text), (void *)text,
                                                             MHD_RESPMEM_MUST_COPY);
    MHD_add_response_header(r, "Content-Type", type);
    return queue(c, status, r);
}

static enum MHD_Result send_json(struct MHD_Connection *c, unsigned status, json_t *v,
                                 const char *type)
{
    char *text = json_dumps(v, JSON_COMPACT);
    json_decref(v);
    enum MHD_Result ok = send_text(c, status, type, text != NULL ? text : "{}");
    free(text);
    return ok;
}

static struct fault fault_of(struct blob *b)
{
    pthread_mutex_lock(&hub.lock);
    struct fault f = b->fault;
    pthread_mutex_unlock(&hub.lock);
    return f;
}

/* The bytes of b, with Range and the blob's faults; commit may be NULL. */
static enum MHD_Result send_blob(struct MHD_Connection *c, struct blob *b, bool head,
                                 const char *etag, const char *commit)
{
    struct fault f = fault_of(b);
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
        return send_text(c, (unsigned)f.status, "application/json",
                         "{\"error\":\"injected\"}");
    uint64_t start = 0, len = b->size;
    int rr = mlx_http_parse_range(range, b->size, &start, &len);
    char value[128];
    if (rr < 0) {
        struct MHD_Response *r =
            MHD_create_response_from_buffer(0, (void *)"", MHD_RESPMEM_PERSISTENT);
        snprintf(value, sizeof value, "bytes */%zu", b->size);
        MHD_add_response_header(r, "Content-Range", value);
        return queue(c, 416, r);
    }
    struct body *bd = calloc(1, sizeof *bd);
    bd->b = b;
    bd->f = f;
    bd->start = start;
    bd->len = len;
    clock_gettime(CLOCK_MONOTONIC, &bd->began);
    struct MHD_Response *r =
        MHD_create_response_from_callback(len, 64 * 1024, read_body, bd, free);
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
    return queue(c, rr > 0 ? 206 : 200, r);
}

/* A redirect to /cdn/KEY as the blob's fault says to write it. */
static enum MHD_Result send_redirect(struct MHD_Connection *c, unsigned status,
                                     struct blob *b, struct MHD_Response **keep)
{
    char location[512];
    enum redirect how = fault_of(b).redirect;
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
    return queue(c, status, r);
}

/* ---- the Hub -------------------------------------------------------------- */

static json_t *find_repo(const char *list, const char *repo)
{
    size_t i;
    json_t *r;
    json_array_foreach(json_object_get(hub.config, list), i, r)
    {
        const char *name = json_string_value(json_object_get(r, "repo"));
        if (name != NULL && strcmp(name, repo) == 0)
            return r;
    }
    return NULL;
}

static bool authorised(struct MHD_Connection *c, json_t *repo)
{
    const char *token = json_string_value(json_object_get(repo, "token"));
    if (token == NULL)
        return true;
    const char *auth = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Authorization");
    char want[256];
    snprintf(want, sizeof want, "Bearer %s", token);
    return auth != NULL && strcmp(auth, want) == 0;
}

static bool rev_ok(json_t *repo, const char *rev)
{
    const char *commit = json_string_value(json_object_get(repo, "commit"));
    return strcmp(rev, "main") == 0 || (commit != NULL && strcmp(rev, commit) == 0);
}

static enum MHD_Result hf_revision(struct MHD_Connection *c, const char *rest)
{
    /* rest: ORG/NAME/revision/REV */
    char repo_id[256];
    const char *mark = strstr(rest, "/revision/");
    if (mark == NULL || (size_t)(mark - rest) >= sizeof repo_id)
        return send_text(c, 404, "application/json", "{\"error\":\"Not Found\"}");
    snprintf(repo_id, sizeof repo_id, "%.*s", (int)(mark - rest), rest);
    json_t *repo = find_repo("hf", repo_id);
    if (repo != NULL && !authorised(c, repo))
        return send_text(c, 401, "application/json", "{\"error\":\"Invalid token\"}");
    if (repo == NULL || !rev_ok(repo, mark + 10))
        return send_text(c, 404, "application/json",
                         "{\"error\":\"Repository Not Found\"}");
    json_t *siblings = json_array();
    size_t i;
    json_t *f;
    json_array_foreach(json_object_get(repo, "files"), i, f) json_array_append_new(
        siblings, json_pack("{s:O}", "rfilename", json_object_get(f, "name")));
    return send_json(c, 200,
                     json_pack("{s:s, s:s, s:O, s:o, s:b}", "_id", "fixture", "id",
                               repo_id, "sha", json_object_get(repo, "commit"),
                               "siblings", siblings, "private", false),
                     "application/json");
}

static enum MHD_Result hf_resolve(struct MHD_Connection *c, const char *url, bool head)
{
    /* url: /ORG/NAME/resolve/REV/FILE */
    const char *mark = strstr(url, "/resolve/");
    char repo_id[256], rev[128];
    if (mark == NULL || (size_t)(mark - url - 1) >= sizeof repo_id)
        return send_text(c, 404, "application/json", "{\"error\":\"Not Found\"}");
    snprintf(repo_id, sizeof repo_id, "%.*s", (int)(mark - url - 1), url + 1);
    const char *p = mark + 9;
    size_t rn = strcspn(p, "/");
    if (p[rn] != '/' || rn >= sizeof rev)
        return send_text(c, 404, "application/json", "{\"error\":\"Not Found\"}");
    snprintf(rev, sizeof rev, "%.*s", (int)rn, p);
    const char *file = p + rn + 1;
    json_t *repo = find_repo("hf", repo_id);
    if (repo != NULL && !authorised(c, repo))
        return send_text(c, 401, "application/json", "{\"error\":\"Invalid token\"}");
    if (repo == NULL || !rev_ok(repo, rev))
        return send_text(c, 404, "application/json",
                         "{\"error\":\"Repository Not Found\"}");
    size_t i;
    json_t *f, *found = NULL;
    json_array_foreach(json_object_get(repo, "files"), i, f)
    {
        const char *name = json_string_value(json_object_get(f, "name"));
        if (name != NULL && strcmp(name, file) == 0)
            found = f;
    }
    struct blob *b = found != NULL
                         ? find_blob(json_string_value(json_object_get(found, "blob")))
                         : NULL;
    if (b == NULL)
        return send_text(c, 404, "application/json", "{\"error\":\"Entry not found\"}");
    const char *commit = json_string_value(json_object_get(repo, "commit"));
    struct fault flt = fault_of(b);
    if (flt.status != 0)
        return send_blob(c, b, head, b->sha256, NULL); /* answers the status */
    if (!json_is_true(json_object_get(found, "lfs")))  /* kept in git: its blob id */
        return send_blob(c, b, head, b->gitsha1, commit);
    struct MHD_Response *r = NULL;
    send_redirect(c, 302, b, &r);
    char value[128];
    snprintf(value, sizeof value, "\"%s\"", b->sha256);
    MHD_add_response_header(r, "ETag", value);
    MHD_add_response_header(r, "X-Linked-Etag", value);
    snprintf(value, sizeof value, "%zu", b->size);
    MHD_add_response_header(r, "X-Linked-Size", value);
    MHD_add_response_header(r, "X-Repo-Commit", commit);
    return queue(c, 302, r);
}

/* ---- the Ollama registry ------------------------------------------------- */

static json_t *layer_json(const char *media_type, struct blob *b)
{
    return json_pack("{s:s, s:s+, s:I}", "mediaType", media_type, "digest",
                     "sha256:", b->sha256, "size", (json_int_t)b->size);
}

static enum MHD_Result ollama(struct MHD_Connection *c, const char *url, bool head)
{
    /* url: /v2/NS/NAME/manifests/TAG or /v2/NS/NAME/blobs/sha256:HEX */
    const char *rest = url + 4;
    const char *m = strstr(rest, "/manifests/");
    const char *bl = strstr(rest, "/blobs/sha256:");
    const char *mark = m != NULL ? m : bl;
    char repo_id[256];
    if (mark == NULL || (size_t)(mark - rest) >= sizeof repo_id)
        return send_json(c, 404,
                         json_pack("{s:[{s:s}]}", "errors", "code", "NAME_UNKNOWN"),
                         "application/json");
    snprintf(repo_id, sizeof repo_id, "%.*s", (int)(mark - rest), rest);
    json_t *repo = find_repo("ollama", repo_id);
    if (m != NULL) {
        const char *tag = json_string_value(json_object_get(repo, "tag"));
        if (repo == NULL || tag == NULL || strcmp(tag, m + 11) != 0)
            return send_json(
                c, 404, json_pack("{s:[{s:s}]}", "errors", "code", "MANIFEST_UNKNOWN"),
                "application/json");
        json_t *layers = json_array();
        size_t i;
        json_t *l;
        json_array_foreach(json_object_get(repo, "layers"), i, l) json_array_append_new(
            layers, layer_json(json_string_value(json_object_get(l, "media_type")),
                               find_blob(json_string_value(json_object_get(l, "blob")))));
        struct blob *cfg = find_blob(json_string_value(json_object_get(repo, "config")));
        json_t *doc =
            json_pack("{s:i, s:s, s:o, s:o}", "schemaVersion", 2, "mediaType",
                      "application/vnd.docker.distribution.manifest.v2+json", "config",
                      layer_json("application/vnd.docker.container.image.v1+json", cfg),
                      "layers", layers);
        (void)head;
        return send_json(c, 200, doc,
                         "application/vnd.docker.distribution.manifest.v2+json");
    }
    struct blob *b = repo != NULL ? find_blob_sha(bl + 14) : NULL;
    if (b == NULL)
        return send_json(c, 404,
                         json_pack("{s:[{s:s}]}", "errors", "code", "BLOB_UNKNOWN"),
                         "application/json");
    if (fault_of(b).status != 0)
        return send_blob(c, b, head, b->sha256, NULL);
    return send_redirect(c, 307, b, NULL);
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

static enum MHD_Result control(struct MHD_Connection *c, const char *url)
{
    if (strcmp(url, "/healthz") == 0)
        return send_text(c, 200, "application/json", "{\"ok\":true}");
    pthread_mutex_lock(&hub.lock);
    if (strcmp(url, "/_reset") == 0) {
        for (size_t i = 0; i < hub.n_blobs; i++)
            hub.blobs[i].gets = hub.blobs[i].heads = hub.blobs[i].ranges =
                hub.blobs[i].bytes = 0;
        hub.requests = hub.auth_seen = hub.auth_localhost = 0;
        pthread_mutex_unlock(&hub.lock);
        return send_text(c, 200, "application/json", "{\"ok\":true}");
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
        return send_json(c, 200, v, "application/json");
    }
    pthread_mutex_unlock(&hub.lock);
    const char *key = MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, "blob");
    struct blob *b = key != NULL ? find_blob(key) : NULL;
    if (b == NULL)
        return send_text(c, 404, "application/json", "{\"error\":\"no such blob\"}");
    struct fault f = {
        .status = (int)query_int(c, "status"),
        .truncate = query_int(c, "truncate"),
        .stall = query_int(c, "stall"),
        .throttle = query_int(c, "throttle"),
        .corrupt = query_int(c, "corrupt") != 0,
    };
    const char *how = MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, "redirect");
    if (how != NULL && strcmp(how, "absolute") == 0)
        f.redirect = REDIRECT_ABSOLUTE;
    else if (how != NULL && strcmp(how, "other-host") == 0)
        f.redirect = REDIRECT_OTHER_HOST;
    pthread_mutex_lock(&hub.lock);
    b->fault = f;
    pthread_mutex_unlock(&hub.lock);
    return send_text(c, 200, "application/json", "{\"ok\":true}");
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *c, const char *url,
                                  const char *method, const char *version,
                                  const char *upload, size_t *upload_size, void **state)
{
    static int marker;
    if (*state == NULL) {
        *state = &marker;
        return MHD_YES;
    }
    bool head = strcmp(method, "HEAD") == 0;
    if (!head && strcmp(method, "GET") != 0)
        return send_text(c, 405, "application/json", "{\"error\":\"method\"}");
    const char *auth = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Authorization");
    const char *host = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Host");
    pthread_mutex_lock(&hub.lock);
    hub.requests++;
    if (auth != NULL) {
        hub.auth_seen++;
        if (host != NULL && strncmp(host, "localhost", 9) == 0)
            hub.auth_localhost++;
    }
    pthread_mutex_unlock(&hub.lock);

    if (strcmp(url, "/healthz") == 0 || strncmp(url, "/_", 2) == 0)
        return control(c, url);
    if (strncmp(url, "/api/models/", 12) == 0)
        return hf_revision(c, url + 12);
    if (strncmp(url, "/v2/", 4) == 0)
        return ollama(c, url, head);
    if (strncmp(url, "/cdn/", 5) == 0 || strncmp(url, "/files/", 7) == 0) {
        struct blob *b = find_blob(strchr(url + 1, '/') + 1);
        if (b == NULL)
            return send_text(c, 404, "application/json", "{\"error\":\"no such file\"}");
        return send_blob(c, b, head, b->sha256, NULL);
    }
    if (strstr(url, "/resolve/") != NULL)
        return hf_resolve(c, url, head);
    return send_text(c, 404, "application/json", "{\"error\":\"Not Found\"}");
}

int main(int argc, char **argv)
{
    if (argc != 3)
        die("usage: mlx-test-hub PORT CONFIG.json");
    int64_t port = 0;
    if (mlx_parse_int64(argv[1], &port, NULL) != 0 || port < 1 || port > 65535)
        die("PORT must be 1-65535");
    hub.port = (int)port;
    load_config(argv[2]);

    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
    pthread_sigmask(SIG_BLOCK, &set, NULL);
    signal(SIGPIPE, SIG_IGN);

    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    struct MHD_Daemon *d = MHD_start_daemon(
        MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_THREAD_PER_CONNECTION |
            MHD_USE_ERROR_LOG,
        (uint16_t)port, NULL, NULL, on_request, NULL, MHD_OPTION_SOCK_ADDR, &sa,
        MHD_OPTION_CONNECTION_TIMEOUT, 60u, MHD_OPTION_END);
    if (d == NULL)
        die("cannot listen (port in use?)");
    printf("ready port=%d\n", hub.port);
    fflush(stdout);
    int sig = 0;
    sigwait(&set, &sig);
    hub.stopping = 1;
    MHD_stop_daemon(d);
    for (size_t i = 0; i < hub.n_blobs; i++)
        free(hub.blobs[i].data);
    json_decref(hub.config);
    return 0;
}
