/*
 * fuzz_model_name.c — model names and file paths from outside (command
 * lines, manifests, HF repositories): a name the store accepts can never
 * leave the folder it is joined to.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "agent/cache/store.h"
#include "common/limits.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char name[MLX_MAX_MODEL_NAME + 8];
    if (size >= sizeof name)
        size = sizeof name - 1;
    memcpy(name, data, size);
    name[size] = '\0';
    mlx_err err;
    if (store_check_name(name, &err) != 0) {
        if (err.msg[0] == '\0')
            abort();
        return 0;
    }
    size_t n = strlen(name);
    if (n == 0 || n > MLX_MAX_MODEL_NAME || name[0] == '/' || name[n - 1] == '/' ||
        strstr(name, "//") != NULL || strcmp(name, "..") == 0 ||
        strncmp(name, "../", 3) == 0 || strstr(name, "/../") != NULL ||
        (n >= 3 && strcmp(name + n - 3, "/..") == 0))
        abort();
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)name[i] < 0x21 || (unsigned char)name[i] > 0x7e)
            abort();
    return 0;
}
