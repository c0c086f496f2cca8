/*
 * facts.h — internal to coordinator/control: what agents report, checked
 * and turned into the JSON the registry keeps and the admin API shows.
 */
#ifndef MLX_COORDINATOR_CONTROL_FACTS_H
#define MLX_COORDINATOR_CONTROL_FACTS_H

#include <nng/nng.h>

#include "common/err.h"
#include "coordinator/registry/registry.h"
#include "proto/wire.h"

/* Checks every field of a Register (names, addresses, hardware strings,
 * the store list); the sentence names the first bad field. */
int facts_check_register(const Fleet__Register *reg, mlx_err *err);

/* Checks the model activity and the store list a Heartbeat reports
 * (counts, names, digests). */
int facts_check_heartbeat(const Fleet__Heartbeat *hb, mlx_err *err);

/* The data-plane address to dial: advertise if given, else listen with a
 * wildcard host (0.0.0.0, ::) replaced by the address the agent connected
 * from. out holds MLX_MAX_ADDRESS + 1 bytes. */
int facts_resolve_address(const Fleet__Register *reg, const char *peer_ip, char *out,
                          mlx_err *err);

/* "10.0.0.5" (or "::1") of the pipe a message came on; "" if unknown. */
void facts_peer_ip(nng_msg *msg, char *out, size_t size);

/* JSON text (caller frees with mlx_free), or NULL when out of memory. */
char *facts_hardware_json(const Fleet__Hardware *hw);
char *facts_metrics_json(const Fleet__Heartbeat *hb);

/* A checked store list or a checked heartbeat's loaded models as the
 * registry takes them; strings borrowed from the message. NULL when out of
 * memory; caller frees with mlx_free. */
registry_stored *facts_store(Fleet__StoredModel *const *store, size_t n);
registry_loaded *facts_loaded(const Fleet__Heartbeat *hb);

#endif
