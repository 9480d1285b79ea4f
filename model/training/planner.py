"""`plan_training`: search the layouts of a cluster for the fastest (or cheapest) one that fits and meets the ask.

The search space (every combination is one column of a `Candidates` batch, evaluated in one vectorized pass):
tensor parallel within a node (powers of two dividing the heads), pipeline stages, sequence parallel for long
sequences, expert parallel for MoE models, data parallel = the rest of the GPUs (so every candidate uses
exactly the GPUs it is given), ZeRO stage 0-3, micro-batch 1-8, recomputation, interleaved chunks. For the
cost objective smaller slices of the cluster (N/2, N/4, ...) are candidates too: fewer GPUs may train more
cheaply when the deadline allows.

When nothing satisfies the ask, the plan names the binding constraint (memory, deadline or budget) and the
nearest relaxation that would satisfy it (more GPUs, a smaller optimizer state, a later deadline, a larger
budget), each found by re-running the same evaluation, not guessed.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from itertools import product
from pathlib import Path
from typing import Any

import numpy as np

from model.architecture.catalogue import load_architecture
from model.architecture.config import Architecture
from model.errors import RidgeplanError, require_positive
from model.hardware.db import load_device
from model.placement.layout import Layout
from model.training.api import (
    DEFAULT_BATCH_TOKENS, TrainingEstimate, assumptions_for, estimate_from_arrays, resolve_settings,
)
from model.training.config import Candidates, TrainingSettings
from model.training.formulas import SECONDS_PER_DAY
from model.training.step import StepArrays, evaluate_candidates
from model.placement.topology import check_span
from model.training.cluster import Cluster, cluster_for

OBJECTIVES = ("time", "cost")
MICRO_BATCHES = (1, 2, 4, 8)
LONG_SEQUENCE = 16_384  # sequence/context parallelism is searched from this length up
MAX_SCALE_UP = 64  # the GPU-count relaxation looks up to 64x the cluster


def _powers_of_two(limit: float) -> list[int]:
    out, k = [], 1
    while k <= limit:
        out.append(k)
        k *= 2
    return out


def _fits_model(arch: Architecture, tp: int, pp: int = 1, ep: int = 1, dp: int = 1) -> bool:
    try:
        Layout(tp=tp, pp=pp, ep=ep, dp=dp).check(arch)
    except RidgeplanError:
        return False
    return True


def enumerate_candidates(arch: Architecture, gpus: int, *, seq_len: int, global_batch: int | None,
                         node_size: float, recompute: tuple[int, ...] = (0, 2), offload: bool = False) -> Candidates:
    """Every layout of exactly `gpus` GPUs in the search space (see the module docstring)."""
    cols: dict[str, list[float]] = {k: [] for k in ("tp", "pp", "dp", "sp", "ep", "zero", "micro_batch",
                                                      "global_batch", "recompute", "virtual_stages", "sp_kind",
                                                      "sequence_parallel", "offload_optimizer")}
    heads = min(g.attention.num_heads for g in arch.groups)
    experts = max((g.mlp.num_experts for g in arch.groups if g.mlp.kind == "moe"), default=0)
    layers = arch.num_layers
    for tp in _powers_of_two(min(node_size, gpus)):
        if not _fits_model(arch, tp):
            continue
        sps = [1] + ([s for s in _powers_of_two(gpus // tp) if s > 1 and seq_len % s == 0]
                     if seq_len >= LONG_SEQUENCE else [])
        for sp in sps:
            for pp in [p for p in range(1, min(layers, gpus // (tp * sp)) + 1) if (gpus // (tp * sp)) % p == 0]:
                if gpus % (tp * sp * pp):
                    continue
                dp = gpus // (tp * sp * pp)
                eps = [1] + ([e for e in _powers_of_two(min(experts, tp * dp)) if e >= tp and e > 1
                              and _fits_model(arch, tp, pp, e, dp * sp)] if experts else [])
                for ep, zero, mb, rc, off in product(eps, (0, 1, 2, 3), MICRO_BATCHES, recompute,
                                                     (0, 1) if offload else (0,)):
                    if zero and dp * sp == 1:
                        continue
                    unit = dp * mb
                    gb = global_batch or unit * max(1, round(DEFAULT_BATCH_TOKENS / (seq_len * unit)))
                    if gb % unit:
                        continue
                    m = gb // unit
                    vs = [1] + [v for v in (2, 4) if pp > 1 and layers % (pp * v) == 0 and m % pp == 0]
                    for v in vs:
                        for key, value in (("tp", tp), ("pp", pp), ("dp", dp), ("sp", sp), ("ep", ep),
                                           ("zero", zero), ("micro_batch", mb), ("global_batch", gb),
                                           ("recompute", rc), ("virtual_stages", v),
                                           ("sp_kind", 0 if heads % (tp * sp) == 0 else 1),
                                           ("sequence_parallel", float(tp > 1)), ("offload_optimizer", off)):
                            cols[key].append(value)
    if not cols["tp"]:
        raise RidgeplanError("gpus", f"no layout of {arch.name} uses {gpus} GPUs (tensor parallelism must divide "
                             f"the {heads} heads)", [2 ** k for k in range(8)])
    return Candidates.from_columns(seq_len=seq_len, **{k: np.asarray(v, float) for k, v in cols.items()})


@dataclass(frozen=True)
class TrainingPlan:
    """The chosen layout, the runners-up, and why the ask could not be met when it could not."""

    model: str
    gpu: str
    gpus: int
    objective: str
    tokens: float
    deadline_s: float | None
    budget_usd: float | None
    best: TrainingEstimate | None
    alternatives: tuple[TrainingEstimate, ...]
    candidates_evaluated: int
    candidates_fitting: int
    binding: str | None  # None when satisfied; else memory | deadline | budget
    explanation: str
    relaxations: tuple[dict[str, Any], ...] = field(default=())
    assumptions: tuple[str, ...] = field(default=())

    @property
    def feasible(self) -> bool:
        return self.binding is None

    def to_dict(self) -> dict[str, Any]:
        return {
            "model": self.model, "gpu": self.gpu, "gpus": self.gpus, "objective": self.objective,
            "tokens": self.tokens, "deadline_s": self.deadline_s, "budget_usd": self.budget_usd,
            "feasible": self.feasible, "binding": self.binding, "explanation": self.explanation,
            "relaxations": list(self.relaxations), "candidates_evaluated": self.candidates_evaluated,
            "candidates_fitting": self.candidates_fitting,
            "best": self.best.to_dict() if self.best else None,
            "alternatives": [a.to_dict() for a in self.alternatives], "assumptions": list(self.assumptions),
        }


@dataclass(frozen=True)
class _Search:
    cands: Candidates
    result: StepArrays
    time_s: np.ndarray  # time to train (inf where it does not fit)
    cost_usd: np.ndarray


def _search(arch: Architecture, cluster: Cluster, counts: list[int], settings: TrainingSettings, *, seq_len: int,
            global_batch: int | None, tokens: float, offload: bool) -> _Search:
    rc = (0, 1, 2) if settings.attention_kernel == "materialized" else (0, 2)  # flash: selective == none
    parts = []
    for n in counts:
        try:
            parts.append(enumerate_candidates(arch, n, seq_len=seq_len, global_batch=global_batch,
                                              node_size=cluster.topology.node_size, recompute=rc, offload=offload))
        except RidgeplanError:
            continue
    if not parts:
        raise RidgeplanError("gpus", f"no layout of {arch.name} fits these GPU counts: {counts}")
    cands = Candidates(**{k: np.concatenate([getattr(p, k) for p in parts]) for k in Candidates.__dataclass_fields__})
    check_span(cluster.topology, cands.gpus)
    r = evaluate_candidates(arch, cluster, cands, settings)
    steps = np.ceil(tokens / r.tokens_per_step)
    ttt = np.where(r.fits, steps * r.step_time_s, np.inf)
    price = cluster.price_usd_per_gpu_hour
    cost = ttt * cands.gpus / 3600.0 * (price if price is not None else np.nan)
    return _Search(cands, r, ttt, cost)


def _pick(s: _Search, objective: str, ok: np.ndarray) -> np.ndarray:
    """Indices of acceptable candidates, best first."""
    key = s.time_s if objective == "time" else s.cost_usd
    tie = s.cost_usd if objective == "time" else s.time_s
    idx = np.flatnonzero(ok)
    return idx[np.lexsort((np.nan_to_num(tie[idx], nan=np.inf), key[idx]))]


def plan_training(model: str | Path | dict | Architecture, gpu: str = "h100-sxm", gpus: int = 8, *,
                  node: str | None = None, tokens: float = 1e12, seq_len: int = 4096,
                  global_batch: int | None = None, deadline_days: float | None = None,
                  budget_usd: float | None = None, objective: str = "time", optimizer: str = "adamw",
                  rank: int | None = None, allow_offload: bool = False, scale_out_link: str | None = None,
                  alternatives: int = 5, **settings: Any) -> TrainingPlan:
    """The best layout of up to `gpus` GPUs for `tokens` tokens, under an optional deadline and budget."""
    arch = load_architecture(model)
    device = load_device(gpu)
    require_positive("gpus", gpus, integer=True)
    require_positive("tokens", tokens)
    require_positive("seq_len", seq_len, integer=True)
    if objective not in OBJECTIVES:
        raise RidgeplanError("objective", f"unknown objective {objective!r}", OBJECTIVES)
    if deadline_days is not None:
        require_positive("deadline_days", deadline_days)
    if budget_usd is not None:
        require_positive("budget_usd", budget_usd)
        if device.price is None:
            raise RidgeplanError("budget_usd", f"{device.name} has no price in its hardware file",
                                 hint="add a [price] table to the device TOML")
    st = resolve_settings(optimizer, rank=rank, **settings)
    cluster = cluster_for(device, node, scale_out_link=scale_out_link)
    counts = [gpus] if objective == "time" else [gpus // 2 ** k for k in range(12) if gpus % 2 ** k == 0]
    kw = dict(seq_len=seq_len, global_batch=global_batch, tokens=tokens, offload=allow_offload)
    s = _search(arch, cluster, counts, st, **kw)
    deadline_s = deadline_days * SECONDS_PER_DAY if deadline_days is not None else None
    fits = s.result.fits
    in_time = s.time_s <= (deadline_s if deadline_s is not None else np.inf)
    in_budget = np.nan_to_num(s.cost_usd, nan=0.0) <= (budget_usd if budget_usd is not None else np.inf)
    order = _pick(s, objective, fits & in_time & in_budget)
    binding, explanation, relax = None, "", []
    if order.size == 0:
        binding, explanation, relax, order = _explain(arch, cluster, st, s, objective, gpus, fits, in_time, in_budget,
                                                      deadline_s, budget_usd, tokens, kw)
    notes = assumptions_for(arch, cluster, st, "bf16" if device.supports("bf16") else "fp16")
    notes.append(f"searched {len(s.cands)} layouts over {counts} GPUs ({int(fits.sum())} fit in memory)")
    ests = [estimate_from_arrays(arch, cluster, s.cands.layout(int(i)), st, s.result, int(i), tokens, notes)
            for i in order[: alternatives + 1]]
    if binding is None:
        best = ests[0]
        explanation = (f"{best.layout.label()} on {best.gpus} GPUs: {best.time_to_train_s / SECONDS_PER_DAY:,.1f} days"
                       + (f", ${best.cost_usd:,.0f}" if best.cost_usd is not None else "")
                       + f", MFU {best.mfu:.1%}, bound by {best.binding}")
    return TrainingPlan(
        model=arch.name, gpu=device.id, gpus=gpus, objective=objective, tokens=tokens, deadline_s=deadline_s,
        budget_usd=budget_usd, best=ests[0] if binding is None and ests else None,
        alternatives=tuple(ests[1:] if binding is None else ests), candidates_evaluated=len(s.cands),
        candidates_fitting=int(fits.sum()), binding=binding, explanation=explanation, relaxations=tuple(relax),
        assumptions=tuple(notes))


def _explain(arch, cluster, st, s: _Search, objective, gpus, fits, in_time, in_budget, deadline_s, budget_usd, tokens,
             kw):
    """(binding, sentence, relaxations, indices of the closest candidates) for an ask nothing satisfies."""
    relax: list[dict[str, Any]] = []
    if not fits.any():
        closest = np.argsort(-s.result.headroom_bytes)[:3]
        need = s.result.total_bytes[closest[0]]
        text = (f"does not fit: the smallest per-GPU footprint ({s.cands.layout(int(closest[0])).label()}) needs "
                f"{need / 1e9:,.1f} GB against {s.result.usable_bytes / 1e9:,.1f} GB usable "
                f"(short by {-s.result.headroom_bytes[closest[0]] / 1e9:,.1f} GB)")
        more = _first_count(arch, cluster, st, gpus, kw, lambda t: t.result.fits.any())
        if more:
            relax.append({"change": "gpus", "value": more, "why": f"{more} GPUs give a layout that fits"})
        for name in ("adamw8bit", "galore8bit"):
            if name != st.optimizer.name:
                alt = _search(arch, cluster, [gpus], resolve_settings(name), **kw)
                if alt.result.fits.any():
                    relax.append({"change": "optimizer", "value": name, "why": f"{name} states fit on {gpus} GPUs"})
                    break
        if not kw["offload"]:
            alt = _search(arch, cluster, [gpus], st, **{**kw, "offload": True})
            if alt.result.fits.any():
                relax.append({"change": "offload_optimizer", "value": "cpu", "why": "optimizer states in CPU memory fit"})
        return "memory", text, relax, closest
    if not (fits & in_time).any():
        fastest = _pick(s, "time", fits)
        best_s = s.time_s[fastest[0]]
        text = (f"misses the deadline: the fastest layout takes {best_s / SECONDS_PER_DAY:,.1f} days against "
                f"{deadline_s / SECONDS_PER_DAY:,.1f}")
        relax.append({"change": "deadline_days", "value": best_s / SECONDS_PER_DAY, "why": "the fastest layout's time"})
        more = _first_count(arch, cluster, st, gpus, kw, lambda t: bool((t.time_s <= deadline_s).any()))
        if more:
            relax.append({"change": "gpus", "value": more, "why": f"{more} GPUs meet the deadline"})
        return "deadline", text, relax, fastest[:3]
    cheapest = _pick(s, "cost", fits & in_time)
    min_cost = s.cost_usd[cheapest[0]]
    text = (f"over budget: the cheapest layout meeting the deadline costs ${min_cost:,.0f} against ${budget_usd:,.0f}")
    relax.append({"change": "budget_usd", "value": float(min_cost), "why": "the cheapest layout's cost"})
    relax.append({"change": "tokens", "value": float(tokens * budget_usd / min_cost),
                  "why": "tokens the budget buys at that layout's rate"})
    return "budget", text, relax, cheapest[:3]


def _first_count(arch, cluster, st, gpus, kw, ok) -> int | None:
    """The smallest multiple 2^k * gpus (k >= 1, up to MAX_SCALE_UP) for which `ok(search)` holds."""
    for k in range(1, int(math.log2(MAX_SCALE_UP)) + 1):
        n = gpus * 2 ** k
        try:
            if ok(_search(arch, cluster, [n], st, **kw)):
                return n
        except RidgeplanError:
            return None
    return None
