"""The roofline evaluator: per operator, time = max(compute, memory, network) + kernel floors.

Inputs are an `OpArrays` (per-operator FLOPs, bytes, messages for S scenarios) and an `ExecContext` (per-
scenario peaks, bandwidth, efficiency, communication groups). Everything is numpy over the scenario axis, so one
call evaluates thousands of configurations.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from functools import cached_property

import numpy as np

from model.errors import RidgeplanError
from model.hardware.schema import Device
from model.operators.compiled import OpArrays
from model.operators.formulas import SHARED_QUANT_INPUT
from model.precision import Precision, compute_dtype_for, is_weight_only, natural_activation_dtype
from model.roofline.collectives import Tier, collective_time, stack_tiers, take_tier
from model.roofline.efficiency import Efficiency
from model.roofline.efficiency_forms import gemm_k_loop_s, gemm_quant_s, gemm_sustain, sustains
from model.roofline.efficiency_sets import efficiency_for
from model.roofline.kernel import compute_eta, kernel_time

BOUNDS = ("compute", "memory", "network", "latency")
ROLES = ("dense", "unquantized", "expert", "embedding", "attention", "vector")
GEMM_ROLES = ("dense", "unquantized", "expert", "embedding")


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
    eff: Efficiency  # scalars, or per-scenario arrays in every field (`stack_contexts`)
    comm: Mapping[str, CommGroup] = field(default_factory=dict)
    comm_overlap: np.ndarray | float = 0.0  # fraction of collective time hidden behind compute
    assumptions: tuple[str, ...] = ()
    # role -> rows of the dtype's smallest GEMM tile (absent: the 16-bit gemm_tile_m)
    gemm_tile: Mapping[str, np.ndarray | float] = field(default_factory=dict)
    # (seconds, bytes per activation element, seconds per row) of the activation quantization a dense FP8/FP4 GEMM
    # pays as its own kernel inside a step (Efficiency.step_quant: the engine does not fuse it); zeros where fused
    dense_quant: tuple = (0.0, 0.0, 0.0)
    # role -> the k loop's time per element relative to 16-bit GEMMs (Efficiency.gemm_k_scale; absent: 1)
    gemm_k_scale: Mapping[str, np.ndarray | float] = field(default_factory=dict)
    # the experts' grouped GEMMs stream their bytes at this share of the memory ceiling (Efficiency.moe_scales)
    expert_mem_scale: np.ndarray | float = 1.0
    # role -> 1 where the role's GEMMs slow to the sustained clock (Efficiency.gemm_sustain: 16-bit GEMMs), else 0
    # (absent: 1)
    gemm_sustain: Mapping[str, np.ndarray | float] = field(default_factory=dict)


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
        for role in GEMM_ROLES:
            rows = (kinds == "gemm") & (roles == role)
            if rows.any():
                eta[rows] = compute_eta("gemm", ops.m[rows], ops.n[rows], eff, gemm_max=ctx.gemm_max[role],
                                        weight_only=ctx.weight_only.get(role, False),
                                        tile=ctx.gemm_tile.get(role, eff.gemm_tile_m),
                                        gemv=role != "expert")  # grouped MoE kernels: no GEMV path
                peak[rows] = ctx.peak_flop_per_s[role]
        if np.any(np.asarray(eff.gemm_sustain_drop) > 0):  # long kernels at the sustained clock, per kernel
            per_kernel = flops / np.array([op.kernels for op in ops.ops], dtype=float)[:, None]
            for role in GEMM_ROLES:
                rows = (kinds == "gemm") & (roles == role)
                if rows.any():
                    eta[rows] = eta[rows] * gemm_sustain(per_kernel[rows], peak[rows], eff,
                                                         ctx.gemm_sustain.get(role, 1.0))
        for kind in ("attention", "linear_attention"):
            rows = kinds == kind
            if rows.any():  # m = query rows per KV head (decode tiles are mostly padding), n = KV length, k = head dim
                softmax = kind == "attention"
                mla = np.array([softmax and "mla" in op.tags for op in ops.ops])[rows][:, None]
                eta[rows] = compute_eta(kind, ops.m[rows], ops.n[rows] if softmax else None, eff,
                                        depth=ops.k[rows] if softmax else None, mla=mla)
                peak[rows] = ctx.peak_flop_per_s["attention"]
        rows = (kinds == "elementwise") | (kinds == "embedding")
        if rows.any():
            eta[rows] = compute_eta("elementwise", None, None, eff)
            peak[rows] = ctx.peak_flop_per_s["vector"]

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
    kernels = np.array([op.kernels for op in ops.ops], dtype=float)[:, None]
    # a GEMM waits at least for one output tile's serial loop over k (Efficiency.gemm_k_s)
    k_scale = np.ones((n_ops, 1))
    for role, scale in ctx.gemm_k_scale.items():
        k_scale = np.where(((kinds == "gemm") & (roles == role))[:, None], scale, k_scale)
    k_loop = np.where((kinds == "gemm")[:, None] & (ops.m > 0), gemm_k_loop_s(ops.k, eff, k_scale), 0.0)
    # the activation-quantization kernel a dense FP8/FP4 GEMM runs on its own where the engine does not fuse it
    # (ExecContext.dense_quant), a serial companion counted with the floor as in single-kernel predictions
    quant = np.zeros((n_ops, n))
    shared = np.array([SHARED_QUANT_INPUT in op.tags for op in ops.ops])
    dense = (kinds == "gemm") & (roles == "dense") & ~shared
    quant[dense] = gemm_quant_s(ops.m[dense], ops.k[dense], ctx.dense_quant, ctx.mem_bandwidth_bytes_per_s, eff)
    # attention kernels gather their KV cache at attention_mem_scale of the streaming ceiling
    # (MLA kernels at mla_mem_scale of that: one contiguous latent per token), dense GEMMs on the GEMV path below
    # gemv_m_limit rows, and the experts' grouped GEMMs at their own share (ExecContext.expert_mem_scale)
    mla = np.array(["mla" in op.tags for op in ops.ops])[:, None]
    gemm = kinds == "gemm"
    mem_scale = np.where((kinds == "attention")[:, None],
                         eff.attention_mem_scale * np.where(mla, eff.mla_mem_scale, 1.0),
                         np.where((gemm & (roles != "expert"))[:, None], eff.gemm_mem_scale(ops.m), 1.0))
    mem_scale = np.where((gemm & (roles == "expert"))[:, None], ctx.expert_mem_scale, mem_scale)
    kt = kernel_time(flops, nbytes, peak_flop_per_s=peak, eta_compute=eta,
                     bandwidth_bytes_per_s=ctx.mem_bandwidth_bytes_per_s, eff=eff, kernels=kernels,
                     extra_busy_s=np.maximum(network, k_loop), extra_floor_s=quant, eta_memory_scale=mem_scale,
                     floor_s=np.where((kinds == "collective")[:, None], eff.collective_floor(), eff.kernel_floor_s),
                     roofline_p=np.where((kinds == "attention")[:, None], eff.attention_p(mla), eff.roofline_p))
    overlap = np.broadcast_to(np.asarray(ctx.comm_overlap, dtype=float), (n,))
    return OpTimes(ops=ops, compute_s=kt.compute_s, memory_s=kt.memory_s, network_s=network, floor_s=kt.floor_s,
                   time_s=kt.time_s, comm_overlap=overlap)


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
    expert_activations: str = ""  # the experts' GEMM input format ("" = the dense layers' activations)


def resolve_precision(precision: Precision, device: Device) -> ResolvedPrecision:
    """Pick tensor-core paths for a precision on a device; unsupported explicit choices are errors."""
    supported = set(device.peak_flop_per_s)
    notes: list[str] = []
    if precision.activations is None:
        act, why = natural_activation_dtype(precision.weights, supported)
        notes.append(why)
        # experts stored in their own format run their own GEMM path (NVFP4 experts beside 16-bit dense layers:
        # W4A4 on the FP4 tensor cores, as TensorRT-LLM and SGLang run them), not the dense layers' activations
        expert_act, why_e = natural_activation_dtype(precision.expert_weights, supported)
        if precision.expert_weights != precision.weights:
            notes.append(f"experts: {why_e}")
    else:
        act = expert_act = precision.activations
    dense = compute_dtype_for(precision.weights, act)
    expert = compute_dtype_for(precision.expert_weights, expert_act)
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
    return ResolvedPrecision(precision, act, dense, expert, attention, tuple(notes), expert_act)


def embedding_dtype(device: Device) -> str:
    """The dtype the embeddings and LM head run at: the device's 16-bit path, else fp32."""
    if not device.peak_flop_per_s:
        return "fp32"
    for dtype in ("bf16", "fp16", "fp32"):
        if dtype in device.peak_flop_per_s:
            return dtype
    raise RidgeplanError("peak_flop_per_s", f"{device.name} lists no bf16, fp16 or fp32 peak; the embeddings and "
                         "the LM head run at one of them", sorted(device.peak_flop_per_s))


