/*
 * metrics.c — GET /metrics: the node and its models in Prometheus text.
 *
 * Names follow llama.cpp's server (llamacpp:prompt_tokens_total, …) with
 * our prefix mlx_ in place of "llamacpp:"; node series are mlx_node_*,
 * the store's mlx_store_*.
 * Every node series carries a node label, so a Prometheus scraping several
 * agents, or the coordinator's fleet view, can tell them apart.
 */
#include <string.h>

#include "agent/cache/cache.h"
#include "agent/http/internal.h"
#include "common/alloc.h"

/* Metrics pages stay well below this; a cap keeps a bug from eating RAM. */
#define METRICS_PAGE_MAX (4u << 20)

static void gauge(mlx_buf *b, const char *name, const char *help, const char *node,
                  double value)
{
    const char *labels[] = {"node", node};
    mlx_prom_family(b, name, "gauge", help);
    mlx_prom_sample(b, name, labels, 1, value);
}

void http_write_node_metrics(mlx_buf *b, const char *node, const metrics_snapshot *s)
{
    const metrics_sample *m = &s->system;
    gauge(b, "mlx_node_cpu_percent", "CPU busy over the last second, all cores, 0-100.",
          node, m->cpu_percent);
    gauge(b, "mlx_node_memory_used_bytes", "Memory in use.", node,
          (double)m->memory_used_bytes);
    gauge(b, "mlx_node_memory_total_bytes", "Physical memory.", node,
          (double)m->memory_total_bytes);
    gauge(b, "mlx_node_swap_used_bytes", "Swap in use.", node,
          (double)m->swap_used_bytes);
    gauge(b, "mlx_node_swap_total_bytes", "Swap space.", node,
          (double)m->swap_total_bytes);
    if (m->memory_wired_bytes > 0 || m->memory_compressed_bytes > 0) { /* macOS */
        gauge(b, "mlx_node_memory_wired_bytes", "Wired memory (macOS).", node,
              (double)m->memory_wired_bytes);
        gauge(b, "mlx_node_memory_compressed_bytes", "Compressed memory (macOS).", node,
              (double)m->memory_compressed_bytes);
    }
    gauge(b, "mlx_node_load1", "Load average over 1 minute.", node, m->load[0]);
    gauge(b, "mlx_node_load5", "Load average over 5 minutes.", node, m->load[1]);
    gauge(b, "mlx_node_load15", "Load average over 15 minutes.", node, m->load[2]);
    gauge(b, "mlx_node_disk_free_bytes",
          "Free space of the data directory's file system.", node,
          (double)m->disk_free_bytes);
    gauge(b, "mlx_node_network_receive_bytes_per_second",
          "Bytes received per second, all interfaces but loopback.", node,
          m->net_rx_bytes_per_s);
    gauge(b, "mlx_node_network_transmit_bytes_per_second",
          "Bytes sent per second, all interfaces but loopback.", node,
          m->net_tx_bytes_per_s);
    if (m->gpu_percent >= 0)
        gauge(b, "mlx_node_gpu_percent", "GPU busy, 0-100.", node, m->gpu_percent);

    mlx_prom_family(b, "mlx_model_tokens_per_second", "gauge",
                    "Tokens generated per second by each model, over the last second.");
    for (size_t i = 0; i < s->n_models; i++) {
        const char *labels[] = {
            "node", node, "model", s->models[i].model, "engine", s->models[i].engine};
        mlx_prom_sample(b, "mlx_model_tokens_per_second", labels, 3,
                        s->models[i].tokens_per_s);
    }
    mlx_prom_family(b, "mlx_model_memory_bytes", "gauge",
                    "Memory held by each loaded model.");
    for (size_t i = 0; i < s->n_models; i++) {
        const char *labels[] = {
            "node", node, "model", s->models[i].model, "engine", s->models[i].engine};
        mlx_prom_sample(b, "mlx_model_memory_bytes", labels, 3,
                        (double)s->models[i].memory_bytes);
    }
}

/* What the runtime holds and does: llama.cpp's requests_processing and
 * requests_deferred, the loaded models and the memory budget. */
static void write_runtime(mlx_buf *b, const char *node, runtime *rt)
{
    runtime_status st;
    if (rt == NULL || runtime_get_status(rt, &st, NULL) != 0)
        return;
    uint32_t running = 0, queued = 0;
    uint64_t memory = 0;
    for (size_t i = 0; i < st.n_models; i++) {
        running += st.models[i].running;
        queued += st.models[i].queued;
        memory += st.models[i].memory_bytes;
    }
    gauge(b, "mlx_requests_processing", "Requests being generated.", node, running);
    gauge(b, "mlx_requests_deferred", "Requests waiting for a slot.", node, queued);
    gauge(b, "mlx_models_loaded", "Models loaded for serving.", node, (double)st.n_models);
    gauge(b, "mlx_models_memory_bytes", "Memory the loaded models hold.", node,
          (double)memory);
    gauge(b, "mlx_memory_budget_bytes", "Memory the loaded models may hold.", node,
          (double)st.memory_budget);
    runtime_status_free(&st);
}

/* The store: what it holds and what de-duplication gave back. */
static void write_store(mlx_buf *b, const char *node, const char *data_dir)
{
    cache_totals t;
    if (cache_read_totals(data_dir, &t, NULL) != 0)
        return;
    gauge(b, "mlx_store_bytes", "Bytes of the model store's blobs.", node,
          (double)t.blob_bytes);
    gauge(b, "mlx_store_dedup_saved_bytes",
          "Bytes given back by de-duplicating the model caches.", node,
          (double)t.dedup_given_back);
}

void http_handle_metrics(void *ctx, const mlx_http_req *req, mlx_http_resp *resp)
{
    agent_http *h = ctx;
    metrics_snapshot snap;
    metrics_sampler_latest(h->cfg.sampler, &snap);
    mlx_buf b;
    mlx_buf_init(&b, METRICS_PAGE_MAX);
    http_write_node_metrics(&b, h->cfg.node_name, &snap);
    write_runtime(&b, h->cfg.node_name, h->cfg.rt);
    write_store(&b, h->cfg.node_name, h->cfg.data_dir);
    if (h->cfg.inference != NULL)
        metrics_inference_write(h->cfg.inference, &b, h->cfg.node_name);
    resp->status = 200;
    resp->content_type = "text/plain; version=0.0.4; charset=utf-8";
    resp->body_len = b.len;
    resp->body = mlx_buf_take(&b);
    if (resp->body == NULL)
        mlx_http_resp_error(resp, 500, "server_error", "out_of_memory",
                            "out of memory writing metrics");
}
