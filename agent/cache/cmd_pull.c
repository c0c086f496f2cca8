/*
 * cmd_pull.c — `mlx-agent cache pull SRC`: a model from the HuggingFace
 * Hub, an Ollama registry or a URL into the store, resumable, verified,
 * recorded only when complete. Prints a summary, or one JSON object with
 * --json; progress goes to stderr when it is a terminal.
 */
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "agent/cache/cache.h"
#include "agent/cache/cmd.h"
#include "agent/cache/pull.h"
#include "common/alloc.h"
#include "common/cli.h"
#include "common/http_client.h"
#include "common/parse.h"

#define DEFAULT_HF_ENDPOINT "https://huggingface.co"

struct pull_opts {
    char *data;
    char *name;
    char *sha256;
    char *ollama_registry;
    char *hf_endpoint;
    char *ca_bundle;
    char *stall_timeout;
    bool json;
};

static const mlx_opt pull_opts[] = {
    CACHE_OPT_DATA(struct pull_opts),
    {"name", 0, MLX_OPT_STR, offsetof(struct pull_opts, name), "", "NAME",
     "store the model under this name", .cli_only = true},
    {"sha256", 0, MLX_OPT_STR, offsetof(struct pull_opts, sha256), "", "HEX",
     "the SHA-256 a URL's file must have (required for URLs)", .cli_only = true},
    {"ollama-registry", 0, MLX_OPT_STR, offsetof(struct pull_opts, ollama_registry), "",
     "URL",
     "Ollama registry; empty: https://HOST for HOST/NS/NAME, else "
     "https://registry.ollama.ai"},
    {"hf-endpoint", 0, MLX_OPT_STR, offsetof(struct pull_opts, hf_endpoint), "", "URL",
     "HuggingFace Hub; empty: $HF_ENDPOINT or " DEFAULT_HF_ENDPOINT},
    {"ca-bundle", 0, MLX_OPT_PATH, offsetof(struct pull_opts, ca_bundle), "", "FILE",
     "PEM file of CA certificates to trust besides the system's"},
    {"stall-timeout", 0, MLX_OPT_STR, offsetof(struct pull_opts, stall_timeout), "30s",
     "DURATION", "give up on a server that sends under 1 KiB/s for this long"},
    CACHE_OPT_JSON(struct pull_opts),
    {NULL},
};

static int configure(const struct pull_opts *o, pull_config *cfg, char *hf_endpoint,
                     char *registry, size_t size, mlx_err *err)
{
    const char *hf = o->hf_endpoint[0] != '\0' ? o->hf_endpoint : getenv("HF_ENDPOINT");
    const char *flag = o->hf_endpoint[0] != '\0' ? "--hf-endpoint" : "HF_ENDPOINT";
    if (hf == NULL || hf[0] == '\0') {
        hf = DEFAULT_HF_ENDPOINT;
        flag = "the default Hub";
    }
    int rc = pull_parse_base_url(hf, flag, hf_endpoint, size, err);
    if (rc == 0 && o->ollama_registry[0] != '\0')
        rc = pull_parse_base_url(o->ollama_registry, "--ollama-registry", registry, size,
                                 err);
    if (rc != 0)
        return rc;
    cfg->hf_endpoint = hf_endpoint;
    cfg->ollama_registry = registry;
    if (o->name[0] != '\0') {
        if (store_check_name(o->name, err) != 0)
            return mlx_err_prefix(err, MLX_EUSAGE, "--name");
        cfg->name = o->name;
    }
    cfg->sha256 = o->sha256;
    int64_t stall_ms = 0;
    if (mlx_parse_duration_ms(o->stall_timeout, &stall_ms, err) != 0)
        return mlx_err_prefix(err, MLX_EUSAGE, "--stall-timeout");
    cfg->net.stall_s = (int)((stall_ms + 999) / 1000);
    if (stall_ms > 24 * 3600 * 1000)
        return mlx_err_set(err, MLX_EUSAGE, "--stall-timeout is longer than a day");
    cfg->net.ca_bundle = o->ca_bundle[0] != '\0' ? o->ca_bundle : NULL;
    if (cfg->net.ca_bundle != NULL && access(cfg->net.ca_bundle, R_OK) != 0)
        return mlx_err_set(err, MLX_EUSAGE, "--ca-bundle: cannot read %s: %s",
                           cfg->net.ca_bundle, strerror(errno));
    cfg->net.progress = true;
    /* The token belongs to the Hub; it is never sent anywhere else. */
    const char *token = getenv("HF_TOKEN");
    if (token != NULL && token[0] != '\0' &&
        pull_url_origin(hf_endpoint, cfg->net.token_origin, sizeof cfg->net.token_origin,
                        NULL) == 0)
        cfg->net.token = token;
    return 0;
}

static const char *source_name(store_source s)
{
    return s == STORE_SRC_HF ? "hf" : s == STORE_SRC_OLLAMA ? "ollama" : "url";
}

