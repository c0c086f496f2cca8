/*
 * bench_suite.c — `mlx-agent bench MODEL --suite`: ten fixed prompts through
 * the serving runtime, so the figures are those a served request sees
 * (chat format, tokenizer, scheduler, sampler, stop matching), not the
 * engine's alone as bench.c measures.
 *
 * One runtime with a single slot; the model is loaded by one unmeasured
 * request first, then the prompts go one after another, so each latency is
 * a single request's on a warm model and no prompt waits for another. The
 * prompts, warm-up and sampling are the fleet's suite (common/suite.h): each
 * is a user message in the model's chat format, decoded greedily up to
 * --gen-tokens (64 by default).
 *
 * Per prompt, from the runtime's own timings (runtime_event DONE):
 *   ttft      submission to the first token: queue, prompt, first sample
 *   gen       first token to the end
 *   latency   submission to the end (ttft + gen)
 *   tokens/s  tokens after the first over gen: the first token's time is
 *             part of ttft, so counting it here would count it twice
 * Overall: the same rate over all prompts (sums of both), and nearest-rank
 * percentiles of ttft and latency. The run is recorded in
 * <data>/metrics.db (metrics_history_add_bench) under the name given.
 */
#include <stdio.h>
#include <string.h>

#include "agent/bench_suite.h"
#include "agent/engine/engine.h"
#include "agent/metrics/metrics.h"
#include "agent/runtime/runtime.h"
#include "common/alloc.h"
#include "common/clock.h"
#include "common/json.h"
#include "common/log.h"
#include "common/path.h"
#include "common/suite.h"

struct row {
    const char *kind;
    char finish[8]; /* "stop" or "length" */
    uint32_t prompt_tokens, completion_tokens;
    double ttft_ms, gen_ms, latency_ms, tokens_per_s;
};

struct summary {
    uint64_t prompt_tokens, completion_tokens;
    double tokens_per_s;
    double ttft_p50_ms;
    double latency_ms[3]; /* p50, p95, p99 */
};

struct suite_run {
    int64_t unix_ms; /* when it started */
    int32_t gen_tokens;
    double load_ms;   /* the unmeasured first request's load */
    engine_info info; /* arch, threads, kernels; zero when not known */
    struct row rows[MLX_SUITE_PROMPTS];
    struct summary sum;
    bool recorded;
};

/* Sends one chat prompt and waits for its end. 0 with *done the DONE
 * event, or the ERROR event's code and sentence. */
static int request_run(runtime *rt, const char *model, const char *text,
                       int32_t max_tokens, runtime_event *done, mlx_err *err)
{
    engine_msg msg = {"user", text};
    runtime_request req = {
        .model = model,
        .messages = &msg,
        .n_messages = 1,
        .sampling = engine_sampling_defaults(),
        .max_tokens = max_tokens,
        .keep_alive_ms = -1,
        .request_id = "bench-suite",
    };
    req.sampling.temperature = 0; /* greedy: the same work every run */
    req.sampling.seed = MLX_SUITE_SEED;
    runtime_job *job = NULL;
    int rc = runtime_submit(rt, &req, &job, err);
    while (rc == 0) {
        rc = runtime_job_next(job, done, -1);
        if (rc == 0 && done->kind == RUNTIME_ERROR)
            rc = mlx_err_set(err, done->error, "%s", done->message);
        else if (rc == 0 && done->kind == RUNTIME_DONE)
            break;
    }
    runtime_job_free(job);
    return rc;
}

static double ns_to_ms(int64_t ns)
{
    return (double)ns / 1e6;
}

static struct row row_of(const char *kind, const runtime_event *done)
{
    struct row r = {.kind = kind,
                    .prompt_tokens = done->prompt_tokens,
                    .completion_tokens = done->completion_tokens,
                    .ttft_ms = ns_to_ms(done->total_ns - done->gen_ns),
                    .gen_ms = ns_to_ms(done->gen_ns),
                    .latency_ms = ns_to_ms(done->total_ns)};
    snprintf(r.finish, sizeof r.finish, "%s",
             done->finish_reason != NULL ? done->finish_reason : "");
    r.tokens_per_s = mlx_suite_rate(mlx_suite_after_first(r.completion_tokens), r.gen_ms);
    return r;
}

