/*
 * test_chat.c — agent/engine's chat formats: each format's rendering of
 * system + user, user alone, several turns, with and without the
 * assistant's turn opened, written out here from that family's reference
 * template (named beside each expectation; the leading bos_token left out,
 * as the tokenizer adds it); detection from the marker lines of real
 * templates (short excerpts, not whole templates); the templates' trimming;
 * refusals of unknown roles and of turns that do not alternate; the size
 * limit; every allocation failing in turn.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "agent/engine/chat.h"
#include "common/alloc.h"
#include "common/limits.h"

static const engine_msg SYS = {"system", "You are terse."};
static const engine_msg U1 = {"user", "Hi there"};
static const engine_msg A1 = {"assistant", "Hello! How can I help?"};
static const engine_msg U2 = {"user", "Tell me a joke."};

static void expect(chat_format f, const engine_msg *m, size_t n, bool add,
                   const char *want)
{
    char *got = NULL;
    mlx_err err;
    mlx_err_clear(&err);
    if (chat_apply(f, m, n, add, &got, &err) != 0)
        fail_msg("%s: %s", chat_format_name(f), err.msg);
    if (strcmp(got, want) != 0)
        fail_msg("%s rendered\n[%s]\nwant\n[%s]", chat_format_name(f), got, want);
    mlx_free(got);
}

/* The four conversations every format is rendered with. */
static void expect_all(chat_format f, const char *sys_user_add, const char *user,
                       const char *user_add, const char *turns_add)
{
    expect(f, (engine_msg[]){SYS, U1}, 2, true, sys_user_add);
    expect(f, (engine_msg[]){U1}, 1, false, user);
    expect(f, (engine_msg[]){U1}, 1, true, user_add);
    expect(f, (engine_msg[]){SYS, U1, A1, U2}, 4, true, turns_add);
}

static void test_chatml(void **state)
{
    /* teknium/OpenHermes-2.5-Mistral-7B (and Qwen2, SmolLM):
     * {{'<|im_start|>' + message['role'] + '\n' + message['content'] +
     * '<|im_end|>' + '\n'}} … {% if add_generation_prompt %}{{
     * '<|im_start|>assistant\n' }}{% endif %} */
    expect_all(CHAT_CHATML,
               "<|im_start|>system\nYou are terse.<|im_end|>\n"
               "<|im_start|>user\nHi there<|im_end|>\n<|im_start|>assistant\n",
               "<|im_start|>user\nHi there<|im_end|>\n",
               "<|im_start|>user\nHi there<|im_end|>\n<|im_start|>assistant\n",
               "<|im_start|>system\nYou are terse.<|im_end|>\n"
               "<|im_start|>user\nHi there<|im_end|>\n"
               "<|im_start|>assistant\nHello! How can I help?<|im_end|>\n"
               "<|im_start|>user\nTell me a joke.<|im_end|>\n<|im_start|>assistant\n");
    /* no trimming, any order of roles */
    expect(CHAT_CHATML, (engine_msg[]){{"user", " a "}, {"user", "b"}, {"system", "c"}},
           3, false,
           "<|im_start|>user\n a <|im_end|>\n<|im_start|>user\nb<|im_end|>\n"
           "<|im_start|>system\nc<|im_end|>\n");
}

