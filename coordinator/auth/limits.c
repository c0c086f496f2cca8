/*
 * limits.c — per-key token buckets: requests per minute and tokens per minute.
 *
 * Each bucket holds at most one minute of budget (a key idle for a minute
 * may burst its whole limit) and refills continuously at limit/60,000 per
 * millisecond. Levels are kept scaled by 60,000 so a refill of `limit` per
 * millisecond is exact integer arithmetic. A request is admitted only when
 * both buckets hold its cost, and then both pay at once, under one mutex, so
 * concurrent requests can never take more than the budget together.
 *
 * Buckets live in an unordered array searched by name: a coordinator has
 * tens of keys, not thousands, and the search is far cheaper than the
 * SQLite lookup auth_check does for the same request.
 */
#include <stdio.h>
#include <string.h>

#include "common/alloc.h"
#include "coordinator/auth/internal.h"

#define MS_PER_MIN INT64_C(60000)

static auth_bucket *find(auth *a, const char *name)
{
    for (size_t i = 0; i < a->nbuckets; i++) {
        if (strcmp(a->buckets[i].name, name) == 0)
            return &a->buckets[i];
    }
    return NULL;
}

static int64_t min64(int64_t x, int64_t y)
{
    return x < y ? x : y;
}

/* Adds the budget earned since b->last_ms; a clock that went back earns
 * nothing (and does not move last_ms back). */
static void refill(auth_bucket *b, int64_t now_ms)
{
    if (now_ms <= b->last_ms)
        return;
    /* A bucket is full after one minute, so longer gaps add no more; the
     * clamp also keeps elapsed × rate from overflowing. */
    int64_t elapsed = min64(now_ms - b->last_ms, MS_PER_MIN);
    b->req_level = min64(b->req_level + elapsed * b->rpm, b->rpm * MS_PER_MIN);
    b->tok_level = min64(b->tok_level + elapsed * b->tpm, b->tpm * MS_PER_MIN);
    b->last_ms = now_ms;
}

/* Milliseconds until a bucket at level, refilling rate per ms, holds cost. */
static int64_t wait_ms(int64_t level, int64_t cost, uint32_t rate)
{
    if (rate == 0 || level >= cost)
        return 0;
    return (cost - level + rate - 1) / rate;
}

/* Caller holds a->mu. */
static int set_locked(auth *a, const char *name, uint32_t rpm, uint32_t tpm, int64_t now_ms,
                      bool have_now, mlx_err *err)
{
    auth_bucket *b = find(a, name);
    if (b != NULL) {
        b->rpm = rpm;
        b->tpm = tpm;
        b->req_level = min64(b->req_level, rpm * MS_PER_MIN);
        b->tok_level = min64(b->tok_level, tpm * MS_PER_MIN);
        return 0;
    }
    if (a->nbuckets == a->cap) {
        size_t cap = a->cap != 0 ? 2 * a->cap : 16;
        auth_bucket *grown = mlx_realloc(a->buckets, cap * sizeof *grown);
        if (grown == NULL)
            return mlx_err_set(err, MLX_ENOMEM, "out of memory tracking rate limits");
        a->buckets = grown;
        a->cap = cap;
    }
    b = &a->buckets[a->nbuckets++];
    memset(b, 0, sizeof *b);
    snprintf(b->name, sizeof b->name, "%s", name);
    b->rpm = rpm;
    b->tpm = tpm;
    /* A new bucket starts full. */
    b->req_level = rpm * MS_PER_MIN;
    b->tok_level = tpm * MS_PER_MIN;
    b->last_ms = have_now ? now_ms : INT64_MIN;
    return 0;
}

int auth_limits_set(auth *a, const char *name, uint32_t rpm, uint32_t tpm, mlx_err *err)
{
    pthread_mutex_lock(&a->mu);
    int rc = set_locked(a, name, rpm, tpm, 0, false, err);
    pthread_mutex_unlock(&a->mu);
    return rc;
}

