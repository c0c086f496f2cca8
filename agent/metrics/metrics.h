/*
 * metrics.h — what the agent knows about its machine.
 *
 * Two kinds of facts: the hardware (read once at start and sent when the
 * agent registers) and a sample of the machine's state (read before every
 * heartbeat). CPU use is a rate, so sampling needs the previous counters;
 * the caller keeps them in a metrics_counters between calls.
 *
 * Platforms: the shared part is POSIX (hostname, load average, free disk);
 * the rest comes from /proc on Linux and sysctl/Mach on macOS, one file each.
 * A fact the platform does not offer is left empty or zero, never invented.
 *
 * Thread safety: all functions are safe; a metrics_counters belongs to one
 * caller.
 */
#ifndef MLX_AGENT_METRICS_H
#define MLX_AGENT_METRICS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/buf.h"
#include "common/config.h"
#include "common/err.h"
#include "common/limits.h"

typedef struct metrics_hardware {
    char hostname[MLX_MAX_FACT + 1];
    char os_name[MLX_MAX_FACT + 1];    /* "Linux", "macOS" */
    char os_version[MLX_MAX_FACT + 1]; /* distribution and kernel, or macOS version */
    char arch[MLX_MAX_FACT + 1];       /* "x86_64", "arm64" */
    char cpu_model[MLX_MAX_FACT + 1];
    char chip[MLX_MAX_FACT + 1]; /* "Apple M2 Max" on macOS, else "" */
    uint32_t cpu_cores;          /* logical cores online */
    uint32_t performance_cores;  /* P-cores on Apple Silicon; all cores elsewhere */
    uint64_t memory_total_bytes;
    uint64_t disk_free_bytes; /* of the data directory's file system */
    uint64_t disk_total_bytes;
} metrics_hardware;

/* Busy and total CPU time since boot, in the platform's ticks. */
typedef struct metrics_cpu_ticks {
    uint64_t busy;
    uint64_t total;
} metrics_cpu_ticks;

typedef struct metrics_memory {
    uint64_t used, total;
    uint64_t swap_used, swap_total;
    uint64_t wired, compressed; /* macOS only; 0 elsewhere */
} metrics_memory;

/* The counters a sample's rates are computed against; zero before the
 * first sample. */
typedef struct metrics_counters {
    metrics_cpu_ticks cpu;
    uint64_t net_rx_bytes, net_tx_bytes; /* all interfaces but loopback */
    int64_t mono_ms;                     /* when they were read */
} metrics_counters;

typedef struct metrics_sample {
    int64_t unix_ms;
    double cpu_percent; /* since the previous sample, all cores, 0..100 */
    uint64_t memory_used_bytes;
    uint64_t memory_total_bytes;
    uint64_t swap_used_bytes;
    uint64_t swap_total_bytes;
    uint64_t memory_wired_bytes;      /* macOS */
    uint64_t memory_compressed_bytes; /* macOS */
    double load[3];                   /* 1, 5 and 15 minute load averages */
    uint64_t disk_free_bytes;
    double net_rx_bytes_per_s; /* since the previous sample; 0 for the first */
    double net_tx_bytes_per_s;
    double gpu_percent; /* < 0 where the platform does not tell */
} metrics_sample;

/* data_dir: the directory whose file system's free space is reported. */
int metrics_read_hardware(const char *data_dir, metrics_hardware *out, mlx_err *err);

/* prev holds the counters of the last call (zero before the first, which
 * then reports the CPU average since boot and no network rate) and is
 * updated. */
int metrics_sample_system(const char *data_dir, metrics_counters *prev,
                          metrics_sample *out, mlx_err *err);

/*
 * What each model on the node is doing: the agent's own engine ("mlx") or
 * a local Ollama server ("ollama"), as heartbeats and /metrics report it.
 */
#define METRICS_MAX_MODELS 32

typedef struct metrics_model_activity {
    char model[MLX_MAX_MODEL_NAME + 1];
    char engine[16];     /* "mlx", "ollama" */
    double tokens_per_s; /* generated tokens/s over the last sample interval */
    uint64_t memory_bytes;
    uint32_t running, queued; /* requests; 0 for another engine's models */
} metrics_model_activity;

/* Fills at most max entries, returns how many. Called from the sampler's
 * thread once per sample. */
typedef size_t (*metrics_activity_fn)(void *arg, metrics_model_activity *out, size_t max);

/*
 * History (<data>/metrics.db): samples at 1 s for an hour, one-minute
 * averages for 7 days, one-hour averages for 90 days, and benchmark runs.
 * Lifecycle: metrics_history_open, calls, metrics_history_close. One
 * history per thread; several processes may share the file.
 */
typedef struct metrics_history metrics_history;

typedef enum metrics_resolution {
    METRICS_RES_1S,
    METRICS_RES_1M,
    METRICS_RES_1H,
} metrics_resolution;

typedef struct metrics_point {
    metrics_sample sample; /* averages for the coarser resolutions */
    double tokens_per_s;   /* all models together */
} metrics_point;

