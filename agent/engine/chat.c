/*
 * chat.c — chat messages to a prompt in one of seven well-known formats.
 *
 * Each renderer writes what the family's reference Jinja template writes
 * (as Hugging Face's apply_chat_template runs it), minus the leading BOS,
 * which the tokenizer adds:
 *
 *   chatml   <|im_start|>{role}\n{content}<|im_end|>\n …  <|im_start|>assistant\n
 *   llama2   [INST] <<SYS>>\n{system}\n<</SYS>>\n\n{user} [/INST] {assistant} </s>
 *            <s>[INST] {user} [/INST]            (meta-llama/Llama-2-7b-chat-hf)
 *   llama3   <|start_header_id|>{role}<|end_header_id|>\n\n{content}<|eot_id|> …
 *            <|start_header_id|>assistant<|end_header_id|>\n\n
 *                                                (Meta-Llama-3-8B-Instruct)
 *   mistral  [INST] {user}[/INST] {assistant}</s>[INST] {system}\n\n{user}[/INST]
 *                                                (Mistral-7B-Instruct-v0.3)
 *   zephyr   <|system|>\n{content}</s>\n<|user|>\n{content}</s>\n <|assistant|>\n
 *                                                (HuggingFaceH4/zephyr-7b-beta)
 *   phi3     <|user|>\n{content}<|end|>\n …  <|assistant|>\n, else <|endoftext|>
 *                                                (Phi-3-mini-4k-instruct)
 *   gemma    <start_of_turn>user\n{system}\n\n{user}<end_of_turn>\n
 *            <start_of_turn>model\n{assistant}<end_of_turn>\n  <start_of_turn>model\n
 *                                                (gemma-3 *-it)
 *
 * The templates' own details are kept: which contents they trim (Jinja's
 * trim, Python's str.strip: every Unicode space), where a system message
 * goes when the format has no system turn (llama2 and gemma fold it into
 * the first user turn, mistral into the last, as mistral-common does), the
 * BOS text llama2 writes before every later turn, the end of text phi3
 * writes when no assistant turn is opened. llama2 and mistral have no
 * generation prompt: a prompt ending in a user turn is already open.
 *
 * Rules the templates raise exceptions for are refused with a sentence:
 * in llama2, mistral and gemma, turns after the optional first system
 * message alternate user, assistant, user, …
 *
 * One template stands for each family, though families revised theirs:
 * Mistral v0.1 and v0.2 write " [INST] {user} [/INST]", Llama 3.1 and later
 * add a dated system turn, Qwen2's ChatML adds a default system message,
 * Gemma 1 and 2 refuse a system message that Gemma 3 folds in. Those
 * variants render as their family's template above.
 */
#include <string.h>

#include "agent/engine/chat.h"
#include "common/alloc.h"
#include "common/buf.h"
#include "common/limits.h"

/* ---- detection ---------------------------------------------------------- */

static bool has(const char *t, size_t len, const char *marker)
{
    size_t m = strlen(marker);
    for (size_t i = 0; i + m <= len; i++)
        if (t[i] == marker[0] && memcmp(t + i, marker, m) == 0)
            return true;
    return false;
}

chat_format chat_detect(const char *template, size_t len)
{
    if (template == NULL)
        return CHAT_CHATML;
    /* Most specific first: a ChatML template built for a Llama 3 vocabulary
     * names <|im_start|> but never <|start_header_id|>. */
    if (has(template, len, "<|start_header_id|>"))
        return CHAT_LLAMA3;
    if (has(template, len, "<|im_start|>"))
        return CHAT_CHATML;
    if (has(template, len, "<start_of_turn>"))
        return CHAT_GEMMA;
    /* Phi-3 small writes '<|' + role + '|>', so <|user|> may be absent. */
    if (has(template, len, "<|end|>") &&
        (has(template, len, "<|user|>") || has(template, len, "<|assistant|>")))
        return CHAT_PHI3;
    /* Zephyr ends turns with eos_token (</s> in its vocabulary). */
    if (has(template, len, "<|user|>"))
        return CHAT_ZEPHYR;
    if (has(template, len, "[INST]"))
        return has(template, len, "<<SYS>>") ? CHAT_LLAMA2 : CHAT_MISTRAL;
    return CHAT_CHATML;
}

