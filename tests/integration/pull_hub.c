/* pull_hub.c — starting mlx-test-hub, its counters, pulls, store checks. */
#include "tests/integration/pull_hub.h"

#include <dirent.h>
#include <openssl/evp.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <cmocka.h>

#include "tests/support/testutil.h"

static bool hub_ready(void *arg)
{
    const hub *h = arg;
    char url[128];
    snprintf(url, sizeof url, "%s/healthz", h->base);
    json_t *v = h_get_json(url, NULL);
    bool ok = v != NULL;
    json_decref(v);
    return ok;
}

void hub_start(hub *h, const char *dir, const char *config)
{
    char *path = test_join(dir, "hub.json");
    test_write_file(path, config);
    for (int attempt = 0; attempt < 5; attempt++) {
        h->port = h_free_port();
        snprintf(h->base, sizeof h->base, "http://127.0.0.1:%d", h->port);
        char port[16];
        snprintf(port, sizeof port, "%d", h->port);
        const char *args[] = {port, path, NULL};
        h->proc = h_spawn("hub", dir, "mlx-test-hub", args);
        if (h_wait_for(hub_ready, h, 10000))
            break;
        h_stop(h->proc); /* the port was taken meanwhile: try another */
        h->proc = NULL;
    }
    free(path);
    if (h->proc == NULL)
        fail_msg("mlx-test-hub did not start; see %s/hub.log", dir);
}

void hub_stop(hub *h)
{
    if (h->proc != NULL)
        h_stop(h->proc);
    h->proc = NULL;
}

void hub_get(const hub *h, const char *path_and_query)
{
    char url[512];
    snprintf(url, sizeof url, "%s%s", h->base, path_and_query);
    long status = 0;
    json_t *v = h_get_json(url, &status);
    json_decref(v);
    if (status != 200)
        fail_msg("GET %s answered %ld", url, status);
}

void hub_fault(const hub *h, const char *blob, const char *query)
{
    char path[256];
    snprintf(path, sizeof path, "/_fault?blob=%s%s%s", blob, query[0] ? "&" : "", query);
    hub_get(h, path);
}

void hub_reset(const hub *h)
{
    hub_get(h, "/_reset");
}

static json_t *stats(const hub *h)
{
    char url[128];
    snprintf(url, sizeof url, "%s/_stats", h->base);
    json_t *v = h_get_json(url, NULL);
    if (v == NULL)
        fail_msg("mlx-test-hub gave no stats");
    return v;
}

int64_t hub_count(const hub *h, const char *blob, const char *field)
{
    json_t *v = stats(h);
    json_t *obj = blob != NULL ? json_object_get(json_object_get(v, "blobs"), blob) : v;
    json_t *n = json_object_get(obj, field);
    if (!json_is_integer(n))
        fail_msg("mlx-test-hub has no counter %s of %s", field, blob ? blob : "the hub");
    int64_t out = json_integer_value(n);
    json_decref(v);
    return out;
}

const char *hub_sha256(const hub *h, const char *blob)
{
    static char out[65];
    json_t *v = stats(h);
    const char *s = json_string_value(
        json_object_get(json_object_get(json_object_get(v, "blobs"), blob), "sha256"));
    snprintf(out, sizeof out, "%s", s != NULL ? s : "");
    if (s == NULL)
        fail_msg("mlx-test-hub has no blob %s", blob);
    json_decref(v);
    return out;
}

const char *const *hub_pull_args(const hub *h, const char *data, const char *src)
{
    static const char *args[16];
    args[0] = "cache";
    args[1] = "pull";
    args[2] = src;
    args[3] = "--data";
    args[4] = data;
    args[5] = "--hf-endpoint";
    args[6] = h->base;
    args[7] = "--ollama-registry";
    args[8] = h->base;
    args[9] = NULL;
    return args;
}

int hub_pull(const hub *h, const char *data, const char *src, const char *const *extra,
             char **out, char **err)
{
    const char *args[32];
    const char *const *base = hub_pull_args(h, data, src);
    int n = 0;
    for (; base[n] != NULL; n++)
        args[n] = base[n];
    for (int i = 0; extra != NULL && extra[i] != NULL && n < 31; i++)
        args[n++] = extra[i];
    args[n] = NULL;
    return h_run("mlx-agent", args, 60000, out, err);
}

bool file_sha256(const char *path, char out[65])
{
    size_t len = 0;
    char *data = test_read_file(path, &len);
    if (data == NULL)
        return false;
    unsigned char d[EVP_MAX_MD_SIZE];
    unsigned n = 0;
    EVP_Digest(data, len, d, &n, EVP_sha256(), NULL);
    free(data);
    for (unsigned i = 0; i < n; i++)
        snprintf(out + 2 * i, 3, "%02x", d[i]);
    return true;
}

int store_bad_blobs(const char *data, int *n_blobs)
{
    char *blobs = test_join(data, "blobs/sha256");
    DIR *d = opendir(blobs);
    int bad = 0, n = 0;
    struct dirent *e;
    while (d != NULL && (e = readdir(d)) != NULL) {
        if (e->d_name[0] == '.')
            continue;
        char *path = test_join(blobs, e->d_name);
        char hex[65];
        n++;
        if (!file_sha256(path, hex) || strcmp(hex, e->d_name) != 0) {
            fprintf(stderr, "corrupt blob %s\n", path);
            bad++;
        }
        free(path);
    }
    if (d != NULL)
        closedir(d);
    free(blobs);
    if (n_blobs != NULL)
        *n_blobs = n;
    return bad;
}

json_t *store_models(const char *data)
{
    const char *args[] = {"cache", "status", "--data", data, "--json", NULL};
    char *out = NULL, *err = NULL;
    int rc = h_run("mlx-agent", args, 30000, &out, &err);
    json_t *v = rc == 0 ? json_loads(out, 0, NULL) : NULL;
    if (v == NULL)
        fprintf(stderr, "cache status failed (%d): %s\n", rc, err);
    free(out);
    free(err);
    json_t *models = json_incref(json_object_get(v, "models"));
    json_decref(v);
    return models;
}

json_t *store_model(json_t *models, const char *name)
{
    size_t i;
    json_t *m;
    json_array_foreach(models, i, m)
    {
        const char *n = json_string_value(json_object_get(m, "name"));
        if (n != NULL && strcmp(n, name) == 0)
            return m;
    }
    return NULL;
}

int64_t file_size(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 ? (int64_t)st.st_size : -1;
}
