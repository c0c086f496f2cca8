/*
 * bench_engine.c — the engine's speed against what the hardware allows.
 *
 *   bandwidth   a STREAM-style read (32-byte loads) of a buffer far larger
 *               than the caches, on every core, best of five: GB/s
 *   roofline    decoding reads every weight once per token, so at best
 *               tokens/s = bandwidth / bytes of weights; for ~1 GB
 *               synthetic models in Q4_0 and Q8_0 (`mlx-agent model
 *               synth`), the measured generation speed as a fraction of
 *               that (goal >= 0.7 with all cores)
 *   prompt      tokens/s for a 512-token prompt
 *   sequences   generation tokens/s over 1, 4 and 16 sequences decoded
 *               together
 *
 * Usage: bench_engine [--keep DIR] (DIR keeps the synthetic models between
 * runs). Prints results and the machine; never asserts a time.
 */
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <jansson.h>

#include "tests/integration/harness.h"
#include "tests/support/testutil.h"

#define TIMEOUT_MS  (60 * 60 * 1000)
#define PROBE_BYTES ((size_t)1 << 30)

struct probe {
    const uint8_t *bytes;
    size_t n; /* a multiple of 128 */
    uint64_t sum;
};

/* Reads 32 bytes at a time into four sums, as STREAM's read kernels do:
 * narrower loads would measure the core's load port, not the memory. */
typedef uint64_t v4u64 __attribute__((vector_size(32)));

#if defined(__x86_64__)
__attribute__((target("avx2")))
#endif
static uint64_t
read_wide(const uint8_t *p, size_t n)
{
    v4u64 s0 = {0}, s1 = {0}, s2 = {0}, s3 = {0};
    for (size_t i = 0; i < n; i += 128) {
        v4u64 a, b, c, d;
        memcpy(&a, p + i, 32);
        memcpy(&b, p + i + 32, 32);
        memcpy(&c, p + i + 64, 32);
        memcpy(&d, p + i + 96, 32);
        s0 += a;
        s1 += b;
        s2 += c;
        s3 += d;
    }
    v4u64 t = s0 + s1 + s2 + s3;
    return t[0] + t[1] + t[2] + t[3];
}

static void *probe_read(void *arg)
{
    struct probe *p = arg;
#if defined(__x86_64__)
    if (!__builtin_cpu_supports("avx2")) {
        uint64_t s = 0; /* no 32-byte loads here: plain 8-byte ones */
        for (size_t i = 0; i < p->n; i += 8) {
            uint64_t v;
            memcpy(&v, p->bytes + i, 8);
            s += v;
        }
        p->sum = s;
        return NULL;
    }
#endif
    p->sum = read_wide(p->bytes, p->n);
    return NULL;
}

static uint8_t *probe_buf;

/* Best of five reads of 1 GiB on `threads` threads, in GB/s. */
static double bandwidth_gbs(int threads)
{
    if (probe_buf == NULL) {
        if ((probe_buf = malloc(PROBE_BYTES)) == NULL)
            abort();
        for (size_t i = 0; i < PROBE_BYTES; i++)
            probe_buf[i] = (uint8_t)i; /* every page touched before timing */
    }
    double best = 0;
    for (int round = 0; round < 5; round++) {
        pthread_t tid[256];
        struct probe p[256];
        size_t share = PROBE_BYTES / (size_t)threads / 128 * 128;
        int64_t t0 = h_now_ms();
        for (int t = 0; t < threads; t++) {
            p[t] = (struct probe){probe_buf + share * (size_t)t, share, 0};
            pthread_create(&tid[t], NULL, probe_read, &p[t]);
        }
        uint64_t check = 0;
        for (int t = 0; t < threads; t++) {
            pthread_join(tid[t], NULL);
            check += p[t].sum;
        }
        double secs = (double)(h_now_ms() - t0) / 1000;
        double gbs = (double)share * threads / secs / 1e9;
        if (gbs > best && check != 1)
            best = gbs;
    }
    return best;
}

