/*
 * bench_route.c — what routing through the coordinator costs, against
 * nginx as a plain reverse proxy in front of the same agent.
 *
 * One agent serves a tiny synthetic model (generation takes a few tens of
 * microseconds, so what the path adds shows). The same small greedy
 * /v1/completions request goes to three targets: the agent itself
 * (direct), the coordinator the agent registered with, and nginx
 * proxying to the agent's HTTP port (upstream keep-alive, no buffering, so
 * streams flow as they come). Each request is sent whole and streamed:
 *
 *   latency   1 client on a kept-alive connection, after a warm-up,
 *             requests one after another; p50 and p99 of the wall time to
 *             the last byte (and, streamed, the p50 to the first text).
 *             The targets take turns in rounds, so a neighbour's burst of
 *             CPU on this shared machine falls on all three alike.
 *   load      CLIENTS clients sending back to back, again in rounds:
 *             requests/s, and the CPU each process spent per request.
 *
 * Then the ratios coordinator/direct and coordinator/nginx, and what each
 * proxy adds to the direct p50, with a verdict on the goal: the
 * coordinator adds no more than nginx does. Last, the floor under each
 * proxy (transport_floor.h): one plain TCP round trip, which is about what
 * nginx adds, and one NNG REQ/REP exchange, the least the coordinator's
 * data plane adds.
 *
 * Usage: bench_route. Exits 77 when nginx is not installed
 * (deploy/install-deps.sh installs it). Prints results and the machine; it
 * never asserts a time.
 */
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <curl/curl.h>
#include <jansson.h>

#include "tests/bench/benchutil.h"
#include "tests/bench/transport_floor.h"
#include "tests/integration/cluster.h"
#include "tests/integration/harness.h"
#include "tests/support/testutil.h"

#define MODEL_NAME   "tiny"
#define PROMPT       "Once upon a time"
#define MAX_TOKENS   4
#define PARALLEL     "8"
#define QUEUE        "128"
#define CLIENTS      8
#define WARM_UP      50 /* requests per target before the latency is timed */
#define ROUNDS       10 /* latency rounds; each target's turn is PER_ROUND */
#define PER_ROUND    100
#define LOAD_ROUNDS  3 /* load rounds; each target's turn is LOAD_MS */
#define LOAD_MS      1000
#define HEARTBEAT_MS 1000
#define WAIT_MS      30000 /* for a process to answer, or the model to be routable */
#define FLOOR_TRIPS  2000  /* round trips timed per transport */

enum { DIRECT, COORDINATOR, NGINX, N_TARGETS };

struct target {
    const char *name;
    char base[64]; /* "http://127.0.0.1:PORT" */
    char url[96];  /* base + "/v1/completions" */
    pid_t proxy;   /* the process between client and agent; 0: none */
};

/* What one target did in one mode. */
struct result {
    double p50, p99, first_p50; /* latency, ms */
    double rps;                 /* under load */
    double agent_us, proxy_us;  /* CPU per request under load; -1: unknown or none */
    int64_t errors;
    char first_error[BENCH_ERROR_MAX];
};

/* Everything the benchmark started; bench_stop undoes what is set. */
struct bench {
    char *dir; /* owned: the model and nginx's files */
    bench_agent agent;
    cluster *cl; /* the coordinator */
    h_proc *nginx;
    struct target t[N_TARGETS];
};

/* ---- the processes ---------------------------------------------------------- */

static bool answers_200(void *url)
{
    long status = 0;
    json_decref(h_get_json(url, &status));
    return status == 200;
}

/* Whether the coordinator's /v1/models lists the model: it can route it. */
static bool routable(void *url)
{
    json_t *doc = h_get_json(url, NULL);
    size_t i;
    json_t *m;
    bool found = false;
    json_array_foreach(json_object_get(doc, "data"), i, m)
    {
        const char *id = json_string_value(json_object_get(m, "id"));
        found |= id != NULL && strcmp(id, MODEL_NAME) == 0;
    }
    json_decref(doc);
    return found;
}