static void test_llama2(void **state)
{
    /* meta-llama/Llama-2-7b-chat-hf: the first user turn carries
     * '<<SYS>>\n' + system_message + '\n<</SYS>>\n\n'; a user turn is
     * bos_token + '[INST] ' + content.strip() + ' [/INST]', an assistant
     * turn ' ' + content.strip() + ' ' + eos_token; no generation prompt. */
    const char *sys_user = "[INST] <<SYS>>\nYou are terse.\n<</SYS>>\n\nHi there [/INST]";
    expect_all(CHAT_LLAMA2, sys_user, "[INST] Hi there [/INST]",
               "[INST] Hi there [/INST]",
               "[INST] <<SYS>>\nYou are terse.\n<</SYS>>\n\nHi there [/INST]"
               " Hello! How can I help? </s><s>[INST] Tell me a joke. [/INST]");
    expect(CHAT_LLAMA2, (engine_msg[]){SYS, U1}, 2, false, sys_user);
    /* strip(): of each content; with a system message, of the joined
     * string, which an empty user message lets reach "\n\n" */
    expect(CHAT_LLAMA2, (engine_msg[]){{"user", " \t padded \n"}, {"assistant", "\nok "}},
           2, false, "[INST] padded [/INST] ok </s>");
    expect(CHAT_LLAMA2, (engine_msg[]){{"system", " S "}, {"user", " \n"}}, 2, true,
           "[INST] <<SYS>>\n S \n<</SYS>> [/INST]");
    expect(CHAT_LLAMA2, (engine_msg[]){{"system", "S"}, {"user", " u "}}, 2, true,
           "[INST] <<SYS>>\nS\n<</SYS>>\n\n u [/INST]");
}

static void test_llama3(void **state)
{
    /* Meta-Llama-3-8B-Instruct: '<|start_header_id|>' + message['role'] +
     * '<|end_header_id|>\n\n' + message['content'] | trim + '<|eot_id|>',
     * bos_token before the first; add_generation_prompt:
     * '<|start_header_id|>assistant<|end_header_id|>\n\n' */
    const char *h_sys = "<|start_header_id|>system<|end_header_id|>\n\n";
    const char *h_user = "<|start_header_id|>user<|end_header_id|>\n\n";
    const char *h_asst = "<|start_header_id|>assistant<|end_header_id|>\n\n";
    char a[512], b[512], c[512], d[1024];
    snprintf(a, sizeof a, "%sYou are terse.<|eot_id|>%sHi there<|eot_id|>%s", h_sys,
             h_user, h_asst);
    snprintf(b, sizeof b, "%sHi there<|eot_id|>", h_user);
    snprintf(c, sizeof c, "%sHi there<|eot_id|>%s", h_user, h_asst);
    snprintf(d, sizeof d,
             "%sYou are terse.<|eot_id|>%sHi there<|eot_id|>%sHello! How can I "
             "help?<|eot_id|>%sTell me a joke.<|eot_id|>%s",
             h_sys, h_user, h_asst, h_user, h_asst);
    expect_all(CHAT_LLAMA3, a, b, c, d);
    /* trim is Python's strip: Unicode spaces (U+00A0, U+3000) too */
    snprintf(a, sizeof a, "%sx y<|eot_id|>", h_user);
    expect(CHAT_LLAMA3, (engine_msg[]){{"user", "\xc2\xa0 x y\n\xe3\x80\x80"}}, 1, false,
           a);
    snprintf(a, sizeof a, "%s<|eot_id|>", h_user);
    expect(CHAT_LLAMA3, (engine_msg[]){{"user", " \n\t "}}, 1, false, a);
    /* a byte that is no character is not space */
    snprintf(a, sizeof a, "%sx \x80<|eot_id|>", h_user);
    expect(CHAT_LLAMA3, (engine_msg[]){{"user", "x \x80 "}}, 1, false, a);
}

static void test_mistral(void **state)
{
    /* Mistral-7B-Instruct-v0.3: '[INST] ' + (system_message + '\n\n' on the
     * last user turn) + message['content'] + '[/INST]'; an assistant turn
     * ' ' + content|trim + eos_token; no generation prompt. Mistral's
     * documented v3 form: "<s>[INST] Hello, how are you?[/INST] Fine, and
     * you?</s>[INST] I'm doing great![/INST]". */
    expect_all(CHAT_MISTRAL, "[INST] You are terse.\n\nHi there[/INST]",
               "[INST] Hi there[/INST]", "[INST] Hi there[/INST]",
               "[INST] Hi there[/INST] Hello! How can I help?</s>"
               "[INST] You are terse.\n\nTell me a joke.[/INST]");
    expect(CHAT_MISTRAL,
           (engine_msg[]){{"user", "Hello, how are you?"},
                          {"assistant", " Fine, and you? "},
                          {"user", "I'm doing great!"}},
           3, false,
           "[INST] Hello, how are you?[/INST] Fine, and you?</s>"
           "[INST] I'm doing great![/INST]");
}

