# agent/cache: `cache pull` — downloads from the HF Hub, Ollama registries and URLs
# (included by cache/cache.cmake).
target_sources(mlxcache PRIVATE
  cache/cmd_pull.c cache/progress.c cache/pull.c cache/pull_fetch.c cache/pull_headers.c
  cache/pull_hf.c cache/pull_hf_json.c cache/pull_http.c cache/pull_ollama.c
  cache/pull_source.c)
