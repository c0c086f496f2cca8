/* fuzz_envelope.c — the control-plane decoder and the checks the
 * coordinator applies to what it decoded. */
#include <stddef.h>
#include <stdint.h>

#include "common/alloc.h"
#include "common/limits.h"
#include "coordinator/control/facts.h"
#include "proto/wire.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    wire_envelope *env = NULL;
    int rc = wire_unpack(data, size, MLX_MAX_CONTROL_MSG, &env, NULL);
    if (rc == 0) {
        wire_check_node_id(env->node_id, NULL);
        if (env->body_case == FLEET__ENVELOPE__BODY_REGISTER &&
            facts_check_register(env->register_, NULL) == 0) {
            char address[MLX_MAX_ADDRESS + 1];
            facts_resolve_address(env->register_, "10.0.0.1", address, NULL);
            mlx_free(facts_hardware_json(env->register_->hardware));
            mlx_free(facts_store(env->register_->store, env->register_->n_store));
        }
        if (env->body_case == FLEET__ENVELOPE__BODY_HEARTBEAT) {
            mlx_free(facts_metrics_json(env->heartbeat));
            if (facts_check_heartbeat(env->heartbeat, NULL) == 0) {
                mlx_free(facts_loaded(env->heartbeat));
                mlx_free(facts_store(env->heartbeat->store, env->heartbeat->n_store));
            }
        }
    }
    wire_free(env);
    return 0;
}
