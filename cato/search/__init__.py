"""Search: objectives, the space, feature importance, samplers, Pareto fronts and hypervolume, and the trial evaluator."""
