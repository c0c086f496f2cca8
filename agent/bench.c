/*
 * bench.c — `mlx-agent bench MODEL`: how fast this machine runs a model.
 *
 *   prompt    one prompt of --prompt-tokens tokens, fed at once: tokens/s
 *   first     the time to the first token: the prompt and one decode step
 *   decode    --sequences sequences, each with a prompt of its own, then
 *             --gen-tokens steps in which every sequence takes one more
 *             token, all in one forward pass: tokens/s over all of them
 *   memory    the process's peak resident size
 *
 * The tokens are random ids of the vocabulary (greedy continuations would
 * measure the same arithmetic); each sequence gets a different prompt, so
 * no prefix is shared. With --json, one object.
 *
 * --suite measures the serving runtime instead (bench_suite.c).
 */
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <sys/resource.h>

#include "agent/agent.h"
#include "agent/bench_suite.h"
#include "agent/cache/cache.h"
#include "agent/engine/engine.h"
#include "common/alloc.h"
#include "common/cli.h"
#include "common/clock.h"
#include "common/json.h"

struct bench_opts {
    char *data;
    int64_t prompt_tokens, gen_tokens, sequences, threads, ctx;
    bool json, suite;
};

static const mlx_opt bench_opts[] = {
    {"data", 0, MLX_OPT_PATH, offsetof(struct bench_opts, data), "~/.mlxfleet", "DIR",
     "data directory (its store is searched for MODEL names)"},
    {"suite", 0, MLX_OPT_BOOL, offsetof(struct bench_opts, suite), "false", NULL,
     "run the fixed 10-prompt suite through the serving runtime and record it in the "
     "history",
     .cli_only = true},
    {"prompt-tokens", 0, MLX_OPT_INT, offsetof(struct bench_opts, prompt_tokens), "512",
     "N", "tokens in each prompt (not with --suite: its prompts are fixed)", 1, 1 << 20,
     .cli_only = true},
    {"gen-tokens", 0, MLX_OPT_INT, offsetof(struct bench_opts, gen_tokens), "0", "N",
     "tokens each sequence generates; 0: 128, or at most 64 per prompt with --suite", 0,
     1 << 20, .cli_only = true},
    {"sequences", 0, MLX_OPT_INT, offsetof(struct bench_opts, sequences), "1", "K",
     "sequences decoded together (not with --suite: one request at a time)", 1, 256,
     .cli_only = true},
    {"threads", 0, MLX_OPT_INT, offsetof(struct bench_opts, threads), "0", "N",
     "threads for the forward pass; 0: one per performance core", 0, 256},
    {"ctx", 0, MLX_OPT_INT, offsetof(struct bench_opts, ctx), "0", "N",
     "context length; 0: what the prompt and generation need (with --suite: the "
     "model's, at most 4096)",
     0, 1 << 20},
    {"json", 0, MLX_OPT_BOOL, offsetof(struct bench_opts, json), "false", NULL,
     "print one JSON object"},
    {NULL},
};

struct result {
    double prompt_tps, gen_tps, ttft_ms;
    uint64_t peak_rss;
};

/* Deterministic pseudo-random ids, different for each sequence. */
static void random_ids(int32_t *ids, size_t n, uint32_t n_vocab, uint64_t seed)
{
    uint64_t x = seed * 0x9E3779B97F4A7C15ull + 1;
    for (size_t i = 0; i < n; i++) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        ids[i] = (int32_t)(x % n_vocab);
    }
}

static uint32_t argmax(const float *logits, uint32_t n)
{
    uint32_t best = 0;
    for (uint32_t i = 1; i < n; i++)
        if (logits[i] > logits[best])
            best = i;
    return best;
}

static uint64_t peak_rss(void)
{
    struct rusage ru;
    if (getrusage(RUSAGE_SELF, &ru) != 0)
        return 0;
#ifdef __APPLE__
    return (uint64_t)ru.ru_maxrss; /* bytes there */
#else
    return (uint64_t)ru.ru_maxrss * 1024; /* KiB here */
#endif
}

