/*
 * answer.c — writing an answer: what both APIs' answers share, and the
 * choice between them.
 *
 * A stream's framing is the API's: OpenAI's clients read Server-Sent
 * Events ("data: {json}" and a blank line, "data: [DONE]" at the end),
 * Ollama's read one JSON object per line. An error after a stream began
 * cannot change the status any more, so it travels as one more chunk in
 * the API's error shape.
 */
#include <string.h>

#include "common/alloc.h"
#include "common/api/internal.h"
#include "common/json.h"

void api_answer_init(api_answer *a, const api_request *r, const char *id, int64_t created_s)
{
    *a = (api_answer){
        .kind = r->kind,
        .chat = r->chat,
        .model = r->model,
        .id = id,
        .created_s = created_s,
        .include_usage = r->include_usage,
        .logprobs = r->logprobs,
    };
}

const char *api_stream_type(api_kind kind)
{
    return kind == API_OLLAMA ? "application/x-ndjson" : "text/event-stream";
}

/* v dumped between head and tail; takes v. */
static int framed(mlx_buf *out, json_t *v, const char *head, const char *tail)
{
    char *text = NULL;
    int rc = v != NULL ? mlx_json_dump(v, &text, NULL) : MLX_ENOMEM;
    json_decref(v);
    if (rc == 0)
        rc = mlx_buf_printf(out, "%s%s%s", head, text, tail);
    mlx_free(text);
    return rc;
}

int api__sse(mlx_buf *out, json_t *v)
{
    return framed(out, v, "data: ", "\n\n");
}

int api__line(mlx_buf *out, json_t *v)
{
    return framed(out, v, "", "\n");
}

int api_write_chunk(api_answer *a, const api_event *text, mlx_buf *out)
{
    int rc = a->kind == API_OLLAMA ? api__ollama_chunk(a, text, out)
                                   : api__openai_chunk(a, text, out);
    a->text_offset += text->len;
    return rc;
}

int api_write_end(api_answer *a, const api_event *done, mlx_buf *out)
{
    return a->kind == API_OLLAMA ? api__ollama_end(a, done, out)
                                 : api__openai_end(a, done, out);
}

int api_write_fail(api_answer *a, const api_event *error, mlx_buf *out)
{
    json_t *v = api_error_json(a->kind, error->status, error->code, error->message);
    return a->kind == API_OLLAMA ? api__line(out, v) : api__sse(out, v);
}

json_t *api_answer_whole(api_answer *a, const char *text, size_t len, const api_token *tokens,
                         size_t n_tokens, const api_event *done)
{
    return a->kind == API_OLLAMA ? api__ollama_whole(a, text, len, done)
                                 : api__openai_whole(a, text, len, tokens, n_tokens, done);
}
