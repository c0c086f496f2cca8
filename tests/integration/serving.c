/* serving.c — a serving agent with stories260K, and HTTP exchanges with it. */
#include "tests/integration/serving.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmocka.h>
#include <curl/curl.h>
#include <jansson.h>

#include "tests/support/testutil.h"

/* A sanitized agent loads and answers far slower than a release one. */
#define START_TIMEOUT_MS 30000
#define CALL_TIMEOUT_MS  60000L

static bool healthz_ok(void *arg)
{
    long status = 0;
    json_t *v = h_get_json(arg, &status);
    json_decref(v);
    return status == 200;
}

int serving_start(serving *s, const char *tag, const char *const *extra)
{
    memset(s, 0, sizeof *s);
    char *stories = test_testdata("stories260K.gguf");
    char *reference = test_testdata("reference.json");
    if (stories == NULL || reference == NULL) {
        fprintf(stderr, "skipped: the shared test models (../shared/testdata) are absent\n");
        exit(TEST_SKIP);
    }
    free(reference);
    s->dir = test_tmpdir(tag);
    s->data = test_join(s->dir, "data");
    const char *add[] = {"cache", "add",  stories, "--name", SERVING_MODEL,
                         "--data", s->data, NULL};
    char *err = NULL;
    int status = h_run("mlx-agent", add, 30000, NULL, &err);
    free(stories);
    if (status != 0) {
        fprintf(stderr, "mlx-agent cache add failed (exit %d): %s\n", status, err);
        free(err);
        return -1;
    }
    free(err);

    s->http_port = h_free_port();
    char http[32], health[96];
    snprintf(http, sizeof http, "127.0.0.1:%d", s->http_port);
    snprintf(s->listen, sizeof s->listen, "tcp://127.0.0.1:%d", h_free_port());
    snprintf(s->base, sizeof s->base, "http://127.0.0.1:%d", s->http_port);
    snprintf(health, sizeof health, "%s/healthz", s->base);
    const char *args[48] = {"serve",    "--data", s->data, "--http", http,
                            "--listen", s->listen, "--ollama", "",     NULL};
    size_t n = 9;
    for (size_t i = 0; extra != NULL && extra[i] != NULL && n + 1 < 48; i++)
        args[n++] = extra[i];
    args[n] = NULL;
    s->agent = h_spawn("agent", s->dir, "mlx-agent", args);
    if (!h_wait_for(healthz_ok, health, START_TIMEOUT_MS)) {
        char *log = test_read_file(s->agent->log_path, NULL);
        fprintf(stderr, "the agent did not answer %s within %d ms; its log:\n%s\n", health,
                START_TIMEOUT_MS, log != NULL ? log : "(none)");
        free(log);
        return -1;
    }
    return 0;
}

int serving_stop(serving *s)
{
    int status = s->agent != NULL ? h_stop(s->agent) : -1;
    s->agent = NULL;
    free(s->data);
    s->data = NULL;
    if (s->dir != NULL)
        test_tmpdir_remove(s->dir);
    s->dir = NULL;
    return status;
}

bool serving_healthy(const serving *s)
{
    char url[96];
    snprintf(url, sizeof url, "%s/healthz", s->base);
    long status = 0;
    json_t *v = h_get_json(url, &status);
    json_decref(v);
    return status == 200;
}

static size_t on_body(char *data, size_t size, size_t nmemb, void *arg)
{
    serving_reply *r = arg;
    size_t n = size * nmemb;
    char *grown = realloc(r->body, r->len + n + 1);
    if (grown == NULL)
        return 0;
    r->body = grown;
    memcpy(r->body + r->len, data, n);
    r->len += n;
    r->body[r->len] = '\0';
    return n;
}

/* Keeps the value of header "name: value" when line is one. */
static void keep_header(const char *line, size_t n, const char *name, char *out,
                        size_t size)
{
    size_t k = strlen(name);
    if (n <= k + 1 || strncasecmp(line, name, k) != 0 || line[k] != ':')
        return;
    const char *v = line + k + 1;
    while (v < line + n && *v == ' ')
        v++;
    size_t len = (size_t)(line + n - v);
    while (len > 0 && (v[len - 1] == '\r' || v[len - 1] == '\n'))
        len--;
    snprintf(out, size, "%.*s", (int)len, v);
}

