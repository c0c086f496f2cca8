/*
 * gguf_corpus_test.c — every file of the GGUF fuzz corpus opened through
 * both entry points (mapped and in memory). A bad-* file must be refused
 * with MLX_ECORRUPT or MLX_EINVAL, *out left NULL, and a sentence that says
 * what is wrong (the words listed below for the files
 * gen_gguf_corpus.py writes); a valid-* file must open. Files the fuzzer
 * added later only have to not crash.
 */
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "agent/engine/gguf.h"
#include "tests/support/testutil.h"

static const struct {
    const char *file, *words;
} expected[] = {
    {"bad-empty", "empty"},
    {"bad-not-gguf", "not a GGUF"},
    {"bad-truncated-header", "truncated in the header"},
    {"bad-v1", "unsupported GGUF version 1"},
    {"bad-version-4", "unsupported GGUF version 4"},
    {"bad-big-endian", "big-endian"},
    {"bad-huge-kv-count", "metadata pairs"},
    {"bad-huge-tensor-count", "tensors"},
    {"bad-counts-past-end", "more than the"},
    {"bad-truncated-key", "truncated in the key of metadata pair 0"},
    {"bad-truncated-kv", "truncated in the metadata of key 'x.count'"},
    {"bad-truncated-array", "truncated in the metadata of key 'x.list'"},
    {"bad-huge-string-length", "'general.name' is longer than"},
    {"bad-key-too-long", "key of metadata pair 0 is longer than"},
    {"bad-empty-key", "empty key"},
    {"bad-nul-in-key", "NUL byte"},
    {"bad-tensor-nul-in-name", "NUL byte"},
    {"bad-huge-array-count", "'x.a' is an array of 1152921504606846976 elements"},
    {"bad-unknown-value-type", "'x.v' has unknown value type 13"},
    {"bad-nested-array", "nested arrays"},
    {"bad-array-unknown-type", "unknown value type 99"},
    {"bad-bool-value", "BOOL of value 2"},
    {"bad-duplicate-key", "'x.k' appears twice"},
    {"bad-alignment-zero", "power of two"},
    {"bad-alignment-not-power-of-two", "general.alignment is 48"},
    {"bad-alignment-string", "general.alignment has type STRING"},
    {"bad-tensor-offset-out-of-range", "tensor 'w' starts past the end of the file"},
    {"bad-tensor-offset-misaligned", "not a multiple of the alignment"},
    {"bad-tensor-past-end", "tensor 'w' ends past the end of the file"},
    {"bad-tensor-overlap", "tensors 'a' and 'b' overlap"},
    {"bad-tensor-five-dims", "5 dimensions"},
    {"bad-tensor-zero-dim", "dimension of 0"},
    {"bad-tensor-unknown-type", "unknown type 4"},
    {"bad-tensor-partial-block", "not a whole number of Q8_0 blocks"},
    {"bad-tensor-element-overflow", "more elements than can be addressed"},
    {"bad-tensor-duplicate-name", "tensor 'w' appears twice"},
    {"bad-tensor-name-too-long", "name of tensor 0 is longer than"},
    {"bad-tensor-empty-name", "empty name"},
    {"bad-truncated-tensor-info", "truncated in the info of tensor 'w'"},
    {"bad-no-data-section", "ends before its tensor data begins"},
};

static int check(const char *dir, const char *name)
{
    char *path = test_join(dir, name);
    size_t size = 0;
    char *bytes = test_read_file(path, &size);
    int failures = 0;
    for (int mapped = 0; mapped < 2; mapped++) {
        gguf_file *f = NULL;
        mlx_err err;
        mlx_err_clear(&err);
        int rc =
            mapped ? gguf_open(path, &f, &err) : gguf_open_mem(bytes, size, &f, &err);
        const char *how = mapped ? "gguf_open" : "gguf_open_mem";
        if (strncmp(name, "valid-", 6) == 0 && rc != 0) {
            printf("FAIL %s: %s refused it: %s\n", name, how, err.msg);
            failures++;
        } else if (strncmp(name, "bad-", 4) == 0) {
            if ((rc != MLX_ECORRUPT && rc != MLX_EINVAL) || f != NULL ||
                err.msg[0] == 0) {
                printf("FAIL %s: %s gave %d (%s)\n", name, how, rc, err.msg);
                failures++;
            }
            for (size_t i = 0; i < sizeof expected / sizeof expected[0]; i++)
                if (strcmp(expected[i].file, name) == 0 &&
                    strstr(err.msg, expected[i].words) == NULL) {
                    printf("FAIL %s: '%s' does not say '%s'\n", name, err.msg,
                           expected[i].words);
                    failures++;
                }
            if (mapped && strstr(err.msg, path) == NULL) {
                printf("FAIL %s: '%s' does not name the file\n", name, err.msg);
                failures++;
            }
        }
        if (failures == 0 && !mapped)
            printf("ok   %-34s %s\n", name, rc == 0 ? "opens" : err.msg);
        gguf_close(f);
    }
    free(bytes);
    free(path);
    return failures;
}

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: gguf_corpus_test CORPUS_DIR\n");
        return 2;
    }
    DIR *d = opendir(argv[1]);
    if (d == NULL) {
        fprintf(stderr, "cannot open %s\n", argv[1]);
        return 1;
    }
    int failures = 0, files = 0, bad = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (e->d_name[0] == '.')
            continue;
        failures += check(argv[1], e->d_name);
        files++;
        bad += strncmp(e->d_name, "bad-", 4) == 0;
    }
    closedir(d);
    /* Every listed file must be there: a lost one would pass unnoticed. */
    for (size_t i = 0; i < sizeof expected / sizeof expected[0]; i++) {
        char *path = test_join(argv[1], expected[i].file);
        FILE *f = fopen(path, "rb");
        if (f == NULL) {
            printf("FAIL %s is missing from the corpus\n", expected[i].file);
            failures++;
        } else {
            fclose(f);
        }
        free(path);
    }
    printf("%d files, %d malformed, %d failures\n", files, bad, failures);
    return failures == 0 ? 0 : 1;
}
