/* testutil.c — temp dirs and file helpers for tests. */
#include "tests/support/testutil.h"

#include <arpa/inet.h>
#include <dirent.h>
#include <netinet/in.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/utsname.h>
#include <unistd.h>

#include "common/parse.h"

char *test_join(const char *dir, const char *name)
{
    size_t n = strlen(dir) + strlen(name) + 2;
    char *p = malloc(n);
    if (p == NULL)
        abort();
    snprintf(p, n, "%s/%s", dir, name);
    return p;
}

int test_free_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = 0};
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof sa;
    if (fd < 0 || bind(fd, (struct sockaddr *)&sa, sizeof sa) != 0 ||
        getsockname(fd, (struct sockaddr *)&sa, &len) != 0)
        abort();
    close(fd);
    return ntohs(sa.sin_port);
}

char *test_testdata(const char *name)
{
    const char *dir = getenv("MLX_TESTDATA");
    char *path = test_join(dir != NULL && *dir != '\0' ? dir : MLX_TESTDATA_DIR, name);
    if (access(path, R_OK) != 0) {
        free(path);
        return NULL;
    }
    return path;
}

char *test_tmpdir(const char *tag)
{
    const char *base = getenv("TMPDIR");
    if (base == NULL || base[0] == '\0')
        base = "/tmp";
    size_t n = strlen(base) + strlen(tag) + 32;
    char *dir = malloc(n);
    if (dir == NULL)
        abort();
    snprintf(dir, n, "%s/mlx-%s-XXXXXX", base, tag);
    if (mkdtemp(dir) == NULL) {
        fprintf(stderr, "cannot create a temporary directory in %s: %s\n", base,
                strerror(errno));
        abort();
    }
    return dir;
}

void test_rm_rf(const char *path)
{
    struct stat st;
    if (lstat(path, &st) != 0)
        return;
    if (S_ISDIR(st.st_mode)) {
        DIR *d = opendir(path);
        if (d != NULL) {
            struct dirent *e;
            while ((e = readdir(d)) != NULL) {
                if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
                    continue;
                char *child = test_join(path, e->d_name);
                test_rm_rf(child);
                free(child);
            }
            closedir(d);
        }
        rmdir(path);
    } else {
        unlink(path);
    }
}

void test_tmpdir_remove(char *dir)
{
    if (dir == NULL)
        return;
    test_rm_rf(dir);
    free(dir);
}

void test_write_file(const char *path, const char *text)
{
    FILE *f = fopen(path, "wb");
    if (f == NULL || fwrite(text, 1, strlen(text), f) != strlen(text) || fclose(f) != 0) {
        fprintf(stderr, "cannot write %s: %s\n", path, strerror(errno));
        abort();
    }
}

char *test_read_file(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (f == NULL)
        return NULL;
    size_t cap = 4096, n = 0;
    char *buf = malloc(cap);
    size_t got;
    while (buf != NULL && (got = fread(buf + n, 1, cap - n - 1, f)) > 0) {
        n += got;
        if (cap - n - 1 == 0) {
            cap *= 2;
            buf = realloc(buf, cap);
        }
    }
    fclose(f);
    if (buf == NULL)
        abort();
    buf[n] = '\0';
    if (len != NULL)
        *len = n;
    return buf;
}

void test_machine(char *out, size_t cap)
{
    struct utsname u;
    uname(&u);
    char model[128] = "";
    FILE *f = fopen("/proc/cpuinfo", "r");
    char line[256];
    while (f != NULL && fgets(line, sizeof line, f) != NULL) {
        char *colon = strchr(line, ':');
        if (strncmp(line, "model name", 10) == 0 && colon != NULL) {
            snprintf(model, sizeof model, ", %s", colon + 2);
            model[strcspn(model, "\n")] = '\0';
            break;
        }
    }
    if (f != NULL)
        fclose(f);
    snprintf(out, cap, "%s %s, %ld cores%s", u.sysname, u.machine,
             sysconf(_SC_NPROCESSORS_ONLN), model);
}

double test_prom_sample(const char *page, const char *prefix)
{
    size_t n = strlen(prefix);
    for (const char *line = page; line != NULL && *line != '\0';) {
        const char *end = strchr(line, '\n');
        size_t len = end != NULL ? (size_t)(end - line) : strlen(line);
        if (len > n && strncmp(line, prefix, n) == 0 && line[n] == ' ') {
            char value[64];
            double v;
            snprintf(value, sizeof value, "%.*s", (int)(len - n - 1), line + n + 1);
            return mlx_parse_double(value, &v, NULL) == 0 ? v : -1;
        }
        line = end != NULL ? end + 1 : NULL;
    }
    return -1;
}

double test_prom_sum(const char *page, const char *name, const char *const *needles)
{
    double sum = 0;
    size_t n = strlen(name);
    for (const char *line = page; line != NULL && *line != '\0';) {
        const char *end = strchr(line, '\n');
        size_t len = end != NULL ? (size_t)(end - line) : strlen(line);
        char text[1024];
        snprintf(text, sizeof text, "%.*s", (int)len, line);
        char *close = strrchr(text, '}');
        bool match = strncmp(text, name, n) == 0 && text[n] == '{' && close != NULL &&
                     close[1] == ' ';
        for (int i = 0; match && needles[i] != NULL; i++)
            match = strstr(text, needles[i]) != NULL;
        double v;
        if (match && mlx_parse_double(close + 2, &v, NULL) == 0)
            sum += v;
        line = end != NULL ? end + 1 : NULL;
    }
    return sum;
}

/* The line of a table that starts with prefix (static storage), or NULL. */
const char *test_table_line(const char *table, const char *prefix)
{
    static char line[512];
    for (const char *p = table; p != NULL && *p != '\0';) {
        const char *nl = strchr(p, '\n');
        size_t len = nl != NULL ? (size_t)(nl - p) : strlen(p);
        if (strncmp(p, prefix, strlen(prefix)) == 0 && len < sizeof line) {
            memcpy(line, p, len);
            line[len] = '\0';
            return line;
        }
        p = nl != NULL ? nl + 1 : NULL;
    }
    return NULL;
}

/* Cell col (0-based) of a table line whose cells are two or more spaces
 * apart (a cell holds at most single spaces: "3.1 ms"). out: 64 bytes. */
void test_table_cell(const char *line, int col, char *out)
{
    out[0] = '\0';
    const char *p = line;
    for (int k = 0; k <= col && *p != '\0'; k++) {
        while (*p == ' ')
            p++;
        const char *end = strstr(p, "  ");
        size_t len = end != NULL ? (size_t)(end - p) : strlen(p);
        if (k == col)
            snprintf(out, 64, "%.*s", (int)len, p);
        p += len;
    }
}

char *test_shared_model(const char *name)
{
    char *path = test_testdata(name);
    if (path == NULL || access(path, R_OK) != 0) {
        printf("SKIP: %s is absent from ../shared/testdata; this test needs the shared "
               "test models\n",
               name);
        free(path);
        return NULL;
    }
    return path;
}
