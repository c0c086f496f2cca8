/*
 * test_engine_sampler.c — agent/engine's sampler: greedy choice and its ties;
 * reproducibility from a seed (and a known answer, so another platform
 * that draws differently fails here); the empirical distribution against
 * softmax(logits / T) by a chi-square test; every token drawn under
 * top_k/top_p/min_p lies in the set a reference written here from the
 * definitions allows, over every parameter combination on small
 * vocabularies, and every likely allowed token is drawn; penalties, by
 * hand-worked cases and against a reference keeping its own history;
 * logprobs against a plain double log-softmax; engine_top_logprobs;
 * refusals; every allocation of a new sampler failing in turn; and a
 * 128k-vocabulary draw that allocates nothing.
 */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "agent/engine/engine.h"
#include "common/alloc.h"

#define MAXV 64

static uint64_t rng = 0x9e3779b97f4a7c15u;

static uint32_t next_u32(void)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return (uint32_t)(rng >> 16);
}

/* Uniform on [lo, hi). */
static float next_float(float lo, float hi)
{
    return lo + (hi - lo) * (float)((double)next_u32() / 4294967296.0);
}

/* Every filter and penalty off: a plain draw from softmax(logits / t). */
static engine_sampling plain(float t, uint64_t seed)
{
    return (engine_sampling){.temperature = t,
                             .top_k = 0,
                             .top_p = 1.0f,
                             .min_p = 0.0f,
                             .repeat_penalty = 1.0f,
                             .repeat_last_n = 0,
                             .seed = seed};
}

static engine_sampler *new_sampler(engine_sampling p, uint32_t n_vocab)
{
    engine_sampler *s = NULL;
    mlx_err err;
    mlx_err_clear(&err);
    if (engine_sampler_new(&p, n_vocab, &s, &err) != 0)
        fail_msg("engine_sampler_new: %s", err.msg);
    return s;
}

/* ---- a reference written from the definitions --------------------------- */

/* What the penalties make of one logit, seen c times in the window; in
 * float, as llama.cpp computes it. */
static float ref_penalize(float l, int c, const engine_sampling *p)
{
    if (c == 0)
        return l;
    l = l <= 0 ? l * p->repeat_penalty : l / p->repeat_penalty;
    return l - ((float)c * p->frequency_penalty + p->presence_penalty);
}

/* ids sorted by logit, highest first, ties to the lower id */
static void ref_order(const float *l, int n, int *order)
{
    for (int i = 0; i < n; i++)
        order[i] = i;
    for (int i = 1; i < n; i++)
        for (int j = i; j > 0; j--) {
            int a = order[j - 1], b = order[j];
            if (l[b] > l[a] || (l[b] == l[a] && b < a)) {
                order[j - 1] = b;
                order[j] = a;
            }
        }
}

/* The tokens the chain may return for logits l: top_k, then top_p over the
 * softmax of what top_k kept, then min_p against the best. */
static void ref_allowed(const float *l, int n, const engine_sampling *p, bool *allowed)
{
    int order[MAXV];
    ref_order(l, n, order);
    int m = n;
    if (p->top_k > 0 && p->top_k < n)
        m = p->top_k;
    double mx = l[order[0]];
    if (p->top_p < 1.0f) {
        double z = 0, cum = 0;
        for (int i = 0; i < m; i++)
            z += exp((double)l[order[i]] - mx);
        for (int i = 0; i < m; i++) {
            cum += exp((double)l[order[i]] - mx) / z;
            if (cum >= p->top_p) {
                m = i + 1;
                break;
            }
        }
    }
    for (int i = 0; i < n; i++)
        allowed[i] = false;
    for (int i = 0; i < m; i++)
        if (p->min_p == 0.0f || (double)l[order[i]] >= mx + log(p->min_p))
            allowed[order[i]] = true;
}

