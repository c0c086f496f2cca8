/*
 * describe.c — what a GGUF file holds, read from its metadata and tensor
 * table only (engine_describe), and how its weights are stored, named as
 * llama.cpp and Ollama name it ("Q4_K_M").
 */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "agent/engine/chat.h"
#include "agent/engine/model.h"

/* llama.cpp's file types (llama_ftype), by general.file_type. */
static const char *const file_types[] = {
    [0] = "F32",     [1] = "F16",     [2] = "Q4_0",     [3] = "Q4_1",
    [7] = "Q8_0",    [8] = "Q5_0",    [9] = "Q5_1",     [10] = "Q2_K",
    [11] = "Q3_K_S", [12] = "Q3_K_M", [13] = "Q3_K_L",  [14] = "Q4_K_S",
    [15] = "Q4_K_M", [16] = "Q5_K_S", [17] = "Q5_K_M",  [18] = "Q6_K",
    [19] = "IQ2_XXS", [20] = "IQ2_XS", [21] = "Q2_K_S", [22] = "IQ3_XS",
    [23] = "IQ3_XXS", [24] = "IQ1_S", [25] = "IQ4_NL",  [26] = "IQ3_S",
    [27] = "IQ3_M",  [28] = "IQ2_S",  [29] = "IQ2_M",   [30] = "IQ4_XS",
    [31] = "IQ1_M",  [32] = "BF16",
};

const char *model_quantization(const gguf_file *f)
{
    uint32_t ft;
    if (gguf_get_u32(f, "general.file_type", &ft, NULL) == 0 &&
        ft < sizeof file_types / sizeof *file_types && file_types[ft] != NULL)
        return file_types[ft];
    /* No (known) file type: the type holding the most bytes of matrices. */
    uint64_t bytes[GGML_TYPE_COUNT_] = {0};
    for (uint64_t i = 0; i < f->n_tensors; i++) {
        const gguf_tensor *t = &f->tensors[i];
        if (t->n_dims >= 2 && (unsigned)t->type < GGML_TYPE_COUNT_)
            bytes[t->type] += t->nbytes;
    }
    int best = -1;
    for (int t = 0; t < GGML_TYPE_COUNT_; t++)
        if (bytes[t] > 0 && (best < 0 || bytes[t] > bytes[best]))
            best = t;
    return best < 0 ? "unknown" : ggml_type_name((ggml_type)best);
}

void model_read_identity(const gguf_file *f, engine_info *info, chat_format *chat)
{
    gguf_str s;
    if (gguf_get_str(f, "general.name", &s, NULL) == 0)
        snprintf(info->name, sizeof info->name, "%.*s",
                 (int)(s.len < sizeof info->name ? s.len : sizeof info->name - 1), s.ptr);
    bool has = gguf_get_str(f, "tokenizer.chat_template", &s, NULL) == 0;
    *chat = chat_detect(has ? s.ptr : NULL, has ? (size_t)s.len : 0);
    info->chat_template = has;
    info->chat_format = chat_format_name(*chat);
    info->quantization = model_quantization(f);
}

int engine_describe(const char *path, engine_info *out, mlx_err *err)
{
    memset(out, 0, sizeof *out);
    gguf_file *f;
    int rc = gguf_open(path, &f, err);
    if (rc != 0)
        return rc;
    model_config c;
    if ((rc = model_read_config(f, &out->arch, &c, err)) != 0) {
        gguf_close(f);
        return mlx_err_prefix(err, rc, "%s", path);
    }
    chat_format chat;
    model_read_identity(f, out, &chat);
    const gguf_tensor *embd = gguf_find_tensor(f, "token_embd.weight");
    out->n_vocab = embd != NULL && embd->ne[1] <= UINT32_MAX ? (uint32_t)embd->ne[1] : 0;
    out->n_ctx_train = c.n_ctx_train;
    out->n_embd = c.n_embd;
    out->n_layer = c.n_layer;
    out->n_head = c.n_head;
    out->n_head_kv = c.n_head_kv;
    out->n_ff = c.n_ff;
    for (uint64_t i = 0; i < f->n_tensors; i++) {
        const gguf_tensor *t = &f->tensors[i];
        out->n_params += t->ne[0] * t->ne[1] * t->ne[2] * t->ne[3];
        out->weight_bytes += t->nbytes;
    }
    out->bos = out->eos = -1;
    gguf_close(f);
    return 0;
}

void engine_format_params(uint64_t n, char *out, size_t size)
{
    double v = (double)n;
    if (v >= 1e9)
        snprintf(out, size, v / 1e9 == floor(v / 1e9) ? "%.0fB" : "%.1fB", v / 1e9);
    else if (v >= 1e6)
        snprintf(out, size, v / 1e6 == floor(v / 1e6) ? "%.0fM" : "%.2fM", v / 1e6);
    else if (v >= 1e3)
        snprintf(out, size, "%.0fK", v / 1e3);
    else
        snprintf(out, size, "%llu", (unsigned long long)n);
}
