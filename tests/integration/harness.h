/*
 * harness.h — real processes for integration tests.
 *
 * Starts the project's binaries (from MLX_BIN_DIR, set by CMake) with their
 * output in log files, stops them, runs commands to capture their output,
 * talks HTTP to them, and waits for conditions by polling with a deadline —
 * never by sleeping a fixed time and hoping.
 *
 * Every process a test starts is registered and killed at exit, so a failed
 * assertion never leaves daemons behind.
 */
#ifndef MLX_TESTS_HARNESS_H
#define MLX_TESTS_HARNESS_H

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

typedef struct h_proc {
    pid_t pid;
    char name[64];
    char log_path[512];
} h_proc;

/* The path of a project binary ("mlx-agent"); an absolute path is kept. */
const char *h_bin(const char *name);

/* The full path of a program found in $PATH (static storage), or NULL. */
const char *h_which(const char *program);

/* A TCP port on 127.0.0.1 that was free a moment ago, outside the range
 * the kernel uses for outgoing connections. */
int h_free_port(void);

/* Starts bin (a project binary name) with args (NULL-terminated, without
 * argv[0]); stdout and stderr go to log_dir/name.log (appended). */
h_proc *h_spawn(const char *name, const char *log_dir, const char *bin,
                const char *const *args);

/* Sends sig; h_wait_exit returns the exit status (128+signal when killed)
 * or -1 if the process is still running after timeout_ms. */
void h_signal(h_proc *p, int sig);
int h_wait_exit(h_proc *p, int timeout_ms);

/* SIGTERM, wait up to 10 s, then SIGKILL; frees p. Returns the exit status. */
int h_stop(h_proc *p);

/* Runs bin with args to completion (at most timeout_ms), capturing stdout
 * and stderr (caller frees; either may be NULL). Returns the exit status. */
int h_run(const char *bin, const char *const *args, int timeout_ms, char **out,
          char **err);

/* h_run as another user (uid, gid), for tests that need a file the program
 * cannot read even when the test runs as root. */
int h_run_as(uid_t uid, gid_t gid, const char *bin, const char *const *args,
             int timeout_ms, char **out, char **err);

/* GET url; the body as a string (caller frees), NULL when none came.
 * *status gets the HTTP status (0 when unreachable); status may be NULL. */
char *h_get_text(const char *url, long *status);
/* The same, the body parsed as JSON (caller decrefs) or NULL. */
json_t *h_get_json(const char *url, long *status);

/* Polls cond every 10 ms until it is true or timeout_ms passes. */
bool h_wait_for(bool (*cond)(void *arg), void *arg, int timeout_ms);

int64_t h_now_ms(void); /* monotonic */

/* How many lines of the file contain needle. */
int h_count_lines(const char *path, const char *needle);

#endif