static int wait_for(bool (*cond)(void *), const char *base, const char *path,
                    const h_proc *p)
{
    char url[128];
    snprintf(url, sizeof url, "%s%s", base, path);
    if (h_wait_for(cond, url, WAIT_MS))
        return 0;
    char *log = test_read_file(p->log_path, NULL);
    fprintf(stderr, "%s did not answer %s as expected within %d ms; its log:\n%s\n",
            p->name, url, WAIT_MS, log != NULL ? log : "(none)");
    free(log);
    return -1;
}

/* The smallest model that still runs every step of a generation. */
static int synth_model(const char *path)
{
    const char *args[] = {"model", "synth", "--out",   path,  "--layers",   "1",
                          "--dim", "32",    "--heads", "2",   "--kv-heads", "1",
                          "--ff",  "64",    "--vocab", "259", NULL};
    char *err = NULL;
    int status = h_run("mlx-agent", args, WAIT_MS, NULL, &err);
    if (status != 0)
        fprintf(stderr, "mlx-agent model synth failed (exit %d): %s\n", status, err);
    free(err);
    return status == 0 ? 0 : -1;
}

/* A reverse proxy as one would configure it in front of an HTTP API that
 * streams: HTTP/1.1 with kept-alive upstream connections, no buffering.
 * One process (master_process off) so it runs as whoever runs the
 * benchmark, root or not, with no user to switch to, and dies with it; one
 * event loop proxies far more than the agent serves here. Every file it
 * writes is in dir. keepalive_requests is raised from 1000 so that nginx,
 * like the agent and the coordinator, keeps a client's connection for the
 * whole run. */
static void nginx_config(const char *dir, int port, const char *upstream)
{
    char text[2048], *path = test_join(dir, "nginx.conf");
    snprintf(text, sizeof text,
             "daemon off;\nmaster_process off;\npid %s/nginx.pid;\n"
             "error_log %s/nginx-error.log warn;\n"
             "events { worker_connections 512; }\n"
             "http {\n"
             "  access_log %s/nginx-access.log;\n"
             "  client_body_temp_path %s/client_body;\n  proxy_temp_path %s/proxy;\n"
             "  fastcgi_temp_path %s/fastcgi;\n  uwsgi_temp_path %s/uwsgi;\n"
             "  scgi_temp_path %s/scgi;\n"
             "  upstream agent { server %s; keepalive 32; keepalive_requests 1000000; }\n"
             "  server {\n"
             "    listen 127.0.0.1:%d;\n    keepalive_requests 1000000;\n"
             "    location / {\n"
             "      proxy_pass http://agent;\n      proxy_http_version 1.1;\n"
             "      proxy_set_header Connection \"\";\n      proxy_buffering off;\n"
             "    }\n  }\n}\n",
             dir, dir, dir, dir, dir, dir, dir, dir, upstream, port);
    test_write_file(path, text);
    free(path);
}

static int nginx_start(struct bench *b, const char *nginx)
{
    int port = h_free_port();
    nginx_config(b->dir, port, b->agent.http);
    char *conf = test_join(b->dir, "nginx.conf");
    char *errors = test_join(b->dir, "nginx-error.log");
    char prefix[600];
    snprintf(prefix, sizeof prefix, "%s/", b->dir);
    const char *args[] = {"-p", prefix, "-c", conf, "-e", errors, NULL};
    b->nginx = h_spawn("nginx", b->dir, nginx, args);
    free(conf);
    free(errors);
    struct target *t = &b->t[NGINX];
    snprintf(t->base, sizeof t->base, "http://127.0.0.1:%d", port);
    t->proxy = b->nginx->pid;
    return wait_for(answers_200, t->base, "/healthz", b->nginx);
}

