/* cluster.c — coordinator and agents on loopback for tests. */
#include "tests/integration/cluster.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sqlite3.h>

#include "tests/support/testutil.h"

cluster *cluster_create(const char *tag, int heartbeat_ms, int suspect_after,
                        int down_after)
{
    cluster *c = calloc(1, sizeof *c);
    if (c == NULL)
        abort();
    c->dir = test_tmpdir(tag);
    c->heartbeat_ms = heartbeat_ms;
    c->suspect_after = suspect_after;
    c->down_after = down_after;
    c->control_port = h_free_port();
    c->http_port = h_free_port();
    snprintf(c->control_url, sizeof c->control_url, "tcp://127.0.0.1:%d",
             c->control_port);
    snprintf(c->http_url, sizeof c->http_url, "http://127.0.0.1:%d", c->http_port);
    return c;
}

void cluster_destroy(cluster *c)
{
    if (c == NULL)
        return;
    for (int i = 0; i < c->n_agents; i++)
        h_stop(c->agents[i].proc);
    h_stop(c->coordinator);
    if (getenv("MLX_KEEP_LOGS") != NULL)
        fprintf(stderr, "logs kept in %s\n", c->dir);
    else
        test_tmpdir_remove(c->dir);
    free(c);
}

void cluster_start_coordinator(cluster *c)
{
    char data[600], http[64], hb[16], suspect[16], down[16];
    snprintf(data, sizeof data, "%s/coordinator", c->dir);
    snprintf(http, sizeof http, "127.0.0.1:%d", c->http_port);
    snprintf(hb, sizeof hb, "%d", c->heartbeat_ms);
    snprintf(suspect, sizeof suspect, "%d", c->suspect_after);
    snprintf(down, sizeof down, "%d", c->down_after);
    const char *args[] = {"serve",
                          "--data",
                          data,
                          "--control",
                          c->control_url,
                          "--http",
                          http,
                          "--heartbeat-ms",
                          hb,
                          "--suspect-after",
                          suspect,
                          "--down-after",
                          down,
                          NULL};
    c->coordinator = h_spawn("coordinator", c->dir, "mlx-coordinator", args);
}

void cluster_start_agent(cluster *c, int i)
{
    cluster_agent *a = &c->agents[i];
    char http[64], listen[64], hb[16];
    snprintf(http, sizeof http, "127.0.0.1:%d", a->http_port);
    snprintf(listen, sizeof listen, "tcp://127.0.0.1:%d", a->listen_port);
    snprintf(hb, sizeof hb, "%d", c->heartbeat_ms);
    const char *args[] = {
        "serve",         "--data",         a->data,  "--name", a->name,
        "--coordinator", c->control_url,   "--http", http,     "--listen",
        listen,          "--heartbeat-ms", hb,       NULL};
    a->proc = h_spawn(a->name, c->dir, "mlx-agent", args);
}

int cluster_add_agent(cluster *c, const char *name)
{
    int i = c->n_agents++;
    cluster_agent *a = &c->agents[i];
    snprintf(a->name, sizeof a->name, "%s", name);
    snprintf(a->data, sizeof a->data, "%s/%s", c->dir, name);
    a->http_port = h_free_port();
    a->listen_port = h_free_port();
    cluster_start_agent(c, i);
    return i;
}

json_t *cluster_nodes(cluster *c)
{
    char url[128];
    snprintf(url, sizeof url, "%s/api/v1/nodes", c->http_url);
    return h_get_json(url, NULL);
}

json_t *cluster_find_node(json_t *nodes, const char *id)
{
    size_t i;
    json_t *n;
    json_array_foreach(json_object_get(nodes, "nodes"), i, n)
    {
        const char *nid = json_string_value(json_object_get(n, "id"));
        if (nid != NULL && strcmp(nid, id) == 0)
            return n;
    }
    return NULL;
}

