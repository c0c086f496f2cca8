/*
 * trees.h — HuggingFace hub caches and Ollama model stores laid out exactly
 * as those tools lay them out, built by tests in temporary folders:
 *
 *   HF:     <root>/models--ORG--NAME/blobs/<etag>       the bytes; etag is the
 *                                                        sha256 for LFS files,
 *                                                        the git blob SHA-1 else
 *           <root>/models--ORG--NAME/snapshots/<rev>/F  -> ../../blobs/<etag>
 *           <root>/models--ORG--NAME/refs/main          <rev>
 *   Ollama: <root>/blobs/sha256-<hex>
 *           <root>/manifests/registry.ollama.ai/library/<name>/<tag>  (JSON)
 *
 * Every helper aborts the test on an I/O error.
 */
#ifndef MLX_TESTS_TREES_H
#define MLX_TESTS_TREES_H

#include <stdbool.h>
#include <stddef.h>

typedef struct tree_file {
    const char *name; /* inside the repository: "model.gguf", "sub/config.json" */
    const void *data;
    size_t len;
    bool lfs; /* stored under its sha256 (large files) or its git SHA-1 */
} tree_file;

/* Adds a repository at revision rev; refs/main points at it when main is set. */
void tree_hf_repo(const char *root, const char *org, const char *name, const char *rev,
                  bool main, const tree_file *files, size_t n);

typedef struct tree_layer {
    const char *media_type; /* "application/vnd.ollama.image.model", … */
    const void *data;
    size_t len;
} tree_layer;

/* Adds blobs for layers and a config, and the manifest naming them. */
void tree_ollama_model(const char *root, const char *name, const char *tag,
                       const tree_layer *layers, size_t n);

/* The lower-case hex SHA-256 of data (out: 65 bytes). */
void tree_sha256(const void *data, size_t len, char *out);

/* The SHA-256 of a file's bytes; false when it cannot be read. */
bool tree_sha256_file(const char *path, char *out);

/* mkdir -p */
void tree_mkdirs(const char *path);

/* Writes len bytes to path (creating folders). */
void tree_write(const char *path, const void *data, size_t len);

/* Reads a whole file (caller frees); aborts when it cannot. */
void *tree_read(const char *path, size_t *len);

#endif