/* The coordinator, then the agent registered with it, then nginx. */
static int bench_start(struct bench *b, const char *nginx)
{
    b->dir = test_tmpdir("bench-route");
    char *model = test_join(b->dir, "tiny.gguf");
    int rc = synth_model(model);
    if (rc != 0) {
        free(model);
        return rc;
    }
    b->cl = cluster_create("bench-route-coordinator", HEARTBEAT_MS, 3, 10);
    cluster_start_coordinator(b->cl);
    rc = wait_for(answers_200, b->cl->http_url, "/healthz", b->cl->coordinator);
    /* The agent heartbeats every HEARTBEAT_MS, its default too. */
    const char *control = b->cl->control_url;
    const char *flags[] = {"--coordinator", control, "--parallel", PARALLEL,
                           "--queue",       QUEUE,   NULL};
    if (rc == 0)
        rc = bench_agent_start(&b->agent, "bench-route-agent", model, MODEL_NAME, flags);
    free(model);
    if (rc == 0)
        rc = wait_for(routable, b->cl->http_url, "/v1/models", b->cl->coordinator);
    if (rc == 0)
        rc = nginx_start(b, nginx);
    if (rc != 0)
        return rc;
    struct target *t = b->t;
    t[DIRECT].name = "direct";
    snprintf(t[DIRECT].base, sizeof t[DIRECT].base, "%s", b->agent.base);
    t[COORDINATOR].name = "coordinator";
    snprintf(t[COORDINATOR].base, sizeof t[COORDINATOR].base, "%s", b->cl->http_url);
    t[COORDINATOR].proxy = b->cl->coordinator->pid;
    t[NGINX].name = "nginx"; /* base and proxy set by nginx_start */
    for (int i = 0; i < N_TARGETS; i++)
        snprintf(t[i].url, sizeof t[i].url, "%s/v1/completions", t[i].base);
    return 0;
}

static void bench_stop(struct bench *b)
{
    if (b->nginx != NULL) {
        int status = h_stop(b->nginx);
        if (status != 0)
            printf("warning     nginx exited with status %d when stopped\n", status);
        char *errors = test_join(b->dir, "nginx-error.log");
        char *log = test_read_file(errors, NULL);
        if (log != NULL && log[0] != '\0')
            printf("nginx's error log:\n%s", log);
        free(log);
        free(errors);
    }
    bench_agent_stop(&b->agent);
    if (b->cl != NULL && b->cl->coordinator != NULL) {
        h_proc *p = b->cl->coordinator;
        char log_path[sizeof p->log_path];
        snprintf(log_path, sizeof log_path, "%s", p->log_path);
        int status = h_stop(p);
        b->cl->coordinator = NULL;
        if (status != 0)
            printf("warning     the coordinator exited with status %d when stopped\n",
                   status);
        bench_log_report("coordinator", log_path);
    }
    cluster_destroy(b->cl);
    if (b->dir != NULL)
        test_tmpdir_remove(b->dir);
}

/* ---- measuring --------------------------------------------------------------- */

static void keep_error(struct result *r, const bench_client *c)
{
    r->errors += c->errors;
    if (c->errors > 0 && r->first_error[0] == '\0')
        snprintf(r->first_error, sizeof r->first_error, "%s", c->first_error);
}

/* The latency of each target from one client each, the targets taking
 * turns; a warm-up that fails stops the benchmark. */
static int measure_latency(const struct target *t, const char *body, bool stream,
                           struct result *r)
{
    bench_client *c = calloc(N_TARGETS, sizeof *c);
    if (c == NULL)
        abort();
    size_t warm[N_TARGETS];
    int rc = 0;
    for (int i = 0; i < N_TARGETS; i++) {
        bench_client_open(&c[i], t[i].url, body, stream);
        for (int k = 0; k < WARM_UP && rc == 0; k++)
            rc = bench_client_send(&c[i]);
        if (rc != 0) {
            fprintf(stderr, "%s: %s\n", t[i].url, c[i].first_error);
            break;
        }
        warm[i] = c[i].requests;
    }
    for (int round = 0; round < ROUNDS && rc == 0; round++)
        for (int i = 0; i < N_TARGETS; i++)
            for (int k = 0; k < PER_ROUND; k++)
                bench_client_send(&c[i]);
    for (int i = 0; i < N_TARGETS && rc == 0; i++) {
        size_t n = c[i].requests - warm[i];
        bench_sort(c[i].total_ms + warm[i], n);
        r[i].p50 = bench_percentile(c[i].total_ms + warm[i], n, 50);
        r[i].p99 = bench_percentile(c[i].total_ms + warm[i], n, 99);
        r[i].first_p50 = bench_median(c[i].first_ms + warm[i], n);
        keep_error(&r[i], &c[i]);
        if (!stream && strcmp(c[i].text, c[DIRECT].text) != 0)
            printf("warning     %s answered \"%s\", the agent itself \"%s\"\n", t[i].name,
                   c[i].text, c[DIRECT].text);
    }
    for (int i = 0; i < N_TARGETS; i++)
        bench_client_close(&c[i]);
    free(c);
    return rc;
}

