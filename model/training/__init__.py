"""Training capacity model and planner: memory, step time, MFU and time-to-train of LLM pre-training layouts.

`estimate_training(...)` evaluates one layout, `plan_training(...)` searches a cluster's layouts; both return
dataclasses with `to_dict()`. The pieces: `config` (optimizers, layouts), `formulas` (closed-form identities),
`memory`, `topology` and `comm` (multi-tier collectives), `step` (the vectorized evaluation).
"""

from model.training.api import TrainingEstimate, estimate_training
from model.training.config import OPTIMIZERS, OptimizerSpec, TrainingLayout, TrainingSettings, optimizer_spec
from model.training.formulas import megatron_flops_per_iteration, six_nd_flops, time_to_train_s
from model.training.planner import TrainingPlan, plan_training
from model.placement.topology import Level, Topology, topology_for
from model.training.cluster import Cluster, cluster_for

__all__ = [
    "OPTIMIZERS", "Cluster", "Level", "OptimizerSpec", "Topology", "TrainingEstimate", "TrainingLayout",
    "TrainingPlan", "TrainingSettings", "cluster_for", "estimate_training", "megatron_flops_per_iteration",
    "optimizer_spec", "plan_training", "six_nd_flops", "time_to_train_s", "topology_for",
]
