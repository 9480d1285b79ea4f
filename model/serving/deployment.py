"""A deployment: model x device x precision x layout, and its forward-step cost and memory per GPU.

This is where operator costs become step times for a real placement: tensor/expert collectives over the
device's links, pipeline stages, the engine's per-step overhead, and memory against capacity.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np

from model.architecture.catalogue import load_architecture
from model.architecture.config import Architecture
from model.engines import check_layout as check_engine_layout, custom_all_reduce_limits, step_quant_flags
from model.errors import MAX_SEQUENCES, MAX_TOKENS, RidgeplanError, require_fraction, require_positive, require_sizes
from model.hardware.db import get_node, load_device
from model.hardware.schema import Device, NodeType
from model.operators.compiled import CompiledGraph, OpArrays, compile_graph
from model.operators.formulas import FP8_DISPATCH_BYTES, expected_max_normal
from model.operators.memory import MemoryArrays, memory_per_rank
from model.placement.layout import Layout, stage_counts
from model.placement.topology import LinkTiers, efficiency_tiers, link_tiers  # noqa: F401 (link_tiers: re-exported)
from model.precision import Precision, number_format
from model.roofline.collectives import collective_time
from model.roofline.efficiency import Efficiency
from model.roofline.efficiency_sets import efficiency_for
from model.roofline.evaluator import CommGroup, ExecContext, OpTimes, context_for, embedding_dtype, evaluate, resolve_precision

CONVENTIONS = ("causal", "square")
EP_COMM = ("auto", "allgather", "normal", "low_latency")
MOE_COMM_OPS = ("moe_all_gather", "moe_reduce_scatter", "ep_dispatch", "ep_combine", "ep_dispatch_rdma",
                "ep_combine_rdma", "ep_dispatch_ll", "ep_combine_ll")
# bytes per element of dispatched tokens: bf16; DeepEP's fp8 (e4m3 + one fp32 scale per 128 channels); NVFP4
DISPATCH_BYTES = {"bf16": 2.0, "fp8": FP8_DISPATCH_BYTES, "nvfp4": number_format("nvfp4").bytes_per_element}


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
    moe_imbalance: float = 1.0  # routing skew beyond uniform routing (busiest rank / mean), applied without EPLB
    eplb: bool = False  # expert-parallel load balancer (redundant hot experts): removes the skew
    ep_comm: str = "auto"  # auto | allgather | normal | low_latency: how tokens reach the experts under attention DP
    dispatch_dtype: str | None = None  # bf16 | fp8 | nvfp4 for dispatched tokens (None: the expert GEMM's input)
    two_batch_overlap: bool = False  # two micro-batches: one's MoE communication hides behind the other's compute
    mtp_layers: int = 0  # multi-token-prediction modules held for speculative decoding (model.serving.mtp)
    memory_utilization: float = 0.90  # fraction of device memory the engine may use (vLLM's default 0.9)
    # KV compression composing multiplicatively with the KV precision:
    kv_rank_fraction: float = 1.0  # kept share of the K/V feature dimension (low-rank projection)
    kv_keep_ratio: float = 1.0  # kept share of tokens (eviction / merging)
    kv_residual_tokens: int = 0  # most recent tokens kept in 16 bits (KIVI-style window)

    def __post_init__(self) -> None:
        self.layout.check(self.arch)
        if self.attention_convention not in CONVENTIONS:
            raise RidgeplanError("attention_convention", f"unknown convention {self.attention_convention!r}", CONVENTIONS)
        require_fraction("comm_overlap", self.comm_overlap)
        if not (isinstance(self.moe_imbalance, numbers.Real) and 1 <= self.moe_imbalance < math.inf):
            raise RidgeplanError("moe_imbalance", f"is max/mean load and must be a finite number >= 1, got "
                                 f"{self.moe_imbalance!r}")
        if self.mtp_layers:
            from model.serving.mtp import check_mtp

            check_mtp(self.arch, self.mtp_layers)
        if self.ep_comm not in EP_COMM:
            raise RidgeplanError("ep_comm", f"unknown MoE communication {self.ep_comm!r}", EP_COMM)
        if self.dispatch_dtype is not None and self.dispatch_dtype not in DISPATCH_BYTES:
            raise RidgeplanError("dispatch_dtype", f"unknown dispatch format {self.dispatch_dtype!r}", DISPATCH_BYTES)
        for name in ("kv_rank_fraction", "kv_keep_ratio"):
            require_fraction(name, getattr(self, name), low_open=True)
        require_positive("kv_residual_tokens", self.kv_residual_tokens, integer=True, allow_zero=True)
        require_fraction("memory_utilization", self.memory_utilization, low_open=True)
        if self.layout.gpus_per_replica > 1 or self.layout.moe_group > 1:
            tiers = self.tiers
            if max(self.layout.tp * self.layout.pp, self.layout.moe_group) > tiers.domain and tiers.inter is None:
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
        return efficiency_tiers(self.device, self.node, self.eff)

    @cached_property
    def graph(self) -> CompiledGraph:
        return compile_graph(self.arch, self.precision.unquantized)

    @cached_property
    def moe_comm_mode(self) -> str:
        """none (no attention DP: tokens already on every TP rank), allgather, normal, low_latency or auto
        (all-to-all with low-latency kernels in decode and normal ones in prefill, SGLang's --deepep-mode auto)."""
        lay = self.layout
        if not self.arch.is_moe or lay.attention_dp == 1:
            return "none"
        if self.ep_comm != "auto":
            return self.ep_comm
        # engines all-gather / reduce-scatter under attention DP unless a wide-EP all-to-all (DeepEP, TRT-LLM's
        # MNNVL all-to-all) is configured; those are what deployments beyond one 8-GPU node use, and they need
        # whole experts on every rank (SGLang's DeepEP forces EP = tp; a token split over MoE-TP ranks is gathered)
        return "allgather" if lay.moe_group <= 8 or lay.moe_tp > 1 else "auto"

    @cached_property
    def context(self) -> ExecContext:
        lay, t = self.layout, self.tiers
        per_node_tp = max(t.domain // lay.tp, 1)
        moe_group = dict(size=lay.moe_group, ranks_per_node=min(lay.moe_group, t.domain), intra=t.intra, inter=t.inter)
        comm = {
            "tp": CommGroup(size=lay.tp, ranks_per_node=min(lay.tp, t.domain), intra=t.intra, inter=t.inter),
            "adp": CommGroup(size=lay.attention_dp, ranks_per_node=min(lay.attention_dp, per_node_tp),
                             intra=t.intra, inter=t.inter),
            "moe_local": CommGroup(size=min(lay.moe_group, t.domain), intra=t.intra),  # NVLink part
            "moe_nodes": CommGroup(size=self.moe_nodes, intra=t.inter or t.intra),  # one rank per node, NIC
            "moe_ll": CommGroup(**moe_group, algorithm="direct"),
        }
        return context_for(self.device, self.resolved, efficiency=self.eff, comm=comm, comm_overlap=self.comm_overlap)

    @property
    def moe_nodes(self) -> int:
        """Scale-up domains the MoE group spans (1 inside one node or one NVL72 rack)."""
        return -(-self.layout.moe_group // self.tiers.domain)

    @property
    def dispatch_format(self) -> str:
        """Format of dispatched tokens: as given, else the expert GEMM's input (fp8 / fp4 paths quantize before
        sending, as DeepEP and TensorRT-LLM do), else 16-bit."""
        if self.dispatch_dtype is not None:
            return self.dispatch_dtype
        act = self.resolved.expert_dtype
        return {"fp8": "fp8", "fp4": "nvfp4"}.get(act, "bf16")

    def symbols(self) -> dict[str, float]:
        """Scenario-symbol values fixed by the deployment (bytes per element, parallel degrees)."""
        return dict(self._symbols)

    @cached_property
    def _symbols(self) -> dict[str, float]:
        """`symbols`, worked out once (the deployment is frozen; callers get a copy)."""
        p, lay = self.precision, self.layout
        act_bytes = 4.0 if str(self.arch.torch_dtype).endswith("32") else 2.0
        mode = self.moe_comm_mode
        return {
            "tp": lay.tp, "ep": lay.ep, "etp": lay.expert_tp, "dp_attn": lay.attention_dp,
            "gamma_moe": 1.0 if self.eplb else self.moe_imbalance, "z_ep": expected_max_normal(lay.ep),
            "moe_ag": float(mode == "allgather"), "moe_a2a": float(mode in ("normal", "low_latency", "auto")),
            "ll_decode": float(mode in ("low_latency", "auto")), "ll_prefill": float(mode == "low_latency"),
            "b_disp": DISPATCH_BYTES[self.dispatch_format], "e_red": lay.redundant_experts,
            "ep_nodes": float(self.moe_nodes) if mode in ("normal", "auto") else 1.0,
            "causal": 1.0 if self.attention_convention == "causal" else 0.0,
            "b_w": number_format(p.weights).bytes_per_element,
            "b_e": number_format(p.expert_weights).bytes_per_element,
            "b_emb": number_format(p.embeddings).bytes_per_element,
            "b_u": number_format(embedding_dtype(self.device)).bytes_per_element,
            "q_e": self.eff.step_expert_quant(self.resolved.expert_dtype),
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

    def memory_note(self) -> str:
        """Which capacity the fit uses, in decimal GB and binary GiB, against the marketed figure."""
        m = self.device.memory
        source = ("the runtime-reported total" if m.runtime_total_bytes else "the marketed capacity")
        marketed = (f" (marketed {m.capacity_bytes / 1e9:,.0f} GB)" if m.runtime_total_bytes else "")
        return (f"usable memory = {self.memory_utilization:.0%} of {source}, {self.capacity_bytes / 1e9:,.1f} GB = "
                f"{self.capacity_bytes / 2**30:,.1f} GiB{marketed}: {self.usable_bytes / 1e9:,.1f} GB per GPU")

    def assumptions(self) -> list[str]:
        notes = [
            f"{self.device.name}: efficiency {self.eff.source}",
            f"precision {self.precision.label()}: " + "; ".join(self.resolved.assumptions),
            f"attention FLOPs use the {self.attention_convention} convention",
            f"engine overhead {self.eff.step_overhead_s * 1e3:.2f} ms per step; kernel floor "
            f"{self.eff.kernel_floor_s * 1e6:.1f} us per kernel (CUDA graphs, fused kernels, paged KV assumed)",
            self.memory_note(),
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
            lay = self.layout
            skew = 1.0 if self.eplb else self.moe_imbalance
            notes.append(f"MoE layers: {lay.moe_group} GPUs as MoE-TP {lay.moe_tp} x MoE-EP {lay.ep}; attention TP "
                         f"{lay.tp} x attention-DP {lay.attention_dp}; dense layers and shared experts run TP {lay.tp} "
                         "on each attention-DP rank's own tokens")
            notes.append(f"MoE routing uniform and random: the busiest EP rank carries the mean plus "
                         f"{expected_max_normal(lay.ep):.2f} standard deviations of token-expert pairs and touched "
                         f"experts, times a skew of {skew:.2f}" + (" (EPLB on)" if self.eplb else " (EPLB off)"))
            mode = self.moe_comm_mode
            text = {"none": "tokens already on every TP rank; expert outputs summed by the TP all-reduce",
                    "allgather": "attention-DP all-gather before and reduce-scatter after each MoE layer",
                    "normal": "dispatch/combine all-to-all, normal kernels (one copy per destination rank)",
                    "low_latency": "dispatch/combine all-to-all, low-latency kernels (one copy per expert)",
                    "auto": "dispatch/combine all-to-all: low-latency kernels in decode, normal in prefill"}[mode]
            notes.append(f"MoE communication: {text}; dispatch in {self.dispatch_format}, combine in 16 bits"
                         + ("; two-batch overlap" if self.two_batch_overlap else ""))
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

    def op_seconds(self, batch, new_tokens, context, n_logit=1.0, *, rows=None) -> tuple[OpArrays, OpTimes, np.ndarray]:
        """Operator arrays, roofline times and exposed seconds per instance (n_ops, S) of a uniform step.

        `rows` (mask or indices over the graph's operators): only those operators are evaluated and returned (each
        operator's time depends on its own quantities only). With two-batch overlap, whose MoE layers pair
        communication with compute, every operator is evaluated and the exposed seconds are cut to `rows`."""
        if self.two_batch_overlap and self.arch.is_moe:
            ops = self.graph.evaluate({**self.symbols(), "B": batch, "T": new_tokens, "C": context, "n_logit": n_logit})
            exposed = self._two_batch_exposed(batch, new_tokens, context, n_logit)
            return ops, evaluate(ops, self.context), exposed if rows is None else exposed[rows]
        ops = self.graph.evaluate({**self.symbols(), "B": batch, "T": new_tokens, "C": context, "n_logit": n_logit},
                                  rows=rows)
        times = evaluate(ops, self.context)
        return ops, times, times.time_s - times.comm_overlap * times.network_s

    def _two_batch_exposed(self, batch, new_tokens, context, n_logit) -> np.ndarray:
        """Two-batch overlap (SGLang --enable-two-batch-overlap, DeepSeek's dual micro-batch): the step runs as two
        half batches; in each layer one half's MoE communication runs while the other half computes, so a layer
        costs 2 x compute(half) plus what its communication exceeds that by. Weights are read once per half."""
        half = self.graph.evaluate({**self.symbols(), "B": np.asarray(batch, dtype=float) / 2, "T": new_tokens,
                                    "C": context, "n_logit": np.asarray(n_logit, dtype=float) / 2})
        t = evaluate(half, self.context)
        e = t.time_s - t.comm_overlap * t.network_s
        comm = np.array([op.name in MOE_COMM_OPS for op in self.graph.ops])
        groups = np.array([op.group for op in self.graph.ops])
        out = 2 * e
        for g in set(groups[comm]):
            rows = groups == g
            compute = e[rows & ~comm].sum(axis=0)
            moe_comm = e[rows & comm].sum(axis=0)
            hidden = np.where(moe_comm > 0, np.minimum(compute / np.maximum(moe_comm, 1e-30), 1.0), 0.0)
            out[rows & comm] = 2 * e[rows & comm] * (1 - hidden)
        return out

    @cached_property
    def p2p_affine_s(self) -> tuple[float, float]:
        """(seconds of an empty hand-off, seconds per token): `p2p_seconds` is affine in the message size (alpha-
        beta), so stacked deployments evaluate it from these two numbers."""
        base = float(self.p2p_seconds(0.0))
        return base, float(self.p2p_seconds(1.0)) - base

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

        Arguments may be numpy arrays (one scenario per element); each must be finite and >= 0."""
        batch = require_sizes("batch", batch, upper=MAX_SEQUENCES)
        new_tokens = require_sizes("new_tokens", new_tokens, upper=MAX_TOKENS)
        context = require_sizes("context", context, upper=MAX_TOKENS)
        n_logit = require_sizes("n_logit", n_logit, upper=MAX_SEQUENCES * MAX_TOKENS)
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
               tp: int = 1, pp: int = 1, ep: int = 1, dp: int = 1, attention_dp: int | None = None,
               moe_tp: int | None = None, moe_ep: int | None = None, redundant_experts: int = 0,
               node: str | None = None,
               attention_convention: str = "causal", comm_overlap: float = 0.0, moe_imbalance: float = 1.0,
               eplb: bool = False, ep_comm: str = "auto", dispatch_dtype: str | None = None,
               two_batch_overlap: bool = False, mtp_layers: int = 0, engine: str | None = None,
               unquantized: tuple[str, ...] | None = None,
               memory_utilization: float = 0.9, calibration: str | Path | bool | None = None) -> Deployment:
    """A Deployment from ids or paths. `weights=None` takes the checkpoint's own dtype (bf16/fp16; the
    published format for FP8 or MXFP4 checkpoints); `kv=None` keeps the KV cache in 16 bits.

    Layout: attention `tp` x `attention_dp`, MoE `moe_tp` x `moe_ep` (`ep` is its short form), `pp` stages and
    `dp` independent replicas. `engine` (vllm | sglang | trtllm): a layout that engine rejects is refused quoting its
    rule, and the engine's kernel calibration is picked up (hardware_db/calibration/<gpu>.<engine>.toml); None keeps
    the hand-set class defaults and checks no engine rule (the CLI and the app always name an engine, vllm by
    default). `unquantized`: the modules (model.precision.QUANT_MODULES) kept in 16 bits while the other dense
    layers use `weights`; None takes the checkpoint's exclude list when `weights` is None too, else none."""
    layout = make_layout(tp=tp, pp=pp, ep=ep, dp=dp, attention_dp=attention_dp, moe_tp=moe_tp, moe_ep=moe_ep,
                         redundant_experts=redundant_experts)
    arch = load_architecture(model)
    device = load_device(gpu)
    w = weights or checkpoint_weight_format(arch)
    sixteen = "bf16" if device.supports("bf16") or not device.supports("fp16") else "fp16"
    if w in ("bf16", "fp16") and not device.supports(w) and weights is None:
        w = sixteen  # the checkpoint's 16-bit dtype is not native here: engines cast (e.g. bf16 -> fp16 on V100)
    exp = experts if experts is not None else checkpoint_expert_format(arch, w)
    if unquantized is None:
        unquantized = tuple((arch.quantization or {}).get("unquantized", ())) if weights is None else ()
    prec = Precision(weights=w, activations=activations, kv=kv or sixteen, experts=exp,
                     embeddings=sixteen, unquantized=tuple(unquantized))
    node_type = get_node(node) if node else None
    eff = deployment_efficiency(device, calibration, engine)
    d = Deployment(arch, device, prec, layout, node=node_type, efficiency=eff,
                   attention_convention=attention_convention, comm_overlap=comm_overlap,
                   moe_imbalance=moe_imbalance, eplb=eplb, ep_comm=ep_comm, dispatch_dtype=dispatch_dtype,
                   two_batch_overlap=two_batch_overlap, mtp_layers=mtp_layers,
                   memory_utilization=memory_utilization)
    if engine is not None:
        check_engine_layout(engine, tp=layout.tp, pp=layout.pp, attention_dp=layout.attention_dp,
                            moe_tp=layout.moe_tp, moe_ep=layout.ep, is_moe=arch.is_moe, ep_comm=ep_comm)
    return d


def deployment_efficiency(device: Device, calibration: str | Path | bool | None = None,
                          engine: str | None = None) -> Efficiency:
    """The efficiency set `deployment` gives a deployment on `device`: the class defaults and calibration files
    (`efficiency_for`) with the engine's unfused activation quantization."""
    return replace(efficiency_for(device, calibration, engine=engine), **step_quant_flags(engine),
                   **custom_all_reduce_limits(engine, device.arch))


DP_WITH_EP = ("--dp now counts independent replicas; the attention data-parallel ranks of an EP group are "
              "--attention-dp (for example --tp 1 --attention-dp 8 --moe-ep 8)")


def make_layout(*, tp: int = 1, pp: int = 1, ep: int = 1, dp: int = 1, attention_dp: int | None = None,
                moe_tp: int | None = None, moe_ep: int | None = None, redundant_experts: int = 0) -> Layout:
    """A Layout from the engine-style degrees; `ep` is the short form of `moe_ep`.

    The older form (dp counting the attention-DP ranks of an EP group wider than TP) is refused with one line
    saying that --attention-dp is meant now."""
    for name, value in (("tp", tp), ("pp", pp), ("ep", ep), ("dp", dp), ("attention_dp", attention_dp),
                        ("moe_tp", moe_tp), ("moe_ep", moe_ep)):
        if value is not None or name in ("tp", "pp", "ep", "dp"):  # the last three may be left to the rule
            require_positive(name, value, integer=True)
    require_positive("redundant_experts", redundant_experts, integer=True, allow_zero=True)
    if moe_ep is not None and ep not in (1, moe_ep):
        raise RidgeplanError("moe_ep", f"--ep {ep} and --moe-ep {moe_ep} disagree (--ep is its short form)")
    e = moe_ep if moe_ep is not None else ep
    if dp > 1 and e > tp and attention_dp is None and moe_tp is None:
        raise RidgeplanError("dp", DP_WITH_EP)
    return Layout(tp=tp, pp=pp, ep=e, dp=dp, attention_dp=attention_dp, moe_tp=moe_tp,
                  redundant_experts=redundant_experts)


def checkpoint_weight_format(arch: Architecture) -> str:
    """The dense weight format of the published checkpoint."""
    q = arch.quantization or {}
    method = str(q.get("quant_method", "")).lower()
    if q.get("weights") in ("fp8", "nvfp4", "mxfp4", "int4", "int8"):  # normalised by model.architecture.quant
        return str(q["weights"])
    if method == "fp8":
        return "fp8"
    dtype = str(arch.torch_dtype).lower()
    return "fp16" if "float16" in dtype and "bfloat" not in dtype else "bf16"


def checkpoint_expert_format(arch: Architecture, dense: str) -> str | None:
    """Expert weights format when the checkpoint stores experts differently (gpt-oss: MXFP4 experts)."""
    q = arch.quantization or {}
    method = str(q.get("quant_method", "")).lower()
    if method == "mxfp4" and arch.is_moe:
        return "mxfp4"
    if arch.is_moe and q.get("experts") in ("fp8", "nvfp4", "mxfp4", "int4", "int8") and q["experts"] != dense:
        return str(q["experts"])
    return None
