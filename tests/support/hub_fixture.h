/*
 * hub_fixture.h — what the files of mlx-test-hub share: the blobs it
 * serves with their faults and counters, and the ways of answering.
 * See hub_fixture.c for what it serves and why.
 */
#ifndef MLX_TESTS_HUB_FIXTURE_H
#define MLX_TESTS_HUB_FIXTURE_H

#include <jansson.h>
#include <microhttpd.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define MAX_BLOBS 32

enum redirect { REDIRECT_RELATIVE, REDIRECT_ABSOLUTE, REDIRECT_OTHER_HOST };

struct fault {
    int status;       /* answer with this instead, 0: none */
    int64_t truncate; /* close at this file offset, 0: none */
    int64_t stall;    /* stop sending at this file offset, 0: none */
    int64_t throttle; /* bytes per second, 0: unlimited */
    bool corrupt;     /* flip the middle byte */
    bool short_size;  /* state one byte less, send the body chunked */
    enum redirect redirect;
};

struct blob {
    char key[128];
    char *data;
    size_t size;
    char sha256[65], gitsha1[41];
    struct fault fault;                 /* under lock */
    int64_t gets, heads, ranges, bytes; /* under lock */
};

/* The whole server's state; blobs and config are fixed after start. */
struct hub_state {
    struct blob blobs[MAX_BLOBS];
    size_t n_blobs;
    json_t *config;
    int port;
    pthread_mutex_t lock;
    int64_t requests, auth_seen, auth_localhost; /* under lock */
    volatile sig_atomic_t stopping;
};

extern struct hub_state hub;

struct blob *hub_find_blob(const char *key);
struct blob *hub_find_blob_sha(const char *sha);
struct fault hub_fault_of(struct blob *b);

/* Queue a response and drop our reference to it. */
enum MHD_Result hub_queue(struct MHD_Connection *c, unsigned status,
                          struct MHD_Response *r);
enum MHD_Result hub_send_text(struct MHD_Connection *c, unsigned status, const char *type,
                              const char *text);
/* Takes the reference to v. */
enum MHD_Result hub_send_json(struct MHD_Connection *c, unsigned status, json_t *v,
                              const char *type);

/* The bytes of b with Range and its faults; commit (X-Repo-Commit) may be NULL. */
enum MHD_Result hub_send_blob(struct MHD_Connection *c, struct blob *b, bool head,
                              const char *etag, const char *commit);

/* A redirect to /cdn/KEY as b's fault says to write the Location. With keep,
 * the response is handed back unqueued, for more headers. */
enum MHD_Result hub_send_redirect(struct MHD_Connection *c, unsigned status,
                                  struct blob *b, struct MHD_Response **keep);

/* /healthz, /_stats, /_reset, /_fault. */
enum MHD_Result hub_control(struct MHD_Connection *c, const char *url);

#endif
