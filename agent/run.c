/*
 * run.c — `mlx-agent run MODEL PROMPT`: one generation on this machine,
 * with no daemon and no other inference program. The text goes to stdout
 * as it is produced; how long it took goes to stderr. With --json, one
 * object at the end instead.
 *
 * MODEL is a GGUF file, or the name of a model of the store (pulled,
 * added, or found by `cache scan`).
 */
#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include "agent/agent.h"
#include "agent/cache/cache.h"
#include "agent/engine/engine.h"
#include "common/alloc.h"
#include "common/cli.h"
#include "common/clock.h"
#include "common/json.h"

struct run_opts {
    char *data;
    int64_t n_predict;
    double temp, top_p, min_p, repeat_penalty;
    int64_t top_k, seed, threads, ctx;
    bool chat;
    char *system;
    mlx_strlist stops;
    bool json;
};

static const mlx_opt run_opts[] = {
    {"data", 0, MLX_OPT_PATH, offsetof(struct run_opts, data), "~/.mlxfleet", "DIR",
     "data directory (its store is searched for MODEL names)"},
    {"n", 'n', MLX_OPT_INT, offsetof(struct run_opts, n_predict), "-1", "N",
     "tokens to generate at most; -1: until the model stops or the context is full", -1,
     1 << 20, .cli_only = true},
    {"temp", 0, MLX_OPT_FLOAT, offsetof(struct run_opts, temp), "0.8", "T",
     "temperature; 0 is greedy", .cli_only = true},
    {"top-k", 0, MLX_OPT_INT, offsetof(struct run_opts, top_k), "40", "K",
     "sample among the K most likely tokens; 0: all", 0, 1 << 20, .cli_only = true},
    {"top-p", 0, MLX_OPT_FLOAT, offsetof(struct run_opts, top_p), "0.95", "P",
     "sample among the most likely tokens whose probability adds up to P",
     .cli_only = true},
    {"min-p", 0, MLX_OPT_FLOAT, offsetof(struct run_opts, min_p), "0.05", "P",
     "drop tokens less likely than P times the most likely one", .cli_only = true},
    {"repeat-penalty", 0, MLX_OPT_FLOAT, offsetof(struct run_opts, repeat_penalty), "1.0",
     "R", "penalise tokens of the last 64 (1.1 is a common choice); 1: off",
     .cli_only = true},
    {"seed", 0, MLX_OPT_INT, offsetof(struct run_opts, seed), "0", "S",
     "random seed: the same seed and prompt give the same text", 0, INT64_MAX,
     .cli_only = true},
    {"threads", 0, MLX_OPT_INT, offsetof(struct run_opts, threads), "0", "N",
     "threads for the forward pass; 0: one per core", 0, 256},
    {"ctx", 0, MLX_OPT_INT, offsetof(struct run_opts, ctx), "0", "N",
     "context length in tokens; 0: the model's, at most 4096", 0, 1 << 20},
    {"chat", 0, MLX_OPT_BOOL, offsetof(struct run_opts, chat), "false", NULL,
     "send PROMPT as a user message in the model's chat format", .cli_only = true},
    {"system", 0, MLX_OPT_STR, offsetof(struct run_opts, system), "", "TEXT",
     "with --chat: a system message first", .cli_only = true},
    {"stop", 0, MLX_OPT_LIST, offsetof(struct run_opts, stops), NULL, "TEXT",
     "stop before this text (repeatable)", .cli_only = true},
    {"json", 0, MLX_OPT_BOOL, offsetof(struct run_opts, json), "false", NULL,
     "print one JSON object at the end instead of streaming the text"},
    {NULL},
};

/* The sampler's settings; engine_sampler_new checks their ranges. */
static engine_sampling sampling_of(const struct run_opts *o)
{
    engine_sampling p = engine_sampling_defaults();
    p.temperature = (float)o->temp;
    p.top_k = (int32_t)o->top_k;
    p.top_p = (float)o->top_p;
    p.min_p = (float)o->min_p;
    p.repeat_penalty = (float)o->repeat_penalty;
    p.seed = (uint64_t)o->seed;
    return p;
}