typedef struct metrics_bench_run {
    int64_t unix_ms;
    char model[MLX_MAX_MODEL_NAME + 1];
    int prompts;
    double tokens_per_s;
    double ttft_p50_ms;
    double latency_ms[3]; /* p50, p95, p99 of whole requests */
} metrics_bench_run;

int metrics_history_open(const char *data_dir, metrics_history **out, mlx_err *err);
void metrics_history_close(metrics_history *h);
int metrics_history_add(metrics_history *h, const metrics_sample *s, double tokens_per_s,
                        mlx_err *err);
/* Builds the averages of whole periods ended before now_ms and drops what
 * is older than each resolution keeps. Idempotent. */
int metrics_history_compact(metrics_history *h, int64_t now_ms, mlx_err *err);
/* Points at res since since_ms, oldest first. *out: mlx_free. */
int metrics_history_query(metrics_history *h, metrics_resolution res, int64_t since_ms,
                          metrics_point **out, size_t *n, mlx_err *err);
int metrics_history_add_bench(metrics_history *h, const metrics_bench_run *r,
                              mlx_err *err);
/* Bench runs since since_ms, oldest first. *out: mlx_free. */
int metrics_history_benches(metrics_history *h, int64_t since_ms, metrics_bench_run **out,
                            size_t *n, mlx_err *err);

/*
 * The sampler: a thread that takes a sample every interval_ms, asks the
 * activity callback (and a local Ollama server, when one answers) what the
 * models are doing, records it in the history and keeps the latest for
 * heartbeats and /metrics.
 *
 * Lifecycle: metrics_sampler_start (takes the first sample before it
 * returns), metrics_sampler_latest from any thread, metrics_sampler_stop.
 */
typedef struct metrics_sampler metrics_sampler;

typedef struct metrics_sampler_config {
    const char *data_dir;         /* for disk figures and metrics.db */
    int interval_ms;              /* 1000 in production */
    const char *ollama_url;       /* "http://127.0.0.1:11434"; NULL or "" disables */
    int ollama_every_ms;          /* how often to ask Ollama; 0 means 5000 */
    metrics_activity_fn activity; /* may be NULL */
    void *activity_arg;
    bool record; /* write samples to the history */
} metrics_sampler_config;

typedef struct metrics_snapshot {
    metrics_sample system;
    metrics_model_activity models[METRICS_MAX_MODELS];
    size_t n_models;
    uint64_t samples; /* taken since start */
} metrics_snapshot;

int metrics_sampler_start(const metrics_sampler_config *cfg, metrics_sampler **out,
                          mlx_err *err);
void metrics_sampler_latest(metrics_sampler *s, metrics_snapshot *out);
void metrics_sampler_stop(metrics_sampler *s);

/* Asks the Ollama server at base_url which models it has loaded
 * (GET /api/ps). MLX_EUNREACH when none answers. */
int metrics_ollama_ps(const char *base_url, int timeout_ms, metrics_model_activity *out,
                      size_t max, size_t *n, mlx_err *err);
/* The parsing part of metrics_ollama_ps, for tests and the fuzzer. */
int metrics_ollama_parse_ps(const char *body, size_t len, metrics_model_activity *out,
                            size_t max, size_t *n, mlx_err *err);

/*
 * Inference counters: what the agent's APIs answered and how fast its
 * models generated, for /metrics. Names follow llama.cpp's server
 * (llamacpp:prompt_tokens_total → mlx_prompt_tokens_total, …), plus request
 * counts by endpoint, model and status, and time-to-first-token and
 * inter-token latency histograms. A bounded number of label combinations
 * is kept; past it, new models are counted as model "other", so a stream
 * of made-up model names cannot grow the page without end.
 *
 * Thread safety: every function may be called from any thread.
 */
typedef struct metrics_inference metrics_inference;

/* *out: metrics_inference_free. */
int metrics_inference_new(metrics_inference **out, mlx_err *err);
void metrics_inference_free(metrics_inference *mi);

/* A request answered: its endpoint ("/v1/chat/completions"), the model
 * ("" when the request named none that could be found) and the HTTP
 * status (499 when the client went away first). */
void metrics_inference_request(metrics_inference *mi, const char *endpoint,
                               const char *model, int status);

/* A finished generation's tokens and the seconds spent on each part. */
void metrics_inference_generation(metrics_inference *mi, const char *model,
                                  uint32_t prompt_tokens, double prompt_seconds,
                                  uint32_t generated_tokens, double generation_seconds);

/* runtime_config.observe_token: a token's latency (the first's from the
 * request's submission). mi is the metrics_inference. */
void metrics_inference_observe_token(void *mi, const char *model, bool first,
                                     double seconds);

/* The counters as Prometheus text, every series labelled node="node". */
void metrics_inference_write(metrics_inference *mi, mlx_buf *b, const char *node);

/* `mlx-agent history`. */
extern const mlx_cmd metrics_cmd_history;

#endif