void cluster_agent_state(cluster *c, int i, char *out)
{
    out[0] = '\0';
    json_t *nodes = cluster_nodes(c);
    json_t *n = nodes != NULL ? cluster_find_node(nodes, c->agents[i].node_id) : NULL;
    const char *state = n != NULL ? json_string_value(json_object_get(n, "state")) : NULL;
    if (state != NULL)
        snprintf(out, 16, "%s", state);
    json_decref(nodes);
}

struct state_wait {
    cluster *c;
    int i;
    const char *state;
};

static bool has_state(void *arg)
{
    struct state_wait *w = arg;
    char now[16];
    cluster_agent_state(w->c, w->i, now);
    return strcmp(now, w->state) == 0;
}

bool cluster_wait_agent_state(cluster *c, int i, const char *state, int timeout_ms)
{
    struct state_wait w = {c, i, state};
    return h_wait_for(has_state, &w, timeout_ms);
}

struct id_wait {
    cluster_agent *a;
};

static bool read_id(void *arg)
{
    cluster_agent *a = arg;
    char path[600];
    snprintf(path, sizeof path, "%s/node-id", a->data);
    char *text = test_read_file(path, NULL);
    if (text == NULL || strlen(text) < 16) {
        free(text);
        return false;
    }
    memcpy(a->node_id, text, 16);
    a->node_id[16] = '\0';
    free(text);
    return true;
}

bool cluster_wait_node_id(cluster *c, int i, int timeout_ms)
{
    return h_wait_for(read_id, &c->agents[i], timeout_ms);
}

struct served {
    cluster *c;
    const char *needle;
    int agent;
};

static bool served(void *arg)
{
    struct served *s = arg;
    for (int i = 0; i < s->c->n_agents; i++) {
        if (s->c->agents[i].proc != NULL &&
            h_count_lines(s->c->agents[i].proc->log_path, s->needle) > 0) {
            s->agent = i;
            return true;
        }
    }
    return false;
}

int cluster_wait_served_by(cluster *c, const char *request_id, int timeout_ms)
{
    char needle[128];
    snprintf(needle, sizeof needle, "msg=\"generation\" id=%s ", request_id);
    struct served s = {c, needle, -1};
    h_wait_for(served, &s, timeout_ms);
    return s.agent;
}

bool cluster_store_add(cluster *c, const char *agent, const char *file, const char *model)
{
    char data[600];
    snprintf(data, sizeof data, "%s/%s", c->dir, agent);
    const char *args[] = {"cache", "add", file, "--name", model, "--data", data, NULL};
    char *err = NULL;
    int status = h_run("mlx-agent", args, 60000, NULL, &err);
    if (status != 0)
        fprintf(stderr, "mlx-agent cache add %s for %s: exit %d: %s\n", model, agent,
                status, err ? err : "");
    free(err);
    return status == 0;
}

bool cluster_wait_agents_up(cluster *c, int timeout_ms)
{
    for (int i = 0; i < c->n_agents; i++) {
        if (!cluster_wait_node_id(c, i, timeout_ms) ||
            !cluster_wait_agent_state(c, i, "up", timeout_ms)) {
            fprintf(stderr, "%s never came up\n", c->agents[i].name);
            return false;
        }
    }
    return true;
}

struct model_wait {
    cluster *c;
    const char *model, *flag;
    int n;
};

static bool model_on(void *arg)
{
    struct model_wait *w = arg;
    char url[128];
    snprintf(url, sizeof url, "%s/api/v1/models", w->c->http_url);
    json_t *doc = h_get_json(url, NULL);
    size_t i, k;
    json_t *m, *n;
    int count = 0;
    json_array_foreach(json_object_get(doc, "models"), i, m)
    {
        const char *name = json_string_value(json_object_get(m, "name"));
        if (name == NULL || strcmp(name, w->model) != 0)
            continue;
        json_array_foreach(json_object_get(m, "nodes"), k, n)
        {
            const char *st = json_string_value(json_object_get(n, "state"));
            count += st != NULL && strcmp(st, "up") == 0 &&
                     json_is_true(json_object_get(n, w->flag));
        }
    }
    json_decref(doc);
    return count == w->n;
}

