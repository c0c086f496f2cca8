/*
 * promserver.h — Debian's Prometheus, started on loopback for a test: it
 * scrapes the given targets every second, and the test reads series back
 * through Prometheus' own query API. A page Prometheus cannot parse marks
 * its target down; a wrong figure shows as a wrong number.
 *
 * Failures are cmocka failures with what Prometheus last said.
 */
#ifndef MLX_TESTS_PROMSERVER_H
#define MLX_TESTS_PROMSERVER_H

#include <stddef.h>

/* First scrape: Prometheus starts slowly on 2 cores. */
#define PROM_START_MS 60000
/* A value to settle: several 1 s scrapes. */
#define PROM_VALUE_MS 20000

typedef struct prom_server prom_server;

/* One scrape job: its name and the ports of its targets on 127.0.0.1. */
typedef struct prom_job {
    const char *name;
    const int *ports;
    size_t n_ports;
} prom_job;

/* Starts Prometheus scraping jobs[0..n) (fails the test when Prometheus
 * is not installed) and waits until every target is up with a clean last
 * scrape. */
prom_server *prom_start(const char *tag, const prom_job *jobs, size_t n_jobs);

typedef enum prom_want { PROM_EQUAL, PROM_AT_LEAST, PROM_ABOVE, PROM_FINITE } prom_want;

/* Polls promql (whose answer must be one sample) until its value meets
 * the condition, or fails saying what Prometheus last answered. */
void prom_expect(prom_server *p, const char *promql, prom_want want, double expected);

/* Stops Prometheus and removes its directory; its exit status on SIGTERM
 * (0 when it stopped cleanly). NULL is a no-op returning 0. */
int prom_stop(prom_server *p);

#endif
