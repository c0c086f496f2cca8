/*
 * pull.h — `cache pull`: downloading models into the store (cache-internal).
 *
 * A pull names its source in one string (SRC), parsed at the edge into a
 * pull_source:
 *
 *   hf:ORG/NAME[@REV][/FILE]   HuggingFace Hub: a whole repository, or one
 *                              file of it (FILE may hold '/')
 *   ollama:NAME[:TAG]          an Ollama registry; NAME is "name",
 *                              "ns/name" or "host/ns/name"
 *   https://… or http://…      one file, whose SHA-256 the user supplies
 *
 * Every file becomes a blob the same way (pull_fetch.c): bytes stream into
 * <data>/tmp/<digest>.partial under an flock, hashed as they arrive and
 * checked against the declared size; a finished file whose digest is the
 * expected one moves into the store. An interrupted download leaves its
 * .partial, which the next pull re-hashes and continues with an HTTP Range
 * request. A model is recorded only once all its blobs are in the store.
 *
 * Everything read from the network (headers, JSON, Location) is outside
 * data: bounded by the limits below and checked before use.
 *
 * Thread safety: none of this is shared; one pull per thread.
 */
#ifndef MLX_AGENT_CACHE_PULL_H
#define MLX_AGENT_CACHE_PULL_H

#include <curl/curl.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "agent/cache/internal.h"
#include "agent/cache/store.h"
#include "common/buf.h"
#include "common/err.h"

/* ---- limits, each with its reason ----------------------------------------- */

/* URLs given on the command line or found in Location headers. Signed CDN
 * URLs carry long query strings (a few hundred bytes); 4 KiB is generous. */
#define PULL_MAX_URL 4096

/* HuggingFace repository ids: the Hub allows 96 characters per part. */
#define PULL_MAX_HF_PART 96

/* A git revision: a branch or tag name or a 40-digit commit. */
#define PULL_MAX_HF_REV 128

/* Files of one HF repository. Large repositories hold a few thousand;
 * more is not a model. */
#define PULL_MAX_FILES 10000

/* The HF revision JSON (file list plus metadata): ~200 bytes per file. */
#define PULL_MAX_REVISION_JSON (8u << 20)

/* Parts of an Ollama name, as Ollama bounds them (host: a DNS name and port). */
#define PULL_MAX_OLLAMA_PART 80
#define PULL_MAX_OLLAMA_HOST 253

/* One response header value that we keep (ETag, Location, sizes). */
#define PULL_MAX_HEADER 4096

/* Redirects followed for one file (HF: resolve → CDN; Ollama: blob → CDN). */
#define PULL_MAX_REDIRECTS 10

/* A declared size we do not know yet (a plain URL before its answer). */
#define PULL_SIZE_UNKNOWN UINT64_MAX

/* ---- sources (pull_source.c) ---------------------------------------------- */

typedef enum pull_kind {
    PULL_HF,     /* HuggingFace Hub */
    PULL_OLLAMA, /* an Ollama (OCI distribution) registry */
    PULL_URL,    /* a plain http(s) URL */
} pull_kind;

typedef struct pull_source {
    pull_kind kind;
    /* PULL_HF */
    char org[PULL_MAX_HF_PART + 1];
    char repo[PULL_MAX_HF_PART + 1];
    char rev[PULL_MAX_HF_REV + 1];     /* "main" when not given */
    char file[MLX_MAX_MODEL_NAME + 1]; /* "" for the whole repository */
    /* PULL_OLLAMA */
    char host[PULL_MAX_OLLAMA_HOST + 1]; /* "" when the name has none */
    char ns[PULL_MAX_OLLAMA_PART + 1];   /* "library" when not given */
    char name[PULL_MAX_OLLAMA_PART + 1];
    char tag[PULL_MAX_OLLAMA_PART + 1]; /* "latest" when not given */
    /* PULL_URL */
    char url[PULL_MAX_URL + 1];
} pull_source;

/* Parses SRC; MLX_EUSAGE with a sentence naming what is wrong. */
int pull_parse_source(const char *text, pull_source *out, mlx_err *err);

/* A base URL given by a person (--hf-endpoint, --ollama-registry):
 * http(s)://HOST[:PORT][/PATH] without query or fragment. Copied without
 * its trailing '/'. MLX_EUSAGE when malformed; flag names it. */
int pull_parse_base_url(const char *text, const char *flag, char *out, size_t size,
                        mlx_err *err);

/* The host of url with its port when it has one ("127.0.0.1:8080",
 * "registry.ollama.ai"), lower-case. MLX_EINVAL when url is not http(s). */
int pull_url_host(const char *url, char *out, size_t size, mlx_err *err);

