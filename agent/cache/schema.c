/*
 * schema.c — agent.db, the store's registry, by numbered migrations.
 *
 *   blobs       content in <data>/blobs/sha256/<hex>, with its size and
 *               when it was last verified
 *   models      a name, where it came from (source, origin), its format and
 *               size, pins and last use (for gc), broken when verify found
 *               one of its blobs corrupt
 *   files       a model's files: a path inside the model, its size, its
 *               digest when known and where its bytes are (a blob of the
 *               store or, for models scanned in place, the HF or Ollama file)
 *   hash_cache  digests of files outside the store, remembered with size,
 *               mtime and inode so unchanged files are never hashed twice;
 *               verified when the digest was computed, not read from a name
 *   journal     dedup steps in progress (see dedup.c)
 *   counters    bytes given back by dedup, for status and /metrics
 *
 * New migrations go at the end; never edit one that has shipped.
 */
#include <stddef.h>

#include "agent/cache/internal.h"

const char *const cache_migrations[] = {
    "CREATE TABLE blobs (sha256 TEXT PRIMARY KEY, size INTEGER NOT NULL,"
    "  added_unix_ms INTEGER NOT NULL, verified_unix_ms INTEGER);"
    "CREATE TABLE models (id INTEGER PRIMARY KEY, name TEXT NOT NULL UNIQUE,"
    "  source TEXT NOT NULL, origin TEXT NOT NULL, format TEXT NOT NULL,"
    "  size INTEGER NOT NULL, added_unix_ms INTEGER NOT NULL,"
    "  last_used_unix_ms INTEGER NOT NULL, pinned INTEGER NOT NULL DEFAULT 0,"
    "  broken INTEGER NOT NULL DEFAULT 0);"
    "CREATE TABLE files (model_id INTEGER NOT NULL REFERENCES models(id) ON DELETE "
    "CASCADE,"
    "  path TEXT NOT NULL, size INTEGER NOT NULL, sha256 TEXT, location TEXT NOT NULL,"
    "  PRIMARY KEY (model_id, path));"
    "CREATE INDEX files_sha256 ON files(sha256);"
    "CREATE TABLE hash_cache (path TEXT PRIMARY KEY, size INTEGER NOT NULL,"
    "  mtime_ns INTEGER NOT NULL, inode INTEGER NOT NULL, sha256 TEXT NOT NULL);"
    "CREATE TABLE journal (id INTEGER PRIMARY KEY, target TEXT NOT NULL,"
    "  source TEXT NOT NULL, temp TEXT NOT NULL, sha256 TEXT NOT NULL,"
    "  size INTEGER NOT NULL, started_unix_ms INTEGER NOT NULL);"
    "CREATE TABLE counters (name TEXT PRIMARY KEY, value INTEGER NOT NULL);"
    "INSERT INTO counters VALUES ('dedup_bytes_given_back', 0);",
};

const size_t cache_n_migrations = sizeof cache_migrations / sizeof cache_migrations[0];
