"""KV swaps on preemption and live migration.

- A swap moves a request's KV between GPU and host in copies of g contiguous bytes; each copy pays a setup
  latency t_setup, so the effective bandwidth is BW_eff(g) = BW g / (g + BW t_setup) and the swap takes
  t_sw = KV_req / BW_eff(g). Paged KV caches copy one block of one layer's K or V at a time (g = block_tokens
  x n_kv x d_h x b_kv), so small blocks collapse the bandwidth; contiguous chunks approach BW.
- Serialised with compute, a swap stalls the iteration that carries it; overlapped (a separate stream), only
  the part longer than the iteration is exposed. When more than (1 - p) of iterations carry a swap, the
  p-th percentile TBT includes it. Multi-turn reuse moves only the KV added since the last swap.
- Live migration copies KV_req over the network, t_mig = KV_req / beta; pipelined in rounds while the request
  keeps decoding, the downtime is only the last round's increment.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from model.errors import require_positive
from model.operators.memory import kv_bytes_per_token
from model.serving.deployment import Deployment


def effective_bandwidth(granularity_bytes, bandwidth_bytes_per_s: float, setup_s: float) -> np.ndarray:
    """BW_eff(g) = BW g / (g + BW t_setup) for copies of g bytes each."""
    g = np.asarray(granularity_bytes, dtype=float)
    return bandwidth_bytes_per_s * g / (g + bandwidth_bytes_per_s * setup_s)


def swap_s(kv_bytes, granularity_bytes, bandwidth_bytes_per_s: float, setup_s: float) -> np.ndarray:
    """Seconds to move `kv_bytes` in copies of `granularity_bytes`."""
    return np.asarray(kv_bytes, dtype=float) / effective_bandwidth(granularity_bytes, bandwidth_bytes_per_s, setup_s)


def kv_block_bytes(d: Deployment, block_tokens: int) -> float:
    """Bytes of one paged-KV copy unit: `block_tokens` tokens of one layer's K (or V) on one GPU."""
    require_positive("block_tokens", block_tokens, integer=True)
    per_token = kv_bytes_per_token(d.arch, b_kv=d.symbols()["b_kv"], tp=d.layout.tp)
    return block_tokens * per_token / (2 * d.arch.num_layers)


@dataclass(frozen=True)
class PreemptionTail:
    tbt_s: float  # p-th percentile time between tokens of running requests
    resume_s: float  # extra delay of the preempted request itself (swap-in)
    exposed_swap_s: float  # swap time not hidden behind compute, per iteration that carries one


def preemption_tail(iteration_s: float, swap_time_s: float, swap_share: float, overlapped: bool,
                    percentile: float = 0.99) -> PreemptionTail:
    """Tail TBT when `swap_share` of iterations carry one swap of `swap_time_s`; the preempted request waits
    for its own swap-in whether or not other requests' compute hides it."""
    exposed = max(0.0, swap_time_s - iteration_s) if overlapped else swap_time_s
    tbt = iteration_s + (exposed if swap_share > 1 - percentile else 0.0)
    return PreemptionTail(tbt, swap_time_s, exposed)


def migration_s(kv_bytes: float, bandwidth_bytes_per_s: float, latency_s: float = 0.0) -> float:
    """Stop-and-copy live migration of a request's KV."""
    return latency_s + kv_bytes / bandwidth_bytes_per_s


def pipelined_migration_downtime_s(kv_bytes: float, growth_bytes_per_s: float, bandwidth_bytes_per_s: float,
                                   rounds: int = 3) -> float:
    """Downtime of a migration copied in `rounds` rounds while decoding continues: each round copies what the
    previous one left (the KV added meanwhile at `growth_bytes_per_s`); the request stops only for the last."""
    require_positive("rounds", rounds, integer=True)
    left = float(kv_bytes)
    for _ in range(rounds):
        copy = left / bandwidth_bytes_per_s
        left = growth_bytes_per_s * copy
    return left / bandwidth_bytes_per_s