/* "scheme://host[:port]" of url, lower-case: what a credential is bound to. */
int pull_url_origin(const char *url, char *out, size_t size, mlx_err *err);

/* The store name a plain URL gets: its file name without .gguf or
 * .safetensors. MLX_EUSAGE when that is not a valid model name. */
int pull_url_model_name(const char *url, char *out, size_t size, mlx_err *err);

/* ---- response headers (pull_headers.c) ------------------------------------ */

/* What one HTTP response said about the file it describes. Strings are ""
 * when the header was absent; sizes PULL_SIZE_UNKNOWN. */
typedef struct pull_headers {
    long status;                           /* from the status line */
    char etag[PULL_MAX_HEADER];            /* raw, quotes and all */
    char linked_etag[PULL_MAX_HEADER];     /* X-Linked-Etag (HF LFS files) */
    char repo_commit[PULL_MAX_HF_REV + 1]; /* X-Repo-Commit */
    char location[PULL_MAX_URL + 1];
    uint64_t linked_size;                         /* X-Linked-Size */
    uint64_t content_length;                      /* Content-Length */
    bool has_range;                               /* a valid Content-Range came */
    uint64_t range_start, range_end, range_total; /* total UNKNOWN for "N-M/STAR" */
    bool malformed; /* some header we read could not be parsed */
} pull_headers;

void pull_headers_reset(pull_headers *h);

/* Feeds one raw header line ("Name: value\r\n", or a status line, which
 * starts a new response and resets h). Returns 0, or MLX_EPROTO for a
 * header we keep whose value is malformed (h->malformed is set too). */
int pull_headers_line(pull_headers *h, const char *line, size_t len);

/* An ETag value without W/ and quotes, when it is 40 or 64 hex digits
 * (lower-cased into out, which holds 65 bytes). MLX_EPROTO otherwise. */
int pull_parse_etag(const char *value, char out[65], mlx_err *err);

/* "bytes START-END/TOTAL" (TOTAL may be '*'). MLX_EPROTO when malformed. */
int pull_parse_content_range(const char *value, uint64_t *start, uint64_t *end,
                             uint64_t *total);

typedef enum pull_digest_kind {
    PULL_DIGEST_SHA256,  /* expected is the content's SHA-256 */
    PULL_DIGEST_GIT_SHA1 /* expected is git's blob id: sha1("blob N\0" + content) */
} pull_digest_kind;

/* What the Hub says a file is, read as huggingface_hub reads it: the
 * SHA-256 from X-Linked-Etag (LFS files) or from an ETag of 64 hex digits;
 * else an ETag of 40 hex digits is the git blob id of a small file. The
 * size is X-Linked-Size, else Content-Length. MLX_EPROTO with a sentence
 * naming file when neither digest can be read or the size is missing. */
int pull_hf_expected(const pull_headers *h, const char *file, pull_digest_kind *kind,
                     char expected[65], uint64_t *size, mlx_err *err);

/* ---- resuming (pull_headers.c) --------------------------------------------- */

/* What to do with a .partial of `partial` bytes for a blob of `declared`
 * bytes before asking the server for anything. */
typedef enum pull_resume {
    PULL_RESUME_FRESH,   /* no partial: GET from 0 */
    PULL_RESUME_RANGE,   /* GET with Range: bytes=partial- */
    PULL_RESUME_CHECK,   /* partial is whole: hash it, no request */
    PULL_RESUME_DISCARD, /* partial is larger than the blob: truncate, GET from 0 */
} pull_resume;

pull_resume pull_decide_resume(uint64_t partial, uint64_t declared);

/* What to do with the body of the final response to a GET that asked for
 * bytes from `from` (0: no Range header). */
typedef enum pull_answer {
    PULL_ANSWER_APPEND,  /* 206 starting at from: append */
    PULL_ANSWER_RESTART, /* 200 (the server ignored Range): truncate, start at 0 */
    PULL_ANSWER_RETRY,   /* 416: the partial does not fit; discard it, ask again */
    PULL_ANSWER_FAIL,    /* anything else: an error sentence was written */
} pull_answer;

pull_answer pull_decide_answer(const pull_headers *h, uint64_t from, mlx_err *err);

/* ---- the HF revision listing (pull_hf_json.c) ------------------------------ */

typedef struct hf_revision {
    char sha[PULL_MAX_HF_REV + 1]; /* the commit the listing describes */
    char **files;                  /* owned; valid model file paths */
    size_t n_files;
    char **skipped; /* owned; paths refused by store_check_name */
    size_t n_skipped;
} hf_revision;

/* Parses GET /api/models/ORG/NAME/revision/REV: {"sha":"<40 hex>",
 * "siblings":[{"rfilename":"…"}, …], …}. MLX_ECORRUPT with a sentence. */
