/* membership.c — the node table and the silence rule. */
#include "coordinator/membership/membership.h"

#include <string.h>

#include "common/alloc.h"

struct node {
    char id[MLX_NODE_ID_LEN + 1];
    node_state state;
    int64_t interval_ms;
    int64_t last_heard; /* monotonic ms */
};

struct membership {
    membership_policy policy;
    struct node *nodes; /* unordered; fleets are small enough for a scan */
    size_t n, max;
};

static const char *const state_names[] = {"up", "suspect", "down", "left"};

const char *membership_state_name(node_state s)
{
    return (unsigned)s < 4 ? state_names[s] : "unknown";
}

int membership_parse_state(const char *name, node_state *out)
{
    for (int i = 0; i < 4; i++) {
        if (strcmp(name, state_names[i]) == 0) {
            *out = (node_state)i;
            return 0;
        }
    }
    return MLX_EINVAL;
}

node_state membership_state_after(const membership_policy *p, node_state current,
                                  int64_t interval_ms, int64_t silent_ms)
{
    if (current == NODE_LEFT)
        return NODE_LEFT;
    if (interval_ms <= 0)
        interval_ms = p->default_interval_ms;
    if (silent_ms > p->down_after * interval_ms)
        return NODE_DOWN;
    if (silent_ms > p->suspect_after * interval_ms)
        return current == NODE_DOWN ? NODE_DOWN : NODE_SUSPECT;
    /* Silence never makes a node better; only a heartbeat does. */
    return current;
}

int membership_check_policy(const membership_policy *p, mlx_err *err)
{
    if (p->default_interval_ms < 1)
        return mlx_err_set(err, MLX_ECONFIG, "--heartbeat-ms must be at least 1");
    if (p->suspect_after < 1)
        return mlx_err_set(err, MLX_ECONFIG, "--suspect-after must be at least 1");
    if (p->down_after <= p->suspect_after)
        return mlx_err_set(
            err, MLX_ECONFIG,
            "--down-after (%lld) must be larger than --suspect-after (%lld)",
            (long long)p->down_after, (long long)p->suspect_after);
    return 0;
}

int membership_create(const membership_policy *p, size_t max_nodes, membership **out,
                      mlx_err *err)
{
    int rc = membership_check_policy(p, err);
    if (rc != 0)
        return rc;
    membership *m = mlx_calloc(1, sizeof *m);
    if (m == NULL)
        return mlx_err_set(err, MLX_ENOMEM, "out of memory");
    m->policy = *p;
    m->max = max_nodes;
    *out = m;
    return 0;
}

void membership_destroy(membership *m)
{
    if (m == NULL)
        return;
    mlx_free(m->nodes);
    mlx_free(m);
}

static struct node *find(const membership *m, const char *id)
{
    for (size_t i = 0; i < m->n; i++) {
        if (strcmp(m->nodes[i].id, id) == 0)
            return &m->nodes[i];
    }
    return NULL;
}

static int add(membership *m, const char *id, struct node **out, mlx_err *err)
{
    if (strlen(id) != MLX_NODE_ID_LEN)
        return mlx_err_set(err, MLX_EINVAL, "'%s' is not a node id", id);
    if (m->n >= m->max)
        return mlx_err_set(err, MLX_EBUSY, "the fleet already has %zu nodes, the limit",
                           m->max);
    struct node *nodes = mlx_realloc(m->nodes, (m->n + 1) * sizeof *nodes);
    if (nodes == NULL)
        return mlx_err_set(err, MLX_ENOMEM, "out of memory");
    m->nodes = nodes;
    struct node *n = &nodes[m->n++];
    memset(n, 0, sizeof *n);
    memcpy(n->id, id, MLX_NODE_ID_LEN + 1);
    *out = n;
    return 0;
}

int membership_restore(membership *m, const char *node_id, node_state state,
                       int64_t interval_ms, int64_t now, mlx_err *err)
{
    struct node *n = find(m, node_id);
    if (n == NULL) {
        int rc = add(m, node_id, &n, err);
        if (rc != 0)
            return rc;
    }
    n->state = state;
    n->interval_ms = interval_ms;
    n->last_heard = now;
    return 0;
}

int membership_register(membership *m, const char *node_id, int64_t interval_ms,
                        int64_t now, int *previous, mlx_err *err)
{
    struct node *n = find(m, node_id);
    *previous = n != NULL ? (int)n->state : -1;
    if (n == NULL) {
        int rc = add(m, node_id, &n, err);
        if (rc != 0)
            return rc;
    }
    n->state = NODE_UP;
    n->interval_ms = interval_ms;
    n->last_heard = now;
    return 0;
}

int membership_heartbeat(membership *m, const char *node_id, int64_t now,
                         node_state *previous)
{
    struct node *n = find(m, node_id);
    if (n == NULL || n->state == NODE_LEFT)
        return MLX_EUNKNOWNNODE;
    *previous = n->state;
    n->state = NODE_UP;
    n->last_heard = now;
    return 0;
}

int membership_leave(membership *m, const char *node_id)
{
    struct node *n = find(m, node_id);
    if (n == NULL)
        return MLX_EUNKNOWNNODE;
    n->state = NODE_LEFT;
    return 0;
}

size_t membership_tick(membership *m, int64_t now, membership_change *out, size_t max)
{
    size_t changed = 0;
    for (size_t i = 0; i < m->n && changed < max; i++) {
        struct node *n = &m->nodes[i];
        int64_t silent = now - n->last_heard;
        node_state next =
            membership_state_after(&m->policy, n->state, n->interval_ms, silent);
        if (next == n->state)
            continue;
        membership_change *c = &out[changed];
        memcpy(c->node_id, n->id, sizeof c->node_id);
        c->from = n->state;
        c->to = next;
        c->silent_ms = silent;
        n->state = next;
        changed++;
    }
    return changed;
}

int membership_state(const membership *m, const char *node_id, node_state *out)
{
    const struct node *n = find(m, node_id);
    if (n == NULL)
        return MLX_EUNKNOWNNODE;
    *out = n->state;
    return 0;
}

size_t membership_count(const membership *m)
{
    return m->n;
}
