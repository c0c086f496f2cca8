/*
 * request.c — a generation request's body into an api_request, and errors
 * in the shape each API's clients read.
 *
 * The status of an error follows from the MLX_E* code the refusal came
 * with, the same way on the agent (its runtime's refusals) and on the
 * coordinator (an agent's, carried back), so a client sees one answer for
 * one mistake whichever it asked.
 */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "common/alloc.h"
#include "common/api/internal.h"

int api_request_parse(const api_spec *spec, const char *body, size_t len, api_request *out,
                      mlx_err *err)
{
    *out = (api_request){
        .kind = spec->kind,
        .chat = spec->chat,
        .max_tokens = -1,
        .keep_alive_ms = -1,
    };
    int rc = api_parse_object(body, len, &out->body, err);
    if (rc == 0)
        rc = spec->read(out, err);
    if (rc == 0 && out->model[0] == '\0')
        rc = mlx_err_set(err, MLX_EINVAL, "'model' is empty; name one of the models that "
                                          "GET /v1/models or /api/tags lists");
    if (rc != 0)
        api_request_fini(out);
    return rc;
}

void api_request_fini(api_request *r)
{
    if (r == NULL)
        return;
    for (size_t i = 0; r->messages != NULL && i < r->n_messages; i++)
        mlx_free(r->messages[i].content);
    mlx_free(r->messages);
    mlx_free(r->stops);
    json_decref(r->body);
    *r = (api_request){0};
}

int api_status_of(int mlx_code, const char **code)
{
    switch (mlx_code) {
    case MLX_EINVAL:
        *code = "invalid_request";
        return 400;
    case MLX_ETOOBIG:
        *code = "context_length_exceeded";
        return 400;
    case MLX_ENOENT:
        *code = "model_not_found";
        return 404;
    case MLX_EBUSY:
        *code = "overloaded";
        return 503;
    case MLX_ECLOSED:
        *code = "unavailable";
        return 503;
    case MLX_ENOMEM:
        *code = "insufficient_memory";
        return 507;
    default:
        *code = "internal_error";
        return 500;
    }
}

void api_event_error(api_event *ev, int mlx_code, const char *message)
{
    *ev = (api_event){.kind = API_EVENT_ERROR, .message = message};
    ev->status = api_status_of(mlx_code, &ev->code);
}

json_t *api_error_json(api_kind kind, int status, const char *code, const char *message)
{
    if (kind == API_OLLAMA)
        return json_pack("{s:s}", "error", message);
    return json_pack("{s:{s:s, s:s, s:s}}", "error", "message", message, "type",
                     status >= 500 ? "server_error" : "invalid_request_error", "code", code);
}

void api_error(mlx_http_resp *resp, api_kind kind, int status, const char *code,
               const char *fmt, ...)
{
    char message[MLX_MAX_ERR_MSG];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(message, sizeof message, fmt, ap);
    va_end(ap);
    mlx_http_resp_json(resp, status, api_error_json(kind, status, code, message));
}
