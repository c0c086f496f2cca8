/* harness.c — process control, capture and polling for integration tests. */
#include "tests/integration/harness.h"

#include <curl/curl.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "tests/support/testutil.h"

#define MAX_PROCS 64

static pid_t live[MAX_PROCS];
static bool cleanup_registered;

static void kill_leftovers(void)
{
    for (int i = 0; i < MAX_PROCS; i++) {
        if (live[i] > 0) {
            kill(live[i], SIGKILL);
            waitpid(live[i], NULL, 0);
            live[i] = 0;
        }
    }
}

static void track(pid_t pid, bool add)
{
    if (!cleanup_registered) {
        atexit(kill_leftovers);
        cleanup_registered = true;
    }
    for (int i = 0; i < MAX_PROCS; i++) {
        if (add && live[i] == 0) {
            live[i] = pid;
            return;
        }
        if (!add && live[i] == pid) {
            live[i] = 0;
            return;
        }
    }
}

int64_t h_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

const char *h_bin(const char *name)
{
    static char path[4][512];
    static int next;
    char *p = path[next++ % 4];
    if (name[0] == '/') /* another program, such as a system's prometheus */
        snprintf(p, sizeof path[0], "%s", name);
    else
        snprintf(p, sizeof path[0], "%s/%s", MLX_BIN_DIR, name);
    return p;
}

const char *h_which(const char *program)
{
    static char found[1024];
    const char *path = getenv("PATH");
    while (path != NULL && *path != '\0') {
        size_t n = strcspn(path, ":");
        snprintf(found, sizeof found, "%.*s/%s", (int)n, path, program);
        if (n > 0 && access(found, X_OK) == 0)
            return found;
        path += n;
        if (*path == ':')
            path++;
    }
    return NULL;
}

/* Ports come from 10000-31999, below Linux's ephemeral range (32768+): a
 * port the kernel hands out for outgoing connections could be taken by one
 * of our own clients between this check and the daemon's bind. */
int h_free_port(void)
{
    static unsigned seed;
    if (seed == 0)
        seed = (unsigned)getpid() * 2654435761u ^ (unsigned)h_now_ms();
    for (int attempt = 0; attempt < 1000; attempt++) {
        seed = seed * 1103515245u + 12345u;
        int port = 10000 + (int)((seed >> 8) % 22000);
        int fd = socket(AF_INET, SOCK_STREAM, 0);
        struct sockaddr_in sa = {.sin_family = AF_INET,
                                 .sin_port = htons((uint16_t)port),
                                 .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
        int ok = fd >= 0 && bind(fd, (struct sockaddr *)&sa, sizeof sa) == 0;
        if (fd >= 0)
            close(fd);
        if (ok)
            return port;
    }
    fprintf(stderr, "h_free_port: no free port in 10000-31999\n");
    abort();
}

static char **make_argv(const char *bin, const char *const *args)
{
    int n = 0;
    while (args != NULL && args[n] != NULL)
        n++;
    char **argv = calloc((size_t)n + 2, sizeof *argv);
    if (argv == NULL)
        abort();
    argv[0] = (char *)bin;
    for (int i = 0; i < n; i++)
        argv[i + 1] = (char *)args[i];
    return argv;
}

/* Child side of a fork: unblock signals the parent may have blocked. */
static void child_exec(const char *bin, char **argv)
{
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, NULL);
    execv(bin, argv);
    fprintf(stderr, "cannot run %s: %s\n", bin, strerror(errno));
    _exit(127);
}

h_proc *h_spawn(const char *name, const char *log_dir, const char *bin,
                const char *const *args)
{
    h_proc *p = calloc(1, sizeof *p);
    if (p == NULL)
        abort();
    snprintf(p->name, sizeof p->name, "%s", name);
    snprintf(p->log_path, sizeof p->log_path, "%s/%s.log", log_dir, name);
    const char *path = h_bin(bin);
    char **argv = make_argv(path, args);
    pid_t pid = fork();
    if (pid == 0) {
        int fd = open(p->log_path, O_WRONLY | O_CREAT | O_APPEND, 0644);
        if (fd >= 0) {
            dup2(fd, STDOUT_FILENO);
            dup2(fd, STDERR_FILENO);
            close(fd);
        }
        child_exec(path, argv);
    }
    free(argv);
    if (pid < 0) {
        perror("fork");
        abort();
    }
    p->pid = pid;
    track(pid, true);
    return p;
}

void h_signal(h_proc *p, int sig)
{
    if (p != NULL && p->pid > 0)
        kill(p->pid, sig);
}

static int decode_status(int status)
{
    if (WIFEXITED(status))
        return WEXITSTATUS(status);
    if (WIFSIGNALED(status))
        return 128 + WTERMSIG(status);
    return -1;
}

int h_wait_exit(h_proc *p, int timeout_ms)
{
    int64_t deadline = h_now_ms() + timeout_ms;
    for (;;) {
        int status;
        pid_t r = waitpid(p->pid, &status, WNOHANG);
        if (r == p->pid) {
            track(p->pid, false);
            p->pid = 0;
            return decode_status(status);
        }
        if (r < 0 || h_now_ms() > deadline)
            return -1;
        struct timespec ts = {0, 5 * 1000000};
        nanosleep(&ts, NULL);
    }
}

