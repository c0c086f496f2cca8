/*
 * sampler.c — picking the next token from a model's logits.
 *
 * The steps and their order are those of llama.cpp's default sampler chain,
 * so a request gives the same kind of text here as there:
 *
 *   1. penalties over the last repeat_last_n tokens remembered (sampled or
 *      accepted): a token seen c > 0 times has its logit divided by
 *      repeat_penalty when positive, multiplied when not, and then lowered
 *      by frequency_penalty * c + presence_penalty;
 *   2. top_k: the k highest logits;
 *   3. top_p: the smallest set of most likely tokens whose probability
 *      (softmax of what is left) reaches top_p, at least one;
 *   4. min_p: tokens at least min_p times as likely as the most likely;
 *   5. temperature: logits divided by it; 0 is greedy: the highest
 *      penalized logit, ties to the lower id, no randomness;
 *   6. a draw from the softmax of what is left.
 *
 * Ties between equal logits are broken by the lower id everywhere, so the
 * set each filter keeps and the order candidates are drawn in never depend
 * on how a sort happened to order equal keys.
 *
 * Reproducibility: the sampler owns a xoshiro256** generator seeded through
 * splitmix64 (both written from their published definitions), and the draw
 * is computed in doubles in a fixed order, without contraction into fused
 * multiply-adds (sample.cmake), so a seed and a sequence of logits give the
 * same tokens on every platform.
 *
 * Cost: nothing is allocated after engine_sampler_new, which sizes the
 * scratch for the vocabulary. With top_k set (the default), one pass over
 * the logits keeps the k best in a heap; only those k are sorted. Without
 * it, top_p sorts only as many of the best candidates as it needs, picking
 * them by partial selection in growing rounds. Sorting is a heapsort: qsort
 * may allocate.
 */
#include <assert.h>
#include <float.h>
#include <math.h>
#include <string.h>

#include "agent/engine/engine.h"
#include "common/alloc.h"
#include "common/limits.h"

/* A candidate is one engine_logprob: while the filters run, .logprob holds
 * the token's (penalized) logit. One type lets engine_top_logprobs select
 * straight into the caller's array with the same heap code. */
typedef engine_logprob cand;

/* Set in counts[] while a pass over the history visits a token, so each
 * distinct token is penalized once; the history never holds 2^31 tokens. */
#define SEEN 0x80000000u

struct engine_sampler {
    engine_sampling p;
    uint32_t n_vocab;
    uint64_t rng[4]; /* xoshiro256** state, never all zero */
    cand *cands;     /* (n_vocab) scratch for the candidates */
    /* The penalty history; NULL when no penalty is active. */
    int32_t *ring;    /* (repeat_last_n) the last tokens, a ring once full */
    uint32_t *counts; /* (n_vocab) how often each token occurs in ring */
    cand *pen;        /* (min(repeat_last_n, n_vocab)) this call's penalized logits */
    uint32_t ring_len, ring_head;
};

engine_sampling engine_sampling_defaults(void)
{
    return (engine_sampling){
        .temperature = 0.8f,
        .top_k = 40,
        .top_p = 0.95f,
        .min_p = 0.05f,
        .repeat_penalty = 1.0f,
        .repeat_last_n = 64,
        .presence_penalty = 0.0f,
        .frequency_penalty = 0.0f,
        .seed = 0,
    };
}

/* ---- random numbers ----------------------------------------------------- */

static uint64_t splitmix64(uint64_t *x)
{
    uint64_t z = (*x += 0x9e3779b97f4a7c15u);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9u;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebu;
    return z ^ (z >> 31);
}

static uint64_t rotl(uint64_t x, int k)
{
    return (x << k) | (x >> (64 - k));
}

static uint64_t xoshiro_next(uint64_t s[4])
{
    uint64_t result = rotl(s[1] * 5, 7) * 9;
    uint64_t t = s[1] << 17;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rotl(s[3], 45);
    return result;
}

/* Uniform on [0, 1) with 53 random bits: exact in a double everywhere. */
static double next_unit(uint64_t s[4])
{
    return (double)(xoshiro_next(s) >> 11) * 0x1.0p-53;
}

/* ---- candidates --------------------------------------------------------- */

/* The total order every filter uses: higher logit, then lower id. */
static bool better(cand a, cand b)
{
    return a.logprob > b.logprob || (a.logprob == b.logprob && a.id < b.id);
}

/* A NaN logit compares false with everything, which would break the total
 * order; it is taken as impossible. */
static float sane(float l)
{
    return l == l ? l : -INFINITY;
}