static size_t on_header(char *line, size_t size, size_t nmemb, void *arg)
{
    serving_reply *r = arg;
    size_t n = size * nmemb;
    keep_header(line, n, "Content-Type", r->content_type, sizeof r->content_type);
    keep_header(line, n, "X-Request-Id", r->request_id, sizeof r->request_id);
    return n;
}

int serving_call(const serving *s, const char *method, const char *path,
                 const char *const *headers, const void *body, size_t len,
                 serving_reply *out)
{
    memset(out, 0, sizeof *out);
    out->body = calloc(1, 1);
    if (out->body == NULL)
        abort();
    char url[1024];
    snprintf(url, sizeof url, "%s%s", s->base, path);
    CURL *c = curl_easy_init();
    if (c == NULL)
        abort();
    struct curl_slist *list = NULL;
    bool typed = false;
    for (size_t i = 0; headers != NULL && headers[i] != NULL; i++) {
        list = curl_slist_append(list, headers[i]);
        typed |= strncasecmp(headers[i], "Content-Type:", 13) == 0;
    }
    if (body != NULL && !typed)
        list = curl_slist_append(list, "Content-Type: application/json");
    /* No "Expect: 100-continue": a large body goes at once, as most clients
     * send it, so a refusal has to read or cut it. */
    list = curl_slist_append(list, "Expect:");
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, list);
    curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, CALL_TIMEOUT_MS);
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, out);
    curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(c, CURLOPT_HEADERDATA, out);
    if (body != NULL) {
        curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)len);
        curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
    }
    if (strcmp(method, "HEAD") == 0)
        curl_easy_setopt(c, CURLOPT_NOBODY, 1L);
    else if (strcmp(method, body != NULL ? "POST" : "GET") != 0)
        curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
    CURLcode rc = curl_easy_perform(c);
    if (rc == CURLE_OK)
        curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &out->status);
    else
        fprintf(stderr, "%s %s: %s\n", method, url, curl_easy_strerror(rc));
    curl_slist_free_all(list);
    curl_easy_cleanup(c);
    return rc == CURLE_OK ? 0 : -1;
}

void serving_reply_free(serving_reply *r)
{
    free(r->body);
    r->body = NULL;
    r->len = 0;
}

json_t *serving_post_ok(const serving *s, const char *path, const char *json)
{
    serving_reply r;
    serving_call(s, "POST", path, NULL, json, strlen(json), &r);
    if (r.status != 200)
        fail_msg("POST %s %s: status %ld, %s", path, json, r.status, r.body);
    json_error_t jerr;
    json_t *v = json_loads(r.body, 0, &jerr);
    if (v == NULL)
        fail_msg("POST %s: the answer is not JSON (%s): %s", path, jerr.text, r.body);
    serving_reply_free(&r);
    return v;
}

/* The status of "HTTP/1.x NNN …", or 0. */
static int status_of(const char *head)
{
    if (strlen(head) < 12 || memcmp(head, "HTTP/1.", 7) != 0 || head[8] != ' ')
        return 0;
    int status = 0;
    for (int i = 9; i < 12; i++) {
        if (head[i] < '0' || head[i] > '9')
            return 0;
        status = status * 10 + (head[i] - '0');
    }
    return status;
}

