/* fuzz_ollama_ps.c — the agent's reading of a local Ollama's /api/ps. */
#include <stddef.h>
#include <stdint.h>

#include "agent/metrics/metrics.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    metrics_model_activity models[4];
    size_t n;
    metrics_ollama_parse_ps((const char *)data, size, models, 4, &n, NULL);
    return 0;
}