/* Min-heap by better(): h[0] is the worst of the kept candidates. */
static void sift_down(cand *h, size_t n, size_t i)
{
    for (;;) {
        size_t worst = i, l = 2 * i + 1, r = l + 1;
        if (l < n && better(h[worst], h[l]))
            worst = l;
        if (r < n && better(h[worst], h[r]))
            worst = r;
        if (worst == i)
            return;
        cand t = h[i];
        h[i] = h[worst];
        h[worst] = t;
        i = worst;
    }
}

static void sift_up(cand *h, size_t i)
{
    while (i > 0) {
        size_t parent = (i - 1) / 2;
        if (!better(h[parent], h[i]))
            return;
        cand t = h[i];
        h[i] = h[parent];
        h[parent] = t;
        i = parent;
    }
}

/* Keeps c among the k best of the heap h (*n entries, at most k). */
static void heap_offer(cand *h, size_t *n, size_t k, cand c)
{
    if (*n < k) {
        h[*n] = c;
        sift_up(h, (*n)++);
    } else if (better(c, h[0])) {
        h[0] = c;
        sift_down(h, k, 0);
    }
}

static void swap(cand *c, size_t i, size_t j)
{
    cand t = c[i];
    c[i] = c[j];
    c[j] = t;
}

static void heapify(cand *h, size_t n)
{
    for (size_t i = n / 2; i-- > 0;)
        sift_down(h, n, i);
}

/* Turns the heap h[0, n) into a list sorted best first, in place (qsort
 * may allocate): the worst left goes last, each time. */
static void sort_heap(cand *h, size_t n)
{
    for (size_t end = n; end > 1; end--) {
        swap(h, 0, end - 1);
        sift_down(h, end - 1, 0);
    }
}

/* Rearranges c[0, n) so that c[0, m) holds the m best (in no particular
 * order): quickselect with a median-of-three pivot, insertion sort for
 * short ranges. Keys are distinct (ids differ), so no three-way split is
 * needed. */
static void select_best(cand *c, size_t n, size_t m)
{
    size_t lo = 0, hi = n;
    while (hi - lo > 16) {
        size_t mid = lo + (hi - lo) / 2, last = hi - 1;
        if (better(c[mid], c[lo]))
            swap(c, mid, lo);
        if (better(c[last], c[lo]))
            swap(c, last, lo);
        if (better(c[last], c[mid]))
            swap(c, last, mid);
        swap(c, mid, last); /* the median is the pivot, parked at the end */
        cand pivot = c[last];
        size_t store = lo;
        for (size_t i = lo; i < last; i++)
            if (better(c[i], pivot))
                swap(c, i, store++);
        swap(c, store, last);
        /* c[lo, store) beat the pivot, now at store; the rest lose to it. */
        if (m <= store)
            hi = store;
        else if (m > store + 1)
            lo = store + 1;
        else
            return;
    }
    for (size_t i = lo + 1; i < hi; i++)
        for (size_t j = i; j > lo && better(c[j], c[j - 1]); j--)
            swap(c, j, j - 1);
}

/* ---- penalties ---------------------------------------------------------- */

/* Writes the penalized logit of each distinct token in the history to
 * s->pen; returns how many. */
static size_t penalize(engine_sampler *s, const float *logits)
{
    if (s->counts == NULL)
        return 0;
    const float rp = s->p.repeat_penalty;
    size_t n = 0;
    for (uint32_t i = 0; i < s->ring_len; i++) {
        int32_t t = s->ring[i];
        uint32_t c = s->counts[t];
        if (c & SEEN)
            continue;
        s->counts[t] = c | SEEN;
        float l = sane(logits[t]);
        l = l <= 0 ? l * rp : l / rp;
        l -= (float)c * s->p.frequency_penalty + s->p.presence_penalty;
        s->pen[n++] = (cand){.id = t, .logprob = l};
    }
    for (size_t i = 0; i < n; i++)
        s->counts[s->pen[i].id] &= ~SEEN;
    return n;
}

/* True when token i's logit is replaced by an entry of s->pen. */
static bool penalized(const engine_sampler *s, uint32_t i)
{
    return s->counts != NULL && s->counts[i] != 0;
}

static void remember(engine_sampler *s, int32_t id)
{
    if (s->counts == NULL || id < 0 || (uint32_t)id >= s->n_vocab)
        return;
    uint32_t cap = (uint32_t)s->p.repeat_last_n;
    if (s->ring_len < cap) {
        s->ring[s->ring_len++] = id;
    } else {
        s->counts[s->ring[s->ring_head]]--;
        s->ring[s->ring_head] = id;
        s->ring_head = (s->ring_head + 1) % cap;
    }
    s->counts[id]++;
}