static int print_json(const pull_result *r, mlx_err *err)
{
    json_t *files = json_array(), *skipped = json_array();
    uint64_t size = 0, downloaded = 0, reused = 0;
    for (size_t i = 0; i < r->n_files; i++) {
        const pull_blob_result *b = &r->files[i].blob;
        size += b->size;
        downloaded += b->downloaded;
        reused += b->reused ? b->size : 0;
        json_array_append_new(
            files,
            json_pack("{s:s, s:s, s:I, s:I, s:I, s:b}", "path", r->files[i].path,
                      "sha256", b->sha256, "size_bytes", (json_int_t)b->size,
                      "downloaded_bytes", (json_int_t)b->downloaded, "resumed_from_bytes",
                      (json_int_t)b->resumed_from, "reused", b->reused));
    }
    for (size_t i = 0; i < r->n_skipped; i++)
        json_array_append_new(skipped, json_string(r->skipped[i]));
    json_t *v = json_pack("{s:s, s:s, s:s, s:s, s:o, s:I, s:I, s:I, s:o}", "name",
                          r->name, "source", source_name(r->source), "origin", r->origin,
                          "format", r->format, "files", files, "size_bytes",
                          (json_int_t)size, "downloaded_bytes", (json_int_t)downloaded,
                          "reused_bytes", (json_int_t)reused, "skipped", skipped);
    if (v == NULL)
        return mlx_err_set(err, MLX_ENOMEM, "out of memory writing JSON");
    return mlx_json_print(v, err);
}

static void print_summary(const pull_result *r)
{
    uint64_t size = 0, downloaded = 0, reused = 0;
    for (size_t i = 0; i < r->n_files; i++) {
        size += r->files[i].blob.size;
        downloaded += r->files[i].blob.downloaded;
        reused += r->files[i].blob.reused ? r->files[i].blob.size : 0;
    }
    char sz[32], dl[32], ru[32];
    cache_format_bytes(size, sz, sizeof sz);
    cache_format_bytes(downloaded, dl, sizeof dl);
    cache_format_bytes(reused, ru, sizeof ru);
    printf("Pulled %s: %zu file%s, %s (%s downloaded, %s already in the store).\n",
           r->name, r->n_files, r->n_files == 1 ? "" : "s", sz, dl, ru);
    for (size_t i = 0; i < r->n_skipped; i++)
        printf("  skipped %s: the store cannot hold that file name\n", r->skipped[i]);
}

static int pull(const mlx_program *prog, const mlx_cmd *cmd, int argc, char **argv)
{
    struct pull_opts o = {0};
    mlx_args args = {0};
    mlx_err err;
    mlx_err_clear(&err);
    store *s = NULL;
    pull_result r = {0};
    pull_source *src = mlx_calloc(1, sizeof *src);
    pull_config cfg = {0};
    char hf[PULL_MAX_URL + 1], registry[PULL_MAX_URL + 1] = "";
    int rc = mlx_cli_load(prog, cmd, argc, argv, &o, &args);
    if (rc != 0 || args.help)
        goto out;
    if (src == NULL)
        rc = mlx_err_set(&err, MLX_ENOMEM, "out of memory");
    if (rc == 0)
        rc = pull_parse_source(args.argv[0], src, &err);
    if (rc == 0)
        rc = configure(&o, &cfg, hf, registry, sizeof hf, &err);
    if (rc == 0 && src->kind != PULL_URL && o.sha256[0] != '\0')
        rc = mlx_err_set(&err, MLX_EUSAGE,
                         "--sha256 is for URLs; the Hub and Ollama registries state "
                         "their digests themselves");
    if (rc == 0)
        rc = pull_check(src, &cfg, &err);
    bool curl_ready = false;
    if (rc == 0 && (rc = mlx_http_client_init(&err)) == 0)
        curl_ready = true;
    if (rc == 0)
        rc = cache_cmd_open(o.data, &s, &err);
    if (rc == 0) {
        if (src->kind == PULL_HF)
            rc = pull_hf(s, src, &cfg, &r, &err);
        else if (src->kind == PULL_OLLAMA)
            rc = pull_ollama(s, src, &cfg, &r, &err);
        else
            rc = pull_url(s, src, &cfg, &r, &err);
    }
    if (rc == 0)
        rc = pull_record(s, &r, &err);
    if (rc == 0 && o.json)
        rc = print_json(&r, &err);
    else if (rc == 0)
        print_summary(&r);
    if (rc != 0)
        mlx_cli_fail(prog, rc, &err);
    if (curl_ready)
        mlx_http_client_fini();
out:
    pull_result_free(&r);
    store_close(s);
    mlx_free(src);
    mlx_config_free(cmd, &o);
    mlx_config_free_args(&args);
    return rc;
}

const mlx_cmd cache_cmd_pull = {
    .name = "cache pull",
    .args = "SRC",
    .summary = "download a model from the HuggingFace Hub, an Ollama registry or a URL",
    .about =
        "SRC is hf:ORG/NAME[@REV][/FILE] (a whole repository, or one file of it),\n"
        "ollama:NAME[:TAG] (NAME may be NS/NAME or HOST/NS/NAME), or an http(s) URL\n"
        "with --sha256. Every file is checked against the digest its source states\n"
        "and stored once by content; the model is recorded only when all of it is\n"
        "there. An interrupted pull resumes where it stopped. HF_TOKEN is sent to the\n"
        "Hub (and nowhere else) for gated or private repositories.",
    .opts = pull_opts,
    .min_args = 1,
    .max_args = 1,
    .run = pull,
};
