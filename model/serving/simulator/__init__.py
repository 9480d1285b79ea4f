"""The engine simulator: discrete events, one scheduler iteration at a time, over the tabulated analytical
iteration cost (costtable), with per-engine schedulers (engine), load generators (loadgen) and the clients'
metrics (metrics). Public calls: simulate, simulate_pool, simulate_disagg (run, disagg)."""

from model.serving.simulator.costtable import CostTable, build_cost_table
from model.serving.simulator.loadgen import Load, read_trace
from model.serving.simulator.metrics import SimResult
from model.serving.simulator.run import (
                                         kv_pool_tokens,
                                         load_for,
                                         protocol_sensitivity,
                                         simulate,
                                         simulate_disagg,
                                         simulate_pool,
)

__all__ = ["CostTable", "Load", "SimResult", "build_cost_table", "kv_pool_tokens", "load_for", "protocol_sensitivity", "read_trace",
           "simulate", "simulate_disagg", "simulate_pool"]
