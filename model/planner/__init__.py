"""The planner: the cheapest fleet (GPU mix, layout, precision, prefill/decode split) for traffic within an SLO."""

from model.planner.experts import Placement, place_experts, round_robin
from model.planner.plan import Plan, Pool, pareto_frontier, plan
from model.planner.request import GpuOption, PlanRequest, Traffic

__all__ = ["GpuOption", "Placement", "Plan", "PlanRequest", "Pool", "Traffic", "pareto_frontier", "place_experts",
           "plan", "round_robin"]
