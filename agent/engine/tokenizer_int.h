/*
 * tokenizer_int.h — what the tokenizer files share (engine-internal; the
 * rest of the engine uses tokenizer.h):
 *
 *   tokenizer_load.c    reading and checking the vocabulary, decoded
 *                       pieces, the accessors
 *   tokenizer_special.c special ids, end-of-generation tokens, the list of
 *                       special tokens matched in a text
 *   tokenizer_bpe_load.c  the byte-level BPE tables: byte alphabet, merges
 *   tokenizer_map.c     the containers: hash maps (string → index, pair →
 *                       merge), the word cache, output ids, scratch, the
 *                       priority queue
 *   tokenizer_encode.c  tokenizer_encode: special tokens, then dispatch
 *   tokenizer_spm.c     SentencePiece-style merging by score ("llama")
 *   tokenizer_bpe.c     byte-level BPE merging by rank ("gpt2")
 *   tokenizer_pre.c     the pre-tokenizer splits of "gpt2" vocabularies
 *   tokenizer_decode.c  pieces back to text, whole or streamed
 *
 * Both merge loops follow llama.cpp's: symbols in a doubly linked list, a
 * priority queue of candidate pairs keyed (priority, position of the left
 * symbol), stale candidates recognised by the lengths they were made with.
 * Merging always takes the best adjacent pair present, ties to the
 * leftmost, so the queue reproduces llama.cpp's order exactly.
 */
#ifndef MLX_AGENT_ENGINE_TOKENIZER_INT_H
#define MLX_AGENT_ENGINE_TOKENIZER_INT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "agent/engine/tokenizer.h"

/* Longest text tokenizer_encode takes. A prompt is at most a few MiB (a
 * 128k-token context is about 512 KiB of text); the ceiling keeps every
 * position and symbol index of the merge loops inside 32 bits even after
 * SentencePiece's escaping triples a text. */
#define TOK_MAX_TEXT (256u << 20)

typedef enum tok_kind {
    TOK_SPM, /* "llama" */
    TOK_BPE, /* "gpt2" */
} tok_kind;

/* The pre-tokenizer splits of tokenizer.ggml.pre that are implemented. */
typedef enum tok_pre {
    TOK_PRE_LLAMA3, /* llama-bpe: contractions, letters, 1-3 digits, … */
    TOK_PRE_QWEN2,  /* the same with single digits */
    TOK_PRE_GPT2,   /* GPT-2's original pattern */
    TOK_PRE_SMOLLM, /* GPT-2's, with every digit split off first */
} tok_pre;

/* Token attributes, as llama.cpp derives them from tokenizer.ggml.token_type
 * (0 undefined, 1 normal, 2 unknown, 3 control, 4 user defined, 5 unused,
 * 6 byte), plus whether the token ends generation. */
enum {
    TOK_ATTR_NORMAL = 1 << 0,
    TOK_ATTR_UNKNOWN = 1 << 1,
    TOK_ATTR_CONTROL = 1 << 2,
    TOK_ATTR_USER = 1 << 3,
    TOK_ATTR_UNUSED = 1 << 4,
    TOK_ATTR_BYTE = 1 << 5,
    TOK_ATTR_EOG = 1 << 7,
};

/* Strings by index: string i is bytes[off[i] .. off[i+1]). */
typedef struct tok_strtab {
    char *bytes;
    uint32_t *off; /* n + 1 */
    uint32_t n;
} tok_strtab;

static inline const char *tok_str(const tok_strtab *t, uint32_t i, size_t *len)
{
    *len = t->off[i + 1] - t->off[i];
    return t->bytes + t->off[i];
}

/* A string → index hash map over a tok_strtab (open addressing; a slot
 * holds the key's 32-bit hash and index + 1, 0 when empty). */
typedef struct tok_strmap {
    uint64_t *slots;
    uint32_t mask, count;
} tok_strmap;

/* A merge of two strings (by their index in the BPE string table): its
 * rank (position in tokenizer.ggml.merges, lower merges first) and the
 * index of the merged string (-1 when no token or merge has it). */
typedef struct tok_merge {
    uint64_t key; /* left << 32 | right; UINT64_MAX when the slot is empty */
    uint32_t rank;
    int32_t result;
} tok_merge;

