/*
 * bench.c — POST /api/v1/bench: the fixed suite (common/suite.h) on one
 * node, or on every up node that holds the model, with a row of figures
 * per node.
 *
 * Every request goes through the relay pinned to its node (relay.h), so a
 * node that fails is that node's result and never a retry elsewhere, which
 * would put another machine's figures in its row. Nodes run one after
 * another, and one prompt at a time, as the agent's own suite does: no
 * prompt waits behind another, and the coordinator's work for one node
 * does not slow the next. The run holds one of the coordinator's
 * generation slots.
 *
 * Per node: the warm-up loads the model (not measured), then the ten
 * prompts. A node's first failure ends its run with that sentence (its
 * other prompts would fail the same way, each after its timeout); the
 * other nodes still run. A client that goes away cancels the generation
 * in progress and ends the run.
 *
 * Figures of a node, over the prompts it ran:
 *   ttft_p50_ms, ttft_p95_ms   measured here, from handing the request to
 *                              the relay to its first text: what a client
 *                              of the fleet waits, routing and network
 *                              included (nearest rank, as the agent's)
 *   tokens_per_s_p50           the node's own decoding speed: tokens after
 *                              the first over the done chunk's eval_ns, as
 *                              the agent's suite counts it
 *   prompt_tokens_per_s        all prompt tokens over all prompt_eval_ns
 *   wall_ms                    the node's whole run, warm-up included
 *
 * Request ids are "<the HTTP request's id>-<node id>-<n>" (n 0 for the
 * warm-up), so one run's lines can be found in each agent's log.
 *
 * Each request, the warm-up too, is a generation in the coordinator's books
 * like a client's (ledger.c): GET /api/v1/requests lists it while it runs,
 * with endpoint "/api/v1/bench"; mlx_coordinator_requests_total and the
 * latency histograms count it, so the coordinator's counts per node agree
 * with the agents' (which count every request the coordinator sends); and
 * the request log has a row for it under the key that started the run,
 * beside the run's own row.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/alloc.h"
#include "common/clock.h"
#include "common/json.h"
#include "common/log.h"
#include "common/parse.h"
#include "common/suite.h"
#include "coordinator/http/internal.h"

#define MOD "http"

/* What the ledger lists as the endpoint of the run's generations: the one
 * that started them. */
#define BENCH_ENDPOINT "/api/v1/bench"

/* What the body asks for; strings borrowed from the parsed body. */
struct bench_args {
    const char *model;
    const char *node; /* NULL: every up node holding the model */
    int32_t max_tokens;
};

/* A node to run the suite on, copied out of the registry's callback. */
struct target {
    char id[MLX_NODE_ID_LEN + 1];
    char name[MLX_MAX_NODE_NAME + 1];
    char state[16];
};

struct targets {
    const char *node; /* the body's "node"; NULL: every holder */
    struct target *v;
    size_t n, cap;
    size_t by_name;  /* how many matched node by name, not id */
    bool id_matched; /* node is a holder's id: only that one is kept */
    size_t holders;  /* nodes holding the model, in any state */
};

/* One node's run. */
struct node_run {
    double ttft_ms[MLX_SUITE_PROMPTS], tokens_per_s[MLX_SUITE_PROMPTS];
    size_t prompts;
    uint64_t prompt_tokens, completion_tokens;
    int64_t prompt_eval_ns;
    int64_t wall_ms;
    mlx_err err; /* code != 0: the run failed */
};

/* Everything the admitted handler needs; ctx is the front's, not const,
 * because the run takes a generation slot. */
struct bench_job {
    admin_ctx *ctx;
    struct bench_args args;
    mlx_err body_err; /* code != 0: the body was refused */
    char id[MLX_MAX_REQUEST_ID + 1];
    char key_name[AUTH_MAX_KEY_NAME + 1];
    struct MHD_Connection *conn;
    bool client_gone;
};

/* ---- the body ---------------------------------------------------------------- */