/* The chance of each allowed token at temperature t. */
static void ref_probs(const float *l, int n, const bool *allowed, float t, double *pr)
{
    double mx = -INFINITY, z = 0;
    for (int i = 0; i < n; i++)
        if (allowed[i] && l[i] > mx)
            mx = l[i];
    for (int i = 0; i < n; i++) {
        pr[i] = allowed[i] ? exp(((double)l[i] - mx) / t) : 0;
        z += pr[i];
    }
    for (int i = 0; i < n; i++)
        pr[i] /= z;
}

static int ref_argmax(const float *l, int n)
{
    int order[MAXV];
    ref_order(l, n, order);
    return order[0];
}

/* ---- greedy ------------------------------------------------------------- */

static void test_greedy_argmax_and_ties(void **state)
{
    engine_sampler *s = new_sampler(plain(0, 1), 5);
    const float ties[5] = {1, 3, 3, 2, 3};
    for (int i = 0; i < 3; i++)
        assert_int_equal(engine_sampler_sample(s, ties, NULL), 1);
    const float last[5] = {-1, -2, -3, -4, 0};
    assert_int_equal(engine_sampler_sample(s, last, NULL), 4);
    const float masked[5] = {-INFINITY, -INFINITY, -5, NAN, -INFINITY};
    assert_int_equal(engine_sampler_sample(s, masked, NULL), 2);
    engine_sampler_free(s);

    for (int n = 1; n <= MAXV; n++) { /* whole blocks of eight and a tail */
        s = new_sampler(plain(0, 1), (uint32_t)n);
        for (int round = 0; round < 500; round++) {
            float l[MAXV];
            for (int i = 0; i < n; i++)
                l[i] = (float)(next_u32() % 5); /* many ties */
            assert_int_equal(engine_sampler_sample(s, l, NULL), ref_argmax(l, n));
        }
        engine_sampler_free(s);
    }
}

/* ---- seeds -------------------------------------------------------------- */

static void run(engine_sampling p, uint32_t n_vocab, int steps, int32_t *out)
{
    engine_sampler *s = new_sampler(p, n_vocab);
    float *l = malloc(n_vocab * sizeof *l);
    uint64_t saved = rng;
    rng = 0x2545f4914f6cdd1du; /* the same logits for every run */
    for (int t = 0; t < steps; t++) {
        for (uint32_t i = 0; i < n_vocab; i++)
            l[i] = next_float(-4, 4);
        out[t] = engine_sampler_sample(s, l, NULL);
    }
    rng = saved;
    free(l);
    engine_sampler_free(s);
}

static void test_same_seed_same_tokens(void **state)
{
    enum { STEPS = 5000, V = 300 };
    static int32_t a[STEPS], b[STEPS], c[STEPS];
    engine_sampling p = engine_sampling_defaults();
    p.temperature = 1.5f; /* a wide distribution, so seeds matter */
    p.seed = 42;
    run(p, V, STEPS, a);
    run(p, V, STEPS, b);
    assert_memory_equal(a, b, sizeof a);
    p.seed = 43;
    run(p, V, STEPS, c);
    int differ = 0;
    for (int t = 0; t < STEPS; t++)
        differ += a[t] != c[t];
    assert_true(differ > STEPS / 2);

    /* Known answer: xoshiro256** seeded by splitmix64 from 42, doubles
     * throughout, so every platform draws these. */
    p = plain(1.0f, 42);
    run(p, V, 12, a);
    const int32_t want[12] = {35, 108, 196, 283, 293, 212, 210, 254, 251, 172, 200, 112};
    for (int t = 0; t < 12; t++)
        if (a[t] != want[t])
            fail_msg("draw %d gave %d, want %d", t, a[t], want[t]);
}

/* ---- distribution ------------------------------------------------------- */

/* Chi-square of n draws against the reference probabilities; df = number
 * of nonzero cells - 1. The seed is fixed, so the outcome is too; the
 * bound is the 0.1% critical value, so a sampler that is right fails
 * nowhere near it. */
static double chi_square(engine_sampler *s, const float *l, int v, int n,
                         const double *pr)
{
    long count[MAXV] = {0};
    for (int i = 0; i < n; i++) {
        int32_t id = engine_sampler_sample(s, l, NULL);
        assert_true(id >= 0 && id < v);
        assert_true(pr[id] > 0);
        count[id]++;
    }
    double chi = 0;
    for (int i = 0; i < v; i++)
        if (pr[i] > 0)
            chi += pow(count[i] - n * pr[i], 2) / (n * pr[i]);
    return chi;
}

