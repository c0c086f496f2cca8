/*
 * chat.c — `mlxctl chat MODEL`: a conversation with a model of the fleet.
 *
 * Each line read from stdin is the user's turn. The API keeps no state
 * between requests, so each request carries the whole conversation: the
 * system prompt and every turn so far. The conversation lives as long as
 * the command; a session key keeps its requests on one node, where the
 * shared beginning may still be cached. Lines that start with '/' are
 * commands: /bye (or the end of input) ends the chat, /clear forgets the
 * turns (the system prompt stays), /? lists them.
 *
 * On a terminal it prompts ">>> "; Ctrl-C cuts the answer being made short
 * (the turn is forgotten) or, at the prompt, says how to leave, and a
 * second Ctrl-C before the answer's next piece ends mlxctl. With input
 * from a pipe it prints only the answers, and the first failure ends it
 * with its exit status.
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "common/cli.h"
#include "common/limits.h"
#include "common/rand.h"
#include "coordinator/ctl/ctl.h"

/* Set by SIGINT while chatting on a terminal; read by the main thread. */
static volatile sig_atomic_t interrupted;

static void on_sigint(int sig)
{
    if (interrupted) {
        /* Nothing noticed the first: leave as Ctrl-C always does. */
        signal(sig, SIG_DFL);
        raise(sig);
        return;
    }
    interrupted = 1;
}

/* Without SA_RESTART, so that a read at the prompt returns EINTR. */
static void catch_sigint(void)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_sigint;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
}

enum line_status {
    LINE_OK,
    LINE_END,         /* end of input */
    LINE_INTERRUPTED, /* Ctrl-C at the prompt */
    LINE_FAILED,      /* reported */
};

/* Reads one line from stdin into b, without its end ("\n" or "\r\n"). */
static enum line_status read_line(mlx_buf *b)
{
    mlx_buf_reset(b);
    char chunk[4096];
    for (;;) {
        if (fgets(chunk, sizeof chunk, stdin) == NULL) {
            if (ferror(stdin) && errno == EINTR && interrupted) {
                clearerr(stdin);
                return LINE_INTERRUPTED;
            }
            if (ferror(stdin)) {
                fprintf(stderr, "mlxctl: cannot read stdin: %s\n", strerror(errno));
                return LINE_FAILED;
            }
            return b->len > 0 ? LINE_OK : LINE_END;
        }
        size_t n = strlen(chunk);
        bool end = n > 0 && chunk[n - 1] == '\n';
        if (end)
            n--;
        if (mlx_buf_append(b, chunk, n) != 0) {
            fprintf(stderr,
                    "mlxctl: a line of input is longer than the coordinator takes (%u "
                    "bytes); send shorter turns\n",
                    MLX_MAX_HTTP_BODY);
            return LINE_FAILED;
        }
        if (end)
            break;
    }
    if (b->len > 0 && b->data[b->len - 1] == '\r')
        b->data[--b->len] = '\0';
    return LINE_OK;
}

static bool blank(const char *s)
{
    for (; *s != '\0'; s++)
        if (*s != ' ' && *s != '\t')
            return false;
    return true;
}

/* Forgets every turn; the system prompt, when given, stays. */
static int forget(json_t *history, const ctl_sampling *s)
{
    json_array_clear(history);
    return s->system != NULL ? ctl_message_add(history, "system", s->system) : 0;
}

static void print_help(void)
{
    printf("Available commands:\n"
           "  /clear   forget the conversation so far (the system prompt stays)\n"
           "  /bye     leave (Ctrl-D too)\n"
           "  /?       show this help\n");
}

