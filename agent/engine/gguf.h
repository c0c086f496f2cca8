/*
 * gguf.h — a bounds-checked reader of GGUF v2/v3 files, and a GGUF v3
 * writer (engine-internal).
 *
 * The file is mapped read-only; every string, array, tensor name and tensor
 * payload below points into the mapping and lives as long as the gguf_file.
 * Nothing is trusted: each count, length, dimension and offset is checked
 * against the file size (and against overflow) while the header is parsed,
 * so once gguf_open succeeds every pointer it hands out is safe to read for
 * its stated length. Strings are NOT NUL-terminated.
 *
 * Format (all integers little-endian; gguf.c's head comment has the byte
 * layout): magic "GGUF", u32 version (2 or 3), u64 tensor count, u64 kv
 * count, the kv pairs, the tensor infos, padding to general.alignment
 * (default 32), then the tensor data; each tensor offset is relative to the
 * data start and a multiple of the alignment.
 *
 * Beyond bounds, the reader refuses what no correct writer produces:
 * duplicate keys or tensor names, empty ones or ones with a NUL byte (they
 * are looked up as C strings), nested arrays, a BOOL byte other than 0 or
 * 1, an alignment that is not a power of two, a dimension of 0, a row
 * length that is not a whole number of blocks, tensors that overlap, and
 * anything over the GGUF ceilings of common/limits.h.
 *
 * Lifecycle: gguf_open or gguf_open_mem, lookups, gguf_close.
 * Thread safety: a gguf_file is immutable after open; share it freely.
 */
#ifndef MLX_AGENT_ENGINE_GGUF_H
#define MLX_AGENT_ENGINE_GGUF_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/err.h"

/* Metadata value types, numbered as the format numbers them. */
typedef enum gguf_type {
    GGUF_TYPE_UINT8 = 0,
    GGUF_TYPE_INT8 = 1,
    GGUF_TYPE_UINT16 = 2,
    GGUF_TYPE_INT16 = 3,
    GGUF_TYPE_UINT32 = 4,
    GGUF_TYPE_INT32 = 5,
    GGUF_TYPE_FLOAT32 = 6,
    GGUF_TYPE_BOOL = 7,
    GGUF_TYPE_STRING = 8,
    GGUF_TYPE_ARRAY = 9,
    GGUF_TYPE_UINT64 = 10,
    GGUF_TYPE_INT64 = 11,
    GGUF_TYPE_FLOAT64 = 12,
    GGUF_TYPE_COUNT_
} gguf_type;

/* Tensor types, numbered as ggml numbers them (gaps are types ggml has
 * retired). Only some are supported by the engine (ggml_type_supported in
 * quant.h); the reader knows the block geometry of all of these, so that a
 * model with an unsupported type opens and the engine's error names the
 * tensor. A number not listed here is refused while parsing. */
typedef enum ggml_type {
    GGML_TYPE_F32 = 0,
    GGML_TYPE_F16 = 1,
    GGML_TYPE_Q4_0 = 2,
    GGML_TYPE_Q4_1 = 3,
    GGML_TYPE_Q5_0 = 6,
    GGML_TYPE_Q5_1 = 7,
    GGML_TYPE_Q8_0 = 8,
    GGML_TYPE_Q8_1 = 9,
    GGML_TYPE_Q2_K = 10,
    GGML_TYPE_Q3_K = 11,
    GGML_TYPE_Q4_K = 12,
    GGML_TYPE_Q5_K = 13,
    GGML_TYPE_Q6_K = 14,
    GGML_TYPE_Q8_K = 15,
    GGML_TYPE_IQ2_XXS = 16,
    GGML_TYPE_IQ2_XS = 17,
    GGML_TYPE_IQ3_XXS = 18,
    GGML_TYPE_IQ1_S = 19,
    GGML_TYPE_IQ4_NL = 20,
    GGML_TYPE_IQ3_S = 21,
    GGML_TYPE_IQ2_S = 22,
    GGML_TYPE_IQ4_XS = 23,
    GGML_TYPE_I8 = 24,
    GGML_TYPE_I16 = 25,
    GGML_TYPE_I32 = 26,
    GGML_TYPE_I64 = 27,
    GGML_TYPE_F64 = 28,
    GGML_TYPE_IQ1_M = 29,
    GGML_TYPE_BF16 = 30,
    GGML_TYPE_TQ1_0 = 34,
    GGML_TYPE_TQ2_0 = 35,
    GGML_TYPE_MXFP4 = 39,
    GGML_TYPE_COUNT_ = 40
} ggml_type;

#define GGUF_MAX_DIMS          MLX_GGUF_MAX_DIMS
#define GGUF_DEFAULT_ALIGNMENT 32

typedef struct gguf_str {
    const char *ptr; /* into the mapping; not NUL-terminated */
    uint64_t len;
} gguf_str;