static void test_distribution_matches_softmax(void **state)
{
    /* 0.1% critical values of chi-square for 5, 9 and 2 degrees of freedom */
    const float l6[6] = {1.0f, 0.5f, 0.0f, -0.5f, 2.0f, -1.0f};
    bool all[MAXV];
    for (int i = 0; i < MAXV; i++)
        all[i] = true;
    double pr[MAXV];

    ref_probs(l6, 6, all, 0.7f, pr);
    engine_sampler *s = new_sampler(plain(0.7f, 7), 6);
    double chi = chi_square(s, l6, 6, 100000, pr);
    engine_sampler_free(s);
    if (chi > 20.52)
        fail_msg("T=0.7: chi-square %.2f over 5 degrees of freedom", chi);

    float l10[10];
    for (int i = 0; i < 10; i++)
        l10[i] = next_float(-2, 2);
    ref_probs(l10, 10, all, 1.3f, pr);
    s = new_sampler(plain(1.3f, 8), 10);
    chi = chi_square(s, l10, 10, 100000, pr);
    engine_sampler_free(s);
    if (chi > 27.88)
        fail_msg("T=1.3: chi-square %.2f over 9 degrees of freedom", chi);

    /* top_k 3: the softmax renormalized over the three best */
    engine_sampling p = plain(1.0f, 9);
    p.top_k = 3;
    bool top3[MAXV];
    ref_allowed(l6, 6, &p, top3);
    ref_probs(l6, 6, top3, 1.0f, pr);
    s = new_sampler(p, 6);
    chi = chi_square(s, l6, 6, 100000, pr);
    engine_sampler_free(s);
    if (chi > 13.82)
        fail_msg("top_k 3: chi-square %.2f over 2 degrees of freedom", chi);
}

/* ---- filters ------------------------------------------------------------ */

static void test_filters_never_leave_the_allowed_set(void **state)
{
    static const float values[] = {-2.0f, -1.0f, 0.0f, 0.5f, 1.0f, 2.0f};
    static const float top_ps[] = {0.2f, 0.5f, 0.8f, 0.95f, 1.0f};
    static const float min_ps[] = {0.0f, 0.1f, 0.5f, 1.0f};
    uint64_t seed = 1;
    for (int n = 1; n <= 6; n++) {
        for (int trial = 0; trial < 8; trial++) {
            float l[MAXV];
            for (int i = 0; i < n; i++)
                l[i] = values[next_u32() % 6];
            for (int k = 0; k <= n + 1; k++)
                for (size_t a = 0; a < sizeof top_ps / sizeof *top_ps; a++)
                    for (size_t b = 0; b < sizeof min_ps / sizeof *min_ps; b++) {
                        engine_sampling p = plain(1.0f, seed++);
                        p.top_k = k;
                        p.top_p = top_ps[a];
                        p.min_p = min_ps[b];
                        bool allowed[MAXV];
                        double pr[MAXV];
                        ref_allowed(l, n, &p, allowed);
                        ref_probs(l, n, allowed, 1.0f, pr);
                        engine_sampler *s = new_sampler(p, (uint32_t)n);
                        bool seen[MAXV] = {false};
                        for (int d = 0; d < 1000; d++) {
                            int32_t id = engine_sampler_sample(s, l, NULL);
                            if (id < 0 || id >= n || !allowed[id])
                                fail_msg("n=%d k=%d p=%g min_p=%g drew %d", n, k,
                                         (double)p.top_p, (double)p.min_p, id);
                            seen[id] = true;
                        }
                        /* A token with 2% or more is missed in 1000 draws
                         * with probability below 2e-9. */
                        for (int i = 0; i < n; i++)
                            if (pr[i] >= 0.02 && !seen[i])
                                fail_msg("n=%d k=%d p=%g min_p=%g never drew %d", n, k,
                                         (double)p.top_p, (double)p.min_p, i);
                        engine_sampler_free(s);
                    }
        }
    }
}

