/* benchutil.c — the serving benchmarks' agent, statistics and CPU times. */
#include "tests/bench/benchutil.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include <jansson.h>

#include "common/clock.h"
#include "common/parse.h"
#include "tests/support/testutil.h"

#define START_TIMEOUT_MS 30000
#define RUN_TIMEOUT_MS   60000
#define MAX_ARGS         48

/* ---- the agent ------------------------------------------------------------ */

static bool healthz_ok(void *url)
{
    long status = 0;
    json_decref(h_get_json(url, &status));
    return status == 200;
}

int bench_agent_start(bench_agent *a, const char *tag, const char *model_path,
                      const char *name, const char *const *extra)
{
    a->dir = test_tmpdir(tag);
    a->data = test_join(a->dir, "data");
    const char *add[] = {"cache", "add",    model_path, "--name",
                         name,    "--data", a->data,    NULL};
    char *err = NULL;
    int status = h_run("mlx-agent", add, RUN_TIMEOUT_MS, NULL, &err);
    if (status != 0) {
        fprintf(stderr, "mlx-agent cache add failed (exit %d): %s\n", status, err);
        free(err);
        return -1;
    }
    free(err);
    int port = h_free_port();
    char listen[48], health[96];
    snprintf(a->http, sizeof a->http, "127.0.0.1:%d", port);
    snprintf(listen, sizeof listen, "tcp://127.0.0.1:%d", h_free_port());
    snprintf(a->base, sizeof a->base, "http://127.0.0.1:%d", port);
    snprintf(health, sizeof health, "%s/healthz", a->base);
    const char *args[MAX_ARGS] = {"serve",    "--data", a->data,    "--http", a->http,
                                  "--listen", listen,   "--ollama", "",       NULL};
    size_t n = 9;
    for (size_t i = 0; extra != NULL && extra[i] != NULL; i++) {
        if (n + 1 == MAX_ARGS)
            abort();
        args[n++] = extra[i];
    }
    args[n] = NULL;
    a->proc = h_spawn("agent", a->dir, "mlx-agent", args);
    if (!h_wait_for(healthz_ok, health, START_TIMEOUT_MS)) {
        char *log = test_read_file(a->proc->log_path, NULL);
        fprintf(stderr, "the agent did not answer %s within %d ms; its log:\n%s\n",
                health, START_TIMEOUT_MS, log != NULL ? log : "(none)");
        free(log);
        return -1;
    }
    return 0;
}

void bench_log_report(const char *who, const char *path)
{
    FILE *f = fopen(path, "r");
    char line[1024], first[1024] = "";
    int n = 0;
    while (f != NULL && fgets(line, sizeof line, f) != NULL) {
        if (strncmp(line, "warn ", 5) != 0 && strncmp(line, "error ", 6) != 0)
            continue;
        if (n++ == 0)
            snprintf(first, sizeof first, "%.*s", (int)strcspn(line, "\n"), line);
    }
    if (f != NULL)
        fclose(f);
    printf("%-11s %d warnings and errors%s%s\n", who, n, n > 0 ? "; the first: " : "",
           first);
}

void bench_agent_stop(bench_agent *a)
{
    if (a->proc != NULL) {
        char log_path[sizeof a->proc->log_path];
        snprintf(log_path, sizeof log_path, "%s", a->proc->log_path);
        int status = h_stop(a->proc);
        a->proc = NULL;
        if (status != 0)
            printf("warning     the agent exited with status %d when stopped\n", status);
        bench_log_report("agent log", log_path);
    }
    free(a->data);
    a->data = NULL;
    if (a->dir != NULL)
        test_tmpdir_remove(a->dir);
    a->dir = NULL;
}

/* ---- statistics and CPU ---------------------------------------------------- */

static int by_value(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

void bench_sort(double *values, size_t n)
{
    qsort(values, n, sizeof *values, by_value);
}

double bench_percentile(const double *sorted, size_t n, double p)
{
    if (n == 0)
        return 0;
    size_t rank = (size_t)(p / 100 * (double)n + 0.999999);
    return sorted[rank > 0 ? rank - 1 : 0];
}

double bench_median(double *values, size_t n)
{
    bench_sort(values, n);
    return bench_percentile(values, n, 50);
}

double bench_self_cpu_s(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (double)(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) +
           (double)(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e6;
}

/* The whole number at field `index` (0: the one after the ')' closing the
 * command name) of a /proc/PID/stat line; -1 when it is not there. */
static int64_t stat_field(const char *line, int index)
{
    const char *p = strrchr(line, ')');
    if (p == NULL)
        return -1;
    p++; /* " S 1 …": each field follows one space */
    for (int i = 0; i < index; i++) {
        if (*p != ' ')
            return -1;
        p += 1 + strcspn(p + 1, " ");
    }
    if (*p != ' ')
        return -1;
    p++;
    char number[32];
    snprintf(number, sizeof number, "%.*s", (int)strcspn(p, " \n"), p);
    int64_t v;
    return mlx_parse_int64(number, &v, NULL) == 0 ? v : -1;
}

double bench_proc_cpu_s(pid_t pid)
{
    char path[64], line[1024];
    snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
    FILE *f = fopen(path, "r");
    bool read = f != NULL && fgets(line, sizeof line, f) != NULL;
    if (f != NULL)
        fclose(f);
    /* utime and stime are fields 14 and 15; the state, field 3, comes first
     * after the command name. */
    int64_t user = read ? stat_field(line, 11) : -1,
            sys = read ? stat_field(line, 12) : -1;
    if (user < 0 || sys < 0)
        return -1;
    return (double)(user + sys) / (double)sysconf(_SC_CLK_TCK);
}

void bench_print_machine(void)
{
    char where[256];
    test_machine(where, sizeof where);
    printf("machine     %s\n", where);
}
