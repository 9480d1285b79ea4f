"""`estimate_training`: one training layout on one cluster, as a dataclass with `to_dict()` (CLI, app, notebooks).

A layout that does not fit in memory is reported with its shortfall and no step time (PITFALLS: an
out-of-memory configuration is never reported as a latency).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from model.architecture.catalogue import load_architecture
from model.architecture.config import Architecture
from model.errors import RidgeplanError, require_positive
from model.hardware.db import load_device
from model.placement.layout import Layout
from model.training.config import Candidates, OptimizerSpec, TrainingLayout, TrainingSettings, optimizer_spec
from model.training.formulas import SECONDS_PER_DAY
from model.training.step import BREAKDOWN, StepArrays, evaluate_candidates, training_precision
from model.placement.topology import Topology, check_span
from model.training.cluster import Cluster, cluster_for

DEFAULT_BATCH_TOKENS = 2**22  # about 4M tokens per optimizer step, typical of large-model pre-training


def default_global_batch(seq_len: int, dp: int, micro_batch: int) -> int:
    """Sequences per step: about 4M tokens, rounded to a multiple of dp x micro-batch."""
    unit = dp * micro_batch
    return unit * max(1, round(DEFAULT_BATCH_TOKENS / (seq_len * unit)))


@dataclass(frozen=True)
class TrainingEstimate:
    """Memory, step time and time-to-train of one layout. Seconds, bytes, FLOP; MFU and HFU are fractions."""

    model: str
    gpu: str
    node: str | None
    layout: TrainingLayout
    settings: TrainingSettings
    memory: dict[str, float]
    fits: bool
    step_time_s: float | None
    breakdown_s: dict[str, float]
    model_flops_per_step: float
    hardware_flops_per_step: float
    mfu: float | None
    hfu: float | None
    tokens_per_s: float | None
    bubble_fraction: float | None
    stage_imbalance: float | None
    tokens: float | None
    time_to_train_s: float | None
    gpu_hours: float | None
    cost_usd: float | None
    price_usd_per_gpu_hour: float | None
    assumptions: tuple[str, ...] = field(default=())

    @property
    def gpus(self) -> int:
        return self.layout.gpus

    @property
    def binding(self) -> str:
        """The largest term of the step (or 'memory' when it does not fit)."""
        if not self.fits:
            return "memory"
        return max(self.breakdown_s, key=self.breakdown_s.get).removesuffix("_s")

    def to_dict(self) -> dict[str, Any]:
        lay = self.layout
        out: dict[str, Any] = {
            "model": self.model, "gpu": self.gpu, "node": self.node, "gpus": self.gpus, "layout": lay.label(),
            "tp": lay.tp, "pp": lay.pp, "dp": lay.dp, "sp": lay.sp, "ep": lay.ep, "zero": lay.zero,
            "virtual_stages": lay.virtual_stages, "sp_kind": lay.sp_kind, "sequence_parallel": lay.sequence_parallel,
            "micro_batch": lay.micro_batch, "global_batch": lay.global_batch, "seq_len_tokens": lay.seq_len,
            "micro_batches_per_step": lay.micro_batches, "recompute": lay.recompute,
            "optimizer": self.settings.optimizer.name, "optimizer_spec": self.settings.optimizer.to_dict(),
            "offload_optimizer": lay.offload_optimizer,
            "offload_params": lay.offload_params, "offload_activations": lay.offload_activations,
            "memory": self.memory, "fits": self.fits,
            "model_flops_per_step": self.model_flops_per_step, "hardware_flops_per_step": self.hardware_flops_per_step,
            "tokens": self.tokens, "price_usd_per_gpu_hour": self.price_usd_per_gpu_hour,
            "assumptions": list(self.assumptions),
        }
        if self.fits:
            out.update({
                "step_time_s": self.step_time_s, "breakdown_s": self.breakdown_s, "binding": self.binding,
                "mfu": self.mfu, "hfu": self.hfu, "tokens_per_s": self.tokens_per_s,
                "tokens_per_s_per_gpu": self.tokens_per_s / self.gpus if self.tokens_per_s else None,
                "bubble_fraction": self.bubble_fraction, "stage_imbalance": self.stage_imbalance,
                "time_to_train_s": self.time_to_train_s,
                "time_to_train_days": self.time_to_train_s / SECONDS_PER_DAY if self.time_to_train_s else None,
                "gpu_hours": self.gpu_hours, "cost_usd": self.cost_usd,
            })
        return out


def memory_dict(r: StepArrays, i: int) -> dict[str, float]:
    return {
        "weights_bytes": float(r.weights_bytes[i]), "grads_bytes": float(r.grads_bytes[i]),
        "optimizer_bytes": float(r.optimizer_bytes[i]), "activation_bytes": float(r.activation_bytes[i]),
        "buffer_bytes": float(r.buffer_bytes[i]), "total_bytes": float(r.total_bytes[i]),
        "usable_bytes": float(r.usable_bytes), "headroom_bytes": float(r.headroom_bytes[i]),
        "host_bytes": float(r.host_bytes[i]), "nvme_bytes": float(r.nvme_bytes[i]),
    }


def estimate_from_arrays(arch: Architecture, cluster: Cluster, layout: TrainingLayout, settings: TrainingSettings,
                         r: StepArrays, i: int, tokens: float | None, notes: list[str]) -> TrainingEstimate:
    """Column i of a vectorized evaluation as a TrainingEstimate (shared by the estimate and the planner)."""
    fits = bool(r.fits[i])
    step = float(r.step_time_s[i]) if fits else None
    price = cluster.price_usd_per_gpu_hour
    ttt = hours = cost = None
    if fits and tokens:
        steps = math.ceil(tokens / float(r.tokens_per_step[i]))
        ttt = steps * step
        hours = ttt * layout.gpus / 3600.0
        cost = hours * price if price is not None else None
    return TrainingEstimate(
        model=arch.name, gpu=cluster.device.id, node=cluster.node.id if cluster.node else None, layout=layout,
        settings=settings, memory=memory_dict(r, i), fits=fits, step_time_s=step,
        breakdown_s={k: float(r.breakdown[k][i]) for k in BREAKDOWN},
        model_flops_per_step=float(r.model_flops_per_step[i]),
        hardware_flops_per_step=float(r.hardware_flops_per_step[i]),
        mfu=float(r.mfu[i]) if fits else None, hfu=float(r.hfu[i]) if fits else None,
        tokens_per_s=float(r.tokens_per_s[i]) if fits else None,
        bubble_fraction=float(r.bubble_fraction[i]) if fits else None,
        stage_imbalance=float(r.stage_imbalance[i]) if fits else None,
        tokens=tokens, time_to_train_s=ttt, gpu_hours=hours, cost_usd=cost, price_usd_per_gpu_hour=price,
        assumptions=tuple(notes),
    )


def assumptions_for(arch: Architecture, cluster: Cluster, settings: TrainingSettings, device_peak_dtype: str) -> list[str]:
    s = settings
    opt = s.optimizer
    notes = [
        f"optimizer {opt.name}: {opt.description}" + (f"; rank {opt.rank}" if opt.rank else ""),
        f"16-bit weights and activations; gradients kept and reduced at {s.grad_bytes:g} B, accumulated over "
        f"micro-batches with {s.grad_accum_bytes:g} B/param of traffic each",
        f"GEMMs on the {training_precision(cluster.device, s.dtype)[0].activations} path at {cluster.device.name}'s "
        "roofline efficiencies (model.roofline); backward = "
        "2x forward GEMM FLOPs, flash-attention backward 2.5x forward hardware FLOPs",
        f"MFU = model FLOPs (3x forward GEMM + causal attention) / (step time x GPUs x {device_peak_dtype} dense peak); "
        "HFU adds recomputed forwards",
        f"attention kernel: {s.attention_kernel}; dropout {'on' if s.dropout else 'off'}",
        f"TP/EP/CP collectives {s.tp_overlap:.0%} overlapped; DP gradient reduction hidden behind up to "
        f"{s.dp_overlap:.0%} of the last backward",
        f"usable memory {s.memory_utilization:.0%} of {cluster.device.memory.total_bytes / 1e9:.1f} GB per GPU",
        "collectives hierarchical over the network tiers (rank order tp, sp, dp, pp)",
        *cluster.assumptions, *arch.assumptions,
    ]
    if s.compression_ratio > 1 or s.sync_every > 1:
        notes.append(f"gradient traffic reduced {s.compression_ratio:g}x (warm-up {s.compression_warmup:.0%}) and "
                     f"synchronised every {s.sync_every} steps")
    if s.vocab_parallel:
        notes.append("embedding and LM head spread evenly over pipeline stages (vocabulary parallelism)")
    return notes


def resolve_settings(optimizer: str | OptimizerSpec = "adamw", *, rank: int | None = None,
                     master_weights: bool | None = None, **settings: Any) -> TrainingSettings:
    spec = optimizer_spec(optimizer, rank=rank, master_weights=master_weights)
    unknown = set(settings) - set(TrainingSettings.__dataclass_fields__)
    if unknown:
        raise RidgeplanError(sorted(unknown)[0], "unknown training setting", sorted(TrainingSettings.__dataclass_fields__))
    return TrainingSettings(optimizer=spec, **settings)


def estimate_training(model: str | Path | dict | Architecture, gpu: str = "h100-sxm", gpus: int | None = None, *,
                      node: str | None = None, tp: int = 1, pp: int = 1, dp: int | None = None, sp: int = 1,
                      ep: int = 1, zero: int = 1, micro_batch: int = 1, global_batch: int | None = None,
                      seq_len: int = 2048, recompute: str = "selective", optimizer: str | OptimizerSpec = "adamw",
                      rank: int | None = None, master_weights: bool | None = None, tokens: float | None = None,
                      virtual_stages: int = 1, schedule: str = "1f1b", sp_kind: str = "ulysses",
                      sequence_parallel: bool | None = None, offload_optimizer: str = "none",
                      offload_params: str = "none", offload_activations: bool = False,
                      scale_out_link: str | None = None, gpus_per_nic: float | None = None,
                      topology: Topology | None = None, **settings: Any) -> TrainingEstimate:
    """Memory, time per step, MFU and time-to-train of one layout (`dp` defaults to gpus / (tp·pp·sp))."""
    arch = load_architecture(model)
    device = load_device(gpu)
    for name, value in (("tp", tp), ("pp", pp), ("sp", sp), ("ep", ep)):
        require_positive(name, value, integer=True)
    Layout(tp=tp, pp=pp).check(arch)  # heads and layers first: the clearest message for a bad split
    if dp is None:
        total = gpus if gpus is not None else tp * pp * sp
        require_positive("gpus", total, integer=True)
        if total % (tp * pp * sp):
            raise RidgeplanError("gpus", f"{total} GPUs do not divide into tp*pp*sp = {tp * pp * sp}",
                                 [tp * pp * sp * k for k in (1, 2, 4, 8, 16)])
        dp = total // (tp * pp * sp)
    elif gpus is not None and gpus != tp * pp * sp * dp:
        raise RidgeplanError("gpus", f"{gpus} GPUs but tp*pp*sp*dp = {tp * pp * sp * dp}", [tp * pp * sp * dp])
    if tokens is not None:
        require_positive("tokens", tokens)
    require_positive("micro_batch", micro_batch, integer=True)
    require_positive("seq_len", seq_len, integer=True)
    gb = global_batch if global_batch is not None else default_global_batch(seq_len, dp, micro_batch)
    layout = TrainingLayout(
        tp=tp, pp=pp, dp=dp, sp=sp, ep=ep, zero=zero, micro_batch=micro_batch, global_batch=gb, seq_len=seq_len,
        recompute=recompute, virtual_stages=virtual_stages, schedule=schedule, sp_kind=sp_kind,
        sequence_parallel=(tp > 1) if sequence_parallel is None else sequence_parallel,
        offload_optimizer=offload_optimizer, offload_params=offload_params, offload_activations=offload_activations)
    layout.check(arch)
    st = resolve_settings(optimizer, rank=rank, master_weights=master_weights, **settings)
    cluster = cluster_for(device, node, scale_out_link=scale_out_link, gpus_per_nic=gpus_per_nic, topology=topology)
    check_span(cluster.topology, layout.gpus)
    r = evaluate_candidates(arch, cluster, Candidates.from_layouts([layout]), st)
    notes = assumptions_for(arch, cluster, st, "bf16" if device.supports("bf16") else "fp16")
    if global_batch is None:
        notes.append(f"global batch {gb} sequences (about {DEFAULT_BATCH_TOKENS / 1e6:.1f}M tokens per step)")
    return estimate_from_arrays(arch, cluster, layout, st, r, 0, tokens, notes)