/* Vocabularies past one block of the scans, ties everywhere. */
static void test_filters_on_larger_vocabularies(void **state)
{
    static const float values[] = {-2.0f, 0.0f, 1.0f, 1.5f, 3.0f};
    static const int ks[] = {1, 5, 17, 39, 0};
    static const float top_ps[] = {0.3f, 0.9f, 1.0f};
    static const float min_ps[] = {0.0f, 0.2f};
    uint64_t seed = 100;
    for (int n = 9; n <= MAXV; n += 11) {
        float l[MAXV];
        for (int i = 0; i < n; i++)
            l[i] = values[next_u32() % 5];
        for (size_t a = 0; a < 5; a++)
            for (size_t b = 0; b < 3; b++)
                for (size_t c = 0; c < 2; c++) {
                    engine_sampling p = plain(1.0f, seed++);
                    p.top_k = ks[a];
                    p.top_p = top_ps[b];
                    p.min_p = min_ps[c];
                    bool allowed[MAXV];
                    ref_allowed(l, n, &p, allowed);
                    engine_sampler *s = new_sampler(p, (uint32_t)n);
                    for (int d = 0; d < 300; d++) {
                        int32_t id = engine_sampler_sample(s, l, NULL);
                        if (id < 0 || id >= n || !allowed[id])
                            fail_msg("n=%d k=%d p=%g min_p=%g drew %d", n, p.top_k,
                                     (double)p.top_p, (double)p.min_p, id);
                    }
                    engine_sampler_free(s);
                }
    }
}

/* ---- penalties ---------------------------------------------------------- */

static int greedy_after(engine_sampling p, const float *l, int n, const int32_t *seen,
                        int n_seen)
{
    p.temperature = 0;
    engine_sampler *s = new_sampler(p, (uint32_t)n);
    for (int i = 0; i < n_seen; i++)
        engine_sampler_accept(s, seen[i]);
    int id = engine_sampler_sample(s, l, NULL);
    engine_sampler_free(s);
    return id;
}

/* The tokens drawn by 300 fresh samplers (seeds 1 to 300) that have each
 * accepted the same history: a bit per token. */
static unsigned drawn_after(engine_sampling p, const float *l, int n, const int32_t *seen,
                            int n_seen)
{
    unsigned mask = 0;
    for (uint64_t seed = 1; seed <= 300; seed++) {
        p.seed = seed;
        engine_sampler *s = new_sampler(p, (uint32_t)n);
        for (int i = 0; i < n_seen; i++)
            engine_sampler_accept(s, seen[i]);
        mask |= 1u << engine_sampler_sample(s, l, NULL);
        engine_sampler_free(s);
    }
    return mask;
}