int pull_parse_hf_revision(const char *text, size_t len, hf_revision *out, mlx_err *err);
void pull_hf_revision_free(hf_revision *r);

/* ---- HTTP (pull_http.c) ----------------------------------------------------- */

/* What every request of one pull shares. Borrowed strings. */
typedef struct pull_net {
    const char *ca_bundle;               /* NULL: the system's */
    const char *token;                   /* bearer token, or NULL; never logged */
    char token_origin[PULL_MAX_URL + 1]; /* the only origin it is sent to */
    int stall_s;   /* abort when under PULL_LOW_SPEED B/s for this long */
    bool progress; /* draw progress on stderr */
} pull_net;

/* Below this many bytes per second for pull_net.stall_s, a transfer is stalled. */
#define PULL_LOW_SPEED 1024

/* HEAD url without following redirects; the response's headers in *h.
 * Fails only when no answer came (a sentence: TLS, connect, timeout). */
int pull_http_head(const pull_net *n, const char *url, pull_headers *h, mlx_err *err);

/* GET url into body (at most its max bytes), following redirects; accept
 * may be NULL. Any status is a success of this call: see h->status. */
int pull_http_get_small(const pull_net *n, const char *url, const char *accept,
                        mlx_buf *body, pull_headers *h, mlx_err *err);

/* Turns an HTTP error status into a sentence about what (a model, a
 * file) at url. hf adds the advice about HF_TOKEN for 401/403. */
int pull_http_status_error(long status, const char *what, const char *url, bool hf,
                           mlx_err *err);

/* Sets the options every transfer has (protocols, TLS, CA, stall, the
 * token when url is on its host, user agent) on a curl easy handle;
 * errbuf holds CURL_ERROR_SIZE bytes. */
int pull_http_setup(const pull_net *n, CURL *curl, const char *url, char *errbuf,
                    mlx_err *err);

/* The sentence for a failed transfer (TLS, connection, timeout, redirects). */
int pull_http_transfer_error(int curl_code, const char *url, const char *errbuf,
                             int stall_s, mlx_err *err);

/* ---- one blob (pull_fetch.c) ---------------------------------------------- */

typedef struct pull_blob {
    const char *url;   /* where to GET it (redirects are followed) */
    const char *label; /* the file's name, for messages and progress */
    pull_digest_kind kind;
    char expected[65]; /* lower-case hex: 64 for SHA-256, 40 for git SHA-1 */
    uint64_t size;     /* declared size, or PULL_SIZE_UNKNOWN */
} pull_blob;

typedef struct pull_blob_result {
    char sha256[65];
    uint64_t size;
    uint64_t downloaded;   /* bytes received in this run */
    uint64_t resumed_from; /* bytes of a .partial that were kept */
    bool reused;           /* already in the store: nothing fetched */
} pull_blob_result;

/* Brings one blob into the store (see the head comment). */
int pull_fetch_blob(const pull_net *n, store *s, const pull_blob *b,
                    pull_blob_result *out, mlx_err *err);

/* ---- whole pulls (pull_hf.c, pull_ollama.c, pull.c) ----------------------- */

typedef struct pull_config {
    const char *hf_endpoint;     /* base URL, no trailing '/' */
    const char *ollama_registry; /* base URL, or "" for the name's host / the default */
    const char *name;            /* overrides the store name; NULL for the default */
    const char *sha256;          /* the digest a plain URL must have */
    pull_net net;
} pull_config;

typedef struct pull_file {
    char *path; /* inside the model; owned */
    pull_blob_result blob;
} pull_file;

typedef struct pull_result {
    char name[MLX_MAX_MODEL_NAME + 1];
    store_source source;
    char origin[PULL_MAX_URL + 1];
    const char *format; /* static */
    pull_file *files;   /* owned */
    size_t n_files;
    char **skipped; /* owned: repository files that could not be stored */
    size_t n_skipped;
} pull_result;

/* Adds an (empty) file to r; NULL when out of memory. */
pull_file *pull_result_add(pull_result *r, const char *path);
void pull_result_free(pull_result *r);

/* Records r as a model of the store (every blob is there by now). */
int pull_record(store *s, pull_result *r, mlx_err *err);

/* What can be checked before the store is touched: a URL's --sha256 and
 * the name it gives the model. MLX_EUSAGE with a sentence. */
int pull_check(const pull_source *src, const pull_config *cfg, mlx_err *err);

int pull_hf(store *s, const pull_source *src, const pull_config *cfg, pull_result *out,
            mlx_err *err);
int pull_ollama(store *s, const pull_source *src, const pull_config *cfg,
                pull_result *out, mlx_err *err);
int pull_url(store *s, const pull_source *src, const pull_config *cfg, pull_result *out,
             mlx_err *err);

#endif
