/*
 * suite.h — the fixed benchmark suite: ten chat prompts and the arithmetic
 * of their figures.
 *
 * Two programs run it: `mlx-agent bench MODEL --suite` through the agent's
 * own runtime, and the coordinator's POST /api/v1/bench on every node of
 * the fleet through the data plane. Both take the prompts, the warm-up, the
 * seed and the definitions of rate and percentile from here, so a
 * node's row in `mlxctl bench` measures the same work as the agent's suite
 * on that machine.
 *
 * Each prompt is one user message in the model's chat format, decoded
 * greedily (seed MLX_SUITE_SEED) up to MLX_SUITE_GEN_TOKENS tokens unless
 * the caller asks for another bound, after one unmeasured warm-up request
 * (MLX_SUITE_WARMUP, one token) that loads the model.
 *
 * Thread safety: everything here is constant or pure.
 */
#ifndef MLX_COMMON_SUITE_H
#define MLX_COMMON_SUITE_H

#include <stddef.h>
#include <stdint.h>

#define MLX_SUITE_PROMPTS    10
#define MLX_SUITE_GEN_TOKENS 64 /* most tokens each prompt generates by default */
/* The largest bound a fleet bench accepts: the suite measures speed, which
 * a few hundred tokens show; more would only hold a node longer, and pass
 * the context agents serve by default (4096). */
#define MLX_SUITE_MAX_GEN_TOKENS 4096
#define MLX_SUITE_SEED           42 /* greedy ignores it; set so no run draws its own */
#define MLX_SUITE_WARMUP         "Hello."

typedef struct mlx_suite_prompt {
    const char *kind; /* one word for tables: "question", "code", … */
    const char *text; /* the user's message */
} mlx_suite_prompt;

/* The prompts, in the order they run. */
extern const mlx_suite_prompt mlx_suite_prompts[MLX_SUITE_PROMPTS];

/* tokens per second over ms; 0 when no time passed. The suite's generation
 * rate counts the tokens after the first over the time after the first
 * token: the first token's time is part of the time to first token, so
 * counting it here would count it twice. */
double mlx_suite_rate(uint64_t tokens, double ms);

/* The tokens a generation rate counts: all but the first. */
uint32_t mlx_suite_after_first(uint32_t completion_tokens);

/* Sorts values[0..n) in ascending order, for mlx_suite_percentile. */
void mlx_suite_sort(double *values, size_t n);

/* Nearest rank over sorted[0..n) (n > 0): the smallest value with at least
 * pct% of the values at or below it, i.e. the ceil(pct/100 * n)-th
 * smallest. Always one of the measured values (no interpolation), so with
 * ten prompts p95 and p99 are both the slowest: ten samples say nothing
 * finer. */
double mlx_suite_percentile(const double *sorted, size_t n, unsigned pct);

#endif