static void test_penalties_by_hand(void **state)
{
    engine_sampling p = plain(0, 1);
    p.repeat_last_n = 64;
    p.repeat_penalty = 1.1f;
    /* A positive logit is divided: 2.0 / 1.1 = 1.82 < 1.9. */
    const float pos[3] = {2.0f, 1.9f, -5};
    assert_int_equal(greedy_after(p, pos, 3, (int32_t[]){2}, 1), 0);
    assert_int_equal(greedy_after(p, pos, 3, (int32_t[]){0}, 1), 1);
    /* A negative one multiplied: -1.0 * 1.1 = -1.1 < -1.05. */
    const float neg[2] = {-1.0f, -1.05f};
    assert_int_equal(greedy_after(p, neg, 2, (int32_t[]){0}, 1), 1);
    /* Counts do not matter to the repeat penalty. */
    assert_int_equal(greedy_after(p, pos, 3, (int32_t[]){0, 0, 0, 0}, 4), 1);
    /* Only the last repeat_last_n tokens count. */
    p.repeat_last_n = 2;
    assert_int_equal(greedy_after(p, pos, 3, (int32_t[]){0, 2, 2}, 3), 0);
    assert_int_equal(greedy_after(p, pos, 3, (int32_t[]){2, 0, 2}, 3), 1);
    /* repeat_last_n 0 turns every penalty off. */
    p.repeat_last_n = 0;
    p.presence_penalty = 2;
    assert_int_equal(greedy_after(p, pos, 3, (int32_t[]){0}, 1), 0);

    /* presence: once, whatever the count; frequency: per occurrence */
    p = plain(0, 1);
    p.repeat_last_n = 64;
    p.presence_penalty = 0.6f;
    const float two[2] = {1.0f, 0.5f};
    assert_int_equal(greedy_after(p, two, 2, (int32_t[]){0}, 1), 1);
    p.presence_penalty = 0.4f;
    assert_int_equal(greedy_after(p, two, 2, (int32_t[]){0, 0, 0}, 3), 0);
    p.presence_penalty = 0;
    p.frequency_penalty = 0.3f;
    assert_int_equal(greedy_after(p, two, 2, (int32_t[]){0}, 1), 0);
    assert_int_equal(greedy_after(p, two, 2, (int32_t[]){0, 0}, 2), 1);
    /* A negative presence penalty favours what was said. */
    p.frequency_penalty = 0;
    p.presence_penalty = -0.6f;
    assert_int_equal(greedy_after(p, two, 2, (int32_t[]){1}, 1), 1);

    /* Sampled tokens are remembered as well as accepted ones. */
    p = plain(0, 1);
    p.repeat_last_n = 64;
    p.repeat_penalty = 2;
    engine_sampler *s = new_sampler(p, 3);
    const float three[3] = {1.0f, 0.95f, 0.9f};
    assert_int_equal(engine_sampler_sample(s, three, NULL), 0);
    assert_int_equal(engine_sampler_sample(s, three, NULL), 1);
    assert_int_equal(engine_sampler_sample(s, three, NULL), 2);
    engine_sampler_free(s);

    /* Penalties make tokens possible and impossible under the filters. */
    p = plain(1.0f, 0);
    p.repeat_last_n = 8;
    p.min_p = 0.5f;
    p.presence_penalty = 2;
    /* {2, 1.5, 0} with min_p 0.5: token 1 (e^-0.5 of the best) is in,
     * token 2 (e^-2) out; a presence penalty of 2 on token 0 leaves 0.0,
     * below 1.5 + log 0.5, so only token 1 remains. */
    const float mp[3] = {2.0f, 1.5f, 0.0f};
    assert_int_equal(drawn_after(p, mp, 3, NULL, 0), 0x3);
    assert_int_equal(drawn_after(p, mp, 3, (int32_t[]){0}, 1), 0x2);
    /* a negative presence penalty lifts token 2 to 2.0: all three */
    p.presence_penalty = -2;
    assert_int_equal(drawn_after(p, mp, 3, (int32_t[]){2}, 1), 0x7);
    /* top_k 1 after the repeat penalty: 2.0 / 1.1 falls behind 1.9 */
    p = plain(1.0f, 0);
    p.repeat_last_n = 8;
    p.repeat_penalty = 1.1f;
    p.top_k = 1;
    assert_int_equal(drawn_after(p, pos, 3, NULL, 0), 0x1);
    assert_int_equal(drawn_after(p, pos, 3, (int32_t[]){0}, 1), 0x2);
}

/* The chain against the reference, each keeping its own history, with
 * prompt tokens accepted along the way. */