const char *chat_format_name(chat_format f)
{
    switch (f) {
    case CHAT_CHATML:
        return "chatml";
    case CHAT_LLAMA2:
        return "llama2";
    case CHAT_LLAMA3:
        return "llama3";
    case CHAT_MISTRAL:
        return "mistral";
    case CHAT_ZEPHYR:
        return "zephyr";
    case CHAT_PHI3:
        return "phi3";
    case CHAT_GEMMA:
        return "gemma";
    }
    return "unknown";
}

/* ---- text --------------------------------------------------------------- */

typedef struct span {
    const char *p;
    size_t n;
} span;

static span whole(const char *s)
{
    return (span){s, strlen(s)};
}

/* The code point of the UTF-8 character at s (n bytes left) and its length;
 * 0 for bytes that do not form one. */
static size_t utf8_char(const unsigned char *s, size_t n, unsigned long *cp)
{
    size_t len;
    unsigned long v;
    if (n == 0)
        return 0;
    if (s[0] < 0x80) {
        *cp = s[0];
        return 1;
    }
    if ((s[0] & 0xe0) == 0xc0) {
        len = 2;
        v = s[0] & 0x1fu;
    } else if ((s[0] & 0xf0) == 0xe0) {
        len = 3;
        v = s[0] & 0x0fu;
    } else if ((s[0] & 0xf8) == 0xf0) {
        len = 4;
        v = s[0] & 0x07u;
    } else {
        return 0;
    }
    if (len > n)
        return 0;
    for (size_t i = 1; i < len; i++) {
        if ((s[i] & 0xc0) != 0x80)
            return 0;
        v = (v << 6) | (s[i] & 0x3fu);
    }
    *cp = v;
    return len;
}

/* Python's str.isspace, which Jinja's trim and str.strip() go by. */
static bool py_space(unsigned long c)
{
    return (c >= 0x09 && c <= 0x0d) || (c >= 0x1c && c <= 0x20) || c == 0x85 ||
           c == 0xa0 || c == 0x1680 || (c >= 0x2000 && c <= 0x200a) || c == 0x2028 ||
           c == 0x2029 || c == 0x202f || c == 0x205f || c == 0x3000;
}

static span rstrip(span s)
{
    const unsigned char *u = (const unsigned char *)s.p;
    while (s.n > 0) {
        size_t start = s.n - 1;
        while (start > 0 && s.n - start < 4 && (u[start] & 0xc0) == 0x80)
            start--;
        unsigned long c;
        if (utf8_char(u + start, s.n - start, &c) != s.n - start || !py_space(c))
            break;
        s.n = start;
    }
    return s;
}

static span strip(span s)
{
    const unsigned char *u = (const unsigned char *)s.p;
    size_t len;
    unsigned long c;
    while ((len = utf8_char(u, s.n, &c)) > 0 && py_space(c)) {
        u += len;
        s.n -= len;
    }
    s.p = (const char *)u;
    return rstrip(s);
}

/* The prompt being written; the first failed append is kept in rc and
 * every later one is skipped, so renderers read straight through. */
typedef struct writer {
    mlx_buf buf;
    int rc;
} writer;

static void put_span(writer *w, span s)
{
    if (w->rc == 0)
        w->rc = mlx_buf_append(&w->buf, s.p, s.n);
}

static void put(writer *w, const char *s)
{
    put_span(w, whole(s));
}

/* ---- roles and rules ---------------------------------------------------- */

typedef enum role { ROLE_SYSTEM, ROLE_USER, ROLE_ASSISTANT, ROLE_UNKNOWN } role;

static role role_of(const engine_msg *m)
{
    if (strcmp(m->role, "system") == 0)
        return ROLE_SYSTEM;
    if (strcmp(m->role, "user") == 0)
        return ROLE_USER;
    if (strcmp(m->role, "assistant") == 0)
        return ROLE_ASSISTANT;
    return ROLE_UNKNOWN;
}

static const char *const role_names[] = {"system", "user", "assistant"};

/* The formats whose templates demand user, assistant, user, … after an
 * optional first system message. */