/* ---- the steps ---------------------------------------------------------- */

/* Scans look at LANES logits at a time and branch once, unless one of them
 * beats the best so far, which soon becomes rare: one running maximum
 * updated per token would make every comparison wait for the one before
 * (a chain of conditional moves), several times slower on 128k logits. */
#define LANES 8

static bool any_above(const float *l, float floor)
{
    bool any = false;
    for (int j = 0; j < LANES; j++)
        any |= l[j] > floor;
    return any;
}

static int32_t pick_greedy(const engine_sampler *s, const float *logits, size_t npen)
{
    cand best = {.id = -1, .logprob = -INFINITY};
    for (uint32_t i = 0; i < s->n_vocab; i++) {
        if (i % LANES == 0 && i + LANES <= s->n_vocab &&
            !any_above(logits + i, best.logprob)) {
            i += LANES - 1;
            continue;
        }
        if (logits[i] > best.logprob && !penalized(s, i))
            best = (cand){.id = (int32_t)i, .logprob = logits[i]};
    }
    for (size_t k = 0; k < npen; k++)
        if (best.id < 0 || better(s->pen[k], best))
            best = s->pen[k];
    /* Every logit -inf or NaN: any choice is as good; keep it fixed. */
    return best.id < 0 ? 0 : best.id;
}

/* The k best penalized logits, best first, in s->cands; one pass over the
 * logits, with a heap of k. Returns k. */
static size_t keep_top_k(engine_sampler *s, const float *logits, size_t npen, size_t k)
{
    cand *h = s->cands;
    size_t n = 0;
    uint32_t i = 0;
    for (; i < s->n_vocab && n < k; i++)
        if (!penalized(s, i))
            heap_offer(h, &n, k, (cand){.id = (int32_t)i, .logprob = sane(logits[i])});
    /* Most tokens stop at this comparison with the worst kept logit, held
     * in a local so the loop does not reload it. An equal logit loses: the
     * kept one has the lower id. NaN fails it too. */
    float floor = n == k ? h[0].logprob : INFINITY;
    while (i < s->n_vocab) {
        if (i + LANES <= s->n_vocab && !any_above(logits + i, floor)) {
            i += LANES;
            continue;
        }
        float l = logits[i];
        if (l > floor && !penalized(s, i)) {
            h[0] = (cand){.id = (int32_t)i, .logprob = l};
            sift_down(h, k, 0);
            floor = h[0].logprob;
        }
        i++;
    }
    for (size_t j = 0; j < npen; j++)
        heap_offer(h, &n, k, s->pen[j]);
    sort_heap(h, n);
    return n;
}

/* Every token, in id order, in s->cands. */
static size_t keep_all(engine_sampler *s, const float *logits, size_t npen)
{
    for (uint32_t i = 0; i < s->n_vocab; i++)
        s->cands[i] = (cand){.id = (int32_t)i, .logprob = sane(logits[i])};
    for (size_t i = 0; i < npen; i++)
        s->cands[s->pen[i].id].logprob = s->pen[i].logprob;
    return s->n_vocab;
}

/* Cuts c[0, n) to the smallest set of best candidates whose probability
 * reaches p, where a candidate's probability is exp(logit - lmax) / z. When
 * not sorted, the best are found and sorted round by round (64, 256, 1024,
 * … more), since a peaked distribution needs only the first few; c[0,
 * result) ends up sorted. */
static size_t cut_top_p(cand *c, size_t n, bool sorted, double lmax, double z, double p)
{
    double cum = 0;
    size_t done = 0, round = 64;
    while (done < n) {
        size_t take = sorted ? n - done : (round < n - done ? round : n - done);
        if (!sorted) {
            select_best(c + done, n - done, take);
            heapify(c + done, take);
            sort_heap(c + done, take);
        }
        for (size_t i = done; i < done + take; i++) {
            cum += exp((double)c[i].logprob - lmax) / z;
            if (cum >= p)
                return i + 1;
        }
        done += take;
        round *= 4;
    }
    return n; /* rounding kept the sum just short of p: keep everything */
}

/* Keeps the candidates with logit >= lmax + log(min_p), in their order. */
static size_t cut_min_p(cand *c, size_t n, double lmax, double min_p)
{
    double floor = lmax + log(min_p);
    size_t kept = 0;
    for (size_t i = 0; i < n; i++)
        if ((double)c[i].logprob >= floor)
            c[kept++] = c[i];
    return kept;
}