void auth_limits_drop(auth *a, const char *name)
{
    pthread_mutex_lock(&a->mu);
    auth_bucket *b = find(a, name);
    if (b != NULL)
        *b = a->buckets[--a->nbuckets];
    pthread_mutex_unlock(&a->mu);
}

void auth_limits_free(auth *a)
{
    mlx_free(a->buckets);
    a->buckets = NULL;
    a->nbuckets = a->cap = 0;
}

int auth_take(auth *a, const char *key_name, int64_t now_ms, uint32_t tokens_estimate,
              uint32_t *retry_after_s, mlx_err *err)
{
    *retry_after_s = 0;
    if (key_name == NULL || key_name[0] == '\0')
        return 0;

    pthread_mutex_lock(&a->mu);
    auth_bucket *b = find(a, key_name);
    pthread_mutex_unlock(&a->mu);
    if (b == NULL) {
        /* Not seen since open (auth_check normally loads it): read the
         * limits outside the lock, SQLite being the slow part. */
        uint32_t rpm, tpm;
        int rc = auth_key_limits(a, key_name, &rpm, &tpm, err);
        if (rc != 0)
            return rc;
        pthread_mutex_lock(&a->mu);
        rc = find(a, key_name) != NULL ? 0
                                       : set_locked(a, key_name, rpm, tpm, now_ms, true, err);
        pthread_mutex_unlock(&a->mu);
        if (rc != 0)
            return rc;
    }

    int rc = 0;
    pthread_mutex_lock(&a->mu);
    b = find(a, key_name);
    if (b == NULL) {
        rc = mlx_err_set(err, MLX_ENOENT, "the key %s was revoked", key_name);
        goto out;
    }
    if (b->last_ms == INT64_MIN)
        b->last_ms = now_ms; /* created full; the first take sets its clock */
    refill(b, now_ms);
    int64_t req_cost = b->rpm != 0 ? MS_PER_MIN : 0;
    /* An estimate over a minute's budget could never fit: it waits for a
     * full bucket instead. */
    int64_t tok_cost =
        b->tpm != 0 ? min64(tokens_estimate, b->tpm) * MS_PER_MIN : 0;
    int64_t wait_req = wait_ms(b->req_level, req_cost, b->rpm);
    int64_t wait_tok = wait_ms(b->tok_level, tok_cost, b->tpm);
    if (wait_req == 0 && wait_tok == 0) {
        b->req_level -= req_cost;
        b->tok_level -= tok_cost;
        goto out;
    }
    int64_t wait = wait_req > wait_tok ? wait_req : wait_tok;
    *retry_after_s = (uint32_t)((wait + 999) / 1000);
    if (wait_req >= wait_tok)
        rc = mlx_err_set(err, MLX_EBUSY,
                         "the key %s is over its limit of %u requests per minute; "
                         "retry in %u s",
                         key_name, b->rpm, *retry_after_s);
    else
        rc = mlx_err_set(err, MLX_EBUSY,
                         "the key %s is over its limit of %u tokens per minute; "
                         "retry in %u s",
                         key_name, b->tpm, *retry_after_s);
out:
    pthread_mutex_unlock(&a->mu);
    return rc;
}

void auth_charge_tokens(auth *a, const char *key_name, uint32_t reserved, uint32_t used,
                        int64_t now_ms)
{
    if (key_name == NULL || key_name[0] == '\0')
        return;
    pthread_mutex_lock(&a->mu);
    auth_bucket *b = find(a, key_name);
    if (b != NULL && b->tpm != 0) {
        if (b->last_ms == INT64_MIN)
            b->last_ms = now_ms;
        refill(b, now_ms);
        /* auth_take charged min(reserved, tpm); give back exactly that. */
        int64_t paid = min64(reserved, b->tpm);
        int64_t cap = b->tpm * MS_PER_MIN;
        int64_t level = b->tok_level + (paid - (int64_t)used) * MS_PER_MIN;
        b->tok_level = level > cap ? cap : level < -cap ? -cap : level;
    }
    pthread_mutex_unlock(&a->mu);
}
