/* stats.c — the coordinator's ledger of generations: the list in flight,
 * the counts by model, node and status, and two latency histograms. */
#include "coordinator/stats/stats.h"

#include <pthread.h>
#include <stdio.h>
#include <string.h>

#include "common/alloc.h"
#include "common/clock.h"
#include "common/prom.h"

#define OTHER_MODEL "other" /* as the agent names its overflow */

/* Requests counted under one (model, node, status). */
struct series {
    char model[MLX_MAX_MODEL_NAME + 1];
    char node_id[MLX_NODE_ID_LEN + 1];
    int status;
    uint64_t count;
};

struct fleet_stats {
    pthread_mutex_t mtx; /* guards everything but the histograms */
    stats_flight *head, *tail;
    struct series *series;
    size_t n_series, cap_series;
    uint64_t retries, failovers;
    mlx_prom_histogram routing, ttft;
};

/* Seconds: routing is the choice, the dial and the node's acceptance, so
 * it starts well below a millisecond; the first token adds the prompt. */
static const double routing_bounds[] = {0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05,
                                        0.1,    0.25,  0.5,    1,     2.5,  5};
static const double ttft_bounds[] = {0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5,
                                     1,     2.5,  5,     10,   30,  60};

int stats_create(fleet_stats **out, mlx_err *err)
{
    fleet_stats *s = mlx_calloc(1, sizeof *s);
    if (s == NULL)
        return mlx_err_set(err, MLX_ENOMEM, "out of memory for the request ledger");
    pthread_mutex_init(&s->mtx, NULL);
    mlx_prom_histogram_init(&s->routing, routing_bounds,
                            sizeof routing_bounds / sizeof routing_bounds[0]);
    mlx_prom_histogram_init(&s->ttft, ttft_bounds,
                            sizeof ttft_bounds / sizeof ttft_bounds[0]);
    *out = s;
    return 0;
}

void stats_destroy(fleet_stats *s)
{
    if (s == NULL)
        return;
    mlx_prom_histogram_fini(&s->routing);
    mlx_prom_histogram_fini(&s->ttft);
    pthread_mutex_destroy(&s->mtx);
    mlx_free(s->series);
    mlx_free(s);
}

/* ---- counts ---------------------------------------------------------------- */

static struct series *find_series(fleet_stats *s, const char *model, const char *node_id,
                                  int status)
{
    for (size_t i = 0; i < s->n_series; i++) {
        struct series *v = &s->series[i];
        if (v->status == status && strcmp(v->model, model) == 0 &&
            strcmp(v->node_id, node_id) == 0)
            return v;
    }
    return NULL;
}

/* Adds one request to its series, under OTHER_MODEL once the cap is
 * reached. Called with s->mtx held. */
static void count_locked(fleet_stats *s, const char *model, const char *node_id,
                         int status)
{
    struct series *v = find_series(s, model, node_id, status);
    if (v == NULL && s->n_series >= STATS_MAX_SERIES) {
        model = OTHER_MODEL;
        v = find_series(s, model, node_id, status);
    }
    if (v == NULL) {
        if (s->n_series == s->cap_series) {
            size_t cap = s->cap_series ? 2 * s->cap_series : 32;
            struct series *grown = mlx_realloc(s->series, cap * sizeof *grown);
            if (grown == NULL)
                return; /* a count lost rather than a request failed */
            s->series = grown;
            s->cap_series = cap;
        }
        v = &s->series[s->n_series++];
        snprintf(v->model, sizeof v->model, "%s", model);
        snprintf(v->node_id, sizeof v->node_id, "%s", node_id);
        v->status = status;
        v->count = 0;
    }
    v->count++;
}

void stats_count(fleet_stats *s, const char *model, int status)
{
    pthread_mutex_lock(&s->mtx);
    count_locked(s, model != NULL ? model : "", "", status);
    pthread_mutex_unlock(&s->mtx);
}

/* ---- flights --------------------------------------------------------------- */

void stats_flight_begin(fleet_stats *s, stats_flight *f, const char *id,
                        const char *endpoint, const char *model, const char *key_name,
                        bool stream)
{
    memset(f, 0, sizeof *f);
    snprintf(f->id, sizeof f->id, "%s", id);
    snprintf(f->endpoint, sizeof f->endpoint, "%s", endpoint);
    snprintf(f->model, sizeof f->model, "%s", model != NULL ? model : "");
    snprintf(f->key_name, sizeof f->key_name, "%s", key_name != NULL ? key_name : "");
    f->stream = stream;
    f->started_unix_ms = mlx_time_wall_ms();
    f->started_mono_ms = mlx_time_mono_ms();
    pthread_mutex_lock(&s->mtx);
    f->prev = s->tail;
    if (s->tail != NULL)
        s->tail->next = f;
    else
        s->head = f;
    s->tail = f;
    pthread_mutex_unlock(&s->mtx);
}

void stats_flight_node(fleet_stats *s, stats_flight *f, const char *node_id)
{
    int64_t now = mlx_time_mono_ms();
    pthread_mutex_lock(&s->mtx);
    bool first = f->attempts == 0;
    f->attempts++;
    snprintf(f->node_id, sizeof f->node_id, "%s", node_id);
    pthread_mutex_unlock(&s->mtx);
    if (first)
        mlx_prom_histogram_observe(&s->routing, (double)(now - f->started_mono_ms) / 1e3);
}