/* The prompt's tokens: the text itself, or a chat turn in the model's format. */
static int prompt_ids(const engine_model *m, const struct run_opts *o, const char *prompt,
                      int32_t **ids, size_t *n, mlx_err *err)
{
    if (!o->chat)
        return engine_tokenize(m, prompt, strlen(prompt), true, false, ids, n, err);
    engine_msg msgs[2];
    size_t k = 0;
    if (o->system[0] != '\0')
        msgs[k++] = (engine_msg){"system", o->system};
    msgs[k++] = (engine_msg){"user", prompt};
    char *text = NULL;
    int rc = engine_chat_prompt(m, msgs, k, true, &text, err);
    if (rc == 0)
        rc = engine_tokenize(m, text, strlen(text), true, true, ids, n, err);
    mlx_free(text);
    return rc;
}

struct generation {
    char *text; /* what was shown, for --json */
    size_t len, cap;
    size_t prompt_tokens, tokens;
    const char *finish; /* "stop" or "length" */
    int64_t prompt_ns, gen_ns; /* nanoseconds: a tiny model's whole answer may take
                                  less than a millisecond */
};

static int emit(struct generation *g, bool json, const char *text, size_t n)
{
    if (n == 0)
        return 0;
    if (!json) {
        fwrite(text, 1, n, stdout);
        fflush(stdout);
        return 0;
    }
    if (g->len + n + 1 > g->cap) {
        size_t cap = (g->len + n + 1) * 2;
        char *grown = mlx_realloc(g->text, cap);
        if (grown == NULL)
            return MLX_ENOMEM;
        g->text = grown;
        g->cap = cap;
    }
    memcpy(g->text + g->len, text, n);
    g->len += n;
    g->text[g->len] = '\0';
    return 0;
}

static int generate(engine_model *m, const struct run_opts *o, const int32_t *ids,
                    size_t n_ids, struct generation *g, mlx_err *err)
{
    engine_seq *seq = NULL;
    engine_sampler *smp = NULL;
    engine_stop *stop = NULL;
    engine_sampling params = sampling_of(o);
    const engine_info *info = engine_model_info(m);
    char piece[ENGINE_MAX_PIECE], shown[ENGINE_MAX_PIECE + 1024];
    int rc = engine_sampler_new(&params, info->n_vocab, &smp, err);
    if (rc == 0)
        rc = engine_stop_new((const char *const *)o->stops.items, o->stops.n, &stop, err);
    if (rc == 0)
        rc = engine_seq_new(m, &seq, err);
    int64_t t0 = mlx_time_mono_ns();
    if (rc == 0)
        rc = engine_seq_feed(seq, ids, n_ids, err);
    g->prompt_tokens = n_ids;
    g->prompt_ns = mlx_time_mono_ns() - t0;
    g->finish = "length";
    for (size_t i = 0; i < n_ids && rc == 0; i++)
        engine_sampler_accept(smp, ids[i]);
    engine_decoder dec;
    engine_decoder_init(&dec);
    dec.started = true; /* the prompt came first: a leading space is a real one */
    t0 = mlx_time_mono_ns();
    bool stopped = false;
    while (rc == 0 && !stopped &&
           (o->n_predict < 0 || g->tokens < (size_t)o->n_predict) &&
           engine_seq_len(seq) < info->n_ctx) {
        int32_t id = engine_sampler_sample(smp, engine_seq_logits(seq), NULL);
        if (engine_is_eog(m, id)) {
            g->finish = "stop";
            break;
        }
        g->tokens++;
        size_t n = 0, n_shown = 0;
        rc = engine_decoder_push(m, &dec, id, piece, sizeof piece, &n, err);
        if (rc == 0 && engine_stop_push(stop, piece, n, shown, &n_shown)) {
            g->finish = "stop";
            stopped = true;
        }
        if (rc == 0)
            rc = emit(g, o->json, shown, n_shown);
        if (rc == 0 && !stopped && engine_seq_len(seq) < info->n_ctx)
            rc = engine_seq_feed(seq, &id, 1, err);
    }
    if (rc == 0 && !stopped) {
        size_t n = engine_decoder_flush(&dec, piece, sizeof piece), n_shown = 0;
        engine_stop_push(stop, piece, n, shown, &n_shown);
        rc = emit(g, o->json, shown, n_shown);
        if (rc == 0)
            rc = emit(g, o->json, shown, engine_stop_flush(stop, shown));
    }
    g->gen_ns = mlx_time_mono_ns() - t0;
    if (rc == MLX_ENOMEM)
        mlx_err_set(err, rc, "out of memory");
    engine_seq_free(seq);
    engine_sampler_free(smp);
    engine_stop_free(stop);
    return rc;
}

