"""The public entry points for the faces (CLI, app, notebooks, scenarios, validation, bench): re-exports only.

Library modules import from where things are defined, never from here.
"""

from model.serving.deployment import (DEFAULT_GPU, DEFAULT_MODEL, Deployment, checkpoint_expert_format,
                                      checkpoint_weight_format, deployment)

from model.serving.simulator import (Load, SimResult, build_cost_table, simulate, simulate_disagg,
                                     simulate_pool)

__all__ = ["Load", "SimResult", "build_cost_table", "simulate", "simulate_disagg", "simulate_pool", "DEFAULT_GPU", "DEFAULT_MODEL", "Deployment", "checkpoint_expert_format", "checkpoint_weight_format",
           "deployment"]