/* One user turn: the answer, kept in history, or the turn forgotten. */
static int turn(const ctl_gen_opts *o, const char *model, const char *session,
                json_t *history, const char *text, bool interactive)
{
    int rc = ctl_message_add(history, "user", text);
    if (rc != 0)
        return rc;
    mlx_buf reply;
    mlx_buf_init(&reply, MLX_MAX_HTTP_BODY);
    interrupted = 0;
    ctl_generation g = {.model = model,
                        .messages = history,
                        .session = session,
                        .stop = interactive ? &interrupted : NULL,
                        .reply = &reply};
    rc = ctl_generate(o, &g);
    interrupted = 0;
    if (rc == 0)
        rc = ctl_message_add(history, "assistant", mlx_buf_str(&reply));
    if (rc != 0)
        json_array_remove(history, json_array_size(history) - 1);
    if (interactive)
        putchar('\n');
    mlx_buf_fini(&reply);
    return rc;
}

static int chat(const mlx_program *prog, const mlx_cmd *cmd, int argc, char **argv)
{
    ctl_gen_opts o = {0};
    mlx_args args = {0};
    json_t *history = NULL;
    bool interactive = isatty(STDIN_FILENO);
    mlx_buf line;
    mlx_buf_init(&line, MLX_MAX_HTTP_BODY);
    int rc = mlx_cli_load(prog, cmd, argc, argv, &o, &args);
    if (rc != 0 || args.help)
        goto out;
    const char *model = args.argv[0];
    char session[64] = "mlxctl-chat-";
    size_t prefix = strlen(session);
    if (mlx_rand_hex(session + prefix, 16, NULL) != 0)
        session[0] = '\0'; /* no affinity then; the chat works without it */
    if ((history = json_array()) == NULL || (rc = forget(history, &o.sampling)) != 0) {
        rc = rc != 0 ? rc : MLX_ENOMEM;
        goto out;
    }
    if (interactive)
        catch_sigint();
    for (;;) {
        if (interactive) {
            fputs(">>> ", stdout);
            fflush(stdout);
        }
        enum line_status st = read_line(&line);
        if (st == LINE_INTERRUPTED) {
            interrupted = 0;
            printf("\nUse Ctrl-D or /bye to leave.\n");
            continue;
        }
        if (st == LINE_END && interactive)
            putchar('\n');
        if (st == LINE_FAILED)
            rc = MLX_EIO;
        if (st != LINE_OK)
            break;
        const char *text = mlx_buf_str(&line);
        int step = 0;
        if (blank(text)) {
            continue;
        } else if (strcmp(text, "/bye") == 0) {
            break;
        } else if (strcmp(text, "/clear") == 0) {
            step = forget(history, &o.sampling);
            if (step == 0 && interactive)
                printf("Cleared the conversation.\n");
        } else if (strcmp(text, "/?") == 0 || strcmp(text, "/help") == 0) {
            print_help();
        } else if (text[0] == '/') {
            fprintf(stderr, "mlxctl: unknown chat command '%.64s'; /? lists them\n",
                    text);
            step = MLX_EUSAGE;
        } else {
            step =
                turn(&o, model, session[0] ? session : NULL, history, text, interactive);
        }
        /* A person can try again; a script learns of the failure. */
        if (step != 0 && step != MLX_ECLOSED && !interactive) {
            rc = step;
            break;
        }
    }
    if (interactive)
        signal(SIGINT, SIG_DFL);
out:
    json_decref(history);
    mlx_buf_fini(&line);
    mlx_config_free(cmd, &o);
    mlx_config_free_args(&args);
    return rc;
}

const mlx_cmd ctl_cmd_chat = {
    .name = "chat",
    .args = "MODEL",
    .summary = "talk with a model of the fleet; the conversation lasts the session",
    .about =
        "Each line you type is sent with the conversation so far, and the answer\n"
        "streams back. /clear forgets the conversation (the --system prompt stays),\n"
        "/bye or Ctrl-D ends it, /? lists the commands. Ctrl-C stops an answer.\n"
        "Lines may come from a pipe: then only the answers are printed, and the\n"
        "first failure ends the chat. --json prints each answer's JSON on a line.",
    .opts = ctl_gen_opts_table,
    .min_args = 1,
    .max_args = 1,
    .run = chat,
};
