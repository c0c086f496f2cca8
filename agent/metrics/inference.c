/*
 * inference.c — counters of the requests the agent answered and the tokens
 * its models generated, written as Prometheus text for /metrics.
 *
 * Series live in small fixed tables, found by a linear search: a node
 * serves a handful of models through a handful of endpoints, and a scrape
 * or a request touches each table once.
 */
#include <stdio.h>
#include <string.h>

#include "agent/metrics/metrics.h"
#include "common/alloc.h"
#include "common/prom.h"

#define MAX_REQUEST_SERIES 256
#define MAX_MODEL_SERIES 64
#define LABEL_MAX 128 /* longer model names are cut (labels stay readable) */

typedef struct request_series {
    char endpoint[40];
    char model[LABEL_MAX];
    int status;
    uint64_t count;
} request_series;

/* A model's counters (token counts are exact in a double up to 2^53). */
enum { PROMPT_TOKENS, PROMPT_SECONDS, GENERATED_TOKENS, GENERATION_SECONDS, N_COUNTERS };

static const struct {
    const char *name, *help;
} counters[N_COUNTERS] = {
    [PROMPT_TOKENS] = {"mlx_prompt_tokens_total", "Prompt tokens processed."},
    [PROMPT_SECONDS] = {"mlx_prompt_seconds_total", "Time spent processing prompts."},
    [GENERATED_TOKENS] = {"mlx_tokens_predicted_total", "Tokens generated."},
    [GENERATION_SECONDS] = {"mlx_tokens_predicted_seconds_total",
                            "Time spent generating tokens."},
};

typedef struct model_series {
    char model[LABEL_MAX];
    double value[N_COUNTERS];
} model_series;

struct metrics_inference {
    pthread_mutex_t mtx;
    request_series requests[MAX_REQUEST_SERIES];
    size_t n_requests;
    model_series models[MAX_MODEL_SERIES];
    size_t n_models;
    mlx_prom_histogram ttft, itl;
};

/* Seconds: from a fast answer of a small model to a long queue. */
static const double ttft_bounds[] = {0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60};
static const double itl_bounds[] = {0.005, 0.01, 0.02, 0.04, 0.08, 0.16, 0.32, 0.64, 1.28, 2.56};

int metrics_inference_new(metrics_inference **out, mlx_err *err)
{
    metrics_inference *mi = mlx_calloc(1, sizeof *mi);
    if (mi == NULL)
        return mlx_err_set(err, MLX_ENOMEM, "out of memory");
    pthread_mutex_init(&mi->mtx, NULL);
    mlx_prom_histogram_init(&mi->ttft, ttft_bounds, sizeof ttft_bounds / sizeof *ttft_bounds);
    mlx_prom_histogram_init(&mi->itl, itl_bounds, sizeof itl_bounds / sizeof *itl_bounds);
    *out = mi;
    return 0;
}

void metrics_inference_free(metrics_inference *mi)
{
    if (mi == NULL)
        return;
    mlx_prom_histogram_fini(&mi->ttft);
    mlx_prom_histogram_fini(&mi->itl);
    pthread_mutex_destroy(&mi->mtx);
    mlx_free(mi);
}

/* Places kept for series of model "other", for when the rest are taken. */
#define OTHER_RESERVE 16

static model_series *find_model(metrics_inference *mi, const char *label)
{
    for (size_t i = 0; i < mi->n_models; i++)
        if (strcmp(mi->models[i].model, label) == 0)
            return &mi->models[i];
    return NULL;
}

/* The series of model (mi->mtx held): found, added, or "other" when the
 * table is full. */
static model_series *model_of(metrics_inference *mi, const char *model)
{
    char label[LABEL_MAX];
    snprintf(label, sizeof label, "%s", model);
    model_series *m = find_model(mi, label);
    if (m == NULL && mi->n_models == MAX_MODEL_SERIES - 1)
        m = find_model(mi, "other");
    if (m == NULL) {
        m = &mi->models[mi->n_models++];
        snprintf(m->model, sizeof m->model, "%s",
                 mi->n_models == MAX_MODEL_SERIES ? "other" : label);
    }
    return m;
}