static void chain_against_reference(float temperature)
{
    static const float values[] = {-3.0f, -1.0f, -0.25f, 0.0f, 0.5f, 1.0f, 1.5f, 3.0f};
    enum { V = 12, LAST_N = 5, STEPS = 4000 };
    engine_sampling p = {.temperature = temperature,
                         .top_k = 6,
                         .top_p = 0.9f,
                         .min_p = 0.1f,
                         .repeat_penalty = 1.3f,
                         .repeat_last_n = LAST_N,
                         .presence_penalty = 0.5f,
                         .frequency_penalty = 0.2f,
                         .seed = 11};
    for (int variant = 0; variant < 3; variant++) {
        if (variant == 1) {
            p.repeat_penalty = 0.8f; /* below 1 raises a repeated token */
            p.presence_penalty = -0.3f;
        } else if (variant == 2) {
            p.top_k = 0; /* the path without top_k */
            p.frequency_penalty = 0.7f;
        }
        engine_sampler *s = new_sampler(p, V);
        int32_t hist[STEPS * 2];
        int n_hist = 0;
        for (int step = 0; step < STEPS; step++) {
            if (next_u32() % 4 == 0) {
                int32_t prompt = (int32_t)(next_u32() % V);
                engine_sampler_accept(s, prompt);
                hist[n_hist++] = prompt;
            }
            float raw[V], pl[V];
            for (int i = 0; i < V; i++)
                raw[i] = values[next_u32() % 8];
            int count[V] = {0};
            for (int i = n_hist > LAST_N ? n_hist - LAST_N : 0; i < n_hist; i++)
                count[hist[i]]++;
            for (int i = 0; i < V; i++)
                pl[i] = ref_penalize(raw[i], count[i], &p);
            int32_t id = engine_sampler_sample(s, raw, NULL);
            if (temperature == 0) {
                if (id != ref_argmax(pl, V))
                    fail_msg("variant %d step %d: greedy %d, want %d", variant, step, id,
                             ref_argmax(pl, V));
            } else {
                bool allowed[MAXV];
                ref_allowed(pl, V, &p, allowed);
                if (id < 0 || id >= V || !allowed[id])
                    fail_msg("variant %d step %d: drew %d outside the allowed set",
                             variant, step, id);
            }
            hist[n_hist++] = id;
        }
        engine_sampler_free(s);
    }
}

static void test_penalties_against_reference(void **state)
{
    chain_against_reference(1.0f);
    chain_against_reference(0.0f);
}

/* ---- logprobs ----------------------------------------------------------- */

static double ref_log_softmax(const float *l, int n, int id)
{
    double m = -INFINITY, z = 0;
    for (int i = 0; i < n; i++)
        m = fmax(m, l[i]);
    for (int i = 0; i < n; i++)
        z += exp((double)l[i] - m);
    return (double)l[id] - m - log(z);
}

static void test_logprob_is_log_softmax_of_raw_logits(void **state)
{
    enum { V = 1000 };
    static float l[V];
    engine_sampling p = engine_sampling_defaults();
    p.repeat_penalty = 1.5f;
    p.presence_penalty = 1;
    p.seed = 3;
    engine_sampler *s = new_sampler(p, V);
    for (int round = 0; round < 300; round++) {
        float scale = round % 3 == 0 ? 60.0f : 8.0f; /* large logits too */
        for (int i = 0; i < V; i++)
            l[i] = next_float(-scale, scale);
        float lp = 1;
        int32_t id = engine_sampler_sample(s, l, &lp);
        double want = ref_log_softmax(l, V, id);
        if (fabs(lp - want) > 3e-7 * (1 + fabs(want)))
            fail_msg("logprob %.9g, want %.9g", (double)lp, want);
        assert_true(lp <= 0);
    }
    engine_sampler_free(s);

    /* greedy reports the same */
    s = new_sampler(plain(0, 1), 4);
    const float four[4] = {0.0f, 1.0f, 2.0f, 3.0f};
    float lp;
    assert_int_equal(engine_sampler_sample(s, four, &lp), 3);
    assert_true(fabs(lp - ref_log_softmax(four, 4, 3)) < 1e-6);
    engine_sampler_free(s);
}