def context_for(device: Device, precision: Precision | ResolvedPrecision | None = None, *,
                efficiency: Efficiency | None = None, comm: Mapping[str, CommGroup] | None = None,
                comm_overlap: float = 0.0) -> ExecContext:
    """An ExecContext for one device (scalars, broadcast over scenarios)."""
    rp = precision if isinstance(precision, ResolvedPrecision) else resolve_precision(precision or Precision(), device)
    eff = efficiency or efficiency_for(device)
    p = rp.precision
    emb_dtype = embedding_dtype(device)
    expert_wo = is_weight_only(p.expert_weights, rp.expert_activations or rp.activations)
    # grouped MoE kernels: their own share of the dense ceiling and of the memory ceiling (Efficiency.moe_scales)
    moe_compute, moe_memory = eff.moe_scales(rp.expert_dtype, expert_wo)
    # "unquantized": the dense layers a quantized checkpoint leaves in 16 bits (Precision.unquantized) run on the
    # 16-bit path the embeddings use, with no activation quantization
    peaks = {
        "dense": device.peak(rp.dense_dtype),
        "unquantized": device.peak(emb_dtype),
        "expert": device.peak(rp.expert_dtype),
        "embedding": device.peak(emb_dtype),
        "attention": device.peak(rp.attention_dtype),
        "vector": device.vector_flop_per_s,
    }
    return ExecContext(
        mem_bandwidth_bytes_per_s=device.memory.bandwidth_bytes_per_s,
        peak_flop_per_s=peaks,
        gemm_max={"dense": eff.gemm_max(rp.dense_dtype), "unquantized": eff.gemm_max(emb_dtype),
                  "expert": np.minimum(eff.gemm_max(rp.expert_dtype) * moe_compute, 1.0),
                  "embedding": eff.gemm_max(emb_dtype)},
        # the FP8/FP4 tile heights are fitted to dense GEMM tables; experts run grouped MoE kernels that those tables
        # do not time, so they keep the 16-bit tile
        gemm_tile={"dense": eff.gemm_tile(rp.dense_dtype), "unquantized": eff.gemm_tile(emb_dtype),
                   "expert": eff.gemm_tile_m, "embedding": eff.gemm_tile(emb_dtype)},
        dense_quant=eff.step_quant(rp.dense_dtype),
        # like the tiles: the FP8/FP4 k loop is fitted to dense GEMM tables, experts keep the 16-bit loop
        gemm_k_scale={"dense": eff.gemm_k_scale(rp.dense_dtype), "unquantized": eff.gemm_k_scale(emb_dtype),
                      "expert": 1.0, "embedding": eff.gemm_k_scale(emb_dtype)},
        gemm_sustain={"dense": sustains(rp.dense_dtype), "unquantized": sustains(emb_dtype),
                      "expert": sustains(rp.expert_dtype), "embedding": sustains(emb_dtype)},
        weight_only={"dense": is_weight_only(p.weights, rp.activations), "unquantized": False,
                     "expert": expert_wo, "embedding": False},
        expert_mem_scale=moe_memory, eff=eff, comm=dict(comm or {}), comm_overlap=comm_overlap,
        assumptions=rp.assumptions,
    )


