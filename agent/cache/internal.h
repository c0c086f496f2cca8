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

#define STORE_MAX_STMTS 16

struct store {
    sqlite3 *db;
    char *data_dir, *blob_dir, *tmp_dir, *quarantine_dir; /* owned */
    int hold_fd;   /* <data>/store.lock once held, else -1 */
    int hold_mode; /* LOCK_SH or LOCK_EX while held */
    /* Statements run once per file of a scan, prepared once (cache_stmt). */
    struct {
        const char *sql; /* the caller's static string: compared by address */
        sqlite3_stmt *st;
    } stmts[STORE_MAX_STMTS];
};

/* A prepared statement for sql (a string literal, which identifies it),
 * reset and with its bindings cleared; owned by the store, never finalized
 * by the caller. For statements run once per file; others use
 * mlx_db_prepare. */
int cache_stmt(store *s, const char *sql, sqlite3_stmt **out, mlx_err *err);

/* Blobs a pull or an add has put but not yet recorded in a model look like
 * garbage to a sweep. So store_put_blob takes a shared lock on
 * <data>/store.lock, kept until store_close, and a sweep (gc, rm) first
 * takes it exclusively: MLX_EBUSY, with a sentence, while a pull or an add
 * runs. */
int cache_hold_sweep(store *s, mlx_err *err);

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
    bool unreadable; /* hashing failed; error says why */
    char *error;     /* owned; NULL unless unreadable */
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
/* Adds one file whose bytes are at location (symlinks resolved) to r; a
 * location that is not a regular file becomes a problem. claimed may be
 * NULL. Fails only for memory. */
int cache_scan_add(scan_result *r, cache_origin origin, const char *model,
                   const char *path, const char *location, const char *claimed);