static void test_top_logprobs(void **state)
{
    const float l[6] = {1.0f, 3.0f, 2.0f, 3.0f, -INFINITY, 2.0f};
    engine_logprob out[8];
    assert_int_equal(engine_top_logprobs(l, 6, 0, out), 0);
    assert_int_equal(engine_top_logprobs(l, 6, 4, out), 4);
    const int32_t ids[4] = {1, 3, 2, 5}; /* ties to the lower id */
    for (int i = 0; i < 4; i++) {
        assert_int_equal(out[i].id, ids[i]);
        assert_true(fabs(out[i].logprob - ref_log_softmax(l, 6, ids[i])) < 1e-6);
    }
    /* more asked for than there are tokens */
    assert_int_equal(engine_top_logprobs(l, 6, 8, out), 6);
    assert_int_equal(out[4].id, 0);
    assert_int_equal(out[5].id, 4);
    assert_true(isinf(out[5].logprob) && out[5].logprob < 0);

    enum { V = 5000 };
    static float big[V];
    static engine_logprob top[50];
    for (int i = 0; i < V; i++)
        big[i] = (float)(next_u32() % 200) / 10.0f;
    assert_int_equal(engine_top_logprobs(big, V, 50, top), 50);
    int order[V];
    for (int i = 0; i < V; i++)
        order[i] = i;
    for (int i = 0; i < 50; i++) { /* selection by hand: the i-th best */
        int best = i;
        for (int j = i + 1; j < V; j++)
            if (big[order[j]] > big[order[best]] ||
                (big[order[j]] == big[order[best]] && order[j] < order[best]))
                best = j;
        int t = order[i];
        order[i] = order[best];
        order[best] = t;
        assert_int_equal(top[i].id, order[i]);
        assert_true(fabs(top[i].logprob - ref_log_softmax(big, V, order[i])) < 1e-5);
    }
}

/* ---- refusals ----------------------------------------------------------- */

static void refused(engine_sampling p, uint32_t n_vocab, const char *word)
{
    engine_sampler *s = (engine_sampler *)&p; /* must be reset to NULL */
    mlx_err err;
    mlx_err_clear(&err);
    assert_int_equal(engine_sampler_new(&p, n_vocab, &s, &err), MLX_EINVAL);
    assert_null(s);
    if (strstr(err.msg, word) == NULL)
        fail_msg("the sentence '%s' does not name '%s'", err.msg, word);
}

/* top_p 0 is what OpenAI's clients send for "no sampling": the smallest
 * set reaching probability 0 is the single most likely token. */
static void test_top_p_zero_keeps_only_the_best(void **state)
{
    (void)state;
    const float logits[] = {1.0f, 2.5f, 2.4f, -1.0f, 0.5f};
    engine_sampling p = engine_sampling_defaults();
    p.temperature = 1.0f, p.top_k = 0, p.min_p = 0, p.top_p = 0;
    for (uint64_t seed = 0; seed < 64; seed++) {
        p.seed = seed;
        engine_sampler *s;
        assert_int_equal(engine_sampler_new(&p, 5, &s, NULL), 0);
        assert_int_equal(engine_sampler_sample(s, logits, NULL), 1);
        engine_sampler_free(s);
    }
}

static void test_bad_parameters_refused(void **state)
{
    engine_sampling d = engine_sampling_defaults(), p;
    refused(d, 0, "vocabular");
    refused(d, 262145, "vocabular");
    p = d, p.temperature = -0.5f, refused(p, 10, "temperature");
    p = d, p.temperature = NAN, refused(p, 10, "temperature");
    p = d, p.temperature = INFINITY, refused(p, 10, "temperature");
    p = d, p.top_k = -1, refused(p, 10, "top_k");
    p = d, p.top_p = -0.1f, refused(p, 10, "top_p");
    p = d, p.top_p = 1.01f, refused(p, 10, "top_p");
    p = d, p.top_p = NAN, refused(p, 10, "top_p");
    p = d, p.min_p = -0.1f, refused(p, 10, "min_p");
    p = d, p.min_p = 1.5f, refused(p, 10, "min_p");
    p = d, p.min_p = NAN, refused(p, 10, "min_p");
    p = d, p.repeat_penalty = 0, refused(p, 10, "repeat_penalty");
    p = d, p.repeat_penalty = -1, refused(p, 10, "repeat_penalty");
    p = d, p.repeat_penalty = NAN, refused(p, 10, "repeat_penalty");
    p = d, p.repeat_last_n = -1, refused(p, 10, "repeat_last_n");
    p = d, p.repeat_last_n = (1 << 20) + 1, refused(p, 10, "repeat_last_n");
    p = d, p.presence_penalty = 2.5f, refused(p, 10, "presence_penalty");
    p = d, p.presence_penalty = NAN, refused(p, 10, "presence_penalty");
    p = d, p.frequency_penalty = -2.01f, refused(p, 10, "frequency_penalty");

    /* the edges are fine */
    p = d, p.top_p = 1, p.min_p = 1, p.presence_penalty = -2, p.frequency_penalty = 2;
    p.top_k = 1000, p.repeat_last_n = 1 << 20;
    engine_sampler *s = new_sampler(p, 262144);
    engine_sampler_free(s);
    engine_sampler_free(NULL);

    engine_sampling want = {0.8f, 40, 0.95f, 0.05f, 1.0f, 64, 0, 0, 0};
    assert_memory_equal(&d, &want, sizeof d);
}

