# The coordinator's OpenAI and Ollama front (coordinator/http/infer.c): a
# coordinator and two agents serving stories260K, answers compared with an
# agent's own, errors in each API's shape, session affinity and failover.
mlx_integration_test(it_front mlxserving mlxtestutil)
# Sanitized builds generate far slower.
set_tests_properties(integration.it_front PROPERTIES TIMEOUT 300)
# Ollama's load-only request through the coordinator: a model loaded on the
# node a generation would go to, unloaded from every node, a 404 when no
# node holds it.
mlx_integration_test(it_front_load mlxserving mlxtestutil)
set_tests_properties(integration.it_front_load PROPERTIES TIMEOUT 300)
# The coordinator's /metrics and /api/v1/requests on a real fleet, scraped by
# a real Prometheus beside both agents.
mlx_integration_test(it_fleet_metrics mlxserving mlxtestutil Threads::Threads)
set_tests_properties(integration.it_fleet_metrics PROPERTIES TIMEOUT 300)
# The agent's table of malformed requests and abused framing
# (bad_requests.c) sent to the coordinator, with one agent behind it.
mlx_integration_test(it_front_bad_input mlxserving)
set_tests_properties(integration.it_front_bad_input PROPERTIES TIMEOUT 300)
