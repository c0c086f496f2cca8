/*
 * tokenizer.h — text ↔ token ids with the vocabulary stored in a GGUF file
 * (engine-internal).
 *
 * Two families, chosen by tokenizer.ggml.model:
 *   "llama" — SentencePiece-style BPE over tokenizer.ggml.tokens/scores:
 *             a leading space is added (the "dummy prefix"), spaces become
 *             U+2581, pieces merge by score, and bytes without a piece fall
 *             back to the <0xXX> tokens.
 *   "gpt2"  — byte-level BPE over tokenizer.ggml.merges, after the
 *             pre-tokenizer split named by tokenizer.ggml.pre (llama-bpe for
 *             Llama 3, qwen2 for Qwen2; the Llama 3 split is the default).
 * Special tokens (token_type CONTROL / USER_DEFINED, e.g. <|eot_id|>) are
 * matched as whole tokens in the text when parse_special is set; user-
 * defined ones always are, as in llama.cpp.
 *
 * The results equal llama.cpp's for the same vocabulary, id for id.
 *
 * Lifecycle: tokenizer_load (copies what it needs; the gguf_file may be
 * closed afterwards), any number of calls, tokenizer_free.
 * Thread safety: a loaded tokenizer is immutable; share it freely. An
 * engine_decoder belongs to one caller.
 */
#ifndef MLX_AGENT_ENGINE_TOKENIZER_H
#define MLX_AGENT_ENGINE_TOKENIZER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "agent/engine/engine.h"
#include "agent/engine/gguf.h"
#include "common/err.h"

typedef struct tokenizer tokenizer;

/* MLX_ECORRUPT (the sentence names the key) when the metadata is missing,
 * inconsistent or of an unsupported model kind (tokenizer.ggml.model other
 * than llama/gpt2; a tokenizer.ggml.pre other than the llama-bpe, qwen2,
 * smollm and gpt-2 splits; an id outside the vocabulary, 4294967295 or -1
 * meaning none; a token whose piece exceeds what a stream may release at
 * once, see ENGINE_MAX_PIECE); MLX_ENOMEM. *out: tokenizer_free. */
int tokenizer_load(const gguf_file *f, tokenizer **out, mlx_err *err);
void tokenizer_free(tokenizer *t);

int32_t tokenizer_n_vocab(const tokenizer *t);
int32_t tokenizer_bos(const tokenizer *t); /* -1 when the vocabulary has none */
int32_t tokenizer_eos(const tokenizer *t);
/* Whether a BOS is added to a prompt (tokenizer.ggml.add_bos_token, default
 * true for "llama", per llama.cpp's rules for "gpt2"). */
bool tokenizer_adds_bos(const tokenizer *t);
/* True for tokens that end generation, as llama.cpp decides: EOS, EOT
 * (tokenizer.ggml.eot_token_id), EOM, the fill-in-the-middle pad, repo and
 * file-separator tokens, and every token spelled as an end of turn or of
 * text (<|eot_id|>, <|im_end|>, <|end|>, <end_of_turn>, <|endoftext|>,
 * <|eom_id|>, <|end_of_text|>, <EOT>, …); those are control tokens whatever
 * their token_type says. */
bool tokenizer_is_eog(const tokenizer *t, int32_t id);

/* Encodes len bytes of text (any bytes: invalid UTF-8 is tokenized as
 * llama.cpp tokenizes it). add_bos prepends BOS (when there is one; callers
 * follow tokenizer_adds_bos); parse_special matches special tokens in the
 * text. MLX_ETOOBIG over 256 MiB of text; MLX_ENOMEM. *ids: mlx_free
 * (never NULL on success, even for no ids). */
int tokenizer_encode(const tokenizer *t, const char *text, size_t len, bool add_bos,
                     bool parse_special, int32_t **ids, size_t *n, mlx_err *err);

/* The bytes a token stands for in output text (U+2581 → space, <0xXX> → the
 * byte, byte-level symbols → their bytes; control tokens → ""). Borrowed.
 * May be an incomplete UTF-8 sequence. */
const char *tokenizer_piece(const tokenizer *t, int32_t id, size_t *len);

/* Decodes ids to text; the first piece with any bytes loses the dummy-prefix
 * space for "llama" (add_space_prefix). The text is valid UTF-8: what can
 * never become a character (an invalid byte, a character cut short) is
 * U+FFFD, so ids that came from valid UTF-8 give it back exactly. Spaces
 * are not "cleaned" around punctuation. MLX_EINVAL for an id outside the
 * vocabulary. *out: mlx_free, NUL-terminated; out_len may be NULL. */
int tokenizer_decode(const tokenizer *t, const int32_t *ids, size_t n, char **out,
                     size_t *out_len, mlx_err *err);

/* Incremental decoding for streaming (engine_decoder, engine.h): pushes one
 * id and yields the text that is now complete, holding back a UTF-8
 * sequence until its last byte arrives, so a consumer never sees a broken
 * character. The chunks of ids pushed one by one, then the flush, are
 * exactly tokenizer_decode's text for those ids. To stream text that
 * continues a prompt (generated tokens), set started = true after init, so
 * the first generated piece keeps its leading space. */
void tokenizer_stream_init(engine_decoder *s);
/* Writes the completed text to out (at most cap bytes; ENGINE_MAX_PIECE
 * always suffices; NUL-terminated when there is room) and sets *n.
 * MLX_EINVAL for an id outside the vocabulary, MLX_ETOOBIG when cap is too
 * small; the decoder is unchanged after a failure. */
int tokenizer_stream_push(const tokenizer *t, engine_decoder *s, int32_t id, char *out,
                          size_t cap, size_t *n, mlx_err *err);
/* Whatever is still pending at the end (invalid bytes become U+FFFD). */
size_t tokenizer_stream_flush(engine_decoder *s, char *out, size_t cap);

#endif