static int32_t draw(engine_sampler *s, const cand *c, size_t n, double lmax)
{
    const double t = s->p.temperature;
    double z = 0;
    for (size_t i = 0; i < n; i++)
        z += exp(((double)c[i].logprob - lmax) / t);
    double target = next_unit(s->rng) * z, cum = 0;
    size_t last = 0;
    for (size_t i = 0; i < n; i++) {
        double w = exp(((double)c[i].logprob - lmax) / t);
        if (w <= 0)
            continue;
        cum += w;
        last = i;
        if (target < cum)
            return c[i].id;
    }
    return c[last].id; /* target rounded to the very end of the sum */
}

static int32_t pick_random(engine_sampler *s, const float *logits, size_t npen)
{
    cand *c = s->cands;
    size_t n;
    bool sorted = s->p.top_k > 0 && (uint32_t)s->p.top_k < s->n_vocab;
    if (sorted)
        n = keep_top_k(s, logits, npen, (size_t)s->p.top_k);
    else
        n = keep_all(s, logits, npen);

    size_t best = 0; /* c[0] when sorted */
    if (!sorted)
        for (size_t i = 1; i < n; i++)
            if (better(c[i], c[best]))
                best = i;
    double lmax = c[best].logprob;
    /* -inf everywhere, or a +inf logit: no distribution to draw from; the
     * best candidate is the only sensible pick. */
    if (!isfinite(lmax))
        return c[best].id;

    /* llama.cpp cuts by top_p, then by min_p. Both keep a prefix of the
     * candidates sorted best first, and min_p compares with the best token
     * alone, which top_p always keeps; so cutting by min_p first, then by
     * top_p measured against the probabilities before either cut, keeps the
     * same tokens while sorting only what min_p left. */
    double z = 0;
    if (s->p.top_p < 1.0f)
        for (size_t i = 0; i < n; i++)
            z += exp((double)c[i].logprob - lmax);
    if (s->p.min_p > 0.0f)
        n = cut_min_p(c, n, lmax, s->p.min_p);
    if (s->p.top_p < 1.0f)
        n = cut_top_p(c, n, sorted, lmax, z, s->p.top_p);
    return draw(s, c, n, lmax);
}

/* The highest logit (NaN ignored), kept in LANES running maxima so that
 * no comparison waits for the one before. */
static float max_logit(const float *logits, uint32_t n)
{
    float lane[LANES];
    for (int j = 0; j < LANES; j++)
        lane[j] = -INFINITY;
    uint32_t i = 0;
    for (; i + LANES <= n; i += LANES)
        for (int j = 0; j < LANES; j++)
            if (logits[i + j] > lane[j])
                lane[j] = logits[i + j];
    for (; i < n; i++)
        if (logits[i] > lane[0])
            lane[0] = logits[i];
    for (int j = 1; j < LANES; j++)
        if (lane[j] > lane[0])
            lane[0] = lane[j];
    return lane[0];
}

/* log softmax(logits)[id], with the maximum subtracted and a double sum. */
static float log_softmax_at(const float *logits, uint32_t n, int32_t id)
{
    double m = max_logit(logits, n);
    if (!isfinite(m))
        return sane(logits[id]) == m ? 0.0f : -INFINITY;
    double z = 0;
    for (uint32_t i = 0; i < n; i++)
        z += exp((double)sane(logits[i]) - m);
    return (float)((double)sane(logits[id]) - m - log(z));
}

/* ---- public ------------------------------------------------------------- */

int engine_sampling_check(const engine_sampling *p, mlx_err *err)
{
    if (!(p->temperature >= 0 && p->temperature <= FLT_MAX))
        return mlx_err_set(err, MLX_EINVAL,
                           "temperature must be 0 (greedy) or a positive number, not %g",
                           (double)p->temperature);
    if (p->top_k < 0)
        return mlx_err_set(err, MLX_EINVAL,
                           "top_k must be 0 (off) or a positive count, not %d",
                           (int)p->top_k);
    if (!(p->top_p >= 0 && p->top_p <= 1))
        return mlx_err_set(err, MLX_EINVAL,
                           "top_p must be from 0 (only the most likely token) to 1 (off), "
                           "not %g",
                           (double)p->top_p);
    if (!(p->min_p >= 0 && p->min_p <= 1))
        return mlx_err_set(err, MLX_EINVAL, "min_p must be from 0 (off) to 1, not %g",
                           (double)p->min_p);
    if (!(p->repeat_penalty > 0 && p->repeat_penalty <= FLT_MAX))
        return mlx_err_set(err, MLX_EINVAL,
                           "repeat_penalty must be a positive number (1 is off), not %g",
                           (double)p->repeat_penalty);
    if (p->repeat_last_n < 0 || (uint32_t)p->repeat_last_n > MLX_MAX_REPEAT_LAST_N)
        return mlx_err_set(err, MLX_EINVAL,
                           "repeat_last_n must be from 0 (off) to %u tokens, not %d",
                           MLX_MAX_REPEAT_LAST_N, (int)p->repeat_last_n);
    if (!(fabsf(p->presence_penalty) <= 2))
        return mlx_err_set(err, MLX_EINVAL,
                           "presence_penalty must be from -2 to 2 (0 is off), not %g",
                           (double)p->presence_penalty);
    if (!(fabsf(p->frequency_penalty) <= 2))
        return mlx_err_set(err, MLX_EINVAL,
                           "frequency_penalty must be from -2 to 2 (0 is off), not %g",
                           (double)p->frequency_penalty);
    return 0;
}