static struct summary summarize(const struct row *rows, size_t n)
{
    struct summary s = {0};
    double ttft[MLX_SUITE_PROMPTS], latency[MLX_SUITE_PROMPTS], gen_ms = 0;
    uint64_t after_first = 0;
    for (size_t i = 0; i < n; i++) {
        s.prompt_tokens += rows[i].prompt_tokens;
        s.completion_tokens += rows[i].completion_tokens;
        after_first += mlx_suite_after_first(rows[i].completion_tokens);
        gen_ms += rows[i].gen_ms;
        ttft[i] = rows[i].ttft_ms;
        latency[i] = rows[i].latency_ms;
    }
    s.tokens_per_s = mlx_suite_rate(after_first, gen_ms);
    mlx_suite_sort(ttft, n);
    mlx_suite_sort(latency, n);
    s.ttft_p50_ms = mlx_suite_percentile(ttft, n, 50);
    s.latency_ms[0] = mlx_suite_percentile(latency, n, 50);
    s.latency_ms[1] = mlx_suite_percentile(latency, n, 95);
    s.latency_ms[2] = mlx_suite_percentile(latency, n, 99);
    return s;
}

/* Arch, threads and kernels of the loaded model, for the report. */
static void model_info(runtime *rt, const char *model, engine_info *out)
{
    runtime_status st = {0};
    if (runtime_get_status(rt, &st, NULL) != 0)
        return;
    for (size_t i = 0; i < st.n_models; i++)
        if (strcmp(st.models[i].name, model) == 0)
            *out = st.models[i].info;
    runtime_status_free(&st);
}

/* The warm-up request, then every prompt in turn. */
static int suite_measure(runtime *rt, const bench_suite_opts *o, struct suite_run *run,
                         mlx_err *err)
{
    runtime_event done;
    int rc = request_run(rt, o->model, MLX_SUITE_WARMUP, 1, &done, err);
    if (rc != 0)
        return rc;
    run->load_ms = ns_to_ms(done.load_ns);
    model_info(rt, o->model, &run->info);
    for (size_t i = 0; i < MLX_SUITE_PROMPTS; i++) {
        const mlx_suite_prompt *p = &mlx_suite_prompts[i];
        rc = request_run(rt, o->model, p->text, run->gen_tokens, &done, err);
        if (rc != 0)
            return mlx_err_prefix(err, rc, "prompt %zu of the suite (%s)", i + 1,
                                  p->kind);
        run->rows[i] = row_of(p->kind, &done);
    }
    run->sum = summarize(run->rows, MLX_SUITE_PROMPTS);
    return 0;
}

static int suite_record(const bench_suite_opts *o, const struct suite_run *run,
                        mlx_err *err)
{
    metrics_bench_run b = {.unix_ms = run->unix_ms,
                           .prompts = MLX_SUITE_PROMPTS,
                           .tokens_per_s = run->sum.tokens_per_s,
                           .ttft_p50_ms = run->sum.ttft_p50_ms};
    snprintf(b.model, sizeof b.model, "%s", o->model);
    memcpy(b.latency_ms, run->sum.latency_ms, sizeof b.latency_ms);
    metrics_history *h = NULL;
    int rc = mlx_path_mkdirs(o->data_dir, 0700, err);
    if (rc == 0)
        rc = metrics_history_open(o->data_dir, &h, err);
    if (rc == 0)
        rc = metrics_history_add_bench(h, &b, err);
    metrics_history_close(h);
    return rc;
}

static json_t *row_json(const struct row *r)
{
    return json_pack("{s:s, s:s, s:I, s:I, s:f, s:f, s:f, s:f}", "kind", r->kind,
                     "finish", r->finish, "prompt_tokens", (json_int_t)r->prompt_tokens,
                     "completion_tokens", (json_int_t)r->completion_tokens, "ttft_ms",
                     r->ttft_ms, "gen_ms", r->gen_ms, "latency_ms", r->latency_ms,
                     "tokens_per_s", r->tokens_per_s);
}

