/* load.c — the data plane's answer to LoadModel: Ollama's request with
 * nothing to generate, which loads a model (or unloads it) and says how
 * long the load took, as agent/http's load-only request does. */
#include <stdatomic.h>
#include <string.h>

#include "agent/dataplane/internal.h"
#include "common/log.h"
#include "common/parse.h"

int dp_check_model(const char *model, mlx_err *err)
{
    if (model[0] == '\0')
        return mlx_err_set(err, MLX_EINVAL,
                           "'model' is empty; name one of the models the agent's store "
                           "holds (mlx-agent cache list)");
    if (strlen(model) > MLX_MAX_MODEL_NAME ||
        !mlx_text_is_clean(model, MLX_MAX_MODEL_NAME))
        return mlx_err_set(err, MLX_EINVAL,
                           "'model' is not a model name (printable text of at most %d "
                           "bytes)",
                           MLX_MAX_MODEL_NAME);
    return 0;
}

/* The wire's keep-alive (0 the agent's, -1 unload now, more: that long) as
 * runtime_load takes it (-1 leaves it as it is, 0 unloads), the mapping
 * read_infer applies to Infer's. */
static int64_t runtime_keep_alive(int64_t wire_ms)
{
    if (wire_ms == 0)
        return -1;
    return wire_ms == -1 ? 0 : wire_ms;
}

/* Whether model is in memory now. runtime_load would load a model only to
 * unload it, which an unload must not cost. */
static bool is_loaded(runtime *rt, const char *model)
{
    runtime_status st;
    if (runtime_get_status(rt, &st, NULL) != 0)
        return true; /* let runtime_load decide */
    bool found = false;
    for (size_t i = 0; i < st.n_models && !found; i++)
        found = strcmp(st.models[i].name, model) == 0;
    runtime_status_free(&st);
    return found;
}

/* Loads or unloads; 0 with *load_ns set, or an MLX_E* code and err. */
static int load(dataplane *dp, const Fleet__LoadModel *in, int64_t *load_ns, mlx_err *err)
{
    *load_ns = 0;
    int rc = dp_check_model(in->model, err);
    if (rc != 0)
        return rc;
    if (in->keep_alive_ms < -1)
        return mlx_err_set(err, MLX_EINVAL, "keep_alive_ms %lld is below -1 (unload now)",
                           (long long)in->keep_alive_ms);
    bool unload = in->keep_alive_ms == -1;
    if (unload && !is_loaded(dp->rt, in->model))
        return 0; /* as Ollama: unloading what is not loaded is done */
    /* A load holds this worker for as long as it reads the model (and
     * waits for any other load first: the runtime loads one at a time), so
     * only some workers may: the others keep answering Next. */
    if (atomic_fetch_add(&dp->loads, 1) >= MLX_DATA_LOADS) {
        atomic_fetch_sub(&dp->loads, 1);
        return mlx_err_set(err, MLX_EBUSY,
                           "the agent is already waiting on %d loads; try again when "
                           "one is done",
                           MLX_DATA_LOADS);
    }
    rc = runtime_load(dp->rt, in->model, runtime_keep_alive(in->keep_alive_ms), load_ns,
                      err);
    atomic_fetch_sub(&dp->loads, 1);
    return rc;
}

void dp_on_load(struct exchange *x)
{
    dataplane *dp = x->dp;
    const Fleet__LoadModel *in = x->req->load;
    const char *id = mlx_text_is_clean(x->req->request_id, MLX_MAX_REQUEST_ID)
                         ? x->req->request_id
                         : "-";
    mlx_err err;
    mlx_err_clear(&err);
    int64_t load_ns = 0;
    int rc = load(dp, in, &load_ns, &err);
    int status;
    if (rc != 0) {
        mlx_log_info(MOD, "load refused", "id=%.64s model=\"%.200s\" err=\"%s\"", id,
                     in->model, mlx_err_text(&err, rc));
        dp_refuse_code(x, rc, mlx_err_text(&err, rc));
        status = (int)x->error.status;
    } else {
        mlx_log_info(MOD, in->keep_alive_ms == -1 ? "model unloaded" : "model loaded",
                     "id=%.64s model=\"%s\" load_ms=%lld", id, in->model,
                     (long long)(load_ns / 1000000));
        fleet__loaded__init(&x->loaded);
        x->loaded.load_ns = load_ns;
        x->reply.body_case = FLEET__ENVELOPE__BODY_LOADED;
        x->reply.loaded = &x->loaded;
        status = 200;
    }
    /* As the HTTP API counts its load-only request: the model named only
     * once it is known to be one. */
    if (dp->inference != NULL)
        metrics_inference_request(dp->inference, METRICS_ENDPOINT,
                                  status == 200 ? in->model : "", status);
}
