/*
 * limits.h — every maximum the fleet enforces, in one place, with its reason.
 *
 * A buffer, a message or a count read from outside gets one of these as its
 * ceiling when it is created; code checks against the constant named here and
 * never against a literal. Raising a limit is a wire- or disk-visible change:
 * say why beside the new value.
 */
#ifndef MLX_COMMON_LIMITS_H
#define MLX_COMMON_LIMITS_H

/* Control-plane messages (Register, Heartbeat, replies) are small: a heartbeat
 * is a few hundred bytes. 1 MiB leaves room for a model inventory of a few
 * thousand entries while keeping a hostile peer from making us allocate much. */
#define MLX_MAX_CONTROL_MSG (1u << 20)

/* Frames up to this size are read so that a message over MLX_MAX_CONTROL_MSG
 * can be answered with a TOO_BIG error; larger ones are dropped by NNG
 * unread, with the connection that sent them. At most this much per context
 * (MLX_CONTROL_CONTEXTS) is ever allocated for requests. */
#define MLX_MAX_CONTROL_FRAME (4u * MLX_MAX_CONTROL_MSG)

/* Model names ("hf:ORG/NAME", "llama3.2:1b") are keys of the store and
 * metric labels. */
#define MLX_MAX_MODEL_NAME 200

/* Models one node may report in a heartbeat. */
#define MLX_MAX_NODE_MODELS 256

/* Node names are shown in tables and used as metric labels. */
#define MLX_MAX_NODE_NAME 63

/* Node ids are 16 lower-case hex digits (64 random bits). */
#define MLX_NODE_ID_LEN 16

/* Request ids travel from the HTTP front to the agent and back in logs. */
#define MLX_MAX_REQUEST_ID 64

/* Addresses such as tcp://[2001:db8::1]:7401 or a host name and port. */
#define MLX_MAX_ADDRESS 255

/* Free-form facts an agent reports (OS name, CPU model, chip). */
#define MLX_MAX_FACT 255

/* One log line, including its prefix; longer lines are cut, never split. */
#define MLX_MAX_LOG_LINE 2048

/* Human error sentences carried in mlx_err. */
#define MLX_MAX_ERR_MSG 512

/* Admin API answers read by mlxctl: a node list for thousands of nodes. */
#define MLX_MAX_HTTP_RESPONSE (64u << 20)

/* Request bodies accepted by the admin HTTP server. */
#define MLX_MAX_HTTP_BODY (1u << 20)

/* A whole INI configuration file. */
#define MLX_MAX_CONFIG_FILE (256 * 1024)

/* Nodes a coordinator tracks; the registry refuses more. */
#define MLX_MAX_NODES 4096

/* Contexts on the coordinator's control socket: this many agents can be
 * served at once while one of them is slow. */
#define MLX_CONTROL_CONTEXTS 16

/* Data-plane messages (agent/dataplane): an Infer carries a prompt or a
 * chat, which the model's context bounds long before this; a TokenChunk
 * carries at most MLX_MAX_DATA_CHUNK bytes of text. Frames up to twice this
 * are read, so that a larger message is answered with TOO_BIG. */
#define MLX_MAX_DATA_MSG (4u << 20)

/* Text in one TokenChunk; what a slow poller has not taken waits for the
 * next Next. Half the message, leaving room for the envelope. */
#define MLX_MAX_DATA_CHUNK (MLX_MAX_DATA_MSG / 2)

/* Log probabilities in one TokenChunk (Infer.top_logprobs): tokens, the
 * alternatives of one token (OpenAI's top_logprobs allows 20), and bytes of
 * one token's or alternative's piece (the engine's ENGINE_MAX_PIECE). A
 * token encodes in under 3 KiB (its piece, and 20 alternatives whose pieces
 * the runtime keeps to 2 KiB together), so a chunk's tokens need under
 * 768 KiB beside its MLX_MAX_DATA_CHUNK of text; more wait for the next
 * Next. */
#define MLX_MAX_CHUNK_TOKENS 256
#define MLX_MAX_TOP_LOGPROBS 20
#define MLX_MAX_TOKEN_PIECE  512

/* Contexts (and threads) on an agent's data-plane socket: requests answered
 * at once, each Next holding one for up to its long poll. */
#define MLX_DATA_CONTEXTS 16

/* Of those, how many may wait in a LoadModel (a model read from disk:
 * seconds) at once, so the rest stay free for the long polls of running
 * generations. Past it a LoadModel is refused as busy and the coordinator
 * tries another node. */