void cache_scan_problem(scan_result *r, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

typedef enum cache_hash_mode {
    HASH_REUSE,  /* trust a digest remembered for the same size, mtime and inode */
    HASH_REREAD, /* read every byte again (verify) */
} cache_hash_mode;

/* Hashes files[i] for every i with want[i], on all cores, and remembers
 * the digests in agent.db (hash.c). A file that cannot be read is marked
 * unreadable, with the reason, and the others go on; fails only for the
 * database or memory. With a label, a progress line on a terminal says
 * how far the hashing is. */
int cache_hash_files(store *s, scan_file *files, const bool *want, size_t n,
                     cache_hash_mode mode, const char *label, mlx_err *err);

/* Hashes one file; out holds MLX_SHA256_HEX bytes. */
int cache_hash_path(const char *path, char *out, mlx_err *err);

/* Inserts or replaces the model called name (inside the caller's
 * transaction) and removes its files; *id is its row. */
int cache_begin_model(store *s, const char *name, const char *source, const char *origin,
                      const char *format, uint64_t size, sqlite3_int64 *id, mlx_err *err);
/* Adds one file to model model_id; sha256 may be "" when not known yet. */
int cache_insert_file(store *s, sqlite3_int64 model_id, const char *path, uint64_t size,
                      const char *sha256, const char *location, mlx_err *err);

/* Records what a scan of roots found as models scanned in place (sources
 * hf-cache, ollama-cache, dir), drops those gone from the scanned folders,
 * and adds a problem for each name it could not record (inventory.c). */
int cache_record_scan(store *s, scan_result *r, const scan_roots *roots, mlx_err *err);

/* The format of the model made of r->files[first..end): "gguf",
 * "safetensors" or "other". */
const char *cache_scan_format(const scan_result *r, size_t first, size_t end);

/* Adds the files of the store's own models to r, as origin ORIGIN_STORE, so
 * that they take part in finding duplicates. */
int cache_scan_store(store *s, scan_result *r, mlx_err *err);

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

typedef struct dedup_skip {
    size_t file;     /* index into the scan's files */
    const char *why; /* static */
} dedup_skip;

typedef struct dedup_report {
    uint64_t given_back; /* bytes actually freed */
    size_t replaced;
    dedup_skip *skipped; /* duplicates left alone, and why */
    size_t n_skipped;
} dedup_report;

/* Carries out the plan, step by journaled step. *out: cache_dedup_report_free. */
int cache_apply_dedup(store *s, scan_result *r, const dedup_plan *p, dedup_report *out,
                      mlx_err *err);
void cache_dedup_report_free(dedup_report *r);

/* The files other processes have open or mapped (inuse.c), collected once
 * so that checking many files costs one walk of /proc. */
struct inuse_entry;
typedef struct inuse_set {
    struct inuse_entry *items;
    size_t n, cap;
} inuse_set;

enum { INUSE_OPEN = 1, INUSE_MAPPED = 2 };

/* what: INUSE_OPEN, INUSE_MAPPED or both. *out: cache_inuse_free. */
int cache_inuse_collect(inuse_set *out, unsigned what, mlx_err *err);
/* writing_only: count only descriptors open for writing. */
bool cache_inuse_has(const inuse_set *set, dev_t dev, ino_t ino, bool writing_only);
void cache_inuse_free(inuse_set *set);

/* True when some other process has the file open for writing (or when that
 * cannot be found out). */
bool cache_open_for_writing(dev_t dev, ino_t ino);

/* Finishes or rolls back dedup steps a crash interrupted (dedup.c). Every
 * cache command calls it after opening the store. */
int cache_recover(store *s, mlx_err *err);

/* ---- models of agent.db (models.c) ------------------------------------- */

/* True for the sources of models scanned in place ("hf-cache",
 * "ollama-cache", "dir"): their bytes belong to another tool. */
bool cache_source_in_place(const char *source);

typedef struct cache_model_file {
    char *path;                  /* inside the model */
    char sha256[MLX_SHA256_HEX]; /* "" when not known yet */
    uint64_t size;
    char *location; /* where the bytes are */
} cache_model_file;

typedef struct cache_model {
    char *name, *source, *origin, *format;
    uint64_t size;
    int64_t added_unix_ms, last_used_unix_ms;
    bool pinned, broken;
    cache_model_file *files;
    size_t n_files;
} cache_model;

typedef struct cache_model_list {
    cache_model *items; /* by name */
    size_t n;
} cache_model_list;

/* Every model, or only the one called name (name may be NULL). *out:
 * cache_model_list_free, also after a failure. */
int cache_list_models(store *s, const char *name, cache_model_list *out, mlx_err *err);
void cache_model_list_free(cache_model_list *l);

/* Forgets a model of the store (its blobs stay until a sweep). MLX_ENOENT
 * for an unknown name, MLX_EPERM for a model scanned in place. */
int cache_remove_model(store *s, const char *name, mlx_err *err);
int cache_pin_model(store *s, const char *name, bool pinned, mlx_err *err);

/* ---- gc (gc.c) ------------------------------------------------------------ */

typedef struct gc_opts {
    uint64_t max_bytes; /* evict LRU models until the blobs fit; UINT64_MAX: none */
    bool dry_run;       /* plan and report, delete nothing */
} gc_opts;

typedef struct gc_report {
    uint64_t store_bytes, store_bytes_after; /* all blobs, before and after */
    char **evicted;                          /* models removed, oldest use first */
    size_t n_evicted;
    size_t n_pinned_kept, n_in_use_kept; /* would have gone, but are pinned / in use */
    size_t blobs_removed;
    uint64_t blob_bytes;
    size_t partials_removed; /* abandoned downloads in tmp/ */
    uint64_t partial_bytes;
} gc_report;

/* Evicts per o, then removes blobs no model uses and abandoned partial
 * downloads. MLX_EBUSY while a pull or add runs. */
int cache_gc(store *s, const gc_opts *o, gc_report *out, mlx_err *err);
void cache_gc_report_free(gc_report *r);

/* Removes the blobs no model of the store uses (rm calls it after
 * cache_remove_model); adds to r->blobs_removed and r->blob_bytes. */
int cache_sweep_blobs(store *s, gc_report *r, mlx_err *err);

/* ---- files (fileops.c, add.c) -------------------------------------------- */

/* Makes dest (which must not exist) a clone of source; false where the file
 * system cannot (then nothing is left at dest). */
bool cache_clone(const char *source, const char *dest);

/* Creates dest with source's bytes (a clone, else a copy) and their
 * digest; dest is removed on failure. hex: MLX_SHA256_HEX bytes. */
int cache_copy_hashing(const char *source, const char *dest, char *hex, uint64_t *size,
                       mlx_err *err);

/* *same: a and b hold exactly the same bytes. */
int cache_same_bytes(const char *a, const char *b, bool *same, mlx_err *err);

typedef struct cache_added {
    char path[256]; /* the file's name inside the model */
    char sha256[MLX_SHA256_HEX];
    uint64_t size;
    const char *format; /* "gguf" or "safetensors" (static) */
} cache_added;

/* Copies a GGUF or safetensors file into the store as model name (replacing
 * a model of that name). */
int cache_add_file(store *s, const char *file, const char *name, cache_added *out,
                   mlx_err *err);

/* ---- verify (verify.c) ----------------------------------------------------- */

typedef enum verify_kind {
    VERIFY_CORRUPT,    /* the bytes do not hash to the digest they should */
    VERIFY_MISSING,    /* a model's file is gone */
    VERIFY_UNREADABLE, /* the file is there but cannot be read */
    VERIFY_STRAY,      /* something in blobs/ that is not a blob */
} verify_kind;

typedef struct verify_problem {
    verify_kind kind;
    char *path;
    char expected[MLX_SHA256_HEX], actual[MLX_SHA256_HEX]; /* "" when unknown */
    char *detail;         /* why, for MISSING, UNREADABLE and STRAY */
    char *models;         /* the models marked broken by it, ", "-separated */
    char *quarantined_to; /* where a corrupt blob of the store went, or NULL */
} verify_problem;

typedef struct verify_report {
    size_t checked_files;
    uint64_t checked_bytes;
    verify_problem *problems;
    size_t n_problems;
} verify_report;

/* Re-hashes every blob of the store and every file of the models scanned in
 * place, on all cores; quarantines corrupt blobs and marks models broken or
 * whole (see verify.c). Problems are findings, not failures: rc is 0 with
 * problems listed. *out: cache_verify_report_free. */
int cache_verify(store *s, verify_report *out, mlx_err *err);
void cache_verify_report_free(verify_report *r);

/* ---- usage (usage.c) -------------------------------------------------------- */

typedef struct cache_partial {
    char *path; /* a download (or add) in progress or interrupted, in tmp/ */
    uint64_t bytes;
    int64_t modified_unix_ms;
} cache_partial;

typedef struct cache_usage {
    size_t blobs;
    uint64_t blob_bytes;
    cache_partial *partials;
    size_t n_partials;
    uint64_t partial_bytes;
    uint64_t dedup_given_back; /* by every dedup --apply so far */
    uint64_t free_bytes;       /* on the store's file system */
} cache_usage;

/* *out: cache_usage_free. */
int cache_usage_read(store *s, cache_usage *out, mlx_err *err);
void cache_usage_free(cache_usage *u);

/* ---- doctor (doctor.c) ----------------------------------------------------- */

typedef enum doctor_level { DOCTOR_OK, DOCTOR_WARN, DOCTOR_ERROR } doctor_level;

typedef struct doctor_finding {
    doctor_level level;
    const char *check; /* static: "permissions", "free space", … */
    char *message;     /* what was found */
    char *fix;         /* what to do, or NULL */
} doctor_finding;

typedef struct doctor_report {
    doctor_finding *items;
    size_t n;
} doctor_report;

/* Checks the store and the caches under roots; never changes anything.
 * *out: cache_doctor_report_free. */
int cache_doctor(store *s, const scan_roots *roots, doctor_report *out, mlx_err *err);
void cache_doctor_report_free(doctor_report *r);
const char *cache_doctor_level_name(doctor_level l); /* "ok", "warn", "error" */

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
