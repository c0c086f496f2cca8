# Unit tests of common/api: OpenAI's and Ollama's request readers and
# answer writers, without a server. mlxengine only for its sampling
# defaults, which the OpenAI reader must match.
mlx_unit_test(test_api mlxcommon mlxengine)
