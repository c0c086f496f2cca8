/*
 * tokenizer_map.c — the tokenizers' containers: hash maps from a string to
 * its index and from a pair of string indices to a BPE merge, the cache of
 * words already tokenized in a call, the growing list of output ids, the
 * scratch arrays, and the merge loops' priority queue.
 *
 * Every lookup of a merge loop lands here (a candidate pair, a finished
 * symbol), so the maps use open addressing with linear probing over a
 * power-of-two table at most half full, and keep the hash beside the index
 * so that most mismatches cost no string comparison.
 */
#include <string.h>

#include "agent/engine/tokenizer_int.h"
#include "common/alloc.h"

/* Reads 8 (or fewer, at the end) bytes and mixes them in with a multiply;
 * keys are short (a token is rarely more than 16 bytes). */
uint32_t tok_hash(const void *data, size_t len)
{
    const uint8_t *p = data;
    uint64_t h = 0x9E3779B97F4A7C15ull ^ (len * 0xFF51AFD7ED558CCDull);
    while (len >= 8) {
        uint64_t v;
        memcpy(&v, p, 8);
        h = (h ^ v) * 0xC4CEB9FE1A85EC53ull;
        h ^= h >> 29;
        p += 8;
        len -= 8;
    }
    if (len > 0) {
        uint64_t v = 0;
        memcpy(&v, p, len);
        h = (h ^ v) * 0xC4CEB9FE1A85EC53ull;
    }
    h ^= h >> 32;
    h *= 0xFF51AFD7ED558CCDull;
    h ^= h >> 29;
    return (uint32_t)h;
}

static uint32_t table_size(uint32_t n_keys)
{
    uint32_t size = 16;
    while (size < 2 * (uint64_t)n_keys)
        size *= 2;
    return size;
}

int tok_strmap_init(tok_strmap *m, uint32_t n_keys)
{
    uint32_t size = table_size(n_keys);
    m->slots = mlx_calloc(size, sizeof *m->slots);
    m->mask = size - 1;
    m->count = 0;
    return m->slots == NULL ? MLX_ENOMEM : 0;
}

int tok_strmap_reserve(tok_strmap *m, uint32_t more)
{
    uint64_t need = (uint64_t)m->count + more;
    if (2 * need <= (uint64_t)m->mask + 1)
        return 0;
    if (need > UINT32_MAX / 4)
        return MLX_ENOMEM;
    uint32_t size = table_size((uint32_t)need * 2); /* grow ahead: amortised */
    uint64_t *slots = mlx_calloc(size, sizeof *slots);
    if (slots == NULL)
        return MLX_ENOMEM;
    /* the hash is kept in each slot, so moving needs no string */
    for (uint32_t i = 0; i <= m->mask; i++) {
        uint64_t s = m->slots[i];
        if (s == 0)
            continue;
        uint32_t j = (uint32_t)(s >> 32) & (size - 1);
        while (slots[j] != 0)
            j = (j + 1) & (size - 1);
        slots[j] = s;
    }
    mlx_free(m->slots);
    m->slots = slots;
    m->mask = size - 1;
    return 0;
}

void tok_strmap_fini(tok_strmap *m)
{
    mlx_free(m->slots);
    m->slots = NULL;
}

int32_t tok_strmap_find(const tok_strmap *m, const tok_strtab *t, const void *key,
                        size_t len)
{
    uint32_t h = tok_hash(key, len);
    for (uint32_t i = h & m->mask;; i = (i + 1) & m->mask) {
        uint64_t s = m->slots[i];
        if (s == 0)
            return -1;
        if ((uint32_t)(s >> 32) != h)
            continue;
        uint32_t idx = (uint32_t)s - 1;
        size_t n;
        const char *str = tok_str(t, idx, &n);
        if (n == len && memcmp(str, key, len) == 0)
            return (int32_t)idx;
    }
}