static void test_zephyr(void **state)
{
    /* HuggingFaceH4/zephyr-7b-beta, as its model card renders it:
     * "<|system|>\nYou are a pirate chatbot who always responds with
     * Arr!</s>\n<|user|>\nThere's a llama on my lawn, how can I get rid of
     * him?</s>\n<|assistant|>\n" */
    expect_all(
        CHAT_ZEPHYR,
        "<|system|>\nYou are terse.</s>\n<|user|>\nHi there</s>\n<|assistant|>\n",
        "<|user|>\nHi there</s>\n", "<|user|>\nHi there</s>\n<|assistant|>\n",
        "<|system|>\nYou are terse.</s>\n<|user|>\nHi there</s>\n"
        "<|assistant|>\nHello! How can I help?</s>\n<|user|>\nTell me a joke.</s>\n"
        "<|assistant|>\n");
}

static void test_phi3(void **state)
{
    /* microsoft/Phi-3-mini-4k-instruct: '<|user|>\n' + message['content'] +
     * '<|end|>\n' (system and assistant alike); {% if add_generation_prompt
     * %}{{ '<|assistant|>\n' }}{% else %}{{ eos_token }}{% endif %}, its
     * eos_token being <|endoftext|> */
    expect_all(
        CHAT_PHI3,
        "<|system|>\nYou are terse.<|end|>\n<|user|>\nHi there<|end|>\n<|assistant|>\n",
        "<|user|>\nHi there<|end|>\n<|endoftext|>",
        "<|user|>\nHi there<|end|>\n<|assistant|>\n",
        "<|system|>\nYou are terse.<|end|>\n<|user|>\nHi there<|end|>\n"
        "<|assistant|>\nHello! How can I help?<|end|>\n<|user|>\nTell me a "
        "joke.<|end|>\n<|assistant|>\n");
}

static void test_gemma(void **state)
{
    /* gemma-3 instruction-tuned models: a first system message becomes
     * first_user_prefix = content + '\n\n'; each turn '<start_of_turn>' +
     * role ('model' for the assistant) + '\n' + prefix on the first +
     * content | trim + '<end_of_turn>\n'; add_generation_prompt:
     * '<start_of_turn>model\n' */
    expect_all(
        CHAT_GEMMA,
        "<start_of_turn>user\nYou are terse.\n\nHi there<end_of_turn>\n"
        "<start_of_turn>model\n",
        "<start_of_turn>user\nHi there<end_of_turn>\n",
        "<start_of_turn>user\nHi there<end_of_turn>\n<start_of_turn>model\n",
        "<start_of_turn>user\nYou are terse.\n\nHi there<end_of_turn>\n"
        "<start_of_turn>model\nHello! How can I help?<end_of_turn>\n"
        "<start_of_turn>user\nTell me a joke.<end_of_turn>\n<start_of_turn>model\n");
    expect(CHAT_GEMMA, (engine_msg[]){{"system", " S "}, {"user", " u "}}, 2, false,
           "<start_of_turn>user\n S \n\nu<end_of_turn>\n");
}

static void detects(const char *excerpt, chat_format want)
{
    chat_format got = chat_detect(excerpt, excerpt != NULL ? strlen(excerpt) : 0);
    if (got != want)
        fail_msg("detected %s, want %s, in: %s", chat_format_name(got),
                 chat_format_name(want), excerpt != NULL ? excerpt : "(none)");
}

