/*
 * ollama.c — Ollama's generation API: POST /api/generate and POST /api/chat.
 * Reading the bodies and writing the answers is common/api's (ollama.c
 * there); here they meet the runtime. As in Ollama, a request with no
 * prompt (or no messages) only loads the model, and one with keep_alive 0
 * unloads it.
 */
#include "agent/http/internal.h"

/* ---- the endpoints ---------------------------------------------------------- */

/* A request with nothing to generate: load the model (or, with keep_alive
 * 0, unload it), as Ollama does. */
static void load_only(api_call *c, mlx_http_resp *resp)
{
    mlx_err err;
    mlx_err_clear(&err);
    int64_t load_ns = 0;
    int rc = runtime_load(c->h->cfg.rt, c->req.model, c->req.keep_alive_ms, &load_ns, &err);
    if (rc != 0) {
        const char *code;
        c->status = api_status_of(rc, &code);
        api_error(resp, API_OLLAMA, c->status, code, "%s", mlx_err_text(&err, rc));
        return;
    }
    c->status = 200;
    mlx_http_resp_json(resp, 200,
                       api_answer_load(&c->answer, c->req.keep_alive_ms == 0 ? "unload" : "load",
                                       load_ns));
}

/* Generates, or only loads when there is nothing to generate. */
static void serve(agent_http *h, const mlx_http_req *req, mlx_http_resp *resp,
                  const api_spec *spec)
{
    api_call *c = api_call_read(h, req, resp, spec);
    if (c == NULL)
        return;
    bool nothing = c->api.chat ? c->api.n_messages == 0
                               : c->api.prompt == NULL || c->api.prompt[0] == '\0';
    if (!nothing) {
        api_call_run(c, resp);
        return;
    }
    load_only(c, resp);
    api_count(h, spec->endpoint, c->status == 200 ? c->req.model : "", c->status);
    api_call_free(c);
}

void http_ollama_generate(void *ctx, const mlx_http_req *req, mlx_http_resp *resp)
{
    serve(ctx, req, resp, &api_ollama_generate);
}

void http_ollama_chat(void *ctx, const mlx_http_req *req, mlx_http_resp *resp)
{
    serve(ctx, req, resp, &api_ollama_chat);
}
