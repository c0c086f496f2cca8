/*
 * sched.c — a loaded model's scheduler: its slots, its queue, and the loop
 * that runs them.
 *
 * Each step:
 *   1. waiting jobs take free slots: their prompt is rendered (chat) and
 *      tokenized, checked against the context, and they get a sequence, a
 *      sampler, a stop matcher (STARTED, or ERROR)
 *   2. one engine_feed_batch for every running slot: the next chunk of a
 *      prompt, or the token sampled last step
 *   3. each slot whose logits are new samples its next token: end of
 *      generation, max_tokens, or the context's end finish it; otherwise its
 *      text goes through the decoder and the stop matcher, and what is
 *      final is handed to its job (TEXT); a stop string finishes it
 *   4. cancelled and finished slots are freed (DONE to their jobs)
 * so requests join and leave between steps, and all running ones share
 * every read of the weights.
 */
#include <stdio.h>
#include <string.h>

#include "agent/runtime/internal.h"
#include "common/alloc.h"
#include "common/log.h"

#define MOD "runtime"

/* Text held back at the end: a piece's pending bytes and the stop
 * matcher's hold (at most the longest stop string). */
#define TAIL_MAX (ENGINE_MAX_PIECE + 1024)

typedef enum slot_state { SLOT_FREE, SLOT_PROMPT, SLOT_DECODE } slot_state;

typedef struct slot {
    slot_state state;
    runtime_job *job;
    engine_seq *seq;
    engine_sampler *sampler;
    engine_stop *stop;
    engine_decoder dec;
    int32_t *prompt;
    size_t n_prompt, fed; /* prompt tokens, and how many are in the sequence */
    int32_t next;         /* the token to feed this step (SLOT_DECODE) */
    uint32_t generated;
    bool fed_now;         /* fed in this step: its logits are new */
    int64_t start_ns, first_ns, last_ns; /* last_ns: the latest token's */
} slot;

/* Frees the slot first and then tells the job, so that a caller who
 * submits again on reading the end finds the slot free. */
static void slot_close(rt_model *m, slot *s, const runtime_event *end)
{
    runtime_job *job = s->job;
    engine_seq_free(s->seq);
    engine_sampler_free(s->sampler);
    engine_stop_free(s->stop);
    mlx_free(s->prompt);
    memset(s, 0, sizeof *s);
    pthread_mutex_lock(&m->mtx);
    m->running--;
    m->last_used_ms = rt_now_ms();
    pthread_mutex_unlock(&m->mtx);
    rt_job_finish(job, end);
    rt_job_release(job);
}

static void slot_done(rt_model *m, slot *s, const char *reason)
{
    runtime_event ev;
    memset(&ev, 0, sizeof ev);
    ev.kind = RUNTIME_DONE;
    ev.model = s->job->model;
    ev.finish_reason = reason;
    ev.prompt_tokens = (uint32_t)s->n_prompt;
    ev.completion_tokens = s->generated;
    int64_t now = rt_now_ns();
    ev.load_ns = s->job->load_ns;
    ev.prompt_ns = s->first_ns > 0 ? s->first_ns - s->start_ns : 0;
    ev.gen_ns = s->first_ns > 0 ? now - s->first_ns : 0;
    ev.total_ns = now - s->job->submit_ns;
    slot_close(m, s, &ev);
}

static void slot_fail(rt_model *m, slot *s, int code, const char *msg)
{
    runtime_event ev;
    memset(&ev, 0, sizeof ev);
    ev.kind = RUNTIME_ERROR;
    ev.error = code;
    ev.model = s->job->model;
    snprintf(ev.message, sizeof ev.message, "%s", msg);
    slot_close(m, s, &ev);
}

/* Whether job is a chat (rendered in the model's format) rather than a
 * text to continue. */
static bool is_chat(const rt_model *m, const runtime_job *job)
{
    return job->prompt == NULL || (job->as_user && engine_model_info(m->em)->chat_template);
}

