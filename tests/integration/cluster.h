/*
 * cluster.h — a coordinator and agents on loopback, for integration tests.
 *
 * Ports are chosen free at run time; every process logs into the cluster's
 * temporary directory, which is removed by cluster_destroy (logs are kept
 * when MLX_KEEP_LOGS is set, and their path is printed on failure).
 */
#ifndef MLX_TESTS_CLUSTER_H
#define MLX_TESTS_CLUSTER_H

#include <jansson.h>
#include <stdbool.h>

#include "tests/integration/harness.h"

#define CLUSTER_MAX_AGENTS 8

typedef struct cluster_agent {
    char name[32];
    char data[512];
    char node_id[17]; /* known once the agent wrote it */
    int http_port, listen_port;
    h_proc *proc;
} cluster_agent;

typedef struct cluster {
    char *dir;
    int control_port, http_port;
    char control_url[64], http_url[64];
    int heartbeat_ms, suspect_after, down_after;
    h_proc *coordinator;
    cluster_agent agents[CLUSTER_MAX_AGENTS];
    int n_agents;
} cluster;

cluster *cluster_create(const char *tag, int heartbeat_ms, int suspect_after,
                        int down_after);
void cluster_destroy(cluster *c);

void cluster_start_coordinator(cluster *c);
/* Adds agent i (its data dir is kept for restarts) and starts it. */
int cluster_add_agent(cluster *c, const char *name);
void cluster_start_agent(cluster *c, int i);

/* GET /api/v1/nodes (caller decrefs), NULL if unreachable. */
json_t *cluster_nodes(cluster *c);
/* The node object with this id in a nodes document (borrowed), or NULL. */
json_t *cluster_find_node(json_t *nodes, const char *id);
/* The state the coordinator reports for agent i ("" if unknown). out: 16 bytes. */
void cluster_agent_state(cluster *c, int i, char *out);
bool cluster_wait_agent_state(cluster *c, int i, const char *state, int timeout_ms);
/* `mlx-agent cache add FILE --name MODEL` into the store of the agent that
 * cluster_add_agent(c, agent) will start, before it starts (the list then
 * travels at Register). false, with the reason on stderr, on failure. */
bool cluster_store_add(cluster *c, const char *agent, const char *file,
                       const char *model);

/* Waits until every agent added has written its node id and is up. false,
 * naming the agent on stderr, when one is not within timeout_ms. */
bool cluster_wait_agents_up(cluster *c, int timeout_ms);

/* Waits until the coordinator lists model on n up nodes with flag
 * ("stored" or "loaded") true. */
bool cluster_wait_model(cluster *c, const char *model, const char *flag, int n,
                        int timeout_ms);

/* The agent whose log names request_id as a generation it served (its
 * index), waiting up to timeout_ms for the line; -1 when none does. */
int cluster_wait_served_by(cluster *c, const char *request_id, int timeout_ms);

/* Waits until the SQL count query sql over the coordinator's request log
 * (the requests table of <data>/auth.db), with ?1 and ?2 bound to arg1 and
 * arg2 (NULL: SQL NULL), counts want rows: the log is written a moment
 * after a request ends. *got (may be NULL) is the last count, -1 when the
 * file could not be read. */
bool cluster_wait_log_rows(cluster *c, const char *sql, const char *arg1,
                           const char *arg2, long long want, int timeout_ms,
                           long long *got);

/* Reads agent i's node id from its data dir, waiting for it to appear. */
bool cluster_wait_node_id(cluster *c, int i, int timeout_ms);

/* Agent i's generations that ended with status (model NULL: every model),
 * as the coordinator's /metrics counts them (requests_total) and as the
 * agent's counts those the coordinator sent it (endpoint "dataplane").
 * False when either page did not answer 200. */
bool cluster_count_generations(cluster *c, int i, const char *model, const char *status,
                               double *coordinator, double *agent);

/* Adds n agents, "agent0"…, each holding file in its store as model, and
 * waits until all are up and the coordinator lists the model stored on
 * every one. False, after printing why, when that does not happen within
 * wait_ms each. */
bool cluster_start_holding(cluster *c, int n, const char *file, const char *model,
                           int wait_ms);

#endif
