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
#include <string.h>

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

/* A C string of a file's string (NUL bytes in values cut it short, which
 * only changes the value written back). Caller frees. */
static char *dup_str(gguf_str s)
{
    return mlx_strndup(s.len > 0 ? s.ptr : "", (size_t)s.len);
}

static int copy_kv(gguf_writer *w, const gguf_kv *kv)
{
    char *key = dup_str(kv->key);
    int rc = -1;
    if (key == NULL)
        return -1;
    if (kv->type == GGUF_TYPE_STRING) {
        char *v = dup_str(kv->v.str);
        rc = v != NULL ? gguf_writer_set_str(w, key, v, NULL) : -1;
        mlx_free(v);
    } else if (kv->type == GGUF_TYPE_ARRAY && kv->v.arr.type == GGUF_TYPE_STRING) {
        uint64_t n = kv->v.arr.n, pos = 0, i = 0;
        char **v = mlx_calloc(n ? n : 1, sizeof *v);
        for (; v != NULL && i < n; i++)
            if ((v[i] = dup_str(gguf_arr_str_next(kv, &pos))) == NULL)
                break;
        if (v != NULL && i == n)
            rc = gguf_writer_set_arr_str(w, key, (const char *const *)v, n, NULL);
        for (uint64_t k = 0; v != NULL && k < i; k++)
            mlx_free(v[k]);
        mlx_free(v);
    } else if (kv->type == GGUF_TYPE_ARRAY) {
        rc = gguf_writer_set_arr(w, key, kv->v.arr.type, kv->v.arr.data, kv->v.arr.n,
                                 NULL);
    } else {
        /* The widened value back to its own width (little-endian host). */
        uint8_t b[8];
        bool flag = kv->v.u64 != 0;
        if (kv->type == GGUF_TYPE_FLOAT32) {
            float x = (float)kv->v.f64;
            memcpy(b, &x, 4);
        } else {
            memcpy(b, &kv->v.u64, 8);
        }
        rc = gguf_writer_set_scalar(
            w, key, kv->type,
            kv->type == GGUF_TYPE_BOOL ? (const void *)&flag : (const void *)b, NULL);
    }
    mlx_free(key);
    return rc;
}

/* Writes what was read back out: the copy must open and hold the same
 * tensors, byte for byte. */
static void write_back(const gguf_file *f)
{
    gguf_writer *w = NULL;
    if (gguf_writer_new(&w, NULL) != 0)
        return;
    void *mem = NULL;
    size_t len = 0;
    int rc = 0;
    for (uint64_t i = 0; i < f->n_kv && rc == 0; i++)
        rc = copy_kv(w, &f->kv[i]);
    for (uint64_t i = 0; i < f->n_tensors && rc == 0; i++) {
        const gguf_tensor *t = &f->tensors[i];
        char *name = dup_str(t->name);
        rc = name != NULL ? gguf_writer_add_tensor(w, name, t->type, t->n_dims, t->ne,
                                                   t->data, t->nbytes, NULL)
                          : -1;
        mlx_free(name);
    }
    /* Only the writer's stricter alignment rule (UINT32) may refuse it. */
    if (rc == 0 && gguf_writer_to_mem(w, &mem, &len, NULL) == 0) {
        gguf_file *g = NULL;
        if (gguf_open_mem(mem, len, &g, NULL) != 0)
            __builtin_trap();
        if (g->n_kv != f->n_kv || g->n_tensors != f->n_tensors ||
            g->alignment != f->alignment)
            __builtin_trap();
        for (uint64_t i = 0; i < f->n_tensors; i++)
            if (g->tensors[i].nbytes != f->tensors[i].nbytes ||
                memcmp(g->tensors[i].data, f->tensors[i].data, f->tensors[i].nbytes) != 0)
                __builtin_trap();
        gguf_close(g);
    }
    mlx_free(mem);
    gguf_writer_free(w);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    gguf_file *f = NULL;
    if (gguf_open_mem(data, size, &f, NULL) != 0)
        return 0;
    use_metadata(f);
    use_tensors(f);
    write_back(f);
    gguf_close(f);
    return 0;
}