def stack_contexts(contexts: Sequence[ExecContext], index: np.ndarray | None = None) -> ExecContext:
    """One ExecContext whose fields are arrays: scenario s uses contexts[index[s]] (index defaults to range)."""
    if not contexts:
        raise RidgeplanError("contexts", "need at least one")

    def pick(values: list) -> np.ndarray:
        return np.asarray(values, dtype=float)

    eff_fields = [f for f in Efficiency.__dataclass_fields__ if f != "source"]
    sources = dict.fromkeys(c.eff.source for c in contexts)  # ordered, unique
    eff = Efficiency(**{f: pick([getattr(c.eff, f) for c in contexts]) for f in eff_fields}, source="; ".join(sources))
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
            intra=stack_tiers([g.intra for g in gs]),
            inter=inter, algorithm=gs[0].algorithm,
        )
    stacked = ExecContext(
        mem_bandwidth_bytes_per_s=pick([c.mem_bandwidth_bytes_per_s for c in contexts]),
        peak_flop_per_s={r: pick([c.peak_flop_per_s[r] for c in contexts]) for r in ROLES},
        gemm_max={r: pick([c.gemm_max[r] for c in contexts]) for r in GEMM_ROLES},
        weight_only={r: pick([c.weight_only[r] for c in contexts]).astype(bool) for r in GEMM_ROLES},
        gemm_tile={r: pick([c.gemm_tile.get(r, c.eff.gemm_tile_m) for c in contexts]) for r in GEMM_ROLES},
        dense_quant=tuple(pick([c.dense_quant[i] for c in contexts]) for i in range(3)),
        gemm_k_scale={r: pick([c.gemm_k_scale.get(r, 1.0) for c in contexts]) for r in GEMM_ROLES},
        gemm_sustain={r: pick([c.gemm_sustain.get(r, 1.0) for c in contexts]) for r in GEMM_ROLES},
        expert_mem_scale=pick([c.expert_mem_scale for c in contexts]), eff=eff, comm=groups,
        comm_overlap=pick([c.comm_overlap for c in contexts]),
    )
    return stacked if index is None else take_context(stacked, index)