int h_stop(h_proc *p)
{
    if (p == NULL)
        return -1;
    int status = -1;
    if (p->pid > 0) {
        kill(p->pid, SIGTERM);
        status = h_wait_exit(p, 10000);
        if (status < 0) {
            fprintf(stderr, "%s did not stop within 10 s of SIGTERM; killing it\n",
                    p->name);
            kill(p->pid, SIGKILL);
            status = h_wait_exit(p, 10000);
        }
    }
    free(p);
    return status;
}

/* Reads what is available on fd into *buf (growing it). false at EOF. */
static bool drain(int fd, char **buf, size_t *len)
{
    char chunk[4096];
    ssize_t n = read(fd, chunk, sizeof chunk);
    if (n <= 0)
        return n < 0 && errno == EINTR;
    *buf = realloc(*buf, *len + (size_t)n + 1);
    if (*buf == NULL)
        abort();
    memcpy(*buf + *len, chunk, (size_t)n);
    *len += (size_t)n;
    (*buf)[*len] = '\0';
    return true;
}

int h_run(const char *bin, const char *const *args, int timeout_ms, char **out,
          char **err)
{
    return h_run_as((uid_t)-1, (gid_t)-1, bin, args, timeout_ms, out, err);
}

int h_run_as(uid_t uid, gid_t gid, const char *bin, const char *const *args,
             int timeout_ms, char **out, char **err)
{
    int po[2], pe[2];
    if (pipe(po) != 0 || pipe(pe) != 0)
        abort();
    const char *path = bin[0] == '/' ? bin : h_bin(bin);
    char **argv = make_argv(path, args);
    pid_t pid = fork();
    if (pid == 0) {
        dup2(po[1], STDOUT_FILENO);
        dup2(pe[1], STDERR_FILENO);
        close(po[0]);
        close(pe[0]);
        close(po[1]);
        close(pe[1]);
        if (uid != (uid_t)-1 &&
            (setgroups(0, NULL) != 0 || setgid(gid) != 0 || setuid(uid) != 0)) {
            perror("h_run_as: cannot change user");
            _exit(126);
        }
        child_exec(path, argv);
    }
    free(argv);
    close(po[1]);
    close(pe[1]);
    char *obuf = calloc(1, 1), *ebuf = calloc(1, 1);
    size_t olen = 0, elen = 0;
    bool oopen = true, eopen = true;
    int64_t deadline = h_now_ms() + timeout_ms;
    while ((oopen || eopen) && h_now_ms() < deadline) {
        struct pollfd fds[2] = {{oopen ? po[0] : -1, POLLIN, 0},
                                {eopen ? pe[0] : -1, POLLIN, 0}};
        if (poll(fds, 2, 50) <= 0)
            continue;
        if (oopen && (fds[0].revents & (POLLIN | POLLHUP)))
            oopen = drain(po[0], &obuf, &olen);
        if (eopen && (fds[1].revents & (POLLIN | POLLHUP)))
            eopen = drain(pe[0], &ebuf, &elen);
    }
    close(po[0]);
    close(pe[0]);
    if (oopen || eopen)
        kill(pid, SIGKILL);
    int status;
    waitpid(pid, &status, 0);
    if (out != NULL)
        *out = obuf;
    else
        free(obuf);
    if (err != NULL)
        *err = ebuf;
    else
        free(ebuf);
    return (oopen || eopen) ? -1 : decode_status(status);
}

static size_t on_body(char *data, size_t size, size_t nmemb, void *arg)
{
    char **buf = arg;
    size_t old = *buf != NULL ? strlen(*buf) : 0;
    size_t n = size * nmemb;
    *buf = realloc(*buf, old + n + 1);
    if (*buf == NULL)
        abort();
    memcpy(*buf + old, data, n);
    (*buf)[old + n] = '\0';
    return n;
}

char *h_get_text(const char *url, long *status)
{
    CURL *curl = curl_easy_init();
    char *body = NULL;
    curl_easy_setopt(curl, CURLOPT_URL, url);
    curl_easy_setopt(curl, CURLOPT_TIMEOUT_MS, 5000L);
    curl_easy_setopt(curl, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(curl, CURLOPT_WRITEDATA, &body);
    long code = 0;
    if (curl_easy_perform(curl) == CURLE_OK)
        curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &code);
    curl_easy_cleanup(curl);
    if (status != NULL)
        *status = code;
    return body;
}

json_t *h_get_json(const char *url, long *status)
{
    char *body = h_get_text(url, status);
    json_t *v = body != NULL ? json_loads(body, 0, NULL) : NULL;
    free(body);
    return v;
}

bool h_wait_for(bool (*cond)(void *arg), void *arg, int timeout_ms)
{
    int64_t deadline = h_now_ms() + timeout_ms;
    for (;;) {
        if (cond(arg))
            return true;
        if (h_now_ms() > deadline)
            return false;
        struct timespec ts = {0, 10 * 1000000};
        nanosleep(&ts, NULL);
    }
}

int h_count_lines(const char *path, const char *needle)
{
    char *text = test_read_file(path, NULL);
    if (text == NULL)
        return 0;
    int count = 0;
    for (char *line = text; line != NULL && *line != '\0';) {
        char *nl = strchr(line, '\n');
        if (nl != NULL)
            *nl = '\0';
        if (strstr(line, needle) != NULL)
            count++;
        line = nl != NULL ? nl + 1 : NULL;
    }
    free(text);
    return count;
}