/* A synthetic model of about the size wanted, kept in dir. */
static void synth(const char *dir, const char *type, const char *layers, char *path,
                  size_t size)
{
    snprintf(path, size, "%s/synth-%s-%s.gguf", dir, type, layers);
    if (access(path, R_OK) == 0)
        return;
    const char *args[] = {"model",      "synth",  "--out", path,      "--layers",
                          layers,       "--dim",  "2048",  "--heads", "32",
                          "--kv-heads", "4",      "--ff",  "5632",    "--vocab",
                          "32000",      "--type", type,    NULL};
    if (h_run("mlx-agent", args, TIMEOUT_MS, NULL, NULL) != 0) {
        fprintf(stderr, "cannot write %s\n", path);
        exit(1);
    }
}

/* `mlx-agent bench` with extra words; its JSON (caller decrefs). */
static json_t *bench(const char *model, const char *prompt, const char *gen,
                     const char *sequences)
{
    const char *args[] = {"bench",        model, "--prompt-tokens", prompt,
                          "--gen-tokens", gen,   "--sequences",     sequences,
                          "--json",       NULL};
    char *out = NULL;
    if (h_run("mlx-agent", args, TIMEOUT_MS, &out, NULL) != 0) {
        fprintf(stderr, "mlx-agent bench %s failed\n", model);
        exit(1);
    }
    json_t *v = json_loads(out, 0, NULL);
    free(out);
    if (v == NULL)
        abort();
    return v;
}

static double num(json_t *v, const char *key)
{
    return json_number_value(json_object_get(v, key));
}

int main(int argc, char **argv)
{
    const char *keep = argc == 3 && strcmp(argv[1], "--keep") == 0 ? argv[2] : NULL;
    char *dir = keep != NULL ? NULL : test_tmpdir("bench-engine");
    const char *where = keep != NULL ? keep : dir;
    char machine[256];
    test_machine(machine, sizeof machine);
    long cores = sysconf(_SC_NPROCESSORS_ONLN);
    printf("machine     %s\n", machine);
    printf("bandwidth   %.1f GB/s (1 GiB read on %ld threads, best of 5)\n",
           bandwidth_gbs((int)cores), cores);

    char q4[1024], q8[1024];
    synth(where, "q4_0", "38", q4, sizeof q4);
    synth(where, "q8_0", "22", q8, sizeof q8);
    /* The machine is shared: bandwidth is measured beside each model, and
     * each side keeps its best of several tries. */
    const char *models[] = {q4, q8}, *names[] = {"Q4_0", "Q8_0"};
    for (int i = 0; i < 2; i++) {
        double bw = bandwidth_gbs((int)cores), tps = 0, bytes = 0;
        json_t *best = NULL;
        for (int run = 0; run < 3; run++) {
            json_t *v = bench(models[i], "16", "32", "1");
            if (num(v, "gen_tokens_per_s") > tps) {
                tps = num(v, "gen_tokens_per_s");
                json_decref(best);
                best = v;
            } else {
                json_decref(v);
            }
        }
        bytes = num(best, "weight_bytes");
        double bw2 = bandwidth_gbs((int)cores);
        bw = bw2 > bw ? bw2 : bw;
        double roof = bw * 1e9 / bytes;
        printf("roofline    %s %.2f GB at %.1f GB/s: %.2f tokens/s of %.2f possible = "
               "%.2f of the roofline (goal >= 0.7; %s kernels, %lld threads)\n",
               names[i], bytes / 1e9, bw, tps, roof, tps / roof,
               json_string_value(json_object_get(best, "kernels")),
               (long long)num(best, "threads"));
        json_decref(best);
    }
    json_t *v = bench(q4, "512", "1", "1");
    printf("prompt      Q4_0, 512 tokens: %.1f tokens/s (time to first token %.0f ms)\n",
           num(v, "prompt_tokens_per_s"), num(v, "ttft_ms"));
    json_decref(v);
    double one = 0;
    static const char *const seqs[] = {"1", "4", "16"};
    for (int i = 0; i < 3; i++) {
        v = bench(q4, "32", "32", seqs[i]);
        double tps = num(v, "gen_tokens_per_s");
        if (i == 0)
            one = tps;
        printf(
            "sequences   Q4_0, %2s decoded together: %6.1f tokens/s in all (%.2fx one)\n",
            seqs[i], tps, one > 0 ? tps / one : 0);
        json_decref(v);
    }
    if (dir != NULL)
        test_tmpdir_remove(dir);
    free(probe_buf);
    return 0;
}
