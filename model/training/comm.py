"""Communication of one training step, per GPU, over the cluster's tiers.

- TP (Megatron): the operator graph's own collectives (two all-reduces of tokens·d·b_a per dense layer, the
  MoE ones, the EP all-to-alls), run in the forward, again in the backward (the conjugate f/g operators) and
  once more when the forward is recomputed. With sequence parallelism each all-reduce becomes a
  reduce-scatter plus an all-gather of the same volume, so the time is the same.
- CP/SP: Ulysses moves Q, K, V in and O out by all-to-all (≈ 4·S·d·b/N per device per layer, constant when
  S/N is fixed); ring attention passes K/V blocks of (S/N)·n_kv·(d_k + d_v)·b for N−1 steps, each hidden
  behind one block of attention compute when the block is large enough.
- PP: one activation forward and one gradient backward per micro-batch and model chunk between neighbouring
  stages, split over the TP ranks (Megatron's scatter/gather), point to point.
- DP: gradients all-reduced once per step (ZeRO-1/2: reduce-scatter + all-gather, the same volume); ZeRO-3
  gathers the weights twice per micro-batch (forward, backward) and reduce-scatters gradients once per step,
  ≈ 3·P·b per step at one micro-batch. Compression divides the gradient volume by
  1/(w + (1−w)/c); local updates divide it by H.
- Offload: ZeRO-Offload moves gradients down and weights up over PCIe (4·P bytes per step at 16 bits); states
  on NVMe are read and written once per step (2 x 12·P bytes).
"""

from __future__ import annotations

import numpy as np

from model.operators.compiled import OpArrays
from model.training.config import Candidates, TrainingSettings
from model.training.formulas import compression_volume_reduction
from model.placement.topology import Topology, group_collective_s, p2p_s

EXCLUDED_COLLECTIVES = ("logits_all_gather",)  # training uses a vocab-parallel cross-entropy: no logits gather


def tp_group(c: Candidates) -> list[tuple[np.ndarray, np.ndarray]]:
    return [(c.tp, np.ones_like(c.tp))]


def ep_group(c: Candidates) -> list[tuple[np.ndarray, np.ndarray]]:
    """The EP group: the tp ranks of ep/tp consecutive data-parallel replicas (serving Layout convention)."""
    return [(c.tp, np.ones_like(c.tp)), (np.maximum(c.ep / c.tp, 1), c.tp * c.sp)]


def cp_group(c: Candidates) -> list[tuple[np.ndarray, np.ndarray]]:
    return [(c.sp, c.tp)]


def dp_group(c: Candidates) -> list[tuple[np.ndarray, np.ndarray]]:
    """Ranks holding the same dense weights: the sp context ranks times the dp replicas."""
    return [(c.sp, c.tp), (c.dp, c.tp * c.sp)]


def expert_dp_group(c: Candidates) -> list[tuple[np.ndarray, np.ndarray]]:
    """Ranks holding the same expert weights: with EP, the dp replicas outside one EP group (x sp)."""
    per_group = np.maximum(c.ep / c.tp, 1)
    return [(c.sp, c.tp), (c.dp / per_group, c.tp * c.sp * per_group)]


def layer_collective_s(ops: OpArrays, c: Candidates, topology: Topology) -> np.ndarray:
    """(n_ops, S) seconds of each graph collective instance in one forward pass of one micro-batch."""
    out = np.zeros_like(ops.comm_bytes)
    groups = {"tp": tp_group(c), "ep": ep_group(c), "moe_local": ep_group(c)}
    for i, op in enumerate(ops.ops):
        if op.kind != "collective" or op.name in EXCLUDED_COLLECTIVES or op.comm_group not in groups:
            continue
        out[i] = group_collective_s(op.collective or "all_reduce", ops.comm_bytes[i], topology, groups[op.comm_group])
    return out


