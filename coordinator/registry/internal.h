/*
 * internal.h — shared by the files of coordinator/registry, not part of its
 * interface: the registry's state and the statement helper.
 */
#ifndef MLX_COORDINATOR_REGISTRY_INTERNAL_H
#define MLX_COORDINATOR_REGISTRY_INTERNAL_H

#include <pthread.h>
#include <sqlite3.h>

#include "coordinator/registry/registry.h"

struct registry {
    sqlite3 *db;
    /* Held across each multi-statement write (BEGIN … COMMIT) and each read
     * of the inventory: the connection is shared by every thread and SQLite
     * has one transaction per connection, so without it two replacements
     * could interleave and a reader could see half of one. */
    pthread_mutex_t write_mtx;
    /* registry_candidates' query, prepared once (under write_mtx): it runs
     * for every generation, and compiling it cost as much as running it. */
    sqlite3_stmt *candidates;
};

/* Runs a prepared statement that returns no rows and finalizes it; *changes
 * (may be NULL) gets the rows hit. */
int registry_run(registry *r, sqlite3_stmt *st, int *changes, mlx_err *err,
                 const char *what);

#endif
