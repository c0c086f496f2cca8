/*
 * synth_cmd.c — `mlx-agent model synth`: the command line of synth.c.
 */
#include <stddef.h>
#include <stdio.h>

#include "agent/engine/synth.h"
#include "common/alloc.h"
#include "common/cli.h"
#include "common/json.h"

struct synth_opts {
    char *out;
    int64_t layers, dim, heads, kv_heads, ff, vocab, ctx, seed;
    char *type;
    bool json;
};

static int check_type(const char *value, mlx_err *err)
{
    ggml_type t;
    return synth_parse_type(value, &t, err) == 0 ? 0 : MLX_EINVAL;
}

#define INT_OPT(name, field, def, metavar, help, min, max)                               \
    {                                                                                    \
        name, 0, MLX_OPT_INT, offsetof(struct synth_opts, field), def, metavar, help,    \
            min, max                                                                     \
    }

static const mlx_opt synth_opts[] = {
    {"out", 'o', MLX_OPT_PATH, offsetof(struct synth_opts, out), NULL, "FILE",
     "the GGUF file to write (replaced if it exists)"},
    INT_OPT("layers", layers, "2", "N", "transformer blocks", 1, SYNTH_MAX_LAYERS),
    INT_OPT("dim", dim, "128", "N", "embedding size", 2, SYNTH_MAX_DIM),
    INT_OPT("heads", heads, "4", "N", "attention heads (dim must be divisible by it)", 1,
            SYNTH_MAX_HEADS),
    INT_OPT("kv-heads", kv_heads, "2", "N",
            "key/value heads (heads must be divisible by it)", 1, SYNTH_MAX_HEADS),
    INT_OPT("ff", ff, "384", "N", "feed-forward size", 1, SYNTH_MAX_FF),
    INT_OPT("vocab", vocab, "512", "N", "vocabulary size (at least 259)", SYNTH_MIN_VOCAB,
            SYNTH_MAX_VOCAB),
    INT_OPT("ctx", ctx, "2048", "N", "context length recorded in the model", 1,
            SYNTH_MAX_CTX),
    {"type", 0, MLX_OPT_STR, offsetof(struct synth_opts, type), "f32", "TYPE",
     "type of the weight matrices: f32, f16, bf16, q8_0 or q4_0 (norms stay f32)", 0, 0,
     check_type},
    INT_OPT("seed", seed, "42", "N", "seed of the weights: same flags, same file", 0,
            INT64_MAX),
    {"json", 0, MLX_OPT_BOOL, offsetof(struct synth_opts, json), "false", NULL,
     "print one JSON object"},
    {NULL},
};

static int print_json(const char *path, const synth_config *c, const synth_stats *st,
                      mlx_err *err)
{
    json_t *v = json_pack("{s:s, s:I, s:I, s:I, s:s, s:i, s:i, s:i, s:i, s:i, s:i, s:i, "
                          "s:I}",
                          "path", path, "bytes", (json_int_t)st->bytes, "params",
                          (json_int_t)st->n_params, "tensors", (json_int_t)st->n_tensors,
                          "type", ggml_type_name(c->type), "layers", (int)c->n_layers,
                          "dim", (int)c->dim, "heads", (int)c->n_heads, "kv_heads",
                          (int)c->n_kv_heads, "ff", (int)c->ff, "vocab", (int)c->vocab,
                          "ctx", (int)c->ctx, "seed", (json_int_t)c->seed);
    return mlx_json_print(v, err);
}

static int synth(const mlx_program *prog, const mlx_cmd *cmd, int argc, char **argv)
{
    struct synth_opts o = {0};
    mlx_args args = {0};
    mlx_err err;
    mlx_err_clear(&err);
    synth_config c;
    synth_stats st;

    int rc = mlx_cli_load(prog, cmd, argc, argv, &o, &args);
    if (rc != 0 || args.help)
        goto out;
    if (o.out == NULL || o.out[0] == '\0') {
        rc = mlx_err_set(&err, MLX_EUSAGE,
                         "--out FILE is required: where to write the "
                         "model");
        goto fail;
    }
    synth_config_default(&c);
    c.n_layers = (uint32_t)o.layers;
    c.dim = (uint32_t)o.dim;
    c.n_heads = (uint32_t)o.heads;
    c.n_kv_heads = (uint32_t)o.kv_heads;
    c.ff = (uint32_t)o.ff;
    c.vocab = (uint32_t)o.vocab;
    c.ctx = (uint32_t)o.ctx;
    c.seed = (uint64_t)o.seed;
    if ((rc = synth_parse_type(o.type, &c.type, &err)) != 0 ||
        (rc = synth_write(&c, o.out, &st, &err)) != 0)
        goto fail;
    if (o.json)
        rc = print_json(o.out, &c, &st, &err);
    else
        printf(
            "wrote %s: %u layers, dim %u, %s, %llu tensors, %llu parameters, %.1f MB\n",
            o.out, c.n_layers, c.dim, ggml_type_name(c.type),
            (unsigned long long)st.n_tensors, (unsigned long long)st.n_params,
            (double)st.bytes / 1e6);
    if (rc == 0)
        goto out;
fail:
    mlx_cli_fail(prog, rc, &err);
out:
    mlx_config_free(cmd, &o);
    mlx_config_free_args(&args);
    return rc;
}

const mlx_cmd engine_cmd_synth = {
    .name = "model synth",
    .summary = "write a synthetic llama model (deterministic random weights)",
    .about =
        "Writes a llama-architecture GGUF file with pseudo-random weights and a small\n"
        "SentencePiece-style vocabulary, for tests, demos and benchmarks. The same\n"
        "flags and seed always give the same bytes. Weights are made a row at a time\n"
        "as the file is written, so memory stays small whatever the model's size.\n"
        "A model of about 1 GB: --layers 22 --dim 2048 --heads 32 --kv-heads 4\n"
        "--ff 5632 --vocab 32000 --type q8_0.",
    .opts = synth_opts,
    .run = synth,
};
