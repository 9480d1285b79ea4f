"""The roofline evaluator: per operator, time = max(compute, memory, network) + kernel floors.

Inputs are an `OpArrays` (per-operator FLOPs, bytes, messages for S scenarios) and an `ExecContext` (per-
scenario peaks, bandwidth, efficiency, communication groups). Everything is numpy over the scenario axis, so one
call evaluates thousands of configurations.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from types import SimpleNamespace

import numpy as np

from model.errors import RidgeplanError
from model.hardware.schema import Device
from model.operators.compiled import OpArrays
from model.precision import Precision, compute_dtype_for, is_weight_only, natural_activation_dtype
from model.roofline.collectives import Tier, collective_time
from model.roofline.efficiency import (
    Efficiency, attention_eta, combine_roofline, efficiency_for, gemm_eta, memory_eta,
)

BOUNDS = ("compute", "memory", "network", "latency")
ROLES = ("dense", "expert", "embedding", "attention", "vector")


@dataclass(frozen=True)
class CommGroup:
    """A communication group of `size` ranks, `ranks_per_node` of them inside one scale-up domain."""

    size: np.ndarray | float = 1.0
    ranks_per_node: np.ndarray | float | None = None
    intra: Tier = field(default_factory=lambda: Tier(1.0, 0.0))
    inter: Tier | None = None
    algorithm: str = "auto"


@dataclass(frozen=True)
class ExecContext:
    """Per-scenario execution inputs (scalars or arrays of length S)."""

    mem_bandwidth_bytes_per_s: np.ndarray | float
    peak_flop_per_s: Mapping[str, np.ndarray | float]  # role -> FLOP/s
    gemm_max: Mapping[str, np.ndarray | float]  # role -> large-GEMM efficiency for that role's dtype
    weight_only: Mapping[str, np.ndarray | bool]  # role -> weights dequantized inside the GEMM
    eff: object  # an Efficiency or a namespace of per-scenario arrays with the same attribute names
    comm: Mapping[str, CommGroup] = field(default_factory=dict)
    comm_overlap: np.ndarray | float = 0.0  # fraction of collective time hidden behind compute
    assumptions: tuple[str, ...] = ()


@dataclass(frozen=True)
class OpTimes:
    """Roofline terms per operator instance, shape (n_ops, S); `counts` gives instances per step."""

    ops: OpArrays
    compute_s: np.ndarray
    memory_s: np.ndarray
    network_s: np.ndarray
    floor_s: np.ndarray
    time_s: np.ndarray
    comm_overlap: np.ndarray

    @cached_property
    def bound(self) -> np.ndarray:
        """Index into BOUNDS of what binds each operator: the largest term, or the floor when it dominates."""
        terms = np.stack([self.compute_s, self.memory_s, self.network_s])
        return np.where(self.floor_s > terms.max(axis=0), 3, terms.argmax(axis=0))

    @property
    def counts(self) -> np.ndarray:
        return self.ops.counts

    def step_time_s(self) -> np.ndarray:
        """Seconds for the whole step: Σ count x time, with the overlapped part of collectives hidden."""
        exposed = self.time_s - self.comm_overlap * self.network_s
        return self.counts @ exposed

    def totals_by_bound(self) -> dict[str, np.ndarray]:
        """Step seconds attributed to each bound (the binding term of each operator)."""
        weighted = self.counts[:, None] * (self.time_s - self.comm_overlap * self.network_s)
        return {b: np.where(self.bound == i, weighted, 0.0).sum(axis=0) for i, b in enumerate(BOUNDS)}

    def intensity(self) -> np.ndarray:
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.where(self.ops.bytes > 0, self.ops.flops / self.ops.bytes, np.inf)


def roofline_terms(flops, nbytes, peak_flop_per_s, eta_compute, bandwidth_bytes_per_s, eff):
    """(compute_s, memory_s) of kernels: FLOPs at eta_compute of peak, bytes at the size-dependent eta_m."""
    with np.errstate(divide="ignore", invalid="ignore"):
        compute = np.where(flops > 0, flops / (peak_flop_per_s * eta_compute), 0.0)
        memory = np.where(nbytes > 0, nbytes / (bandwidth_bytes_per_s * memory_eta(nbytes, eff)), 0.0)
    return compute, memory


def evaluate(ops: OpArrays, ctx: ExecContext) -> OpTimes:
    """Roofline time of every operator instance in every scenario."""
    n_ops, n = ops.flops.shape
    eff = ctx.eff
    flops, nbytes = ops.flops, ops.bytes
    kinds = np.array([op.kind for op in ops.ops])
    roles = np.array([op.weight_role for op in ops.ops])

    peak = np.zeros((n_ops, n))
    eta = np.ones((n_ops, n))
    with np.errstate(divide="ignore", invalid="ignore"):
        for role in ("dense", "expert", "embedding"):
            rows = (kinds == "gemm") & (roles == role)
            if rows.any():
                e = gemm_eta(ops.m[rows], ops.n[rows], ctx.gemm_max[role], eff)
                e = np.where(ctx.weight_only.get(role, False), e * (1 - eff.dequant_penalty), e)
                eta[rows] = e
                peak[rows] = ctx.peak_flop_per_s[role]
        for kind, top in (("attention", eff.attention_max), ("linear_attention", eff.linear_attention_max)):
            rows = kinds == kind
            if rows.any():  # m = query rows per KV head: decode tiles are mostly padding
                eta[rows] = attention_eta(ops.m[rows], top, eff)
                peak[rows] = ctx.peak_flop_per_s["attention"]
        rows = (kinds == "elementwise") | (kinds == "embedding")
        if rows.any():
            eta[rows] = eff.vector_max
            peak[rows] = ctx.peak_flop_per_s["vector"]
    compute, memory = roofline_terms(flops, nbytes, peak, eta, ctx.mem_bandwidth_bytes_per_s, eff)

    network = np.zeros((n_ops, n))
    for i, op in enumerate(ops.ops):
        if op.kind != "collective":
            continue
        group = ctx.comm.get(op.comm_group or "")
        if group is None:
            continue
        t = collective_time(op.collective or "all_reduce", ops.comm_bytes[i], group.size,
                            intra=group.intra, inter=group.inter, ranks_per_node=group.ranks_per_node,
                            algorithm=group.algorithm)
        network[i] = np.where(t > 0, t + eff.collective_base_s, 0.0)
    active = (flops > 0) | (nbytes > 0) | (network > 0)
    kernels = np.array([op.kernels for op in ops.ops], dtype=float)[:, None]
    floor = np.where(active, kernels * eff.kernel_floor_s, 0.0)
    worst = np.maximum(combine_roofline(compute, memory, eff.roofline_p), network)
    overlap = np.broadcast_to(np.asarray(ctx.comm_overlap, dtype=float), (n,))
    return OpTimes(ops=ops, compute_s=compute, memory_s=memory, network_s=network, floor_s=floor,
                   time_s=worst + floor, comm_overlap=overlap)


# ---------------------------------------------------------------------------------------------------------
# building contexts

@dataclass(frozen=True)
class ResolvedPrecision:
    """A Precision resolved against a device: the dtype each compute role runs at."""

    precision: Precision
    activations: str
    dense_dtype: str
    expert_dtype: str
    attention_dtype: str
    assumptions: tuple[str, ...]


def resolve_precision(precision: Precision, device: Device) -> ResolvedPrecision:
    """Pick tensor-core paths for a precision on a device; unsupported explicit choices are errors."""
    supported = set(device.peak_flop_per_s)
    notes: list[str] = []
    if precision.activations is None:
        act, why = natural_activation_dtype(precision.weights, supported)
        notes.append(why)
    else:
        act = precision.activations
    dense = compute_dtype_for(precision.weights, act)
    expert = compute_dtype_for(precision.expert_weights, act)
    for field_name, dtype in (("activations", dense), ("experts", expert)):
        if dtype not in supported:
            raise RidgeplanError(field_name, f"{device.name} has no {dtype} tensor cores",
                                 sorted(supported) or ["none"])
    sixteen = "bf16" if "bf16" in supported else ("fp16" if "fp16" in supported else "fp32")
    if precision.weights in ("bf16", "fp16") and precision.weights not in supported and sixteen != "fp32":
        raise RidgeplanError("weights", f"{device.name} has no {precision.weights} support",
                             sorted(d for d in supported if d in ("bf16", "fp16", "fp8", "int8")))
    attention = "fp8" if (precision.kv == "fp8" and act == "fp8" and "fp8" in supported) else sixteen
    notes.append(f"attention runs on the {attention} path with a {precision.kv} KV cache")
    return ResolvedPrecision(precision, act, dense, expert, attention, tuple(notes))


def context_for(device: Device, precision: Precision | ResolvedPrecision | None = None, *,
                efficiency: Efficiency | None = None, comm: Mapping[str, CommGroup] | None = None,
                comm_overlap: float = 0.0) -> ExecContext:
    """An ExecContext for one device (scalars, broadcast over scenarios)."""
    rp = precision if isinstance(precision, ResolvedPrecision) else resolve_precision(precision or Precision(), device)
    eff = efficiency or efficiency_for(device)
    p = rp.precision
    emb_dtype = next(d for d in ("bf16", "fp16", "fp32") if d in device.peak_flop_per_s) if device.peak_flop_per_s else "fp32"
    peaks = {
        "dense": device.peak(rp.dense_dtype),
        "expert": device.peak(rp.expert_dtype),
        "embedding": device.peak(emb_dtype),
        "attention": device.peak(rp.attention_dtype),
        "vector": device.vector_flop_per_s,
    }
    return ExecContext(
        mem_bandwidth_bytes_per_s=device.memory.bandwidth_bytes_per_s,
        peak_flop_per_s=peaks,
        gemm_max={"dense": eff.gemm_max(rp.dense_dtype), "expert": eff.gemm_max(rp.expert_dtype),
                  "embedding": eff.gemm_max(emb_dtype)},
        weight_only={"dense": is_weight_only(p.weights, rp.activations),
                     "expert": is_weight_only(p.expert_weights, rp.activations), "embedding": False},
        eff=eff, comm=dict(comm or {}), comm_overlap=comm_overlap, assumptions=rp.assumptions,
    )


def stack_contexts(contexts: Sequence[ExecContext], index: np.ndarray | None = None) -> ExecContext:
    """One ExecContext whose fields are arrays: scenario s uses contexts[index[s]] (index defaults to range)."""
    if not contexts:
        raise RidgeplanError("contexts", "need at least one")
    idx = np.arange(len(contexts)) if index is None else np.asarray(index, dtype=int)

    def pick(values: list) -> np.ndarray:
        return np.asarray(values, dtype=float)[idx]

    eff_fields = [f for f in vars(contexts[0].eff) if f != "source"] if not isinstance(contexts[0].eff, Efficiency) \
        else [f for f in Efficiency.__dataclass_fields__ if f != "source"]
    eff = SimpleNamespace(**{f: pick([getattr(c.eff, f) for c in contexts]) for f in eff_fields})
    groups = {}
    for name in {g for c in contexts for g in c.comm}:
        gs = [c.comm.get(name, CommGroup()) for c in contexts]
        inter = None
        if any(g.inter is not None for g in gs):
            inter = Tier(pick([(g.inter or g.intra).bandwidth_bytes_per_s for g in gs]),
                         pick([(g.inter or g.intra).latency_s for g in gs]))
        groups[name] = CommGroup(
            size=pick([g.size for g in gs]),
            ranks_per_node=pick([g.size if g.ranks_per_node is None else g.ranks_per_node for g in gs]),
            intra=Tier(pick([g.intra.bandwidth_bytes_per_s for g in gs]), pick([g.intra.latency_s for g in gs])),
            inter=inter,
        )
    return ExecContext(
        mem_bandwidth_bytes_per_s=pick([c.mem_bandwidth_bytes_per_s for c in contexts]),
        peak_flop_per_s={r: pick([c.peak_flop_per_s[r] for c in contexts]) for r in ROLES},
        gemm_max={r: pick([c.gemm_max[r] for c in contexts]) for r in ("dense", "expert", "embedding")},
        weight_only={r: pick([c.weight_only[r] for c in contexts]).astype(bool) for r in ("dense", "expert", "embedding")},
        eff=eff, comm=groups, comm_overlap=pick([c.comm_overlap for c in contexts]),
    )
