/*
 * driver.c — runs a fuzz target over files when libFuzzer is not linked:
 * each argument is a file or a directory of files, fed once each to
 * LLVMFuzzerTestOneInput. CTest uses it to replay the committed corpus on
 * every build (under ASan in the sanitizer build), so a crash found once
 * stays fixed.
 */
#include <dirent.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "tests/support/testutil.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int run_file(const char *path)
{
    size_t len = 0;
    char *data = test_read_file(path, &len);
    if (data == NULL) {
        fprintf(stderr, "cannot read %s\n", path);
        return 1;
    }
    LLVMFuzzerTestOneInput((const uint8_t *)data, len);
    free(data);
    return 0;
}

int main(int argc, char **argv)
{
    int files = 0, failures = 0;
    for (int i = 1; i < argc; i++) {
        struct stat st;
        if (stat(argv[i], &st) != 0) {
            fprintf(stderr, "no such corpus: %s\n", argv[i]);
            return 1;
        }
        if (!S_ISDIR(st.st_mode)) {
            failures += run_file(argv[i]);
            files++;
            continue;
        }
        DIR *d = opendir(argv[i]);
        struct dirent *e;
        while (d != NULL && (e = readdir(d)) != NULL) {
            if (e->d_name[0] == '.')
                continue;
            char *path = test_join(argv[i], e->d_name);
            failures += run_file(path);
            files++;
            free(path);
        }
        if (d != NULL)
            closedir(d);
    }
    printf("%d inputs replayed\n", files);
    return failures == 0 && files > 0 ? 0 : 1;
}
