/*
 * fuzz_gguf.c — the GGUF reader on arbitrary bytes. Whatever opens is then
 * used the way the engine uses a model: every key looked up and read
 * through the typed getters, every string array walked, every tensor found
 * by name, its first and last byte touched and its first row decoded (so a
 * size or offset the reader got wrong shows up under ASan), and the file
 * written back out and reopened.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "agent/engine/gguf.h"
#include "agent/engine/quant.h"
#include "common/alloc.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static volatile uint8_t sink_byte;

static void use_metadata(const gguf_file *f)
{
    for (uint64_t i = 0; i < f->n_kv; i++) {
        const gguf_kv *kv = &f->kv[i];
        char key[80];
        snprintf(key, sizeof key, "%.*s", (int)(kv->key.len < 70 ? kv->key.len : 70),
                 kv->key.ptr);
        uint32_t u;
        float x;
        bool b;
        gguf_str s;
        const gguf_kv *arr;
        gguf_get_u32(f, key, &u, NULL);
        gguf_get_f32(f, key, &x, NULL);
        gguf_get_bool(f, key, &b, NULL);
        gguf_get_str(f, key, &s, NULL);
        if (gguf_get_arr(f, key, GGUF_TYPE_STRING, &arr, NULL) == 0) {
            uint64_t pos = 0;
            for (uint64_t k = 0; k <= arr->v.arr.n; k++) {
                gguf_str e = gguf_arr_str_next(arr, &pos);
                if (e.len > 0)
                    sink_byte ^= (uint8_t)e.ptr[e.len - 1];
            }
            gguf_arr_str(arr, arr->v.arr.n / 2);
        }
    }
}

static void use_tensors(const gguf_file *f)
{
    for (uint64_t i = 0; i < f->n_tensors; i++) {
        const gguf_tensor *t = &f->tensors[i];
        char name[80];
        snprintf(name, sizeof name, "%.*s", (int)t->name.len, t->name.ptr);
        if (gguf_find_tensor(f, name) == NULL)
            __builtin_trap();
        const uint8_t *p = t->data;
        sink_byte ^= p[0] ^ p[t->nbytes - 1];
        size_t n = (size_t)t->ne[0];
        if (ggml_type_supported(t->type) && n <= 4096) {
            float row[4096];
            quant_dequantize_row(t->type, t->data, row, n);
            float dot;
            quant_dot_row(t->type, t->data, row, n, &dot);
        }
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    gguf_file *f = NULL;
    if (gguf_open_mem(data, size, &f, NULL) != 0)
        return 0;
    use_metadata(f);
    use_tensors(f);
    gguf_close(f);
    return 0;
}
