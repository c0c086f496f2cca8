/*
 * chat.h — chat messages to a prompt, with the model's chat format
 * (engine-internal).
 *
 * A GGUF's tokenizer.chat_template is a Jinja program. It is never run:
 * chat_detect recognises which well-known format it implements by its
 * marker strings, and chat_apply renders that format with built-in code.
 * An absent or unrecognised template means ChatML.
 *
 * Thread safety: pure functions.
 */
#ifndef MLX_AGENT_ENGINE_CHAT_H
#define MLX_AGENT_ENGINE_CHAT_H

#include <stdbool.h>
#include <stddef.h>

#include "agent/engine/engine.h"
#include "common/err.h"

typedef enum chat_format {
    CHAT_CHATML,
    CHAT_LLAMA2,
    CHAT_LLAMA3,
    CHAT_MISTRAL,
    CHAT_ZEPHYR,
    CHAT_PHI3,
    CHAT_GEMMA,
} chat_format;

/* template may be NULL. */
chat_format chat_detect(const char *template, size_t len);
const char *chat_format_name(chat_format f); /* "chatml", "llama3", … */

/* Renders msgs; add_assistant opens the assistant's turn at the end. The
 * BOS token text is not included (the tokenizer adds BOS). *out: mlx_free.
 * MLX_EINVAL with a sentence for an unknown role or a format's rule broken
 * (e.g. roles that do not alternate where the format requires it). */
int chat_apply(chat_format f, const engine_msg *msgs, size_t n, bool add_assistant,
               char **out, mlx_err *err);

#endif