void stats_flight_text(fleet_stats *s, stats_flight *f, size_t n)
{
    int64_t now = mlx_time_mono_ms();
    pthread_mutex_lock(&s->mtx);
    bool first = f->first_text_mono_ms == 0 && n > 0;
    if (first)
        f->first_text_mono_ms = now;
    f->text_bytes += n;
    pthread_mutex_unlock(&s->mtx);
    if (first)
        mlx_prom_histogram_observe(&s->ttft, (double)(now - f->started_mono_ms) / 1e3);
}

void stats_flight_end(fleet_stats *s, stats_flight *f, int status, const char *node_id,
                      int tried)
{
    pthread_mutex_lock(&s->mtx);
    if (f->prev != NULL)
        f->prev->next = f->next;
    else
        s->head = f->next;
    if (f->next != NULL)
        f->next->prev = f->prev;
    else
        s->tail = f->prev;
    f->prev = f->next = NULL;
    if (tried > 1) {
        s->retries += (uint64_t)(tried - 1);
        if (status == 200)
            s->failovers++;
    }
    count_locked(s, f->model, node_id != NULL ? node_id : "", status);
    pthread_mutex_unlock(&s->mtx);
}

/* ---- views ----------------------------------------------------------------- */

static json_t *flight_json(const stats_flight *f, int64_t now_mono)
{
    char started[32];
    mlx_time_format_rfc3339(f->started_unix_ms, started, sizeof started);
    json_t *ttft = f->first_text_mono_ms > 0
                       ? json_integer(f->first_text_mono_ms - f->started_mono_ms)
                       : json_null();
    return json_pack("{s:s, s:s, s:s, s:s, s:b, s:s, s:i, s:s, s:s, s:I, s:I, s:o, s:I}",
                     "id", f->id, "endpoint", f->endpoint, "model", f->model, "key",
                     f->key_name, "stream", f->stream, "node_id", f->node_id, "attempts",
                     f->attempts, "state", f->node_id[0] ? "generating" : "routing",
                     "started_at", started, "started_at_unix_ms",
                     (json_int_t)f->started_unix_ms, "elapsed_ms",
                     (json_int_t)(now_mono - f->started_mono_ms), "ttft_ms", ttft,
                     "text_bytes", (json_int_t)f->text_bytes);
}

json_t *stats_requests_json(fleet_stats *s)
{
    json_t *list = json_array();
    int64_t now = mlx_time_mono_ms();
    pthread_mutex_lock(&s->mtx);
    for (const stats_flight *f = s->head; f != NULL && list != NULL; f = f->next) {
        json_t *v = flight_json(f, now);
        if (v == NULL || json_array_append_new(list, v) != 0) {
            json_decref(list);
            list = NULL;
        }
    }
    pthread_mutex_unlock(&s->mtx);
    return list != NULL ? json_pack("{s:o}", "requests", list) : NULL;
}

void stats_write_metrics(fleet_stats *s, mlx_buf *b, uint32_t active,
                         stats_node_name_fn name_of, void *arg)
{
    const char *name = "mlx_coordinator_requests_total";
    mlx_prom_family(b, name, "counter",
                    "Generation requests answered by the coordinator, by model, the node "
                    "that ran them (empty when none did) and HTTP status.");
    pthread_mutex_lock(&s->mtx);
    for (size_t i = 0; i < s->n_series; i++) {
        const struct series *v = &s->series[i];
        const char *node = v->node_id[0] ? name_of(arg, v->node_id) : "";
        char status[8];
        snprintf(status, sizeof status, "%d", v->status);
        const char *labels[] = {"model",   v->model,   "node",   node ? node : v->node_id,
                                "node_id", v->node_id, "status", status};
        mlx_prom_sample(b, name, labels, 4, (double)v->count);
    }
    uint64_t retries = s->retries, failovers = s->failovers;
    pthread_mutex_unlock(&s->mtx);

    mlx_prom_family(b, "mlx_coordinator_retries_total", "counter",
                    "Generations sent to another node after a node failed before any "
                    "text.");
    mlx_prom_sample(b, "mlx_coordinator_retries_total", NULL, 0, (double)retries);
    mlx_prom_family(b, "mlx_coordinator_failovers_total", "counter",
                    "Generations that succeeded on another node than the first one "
                    "that took them.");
    mlx_prom_sample(b, "mlx_coordinator_failovers_total", NULL, 0, (double)failovers);
    mlx_prom_family(b, "mlx_coordinator_requests_active", "gauge",
                    "Generations the coordinator is relaying now (--max-requests is the "
                    "limit).");
    mlx_prom_sample(b, "mlx_coordinator_requests_active", NULL, 0, (double)active);
    mlx_prom_family(b, "mlx_coordinator_routing_seconds", "histogram",
                    "From a generation's arrival to its sending to a node: the "
                    "checks and the choice of node.");
    mlx_prom_histogram_write(b, "mlx_coordinator_routing_seconds", NULL, 0, &s->routing);
    mlx_prom_family(b, "mlx_coordinator_time_to_first_token_seconds", "histogram",
                    "From a generation's arrival to its first text reaching the "
                    "client (for an answer sent whole, the answer).");
    mlx_prom_histogram_write(b, "mlx_coordinator_time_to_first_token_seconds", NULL, 0,
                             &s->ttft);
}