static double per_s(double n, int64_t ns)
{
    return ns > 0 ? n * 1e9 / (double)ns : 0;
}

static int measure(engine_model *m, const struct bench_opts *o, struct result *r,
                   mlx_err *err)
{
    const engine_info *info = engine_model_info(m);
    size_t k = (size_t)o->sequences, np = (size_t)o->prompt_tokens;
    engine_seq **seqs = mlx_calloc(k, sizeof *seqs);
    engine_batch_item *items = mlx_calloc(k, sizeof *items);
    int32_t *prompt = mlx_calloc(np, sizeof *prompt), *next = mlx_calloc(k, sizeof *next);
    int rc = seqs == NULL || items == NULL || prompt == NULL || next == NULL
                 ? mlx_err_set(err, MLX_ENOMEM, "out of memory")
                 : 0;
    for (size_t i = 0; rc == 0 && i < k; i++)
        rc = engine_seq_new(m, &seqs[i], err);
    /* Sequence 0's prompt alone: prompt speed and time to first token. */
    random_ids(prompt, np, info->n_vocab, 1);
    int64_t t0 = mlx_time_mono_ns();
    if (rc == 0)
        rc = engine_seq_feed(seqs[0], prompt, np, err);
    int64_t t1 = mlx_time_mono_ns();
    if (rc == 0) {
        next[0] = (int32_t)argmax(engine_seq_logits(seqs[0]), info->n_vocab);
        rc = engine_seq_feed(seqs[0], &next[0], 1, err);
    }
    int64_t t2 = mlx_time_mono_ns();
    r->prompt_tps = per_s((double)np, t1 - t0);
    r->ttft_ms = (double)(t2 - t0) / 1e6;
    /* The others' prompts, then every sequence one token per step. */
    for (size_t i = 1; rc == 0 && i < k; i++) {
        random_ids(prompt, np, info->n_vocab, i + 1);
        rc = engine_seq_feed(seqs[i], prompt, np, err);
        if (rc == 0)
            rc = engine_seq_feed(seqs[i], prompt, 1, err); /* level with sequence 0 */
    }
    int64_t t3 = mlx_time_mono_ns();
    for (int64_t step = 0; rc == 0 && step < o->gen_tokens; step++) {
        for (size_t i = 0; i < k; i++) {
            next[i] = (int32_t)argmax(engine_seq_logits(seqs[i]), info->n_vocab);
            items[i] = (engine_batch_item){seqs[i], &next[i], 1};
        }
        rc = engine_feed_batch(m, items, k, err);
    }
    r->gen_tps = per_s((double)(k * (size_t)o->gen_tokens), mlx_time_mono_ns() - t3);
    r->peak_rss = peak_rss();
    for (size_t i = 0; seqs != NULL && i < k; i++)
        engine_seq_free(seqs[i]);
    mlx_free(seqs);
    mlx_free(items);
    mlx_free(prompt);
    mlx_free(next);
    return rc;
}

static int report(const struct bench_opts *o, const char *model, const engine_info *info,
                  const struct result *r, mlx_err *err)
{
    if (o->json)
        return mlx_json_print(
            json_pack("{s:s, s:s, s:s, s:I, s:I, s:I, s:I, s:I, s:f, s:f, s:f, s:I}",
                      "model", model, "arch", info->arch, "kernels", info->kernels,
                      "weight_bytes", (json_int_t)info->weight_bytes, "threads",
                      (json_int_t)info->threads, "sequences", (json_int_t)o->sequences,
                      "prompt_tokens", (json_int_t)o->prompt_tokens, "gen_tokens",
                      (json_int_t)o->gen_tokens, "prompt_tokens_per_s", r->prompt_tps,
                      "gen_tokens_per_s", r->gen_tps, "ttft_ms", r->ttft_ms,
                      "peak_rss_bytes", (json_int_t)r->peak_rss),
            err);
    printf("%s (%s, %.2f GB of weights, %d threads, %s kernels)\n", model, info->arch,
           (double)info->weight_bytes / 1e9, info->threads, info->kernels);
    printf("  prompt      %6lld tokens     %10.1f tokens/s\n",
           (long long)o->prompt_tokens, r->prompt_tps);
    printf("  first token %6s            %10.1f ms\n", "", r->ttft_ms);
    printf("  generation  %6lld x %-3lld seq  %10.1f tokens/s (all sequences)\n",
           (long long)o->gen_tokens, (long long)o->sequences, r->gen_tps);
    printf("  peak memory %6s            %10.1f MiB\n", "",
           (double)r->peak_rss / (1 << 20));
    return 0;
}