static request_series *find_request(metrics_inference *mi, const char *endpoint,
                                    const char *label, int status)
{
    for (size_t i = 0; i < mi->n_requests; i++) {
        request_series *r = &mi->requests[i];
        if (r->status == status && strcmp(r->endpoint, endpoint) == 0 &&
            strcmp(r->model, label) == 0)
            return r;
    }
    return NULL;
}

static request_series *add_request(metrics_inference *mi, const char *endpoint,
                                   const char *label, int status)
{
    if (mi->n_requests == MAX_REQUEST_SERIES)
        return NULL;
    request_series *r = &mi->requests[mi->n_requests++];
    snprintf(r->endpoint, sizeof r->endpoint, "%s", endpoint);
    snprintf(r->model, sizeof r->model, "%s", label);
    r->status = status;
    return r;
}

void metrics_inference_request(metrics_inference *mi, const char *endpoint,
                               const char *model, int status)
{
    char label[LABEL_MAX];
    snprintf(label, sizeof label, "%s", model);
    pthread_mutex_lock(&mi->mtx);
    request_series *r = find_request(mi, endpoint, label, status);
    if (r == NULL && mi->n_requests < MAX_REQUEST_SERIES - OTHER_RESERVE)
        r = add_request(mi, endpoint, label, status);
    if (r == NULL && (r = find_request(mi, endpoint, "other", status)) == NULL)
        r = add_request(mi, endpoint, "other", status);
    if (r != NULL)
        r->count++;
    pthread_mutex_unlock(&mi->mtx);
}

void metrics_inference_generation(metrics_inference *mi, const char *model,
                                  uint32_t prompt_tokens, double prompt_seconds,
                                  uint32_t generated_tokens, double generation_seconds)
{
    pthread_mutex_lock(&mi->mtx);
    model_series *m = model_of(mi, model);
    m->value[PROMPT_TOKENS] += prompt_tokens;
    m->value[PROMPT_SECONDS] += prompt_seconds;
    m->value[GENERATED_TOKENS] += generated_tokens;
    m->value[GENERATION_SECONDS] += generation_seconds;
    pthread_mutex_unlock(&mi->mtx);
}

void metrics_inference_observe_token(void *arg, const char *model, bool first,
                                     double seconds)
{
    metrics_inference *mi = arg;
    mlx_prom_histogram_observe(first ? &mi->ttft : &mi->itl, seconds);
}

void metrics_inference_write(metrics_inference *mi, mlx_buf *b, const char *node)
{
    pthread_mutex_lock(&mi->mtx);
    mlx_prom_family(b, "mlx_requests_total", "counter",
                    "Requests answered, by endpoint, model and HTTP status (499: the "
                    "client went away).");
    for (size_t i = 0; i < mi->n_requests; i++) {
        const request_series *r = &mi->requests[i];
        char status[16];
        snprintf(status, sizeof status, "%d", r->status);
        const char *labels[] = {"node", node, "endpoint", r->endpoint, "model", r->model,
                                "status", status};
        mlx_prom_sample(b, "mlx_requests_total", labels, 4, (double)r->count);
    }
    for (int c = 0; c < N_COUNTERS; c++) {
        mlx_prom_family(b, counters[c].name, "counter", counters[c].help);
        for (size_t i = 0; i < mi->n_models; i++) {
            const char *labels[] = {"node", node, "model", mi->models[i].model};
            mlx_prom_sample(b, counters[c].name, labels, 2, mi->models[i].value[c]);
        }
    }
    pthread_mutex_unlock(&mi->mtx);
    const char *labels[] = {"node", node};
    mlx_prom_family(b, "mlx_time_to_first_token_seconds", "histogram",
                    "From a request's arrival at its model to its first generated token.");
    mlx_prom_histogram_write(b, "mlx_time_to_first_token_seconds", labels, 1, &mi->ttft);
    mlx_prom_family(b, "mlx_inter_token_latency_seconds", "histogram",
                    "Between two generated tokens of one request.");
    mlx_prom_histogram_write(b, "mlx_inter_token_latency_seconds", labels, 1, &mi->itl);
}