static int parse_args(const json_t *body, struct bench_args *a, mlx_err *err)
{
    if (!json_is_object(body))
        return mlx_err_set(err, MLX_EINVAL,
                           "the body must be a JSON object such as "
                           "{\"model\":\"llama3.2:1b\"}; got %s",
                           mlx_json_type_name(body));
    const char *field;
    const json_t *value;
    json_object_foreach((json_t *)body, field, value)
    {
        if (strcmp(field, "model") != 0 && strcmp(field, "node") != 0 &&
            strcmp(field, "max_tokens") != 0)
            return mlx_err_set(err, MLX_EINVAL,
                               "unknown field '%.64s'; a bench takes model, node and "
                               "max_tokens",
                               field);
    }
    int64_t max_tokens = MLX_SUITE_GEN_TOKENS;
    int rc;
    if ((rc = mlx_json_get_string(body, "model", MLX_JSON_REQUIRED, &a->model, err)) ||
        (rc = mlx_json_get_string(body, "node", MLX_JSON_OPTIONAL, &a->node, err)) ||
        (rc = mlx_json_get_int(body, "max_tokens", MLX_JSON_OPTIONAL, 1,
                               MLX_SUITE_MAX_GEN_TOKENS, &max_tokens, err)))
        return MLX_EINVAL;
    /* Both are echoed in answers and logs: only clean text. */
    if (a->model[0] == '\0' || !mlx_text_is_clean(a->model, MLX_MAX_MODEL_NAME))
        return mlx_err_set(err, MLX_EINVAL,
                           "'model' must be a model's name of 1 to %d printable "
                           "characters",
                           MLX_MAX_MODEL_NAME);
    if (a->node != NULL &&
        (a->node[0] == '\0' || !mlx_text_is_clean(a->node, MLX_MAX_NODE_NAME)))
        return mlx_err_set(err, MLX_EINVAL,
                           "'node' must be a node's id or name of 1 to %d printable "
                           "characters",
                           MLX_MAX_NODE_NAME);
    a->max_tokens = (int32_t)max_tokens;
    return 0;
}

/* ---- the nodes --------------------------------------------------------------- */

static int keep_target(void *arg, const registry_candidate *c)
{
    struct targets *t = arg;
    t->holders++;
    bool by_id = t->node != NULL && strcmp(c->node_id, t->node) == 0;
    bool by_name =
        t->node != NULL && !by_id && !t->id_matched && strcmp(c->node_name, t->node) == 0;
    bool keep = t->node != NULL ? by_id || by_name : strcmp(c->state, "up") == 0;
    if (by_id) {
        /* An id names one node, whatever another is called. */
        t->n = 0;
        t->by_name = 0;
        t->id_matched = true;
    }
    if (!keep || t->n == MLX_MAX_NODES)
        return 0;
    if (t->n == t->cap) {
        size_t cap = t->cap ? 2 * t->cap : 8;
        struct target *v = mlx_realloc(t->v, cap * sizeof *v);
        if (v == NULL)
            return MLX_ENOMEM;
        t->v = v;
        t->cap = cap;
    }
    struct target *o = &t->v[t->n++];
    snprintf(o->id, sizeof o->id, "%s", c->node_id);
    snprintf(o->name, sizeof o->name, "%s", c->node_name);
    snprintf(o->state, sizeof o->state, "%s", c->state);
    t->by_name += by_name;
    return 0;
}

/* By name, then id: the order of the table mlxctl prints. */
static int cmp_target(const void *a, const void *b)
{
    const struct target *x = a, *y = b;
    int by_name = strcmp(x->name, y->name);
    return by_name != 0 ? by_name : strcmp(x->id, y->id);
}

/* Sorts the nodes to run; answers 400, 404 or 500 and returns false when
 * there is nothing to run. */