/* The prompt's tokens: a chat in the model's format, or text as it is. */
static int render(rt_model *m, runtime_job *job, int32_t **ids, size_t *n, mlx_err *err)
{
    if (!is_chat(m, job))
        return engine_tokenize(m->em, job->prompt, strlen(job->prompt), true, true, ids, n,
                               err);
    engine_msg turn[2];
    const engine_msg *msgs = job->messages;
    size_t n_msgs = job->n_messages;
    if (job->prompt != NULL) { /* a user's turn, after the system's when given */
        n_msgs = 0;
        if (job->system != NULL && job->system[0] != '\0')
            turn[n_msgs++] = (engine_msg){"system", job->system};
        turn[n_msgs++] = (engine_msg){"user", job->prompt};
        msgs = turn;
    }
    char *text = NULL;
    int rc = engine_chat_prompt(m->em, msgs, n_msgs, true, &text, err);
    if (rc == 0)
        rc = engine_tokenize(m->em, text, strlen(text), true, true, ids, n, err);
    mlx_free(text);
    return rc;
}

/* Step 1 for one job: STARTED, or the job fails and the slot stays free. */
static void slot_open(rt_model *m, slot *s, runtime_job *job)
{
    mlx_err err;
    mlx_err_clear(&err);
    const engine_info *info = engine_model_info(m->em);
    memset(s, 0, sizeof *s);
    s->job = job;
    s->start_ns = rt_now_ns();
    int rc = render(m, job, &s->prompt, &s->n_prompt, &err);
    if (rc == 0 && s->n_prompt == 0)
        rc = mlx_err_set(&err, MLX_EINVAL, "the prompt is empty");
    if (rc == 0 && s->n_prompt >= info->n_ctx)
        rc = mlx_err_set(&err, MLX_ETOOBIG,
                         "the prompt has %zu tokens but the context of '%s' holds %u: it is "
                         "%zu tokens too long (shorten it, or start the agent with a "
                         "larger --ctx)",
                         s->n_prompt, job->model, info->n_ctx,
                         s->n_prompt - info->n_ctx + 1);
    if (rc == 0)
        rc = engine_sampler_new(&job->sampling, info->n_vocab, &s->sampler, &err);
    if (rc == 0)
        rc = engine_stop_new((const char *const *)job->stops, job->n_stops, &s->stop, &err);
    if (rc == 0)
        rc = engine_seq_new(m->em, &s->seq, &err);
    if (rc != 0) {
        slot_fail(m, s, rc, mlx_err_text(&err, rc));
        return;
    }
    for (size_t i = 0; i < s->n_prompt; i++)
        engine_sampler_accept(s->sampler, s->prompt[i]);
    engine_decoder_init(&s->dec);
    s->dec.started = !is_chat(m, job); /* a completion continues its prompt */
    s->state = SLOT_PROMPT;
    rt_job_started(job, (uint32_t)s->n_prompt);
}

/* Releases what the decoder and the stop matcher still hold, at the end. */
static void flush_tail(slot *s)
{
    char piece[ENGINE_MAX_PIECE], tail[TAIL_MAX];
    size_t n = engine_decoder_flush(&s->dec, piece, sizeof piece), k = 0;
    engine_stop_push(s->stop, piece, n, tail, &k);
    k += engine_stop_flush(s->stop, tail + k);
    rt_job_emit(s->job, tail, k, NULL);
}

/* Tells the runtime's observer how long this token took: from the
 * request's submission for the first, from the one before for the rest. */
static void observe(rt_model *m, slot *s, int64_t now)
{
    const runtime_config *c = &m->rt->cfg;
    if (c->observe_token != NULL) {
        bool first = s->generated == 1;
        int64_t since = first ? s->job->submit_ns : s->last_ns;
        c->observe_token(c->observer, m->name, first, (double)(now - since) / 1e9);
    }
    s->last_ns = now;
}

/* The text of token id, and of its top most likely alternatives. */
static void describe_token(rt_model *m, runtime_token *tok, int32_t id, const float *logits,
                           int32_t top)
{
    size_t len = 0, used = 0;
    const char *p = engine_token_piece(m->em, id, &len);
    tok->id = id;
    tok->len = len < sizeof tok->text - 1 ? len : sizeof tok->text - 1;
    memcpy(tok->text, p, tok->len);
    tok->text[tok->len] = '\0';
    if (top > 0)
        tok->n_top = engine_top_logprobs(logits, engine_model_info(m->em)->n_vocab,
                                         (size_t)top, tok->top);
    for (size_t i = 0; i < tok->n_top; i++) {
        p = engine_token_piece(m->em, tok->top[i].id, &len);
        size_t room = sizeof tok->top_text - used;
        size_t n = len < room ? len : room;
        memcpy(tok->top_text + used, p, n);
        tok->top_len[i] = (uint16_t)n;
        used += n;
    }
}