#define MLX_DATA_LOADS (MLX_DATA_CONTEXTS / 2)

/* Generations one agent tracks for its coordinator at once (running,
 * queued, or finished and not yet fetched); past it Infer is refused. */
#define MLX_MAX_DATA_REQUESTS 1024

/* Messages of one chat and stop strings of one Infer, as the HTTP API. */
#define MLX_MAX_INFER_MESSAGES 4096
#define MLX_MAX_INFER_STOPS    16

/* GGUF model files (agent/engine/gguf.c). Every count and length below is
 * also checked against the bytes left in the file, so these ceilings are not
 * what keeps a read in bounds; they keep a hostile header from making the
 * reader allocate an index far larger than any real model needs, and keep
 * sizes small enough that later arithmetic on them cannot overflow. */

/* Metadata pairs: real models carry 20-60 (a vocabulary is one array each
 * for tokens, scores, types and merges). */
#define MLX_GGUF_MAX_KV 65536

/* Tensors: a 405B dense model has ~1,100, a mixture-of-experts model with
 * one tensor per expert a few thousand. */
#define MLX_GGUF_MAX_TENSORS 65536

/* Dimensions of a tensor, as in ggml (GGML_MAX_DIMS). */
#define MLX_GGUF_MAX_DIMS 4

/* Metadata keys: the format caps them at 65535 bytes; real ones are short
 * dotted names ("llama.attention.head_count"). */
#define MLX_GGUF_MAX_KEY 65535

/* Tensor names: ggml keeps names in a 64-byte field with its terminator, so
 * no file ggml can load has a longer one ("blk.31.ffn_down.weight" is 22);
 * the writer keeps the same bound so every file it writes loads there too. */
#define MLX_GGUF_MAX_TENSOR_NAME 63

/* One string value: the longest in real files are chat templates, a few
 * tens of KiB. */
#define MLX_GGUF_MAX_STRING (16u << 20)

/* Elements of one metadata array: the largest are vocabularies and their
 * BPE merge lists (Llama 3: 128,256 tokens and 280,147 merges; Gemma:
 * 256,000 tokens). */
#define MLX_GGUF_MAX_ARRAY (16u << 20)

/* general.alignment: a power of two; real files use 32 (the default) or a
 * page size. A larger value would only waste padding, and capping it keeps
 * offset rounding far from overflow. */
#define MLX_GGUF_MAX_ALIGNMENT (1u << 20)

/* The model hyper-parameters the engine accepts (agent/engine/model.c).
 * Far above any llama-family model (Llama 3 405B: 16384 wide, 126 layers,
 * 128 heads, 128k vocabulary), low enough that sizes computed from them
 * cannot overflow 64 bits and a hostile file cannot make us allocate
 * absurd KV caches. */
#define MLX_MAX_MODEL_EMBD   65536
#define MLX_MAX_MODEL_LAYERS 1024
#define MLX_MAX_MODEL_HEADS  1024
#define MLX_MAX_MODEL_FF     (1u << 20)
#define MLX_MAX_MODEL_VOCAB  (1u << 20)
#define MLX_MAX_MODEL_CTX    (1u << 20)

/* Worker threads of one model's forward pass. */
#define MLX_MAX_ENGINE_THREADS 256

/* Sampling (agent/engine/sampler.c). A sampler sizes its scratch for the
 * vocabulary once, so a draw never allocates: 262,144 covers every model
 * the engine runs (Gemma's 256,000 is the largest) at 3 MiB per sampler. */
#define MLX_MAX_SAMPLER_VOCAB 262144

/* Tokens the repetition penalties look back over: a whole 1M-token
 * context at most, 4 MiB of history per sampler. */
#define MLX_MAX_REPEAT_LAST_N (1u << 20)

/* Stop strings of one request (agent/engine/stop.c). OpenAI allows 4;
 * Ollama and llama.cpp users list a chat format's end markers, rarely more
 * than a handful. Every pushed chunk is compared with each of them, so the
 * count and length bound the work per token. */
#define MLX_MAX_STOPS    16
#define MLX_MAX_STOP_LEN 256

/* A rendered chat prompt (agent/engine/chat.c): a 128k-token context holds
 * about 512 KiB of text, so a prompt 32 times larger could only be refused
 * later, after the work of tokenizing it. */
#define MLX_MAX_CHAT_PROMPT (16u << 20)

#endif
