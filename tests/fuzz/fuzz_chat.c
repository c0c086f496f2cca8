/*
 * fuzz_chat.c — chat_apply with random formats and messages: no crash; a
 * conversation is refused exactly when it breaks a rule (an unknown role;
 * in llama2, mistral and gemma, turns not alternating user, assistant, …
 * after an optional first system message, or a system message alone), and
 * otherwise the prompt holds every message's content.
 *
 * Input: a format byte, a byte whose low bit opens the assistant's turn,
 * then per message (16 at most) a role byte (system, user, assistant or an
 * unknown one), a length byte and the content. Contents are mapped to
 * letters, "é", and inner spaces, never space at either end, so the
 * formats that trim leave them whole.
 */
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "agent/engine/chat.h"
#include "common/alloc.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

enum { MAX_MSGS = 16, MAX_CONTENT = 64 };

static const char *const roles[] = {"system", "user", "assistant", "tool"};

/* Whether the rules allow this conversation. */
static bool allowed(chat_format f, const int *role, size_t n)
{
    if (n == 0)
        return false;
    for (size_t i = 0; i < n; i++)
        if (role[i] == 3)
            return false;
    if (f != CHAT_LLAMA2 && f != CHAT_MISTRAL && f != CHAT_GEMMA)
        return true;
    size_t first = role[0] == 0 ? 1 : 0;
    if (first == n)
        return false;
    for (size_t i = first; i < n; i++)
        if (role[i] != ((i - first) % 2 == 0 ? 1 : 2))
            return false;
    return true;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 2)
        return 0;
    chat_format f = (chat_format)(data[0] % 7);
    bool add = data[1] & 1;
    static char content[MAX_MSGS][MAX_CONTENT * 2 + 1];
    engine_msg msgs[MAX_MSGS];
    int role[MAX_MSGS];
    size_t n = 0, at = 2;
    while (n < MAX_MSGS && at + 2 <= size) {
        role[n] = data[at] % 4;
        size_t len = data[at + 1] % (MAX_CONTENT + 1);
        at += 2;
        size_t j = 0;
        for (size_t i = 0; i < len && at < size; i++, at++) {
            uint8_t b = data[at];
            if (b % 9 == 0 && j > 0 && i + 1 < len) {
                content[n][j++] = ' ';
            } else if (b % 9 == 1) {
                content[n][j++] = '\xc3';
                content[n][j++] = '\xa9';
            } else {
                content[n][j++] = (char)('a' + b % 26);
            }
        }
        while (j > 0 && content[n][j - 1] == ' ')
            j--;
        content[n][j] = '\0';
        msgs[n] = (engine_msg){roles[role[n]], content[n]};
        n++;
    }

    char *out = NULL;
    mlx_err err;
    mlx_err_clear(&err);
    int rc = chat_apply(f, msgs, n, add, &out, &err);
    if (!allowed(f, role, n)) {
        if (rc != MLX_EINVAL || out != NULL || err.msg[0] == '\0')
            abort();
        return 0;
    }
    if (rc != 0 || out == NULL)
        abort();
    for (size_t i = 0; i < n; i++)
        if (strstr(out, msgs[i].content) == NULL)
            abort();
    mlx_free(out);
    return 0;
}
