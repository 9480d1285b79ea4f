"""A deployment: model x device x precision x layout, and its forward-step cost and memory per GPU.

This is where operator costs become step times for a real placement: tensor/expert collectives over the
device's links, pipeline stages, the engine's per-step overhead, and memory against capacity.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np

from model.architecture.catalogue import load_architecture
from model.architecture.config import Architecture
from model.errors import RidgeplanError
from model.hardware.db import get_node, load_device
from model.hardware.schema import Device, NodeType
from model.operators.compiled import CompiledGraph, OpArrays, compile_graph
from model.operators.memory import MemoryArrays, memory_per_rank
from model.precision import Precision, number_format
from model.roofline.collectives import collective_time
from model.roofline.efficiency import Efficiency, efficiency_for
from model.roofline.evaluator import CommGroup, ExecContext, OpTimes, context_for, evaluate, resolve_precision
from model.placement.layout import Layout, stage_counts
from model.placement.topology import LinkTiers, link_tiers

CONVENTIONS = ("causal", "square")


@dataclass(frozen=True)
class StepResult:
    """Cost of one forward step (per scenario) on one replica of a deployment."""

    deployment: Deployment
    ops: OpArrays
    times: OpTimes
    stage_counts: np.ndarray  # (pp, n_ops)
    stage_time_s: np.ndarray  # (pp, S): GPU time of each stage
    p2p_time_s: np.ndarray  # (S,) one activation hand-off between stages
    overhead_s: float  # engine per-step overhead
    memory: MemoryArrays  # per GPU, worst stage

    @property
    def time_s(self) -> np.ndarray:
        """Wall time of the step: every stage in turn (one micro-batch), hand-offs, engine overhead."""
        pp = self.stage_time_s.shape[0]
        return self.stage_time_s.sum(axis=0) + (pp - 1) * self.p2p_time_s + self.overhead_s

    @property
    def bottleneck_stage_s(self) -> np.ndarray:
        """The slowest stage: with the pipeline full, one step completes every this many seconds."""
        return self.stage_time_s.max(axis=0) + self.p2p_time_s * (self.stage_time_s.shape[0] > 1) + self.overhead_s

    def op_step_s(self) -> np.ndarray:
        """(n_ops, S) seconds each operator contributes to the step across all stages."""
        exposed = self.times.time_s - self.times.comm_overlap * self.times.network_s
        return self.stage_counts.sum(axis=0)[:, None] * exposed


@dataclass(frozen=True)
class Deployment:
    arch: Architecture
    device: Device
    precision: Precision = field(default_factory=Precision)
    layout: Layout = field(default_factory=Layout)
    node: NodeType | None = None
    efficiency: Efficiency | None = None
    attention_convention: str = "causal"
    comm_overlap: float = 0.0
    moe_imbalance: float = 1.0
    memory_utilization: float = 0.90  # fraction of device memory the engine may use (vLLM's default 0.9)
    # KV compression composing multiplicatively with the KV precision (CATALOG section 3):
    kv_rank_fraction: float = 1.0  # kept share of the K/V feature dimension (low-rank projection)
    kv_keep_ratio: float = 1.0  # kept share of tokens (eviction / merging)
    kv_residual_tokens: int = 0  # most recent tokens kept in 16 bits (KIVI-style window)

    def __post_init__(self) -> None:
        self.layout.check(self.arch)
        if self.attention_convention not in CONVENTIONS:
            raise RidgeplanError("attention_convention", f"unknown convention {self.attention_convention!r}", CONVENTIONS)
        if not 0 <= self.comm_overlap <= 1:
            raise RidgeplanError("comm_overlap", f"must be between 0 and 1, got {self.comm_overlap}")
        if self.moe_imbalance < 1:
            raise RidgeplanError("moe_imbalance", f"is max/mean load and must be >= 1, got {self.moe_imbalance}")
        for name in ("kv_rank_fraction", "kv_keep_ratio"):
            if not 0 < getattr(self, name) <= 1:
                raise RidgeplanError(name, f"must be in (0, 1], got {getattr(self, name)}")
        if self.kv_residual_tokens < 0:
            raise RidgeplanError("kv_residual_tokens", f"must be >= 0, got {self.kv_residual_tokens}")
        if not 0 < self.memory_utilization <= 1:
            raise RidgeplanError("memory_utilization", f"must be in (0, 1], got {self.memory_utilization}")
        if self.layout.gpus_per_replica > 1 or self.layout.ep > 1:
            tiers = self.tiers
            if self.layout.tp * self.layout.pp > tiers.domain and tiers.inter is None:
                raise RidgeplanError("layout", f"{self.layout.label()} spans nodes but {self.device.name} has no "
                                     "scale-out link in its hardware file")
        for role, dtype in (("dense", self.resolved.dense_dtype), ("expert", self.resolved.expert_dtype)):
            if not self.device.can_run("gemm") and not self.device.can_run("gemv"):
                raise RidgeplanError("gpu", f"{self.device.name} cannot run {role} GEMMs ({dtype})")

    # -- derived pieces -----------------------------------------------------------------------------
    @cached_property
    def resolved(self):
        return resolve_precision(self.precision, self.device)

    @cached_property
    def eff(self) -> Efficiency:
        return self.efficiency or efficiency_for(self.device)

    @cached_property
    def tiers(self) -> LinkTiers:
        return link_tiers(self.device, self.node, getattr(self.eff, "scale_up_bus_efficiency", 0.0))

    @cached_property
    def graph(self) -> CompiledGraph:
        return compile_graph(self.arch)

    @cached_property
    def context(self) -> ExecContext:
        lay, t = self.layout, self.tiers
        comm = {
            "tp": CommGroup(size=lay.tp, ranks_per_node=min(lay.tp, t.domain), intra=t.intra, inter=t.inter),
            "ep": CommGroup(size=lay.ep, ranks_per_node=min(lay.ep, t.domain), intra=t.intra, inter=t.inter),
        }
        return context_for(self.device, self.resolved, efficiency=self.eff, comm=comm, comm_overlap=self.comm_overlap)

    def symbols(self) -> dict[str, float]:
        """Scenario-symbol values fixed by the deployment (bytes per element, parallel degrees)."""
        p, lay = self.precision, self.layout
        act_bytes = 4.0 if str(self.arch.torch_dtype).endswith("32") else 2.0
        return {
            "tp": lay.tp, "ep": lay.ep, "etp": lay.expert_tp, "dp_attn": lay.attention_dp,
            "gamma_moe": self.moe_imbalance, "causal": 1.0 if self.attention_convention == "causal" else 0.0,
            "b_w": number_format(p.weights).bytes_per_element,
            "b_e": number_format(p.expert_weights).bytes_per_element,
            "b_emb": number_format(p.embeddings).bytes_per_element,
            "b_a": act_bytes, "b_state": 4.0,
            "b_kv": number_format(p.kv).bytes_per_element * self.kv_rank_fraction * self.kv_keep_ratio,
        }

    @property
    def capacity_bytes(self) -> float:
        """Device memory as the runtime reports it (falls back to the marketed capacity)."""
        return self.device.memory.total_bytes

    @property
    def usable_bytes(self) -> float:
        return self.capacity_bytes * self.memory_utilization

    def assumptions(self) -> list[str]:
        notes = [
            f"{self.device.name}: efficiency {self.eff.source}",
            f"precision {self.precision.label()}: " + "; ".join(self.resolved.assumptions),
            f"attention FLOPs use the {self.attention_convention} convention",
            f"engine overhead {self.eff.step_overhead_s * 1e3:.2f} ms per step; kernel floor "
            f"{self.eff.kernel_floor_s * 1e6:.1f} us per kernel (CUDA graphs, fused kernels, paged KV assumed)",
            f"usable memory = {self.memory_utilization:.0%} of {self.capacity_bytes / 1e9:.1f} GB",
            *self.arch.assumptions,
        ]
        if self.layout.gpus_per_replica > 1:
            notes.append(f"collectives over {self.tiers.intra_name} inside a node of {self.tiers.domain}"
                         + (f", {self.tiers.inter_name} across nodes" if self.tiers.inter else ""))
            notes.append(f"compute/communication overlap {self.comm_overlap:.0%}")
        if self.kv_rank_fraction < 1 or self.kv_keep_ratio < 1 or self.kv_residual_tokens:
            notes.append(f"KV compression: rank {self.kv_rank_fraction:.0%} x tokens kept {self.kv_keep_ratio:.0%} x "
                         f"{self.precision.kv} bits, last {self.kv_residual_tokens} tokens in 16 bits; the up-projection "
                         "FLOPs of low-rank K/V are assumed absorbed into the query/output projections")
        if self.arch.is_moe:
            notes.append(f"MoE routing uniform; busiest rank carries {self.moe_imbalance:.2f}x the mean expert load")
        return notes

    # -- evaluation ---------------------------------------------------------------------------------
    @cached_property
    def counts(self) -> np.ndarray:
        """(pp, n_ops) operator instances per pipeline stage."""
        return stage_counts(self.arch, self.graph.ops, self.layout.pp)

    @cached_property
    def per_sequence_ops(self) -> np.ndarray:
        """Operators whose cost depends on each sequence's own context (attention, recurrent state)."""
        return np.array(["per_sequence" in op.tags for op in self.graph.ops])

    def op_seconds(self, batch, new_tokens, context, n_logit=1.0) -> tuple[OpArrays, OpTimes, np.ndarray]:
        """Operator arrays, roofline times and exposed seconds per instance (n_ops, S) of a uniform step."""
        ops = self.graph.evaluate({**self.symbols(), "B": batch, "T": new_tokens, "C": context, "n_logit": n_logit})
        times = evaluate(ops, self.context)
        return ops, times, times.time_s - times.comm_overlap * times.network_s

    def p2p_seconds(self, tokens) -> np.ndarray:
        """One pipeline hand-off of `tokens` hidden states between stages (zero without PP)."""
        tokens = np.asarray(tokens, dtype=float)
        if self.layout.pp == 1:
            return np.zeros_like(tokens)
        msg = tokens * self.arch.hidden_size * self.symbols()["b_a"]
        t = self.tiers
        tier = t.inter if (self.layout.tp * self.layout.pp > t.domain and t.inter is not None) else t.intra
        return collective_time("p2p", msg, 2, intra=tier)

    def step(self, batch, new_tokens, context=0, *, n_logit=1.0) -> StepResult:
        """One forward step for `batch` sequences each adding `new_tokens` on top of `context` cached ones.

        Arguments may be numpy arrays (one scenario per element)."""
        ops, times, exposed = self.op_seconds(batch, new_tokens, context, n_logit)
        counts = self.counts
        stage_time = counts @ exposed
        tokens = np.asarray(batch, dtype=float) * np.asarray(new_tokens, dtype=float)
        p2p = np.broadcast_to(self.p2p_seconds(tokens), (ops.n_scenarios,))
        # memory of the fullest stage, per scenario
        weights_stage = counts @ ops.resident_bytes
        cache_stage = counts @ ops.cache_bytes
        worst = np.argmax(weights_stage + cache_stage, axis=0)
        cols = np.arange(ops.n_scenarios)
        memory = MemoryArrays(weights_bytes=weights_stage[worst, cols], kv_cache_bytes=cache_stage[worst, cols],
                              activation_bytes=memory_per_rank(ops).activation_bytes)
        return StepResult(self, ops, times, counts, stage_time, p2p, self.eff.step_overhead_s, memory)


