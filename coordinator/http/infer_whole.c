/*
 * infer_whole.c — a generation answered whole (stream: false): the relay's
 * text gathered, and with log probabilities its tokens, then one answer in
 * the API's shape. The data plane sends such a generation's text at its
 * end (dpc_request.whole), so a short one is a single exchange.
 */
#include <string.h>

#include "common/alloc.h"
#include "coordinator/http/internal.h"

#define WHOLE_TEXT_MAX (64u << 20)
/* Tokens a whole answer keeps for its log probabilities; each becomes an
 * api_token of about 500 bytes when the answer is written. */
#define WHOLE_TOKENS_MAX (1u << 16)

/* A kept token: its piece and its alternatives' at offsets in
 * whole.pieces, which moves as it grows. */
struct kept_alt {
    size_t off, len;
    float logprob;
};

struct kept_token {
    size_t off, len;
    float logprob;
    size_t first_alt, n_top; /* in whole.alts */
};

struct whole {
    infer_call *c;
    mlx_buf text;
    bool too_big; /* the text passed WHOLE_TEXT_MAX, or the tokens kept
                     WHOLE_TOKENS_MAX (or memory ran out): the relay cancelled */
    /* With log probabilities: every token so far, in order. */
    mlx_buf pieces; /* at most WHOLE_TEXT_MAX */
    struct kept_token *toks;
    size_t n_toks, cap_toks;
    struct kept_alt *alts;
    size_t n_alts, cap_alts;
};

static int whole_text(void *arg, const char *p, size_t n)
{
    struct whole *w = arg;
    if (mlx_buf_append(&w->text, p, n) != 0)
        w->too_big = true;
    return w->too_big;
}

/* Makes room for one more token and its n_top alternatives. */
static int keep_room(struct whole *w, size_t n_top)
{
    if (w->n_toks >= WHOLE_TOKENS_MAX)
        return MLX_ETOOBIG;
    if (w->n_toks == w->cap_toks) {
        size_t cap = w->cap_toks ? 2 * w->cap_toks : 256;
        struct kept_token *v = mlx_realloc(w->toks, cap * sizeof *v);
        if (v == NULL)
            return MLX_ENOMEM;
        w->toks = v;
        w->cap_toks = cap;
    }
    if (w->n_alts + n_top > w->cap_alts) {
        size_t cap = 2 * w->cap_alts + n_top + 256;
        struct kept_alt *v = mlx_realloc(w->alts, cap * sizeof *v);
        if (v == NULL)
            return MLX_ENOMEM;
        w->alts = v;
        w->cap_alts = cap;
    }
    return 0;
}

static int keep_token(struct whole *w, const dpc_token *t)
{
    int rc = keep_room(w, t->n_top);
    if (rc != 0)
        return rc;
    struct kept_token *k = &w->toks[w->n_toks];
    *k = (struct kept_token){.off = w->pieces.len,
                             .len = t->len,
                             .logprob = t->logprob,
                             .first_alt = w->n_alts,
                             .n_top = t->n_top};
    if ((rc = mlx_buf_append(&w->pieces, t->text, t->len)) != 0)
        return rc;
    for (size_t j = 0; j < t->n_top; j++) {
        const dpc_alt *a = &t->top[j];
        w->alts[w->n_alts + j] =
            (struct kept_alt){.off = w->pieces.len, .len = a->len, .logprob = a->logprob};
        if ((rc = mlx_buf_append(&w->pieces, a->text, a->len)) != 0)
            return rc;
    }
    w->n_alts += t->n_top;
    w->n_toks++;
    return 0;
}

static int whole_tokens(void *arg, const dpc_chunk *chunk)
{
    struct whole *w = arg;
    if (whole_text(w, chunk->text, chunk->len) != 0)
        return 1;
    for (size_t i = 0; i < chunk->n_tokens && !w->too_big; i++)
        if (keep_token(w, &chunk->tokens[i]) != 0)
            w->too_big = true;
    return w->too_big;
}

/* The kept tokens as api_tokens borrowing w->pieces; caller frees.
 * MLX_ENOMEM. */
static int whole_api_tokens(const struct whole *w, api_token **out)
{
    *out = NULL;
    if (w->n_toks == 0)
        return 0;
    api_token *v = mlx_calloc(w->n_toks, sizeof *v);
    if (v == NULL)
        return MLX_ENOMEM;
    const char *base = w->pieces.data != NULL ? w->pieces.data : "";
    for (size_t i = 0; i < w->n_toks; i++) {
        const struct kept_token *k = &w->toks[i];
        v[i] = (api_token){.text = base + k->off,
                           .len = k->len,
                           .logprob = k->logprob,
                           .n_top = k->n_top};
        for (size_t j = 0; j < k->n_top; j++) {
            const struct kept_alt *a = &w->alts[k->first_alt + j];
            v[i].top[j] = (api_alt){base + a->off, a->len, a->logprob};
        }
    }
    *out = v;
    return 0;
}

static bool whole_gone(void *arg)
{
    const struct whole *w = arg;
    return w->c->conn != NULL && mlx_http_client_gone(w->c->conn);
}

void infer_whole_run(infer_call *c, mlx_http_resp *resp)
{
    struct whole w = {.c = c};
    mlx_buf_init(&w.text, WHOLE_TEXT_MAX);
    mlx_buf_init(&w.pieces, WHOLE_TEXT_MAX);
    relay_sink sink = {.text = whole_text,
                       .gone = whole_gone,
                       .arg = &w,
                       .tokens = c->api.logprobs ? whole_tokens : NULL};
    infer_relay(c, &sink);
    if (w.too_big) {
        c->res.status = 500;
        mlx_err_set(&c->res.err, MLX_ENOMEM,
                    "the answer is larger than %u bytes, or than %u tokens with log "
                    "probabilities; ask for fewer tokens with max_tokens",
                    WHOLE_TEXT_MAX, WHOLE_TOKENS_MAX);
    }
    api_token *tokens = NULL;
    if (c->res.status == 200 && whole_api_tokens(&w, &tokens) != 0) {
        c->res.status = 507;
        mlx_err_set(&c->res.err, MLX_ENOMEM, "out of memory");
    }
    if (c->res.status == 200) {
        api_event done;
        infer_done_event(c, &done);
        mlx_http_resp_json(resp, 200,
                           api_answer_whole(&c->answer, mlx_buf_str(&w.text), w.text.len,
                                            tokens, w.n_toks, &done));
    } else if (c->res.status != 499) {
        infer_answer_failure(c, resp);
    } else {
        resp->status = 499; /* nobody is there to read it */
    }
    mlx_free(tokens);
    mlx_free(w.toks);
    mlx_free(w.alts);
    mlx_buf_fini(&w.pieces);
    mlx_buf_fini(&w.text);
    infer_call_end(c);
}
