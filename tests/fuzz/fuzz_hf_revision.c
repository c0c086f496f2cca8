/* fuzz_hf_revision.c — the Hub's revision listing as `cache pull` reads it. */
#include <stddef.h>
#include <stdint.h>

#include "agent/cache/pull.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    hf_revision r;
    if (pull_parse_hf_revision((const char *)data, size, &r, NULL) == 0)
        pull_hf_revision_free(&r);
    return 0;
}