# ---------------------------------------------------------------------------------------------------------
# the factory: ids or paths in, a validated Deployment out

DEFAULT_MODEL = "llama-3.1-8b"
DEFAULT_GPU = "h100-sxm"


def deployment(model: str | Path | Mapping[str, Any] | Architecture = DEFAULT_MODEL,
               gpu: str | Path | Mapping[str, Any] | Device = DEFAULT_GPU, *, weights: str | None = None,
               activations: str | None = None, kv: str | None = None, experts: str | None = None,
               tp: int = 1, pp: int = 1, ep: int = 1, dp: int = 1, node: str | None = None,
               attention_convention: str = "causal", comm_overlap: float = 0.0, moe_imbalance: float = 1.0,
               memory_utilization: float = 0.9, calibration: str | Path | bool | None = None,
               engine: str | None = None) -> Deployment:
    """A Deployment from ids or paths. `weights=None` takes the checkpoint's own dtype (bf16/fp16; the
    published format for FP8 or MXFP4 checkpoints); `kv=None` keeps the KV cache in 16 bits. `engine`
    (vllm | sglang | trtllm) picks the engine's kernel calibration (hardware_db/calibration/<gpu>.<engine>.toml);
    None keeps the hand-set class defaults (the CLI and the app always name an engine, vllm by default)."""
    arch = load_architecture(model)
    device = load_device(gpu)
    w = weights or checkpoint_weight_format(arch)
    sixteen = "bf16" if device.supports("bf16") or not device.supports("fp16") else "fp16"
    if w in ("bf16", "fp16") and not device.supports(w) and weights is None:
        w = sixteen  # the checkpoint's 16-bit dtype is not native here: engines cast (e.g. bf16 -> fp16 on V100)
    exp = experts if experts is not None else checkpoint_expert_format(arch, w)
    prec = Precision(weights=w, activations=activations, kv=kv or sixteen, experts=exp,
                     embeddings=sixteen)
    node_type = get_node(node) if node else None
    eff = efficiency_for(device, calibration, engine=engine)
    return Deployment(arch, device, prec, Layout(tp=tp, pp=pp, ep=ep, dp=dp), node=node_type, efficiency=eff,
                      attention_convention=attention_convention, comm_overlap=comm_overlap,
                      moe_imbalance=moe_imbalance, memory_utilization=memory_utilization)


def checkpoint_weight_format(arch: Architecture) -> str:
    """The dense weight format of the published checkpoint."""
    q = arch.quantization or {}
    method = str(q.get("quant_method", "")).lower()
    if method == "fp8":
        return "fp8"
    dtype = str(arch.torch_dtype).lower()
    return "fp16" if "float16" in dtype and "bfloat" not in dtype else "bf16"


def checkpoint_expert_format(arch: Architecture, dense: str) -> str | None:
    """Expert weights format when the checkpoint stores experts differently (gpt-oss: MXFP4 experts)."""
    method = str((arch.quantization or {}).get("quant_method", "")).lower()
    if method == "mxfp4" and arch.is_moe:
        return "mxfp4"
    return None