/* The engine measurement: load the model, measure, report. */
static int bench_engine(struct bench_opts *o, const char *model, mlx_err *err)
{
    if (o->gen_tokens == 0)
        o->gen_tokens = 128;
    int64_t need = o->prompt_tokens + o->gen_tokens + 1;
    engine_opts eo = {.threads = (int)o->threads,
                      .n_ctx = (uint32_t)(o->ctx > 0 ? o->ctx : need)};
    struct result r = {0};
    char *path = NULL;
    engine_model *m = NULL;
    int rc = cache_locate_model(o->data, model, &path, err);
    if (rc == 0 && o->ctx > 0 && o->ctx < need)
        rc = mlx_err_set(err, MLX_EUSAGE,
                         "--ctx %lld is less than the %lld tokens the run needs",
                         (long long)o->ctx, (long long)need);
    if (rc == 0 && (rc = engine_load(path, &eo, &m, err)) == 0 &&
        (rc = measure(m, o, &r, err)) == 0)
        rc = report(o, model, engine_model_info(m), &r, err);
    engine_free(m);
    mlx_free(path);
    return rc;
}

/* The suite goes through the serving runtime instead (bench_suite.c). */
static int bench_suite(const struct bench_opts *o, const char *model, mlx_err *err)
{
    bench_suite_opts so = {.data_dir = o->data,
                           .model = model,
                           .gen_tokens = (int32_t)o->gen_tokens,
                           .threads = (int)o->threads,
                           .n_ctx = (uint32_t)o->ctx,
                           .json = o->json};
    return bench_suite_run(&so, err);
}

static int bench(const mlx_program *prog, const mlx_cmd *cmd, int argc, char **argv)
{
    struct bench_opts o = {0};
    mlx_args args = {0};
    mlx_err err;
    mlx_err_clear(&err);
    int rc = mlx_cli_load(prog, cmd, argc, argv, &o, &args);
    if (rc != 0 || args.help)
        goto out;
    rc = o.suite ? bench_suite(&o, args.argv[0], &err)
                 : bench_engine(&o, args.argv[0], &err);
    if (rc != 0)
        mlx_cli_fail(prog, rc, &err);
out:
    mlx_config_free(cmd, &o);
    mlx_config_free_args(&args);
    return rc;
}

const mlx_cmd agent_cmd_bench = {
    .name = "bench",
    .args = "MODEL",
    .summary = "measure prompt and generation speed of a model on this machine",
    .about =
        "Feeds a prompt of --prompt-tokens, then decodes --gen-tokens tokens in each\n"
        "of --sequences sequences at once, and reports tokens per second, the time to\n"
        "the first token and the peak memory. MODEL is a GGUF file or a model of the\n"
        "store.\n"
        "\n"
        "With --suite it measures what a served request sees instead: ten fixed chat\n"
        "prompts (a question, a long instruction, code, a list, a story, ...) go one\n"
        "after another through the same runtime as 'serve', greedy, each generating at\n"
        "most --gen-tokens (64), once the model is loaded. For each prompt and over\n"
        "all: prompt and generated tokens, time to first token (submission to first\n"
        "token), latency (submission to the end) and tokens/s (tokens after the first\n"
        "over the time after the first token); then TTFT p50 and latency p50, p95 and\n"
        "p99 (nearest rank: with ten prompts p95 and p99 are the slowest). The run is\n"
        "recorded in DIR/metrics.db; 'mlx-agent history' lists it.",
    .opts = bench_opts,
    .min_args = 1,
    .max_args = 1,
    .run = bench,
};