static bool alternates(chat_format f)
{
    return f == CHAT_LLAMA2 || f == CHAT_MISTRAL || f == CHAT_GEMMA;
}

static int check(chat_format f, const engine_msg *msgs, size_t n, mlx_err *err)
{
    const char *name = chat_format_name(f);
    if (n == 0)
        return mlx_err_set(err, MLX_EINVAL, "a chat prompt needs at least one message");
    for (size_t i = 0; i < n; i++) {
        if (msgs[i].role == NULL)
            return mlx_err_set(err, MLX_EINVAL, "message %zu has no role", i + 1);
        if (role_of(&msgs[i]) == ROLE_UNKNOWN)
            return mlx_err_set(err, MLX_EINVAL,
                               "message %zu has the role '%.40s'; the roles are system, "
                               "user and assistant",
                               i + 1, msgs[i].role);
        if (msgs[i].content == NULL)
            return mlx_err_set(err, MLX_EINVAL, "message %zu has no content", i + 1);
    }
    if (!alternates(f))
        return 0;
    size_t first = role_of(&msgs[0]) == ROLE_SYSTEM ? 1 : 0;
    if (first == n)
        return mlx_err_set(
            err, MLX_EINVAL,
            "the %s format puts the system message into a user turn; add a "
            "user message after it",
            name);
    for (size_t i = first; i < n; i++) {
        role want = (i - first) % 2 == 0 ? ROLE_USER : ROLE_ASSISTANT;
        role got = role_of(&msgs[i]);
        if (got == ROLE_SYSTEM)
            return mlx_err_set(err, MLX_EINVAL,
                               "message %zu is a system message; the %s format takes one "
                               "only as the first message",
                               i + 1, name);
        if (got != want)
            return mlx_err_set(
                err, MLX_EINVAL,
                "message %zu comes from the %s where the %s format needs the "
                "%s: after an optional system message, turns must alternate "
                "user, assistant, user, …",
                i + 1, role_names[got], name, role_names[want]);
    }
    return 0;
}

/* ---- renderers ---------------------------------------------------------- */

static void render_chatml(writer *w, const engine_msg *m, size_t n, bool add_assistant)
{
    for (size_t i = 0; i < n; i++) {
        put(w, "<|im_start|>");
        put(w, m[i].role);
        put(w, "\n");
        put(w, m[i].content);
        put(w, "<|im_end|>\n");
    }
    if (add_assistant)
        put(w, "<|im_start|>assistant\n");
}

static void render_llama2(writer *w, const engine_msg *m, size_t n)
{
    const char *system = role_of(&m[0]) == ROLE_SYSTEM ? m[0].content : NULL;
    size_t first = system != NULL ? 1 : 0;
    for (size_t i = first; i < n; i++) {
        span content = whole(m[i].content);
        if (role_of(&m[i]) == ROLE_ASSISTANT) {
            put(w, " ");
            put_span(w, strip(content));
            put(w, " </s>");
            continue;
        }
        if (i > first)
            put(w, "<s>");
        put(w, "[INST] ");
        if (i == first && system != NULL) {
            /* The template strips "<<SYS>>\n" + system + … + user as one
             * string: only its end can be space, and an empty user message
             * lets the strip reach back into the "\n\n". */
            put(w, "<<SYS>>\n");
            put(w, system);
            span user = rstrip(content);
            put(w, user.n > 0 ? "\n<</SYS>>\n\n" : "\n<</SYS>>");
            put_span(w, user);
        } else {
            put_span(w, strip(content));
        }
        put(w, " [/INST]");
    }
}

static void render_llama3(writer *w, const engine_msg *m, size_t n, bool add_assistant)
{
    for (size_t i = 0; i < n; i++) {
        put(w, "<|start_header_id|>");
        put(w, m[i].role);
        put(w, "<|end_header_id|>\n\n");
        put_span(w, strip(whole(m[i].content)));
        put(w, "<|eot_id|>");
    }
    if (add_assistant)
        put(w, "<|start_header_id|>assistant<|end_header_id|>\n\n");
}

