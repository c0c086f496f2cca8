/*
 * bench_engine.c — the engine's speed against what the hardware allows.
 *
 *   bandwidth   a STREAM-style read of a buffer far larger than the caches,
 *               on every thread the engine would use, best of five: GB/s
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
#include <sys/utsname.h>
#include <unistd.h>

#include <jansson.h>

#include "tests/integration/harness.h"
#include "tests/support/testutil.h"

#define TIMEOUT_MS  (60 * 60 * 1000)
#define PROBE_BYTES ((size_t)1 << 30)

struct probe {
    const uint64_t *words;
    size_t n;
    uint64_t sum;
};

static void *probe_read(void *arg)
{
    struct probe *p = arg;
    /* Eight sums in flight: the loop is bound by memory, not by adding. */
    uint64_t s[8] = {0};
    for (size_t i = 0; i + 8 <= p->n; i += 8)
        for (int k = 0; k < 8; k++)
            s[k] += p->words[i + k];
    p->sum = s[0] + s[1] + s[2] + s[3] + s[4] + s[5] + s[6] + s[7];
    return NULL;
}

static double bandwidth_gbs(int threads)
{
    size_t n = PROBE_BYTES / sizeof(uint64_t);
    uint64_t *buf = malloc(PROBE_BYTES);
    if (buf == NULL)
        abort();
    for (size_t i = 0; i < n; i++)
        buf[i] = i; /* touch every page before timing */
    double best = 0;
    for (int round = 0; round < 5; round++) {
        pthread_t tid[256];
        struct probe p[256];
        int64_t t0 = h_now_ms();
        for (int t = 0; t < threads; t++) {
            p[t] = (struct probe){buf + n * t / threads, n / threads, 0};
            pthread_create(&tid[t], NULL, probe_read, &p[t]);
        }
        uint64_t check = 0;
        for (int t = 0; t < threads; t++) {
            pthread_join(tid[t], NULL);
            check += p[t].sum;
        }
        double s = (double)(h_now_ms() - t0) / 1000;
        double gbs = (double)PROBE_BYTES / s / 1e9;
        if (gbs > best && check != 1)
            best = gbs;
    }
    free(buf);
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
    struct utsname u;
    uname(&u);
    long cores = sysconf(_SC_NPROCESSORS_ONLN);
    printf("machine     %s %s, %ld cores\n", u.sysname, u.machine, cores);
    double bw = bandwidth_gbs((int)cores);
    printf("bandwidth   %.1f GB/s (1 GiB read on %ld threads, best of 5)\n", bw, cores);

    char q4[1024], q8[1024];
    synth(where, "q4_0", "38", q4, sizeof q4);
    synth(where, "q8_0", "22", q8, sizeof q8);
    const char *models[] = {q4, q8}, *names[] = {"Q4_0", "Q8_0"};
    for (int i = 0; i < 2; i++) {
        json_t *v = bench(models[i], "16", "32", "1");
        double bytes = num(v, "weight_bytes"), tps = num(v, "gen_tokens_per_s");
        double roof = bw * 1e9 / bytes;
        printf("roofline    %s %.2f GB: %.2f tokens/s of %.2f possible = %.2f of the "
               "roofline (goal >= 0.7; %s kernels, %lld threads)\n",
               names[i], bytes / 1e9, tps, roof, tps / roof,
               json_string_value(json_object_get(v, "kernels")),
               (long long)num(v, "threads"));
        json_decref(v);
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
    return 0;
}