/* CPU seconds of pid; 0 for no process. */
static double cpu_s(pid_t pid)
{
    return pid > 0 ? bench_proc_cpu_s(pid) : 0;
}

/* Requests/s of CLIENTS clients on each target, the targets taking turns,
 * and the CPU the agent and the proxy spent per request meanwhile. */
static void measure_load(const struct target *t, pid_t agent, const char *body,
                         bool stream, struct result *r)
{
    bench_client *c = calloc(N_TARGETS * CLIENTS, sizeof *c);
    if (c == NULL)
        abort();
    for (int i = 0; i < N_TARGETS * CLIENTS; i++)
        bench_client_open(&c[i], t[i / CLIENTS].url, body, stream);
    bool known = cpu_s(agent) >= 0; /* where there is no /proc, the columns say "-" */
    double secs[N_TARGETS] = {0}, agent_s[N_TARGETS] = {0}, proxy_s[N_TARGETS] = {0};
    for (int round = 0; round < LOAD_ROUNDS; round++) {
        for (int i = 0; i < N_TARGETS; i++) {
            double a0 = cpu_s(agent), p0 = cpu_s(t[i].proxy);
            secs[i] += bench_clients_run(c + i * CLIENTS, CLIENTS, LOAD_MS);
            agent_s[i] += cpu_s(agent) - a0;
            proxy_s[i] += cpu_s(t[i].proxy) - p0;
        }
    }
    for (int i = 0; i < N_TARGETS; i++) {
        size_t requests = 0;
        for (int k = 0; k < CLIENTS; k++) {
            requests += c[i * CLIENTS + k].requests;
            keep_error(&r[i], &c[i * CLIENTS + k]);
        }
        double per = requests > 0 ? 1e6 / (double)requests : 0;
        r[i].rps = (double)requests / secs[i];
        r[i].agent_us = known ? agent_s[i] * per : -1;
        r[i].proxy_us = known && t[i].proxy > 0 ? proxy_s[i] * per : -1;
    }
    for (int i = 0; i < N_TARGETS * CLIENTS; i++)
        bench_client_close(&c[i]);
    free(c);
}

/* ---- the report --------------------------------------------------------------- */

static void print_ratio(const char *what, const struct result *a, const struct result *b)
{
    printf("%-20s p50 %.2fx   p99 %.2fx   req/s %.2fx\n", what, a->p50 / b->p50,
           a->p99 / b->p99, a->rps / b->rps);
}

static void print_mode(const char *title, const struct target *t, const struct result *r,
                       bool stream)
{
    printf("\n%s\n", title);
    printf("target         p50     p99  first p50     req/s  errors    agent    proxy\n");
    printf(
        "              (ms)    (ms)       (ms)  (%d clients)     (CPU us per request)\n",
        CLIENTS);
    for (int i = 0; i < N_TARGETS; i++) {
        char first[16] = "-", agent[16] = "-", proxy[16] = "-";
        if (stream)
            snprintf(first, sizeof first, "%.3f", r[i].first_p50);
        if (r[i].agent_us >= 0)
            snprintf(agent, sizeof agent, "%.0f", r[i].agent_us);
        if (r[i].proxy_us >= 0)
            snprintf(proxy, sizeof proxy, "%.0f", r[i].proxy_us);
        printf("%-11s %7.3f %7.3f %10s %9.0f %7lld %8s %8s\n", t[i].name, r[i].p50,
               r[i].p99, first, r[i].rps, (long long)r[i].errors, agent, proxy);
        if (r[i].errors > 0)
            printf("            first error: %s\n", r[i].first_error);
    }
    print_ratio("coordinator/direct", &r[COORDINATOR], &r[DIRECT]);
    print_ratio("coordinator/nginx", &r[COORDINATOR], &r[NGINX]);
    double coord = r[COORDINATOR].p50 - r[DIRECT].p50,
           nginx = r[NGINX].p50 - r[DIRECT].p50;
    printf("added p50            coordinator %+.3f ms, nginx %+.3f ms\n", coord, nginx);
    if (coord <= nginx)
        printf(
            "goal met             the coordinator adds no more to the p50 than nginx\n");
    else if (nginx > 0)
        printf("goal missed          the coordinator adds %.1fx what nginx adds to the "
               "p50 (%+.3f ms)\n",
               coord / nginx, coord - nginx);
    else
        printf("goal missed          the coordinator adds %+.3f ms more than nginx\n",
               coord - nginx);
}