/* Step 3 for one slot whose logits are new. */
static void slot_sample(rt_model *m, slot *s)
{
    const engine_info *info = engine_model_info(m->em);
    runtime_job *job = s->job;
    const float *logits = engine_seq_logits(s->seq);
    int64_t now = rt_now_ns();
    if (s->first_ns == 0)
        s->first_ns = now;
    if (job->max_tokens == 0) { /* the prompt only (Ollama's num_predict 0) */
        slot_done(m, s, "length");
        return;
    }
    runtime_token tok;
    memset(&tok, 0, sizeof tok);
    int32_t id = engine_sampler_sample(s->sampler, logits, &tok.logprob);
    if (engine_is_eog(m->em, id)) {
        flush_tail(s);
        slot_done(m, s, "stop");
        return;
    }
    s->generated++;
    observe(m, s, now);
    char piece[ENGINE_MAX_PIECE], shown[ENGINE_MAX_PIECE + TAIL_MAX];
    size_t n = 0, n_shown = 0;
    mlx_err err;
    if (engine_decoder_push(m->em, &s->dec, id, piece, sizeof piece, &n, &err) != 0) {
        slot_fail(m, s, MLX_EINTERNAL, mlx_err_text(&err, MLX_EINTERNAL));
        return;
    }
    bool stopped = engine_stop_push(s->stop, piece, n, shown, &n_shown);
    const runtime_token *with = NULL;
    if (job->top_logprobs != 0) {
        describe_token(m, &tok, id, logits, job->top_logprobs);
        with = &tok;
    }
    if (rt_job_emit(job, shown, n_shown, with) != 0) {
        /* The reader stopped reading: give up rather than buffer forever. */
        slot_fail(m, s, MLX_ETOOBIG, "the client stopped reading the answer");
        return;
    }
    bool full = engine_seq_len(s->seq) >= info->n_ctx;
    if (stopped) {
        slot_done(m, s, "stop");
    } else if ((job->max_tokens >= 0 && s->generated >= (uint32_t)job->max_tokens) || full) {
        flush_tail(s);
        slot_done(m, s, "length");
    } else {
        s->next = id;
        s->state = SLOT_DECODE;
    }
}

struct sched {
    rt_model *m;
    slot *slots;
    engine_batch_item *items;
    size_t n;
};

/* Step 1: takes waiting jobs into free slots. Returns whether any slot runs. */
static bool admit(struct sched *sc)
{
    rt_model *m = sc->m;
    runtime_job *taken[64];
    size_t n_taken = 0;
    pthread_mutex_lock(&m->mtx);
    size_t running = 0;
    for (size_t i = 0; i < sc->n; i++)
        running += sc->slots[i].state != SLOT_FREE;
    while (!m->stop && running == 0 && m->queue_head == NULL)
        pthread_cond_wait(&m->cond, &m->mtx);
    for (size_t i = 0; i < sc->n && m->queue_head != NULL && n_taken < 64; i++) {
        if (sc->slots[i].state != SLOT_FREE)
            continue;
        runtime_job *job = m->queue_head;
        m->queue_head = job->next;
        if (m->queue_head == NULL)
            m->queue_tail = NULL;
        job->next = NULL;
        m->queued--;
        m->running++;
        taken[n_taken++] = job;
        sc->slots[i].state = SLOT_PROMPT; /* reserved until slot_open */
    }
    bool stop = m->stop;
    pthread_mutex_unlock(&m->mtx);
    size_t k = 0;
    for (size_t i = 0; i < sc->n && k < n_taken; i++)
        if (sc->slots[i].state == SLOT_PROMPT && sc->slots[i].job == NULL)
            slot_open(m, &sc->slots[i], taken[k++]);
    return !stop;
}

