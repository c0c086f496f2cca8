/*
 * bench_cache.c — how fast the store reads what it keeps.
 *
 *   verify    `mlx-agent cache verify` against `sha256sum` (coreutils, one
 *             thread) over the same 1 GiB of blobs, both from the page
 *             cache, best of three each; printed as a ratio (goal >= 1.8
 *             on two cores).
 *   rescan    `mlx-agent cache scan` of an HF cache of 10,000 files: the
 *             first run hashes what could be duplicated, the second, with
 *             nothing changed, must read nothing again (goal < 1 s).
 *
 * Usage: bench_cache [--gib N] [--files N]; prints one line per result and
 * the machine it ran on. Not a test: timings are never asserted.
 */
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/parse.h"
#include "tests/integration/harness.h"
#include "tests/integration/trees.h"
#include "tests/support/testutil.h"

#define TIMEOUT_MS (30 * 60 * 1000)
#define BLOB_MIB   128

static double best_of_three(const char *bin, const char *const *args)
{
    double best = 1e30;
    for (int i = 0; i < 3; i++) {
        int64_t t = h_now_ms();
        int status = h_run(bin, args, TIMEOUT_MS, NULL, NULL);
        double s = (double)(h_now_ms() - t) / 1000;
        if (status != 0 && status != 1) {
            fprintf(stderr, "%s failed (exit %d)\n", bin, status);
            exit(1);
        }
        if (s < best)
            best = s;
    }
    return best;
}

/* Random bytes that still look like a GGUF file, so `cache add` takes them. */
static void random_gguf(const char *path, size_t bytes)
{
    unsigned char *b = malloc(bytes);
    FILE *r = fopen("/dev/urandom", "rb");
    if (b == NULL || r == NULL || fread(b, 1, bytes, r) != bytes)
        abort();
    fclose(r);
    memcpy(b, "GGUF", 4);
    tree_write(path, b, bytes);
    free(b);
}

static void bench_verify(const char *dir, int gib)
{
    char data[1024], file[1200], name[32];
    snprintf(data, sizeof data, "%s/verify", dir);
    int blobs = gib * 1024 / BLOB_MIB;
    for (int i = 0; i < blobs; i++) {
        snprintf(file, sizeof file, "%s/in-%d.gguf", dir, i);
        snprintf(name, sizeof name, "bench:%d", i);
        random_gguf(file, (size_t)BLOB_MIB << 20);
        const char *add[] = {"cache", "add", file, "--name", name, "--data", data, NULL};
        if (h_run("mlx-agent", add, TIMEOUT_MS, NULL, NULL) != 0)
            abort();
        unlink(file);
    }
    /* sha256sum gets the same files, named on its command line. */
    char blob_dir[1200];
    snprintf(blob_dir, sizeof blob_dir, "%s/blobs/sha256", data);
    static char paths[256][1500];
    const char *sum[257];
    size_t n = 0;
    DIR *d = opendir(blob_dir);
    struct dirent *e;
    while (d != NULL && n < 256 && (e = readdir(d)) != NULL)
        if (e->d_name[0] != '.') {
            snprintf(paths[n], sizeof paths[n], "%s/%s", blob_dir, e->d_name);
            sum[n] = paths[n];
            n++;
        }
    if (d != NULL)
        closedir(d);
    sum[n] = NULL;
    const char *sha256sum = h_which("sha256sum");
    if (sha256sum == NULL) {
        fprintf(stderr, "no sha256sum on this machine\n");
        exit(1);
    }
    const char *verify[] = {"cache", "verify", "--data", data, NULL};
    best_of_three(sha256sum, sum); /* warms the page cache */
    double ours = best_of_three("mlx-agent", verify);
    double theirs = best_of_three(sha256sum, sum);
    long cores = sysconf(_SC_NPROCESSORS_ONLN);
    printf("verify     %d GiB in %zu blobs: mlx-agent %.2f s (%.2f GiB/s), sha256sum %.2f s "
           "(%.2f GiB/s): %.2fx on %ld cores (goal >= 1.8x on 2)\n",
           gib, n, ours, gib / ours, theirs, gib / theirs, theirs / ours, cores);
}

/* An HF cache of repos of ten files each; every file has the same size, so
 * the first scan must hash them all. */
static void bench_rescan(const char *dir, int files)
{
    char hf[1024], data[1024];
    snprintf(hf, sizeof hf, "%s/hf", dir);
    snprintf(data, sizeof data, "%s/rescan", dir);
    tree_mkdirs(hf);
    for (int r = 0; r < files / 10; r++) {
        char repo[32], names[10][32], bodies[10][4096];
        tree_file f[10];
        snprintf(repo, sizeof repo, "repo%d", r);
        for (int i = 0; i < 10; i++) {
            snprintf(names[i], sizeof names[i], "part-%d.safetensors", i);
            memset(bodies[i], 0, sizeof bodies[i]);
            snprintf(bodies[i], sizeof bodies[i], "%d/%d", r, i);
            f[i] = (tree_file){names[i], bodies[i], sizeof bodies[i], true};
        }
        tree_hf_repo(hf, "bench", repo, "1111", true, f, 10);
    }
    const char *scan[] = {"cache", "scan", "--data", data, "--hf", hf, "--ollama", "", NULL};
    int64_t t = h_now_ms();
    if (h_run("mlx-agent", scan, TIMEOUT_MS, NULL, NULL) != 0)
        abort();
    double first = (double)(h_now_ms() - t) / 1000;
    double second = best_of_three("mlx-agent", scan);
    printf("rescan     %d files: first scan %.2f s (hashes them), second %.3f s "
           "(goal < 1 s)\n",
           files, first, second);
}

int main(int argc, char **argv)
{
    int64_t gib = 1, files = 10000;
    for (int i = 1; i + 1 < argc; i += 2) {
        int64_t *v = strcmp(argv[i], "--gib") == 0     ? &gib
                     : strcmp(argv[i], "--files") == 0 ? &files
                                                       : NULL;
        if (v == NULL || mlx_parse_int64(argv[i + 1], v, NULL) != 0 || *v < 1) {
            fprintf(stderr, "usage: bench_cache [--gib N] [--files N]\n");
            return 2;
        }
    }
    char machine[256];
    test_machine(machine, sizeof machine);
    printf("machine    %s\n", machine);
    char *dir = test_tmpdir("bench-cache");
    bench_rescan(dir, (int)files);
    bench_verify(dir, (int)gib);
    test_tmpdir_remove(dir);
    return 0;
}
