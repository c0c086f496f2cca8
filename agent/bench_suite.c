/*
 * bench_suite.c — `mlx-agent bench MODEL --suite`: ten fixed prompts through
 * the serving runtime, so the figures are those a served request sees
 * (chat format, tokenizer, scheduler, sampler, stop matching), not the
 * engine's alone as bench.c measures.
 *
 * One runtime with a single slot; the model is loaded by one unmeasured
 * request first, then the prompts go one after another, so each latency is
 * a single request's on a warm model and no prompt waits for another. Each
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
#include <stdlib.h>
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

#define SUITE_PROMPTS    10
#define SUITE_GEN_TOKENS 64

/*
 * The suite. History compares runs of it over time, so these texts are
 * part of what a recorded figure means: change them and old runs no longer
 * compare. They differ in length (a few tokens to a few hundred) and kind,
 * because prompt length moves ttft and the kind of answer moves how soon a
 * real model stops.
 */
static const struct suite_prompt {
    const char *kind; /* a word for the table */
    const char *text;
} suite[SUITE_PROMPTS] = {
    /* The shortest: ttft is nearly all scheduling and the chat template. */
    {"question", "What is the capital of France?"},
    /* A long instruction with constraints, as agents and tools send. */
    {"instruction",
     "You are helping a small team of eight people move to a new office next month. "
     "Write a checklist for the move. Group the items under the headings Before, "
     "Moving day and After. Include the internet connection, the printers, keys and "
     "badges, telling customers the new address, and who to call if something breaks. "
     "Keep each item to one line and put the most urgent items first in each group."},
    /* Code: many short tokens, punctuation and indentation. */
    {"code",
     "Write a C function that reverses a singly linked list in place and returns the "
     "new head. Then explain in two sentences why it runs in linear time."},
    /* A list: a structured answer of many short lines. */
    {"list", "List ten fruits that grow in tropical climates, one per line."},
    /* A story opening to continue: free-running prose. */
    {"story",
     "Continue this story: Once upon a time, in a village at the edge of a great "
     "forest, there lived a girl who could hear what the trees were saying."},
    /* The longest prompt and a short answer: prompt speed dominates. */
    {"summary",
     "Summarise the following in one sentence. The city council met on Tuesday to "
     "discuss the new bicycle lanes planned for the centre. Supporters said the lanes "
     "would make cycling safer and reduce traffic, pointing to other cities where the "
     "number of people cycling to work doubled within two years. Shop owners on the "
     "main street worried that removing parking spaces would keep customers away, and "
     "asked for a trial period first. After two hours the council agreed to build the "
     "lanes on two streets this summer, count cyclists and shoppers for six months, and "
     "decide on the rest of the plan in the spring."},
    /* Translation: the answer's length follows the prompt's. */
    {"translation",
     "Translate into French: The train to the airport leaves every twenty minutes "
     "from platform four."},
    /* Arithmetic with steps. */
    {"math",
     "A train leaves at 3:15 pm and travels 240 km at 80 km/h. When does it arrive? "
     "Show your steps."},
    /* Everyday writing of medium length. */
    {"email",
     "Write a short, polite email declining an invitation to a meeting on Thursday "
     "afternoon, and suggest two other times."},
    /* An explanation for a given audience. */
    {"explanation", "Explain to a ten-year-old why the sky is blue."},
};

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
    struct row rows[SUITE_PROMPTS];
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

/* Tokens after the first per second after the first (see the head). */
static double rate(uint64_t tokens_after_first, double gen_ms)
{
    return gen_ms > 0 ? (double)tokens_after_first * 1000.0 / gen_ms : 0;
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
    uint32_t after_first = r.completion_tokens > 0 ? r.completion_tokens - 1 : 0;
    r.tokens_per_s = rate(after_first, r.gen_ms);
    return r;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* Nearest rank: the smallest value with at least pct% of the values at or
 * below it, i.e. the ceil(pct/100 * n)-th smallest. Always one of the
 * measured values (no interpolation), so with ten prompts p95 and p99 are
 * both the slowest: ten samples say nothing finer. */
static double percentile(const double *sorted, size_t n, unsigned pct)
{
    size_t rank = (pct * n + 99) / 100;
    return sorted[rank > 0 ? rank - 1 : 0];
}

static struct summary summarize(const struct row *rows, size_t n)
{
    struct summary s = {0};
    double ttft[SUITE_PROMPTS], latency[SUITE_PROMPTS], gen_ms = 0;
    uint64_t after_first = 0;
    for (size_t i = 0; i < n; i++) {
        s.prompt_tokens += rows[i].prompt_tokens;
        s.completion_tokens += rows[i].completion_tokens;
        after_first += rows[i].completion_tokens > 0 ? rows[i].completion_tokens - 1 : 0;
        gen_ms += rows[i].gen_ms;
        ttft[i] = rows[i].ttft_ms;
        latency[i] = rows[i].latency_ms;
    }
    s.tokens_per_s = rate(after_first, gen_ms);
    qsort(ttft, n, sizeof ttft[0], cmp_double);
    qsort(latency, n, sizeof latency[0], cmp_double);
    s.ttft_p50_ms = percentile(ttft, n, 50);
    s.latency_ms[0] = percentile(latency, n, 50);
    s.latency_ms[1] = percentile(latency, n, 95);
    s.latency_ms[2] = percentile(latency, n, 99);
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
    int rc = request_run(rt, o->model, "Hello.", 1, &done, err);
    if (rc != 0)
        return rc;
    run->load_ms = ns_to_ms(done.load_ns);
    model_info(rt, o->model, &run->info);
    for (size_t i = 0; i < SUITE_PROMPTS; i++) {
        rc = request_run(rt, o->model, suite[i].text, run->gen_tokens, &done, err);
        if (rc != 0)
            return mlx_err_prefix(err, rc, "prompt %zu of the suite (%s)", i + 1,
                                  suite[i].kind);
        run->rows[i] = row_of(suite[i].kind, &done);
    }
    run->sum = summarize(run->rows, SUITE_PROMPTS);
    return 0;
}

static int suite_record(const bench_suite_opts *o, const struct suite_run *run,
                        mlx_err *err)
{
    metrics_bench_run b = {.unix_ms = run->unix_ms,
                           .prompts = SUITE_PROMPTS,
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
    for (size_t i = 0; rows != NULL && i < SUITE_PROMPTS; i++)
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
            rows, "summary", "prompts", SUITE_PROMPTS, "prompt_tokens",
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
           o->model, SUITE_PROMPTS, (int)run->gen_tokens);
    if (run->info.arch != NULL)
        printf("(%s, %d threads, %s kernels; loaded in %.*f ms, not counted)\n",
               run->info.arch, run->info.threads, run->info.kernels,
               ms_digits(run->load_ms), run->load_ms);
    printf("\n%3s  %-12s  %9s  %10s  %10s  %10s  %9s\n", "#", "PROMPT", "TOKENS IN",
           "TOKENS OUT", "TTFT ms", "LATENCY ms", "TOKENS/S");
    for (size_t i = 0; i < SUITE_PROMPTS; i++) {
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
    run->gen_tokens = o->gen_tokens > 0 ? o->gen_tokens : SUITE_GEN_TOKENS;
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
