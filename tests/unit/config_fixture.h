/*
 * config_fixture.h — a small program with the option kinds config.h knows,
 * and a fixture that loads one of its commands from words, an INI file and
 * the environment; shared by the config tests (test_config*.c).
 */
#ifndef MLX_TESTS_CONFIG_FIXTURE_H
#define MLX_TESTS_CONFIG_FIXTURE_H

#include <stdbool.h>
#include <stdint.h>

#include "common/config.h"

struct vals {
    char *data;
    char *name;
    char *coordinator;
    char *log_level;
    int64_t heartbeat_ms;
    int64_t threads;
    bool json;
    mlx_strlist dirs;
    char *hf;
    int64_t tokens;
    bool apply;
    double temp;
};

struct fixture {
    char *dir;
    char *ini; /* dir/fleet.ini, written by tests that need it */
    char *old_home;
    const mlx_cmd *cmd;
    struct vals v;
    mlx_args args;
    mlx_err err;
};

extern const mlx_cmd cmd_serve, cmd_run, cmd_scan, cmd_add;
extern const mlx_program prog;

/* cmocka setup and teardown: a temporary folder and HOME, a clean
 * environment, cmd_serve chosen. */
int setup(void **state);
int teardown(void **state);

/* Loads f->cmd from the NULL-terminated words that follow; frees what an
 * earlier load in the same test left first. */
int load(struct fixture *f, ...);

/* Fails the test unless f's error sentence holds part. */
void assert_msg_has(const struct fixture *f, const char *part);

#endif