typedef struct gguf_kv {
    gguf_str key;
    gguf_type type;
    union {
        uint64_t u64; /* UINT8..UINT64 and BOOL (0 or 1), widened */
        int64_t i64;  /* INT8..INT64, widened */
        double f64;   /* FLOAT32, FLOAT64, widened */
        gguf_str str;
        struct {
            gguf_type type; /* element type; never ARRAY (nested arrays are refused) */
            uint64_t n;
            const uint8_t *data; /* n packed little-endian elements, unaligned:
                                    read them with memcpy; STRING elements are
                                    length-prefixed, see gguf_arr_str */
            uint64_t nbytes;     /* bytes from data to the array's end */
        } arr;
    } v;
} gguf_kv;

typedef struct gguf_tensor {
    gguf_str name;
    uint32_t n_dims;            /* 0..GGUF_MAX_DIMS */
    uint64_t ne[GGUF_MAX_DIMS]; /* ne[0] is the row length; unused dims are 1 */
    ggml_type type;
    uint64_t offset;  /* from the start of the data section */
    const void *data; /* into the mapping; aligned to the alignment when the
                         mapping is (always for gguf_open) */
    uint64_t nbytes;  /* ne[0]*…*ne[3] / block elements × block bytes */
} gguf_tensor;

typedef struct gguf_file {
    uint32_t version;
    uint64_t n_kv, n_tensors;
    const gguf_kv *kv;          /* n_kv, in file order */
    const gguf_tensor *tensors; /* n_tensors, in file order */
    uint64_t alignment;         /* general.alignment, or 32 */
    uint64_t data_offset;       /* where the data section starts in the file */
    const uint8_t *base;        /* the whole mapping */
    uint64_t size;
    void *priv_; /* reader's own state */
} gguf_file;

/* Maps and parses path. *out: gguf_close; untouched on failure. Errors name
 * the file and what is wrong in it ("truncated in the metadata of key 'x'",
 * "tensor 'y' ends past the end of the file", "unsupported GGUF version
 * 1"): MLX_ENOENT, MLX_EIO, MLX_ECORRUPT (a damaged or unsupported GGUF
 * file), MLX_EINVAL (not a GGUF file, or not a regular file), MLX_ENOMEM,
 * MLX_ETOOBIG (larger than the address space). */
int gguf_open(const char *path, gguf_file **out, mlx_err *err);

/* The same on bytes in memory (borrowed; must outlive the gguf_file). For
 * tests and the fuzzer. */
int gguf_open_mem(const void *data, size_t size, gguf_file **out, mlx_err *err);

void gguf_close(gguf_file *f); /* f may be NULL */

/* NULL when absent. O(log n): the reader keeps a sorted index. */
const gguf_kv *gguf_find(const gguf_file *f, const char *key);
const gguf_tensor *gguf_find_tensor(const gguf_file *f, const char *name);

/* Typed getters: 0, MLX_ENOENT when the key is absent (out untouched, so a
 * default set beforehand stays; the sentence says the model lacks the key,
 * for callers to whom it is required), MLX_ECORRUPT when it has another type
 * or does not fit (the sentence names the key). Integer getters accept any integer type
 * (not BOOL) whose value fits; gguf_get_f32 accepts FLOAT32, and FLOAT64 within float's
 * range. */
int gguf_get_u32(const gguf_file *f, const char *key, uint32_t *out, mlx_err *err);
int gguf_get_f32(const gguf_file *f, const char *key, float *out, mlx_err *err);
int gguf_get_bool(const gguf_file *f, const char *key, bool *out, mlx_err *err);
int gguf_get_str(const gguf_file *f, const char *key, gguf_str *out, mlx_err *err);
/* An array of the given element type (MLX_ECORRUPT for another one). */
int gguf_get_arr(const gguf_file *f, const char *key, gguf_type elem, const gguf_kv **out,
                 mlx_err *err);

/* Element i of a STRING array; {NULL, 0} when i is out of range or arr is
 * not a STRING array. Walks from the start: O(i). For whole vocabularies use
 * gguf_arr_str_next. */
gguf_str gguf_arr_str(const gguf_kv *arr, uint64_t i);
/* Iterates a STRING array: *pos starts at 0 (it is a byte position, opaque
 * to the caller); returns the next element. The caller stops after
 * arr->v.arr.n elements; past the end it returns {NULL, 0}. */
gguf_str gguf_arr_str_next(const gguf_kv *arr, uint64_t *pos);

/* A string from the file, made safe to quote in a sentence: at most 48
 * bytes, control and non-ASCII bytes shown as '?'. Returns buf. */
const char *gguf_show_str(gguf_str s, char buf[64]);

/* Compares a gguf_str with a C string. */
bool gguf_str_eq(gguf_str s, const char *c);

