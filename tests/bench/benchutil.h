/*
 * benchutil.h — what the serving benchmarks (bench_http, bench_route) share:
 * an agent serving one model from a fresh store, kept-alive clients that
 * POST one /v1/completions body again and again and time each answer
 * (streamed ones to their first text too), percentiles, and the CPU a
 * process used.
 *
 * A client belongs to one thread; nothing here locks. A failure to allocate
 * aborts. Lifecycle: bench_agent_start, then requests, then
 * bench_agent_stop, which also says what the agent's log complained of;
 * the harness kills a daemon left running when a benchmark aborts.
 */
#ifndef MLX_TESTS_BENCHUTIL_H
#define MLX_TESTS_BENCHUTIL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include <curl/curl.h>
#include <pthread.h>

#include "tests/integration/harness.h"

/* ---- the agent ------------------------------------------------------------ */

typedef struct bench_agent {
    char *dir;     /* owned: a temporary directory holding the store and the log */
    char *data;    /* owned: dir/data */
    char base[64]; /* "http://127.0.0.1:PORT" */
    char http[32]; /* "127.0.0.1:PORT", the same port */
    h_proc *proc;
} bench_agent;

/* Adds model_path to a fresh store as name and starts `mlx-agent serve` on
 * free loopback ports with extra flags (NULL-terminated, may be NULL), then
 * waits for /healthz. Returns 0, or -1 after printing why (the log too);
 * bench_agent_stop cleans up either way. */
int bench_agent_start(bench_agent *a, const char *tag, const char *model_path,
                      const char *name, const char *const *extra);

/* Stops the agent, reports its log (bench_log_report) and removes dir. */
void bench_agent_stop(bench_agent *a);

/* Prints how many warnings and errors the log at path holds, and the first,
 * on a line headed by who. */
void bench_log_report(const char *who, const char *path);

/* ---- clients --------------------------------------------------------------- */

#define BENCH_PENDING_MAX 65536 /* unparsed SSE bytes; one event is a few hundred */
#define BENCH_ERROR_MAX   256

/* The /v1/completions body of prompt for model: greedy, max_tokens, and
 * when streamed, usage in the last chunk. Caller frees. */
char *bench_completion_body(const char *model, const char *prompt, int max_tokens,
                            bool stream);

/* What has come of one streamed answer so far. */
typedef struct bench_sse {
    int64_t first_text_ns;       /* 0 until an event carries text */
    int64_t tokens;              /* usage.completion_tokens of the last chunk */
    bool done;                   /* "data: [DONE]" came */
    bool failed;                 /* an error event, or one that is not JSON */
    char error[BENCH_ERROR_MAX]; /* what failed, for the report */
    size_t n;                    /* bytes in pending */
    char pending[BENCH_PENDING_MAX];
} bench_sse;

/* A client: one kept-alive connection POSTing one body to one URL again
 * and again, as a real client would, keeping each whole answer's times. An
 * answer that is not whole (a status other than 200, an error event, no
 * text) counts as an error. */
typedef struct bench_client {
    const char *url, *body; /* borrowed: outlive the client */
    bool stream;            /* the body asks for SSE */
    int64_t deadline_ms;    /* bench_client_run starts no request after it */
    pthread_t tid;          /* for the caller's pthread_create */
    double *total_ms;       /* owned: per whole answer, sent to last byte */
    double *first_ms;       /* owned: the same to the first text (streamed) */
    size_t requests, cap;   /* whole answers; entries allocated */
    int64_t tokens, errors;
    bool broken; /* the connection itself failed: it would fail again at once */
    char first_error[BENCH_ERROR_MAX];
    char *text; /* owned: the last whole answer's text; NULL when streamed */
    /* private */
    CURL *curl;
    struct curl_slist *headers;
    char *answer; /* a non-streamed answer's bytes, NUL-terminated */
    size_t answer_len;
    bench_sse sse;
} bench_client;

/* Opens c (zeroed by the caller) on a new connection. */
void bench_client_open(bench_client *c, const char *url, const char *body, bool stream);
/* One request: 0 when answered whole, else -1 with the error counted. */
int bench_client_send(bench_client *c);
/* Sends back to back until deadline_ms or the connection breaks (a
 * pthread start routine; arg: the client). */
void *bench_client_run(void *arg);
void bench_client_close(bench_client *c);
/* Runs n opened clients at once, each sending back to back for ms (each on
 * a thread of its own); the seconds they took together. */
double bench_clients_run(bench_client *clients, int n, int ms);

/* ---- statistics and CPU ---------------------------------------------------- */

void bench_sort(double *values, size_t n);
/* The nearest-rank percentile p (0..100) of n sorted values; 0 when n is 0. */
double bench_percentile(const double *sorted, size_t n, double p);
/* Sorts values and returns their median. */
double bench_median(double *values, size_t n);

/* CPU seconds (user + system) this process has used, all threads. */
double bench_self_cpu_s(void);
/* CPU seconds the process pid has used, from /proc; -1 where there is none. */
double bench_proc_cpu_s(pid_t pid);

/* "machine     Linux x86_64, 2 cores, <CPU model>" (test_machine). */
void bench_print_machine(void);

#endif
