/*
 * blobs.c — GET/HEAD /blobs/sha256/<hex>: the store's blobs for peers.
 *
 * A blob file is complete once it exists (the store renames it into place
 * after checking its digest), so it can be served as it is, by byte range,
 * with the kernel copying the bytes (MHD sends files with sendfile).
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "agent/http/internal.h"
#include "common/sha256.h"

#define PREFIX "/blobs/sha256/"

static bool is_digest(const char *hex)
{
    if (strlen(hex) != 64)
        return false;
    for (const char *p = hex; *p != '\0'; p++)
        if (!((*p >= '0' && *p <= '9') || (*p >= 'a' && *p <= 'f')))
            return false;
    return true;
}

void http_handle_blob(void *ctx, const mlx_http_req *req, mlx_http_resp *resp)
{
    agent_http *h = ctx;
    const char *hex = req->path + strlen(PREFIX);
    if (!is_digest(hex)) {
        mlx_http_resp_error(resp, 400, "invalid_request_error", "bad_digest",
                            "'%.80s' is not a SHA-256 digest: 64 lower-case hex digits",
                            hex);
        return;
    }
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", h->blob_dir, hex);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    struct stat st;
    if (fd < 0 || fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        int e = errno;
        if (fd >= 0)
            close(fd);
        if (e == ENOENT || fd >= 0)
            mlx_http_resp_error(resp, 404, "invalid_request_error", "blob_not_found",
                                "this node has no blob sha256:%s", hex);
        else
            mlx_http_resp_error(resp, 500, "server_error", "io",
                                "cannot read blob sha256:%s: %s", hex, strerror(e));
        return;
    }
    uint64_t size = (uint64_t)st.st_size, start = 0, len = size;
    int range = mlx_http_parse_range(mlx_http_header(req, "Range"), size, &start, &len);
    mlx_http_resp_header(resp, "Accept-Ranges", "bytes");
    mlx_http_resp_header(resp, "ETag", "\"sha256:%s\"", hex);
    if (range < 0) {
        close(fd);
        mlx_http_resp_header(resp, "Content-Range", "bytes */%llu",
                             (unsigned long long)size);
        mlx_http_resp_error(resp, 416, "invalid_request_error", "range_not_satisfiable",
                            "the blob has %llu bytes; the requested range is outside it",
                            (unsigned long long)size);
        return;
    }
    if (range == 1)
        mlx_http_resp_header(
            resp, "Content-Range", "bytes %llu-%llu/%llu", (unsigned long long)start,
            (unsigned long long)(start + len - 1), (unsigned long long)size);
    resp->status = range == 1 ? 206 : 200;
    resp->content_type = "application/octet-stream";
    resp->has_file = true;
    resp->file_fd = fd;
    resp->file_offset = start;
    resp->file_len = len;
}