int engine_sampler_new(const engine_sampling *p, uint32_t n_vocab, engine_sampler **out,
                       mlx_err *err)
{
    *out = NULL;
    if (n_vocab == 0 || n_vocab > MLX_MAX_SAMPLER_VOCAB)
        return mlx_err_set(err, MLX_EINVAL,
                           "a sampler handles vocabularies of 1 to %u tokens, not %u",
                           MLX_MAX_SAMPLER_VOCAB, n_vocab);
    int rc = engine_sampling_check(p, err);
    if (rc != 0)
        return rc;
    engine_sampler *s = mlx_calloc(1, sizeof *s);
    if (s == NULL)
        return mlx_err_set(err, MLX_ENOMEM, "out of memory for a sampler");
    s->p = *p;
    s->n_vocab = n_vocab;
    uint64_t x = p->seed;
    for (int i = 0; i < 4; i++)
        s->rng[i] = splitmix64(&x);
    s->cands = mlx_calloc(n_vocab, sizeof *s->cands);
    if (s->cands == NULL)
        goto nomem;
    /* llama.cpp, too, counts presence and frequency over the same window
     * as the repeat penalty, so repeat_last_n 0 turns all three off. */
    bool penalties = p->repeat_last_n > 0 &&
                     (p->repeat_penalty != 1.0f || p->presence_penalty != 0.0f ||
                      p->frequency_penalty != 0.0f);
    if (penalties) {
        uint32_t last_n = (uint32_t)p->repeat_last_n;
        s->ring = mlx_calloc(last_n, sizeof *s->ring);
        s->counts = mlx_calloc(n_vocab, sizeof *s->counts);
        s->pen = mlx_calloc(last_n < n_vocab ? last_n : n_vocab, sizeof *s->pen);
        if (s->ring == NULL || s->counts == NULL || s->pen == NULL)
            goto nomem;
    }
    *out = s;
    return 0;
nomem:
    engine_sampler_free(s);
    return mlx_err_set(err, MLX_ENOMEM, "out of memory for a sampler over %u tokens",
                       n_vocab);
}

void engine_sampler_free(engine_sampler *s)
{
    if (s == NULL)
        return;
    mlx_free(s->cands);
    mlx_free(s->ring);
    mlx_free(s->counts);
    mlx_free(s->pen);
    mlx_free(s);
}

int32_t engine_sampler_sample(engine_sampler *s, const float *logits, float *logprob)
{
    assert(s != NULL && logits != NULL);
    size_t npen = penalize(s, logits);
    int32_t id = s->p.temperature == 0.0f ? pick_greedy(s, logits, npen)
                                          : pick_random(s, logits, npen);
    if (logprob != NULL)
        *logprob = log_softmax_at(logits, s->n_vocab, id);
    remember(s, id);
    return id;
}

void engine_sampler_accept(engine_sampler *s, int32_t id)
{
    remember(s, id);
}

size_t engine_top_logprobs(const float *logits, uint32_t n_vocab, size_t k,
                           engine_logprob *out)
{
    if (k > n_vocab)
        k = n_vocab;
    if (k == 0)
        return 0;
    size_t n = 0;
    for (uint32_t i = 0; i < n_vocab; i++) {
        float l = sane(logits[i]);
        if (n < k || l > out[0].logprob)
            heap_offer(out, &n, k, (cand){.id = (int32_t)i, .logprob = l});
    }
    double m = max_logit(logits, n_vocab);
    double lse = m;
    if (isfinite(m)) {
        double z = 0;
        for (uint32_t i = 0; i < n_vocab; i++)
            z += exp((double)sane(logits[i]) - m);
        lse = m + log(z);
    }
    sort_heap(out, n);
    for (size_t i = 0; i < n; i++) {
        double l = out[i].logprob;
        out[i].logprob = isfinite(m) ? (float)(l - lse) : (l == m ? 0.0f : -INFINITY);
    }
    return n;
}
