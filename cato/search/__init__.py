"""Search: the space, feature importance, objectives, samplers and Pareto/hypervolume tools."""