static void render_mistral(writer *w, const engine_msg *m, size_t n)
{
    const char *system = role_of(&m[0]) == ROLE_SYSTEM ? m[0].content : NULL;
    size_t last_user = 0;
    for (size_t i = 0; i < n; i++)
        if (role_of(&m[i]) == ROLE_USER)
            last_user = i;
    for (size_t i = system != NULL ? 1 : 0; i < n; i++) {
        if (role_of(&m[i]) == ROLE_ASSISTANT) {
            put(w, " ");
            put_span(w, strip(whole(m[i].content)));
            put(w, "</s>");
            continue;
        }
        put(w, "[INST] ");
        if (i == last_user && system != NULL) {
            put(w, system);
            put(w, "\n\n");
        }
        put(w, m[i].content);
        put(w, "[/INST]");
    }
}

/* zephyr and phi3 differ only in how a turn ends and what ends a prompt
 * without an assistant turn. */
static void render_tagged(writer *w, const engine_msg *m, size_t n, bool add_assistant,
                          const char *end_of_turn, const char *end_of_prompt)
{
    for (size_t i = 0; i < n; i++) {
        put(w, "<|");
        put(w, m[i].role);
        put(w, "|>\n");
        put(w, m[i].content);
        put(w, end_of_turn);
    }
    put(w, add_assistant ? "<|assistant|>\n" : end_of_prompt);
}

static void render_gemma(writer *w, const engine_msg *m, size_t n, bool add_assistant)
{
    const char *system = role_of(&m[0]) == ROLE_SYSTEM ? m[0].content : NULL;
    size_t first = system != NULL ? 1 : 0;
    for (size_t i = first; i < n; i++) {
        bool user = role_of(&m[i]) == ROLE_USER;
        put(w, user ? "<start_of_turn>user\n" : "<start_of_turn>model\n");
        if (i == first && system != NULL) {
            put(w, system); /* untrimmed, as the template leaves it */
            put(w, "\n\n");
        }
        put_span(w, strip(whole(m[i].content)));
        put(w, "<end_of_turn>\n");
    }
    if (add_assistant)
        put(w, "<start_of_turn>model\n");
}

int chat_apply(chat_format f, const engine_msg *msgs, size_t n, bool add_assistant,
               char **out, mlx_err *err)
{
    *out = NULL;
    if ((unsigned)f > CHAT_GEMMA)
        return mlx_err_set(err, MLX_EINVAL, "chat format %d is not one the engine knows",
                           (int)f);
    if (n > 0 && msgs == NULL)
        return mlx_err_set(err, MLX_EINVAL, "the list of %zu messages is missing", n);
    int rc = check(f, msgs, n, err);
    if (rc != 0)
        return rc;

    writer w = {.rc = 0};
    mlx_buf_init(&w.buf, MLX_MAX_CHAT_PROMPT);
    switch (f) {
    case CHAT_CHATML:
        render_chatml(&w, msgs, n, add_assistant);
        break;
    case CHAT_LLAMA2:
        render_llama2(&w, msgs, n);
        break;
    case CHAT_LLAMA3:
        render_llama3(&w, msgs, n, add_assistant);
        break;
    case CHAT_MISTRAL:
        render_mistral(&w, msgs, n);
        break;
    case CHAT_ZEPHYR:
        render_tagged(&w, msgs, n, add_assistant, "</s>\n", "");
        break;
    case CHAT_PHI3:
        render_tagged(&w, msgs, n, add_assistant, "<|end|>\n", "<|endoftext|>");
        break;
    case CHAT_GEMMA:
        render_gemma(&w, msgs, n, add_assistant);
        break;
    }
    if (w.rc == 0) {
        *out = mlx_buf_take(&w.buf);
        w.rc = *out != NULL ? 0 : MLX_ENOMEM;
    }
    mlx_buf_fini(&w.buf);
    if (w.rc == MLX_ETOOBIG)
        return mlx_err_set(err, MLX_ETOOBIG,
                           "the chat prompt would pass %u MiB; send shorter messages",
                           MLX_MAX_CHAT_PROMPT >> 20);
    if (w.rc != 0)
        return mlx_err_set(err, w.rc, "out of memory for the chat prompt");
    return 0;
}
