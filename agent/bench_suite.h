/*
 * bench_suite.h — the fixed prompt suite of `mlx-agent bench MODEL --suite`.
 *
 * bench.c measures the engine alone; the suite measures what a served
 * request sees: ten fixed chat prompts sent one after another through the
 * serving runtime (runtime.h), with the figures of each and their
 * percentiles printed and recorded in the metrics history, where
 * `mlx-agent history` finds them. The prompts are common/suite.h's, which
 * the coordinator's fleet bench runs on every node too. Only bench.c
 * includes this header.
 */
#ifndef MLX_AGENT_BENCH_SUITE_H
#define MLX_AGENT_BENCH_SUITE_H

#include <stdbool.h>
#include <stdint.h>

#include "common/err.h"

typedef struct bench_suite_opts {
    const char *data_dir; /* the store MODEL is found in; metrics.db (borrowed) */
    const char *model;    /* as the user gave it: recorded under this name */
    int32_t gen_tokens;   /* most tokens each prompt generates; 0: 64 */
    int threads;          /* engine threads; 0: one per performance core */
    uint32_t n_ctx;       /* context; 0: the model's, at most 4096 */
    bool json;            /* one JSON object instead of the table */
} bench_suite_opts;

/* Runs the suite and prints it on stdout. A run that cannot be recorded in
 * the history still prints, with a warning on stderr, and returns 0.
 * Fails (nothing printed) when the model cannot be loaded or a prompt
 * fails; err says why. */
int bench_suite_run(const bench_suite_opts *o, mlx_err *err);

#endif
