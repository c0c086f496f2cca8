/*
 * internal.h — what the files of common/api share; nothing outside
 * common/api includes it.
 *
 *   request.c  a body into an api_request; errors in each API's shape
 *   params.c   members of a body: types, ranges, stops, messages, content
 *   answer.c   answers: dispatch by API, the stream framings
 *   openai.c   OpenAI's requests and answers
 *   ollama.c   Ollama's requests and answers
 */
#ifndef MLX_COMMON_API_INTERNAL_H
#define MLX_COMMON_API_INTERNAL_H

#include "common/api/api.h"

/* An optional number member within [min, max], into a float. */
int api__read_float(const json_t *obj, const char *key, double min, double max, float *out,
                    mlx_err *err);

/* Stop strings: a string or an array of at most max strings (NULL and
 * null allowed: none). *out: mlx_free (the strings are borrowed from v). */
int api__read_stops(const json_t *v, const char *name, size_t max, const char ***out,
                    size_t *n, mlx_err *err);

/* The messages of a chat (OpenAI's or Ollama's): objects with a role
 * (system — or developer —, user, assistant) and a content; into
 * r->messages and r->n_messages (owned by r, also after a failure). */
int api__read_messages(const json_t *v, api_request *r, mlx_err *err);

/* A token's bytes as a JSON string: bytes that are not UTF-8 (half a
 * character) become U+FFFD. NULL when out of memory. */
json_t *api__lossy_string(const char *p, size_t n);

/* Takes v: "data: {json}\n\n" (SSE) or "{json}\n" (NDJSON) appended to out. */
int api__sse(mlx_buf *out, json_t *v);
int api__line(mlx_buf *out, json_t *v);

/* Each API's answers (answer.c picks by kind); arguments as api.h's. */
int api__openai_chunk(api_answer *a, const api_event *text, mlx_buf *out);
int api__openai_end(api_answer *a, const api_event *done, mlx_buf *out);
json_t *api__openai_whole(api_answer *a, const char *text, size_t len,
                          const api_token *tokens, size_t n_tokens, const api_event *done);
int api__ollama_chunk(api_answer *a, const api_event *text, mlx_buf *out);
int api__ollama_end(api_answer *a, const api_event *done, mlx_buf *out);
json_t *api__ollama_whole(api_answer *a, const char *text, size_t len, const api_event *done);

#endif
