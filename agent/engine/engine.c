/*
 * engine.c — a model as the rest of the agent sees it (engine.h): the GGUF
 * file, the weights (model.c), the tokenizer and the chat format, loaded
 * and freed together, and the text and chat calls that only pass through
 * to the tokenizer and the chat formats.
 */
#include <stdio.h>
#include <string.h>

#include "agent/engine/model.h"
#include "common/alloc.h"

void engine_free(engine_model *m)
{
    if (m == NULL)
        return;
    gguf_file *f = m->file;
    tokenizer_free(m->tok);
    model_close(m);
    gguf_close(f);
}

int engine_load(const char *path, const engine_opts *opts, engine_model **out,
                mlx_err *err)
{
    *out = NULL;
    gguf_file *f;
    engine_model *m = NULL;
    int rc = gguf_open(path, &f, err);
    if (rc != 0)
        return rc;
    if ((rc = model_open(f, opts, &m, err)) != 0) {
        gguf_close(f);
        return mlx_err_prefix(err, rc, "%s", path);
    }
    if ((rc = tokenizer_load(f, &m->tok, err)) != 0) {
        engine_free(m);
        return mlx_err_prefix(err, rc, "%s", path);
    }
    if ((uint32_t)tokenizer_n_vocab(m->tok) > m->cfg.n_vocab) {
        rc = mlx_err_set(err, MLX_ECORRUPT,
                         "%s: the tokenizer has %d tokens but the embedding only %u rows",
                         path, (int)tokenizer_n_vocab(m->tok), m->cfg.n_vocab);
        engine_free(m);
        return rc;
    }
    model_read_identity(f, &m->info, &m->chat);
    m->info.bos = tokenizer_bos(m->tok);
    m->info.eos = tokenizer_eos(m->tok);
    *out = m;
    return 0;
}

const engine_info *engine_model_info(const engine_model *m)
{
    return &m->info;
}

int engine_tokenize(const engine_model *m, const char *text, size_t len, bool add_bos,
                    bool parse_special, int32_t **ids, size_t *n, mlx_err *err)
{
    return tokenizer_encode(m->tok, text, len, add_bos && tokenizer_adds_bos(m->tok),
                            parse_special, ids, n, err);
}

int engine_detokenize(const engine_model *m, const int32_t *ids, size_t n, char **out,
                      size_t *len, mlx_err *err)
{
    return tokenizer_decode(m->tok, ids, n, out, len, err);
}

const char *engine_token_piece(const engine_model *m, int32_t id, size_t *len)
{
    return tokenizer_piece(m->tok, id, len);
}

bool engine_is_eog(const engine_model *m, int32_t id)
{
    return tokenizer_is_eog(m->tok, id);
}

void engine_decoder_init(engine_decoder *d)
{
    tokenizer_stream_init(d);
}

int engine_decoder_push(const engine_model *m, engine_decoder *d, int32_t id, char *out,
                        size_t cap, size_t *n, mlx_err *err)
{
    return tokenizer_stream_push(m->tok, d, id, out, cap, n, err);
}

size_t engine_decoder_flush(engine_decoder *d, char *out, size_t cap)
{
    return tokenizer_stream_flush(d, out, cap);
}

int engine_chat_prompt(const engine_model *m, const engine_msg *msgs, size_t n,
                       bool add_assistant, char **out, mlx_err *err)
{
    return chat_apply(m->chat, msgs, n, add_assistant, out, err);
}