static bool targets_ok(const struct bench_args *a, struct targets *t, int rc,
                       const mlx_err *err, mlx_http_resp *resp)
{
    if (rc != 0) {
        mlx_http_resp_error(resp, 500, "server_error", "internal",
                            "cannot list the nodes holding model '%s': %s", a->model,
                            mlx_err_text(err, rc));
        return false;
    }
    if (a->node != NULL && t->n > 1 && t->by_name == t->n) {
        mlx_http_resp_error(resp, 400, "invalid_request_error", "ambiguous_node",
                            "'node': %zu nodes holding model '%s' are called '%s'; "
                            "name one by its id (mlxctl nodes)",
                            t->n, a->model, a->node);
        return false;
    }
    if (t->n > 0) {
        qsort(t->v, t->n, sizeof t->v[0], cmp_target);
        return true;
    }
    if (a->node != NULL)
        mlx_http_resp_error(resp, 404, "invalid_request_error", "model_not_found",
                            "no node called '%s' holds model '%s'; 'mlxctl models' "
                            "says which nodes do, and 'mlx-agent cache pull' on a node "
                            "adds it there",
                            a->node, a->model);
    else
        mlx_http_resp_error(resp, 404, "invalid_request_error", "model_not_found",
                            "no node that is up holds model '%s'%s; check the name "
                            "(mlxctl models), or pull it onto a node with 'mlx-agent "
                            "cache pull'",
                            a->model,
                            t->holders > 0 ? " (the nodes that do are not up)" : "");
    return false;
}

/* ---- one node's run -------------------------------------------------------- */

/* The sink of one prompt: when its first text came. */
struct prompt_sink {
    struct bench_job *job;
    int64_t first_ns; /* 0 until text came */
};

static int on_text(void *arg, const char *p, size_t n)
{
    struct prompt_sink *s = arg;
    if (s->first_ns == 0)
        s->first_ns = mlx_time_mono_ns();
    return 0;
}

static bool on_gone(void *arg)
{
    struct prompt_sink *s = arg;
    return s->job->conn != NULL && mlx_http_client_gone(s->job->conn);
}

/* "<the HTTP request's id>-<node id>", the start of every request id of
 * the node's run; the HTTP id is cut to 40 characters so that "-<n>"
 * still fits in MLX_MAX_REQUEST_ID. */
#define PREFIX_LEN (40 + 1 + MLX_NODE_ID_LEN)

static void request_prefix(const struct bench_job *job, const struct target *t,
                           char out[PREFIX_LEN + 1])
{
    snprintf(out, PREFIX_LEN + 1, "%.40s-%s", job->id, t->id);
}

/* Runs text (prompt n of the run, 0 for the warm-up) on node t; a failure
 * is in run->err. */
static int run_prompt(struct bench_job *job, const struct target *t, size_t n,
                      const char *text, int32_t max_tokens, struct node_run *run)
{
    char prefix[PREFIX_LEN + 1], id[MLX_MAX_REQUEST_ID + 1];
    request_prefix(job, t, prefix);
    snprintf(id, sizeof id, "%s-%zu", prefix, n);
    dpc_message msg = {"user", text};
    /* Greedy, as the agent's suite: every filter and penalty off (greedy
     * ignores the filters; a penalty would change the tokens). */
    dpc_sampling sampling = {
        .temperature = 0, .top_p = 1, .repeat_penalty = 1, .seed = MLX_SUITE_SEED};
    dpc_request req = {.request_id = id,
                       .model = job->args.model,
                       .messages = &msg,
                       .n_messages = 1,
                       .max_tokens = max_tokens,
                       .sampling = &sampling};
    struct prompt_sink s = {.job = job};
    relay_sink sink = {.text = on_text, .gone = on_gone, .arg = &s};
    relay_result res;
    stats_flight flight;
    stats_flight_begin(job->ctx->stats, &flight, id, BENCH_ENDPOINT, job->args.model,
                       job->key_name, false);
    int64_t sent_ns = mlx_time_mono_ns();
    ledger_relay(job->ctx, &flight, &req, &(relay_route){.node_id = t->id}, &sink, &res);
    int64_t end_ns = mlx_time_mono_ns();
    ledger_end(job->ctx, &flight, &res);
    const dpc_chunk *e = &res.end;
    if (res.status == 499)
        job->client_gone = true;
    if (res.status != 200)
        return mlx_err_set(&run->err, res.err.code ? res.err.code : MLX_EIO, "%s",
                           res.err.msg[0] ? res.err.msg : "the generation failed");
    if (n == 0)
        return 0; /* the warm-up: not measured */
    size_t i = run->prompts++;
    /* A generation that gave no text: its first text is its end. */
    run->ttft_ms[i] = (double)((s.first_ns ? s.first_ns : end_ns) - sent_ns) / 1e6;
    run->tokens_per_s[i] = mlx_suite_rate(mlx_suite_after_first(e->completion_tokens),
                                          (double)e->eval_ns / 1e6);
    run->prompt_tokens += e->prompt_tokens;
    run->completion_tokens += e->completion_tokens;
    run->prompt_eval_ns += e->prompt_eval_ns;
    return 0;
}