int32_t tok_strmap_add(tok_strmap *m, const tok_strtab *t, uint32_t idx)
{
    size_t len;
    const char *key = tok_str(t, idx, &len);
    uint32_t h = tok_hash(key, len);
    for (uint32_t i = h & m->mask;; i = (i + 1) & m->mask) {
        uint64_t s = m->slots[i];
        if (s == 0) {
            m->slots[i] = (uint64_t)h << 32 | (idx + 1);
            m->count++;
            return -1;
        }
        if ((uint32_t)(s >> 32) != h)
            continue;
        size_t n;
        const char *str = tok_str(t, (uint32_t)s - 1, &n);
        if (n == len && memcmp(str, key, len) == 0)
            return (int32_t)((uint32_t)s - 1);
    }
}

int tok_pairmap_init(tok_pairmap *m, uint32_t n_keys)
{
    uint32_t size = table_size(n_keys);
    m->slots = mlx_malloc((size_t)size * sizeof *m->slots);
    m->mask = size - 1;
    if (m->slots == NULL)
        return MLX_ENOMEM;
    for (uint32_t i = 0; i < size; i++)
        m->slots[i].key = UINT64_MAX;
    return 0;
}

void tok_pairmap_fini(tok_pairmap *m)
{
    mlx_free(m->slots);
    m->slots = NULL;
}

tok_merge *tok_pairmap_slot(const tok_pairmap *m, int32_t a, int32_t b)
{
    uint64_t key = (uint64_t)(uint32_t)a << 32 | (uint32_t)b;
    uint64_t h = key * 0x9E3779B97F4A7C15ull;
    for (uint32_t i = (uint32_t)(h >> 32) & m->mask;; i = (i + 1) & m->mask) {
        tok_merge *s = &m->slots[i];
        if (s->key == key || s->key == UINT64_MAX)
            return s;
    }
}

int tok_out_push(tok_out *o, int32_t id, mlx_err *err)
{
    if (o->n == o->cap) {
        int rc = tok_work_grow((void **)&o->ids, &o->cap, o->n + 1, sizeof *o->ids, err);
        if (rc != 0)
            return rc;
    }
    o->ids[o->n++] = id;
    return 0;
}

int tok_out_append(tok_out *o, const int32_t *ids, size_t n, mlx_err *err)
{
    int rc = tok_work_grow((void **)&o->ids, &o->cap, o->n + n, sizeof *o->ids, err);
    if (rc != 0)
        return rc;
    memcpy(o->ids + o->n, ids, n * sizeof *ids);
    o->n += n;
    return 0;
}

int tok_cache_init(tok_cache *c, size_t len, mlx_err *err)
{
    memset(c, 0, sizeof *c);
    if (len < 4096)
        return 0;
    /* about one distinct word per 16 bytes of text, and no more than a
     * long book has */
    size_t max = len / 16 < (1u << 16) ? len / 16 : (1u << 16);
    uint32_t size = table_size((uint32_t)max);
    c->slots = mlx_calloc(size, sizeof *c->slots);
    c->e = mlx_malloc(max * sizeof *c->e);
    if (c->slots == NULL || c->e == NULL) {
        mlx_free(c->slots);
        mlx_free(c->e);
        c->slots = NULL;
        return mlx_err_set(err, MLX_ENOMEM, "out of memory while tokenizing");
    }
    c->mask = size - 1;
    c->max = (uint32_t)max;
    return 0;
}

static void cache_fini(tok_cache *c)
{
    mlx_free(c->slots);
    mlx_free(c->e);
    mlx_free(c->keys);
    mlx_free(c->ids);
}

/* The slot of word w: holding it, or the empty one it would go in. */
static uint64_t *cache_slot(const tok_cache *c, const uint8_t *w, size_t n, uint32_t h)
{
    for (uint32_t i = h & c->mask;; i = (i + 1) & c->mask) {
        uint64_t s = c->slots[i];
        if (s == 0)
            return &c->slots[i];
        if ((uint32_t)(s >> 32) != h)
            continue;
        const tok_cache_entry *e = &c->e[(uint32_t)s - 1];
        if (e->key_len == n && memcmp(c->keys + e->key_off, w, n) == 0)
            return &c->slots[i];
    }
}