static double per_second(size_t n, int64_t ns)
{
    return ns > 0 ? (double)n * 1e9 / (double)ns : 0;
}

static double ms_of(int64_t ns)
{
    return (double)ns / 1e6;
}

static int report(const struct run_opts *o, const char *model, const struct generation *g,
                  int64_t load_ns, mlx_err *err)
{
    if (!o->json) {
        fprintf(stderr,
                "\n%s: loaded in %.0f ms; prompt %zu tokens (%.1f tokens/s); generated "
                "%zu tokens (%.1f tokens/s)\n",
                model, ms_of(load_ns), g->prompt_tokens,
                per_second(g->prompt_tokens, g->prompt_ns), g->tokens,
                per_second(g->tokens, g->gen_ns));
        return 0;
    }
    json_t *v = json_pack(
        "{s:s, s:s, s:s, s:I, s:I, s:{s:f, s:f, s:f, s:f, s:f}}", "model", model, "text",
        g->text != NULL ? g->text : "", "finish_reason", g->finish, "prompt_tokens",
        (json_int_t)g->prompt_tokens, "completion_tokens", (json_int_t)g->tokens,
        "timings", "load_ms", ms_of(load_ns), "prompt_ms", ms_of(g->prompt_ns),
        "generation_ms", ms_of(g->gen_ns), "prompt_tokens_per_s",
        per_second(g->prompt_tokens, g->prompt_ns), "generation_tokens_per_s",
        per_second(g->tokens, g->gen_ns));
    return mlx_json_print(v, err);
}

static int run(const mlx_program *prog, const mlx_cmd *cmd, int argc, char **argv)
{
    struct run_opts o = {0};
    mlx_args args = {0};
    mlx_err err;
    mlx_err_clear(&err);
    char *path = NULL;
    engine_model *m = NULL;
    int32_t *ids = NULL;
    size_t n_ids = 0;
    struct generation g = {0};
    int rc = mlx_cli_load(prog, cmd, argc, argv, &o, &args);
    if (rc != 0 || args.help)
        goto out;
    int64_t t0 = mlx_time_mono_ns();
    engine_opts eo = {.threads = (int)o.threads, .n_ctx = (uint32_t)o.ctx};
    /* Settings are checked before a model of many GB is loaded for nothing. */
    engine_sampling params = sampling_of(&o);
    engine_sampler *check = NULL;
    if ((rc = engine_sampler_new(&params, 1, &check, &err)) != 0)
        rc = mlx_err_prefix(&err, MLX_EUSAGE, "sampling");
    engine_sampler_free(check);
    if (rc == 0 && (rc = cache_locate_model(o.data, args.argv[0], &path, &err)) == 0 &&
        (rc = engine_load(path, &eo, &m, &err)) == 0 &&
        (rc = prompt_ids(m, &o, args.argv[1], &ids, &n_ids, &err)) == 0) {
        int64_t load_ns = mlx_time_mono_ns() - t0;
        rc = generate(m, &o, ids, n_ids, &g, &err);
        if (rc == 0)
            rc = report(&o, args.argv[0], &g, load_ns, &err);
    }
    if (rc != 0)
        mlx_cli_fail(prog, rc, &err);
out:
    mlx_free(g.text);
    mlx_free(ids);
    engine_free(m);
    mlx_free(path);
    mlx_config_free(cmd, &o);
    mlx_config_free_args(&args);
    return rc;
}

const mlx_cmd agent_cmd_run = {
    .name = "run",
    .args = "MODEL PROMPT",
    .summary = "generate text from a prompt with a GGUF model, here and now",
    .about = "MODEL is a GGUF file or the name of a model of the store (see 'cache\n"
             "status'). The text is printed as it is generated; timings go to stderr.\n"
             "--temp 0 is greedy and deterministic; otherwise --seed makes a run\n"
             "repeatable.",
    .opts = run_opts,
    .min_args = 2,
    .max_args = 2,
    .run = run,
};
