/* promserver.c — a real Prometheus for the metrics tests (promserver.h). */
#include "tests/integration/promserver.h"

#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>
#include <curl/curl.h>
#include <jansson.h>

#include "common/parse.h"
#include "tests/integration/harness.h"
#include "tests/support/testutil.h"

struct prom_server {
    int port;
    h_proc *proc;
    char *dir;
    size_t n_targets;
};

/* The prometheus binary: on PATH, or where Debian's package puts it. */
static const char *find_prometheus(void)
{
    const char *found = h_which("prometheus");
    if (found != NULL)
        return found;
    return access("/usr/bin/prometheus", X_OK) == 0 ? "/usr/bin/prometheus" : NULL;
}

static char *config_text(const prom_job *jobs, size_t n_jobs)
{
    char *yml = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&yml, &len);
    assert_non_null(f);
    fprintf(f, "global:\n"
               "  scrape_interval: 1s\n"
               "  scrape_timeout: 1s\n"
               "scrape_configs:\n");
    for (size_t j = 0; j < n_jobs; j++) {
        fprintf(f,
                "  - job_name: %s\n"
                "    metrics_path: /metrics\n"
                "    static_configs:\n"
                "      - targets: [",
                jobs[j].name);
        for (size_t i = 0; i < jobs[j].n_ports; i++)
            fprintf(f, "%s'127.0.0.1:%d'", i > 0 ? ", " : "", jobs[j].ports[i]);
        fprintf(f, "]\n");
    }
    fclose(f);
    return yml;
}

/* What the targets looked like at the last look, for the failure message. */
struct targets {
    prom_server *p;
    char url[128];
    char last[1024];
};

/* Every target is up and its last scrape had no error. */
static bool targets_up(void *arg)
{
    struct targets *t = arg;
    json_t *v = h_get_json(t->url, NULL);
    json_t *active = json_object_get(json_object_get(v, "data"), "activeTargets");
    size_t up = 0, i;
    json_t *target;
    t->last[0] = '\0';
    json_array_foreach(active, i, target)
    {
        const char *health = json_string_value(json_object_get(target, "health"));
        const char *err = json_string_value(json_object_get(target, "lastError"));
        const char *url = json_string_value(json_object_get(target, "scrapeUrl"));
        if (health != NULL && strcmp(health, "up") == 0 && err != NULL && err[0] == '\0')
            up++;
        else
            snprintf(t->last, sizeof t->last, "%s is \"%s\", last error \"%s\"",
                     url ? url : "?", health ? health : "", err ? err : "");
    }
    bool all = json_array_size(active) == t->p->n_targets && up == t->p->n_targets;
    json_decref(v);
    return all;
}

prom_server *prom_start(const char *tag, const prom_job *jobs, size_t n_jobs)
{
    const char *found = find_prometheus();
    if (found == NULL)
        fail_msg(
            "prometheus is neither on PATH nor in /usr/bin: run deploy/install-deps.sh, "
            "which installs Debian's 'prometheus' package");
    prom_server *p = calloc(1, sizeof *p);
    assert_non_null(p);
    for (size_t j = 0; j < n_jobs; j++)
        p->n_targets += jobs[j].n_ports;
    char bin[1024];
    snprintf(bin, sizeof bin, "%s", found);
    p->dir = test_tmpdir(tag);
    char *config = test_join(p->dir, "prometheus.yml");
    char *yml = config_text(jobs, n_jobs);
    test_write_file(config, yml);
    free(yml);
    p->port = h_free_port();
    char listen[64], config_flag[1200], storage_flag[1200];
    snprintf(listen, sizeof listen, "--web.listen-address=127.0.0.1:%d", p->port);
    snprintf(config_flag, sizeof config_flag, "--config.file=%s", config);
    snprintf(storage_flag, sizeof storage_flag, "--storage.tsdb.path=%s/tsdb", p->dir);
    const char *args[] = {config_flag, storage_flag, listen, NULL};
    p->proc = h_spawn("prometheus", p->dir, bin, args);
    free(config);

    struct targets t = {.p = p};
    snprintf(t.url, sizeof t.url, "http://127.0.0.1:%d/api/v1/targets", p->port);
    if (!h_wait_for(targets_up, &t, PROM_START_MS))
        fail_msg("Prometheus' targets are not all up after %d ms: %s (its log: "
                 "%s/prometheus.log)",
                 PROM_START_MS, t.last[0] ? t.last : "none listed yet", p->dir);
    return p;
}

int prom_stop(prom_server *p)
{
    if (p == NULL)
        return 0;
    int status = p->proc != NULL ? h_stop(p->proc) : 0;
    test_tmpdir_remove(p->dir);
    free(p);
    return status;
}

/* ---- queries --------------------------------------------------------------- */

struct query {
    char url[1200];
    prom_want want;
    double expected;
    /* What came back last, for the failure message. */
    bool got;
    size_t series;
    double value;
};

/* The query's instant vector holds exactly one sample; it is read into
 * q->value (Prometheus sends values as strings: "3", "NaN", "+Inf"). */
static bool read_query(struct query *q)
{
    json_t *v = h_get_json(q->url, NULL);
    json_t *data = json_object_get(v, "data");
    json_t *result = json_object_get(data, "result");
    const char *type = json_string_value(json_object_get(data, "resultType"));
    q->series = json_array_size(result);
    q->got = false;
    if (type != NULL && strcmp(type, "vector") == 0 && q->series == 1) {
        json_t *pair = json_object_get(json_array_get(result, 0), "value");
        const char *text = json_string_value(json_array_get(pair, 1));
        /* "NaN" and "+Inf" are no numbers here: a quantile of an empty or
         * broken histogram must not pass as finite. */
        q->got = text != NULL && mlx_parse_double(text, &q->value, NULL) == 0;
    }
    json_decref(v);
    return q->got;
}

static bool query_meets(void *arg)
{
    struct query *q = arg;
    if (!read_query(q))
        return false;
    switch (q->want) {
    case PROM_EQUAL:
        return q->value == q->expected;
    case PROM_AT_LEAST:
        return q->value >= q->expected;
    case PROM_ABOVE:
        return q->value > q->expected;
    case PROM_FINITE:
        return isfinite(q->value);
    }
    return false;
}

void prom_expect(prom_server *p, const char *promql, prom_want want, double expected)
{
    struct query q = {.want = want, .expected = expected};
    CURL *c = curl_easy_init();
    char *escaped = curl_easy_escape(c, promql, 0);
    snprintf(q.url, sizeof q.url, "http://127.0.0.1:%d/api/v1/query?query=%s", p->port,
             escaped);
    curl_free(escaped);
    curl_easy_cleanup(c);
    if (h_wait_for(query_meets, &q, PROM_VALUE_MS))
        return;
    static const char *const wants[] = {"equal to", "at least", "above", "finite, then"};
    if (!q.got)
        fail_msg("Prometheus has no single sample for %s (%zu series)", promql, q.series);
    fail_msg("%s is %.17g; expected %s %.17g", promql, q.value, wants[want], expected);
}