static int print_json(const bench_suite_opts *o, const struct suite_run *run,
                      mlx_err *err)
{
    const struct summary *s = &run->sum;
    json_t *rows = json_array();
    for (size_t i = 0; rows != NULL && i < MLX_SUITE_PROMPTS; i++)
        if (json_array_append_new(rows, row_json(&run->rows[i])) != 0) {
            json_decref(rows);
            return mlx_json_print(NULL, err); /* out of memory */
        }
    return mlx_json_print(
        json_pack(
            "{s:s, s:s?, s:s?, s:i, s:I, s:I, s:f, s:o, s:{s:i, s:I, s:I, s:f, s:f, "
            "s:f, s:f, s:f}, s:b}",
            "model", o->model, "arch", run->info.arch, "kernels", run->info.kernels,
            "threads", run->info.threads, "unix_ms", (json_int_t)run->unix_ms,
            "gen_tokens", (json_int_t)run->gen_tokens, "load_ms", run->load_ms, "prompts",
            rows, "summary", "prompts", MLX_SUITE_PROMPTS, "prompt_tokens",
            (json_int_t)s->prompt_tokens, "completion_tokens",
            (json_int_t)s->completion_tokens, "tokens_per_s", s->tokens_per_s,
            "ttft_p50_ms", s->ttft_p50_ms, "latency_p50_ms", s->latency_ms[0],
            "latency_p95_ms", s->latency_ms[1], "latency_p99_ms", s->latency_ms[2],
            "recorded", run->recorded),
        err);
}

/* Decimals for a time in ms: fast synthetic models take well under one. */
static int ms_digits(double ms)
{
    return ms < 10 ? 2 : ms < 100 ? 1 : 0;
}

static void print_table(const bench_suite_opts *o, const struct suite_run *run)
{
    const struct summary *s = &run->sum;
    printf("%s: %d prompts one at a time through the runtime, greedy, at most %d tokens "
           "each\n",
           o->model, MLX_SUITE_PROMPTS, (int)run->gen_tokens);
    if (run->info.arch != NULL)
        printf("(%s, %d threads, %s kernels; loaded in %.*f ms, not counted)\n",
               run->info.arch, run->info.threads, run->info.kernels,
               ms_digits(run->load_ms), run->load_ms);
    printf("\n%3s  %-12s  %9s  %10s  %10s  %10s  %9s\n", "#", "PROMPT", "TOKENS IN",
           "TOKENS OUT", "TTFT ms", "LATENCY ms", "TOKENS/S");
    for (size_t i = 0; i < MLX_SUITE_PROMPTS; i++) {
        const struct row *r = &run->rows[i];
        printf("%3zu  %-12s  %9u  %10u  %10.*f  %10.*f  %9.1f\n", i + 1, r->kind,
               r->prompt_tokens, r->completion_tokens, ms_digits(r->ttft_ms), r->ttft_ms,
               ms_digits(r->latency_ms), r->latency_ms, r->tokens_per_s);
    }
    printf("\n%llu tokens generated at %.1f tokens/s; TTFT p50 %.*f ms; latency p50 %.*f "
           "ms, p95 %.*f ms, p99 %.*f ms\n",
           (unsigned long long)s->completion_tokens, s->tokens_per_s,
           ms_digits(s->ttft_p50_ms), s->ttft_p50_ms, ms_digits(s->latency_ms[0]),
           s->latency_ms[0], ms_digits(s->latency_ms[1]), s->latency_ms[1],
           ms_digits(s->latency_ms[2]), s->latency_ms[2]);
    if (run->recorded)
        printf("Recorded; 'mlx-agent history' lists it.\n");
}

int bench_suite_run(const bench_suite_opts *o, mlx_err *err)
{
    /* The runtime logs each load at info level; the table is the report. */
    mlx_log_set_level(MLX_LOG_WARN);
    runtime_config cfg = {.data_dir = o->data_dir,
                          .max_loaded = 1,
                          .parallel = 1, /* one request at a time: no neighbours */
                          .keep_alive_ms = -1,
                          .threads = o->threads,
                          .n_ctx = o->n_ctx};
    struct suite_run *run = mlx_calloc(1, sizeof *run);
    if (run == NULL)
        return mlx_err_set(err, MLX_ENOMEM, "out of memory");
    run->unix_ms = mlx_time_wall_ms();
    run->gen_tokens = o->gen_tokens > 0 ? o->gen_tokens : MLX_SUITE_GEN_TOKENS;
    runtime *rt = NULL;
    int rc = runtime_start(&cfg, &rt, err);
    if (rc == 0)
        rc = suite_measure(rt, o, run, err);
    runtime_stop(rt);
    mlx_err rec;
    mlx_err_clear(&rec);
    int rec_rc = rc == 0 ? suite_record(o, run, &rec) : 0;
    run->recorded = rc == 0 && rec_rc == 0;
    if (rc == 0 && o->json)
        rc = print_json(o, run, err);
    else if (rc == 0)
        print_table(o, run);
    if (rec_rc != 0)
        fprintf(stderr, "warning: the run was not recorded in the history: %s\n",
                mlx_err_text(&rec, rec_rc));
    mlx_free(run);
    return rc;
}
