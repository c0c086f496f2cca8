/* crash.c — named points where tests make the process die (see crash.h). */
#include "common/crash.h"

#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>

static const char *armed;
static pthread_once_t once = PTHREAD_ONCE_INIT;

static void read_env(void)
{
    armed = getenv("MLX_CRASH_POINT");
}

void mlx_crash_point(const char *name)
{
    pthread_once(&once, read_env);
    if (armed != NULL && strcmp(armed, name) == 0)
        raise(SIGKILL);
}
