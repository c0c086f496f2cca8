/*
 * testutil.h — small helpers shared by the unit and integration tests:
 * temporary directories that clean up after themselves and whole-file I/O.
 *
 * Tests exit with TEST_SKIP (77, CTest's SKIP_RETURN_CODE) after printing
 * why, when something they need is absent; a skip never counts as a pass.
 */
#ifndef MLX_TESTS_TESTUTIL_H
#define MLX_TESTS_TESTUTIL_H

#include <stddef.h>

#define TEST_SKIP 77

/* A new empty directory under $TMPDIR (or /tmp); caller frees with
 * test_tmpdir_remove, which deletes it and everything in it. */
char *test_tmpdir(const char *tag);
void test_tmpdir_remove(char *dir);

/* rm -rf */
void test_rm_rf(const char *path);

/* Writes or reads a whole file; abort the test on I/O errors. read returns a
 * NUL-terminated malloc'd buffer (caller frees), NULL if the file is absent. */
void test_write_file(const char *path, const char *text);
char *test_read_file(const char *path, size_t *len);

/* "dir/name" in a static-free malloc'd string (caller frees). */
char *test_join(const char *dir, const char *name);

/* A TCP port on 127.0.0.1 that was free a moment ago (another process may
 * take it before the caller binds it: retry on EBUSY). */
int test_free_port(void);

/* The path of a file in the shared test-model folder (../shared/testdata
 * beside the project, or $MLX_TESTDATA), caller frees; NULL when the file is
 * absent. Tests that need it print why and exit TEST_SKIP. */
char *test_testdata(const char *name);
/* test_testdata(name) when that file is readable (caller frees); else
 * NULL after printing the SKIP line that says the shared test models are
 * missing. */
char *test_shared_model(const char *name);

/* "Linux x86_64, 2 cores, <CPU model>": the machine a benchmark ran on, for
 * the numbers it prints. */
void test_machine(char *out, size_t cap);

/* The value of the sample on a Prometheus text page whose line starts with
 * prefix (its name and labels, as written) followed by a space; -1 when
 * the page has none or its value is not a number. */
double test_prom_sample(const char *page, const char *prefix);

/* The sum of the samples of name on a Prometheus text page whose labels
 * hold each of the NULL-terminated needles (label="value"); 0 when none
 * does. */
double test_prom_sum(const char *page, const char *name, const char *const *needles);

/* The line of a text table that starts with prefix (static storage, up to
 * 511 bytes), or NULL. */
const char *test_table_line(const char *table, const char *prefix);
/* Cell col (0-based) of a table line whose cells are two or more spaces
 * apart (a cell holds at most single spaces: "3.1 ms"). out: 64 bytes. */
void test_table_cell(const char *line, int col, char *out);

#endif