/* ---- main ------------------------------------------------------------------------ */

/* "nginx/1.22.1", as `nginx -v` says it; "" when it does not. */
static void nginx_version(const char *nginx, char *out, size_t size)
{
    const char *args[] = {"-v", NULL};
    char *err = NULL;
    h_run(nginx, args, WAIT_MS, NULL, &err);
    const char *v = err != NULL ? strstr(err, "nginx/") : NULL;
    snprintf(out, size, "%.*s", v != NULL ? (int)strcspn(v, " \n") : 0,
             v != NULL ? v : "");
    free(err);
}

int main(void)
{
    char nginx[512];
    const char *found =
        access("/usr/sbin/nginx", X_OK) == 0 ? "/usr/sbin/nginx" : h_which("nginx");
    if (found == NULL) {
        fprintf(stderr, "skipped: nginx is not installed (no /usr/sbin/nginx, none on "
                        "PATH); deploy/install-deps.sh installs it\n");
        return TEST_SKIP;
    }
    snprintf(nginx, sizeof nginx, "%s", found);
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK)
        abort();
    bench_print_machine();
    char version[64];
    nginx_version(nginx, version, sizeof version);
    struct bench b = {0};
    int rc = bench_start(&b, nginx);
    if (rc == 0) {
        printf(
            "route       /v1/completions \"%s\", max_tokens %d, greedy, on a synthetic "
            "model of 26k parameters; agent --parallel %s\n",
            PROMPT, MAX_TOKENS, PARALLEL);
        printf("            direct: the agent; coordinator: mlx-coordinator; nginx: %s "
               "(%s), one process, upstream keep-alive, no buffering\n",
               nginx, version);
        printf("            latency: 1 client, %d requests per target after %d to warm "
               "up, in %d rounds; load: %d clients, %d rounds of %d ms per target\n",
               ROUNDS * PER_ROUND, WARM_UP, ROUNDS, CLIENTS, LOAD_ROUNDS, LOAD_MS);
    }
    for (int stream = 0; stream <= 1 && rc == 0; stream++) {
        char *body = bench_completion_body(MODEL_NAME, PROMPT, MAX_TOKENS, stream);
        struct result r[N_TARGETS] = {0};
        rc = measure_latency(b.t, body, stream, r);
        if (rc == 0) {
            measure_load(b.t, b.agent.proc->pid, body, stream, r);
            print_mode(stream ? "streamed (stream: true, SSE)" : "whole (stream: false)",
                       b.t, r, stream);
        }
        free(body);
    }
    transport_floor f;
    if (rc == 0 && (rc = transport_floor_measure(FLOOR_TRIPS, &f)) == 0) {
        printf("\ntransport floor (one round trip between two threads on loopback, %d "
               "times, 128-byte messages)\n",
               FLOOR_TRIPS);
        printf(
            "plain TCP            p50 %.3f ms   p99 %.3f ms   (what a proxy like nginx "
            "pays)\n",
            f.tcp_p50, f.tcp_p99);
        printf(
            "NNG REQ/REP          p50 %.3f ms   p99 %.3f ms   (one data-plane exchange; "
            "%.1fx TCP)\n",
            f.nng_p50, f.nng_p99, f.nng_p50 / f.tcp_p50);
    }
    printf("\n");
    bench_stop(&b);
    curl_global_cleanup();
    return rc == 0 ? 0 : 1;
}
