/* fuzz_pull_source.c — `cache pull`'s reading of SRC strings and the URL
 * names and hosts derived from them. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "agent/cache/pull.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *text = malloc(size + 1);
    if (text == NULL)
        return 0;
    memcpy(text, data, size);
    text[size] = '\0';
    pull_source src;
    if (pull_parse_source(text, &src, NULL) == 0 && src.kind == PULL_URL) {
        char out[PULL_MAX_URL + 1];
        pull_url_model_name(src.url, out, sizeof out, NULL);
        pull_url_origin(src.url, out, sizeof out, NULL);
        pull_url_host(src.url, out, sizeof out, NULL);
        pull_parse_base_url(src.url, "--x", out, sizeof out, NULL);
    }
    free(text);
    return 0;
}