bool cluster_wait_model(cluster *c, const char *model, const char *flag, int n,
                        int timeout_ms)
{
    struct model_wait w = {c, model, flag, n};
    return h_wait_for(model_on, &w, timeout_ms);
}

struct log_rows {
    const char *path, *sql, *arg1, *arg2;
    long long want, got;
};

static bool log_rows_are(void *arg)
{
    struct log_rows *q = arg;
    sqlite3 *db = NULL;
    sqlite3_stmt *st = NULL;
    q->got = -1;
    if (sqlite3_open_v2(q->path, &db, SQLITE_OPEN_READONLY, NULL) == SQLITE_OK) {
        sqlite3_busy_timeout(db, 2000);
        if (sqlite3_prepare_v2(db, q->sql, -1, &st, NULL) == SQLITE_OK) {
            sqlite3_bind_text(st, 1, q->arg1, -1, SQLITE_STATIC);
            sqlite3_bind_text(st, 2, q->arg2, -1, SQLITE_STATIC);
            if (sqlite3_step(st) == SQLITE_ROW)
                q->got = sqlite3_column_int64(st, 0);
        }
    }
    sqlite3_finalize(st);
    sqlite3_close(db);
    return q->got == q->want;
}

bool cluster_wait_log_rows(cluster *c, const char *sql, const char *arg1,
                           const char *arg2, long long want, int timeout_ms,
                           long long *got)
{
    char path[600];
    snprintf(path, sizeof path, "%s/coordinator/auth.db", c->dir);
    struct log_rows q = {path, sql, arg1, arg2, want, -1};
    bool ok = h_wait_for(log_rows_are, &q, timeout_ms);
    if (got != NULL)
        *got = q.got;
    return ok;
}

/* The /metrics page of the server at port (caller frees), or NULL. */
static char *metrics_page(int port)
{
    char url[128];
    snprintf(url, sizeof url, "http://127.0.0.1:%d/metrics", port);
    long status = 0;
    char *body = h_get_text(url, &status);
    if (status != 200) {
        free(body);
        return NULL;
    }
    return body;
}

bool cluster_count_generations(cluster *c, int i, const char *model, const char *status,
                               double *coordinator, double *agent)
{
    char node[64], st[32], m[160];
    snprintf(node, sizeof node, "node_id=\"%s\"", c->agents[i].node_id);
    snprintf(st, sizeof st, "status=\"%s\"", status);
    snprintf(m, sizeof m, "model=\"%s\"", model != NULL ? model : "");
    const char *of_node[] = {node, st, model != NULL ? m : NULL, NULL};
    const char *of_agent[] = {"endpoint=\"dataplane\"", st, model != NULL ? m : NULL,
                              NULL};
    char *page = metrics_page(c->http_port);
    char *agent_page = metrics_page(c->agents[i].http_port);
    bool ok = page != NULL && agent_page != NULL;
    if (ok) {
        *coordinator = test_prom_sum(page, "mlx_coordinator_requests_total", of_node);
        *agent = test_prom_sum(agent_page, "mlx_requests_total", of_agent);
    }
    free(page);
    free(agent_page);
    return ok;
}

bool cluster_start_holding(cluster *c, int n, const char *file, const char *model,
                           int wait_ms)
{
    for (int i = 0; i < n; i++) {
        char name[16];
        snprintf(name, sizeof name, "agent%d", i);
        if (!cluster_store_add(c, name, file, model))
            return false;
        cluster_add_agent(c, name);
    }
    if (!cluster_wait_agents_up(c, wait_ms))
        return false;
    if (!cluster_wait_model(c, model, "stored", n, wait_ms)) {
        fprintf(stderr, "the coordinator never listed %s on all %d agents\n", model, n);
        return false;
    }
    return true;
}