typedef struct tok_pairmap {
    tok_merge *slots;
    uint32_t mask;
} tok_pairmap;

struct tokenizer {
    tok_kind kind;
    tok_pre pre;
    int32_t n_vocab;
    /* -1 when absent */
    int32_t bos, eos, eot, eom, unk, pad;
    bool add_bos;          /* a prompt starts with BOS */
    bool add_space_prefix; /* SPM: a space before the text, dropped on decode */
    bool ignore_merges;    /* BPE: a pre-tokenized word that is a token is kept whole */

    uint8_t *attr;    /* n_vocab TOK_ATTR_* */
    float *scores;    /* n_vocab; SPM merge priorities */
    tok_strtab text;  /* the tokens as the vocabulary spells them */
    tok_strtab piece; /* what each token decodes to; "" for control */
    tok_strmap text_map;

    /* Special tokens (control, user-defined, unknown) as llama.cpp matches
     * them in a text: longest first, ties by id. by_byte lists, for each
     * first byte, the positions in that order of the ones starting with it. */
    int32_t *specials;
    uint32_t n_specials;
    uint32_t *by_byte_off; /* 257 */
    uint32_t *by_byte;

    /* SPM */
    int32_t byte_tok[256]; /* the token a byte falls back to, -1: none */
    bool spm_words;        /* the text may be merged one '▁'-led word at a time */
    bool spm_alone[128];   /* ASCII characters in no longer token: merged with nothing */

    /* BPE: strings are raw bytes (the byte-level alphabet undone). Index
     * i < n_vocab is token i (empty when its text is not in the alphabet);
     * the rest are merge halves that are no token. */
    tok_strtab raw;
    tok_strmap raw_map;
    tok_pairmap merges;
    int32_t byte_sid[256];    /* the string index of each single byte, -1: none */
    int32_t byte_fb[256][2];  /* tokens a byte falls back to (-1: none) */
    uint8_t byte_enc[256][3]; /* the alphabet: length, then 1-2 UTF-8 bytes */
};

/* tokenizer_map.c */
uint32_t tok_hash(const void *data, size_t len);
int tok_strmap_init(tok_strmap *m, uint32_t n_keys);
void tok_strmap_fini(tok_strmap *m);
/* The index of the string equal to key, or -1. */
int32_t tok_strmap_find(const tok_strmap *m, const tok_strtab *t, const void *key,
                        size_t len);
/* Adds string index i unless an equal string is present; returns the index
 * already present, or -1 when i was added. The map must have room: it is
 * sized at init for n_keys, tok_strmap_reserve makes more. */
int32_t tok_strmap_add(tok_strmap *m, const tok_strtab *t, uint32_t i);
/* Room for more keys (MLX_ENOMEM, the map unchanged, when there is none). */
int tok_strmap_reserve(tok_strmap *m, uint32_t more);
int tok_pairmap_init(tok_pairmap *m, uint32_t n_keys);
void tok_pairmap_fini(tok_pairmap *m);
/* The slot for (a, b): either holding it, or the empty slot it would go in
 * (key UINT64_MAX). */
tok_merge *tok_pairmap_slot(const tok_pairmap *m, int32_t a, int32_t b);

/* tokenizer_special.c: reads the special ids, finds the end-of-turn
 * tokens, marks end-of-generation and lists the special tokens; then the
 * per-kind tables (tok_spm_setup). */
int tok_special_setup(tokenizer *t, const gguf_file *f, mlx_err *err);

/* tokenizer_spm.c: byte fallbacks and whether words may be merged apart. */
void tok_spm_setup(tokenizer *t);

/* tokenizer_bpe_load.c: fills raw, raw_map, merges, byte_sid, byte_fb and
 * byte_enc from the tokens and tokenizer.ggml.merges. */
int tok_bpe_load(tokenizer *t, const gguf_kv *merges, mlx_err *err);
/* Undoes the byte-level alphabet: the raw bytes of text (at most len) into
 * out; false when text has a character outside the alphabet. */
bool tok_bpe_unmap(const char *text, size_t len, uint8_t *out, size_t *out_len);
/* The piece of a normal BPE token: its text with the alphabet undone, as
 * llama.cpp decodes it (a character outside the alphabet becomes
 * "[UNK_BYTE_0x<hex>" + text + "]"). Writes at most cap bytes to out and
 * returns the length the piece has (more than cap: cut short). */
