# The fleet's model inventory: store lists and loaded models from two agents
# to the coordinator's /api/v1/models and /api/v1/ps, and mlxctl's views.
mlx_integration_test(it_inventory)
