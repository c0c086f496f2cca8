/* fuzz_pull_headers.c — response headers as `cache pull` reads them: each
 * line of the input is one header line; then what the Hub's headers say
 * the file is, and the resume decision on them. */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "agent/cache/pull.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static pull_headers h;
    pull_headers_reset(&h);
    const char *p = (const char *)data, *end = p + size;
    while (p < end) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        size_t n = nl != NULL ? (size_t)(nl - p) + 1 : (size_t)(end - p);
        pull_headers_line(&h, p, n);
        p += n;
    }
    pull_digest_kind kind;
    char hex[65];
    uint64_t total = 0;
    pull_hf_expected(&h, "file", &kind, hex, &total, NULL);
    pull_decide_answer(&h, h.range_start, NULL);
    char etag[65];
    pull_parse_etag(h.etag, etag, NULL);
    return 0;
}