static void test_out_of_memory(void **state)
{
    engine_sampling p = engine_sampling_defaults();
    p.repeat_penalty = 1.1f; /* the history too */
    for (long fail = 0;; fail++) {
        engine_sampler *s = (engine_sampler *)&p;
        mlx_err err;
        mlx_err_clear(&err);
        mlx_alloc_fail_after(fail);
        int rc = engine_sampler_new(&p, 1000, &s, &err);
        mlx_alloc_fail_reset();
        if (rc == 0) {
            assert_true(fail >= 5); /* the sampler, scratch, ring, counts, pen */
            engine_sampler_free(s);
            break;
        }
        assert_int_equal(rc, MLX_ENOMEM);
        assert_null(s);
        assert_true(err.msg[0] != '\0');
    }
}

/* ---- cost --------------------------------------------------------------- */

static void test_large_vocabulary_draw_allocates_nothing(void **state)
{
    enum { V = 128256 }; /* Llama 3 */
    float *l = malloc(V * sizeof *l);
    engine_sampling modes[6];
    modes[0] = engine_sampling_defaults(), modes[0].repeat_penalty = 1.1f;
    modes[1] = plain(0, 1), modes[1].repeat_last_n = 64, modes[1].repeat_penalty = 1.1f;
    modes[2] = plain(0.8f, 2), modes[2].top_p = 0.95f; /* top_p without top_k */
    modes[3] = plain(0.8f, 3), modes[3].min_p = 0.05f;
    modes[4] = plain(1.0f, 4);
    modes[5] = plain(0.8f, 5), modes[5].top_p = 0.5f, modes[5].min_p = 0.01f;
    for (int m = 0; m < 6; m++) {
        engine_sampler *s = new_sampler(modes[m], V);
        for (int i = 0; i < 64; i++)
            engine_sampler_accept(s, (int32_t)(next_u32() % V));
        unsigned long failures = mlx_alloc_failures();
        mlx_alloc_fail_after(0);
        for (int step = 0; step < 20; step++) {
            for (int i = 0; i < V; i++)
                l[i] = next_float(-10, 10);
            float lp;
            int32_t id = engine_sampler_sample(s, l, &lp);
            assert_true(id >= 0 && id < V);
            engine_logprob top[20];
            assert_int_equal(engine_top_logprobs(l, V, 20, top), 20);
        }
        mlx_alloc_fail_reset();
        assert_int_equal(mlx_alloc_failures(), failures);
        engine_sampler_free(s);
    }
    free(l);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_greedy_argmax_and_ties),
        cmocka_unit_test(test_same_seed_same_tokens),
        cmocka_unit_test(test_distribution_matches_softmax),
        cmocka_unit_test(test_filters_never_leave_the_allowed_set),
        cmocka_unit_test(test_filters_on_larger_vocabularies),
        cmocka_unit_test(test_penalties_by_hand),
        cmocka_unit_test(test_penalties_against_reference),
        cmocka_unit_test(test_logprob_is_log_softmax_of_raw_logits),
        cmocka_unit_test(test_top_logprobs),
        cmocka_unit_test(test_top_p_zero_keeps_only_the_best),
        cmocka_unit_test(test_bad_parameters_refused),
        cmocka_unit_test(test_out_of_memory),
        cmocka_unit_test(test_large_vocabulary_draw_allocates_nothing),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