void serving_raw(const serving *s, const void *bytes, size_t len, bool half_close,
                 bool until_closed, int timeout_ms, serving_raw_reply *out)
{
    memset(out, 0, sizeof *out);
    char got[8192];
    size_t n = 0, sent = 0;
    bool sending = len > 0, whole_head = false;
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET,
                             .sin_port = htons((uint16_t)s->http_port),
                             .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    if (fd < 0 || connect(fd, (struct sockaddr *)&sa, sizeof sa) != 0) {
        snprintf(out->head, sizeof out->head, "cannot connect: %s", strerror(errno));
        out->closed = true;
        if (fd >= 0)
            close(fd);
        return;
    }
    fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
    if (!sending && half_close)
        shutdown(fd, SHUT_WR);
    int64_t deadline = h_now_ms() + timeout_ms;
    while (!out->closed && !(whole_head && !until_closed) && h_now_ms() < deadline) {
        struct pollfd p = {fd, (short)(POLLIN | (sending ? POLLOUT : 0)), 0};
        if (poll(&p, 1, 50) <= 0)
            continue;
        if (p.revents & (POLLIN | POLLHUP | POLLERR)) {
            char chunk[4096];
            ssize_t r = recv(fd, chunk, sizeof chunk, 0);
            if (r > 0) {
                size_t keep = (size_t)r < sizeof got - 1 - n ? (size_t)r : sizeof got - 1 - n;
                memcpy(got + n, chunk, keep);
                n += keep;
                got[n] = '\0';
                sending = false; /* it answered: the rest would go unread */
                whole_head |= strstr(got, "\r\n\r\n") != NULL || n == sizeof got - 1;
            } else if (r == 0 || (errno != EAGAIN && errno != EINTR)) {
                out->closed = true; /* closed, or reset */
            }
            continue;
        }
        if (sending && (p.revents & POLLOUT)) {
            ssize_t w = send(fd, (const char *)bytes + sent, len - sent, MSG_NOSIGNAL);
            if (w > 0)
                sent += (size_t)w;
            if (w < 0 && errno != EAGAIN && errno != EINTR)
                sending = false; /* it stopped reading; what did it say? */
            if (sent == len) {
                sending = false;
                if (half_close)
                    shutdown(fd, SHUT_WR);
            }
        }
    }
    close(fd);
    got[n] = '\0';
    out->whole_head = whole_head;
    out->status = status_of(got);
    size_t k = 0;
    for (size_t i = 0; i < n && k + 1 < sizeof out->head; i++)
        out->head[k++] = got[i] >= ' ' && got[i] < 127 ? got[i] : got[i] == '\n' ? '|' : ' ';
    out->head[k] = '\0';
}

/* reference.json keeps each greedy text as a quoted literal with C escapes
 * ("…\n\"Loo", \xHH for raw bytes); this is the text it stands for. */
static void unquote(const char *lit, char *out, size_t size)
{
    size_t n = strlen(lit), k = 0;
    assert_true(n >= 2 && lit[0] == '"' && lit[n - 1] == '"');
    for (size_t i = 1; i + 1 < n && k + 1 < size; i++) {
        if (lit[i] != '\\') {
            out[k++] = lit[i];
            continue;
        }
        char c = lit[++i];
        if (c == 'x') {
            unsigned v = 0;
            for (int d = 0; d < 2; d++) {
                char h = lit[++i];
                v = v * 16 + (unsigned)(h <= '9' ? h - '0' : (h | 0x20) - 'a' + 10);
            }
            out[k++] = (char)v;
        } else {
            out[k++] = c == 'n' ? '\n' : c == 't' ? '\t' : c == 'r' ? '\r' : c;
        }
    }
    out[k] = '\0';
}

const char *serving_greedy_text(const char *prompt)
{
    static char text[4096];
    char *path = test_testdata("reference.json");
    json_t *reference = path != NULL ? json_load_file(path, 0, NULL) : NULL;
    free(path);
    size_t i, r;
    json_t *model, *run;
    json_array_foreach(json_object_get(reference, "models"), i, model)
    {
        if (strcmp(json_string_value(json_object_get(model, "file")), "stories260K.gguf"))
            continue;
        json_array_foreach(json_object_get(model, "runs"), r, run)
        {
            if (strcmp(json_string_value(json_object_get(run, "prompt")), prompt) == 0) {
                unquote(json_string_value(json_object_get(run, "greedy_text")), text,
                        sizeof text);
                json_decref(reference);
                return text;
            }
        }
    }
    json_decref(reference);
    fail_msg("reference.json has no greedy run of stories260K for \"%s\"", prompt);
    return NULL;
}