static void run_node(struct bench_job *job, const struct target *t, struct node_run *run)
{
    int64_t start_ms = mlx_time_mono_ms();
    if (strcmp(t->state, "up") != 0) {
        mlx_err_set(&run->err, MLX_EBUSY,
                    "node %s is %s; only a node that is up runs the suite", t->name,
                    t->state);
        return;
    }
    if (run_prompt(job, t, 0, MLX_SUITE_WARMUP, 1, run) != 0) {
        mlx_err_prefix(&run->err, run->err.code, "the warm-up request");
    } else {
        for (size_t i = 0; i < MLX_SUITE_PROMPTS; i++) {
            const mlx_suite_prompt *p = &mlx_suite_prompts[i];
            if (run_prompt(job, t, i + 1, p->text, job->args.max_tokens, run) != 0) {
                mlx_err_prefix(&run->err, run->err.code, "prompt %zu of the suite (%s)",
                               i + 1, p->kind);
                break;
            }
        }
    }
    run->wall_ms = mlx_time_mono_ms() - start_ms;
}

/* ---- the answer -------------------------------------------------------------- */

/* A figure, or null when no prompt ran to give it. */
static json_t *figure(const struct node_run *run, const double *sorted, unsigned pct)
{
    if (run->prompts == 0)
        return json_null();
    return json_real(mlx_suite_percentile(sorted, run->prompts, pct));
}

static json_t *row_json(const struct bench_job *job, const struct target *t,
                        const struct node_run *run)
{
    double ttft[MLX_SUITE_PROMPTS], tps[MLX_SUITE_PROMPTS];
    memcpy(ttft, run->ttft_ms, sizeof ttft);
    memcpy(tps, run->tokens_per_s, sizeof tps);
    mlx_suite_sort(ttft, run->prompts);
    mlx_suite_sort(tps, run->prompts);
    double prompt_tps =
        mlx_suite_rate(run->prompt_tokens, (double)run->prompt_eval_ns / 1e6);
    char prefix[PREFIX_LEN + 1];
    request_prefix(job, t, prefix);
    json_t *row = json_pack(
        "{s:s, s:s, s:s, s:s, s:i, s:i, s:o, s:o, s:o, s:o, s:I, s:I, s:I, s:s}",
        "node_id", t->id, "node_name", t->name, "model", job->args.model, "status",
        run->err.code != 0 ? "failed" : "ok", "prompts", (int)run->prompts, "max_tokens",
        (int)job->args.max_tokens, "ttft_p50_ms", figure(run, ttft, 50), "ttft_p95_ms",
        figure(run, ttft, 95), "tokens_per_s_p50", figure(run, tps, 50),
        "prompt_tokens_per_s", run->prompts > 0 ? json_real(prompt_tps) : json_null(),
        "prompt_tokens", (json_int_t)run->prompt_tokens, "completion_tokens",
        (json_int_t)run->completion_tokens, "wall_ms", (json_int_t)run->wall_ms,
        "request_id", prefix);
    if (row != NULL && run->err.code != 0 &&
        json_object_set_new(row, "error", json_string(run->err.msg)) != 0) {
        json_decref(row);
        row = NULL;
    }
    return row;
}

