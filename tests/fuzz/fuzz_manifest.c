/*
 * fuzz_manifest.c — Ollama manifests as the registry sends them and as they
 * sit on disk: whatever the bytes, the parser answers, and what it accepts
 * keeps its promises (well-formed digests, bounded sizes and counts, file
 * names that are valid model paths).
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "agent/cache/internal.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    manifest m;
    mlx_err err;
    if (cache_parse_manifest((const char *)data, size, &m, &err) != 0) {
        if (err.msg[0] == '\0' || m.n_layers != 0)
            abort(); /* a refusal says why and leaves nothing behind */
        return 0;
    }
    if (m.n_layers == 0 || m.n_layers > MANIFEST_MAX_LAYERS ||
        !cache_is_digest(m.config.digest) || m.config.size > BLOB_MAX_BYTES)
        abort();
    for (size_t i = 0; i < m.n_layers; i++) {
        char name[160];
        cache_manifest_file_name(&m, i, name, sizeof name);
        if (!cache_is_digest(m.layers[i].digest) || m.layers[i].size > BLOB_MAX_BYTES ||
            store_check_name(name, NULL) != 0)
            abort();
    }
    return 0;
}