const int32_t *tok_cache_get(const tok_cache *c, const uint8_t *w, size_t n,
                             size_t *n_ids)
{
    if (c->slots == NULL || n > TOK_CACHE_WORD)
        return NULL;
    uint64_t s = *cache_slot(c, w, n, tok_hash(w, n));
    if (s == 0)
        return NULL;
    const tok_cache_entry *e = &c->e[(uint32_t)s - 1];
    *n_ids = e->n_ids;
    return c->ids + e->ids_off;
}

int tok_cache_put(tok_cache *c, const uint8_t *w, size_t n, const int32_t *ids,
                  size_t n_ids, mlx_err *err)
{
    if (c->slots == NULL || n > TOK_CACHE_WORD || c->n_e == c->max)
        return 0;
    uint32_t h = tok_hash(w, n);
    uint64_t *slot = cache_slot(c, w, n, h);
    if (*slot != 0)
        return 0;
    int rc = tok_work_grow((void **)&c->keys, &c->keys_cap, c->keys_len + n, 1, err);
    if (rc == 0)
        rc = tok_work_grow((void **)&c->ids, &c->ids_cap, c->ids_len + n_ids,
                           sizeof *c->ids, err);
    if (rc != 0)
        return rc;
    memcpy(c->keys + c->keys_len, w, n);
    memcpy(c->ids + c->ids_len, ids, n_ids * sizeof *ids);
    c->e[c->n_e] = (tok_cache_entry){h, (uint32_t)c->keys_len, (uint32_t)n,
                                     (uint32_t)c->ids_len, (uint32_t)n_ids};
    *slot = (uint64_t)h << 32 | (uint32_t)++c->n_e;
    c->keys_len += n;
    c->ids_len += n_ids;
    return 0;
}

void tok_work_fini(tok_work *w)
{
    cache_fini(&w->cache);
    mlx_free(w->sym);
    mlx_free(w->heap);
    mlx_free(w->buf);
    memset(w, 0, sizeof *w);
}

/* Grows *p to hold at least need elements, at least doubling it so that
 * growing one at a time stays linear overall. */
int tok_work_grow(void **p, size_t *cap, size_t need, size_t elem, mlx_err *err)
{
    if (need <= *cap)
        return 0;
    size_t n = *cap < 64 ? 64 : *cap;
    while (n < need)
        n *= 2;
    void *q = n > SIZE_MAX / elem ? NULL : mlx_realloc(*p, n * elem);
    if (q == NULL)
        return mlx_err_set(err, MLX_ENOMEM, "out of memory while tokenizing");
    *p = q;
    *cap = n;
    return 0;
}

int tok_heap_push(tok_work *w, const tok_cand *c, mlx_err *err)
{
    if (w->heap_n == w->heap_cap) {
        int rc = tok_work_grow((void **)&w->heap, &w->heap_cap, w->heap_n + 1,
                               sizeof *w->heap, err);
        if (rc != 0)
            return rc;
    }
    tok_cand *h = w->heap;
    size_t i = w->heap_n++;
    while (i > 0) {
        size_t parent = (i - 1) / 2;
        if (h[parent].key <= c->key)
            break;
        h[i] = h[parent];
        i = parent;
    }
    h[i] = *c;
    return 0;
}

void tok_heap_pop(tok_work *w, tok_cand *out)
{
    tok_cand *h = w->heap;
    *out = h[0];
    tok_cand last = h[--w->heap_n];
    size_t n = w->heap_n, i = 0;
    for (;;) {
        size_t child = 2 * i + 1;
        if (child >= n)
            break;
        if (child + 1 < n && h[child + 1].key < h[child].key)
            child++;
        if (last.key <= h[child].key)
            break;
        h[i] = h[child];
        i = child;
    }
    if (n > 0)
        h[i] = last;
}