def take_context(stacked: ExecContext, index: np.ndarray) -> ExecContext:
    """A stacked context (`stack_contexts(contexts)`, one entry per context) with scenario s on entry index[s]:
    stacking once and indexing many times is what the planner does for each scenario grid of its candidates."""
    idx = np.asarray(index, dtype=int)

    def tier(t: Tier) -> Tier:
        return take_tier(t, idx)

    eff = stacked.eff
    groups = {name: CommGroup(size=g.size[idx], ranks_per_node=g.ranks_per_node[idx], intra=tier(g.intra),
                              inter=None if g.inter is None else tier(g.inter), algorithm=g.algorithm)
              for name, g in stacked.comm.items()}
    return ExecContext(
        mem_bandwidth_bytes_per_s=stacked.mem_bandwidth_bytes_per_s[idx],
        peak_flop_per_s={r: v[idx] for r, v in stacked.peak_flop_per_s.items()},
        gemm_max={r: v[idx] for r, v in stacked.gemm_max.items()},
        weight_only={r: v[idx] for r, v in stacked.weight_only.items()},
        gemm_tile={r: v[idx] for r, v in stacked.gemm_tile.items()},
        gemm_k_scale={r: v[idx] for r, v in stacked.gemm_k_scale.items()},
        gemm_sustain={r: v[idx] for r, v in stacked.gemm_sustain.items()},
        dense_quant=tuple(v[idx] for v in stacked.dense_quant),
        expert_mem_scale=np.asarray(stacked.expert_mem_scale, dtype=float)[idx],
        eff=Efficiency(**{f: getattr(eff, f)[idx] for f in Efficiency.__dataclass_fields__ if f != "source"},
                       source=eff.source),
        comm=groups, comm_overlap=stacked.comm_overlap[idx],
    )