/* "UINT32", "STRING", …; "unknown" for a number outside the enum. */
const char *gguf_type_name(gguf_type t);
/* Bytes of one value of a fixed-size type; 0 for STRING, ARRAY and unknown. */
size_t gguf_type_size(gguf_type t);

/* Block geometry of a tensor type: elements per block and bytes per block;
 * 0, 0 for an unknown type. Used to size tensors while parsing. */
void ggml_type_block(ggml_type t, uint32_t *block_elems, uint32_t *block_bytes);
const char *ggml_type_name(ggml_type t); /* "Q4_K"; "unknown" for an unknown type */

/*
 * Writing GGUF v3 files (the synthetic models, test fixtures): collect
 * metadata and tensors, then write them out in one go. Keys keep the order
 * they were set in; setting a key twice, an empty key or one longer than
 * MLX_GGUF_MAX_KEY is MLX_EINVAL, and so are a repeated or over-long tensor
 * name (MLX_GGUF_MAX_TENSOR_NAME), a type without known geometry, more than
 * GGUF_MAX_DIMS dimensions, a zero dimension or a row length that is not a
 * whole number of blocks. Tensor data is borrowed until
 * gguf_writer_write/_to_mem returns and must hold exactly the bytes its type
 * and shape need. Tensors are aligned to general.alignment when set (as a
 * UINT32 power of two up to MLX_GGUF_MAX_ALIGNMENT; anything else makes the
 * write MLX_EINVAL), else 32; each tensor's bytes are padded with zeros to
 * the alignment, the last one included.
 *
 * A failed call leaves the writer as it was, so it can be used further or
 * freed. Writing twice gives the same bytes.
 *
 * Thread safety: a writer belongs to one thread at a time.
 */
typedef struct gguf_writer gguf_writer;

int gguf_writer_new(gguf_writer **out, mlx_err *err); /* gguf_writer_free */
void gguf_writer_free(gguf_writer *w);                /* w may be NULL */
int gguf_writer_set_u32(gguf_writer *w, const char *key, uint32_t v, mlx_err *err);
int gguf_writer_set_i32(gguf_writer *w, const char *key, int32_t v, mlx_err *err);
int gguf_writer_set_f32(gguf_writer *w, const char *key, float v, mlx_err *err);
int gguf_writer_set_bool(gguf_writer *w, const char *key, bool v, mlx_err *err);
int gguf_writer_set_str(gguf_writer *w, const char *key, const char *v, mlx_err *err);
/* Any scalar type but STRING and ARRAY: value points to one host-order value
 * of that type (uint8_t for UINT8, double for FLOAT64, bool for BOOL). */
int gguf_writer_set_scalar(gguf_writer *w, const char *key, gguf_type type,
                           const void *value, mlx_err *err);
int gguf_writer_set_arr_str(gguf_writer *w, const char *key, const char *const *v,
                            size_t n, mlx_err *err);
int gguf_writer_set_arr_f32(gguf_writer *w, const char *key, const float *v, size_t n,
                            mlx_err *err);
int gguf_writer_set_arr_i32(gguf_writer *w, const char *key, const int32_t *v, size_t n,
                            mlx_err *err);
/* An array of any scalar element type but STRING and ARRAY: v holds n
 * host-order values of that type (as gguf_writer_set_scalar's value). */
int gguf_writer_set_arr(gguf_writer *w, const char *key, gguf_type elem, const void *v,
                        size_t n, mlx_err *err);
int gguf_writer_add_tensor(gguf_writer *w, const char *name, ggml_type type,
                           uint32_t n_dims, const uint64_t *ne, const void *data,
                           size_t nbytes, mlx_err *err);

/* A tensor whose bytes are made while the file is written, so that a model
 * larger than memory can be written a row at a time. fill is called once per
 * gguf_writer_write/_to_mem, in tensor order, and must hand exactly the
 * tensor's size in bytes to gguf_sink_write, in pieces of any size; arg is
 * borrowed as data is above. A fill that fails returns its error (with a
 * sentence in err) and the write fails with it. */
typedef struct gguf_sink gguf_sink;
typedef int (*gguf_tensor_fill)(void *arg, gguf_sink *sink, mlx_err *err);
int gguf_sink_write(gguf_sink *sink, const void *data, size_t len, mlx_err *err);
int gguf_writer_add_tensor_fill(gguf_writer *w, const char *name, ggml_type type,
                                uint32_t n_dims, const uint64_t *ne,
                                gguf_tensor_fill fill, void *arg, mlx_err *err);

/* Writes to a temporary file beside path and renames it into place; on
 * failure the temporary file is removed and path is untouched. Memory used
 * beyond the writer's own: one 1 MiB output buffer. */
int gguf_writer_write(gguf_writer *w, const char *path, mlx_err *err);
/* The file's bytes in memory; *data: mlx_free. */
int gguf_writer_to_mem(gguf_writer *w, void **data, size_t *len, mlx_err *err);

#endif
