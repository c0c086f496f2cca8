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
 * short_size=1&redirect=relative|absolute|other-host (replaces that blob's
 * faults): answer with status N; close the connection at byte N of the
 * file; serve the bytes with one flipped; send N bytes/s; stop sending at
 * byte N; state a size one byte short (X-Linked-Size, the manifest) and
 * send the body chunked, so only counting can tell;
 * redirect to /cdn/ by a relative Location, an absolute one, or an absolute
 * one naming "localhost" instead of 127.0.0.1 (another host to a client).
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/parse.h"
#include "tests/support/hub_fixture.h"
#include "tests/support/testutil.h"

struct hub_state hub = {.lock = PTHREAD_MUTEX_INITIALIZER};

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
        return hub_send_text(c, 404, "application/json", "{\"error\":\"Not Found\"}");
    snprintf(repo_id, sizeof repo_id, "%.*s", (int)(mark - rest), rest);
    json_t *repo = find_repo("hf", repo_id);
    if (repo != NULL && !authorised(c, repo))
        return hub_send_text(c, 401, "application/json", "{\"error\":\"Invalid token\"}");
    if (repo == NULL || !rev_ok(repo, mark + 10))
        return hub_send_text(c, 404, "application/json",
                             "{\"error\":\"Repository Not Found\"}");
    json_t *siblings = json_array();
    size_t i;
    json_t *f;
    json_array_foreach(json_object_get(repo, "files"), i, f) json_array_append_new(
        siblings, json_pack("{s:O}", "rfilename", json_object_get(f, "name")));
    return hub_send_json(c, 200,
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
        return hub_send_text(c, 404, "application/json", "{\"error\":\"Not Found\"}");
    snprintf(repo_id, sizeof repo_id, "%.*s", (int)(mark - url - 1), url + 1);
    const char *p = mark + 9;
    size_t rn = strcspn(p, "/");
    if (p[rn] != '/' || rn >= sizeof rev)
        return hub_send_text(c, 404, "application/json", "{\"error\":\"Not Found\"}");
    snprintf(rev, sizeof rev, "%.*s", (int)rn, p);
    const char *file = p + rn + 1;
    json_t *repo = find_repo("hf", repo_id);
    if (repo != NULL && !authorised(c, repo))
        return hub_send_text(c, 401, "application/json", "{\"error\":\"Invalid token\"}");
    if (repo == NULL || !rev_ok(repo, rev))
        return hub_send_text(c, 404, "application/json",
                             "{\"error\":\"Repository Not Found\"}");
    size_t i;
    json_t *f, *found = NULL;
    json_array_foreach(json_object_get(repo, "files"), i, f)
    {
        const char *name = json_string_value(json_object_get(f, "name"));
        if (name != NULL && strcmp(name, file) == 0)
            found = f;
    }
    struct blob *b =
        found != NULL ? hub_find_blob(json_string_value(json_object_get(found, "blob")))
                      : NULL;
    if (b == NULL)
        return hub_send_text(c, 404, "application/json",
                             "{\"error\":\"Entry not found\"}");
    const char *commit = json_string_value(json_object_get(repo, "commit"));
    struct fault flt = hub_fault_of(b);
    if (flt.status != 0)
        return hub_send_blob(c, b, head, b->sha256, NULL); /* answers the status */
    if (!json_is_true(json_object_get(found, "lfs")))      /* kept in git: its blob id */
        return hub_send_blob(c, b, head, b->gitsha1, commit);
    struct MHD_Response *r = NULL;
    hub_send_redirect(c, 302, b, &r);
    char value[128];
    snprintf(value, sizeof value, "\"%s\"", b->sha256);
    MHD_add_response_header(r, "ETag", value);
    MHD_add_response_header(r, "X-Linked-Etag", value);
    snprintf(value, sizeof value, "%zu", b->size - (hub_fault_of(b).short_size ? 1 : 0));
    MHD_add_response_header(r, "X-Linked-Size", value);
    MHD_add_response_header(r, "X-Repo-Commit", commit);
    return hub_queue(c, 302, r);
}

/* ---- the Ollama registry ------------------------------------------------- */

static json_t *layer_json(const char *media_type, struct blob *b)
{
    size_t size = b->size - (hub_fault_of(b).short_size ? 1 : 0);
    return json_pack("{s:s, s:s+, s:I}", "mediaType", media_type, "digest",
                     "sha256:", b->sha256, "size", (json_int_t)size);
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
        return hub_send_json(c, 404,
                             json_pack("{s:[{s:s}]}", "errors", "code", "NAME_UNKNOWN"),
                             "application/json");
    snprintf(repo_id, sizeof repo_id, "%.*s", (int)(mark - rest), rest);
    json_t *repo = find_repo("ollama", repo_id);
    if (m != NULL) {
        const char *tag = json_string_value(json_object_get(repo, "tag"));
        if (repo == NULL || tag == NULL || strcmp(tag, m + 11) != 0)
            return hub_send_json(
                c, 404, json_pack("{s:[{s:s}]}", "errors", "code", "MANIFEST_UNKNOWN"),
                "application/json");
        json_t *layers = json_array();
        size_t i;
        json_t *l;
        json_array_foreach(json_object_get(repo, "layers"), i, l) json_array_append_new(
            layers,
            layer_json(json_string_value(json_object_get(l, "media_type")),
                       hub_find_blob(json_string_value(json_object_get(l, "blob")))));
        struct blob *cfg =
            hub_find_blob(json_string_value(json_object_get(repo, "config")));
        json_t *doc =
            json_pack("{s:i, s:s, s:o, s:o}", "schemaVersion", 2, "mediaType",
                      "application/vnd.docker.distribution.manifest.v2+json", "config",
                      layer_json("application/vnd.docker.container.image.v1+json", cfg),
                      "layers", layers);
        (void)head;
        return hub_send_json(c, 200, doc,
                             "application/vnd.docker.distribution.manifest.v2+json");
    }
    struct blob *b = repo != NULL ? hub_find_blob_sha(bl + 14) : NULL;
    if (b == NULL)
        return hub_send_json(c, 404,
                             json_pack("{s:[{s:s}]}", "errors", "code", "BLOB_UNKNOWN"),
                             "application/json");
    if (hub_fault_of(b).status != 0)
        return hub_send_blob(c, b, head, b->sha256, NULL);
    return hub_send_redirect(c, 307, b, NULL);
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
        return hub_send_text(c, 405, "application/json", "{\"error\":\"method\"}");
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
        return hub_control(c, url);
    if (strncmp(url, "/api/models/", 12) == 0)
        return hf_revision(c, url + 12);
    if (strncmp(url, "/v2/", 4) == 0)
        return ollama(c, url, head);
    if (strncmp(url, "/cdn/", 5) == 0 || strncmp(url, "/files/", 7) == 0) {
        struct blob *b = hub_find_blob(strchr(url + 1, '/') + 1);
        if (b == NULL)
            return hub_send_text(c, 404, "application/json",
                                 "{\"error\":\"no such file\"}");
        return hub_send_blob(c, b, head, b->sha256, NULL);
    }
    if (strstr(url, "/resolve/") != NULL)
        return hf_resolve(c, url, head);
    return hub_send_text(c, 404, "application/json", "{\"error\":\"Not Found\"}");
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
