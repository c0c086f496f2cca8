/*
 * internal.h — shared by the files of agent/cache; not included elsewhere.
 */
#ifndef MLX_AGENT_CACHE_INTERNAL_H
#define MLX_AGENT_CACHE_INTERNAL_H

#include <sqlite3.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "agent/cache/store.h"
#include "common/sha256.h"

struct store {
    sqlite3 *db;
    char *data_dir, *blob_dir, *tmp_dir, *quarantine_dir; /* owned */
};

/* The migrations of agent.db (schema.c). */
extern const char *const cache_migrations[];
extern const size_t cache_n_migrations;

/* Where a model scanned in place came from. */
typedef enum cache_origin {
    ORIGIN_STORE,
    ORIGIN_HF,
    ORIGIN_OLLAMA,
    ORIGIN_DIR
} cache_origin;
const char *cache_origin_name(cache_origin o);

/* One file of a model found by a scan, before hashing. */
typedef struct scan_file {
    char *model;    /* "hf:ORG/NAME", "llama3.2:1b", "local:NAME" */
    char *path;     /* inside the model: "model.gguf", "model" (Ollama layer) */
    char *location; /* absolute path of the bytes (symlinks resolved) */
    cache_origin origin;
    char claimed[MLX_SHA256_HEX]; /* a digest the name claims ("" if none) */
    char sha256[MLX_SHA256_HEX];  /* the content's digest once known ("" until then) */
    uint64_t size;
    dev_t dev;
    ino_t ino;
    int64_t mtime_ns;
    uint32_t nlink;
} scan_file;

typedef struct scan_result {
    scan_file *files;
    size_t n, cap;
    char **problems; /* one sentence each: refused symlinks, bad manifests */
    size_t n_problems;
} scan_result;

typedef struct scan_roots {
    const char *hf, *ollama; /* NULL or "" to skip */
    char *const *dirs;
    size_t n_dirs;
} scan_roots;

/* Finds every model under the roots (scan.c). Never fails for a bad entry
 * (it becomes a problem); fails only for resources. */
int cache_scan(const scan_roots *roots, scan_result *out, mlx_err *err);
void cache_scan_free(scan_result *r);
void cache_scan_problem(scan_result *r, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* Hashes files[i] for every i with want[i], on all cores, reusing digests
 * remembered in agent.db for files whose size, mtime and inode have not
 * changed (hash.c). */
int cache_hash_files(store *s, scan_file *files, const bool *want, size_t n,
                     mlx_err *err);

/* Hashes one file; out holds MLX_SHA256_HEX bytes. */
int cache_hash_path(const char *path, char *out, mlx_err *err);

/* Inserts or replaces the model called name (inside the caller's
 * transaction) and removes its files; *id is its row. */
int cache_begin_model(store *s, const char *name, const char *source, const char *origin,
                      const char *format, uint64_t size, sqlite3_int64 *id, mlx_err *err);
/* Adds one file to model model_id; sha256 may be "" when not known yet. */
int cache_insert_file(store *s, sqlite3_int64 model_id, const char *path, uint64_t size,
                      const char *sha256, const char *location, mlx_err *err);

/* Records what a scan found as models of the store (source hf/ollama/dir). */
int cache_record_scan(store *s, const scan_result *r, mlx_err *err);

/* Files with the same content on more than one inode. members index the
 * scan's files, grouped by inode, the inode to keep first. */
typedef struct dedup_set {
    size_t *members;
    size_t n;
    char sha256[MLX_SHA256_HEX];
    uint64_t size;        /* of one copy */
    uint64_t reclaimable; /* what replacing the other copies gives back */
} dedup_set;

typedef struct dedup_plan {
    dedup_set *sets;
    size_t n;
    uint64_t reclaimable;
} dedup_plan;

/* Hashes what needs hashing and groups the duplicates (dedup.c). */
int cache_plan_dedup(store *s, scan_result *r, dedup_plan *out, mlx_err *err);
void cache_plan_free(dedup_plan *p);

typedef struct dedup_report {
    uint64_t given_back; /* bytes actually freed */
    size_t replaced, skipped;
} dedup_report;

/* Carries out the plan, step by journaled step; skipped files are logged. */
int cache_apply_dedup(store *s, scan_result *r, const dedup_plan *p, dedup_report *out,
                      mlx_err *err);

/* True when some process has the file open for writing. */
bool cache_open_for_writing(dev_t dev, ino_t ino);

/* Finishes or rolls back dedup steps a crash interrupted (dedup.c). Every
 * cache command calls it after opening the store. */
int cache_recover(store *s, mlx_err *err);

/* An Ollama image manifest (OCI-style): a config blob and layers, each a
 * media type, a sha256 digest and a size (manifest.c). */
#define MANIFEST_MAX_LAYERS 64
#define MANIFEST_MAX_BYTES  (1u << 20)
#define BLOB_MAX_BYTES      (UINT64_C(1) << 40) /* 1 TiB: larger is a lie */

typedef struct manifest_layer {
    char media_type[128];
    char digest[MLX_SHA256_HEX]; /* hex, without "sha256:" */
    uint64_t size;
} manifest_layer;

typedef struct manifest {
    manifest_layer config;
    manifest_layer layers[MANIFEST_MAX_LAYERS];
    size_t n_layers;
} manifest;

int cache_parse_manifest(const char *text, size_t len, manifest *out, mlx_err *err);

/* Ollama's own registry: models of its "library" namespace are called by
 * their bare name ("llama3.2:1b"). */
#define OLLAMA_REGISTRY_HOST "registry.ollama.ai"

/* The name Ollama shows for a model, which is the store's name for it:
 * "llama3.2:1b", "ns/name:tag", "host/ns/name:tag". */
void cache_ollama_name(const char *registry, const char *ns, const char *name,
                       const char *tag, char *out, size_t size);

/* The kind of a layer by its media type: "model", "template", …, "layer". */
const char *cache_layer_name(const char *media_type);

/* The file name layer i of m gets inside a model, as scan and pull both
 * name it: its kind, numbered ("adapter-1") when an earlier layer had the
 * same kind. The config blob is the file "config". */
void cache_manifest_file_name(const manifest *m, size_t i, char *out, size_t size);

/* "1.2 GiB" */
void cache_format_bytes(uint64_t n, char *out, size_t size);

/* True when hex is 64 lower-case hex digits. */
bool cache_is_digest(const char *hex);

#endif