/* Steps 2 to 4. */
static void step(struct sched *sc)
{
    rt_model *m = sc->m;
    size_t n_items = 0, n_decode = 0;
    for (size_t i = 0; i < sc->n; i++) {
        slot *s = &sc->slots[i];
        s->fed_now = false;
        if (s->state == SLOT_FREE)
            continue;
        if (atomic_load(&s->job->cancelled)) {
            slot_done(m, s, "stop"); /* nobody will read it */
            continue;
        }
        if (s->state == SLOT_PROMPT) {
            size_t left = s->n_prompt - s->fed;
            size_t take = left < RT_PREFILL_CHUNK ? left : RT_PREFILL_CHUNK;
            sc->items[n_items++] = (engine_batch_item){s->seq, s->prompt + s->fed, take};
            s->fed += take;
            s->fed_now = s->fed == s->n_prompt;
        } else {
            sc->items[n_items++] = (engine_batch_item){s->seq, &s->next, 1};
            s->fed_now = true;
            n_decode++;
        }
    }
    if (n_items == 0)
        return;
    mlx_err err;
    mlx_err_clear(&err);
    int64_t t0 = rt_now_ns();
    int rc = engine_feed_batch(m->em, sc->items, n_items, &err);
    for (size_t i = 0; i < sc->n; i++) {
        slot *s = &sc->slots[i];
        if (s->state == SLOT_FREE || !s->fed_now)
            continue;
        if (rc != 0)
            slot_fail(m, s, rc, mlx_err_text(&err, rc));
        else
            slot_sample(m, s);
    }
    /* Generation speed, decayed over a few seconds of steps. */
    double secs = (double)(rt_now_ns() - t0) / 1e9;
    if (secs > 0 && n_decode > 0) {
        pthread_mutex_lock(&m->mtx);
        double tps = (double)n_decode / secs, w = secs < 1 ? secs : 1;
        m->tokens_per_s = m->tokens_per_s * (1 - w / 4) + tps * (w / 4);
        pthread_mutex_unlock(&m->mtx);
    }
}

static void *run(void *arg)
{
    rt_model *m = arg;
    const runtime_config *cfg = &m->rt->cfg;
    struct sched sc = {.m = m, .n = (size_t)cfg->parallel};
    sc.slots = mlx_calloc(sc.n, sizeof *sc.slots);
    sc.items = mlx_calloc(sc.n, sizeof *sc.items);
    if (sc.slots == NULL || sc.items == NULL) {
        mlx_log_error(MOD, "out of memory for a model's slots", "model=\"%s\"", m->name);
        pthread_mutex_lock(&m->mtx);
        m->stop = true; /* refuse new work; the queue is failed below */
        pthread_mutex_unlock(&m->mtx);
        sc.n = 0;
    }
    while (sc.n > 0 && admit(&sc))
        step(&sc);
    /* Stopping: what runs or waits is told so. */
    for (size_t i = 0; i < sc.n; i++)
        if (sc.slots[i].state != SLOT_FREE && sc.slots[i].job != NULL)
            slot_fail(m, &sc.slots[i], MLX_ECLOSED, "the model was unloaded");
    pthread_mutex_lock(&m->mtx);
    while (m->queue_head != NULL) {
        runtime_job *job = m->queue_head;
        m->queue_head = job->next;
        m->queued--;
        rt_job_fail(job, MLX_ECLOSED, "the model was unloaded before the request ran");
        rt_job_release(job);
    }
    m->queue_tail = NULL;
    pthread_mutex_unlock(&m->mtx);
    mlx_free(sc.slots);
    mlx_free(sc.items);
    return NULL;
}

int rt_sched_start(rt_model *m, mlx_err *err)
{
    if (pthread_create(&m->thread, NULL, run, m) != 0)
        return mlx_err_set(err, MLX_ENOMEM, "cannot start the scheduler of '%s'", m->name);
    m->thread_started = true;
    return 0;
}

int rt_sched_queue(rt_model *m, runtime_job *job, mlx_err *err)
{
    int rc = 0;
    pthread_mutex_lock(&m->mtx);
    size_t free_slots = (size_t)m->rt->cfg.parallel - m->running;
    if (m->stop) {
        rc = mlx_err_set(err, MLX_ECLOSED, "'%s' is being unloaded; try again", m->name);
    } else if (m->queued >= (size_t)m->rt->cfg.queue_limit + free_slots) {
        rc = mlx_err_set(err, MLX_EBUSY,
                         "'%s' has %zu requests running and %zu waiting, its limit; try "
                         "again shortly",
                         m->name, m->running, m->queued);
    } else {
        pthread_mutex_lock(&job->mtx);
        job->refs++;
        pthread_mutex_unlock(&job->mtx);
        if (m->queue_tail != NULL)
            m->queue_tail->next = job;
        else
            m->queue_head = job;
        m->queue_tail = job;
        m->queued++;
        if (job->keep_alive_ms >= 0)
            m->keep_alive_ms = job->keep_alive_ms;
        else
            m->keep_alive_ms = m->rt->cfg.keep_alive_ms;
        m->last_used_ms = rt_now_ms();
        pthread_cond_signal(&m->cond);
    }
    pthread_mutex_unlock(&m->mtx);
    return rc;
}