static void test_detect_from_real_templates(void **state)
{
    /* Llama-2-7b-chat-hf */
    detects(
        "{% set content = '<<SYS>>\\n' + system_message + '\\n<</SYS>>\\n\\n' + "
        "message['content'] %}{% else %}{% set content = message['content'] %}{% endif "
        "%}{% if message['role'] == 'user' %}{{ bos_token + '[INST] ' + content.strip() "
        "+ ' [/INST]' }}",
        CHAT_LLAMA2);
    /* Meta-Llama-3-8B-Instruct */
    detects("{% set content = '<|start_header_id|>' + message['role'] + "
            "'<|end_header_id|>\n\n'+ message['content'] | trim + '<|eot_id|>' %}",
            CHAT_LLAMA3);
    /* Llama-3.1-8B-Instruct */
    detects("{{- \"<|start_header_id|>system<|end_header_id|>\\n\\n\" }}\n{{- "
            "\"Cutting Knowledge Date: December 2023\\n\" }}",
            CHAT_LLAMA3);
    /* OpenHermes-2.5 / Qwen2 (which adds a default system message) */
    detects("{{'<|im_start|>' + message['role'] + '\n' + message['content'] + "
            "'<|im_end|>' + '\n'}}",
            CHAT_CHATML);
    detects(
        "{% if loop.first and messages[0]['role'] != 'system' %}{{ "
        "'<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n' }}{% endif %}",
        CHAT_CHATML);
    /* Mistral-7B-Instruct-v0.1, v0.2, v0.3, and a v7 template */
    detects("{{- ' [INST] ' + message['content'] + ' [/INST]' }}", CHAT_MISTRAL);
    detects("{% if message['role'] == 'user' %}{{ '[INST] ' + message['content'] + ' "
            "[/INST]' }}{% elif message['role'] == 'assistant' %}{{ message['content'] + "
            "eos_token}}",
            CHAT_MISTRAL);
    detects("{{- \"[INST] \" + system_message + \"\\n\\n\" + message[\"content\"] + "
            "\"[/INST]\" }}",
            CHAT_MISTRAL);
    detects(
        "{{- '[SYSTEM_PROMPT]' + system_message + '[/SYSTEM_PROMPT]' }}{{- '[INST]' + "
        "message['content'] + '[/INST]' }}",
        CHAT_MISTRAL);
    /* zephyr-7b-beta, TinyLlama-1.1B-Chat */
    detects("{% if message['role'] == 'user' %}\n{{ '<|user|>\n' + message['content'] + "
            "eos_token }}\n{% elif message['role'] == 'system' %}",
            CHAT_ZEPHYR);
    /* Phi-3-mini-4k-instruct, Phi-3-small (no literal <|user|>) */
    detects("{% elif message['role'] == 'user' %}{{'<|user|>\n' + message['content'] + "
            "'<|end|>\n'}}",
            CHAT_PHI3);
    detects("{{'<|' + message['role'] + '|>' + '\n' + message['content'] + '<|end|>\n' "
            "}}{% endfor %}{% if add_generation_prompt %}{{ '<|assistant|>\n' }}",
            CHAT_PHI3);
    /* gemma-2-2b-it, gemma-3 */
    detects("{{ '<start_of_turn>' + role + '\n' + message['content'] | trim + "
            "'<end_of_turn>\n' }}",
            CHAT_GEMMA);
    /* absent or unknown: ChatML */
    detects(NULL, CHAT_CHATML);
    detects("", CHAT_CHATML);
    detects("{% for m in messages %}{{ m.role }}: {{ m.content }}\n{% endfor %}",
            CHAT_CHATML);
    /* only len bytes are read */
    assert_int_equal(chat_detect("[INST] <<SYS>>", 6), CHAT_MISTRAL);

    const char *names[] = {"chatml", "llama2", "llama3", "mistral",
                           "zephyr", "phi3",   "gemma"};
    for (int f = CHAT_CHATML; f <= CHAT_GEMMA; f++)
        assert_string_equal(chat_format_name((chat_format)f), names[f]);
}

static void refused(chat_format f, const engine_msg *m, size_t n, const char *words)
{
    char *out = (char *)"untouched";
    mlx_err err;
    mlx_err_clear(&err);
    assert_int_equal(chat_apply(f, m, n, true, &out, &err), MLX_EINVAL);
    assert_null(out);
    if (strstr(err.msg, words) == NULL)
        fail_msg("%s: the sentence '%s' does not say '%s'", chat_format_name(f), err.msg,
                 words);
}