def ulysses_s(c: Candidates, topology: Topology, qkv_per_token, out_per_token, bytes_per_element=2.0) -> np.ndarray:
    """One pass of Ulysses' all-to-alls for one layer: Q, K, V of the local tokens before attention (sequence to
    head sharding) and the output after it (back), as in `model.techniques.context_parallel`."""
    tokens = c.tokens_per_micro_batch / c.tp * bytes_per_element
    group = cp_group(c)
    t = (group_collective_s("all_to_all", tokens * np.asarray(qkv_per_token, float), topology, group)
         + group_collective_s("all_to_all", tokens * np.asarray(out_per_token, float), topology, group))
    return np.where(c.sp > 1, t, 0.0)


def ring_exposed_s(c: Candidates, topology: Topology, kv_elements_per_token_per_rank, attention_s,
                   bytes_per_element=2.0, passes=1.0) -> np.ndarray:
    """Exposed seconds of ring attention for one layer: N−1 block hand-offs, each hidden behind one block
    (as in `model.techniques.context_parallel`): (N−1)·max(0, t_hop − t_block).

    `attention_s`: this rank's attention time for the pass (all N blocks); `passes`: 1 forward, 2 backward
    (K/V and their gradients travel).
    """
    tokens = c.tokens_per_micro_batch
    block = tokens * np.asarray(kv_elements_per_token_per_rank, float) * bytes_per_element * passes
    hop = p2p_s(block, topology, c.tp)
    per_step = np.asarray(attention_s, float) / np.maximum(c.sp, 1)
    return np.where(c.sp > 1, (c.sp - 1) * np.maximum(hop - per_step, 0.0), 0.0)


def pp_p2p_s(c: Candidates, topology: Topology, hidden: int, bytes_per_element=2.0) -> np.ndarray:
    """One activation (or gradient) hand-off between neighbouring stages, split over the TP ranks."""
    message = c.tokens_per_micro_batch * hidden * bytes_per_element / c.tp
    return np.where(c.pp > 1, p2p_s(message, topology, c.tp * c.sp * c.dp), 0.0)


def gradient_reduction(settings: TrainingSettings) -> float:
    """Factor by which compression and local updates shrink the per-step gradient volume."""
    return float(compression_volume_reduction(settings.compression_ratio, settings.compression_warmup)
                 * settings.sync_every)


def dp_sync_s(c: Candidates, topology: Topology, params_dense, params_expert, settings: TrainingSettings):
    """(gradient sync per step, ZeRO-3 weight gathers per micro-batch) in seconds for one GPU's parameters."""
    reduce = gradient_reduction(settings)
    zero3 = c.zero >= 3
    grad_kind_s = {}
    for name, params, group in (("dense", params_dense, dp_group(c)), ("expert", params_expert, expert_dp_group(c))):
        grads = np.asarray(params, float) * settings.grad_bytes / reduce
        ar = group_collective_s("all_reduce", grads, topology, group)
        rs = group_collective_s("reduce_scatter", grads, topology, group)
        ag = group_collective_s("all_gather", np.asarray(params, float) * 2.0, topology, group)
        grad_kind_s[name] = (np.where(zero3, rs, ar), np.where(zero3, 2.0 * ag, 0.0))
    sync = grad_kind_s["dense"][0] + grad_kind_s["expert"][0]
    gather = grad_kind_s["dense"][1] + grad_kind_s["expert"][1]
    return sync, gather


def offload_traffic_bytes(params_local, c: Candidates, spec_state_bytes, grad_bytes: float):
    """(host-link bytes, NVMe bytes) per GPU per step for the offload settings of each candidate.

    Optimizer offload: gradients down and updated 16-bit weights up, P·(b_g + 2). States on NVMe: read and
    written once, 2·P·(optimizer bytes). Weights offloaded (ZeRO-Infinity): fetched for the forward and the
    backward of every micro-batch, 2·m·P·2 over the host link (and from NVMe when they live there).
    """
    p = np.asarray(params_local, float)
    off_opt = c.offload_optimizer
    off_par = c.offload_params
    host = np.where(off_opt > 0, p * (grad_bytes + 2.0), 0.0)
    host = host + np.where(off_par > 0, 2.0 * c.micro_batches * p * 2.0, 0.0)
    nvme = np.where(off_opt == 2, 2.0 * p * np.asarray(spec_state_bytes, float), 0.0)
    nvme = nvme + np.where(off_par == 2, 2.0 * c.micro_batches * p * 2.0, 0.0)
    return host, nvme
