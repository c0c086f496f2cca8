/*
 * forward_paths.c — the forward pass on every kernel path this CPU runs,
 * against the scalar path, for every model in the shared test folder.
 *
 * test_forward checks the scalar and native paths against llama.cpp's
 * numbers; this program carries that to paths the build machine cannot
 * run natively, through equality with the scalar path on the same machine:
 * cross_neon.sh builds it for arm64 and runs it under qemu. It needs no
 * cmocka and no JSON, so it builds from the engine's sources alone.
 *
 * For each model: a prompt fed at once, then greedy steps, on each path;
 * the logits may differ from the scalar path's only by float summation
 * order (the quantized products are the same bits), so the largest
 * difference must stay under 1e-3 of the row's largest logit, and every
 * greedy token must match where the top two are further apart than that.
 *
 *   forward_paths TESTDATA_DIR     exit 0, 1 on a mismatch, 77 without data
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "agent/engine/model.h"

#define STEPS 6

/* How far a path's logits may be from the scalar path's, relative to the
 * row's largest: float sums in another order, through every layer. AVX2
 * stays below 3e-5 on these models (the quantized ones at 0 or 1e-7); an
 * attention score off by 0.2% already shows as 4e-4. */
#define TOLERANCE 1e-4

static const char *const models[] = {
    "stories260K.gguf",  "llama-2-tiny-random.gguf", "syn256.gguf",
    "syn256-f16.gguf",   "syn256-bf16.gguf",         "syn256-q8_0.gguf",
    "syn256-q4_0.gguf",  "syn256-q4_k_m.gguf",       "syn256-q6_k.gguf",
    "syn256-qwen2.gguf", "syn256-qwen2-q4_k_m.gguf",
};

static const int32_t prompt[] = {1, 403, 407, 261, 378, 432, 383, 286, 261, 376, 298};
#define N_PROMPT (sizeof prompt / sizeof prompt[0])

/* The prompt, then STEPS greedy tokens: the logits after each feed, in
 * *out (STEPS + 1 rows of n_vocab; caller frees). */
static int run(const char *path, const kernels *k, float **out, uint32_t *n_vocab)
{
    gguf_file *g;
    engine_model *m;
    mlx_err err;
    mlx_err_clear(&err);
    engine_opts o = {.threads = 2, .n_ctx = 64};
    if (gguf_open(path, &g, &err) != 0 || model_open(g, &o, &m, &err) != 0) {
        fprintf(stderr, "%s: %s\n", path, err.msg);
        return 1;
    }
    m->k = k;
    *n_vocab = m->cfg.n_vocab;
    *out = malloc((STEPS + 1) * (size_t)*n_vocab * sizeof(float));
    engine_seq *s = NULL;
    int rc = *out == NULL || engine_seq_new(m, &s, &err) != 0 ||
             engine_seq_feed(s, prompt, N_PROMPT, &err) != 0;
    for (int step = 0; rc == 0 && step <= STEPS; step++) {
        const float *l = engine_seq_logits(s);
        memcpy(*out + (size_t)step * *n_vocab, l, *n_vocab * sizeof(float));
        int32_t best = 0;
        for (uint32_t i = 1; i < *n_vocab; i++)
            if (l[i] > l[best])
                best = (int32_t)i;
        if (step < STEPS)
            rc = engine_seq_feed(s, &best, 1, &err) != 0;
    }
    if (rc != 0)
        fprintf(stderr, "%s: %s\n", path, err.msg);
    engine_seq_free(s);
    model_close(m);
    gguf_close(g);
    return rc;
}

static uint32_t top(const float *l, uint32_t n, float *margin)
{
    uint32_t a = 0, b = 1;
    if (l[b] > l[a]) {
        a = 1;
        b = 0;
    }
    for (uint32_t i = 2; i < n; i++) {
        if (l[i] > l[a]) {
            b = a;
            a = i;
        } else if (l[i] > l[b]) {
            b = i;
        }
    }
    *margin = l[a] - l[b];
    return a;
}

/* 0 when got stays within tolerance of want at every step; *worst gets
 * the largest difference seen, relative to its row's largest logit. */
static int compare(const char *model, const char *name, const float *want,
                   const float *got, uint32_t n, double *worst)
{
    *worst = 0;
    for (int step = 0; step <= STEPS; step++) {
        const float *w = want + (size_t)step * n, *g = got + (size_t)step * n;
        double big = 0, diff = 0;
        for (uint32_t i = 0; i < n; i++) {
            big = fabs(w[i]) > big ? fabs(w[i]) : big;
            diff = fabs(w[i] - g[i]) > diff ? fabs(w[i] - g[i]) : diff;
        }
        float mw, mg;
        uint32_t tw = top(w, n, &mw), tg = top(g, n, &mg);
        if (diff / big > *worst)
            *worst = diff / big;
        if (diff > TOLERANCE * big) {
            printf("FAIL %s on %s, step %d: logits differ by %g (row max %g)\n", model,
                   name, step, diff, big);
            return 1;
        }
        if (tw != tg && mw > TOLERANCE * big) {
            printf("FAIL %s on %s, step %d: greedy token %u, scalar %u\n", model, name,
                   step, tg, tw);
            return 1;
        }
    }
    return 0;
}

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: forward_paths TESTDATA_DIR\n");
        return 2;
    }
    static const kernel_path paths[] = {KERNEL_AVX2, KERNEL_AVX512, KERNEL_NEON};
    int failures = 0, checked = 0;
    for (size_t i = 0; i < sizeof models / sizeof models[0]; i++) {
        char path[4096];
        snprintf(path, sizeof path, "%s/%s", argv[1], models[i]);
        if (access(path, R_OK) != 0) {
            printf("skipped: %s is absent (the shared test models)\n", path);
            return 77;
        }
        float *want = NULL;
        uint32_t n = 0;
        if (run(path, kernels_for(KERNEL_SCALAR), &want, &n) != 0)
            return 1;
        for (size_t p = 0; p < sizeof paths / sizeof paths[0]; p++) {
            const kernels *k = kernels_for(paths[p]);
            if (k == NULL)
                continue;
            float *got = NULL;
            if (run(path, k, &got, &n) != 0)
                return 1;
            double worst;
            int bad = compare(models[i], k->name, want, got, n, &worst);
            free(got);
            failures += bad;
            checked++;
            if (!bad)
                printf("ok   %-26s %s = scalar over %zu prompt tokens and %d steps "
                       "(within %.1e)\n",
                       models[i], k->name, N_PROMPT, STEPS, worst);
        }
        free(want);
    }
    if (checked == 0)
        printf("only the scalar path runs here: nothing to compare\n");
    return failures == 0 ? 0 : 1;
}