static void test_rules_refused(void **state)
{
    for (int f = CHAT_CHATML; f <= CHAT_GEMMA; f++) {
        refused((chat_format)f, (engine_msg[]){U1, {"tool", "42"}}, 2,
                "message 2 has the role 'tool'");
        refused((chat_format)f, (engine_msg[]){{NULL, "x"}}, 1, "message 1 has no role");
        refused((chat_format)f, (engine_msg[]){{"user", NULL}}, 1, "no content");
        refused((chat_format)f, NULL, 0, "at least one message");
    }
    const chat_format alternating[] = {CHAT_LLAMA2, CHAT_MISTRAL, CHAT_GEMMA};
    for (int i = 0; i < 3; i++) {
        chat_format f = alternating[i];
        refused(f, (engine_msg[]){U1, U2}, 2, "message 2 comes from the user where the");
        refused(f, (engine_msg[]){A1, U1}, 2, "message 1 comes from the assistant");
        refused(f, (engine_msg[]){SYS, A1}, 2, "message 2 comes from the assistant");
        refused(f, (engine_msg[]){U1, A1, SYS, U2}, 4, "message 3 is a system message");
        refused(f, (engine_msg[]){SYS}, 1, "add a user message");
        /* a prompt ending in the assistant's turn is fine */
        char *out;
        assert_int_equal(chat_apply(f, (engine_msg[]){U1, A1}, 2, false, &out, NULL), 0);
        mlx_free(out);
    }
    /* the formats with a system turn take any order */
    const chat_format free_order[] = {CHAT_CHATML, CHAT_LLAMA3, CHAT_ZEPHYR, CHAT_PHI3};
    for (int i = 0; i < 4; i++) {
        char *out;
        assert_int_equal(chat_apply(free_order[i], (engine_msg[]){A1, U1, U2, SYS}, 4,
                                    true, &out, NULL),
                         0);
        mlx_free(out);
    }
    char *out;
    mlx_err err;
    assert_int_equal(chat_apply((chat_format)99, (engine_msg[]){U1}, 1, true, &out, &err),
                     MLX_EINVAL);
}

static void test_limits_and_memory(void **state)
{
    size_t big = MLX_MAX_CHAT_PROMPT;
    char *content = malloc(big + 1);
    memset(content, 'x', big);
    content[big] = '\0';
    char *out = NULL;
    mlx_err err;
    mlx_err_clear(&err);
    assert_int_equal(
        chat_apply(CHAT_CHATML, (engine_msg[]){{"user", content}}, 1, true, &out, &err),
        MLX_ETOOBIG);
    assert_null(out);
    assert_non_null(strstr(err.msg, "MiB"));
    free(content);

    /* every allocation failing in turn: ENOMEM, nothing returned, nothing
     * leaked (the sanitizer build checks that) */
    for (long fail = 0;; fail++) {
        mlx_alloc_fail_after(fail);
        mlx_err_clear(&err);
        int rc =
            chat_apply(CHAT_GEMMA, (engine_msg[]){SYS, U1, A1, U2}, 4, true, &out, &err);
        mlx_alloc_fail_reset();
        if (rc == 0) {
            mlx_free(out);
            break;
        }
        assert_int_equal(rc, MLX_ENOMEM);
        assert_null(out);
        assert_true(err.msg[0] != '\0');
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_chatml),
        cmocka_unit_test(test_llama2),
        cmocka_unit_test(test_llama3),
        cmocka_unit_test(test_mistral),
        cmocka_unit_test(test_zephyr),
        cmocka_unit_test(test_phi3),
        cmocka_unit_test(test_gemma),
        cmocka_unit_test(test_detect_from_real_templates),
        cmocka_unit_test(test_rules_refused),
        cmocka_unit_test(test_limits_and_memory),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
