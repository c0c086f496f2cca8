/* link.c — whether a node's socket is connected, from NNG's pipe events,
 * and the exchanges to abort when its connection goes (see internal.h). */
#include <errno.h>
#include <time.h>

#include "common/alloc.h"
#include "coordinator/dataplane/internal.h"

struct dpc_link *dpc_link_new(void)
{
    struct dpc_link *l = mlx_calloc(1, sizeof *l);
    if (l == NULL)
        return NULL;
    pthread_mutex_init(&l->mtx, NULL);
    pthread_condattr_t attr;
    pthread_condattr_init(&attr);
    pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
    pthread_cond_init(&l->changed, &attr);
    pthread_condattr_destroy(&attr);
    return l;
}

void dpc_link_free(struct dpc_link *l)
{
    if (l == NULL)
        return;
    pthread_cond_destroy(&l->changed);
    pthread_mutex_destroy(&l->mtx);
    mlx_free(l);
}

void dpc_link_on_pipe(nng_pipe pipe, nng_pipe_ev ev, void *arg)
{
    (void)pipe;
    struct dpc_link *l = arg;
    pthread_mutex_lock(&l->mtx);
    if (ev == NNG_PIPE_EV_ADD_POST) {
        l->pipes++;
        l->ever = true;
    } else if (ev == NNG_PIPE_EV_REM_POST && l->pipes > 0 && --l->pipes == 0) {
        /* The peer is gone (died, or closed): what waits on it would wait
         * out its whole timeout, since REQ keeps the request queued. */
        for (struct dpc_waiter *w = l->waiters; w != NULL; w = w->next) {
            w->lost = true;
            nng_aio_abort(w->aio, NNG_ECONNRESET);
        }
    }
    pthread_cond_broadcast(&l->changed);
    pthread_mutex_unlock(&l->mtx);
}

bool dpc_link_enter(struct dpc_link *l, struct dpc_waiter *w, int limit_ms)
{
    pthread_mutex_lock(&l->mtx);
    int grace_ms = l->ever ? DPC_RECONNECT_GRACE_MS : DPC_CONNECT_GRACE_MS;
    pthread_mutex_unlock(&l->mtx);
    if (grace_ms > limit_ms)
        grace_ms = limit_ms;
    struct timespec until;
    clock_gettime(CLOCK_MONOTONIC, &until);
    until.tv_sec += grace_ms / 1000;
    until.tv_nsec += (long)(grace_ms % 1000) * 1000000L;
    if (until.tv_nsec >= 1000000000L) {
        until.tv_sec++;
        until.tv_nsec -= 1000000000L;
    }
    pthread_mutex_lock(&l->mtx);
    while (l->pipes == 0 &&
           pthread_cond_timedwait(&l->changed, &l->mtx, &until) != ETIMEDOUT)
        ;
    bool connected = l->pipes > 0;
    if (connected) {
        w->lost = false;
        w->next = l->waiters;
        l->waiters = w;
    }
    pthread_mutex_unlock(&l->mtx);
    return connected;
}

bool dpc_link_start(struct dpc_link *l, struct dpc_waiter *w,
                    void (*start)(nng_ctx, nng_aio *), nng_ctx ctx)
{
    pthread_mutex_lock(&l->mtx);
    bool go = !w->lost;
    if (go)
        start(ctx, w->aio);
    pthread_mutex_unlock(&l->mtx);
    return go;
}

void dpc_link_leave(struct dpc_link *l, struct dpc_waiter *w)
{
    pthread_mutex_lock(&l->mtx);
    for (struct dpc_waiter **p = &l->waiters; *p != NULL; p = &(*p)->next) {
        if (*p == w) {
            *p = w->next;
            break;
        }
    }
    pthread_mutex_unlock(&l->mtx);
}
