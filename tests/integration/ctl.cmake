# mlxctl's run, chat and top against a coordinator and two agents serving
# stories260K: answers compared with an agent's own, errors as one sentence.
mlx_integration_test(it_ctl mlxserving)