size_t tok_bpe_piece(const char *text, size_t len, char *out, size_t cap);

/* Token ids being produced. */
typedef struct tok_out {
    int32_t *ids;
    size_t n, cap;
} tok_out;

int tok_out_push(tok_out *o, int32_t id, mlx_err *err);
int tok_out_append(tok_out *o, const int32_t *ids, size_t n, mlx_err *err);

/* A symbol of a merge loop: bytes [start, start + n) of the word, n = 0
 * once merged into its left neighbour. */
typedef struct tok_sym {
    uint32_t start, n;
    int32_t prev, next; /* -1 at the ends */
    int32_t id;         /* SPM: token id or -1; BPE: string index or -1 */
} tok_sym;

/* A candidate merge of symbols left and right, made when they had lengths
 * ln and rn (a mismatch later means the candidate is stale). The queue pops
 * the smallest key: priority << 32 | left. */
typedef struct tok_cand {
    uint64_t key;
    int32_t left, right;
    uint32_t ln, rn;
    int32_t id; /* the merged token (SPM) or string index (BPE) */
} tok_cand;

/* The ids of words already tokenized in this call: a long text repeats its
 * words, and a word's ids depend on its bytes alone. Only words up to
 * TOK_CACHE_WORD bytes are kept, and at most max of them. */
#define TOK_CACHE_WORD 48

typedef struct tok_cache_entry {
    uint32_t hash, key_off, key_len, ids_off, n_ids;
} tok_cache_entry;

typedef struct tok_cache {
    uint64_t *slots; /* hash << 32 | entry + 1, 0 when empty; NULL: cache off */
    uint32_t mask, max;
    tok_cache_entry *e;
    size_t n_e;
    uint8_t *keys;
    size_t keys_len, keys_cap;
    int32_t *ids;
    size_t ids_len, ids_cap;
} tok_cache;

/* Turns the cache on for a text of len bytes (short texts gain nothing). */
int tok_cache_init(tok_cache *c, size_t len, mlx_err *err);
/* The ids of word w, or NULL. */
const int32_t *tok_cache_get(const tok_cache *c, const uint8_t *w, size_t n,
                             size_t *n_ids);
/* Remembers the ids of word w (when there is room; otherwise nothing). */
int tok_cache_put(tok_cache *c, const uint8_t *w, size_t n, const int32_t *ids,
                  size_t n_ids, mlx_err *err);

/* Scratch space of one tokenizer_encode call, grown as needed. */
typedef struct tok_work {
    tok_cache cache;
    tok_sym *sym;
    size_t sym_cap;
    tok_cand *heap;
    size_t heap_cap, heap_n;
    uint8_t *buf;
    size_t buf_cap;
} tok_work;

void tok_work_fini(tok_work *w);
int tok_work_grow(void **p, size_t *cap, size_t need, size_t elem, mlx_err *err);
int tok_heap_push(tok_work *w, const tok_cand *c, mlx_err *err);
void tok_heap_pop(tok_work *w, tok_cand *out);

/* tokenizer_spm.c: encodes text that is already escaped (spaces as '▁',
 * the dummy prefix added). */
int tok_spm_encode(const tokenizer *t, tok_work *w, const uint8_t *s, size_t n,
                   tok_out *out, mlx_err *err);

/* tokenizer_bpe.c: encodes one fragment of text between special tokens. */
int tok_bpe_encode(const tokenizer *t, tok_work *w, const uint8_t *s, size_t n,
                   tok_out *out, mlx_err *err);

/* tokenizer_pre.c: splits s into words, calling fn with each word's byte
 * range in order; the words tile s. Stops at and returns fn's first
 * non-zero result. s must hold canonical UTF-8 where it is not plain
 * invalid bytes (tok_bpe_encode re-encodes overlong forms first). */
typedef int (*tok_word_fn)(void *arg, size_t start, size_t end);
int tok_pre_split(tok_pre pre, const uint8_t *s, size_t n, tok_word_fn fn, void *arg);

/* tokenizer_decode.c: the output bound of a piece (see tokenizer_load.c). */
size_t tok_piece_bound(const char *piece, size_t len);

#endif