/* Runs every target in turn, until the client goes; the rows, or NULL when
 * out of memory. */
static json_t *run_all(struct bench_job *job, const struct targets *t)
{
    json_t *rows = json_array();
    for (size_t i = 0; rows != NULL && i < t->n && !job->client_gone; i++) {
        struct node_run run = {0};
        run_node(job, &t->v[i], &run);
        if (run.err.code != 0)
            mlx_log_warn(MOD, "bench failed on a node",
                         "id=%s node=%s model=\"%s\" prompts=%zu err=\"%s\"", job->id,
                         t->v[i].id, job->args.model, run.prompts, run.err.msg);
        else
            mlx_log_info(MOD, "bench", "id=%s node=%s model=\"%s\" wall_ms=%lld", job->id,
                         t->v[i].id, job->args.model, (long long)run.wall_ms);
        if (json_array_append_new(rows, row_json(job, &t->v[i], &run)) != 0) {
            json_decref(rows);
            rows = NULL;
        }
    }
    return rows;
}

static void admitted(const admin_ctx *unused, const mlx_http_req *req,
                     const auth_result *ar, mlx_http_resp *resp, void *arg)
{
    struct bench_job *job = arg;
    const struct bench_args *a = &job->args;
    snprintf(job->key_name, sizeof job->key_name, "%s", ar->key_name);
    mlx_http_resp_header(resp, "X-Request-Id", "%s", job->id);
    if (job->body_err.code != 0) {
        mlx_http_resp_error(resp, 400, "invalid_request_error", "invalid_bench", "%s",
                            job->body_err.msg);
        return;
    }
    if (job->ctx->relay == NULL) {
        mlx_http_resp_error(resp, 503, "server_error", "unavailable",
                            "this coordinator relays no generations; try again once it "
                            "has started");
        return;
    }
    struct targets t = {.node = a->node};
    mlx_err err;
    mlx_err_clear(&err);
    int rc = registry_candidates(job->ctx->reg, a->model, keep_target, &t, &err);
    if (!targets_ok(a, &t, rc, &err, resp))
        goto out;
    if (!admin_slot_take(job->ctx)) {
        mlx_http_resp_header(resp, "Retry-After", "1");
        mlx_http_resp_error(resp, 503, "server_error", "overloaded",
                            "the coordinator is running %u generations, its limit "
                            "(--max-requests); try again shortly",
                            (unsigned)job->ctx->max_requests);
        goto out;
    }
    json_t *rows = run_all(job, &t);
    admin_slot_give(job->ctx);
    if (job->client_gone) {
        resp->status = 499; /* nobody is there to read it */
        json_decref(rows);
    } else if (rows == NULL) {
        mlx_http_resp_error(resp, 507, "server_error", "insufficient_memory",
                            "out of memory");
    } else {
        mlx_http_resp_json(resp, 200,
                           json_pack("{s:s, s:i, s:o}", "model", a->model, "max_tokens",
                                     (int)a->max_tokens, "results", rows));
    }
out:
    mlx_free(t.v);
}

void bench_post(void *vctx, const mlx_http_req *req, mlx_http_resp *resp)
{
    struct bench_job job = {.ctx = vctx, .conn = req->conn};
    mlx_http_request_id(req, job.id, sizeof job.id);
    json_t *body = NULL;
    mlx_err_clear(&job.body_err);
    if (mlx_json_parse(req->body, req->body_len, &body, &job.body_err) == 0)
        parse_args(body, &job.args, &job.body_err);
    /* A body that cannot be read is refused only once the gate admitted the
     * client, as infer.c does: a stranger learns nothing but 401. */
    admin_gate g = {.admin_endpoint = true,
                    .model = job.body_err.code == 0 ? job.args.model : NULL,
                    .errors = API_OPENAI,
                    .fn = admitted,
                    .arg = &job,
                    .request_id = job.id};
    admin_gate_run(vctx, req, resp, &g);
    json_decref(body);
}
