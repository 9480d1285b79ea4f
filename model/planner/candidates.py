"""Candidate instance configurations and their SLO capacity, evaluated vectorized.

A candidate is (model, GPU type, layout, weight/KV precision, role). Its capacity for a request-size bucket is
the highest request rate one instance sustains with the SLO's percentile of TTFT and TPOT inside the targets:
- aggregated: continuous batching with chunked prefill, on a concurrency grid up to the engine's cap;
- prefill: an M/D/1 prefill server whose TTFT (queue + prefill + KV hand-off) meets the TTFT target;
- decode: decode-only iterations whose time per token meets the TPOT target.
All candidates of one model and pipeline depth are evaluated in one stacked pass (model.serving.stacked).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from model.lru import LRU
from model.serving.deployment import deployment, deployment_efficiency
from model.errors import RidgeplanError
from model.planner.request import PlanRequest
from model.serving.batching import concurrency_limits, decode_only_iteration, kv_capacity, steady_state
from model.serving.deployment import Deployment
from model.serving.disagg import DisaggPlan, kv_transfer_s
from model.serving.estimate import prefill_terms
from model.placement.layout import Layout
from model.engines import check_layout as check_engine_layout
from model.serving.policy import EnginePolicy, engine_policy
from model.serving.quality import precision_risk
from model.serving.queueing import mg1_wait_s, tpot_quantile_s, tpot_spread, ttft_quantile_s
from model.serving.stacked import StackedDeployment
from model.serving.workload import charged_context_tokens, mean_decode_context_tokens

GRID_POINTS = 16  # decode-pool concurrency grid per candidate and bucket
COARSE_POINTS, FINE_POINTS = 8, 5  # aggregated: coarse log grid, then a linear refinement


@dataclass(frozen=True)
class Candidate:
    model: str
    gpu: str
    deployment: Deployment
    role: str
    price_per_gpu_hour: float
    tdp_w: float

    @property
    def gpus(self) -> int:
        return self.deployment.layout.gpus

    @property
    def cost_per_hour(self) -> float:
        return self.gpus * self.price_per_gpu_hour

    @property
    def power_w(self) -> float:
        return self.gpus * self.tdp_w

    def label(self) -> str:
        p = self.deployment.precision
        return f"{self.gpu} {self.deployment.layout.label()} W{p.weights}/KV{p.kv} {self.role}"


WIDE_EP = (16, 32, 64, 72)  # expert-parallel groups beyond one 8-GPU node (NVL72 domains, or nodes over the NIC)
ATTENTION_TP = (1, 2, 4, 8)  # attention TP inside an attention-DP x EP layout


def layouts(deployment_domain: int, gpus_options, pp_options, moe_experts: set[int], *,
            scale_out: bool = False) -> list[Layout]:
    """Layouts of one instance.

    Every model: tp x pp = g GPUs inside one scale-up domain. MoE models also get the layouts engines serve them
    with: attention TP t x attention-DP g / t with the experts split g ways (whole experts, MoE-TP 1), for g in
    the request's sizes and the wide-EP sizes that fit the scale-up domain (an NVL72 rack is one) or, with a
    scale-out link, span nodes; redundant experts are added when g does not divide the expert count (EPLB)."""
    out: list[Layout] = []
    for g in gpus_options:
        if g > deployment_domain:
            continue
        for pp in pp_options:
            if g % pp == 0:
                out.append(Layout(tp=g // pp, pp=pp))
    if not moe_experts:
        return out
    sizes = sorted({g for g in gpus_options if 1 < g <= deployment_domain}
                   | {g for g in WIDE_EP if g <= deployment_domain or (scale_out and g <= 32)})
    for g in sizes:
        redundant = max((-e) % g for e in moe_experts)
        if redundant > min(moe_experts) // 4:
            continue  # more copies than EPLB deployments hold
        for t in ATTENTION_TP:
            if g % t == 0 and (t < g or g <= 8):
                out.append(Layout(tp=t, attention_dp=g // t, ep=g, redundant_experts=redundant))
    return out


def candidate_precisions(request: PlanRequest, device, arch) -> list[tuple[str, str]]:
    """The request's (weights, KV) pairs plus the 4-bit float paths the GPU runs natively: NVFP4 on GPUs with FP4
    tensor cores, MXFP4 for checkpoints published in it (gpt-oss); each with an FP8 KV cache."""
    out = list(request.precisions)
    if device.supports("fp4"):
        extra = [("nvfp4", "fp8")]
        if str((arch.quantization or {}).get("quant_method", "")).lower() == "mxfp4":
            extra.append(("mxfp4", "fp8"))
        out += [p for p in extra if p not in out]
    return out


def enumerate_candidates(request: PlanRequest, progress: Callable[[str], None] | None = None) -> tuple[list[Candidate], list[str]]:
    """Every valid configuration; also the reasons configurations were dropped (for explanations)."""
    cands: list[Candidate] = []
    dropped: list[str] = []
    for t in request.traffic:
        for opt in request.gpus:
            dev = opt.device
            domain = dev.scale_up.max_domain_devices if dev.scale_up and dev.scale_up.max_domain_devices else 8
            from model.architecture.catalogue import load_architecture

            arch = load_architecture(t.model)
            experts = {g.mlp.num_experts for g in arch.groups if g.mlp.kind == "moe"}
            eff = deployment_efficiency(dev)  # read once per GPU type and plan (calibration files may change)
            for lay in layouts(domain, request.gpus_per_instance, request.pipeline_depths, experts,
                               scale_out=dev.scale_out is not None):
                for w, kv in candidate_precisions(request, dev, arch):
                    try:
                        # the engine's layout rule applies; its kernel calibration does not yet (the planner's
                        # capacities and claim checks are still on the hand-set efficiency classes)
                        d = _candidate_deployment(arch, dev, eff, w, kv, lay)
                        check_engine_layout(request.engine, tp=lay.tp, pp=lay.pp, attention_dp=d.layout.attention_dp,
                                            moe_tp=d.layout.moe_tp, moe_ep=d.layout.ep, is_moe=arch.is_moe)
                    except RidgeplanError as err:
                        dropped.append(f"{opt.gpu} {lay.label()} W{w}/KV{kv}: {err.one_line()}")
                        continue
                    if precision_risk(d.precision) > request.max_accuracy_risk:
                        dropped.append(f"{opt.gpu} W{w}/KV{kv}: accuracy risk above {request.max_accuracy_risk}")
                        continue
                    for role in request.roles:
                        if role == "aggregated" or lay.attention_dp == 1:  # disaggregated pools: plain TP/PP
                            cands.append(Candidate(t.model, opt.gpu, d, role, opt.price,
                                                   dev.power.tdp_w if dev.power else 0.0))
            if progress:
                progress(f"{t.model} on {opt.gpu}")
    return cands, dropped


BUILT_DEPLOYMENTS = 4096  # candidate deployments kept per process (_candidate_deployment)
_built: LRU[tuple, Deployment] = LRU(BUILT_DEPLOYMENTS)


def _candidate_deployment(arch, dev, eff, weights: str, kv: str, lay: Layout) -> Deployment:
    """`deployment(...)` of one candidate; the same object again while the model and device (the same loaded
    objects), the efficiency set (re-read each plan), the precision and the layout are the same. A warm plan then
    keeps each deployment's worked-out context, symbols and stacked columns instead of rebuilding them."""
    key = (id(arch), id(dev), weights, kv, lay)
    hit = _built.get(key)
    if hit is not None and hit.arch is arch and hit.device is dev and hit.efficiency == eff:
        return hit
    d = deployment(arch, dev, weights=weights, kv=kv, tp=lay.tp, pp=lay.pp, ep=lay.ep, dp=lay.dp,
                   attention_dp=lay.attention_dp, moe_tp=lay.moe_tp, redundant_experts=lay.redundant_experts)
    _built.put(key, d)
    return d


@dataclass(frozen=True)
class Capacities:
    """Per candidate (rows) and bucket (columns): requests/s one instance carries within the SLO."""

    rate_per_s: np.ndarray  # (C, B)
    batch: np.ndarray  # (C, B) sequences in flight at that rate (for max_num_seqs in launch commands)
    min_ttft_s: np.ndarray  # (C, B) TTFT at the lightest load (inf when nothing fits)
    min_tpot_s: np.ndarray  # (C, B) TPOT at the lightest load
    fits: np.ndarray  # (C, B) at least one sequence fits in memory


def capacities(cands: list[Candidate], inputs: np.ndarray, outputs: np.ndarray, request: PlanRequest,
               policy: EnginePolicy | None = None) -> Capacities:
    """SLO capacity of every candidate for every bucket (inputs/outputs: per-bucket mean lengths)."""
    policy = policy or engine_policy(request.engine)
    n_c, n_b = len(cands), inputs.size
    out = {k: np.zeros((n_c, n_b)) for k in ("rate", "batch")}
    min_ttft = np.full((n_c, n_b), np.inf)
    min_tpot = np.full((n_c, n_b), np.inf)
    fits = np.zeros((n_c, n_b), dtype=bool)
    groups: dict[tuple, list[int]] = {}
    for k, c in enumerate(cands):
        groups.setdefault((c.model, c.deployment.layout.pp, c.role), []).append(k)
    for (_, _, role), rows in groups.items():
        # a configuration that cannot hold one sequence of the shortest prompt fits no bucket in any role (every
        # role charges at least the prompt): it keeps capacity 0 and is left out of the stacked evaluation
        holds = kv_capacity(StackedDeployment.repeat([cands[k].deployment for k in rows], 1), policy,
                            np.full(len(rows), float(inputs.min()))).max_sequences >= 1
        rows = [k for k, ok in zip(rows, holds) if ok]
        if not rows:
            continue
        fn = {"aggregated": _aggregated, "prefill": _prefill, "decode": _decode}[role]
        rate, batch, t0, p0, fit = fn([cands[k].deployment for k in rows], inputs, outputs, request, policy)
        out["rate"][rows], out["batch"][rows] = rate, batch
        min_ttft[rows], min_tpot[rows], fits[rows] = t0, p0, fit
    return Capacities(out["rate"], out["batch"], min_ttft, min_tpot, fits)


CACHED_CALLS = 8  # capacity evaluations remembered per process (cached_capacities)
_remembered: LRU[tuple, tuple[tuple, Capacities]] = LRU(CACHED_CALLS)


def cached_capacities(cands: list[Candidate], inputs: np.ndarray, outputs: np.ndarray,
                      request: PlanRequest) -> Capacities:
    """`capacities`, remembered for the last CACHED_CALLS evaluations in this process. A capacity depends only on
    the deployment, role, bucket lengths, SLO, engine and KV placement, never on the rate: re-planning the same
    traffic shape (another rate, budget, availability or GPU price; the app re-planning as a slider moves) reuses
    it. A hit needs all of those equal; deployments and the engine policy are compared by value (deployments are
    rebuilt for every plan)."""
    key = (tuple((c.model, c.role) for c in cands), inputs.tobytes(), outputs.tobytes(), request.slo,
           request.engine, request.kv_placement)
    state = (tuple(c.deployment for c in cands), engine_policy(request.engine))
    hit = _remembered.get(key)
    if hit is not None and hit[0] == state:
        return hit[1]
    caps = capacities(cands, inputs, outputs, request, state[1])
    _remembered.put(key, (state, caps))
    return caps
    caps = capacities(cands, inputs, outputs, request, state[1])
    _remembered.append((key, state, caps))
    del _remembered[:-CACHED_CALLS]
    return caps


def _targets(request: PlanRequest) -> tuple[float, float, float]:
    slo = request.slo
    return (slo.ttft_s if slo.ttft_s is not None else np.inf, slo.tpot_s if slo.tpot_s is not None else np.inf,
            slo.attainment)


def _log_grid(cap: np.ndarray, points: int) -> np.ndarray:
    """(len(cap), points) concurrencies from 1 to each cap, evenly spaced in log."""
    return np.maximum(1.0, np.round(np.maximum(cap, 1)[:, None] ** np.linspace(0, 1, points)[None, :]))


def _replicas(deps: list[Deployment], index: np.ndarray) -> np.ndarray:
    return np.array([d.layout.batch_ranks for d in deps], dtype=float)[index]


def _aggregated_points(deps, n_b, i0, o0, grid, request, policy):
    """(rate, SLO met, TTFT, TPOT) at every concurrency of `grid` (rows: candidate x bucket)."""
    ttft_max, tpot_max, a = _targets(request)
    g = grid.shape[1]
    sd = StackedDeployment.repeat(deps, n_b * g)
    i, o, n = np.repeat(i0, g), np.repeat(o0, g), grid.ravel()
    st = steady_state(sd, policy, i, o, n)
    t_it = st.iteration.time_s
    ctx = mean_decode_context_tokens(i, o)
    t_dec = decode_only_iteration(sd, policy, st.decode_seqs, ctx).time_s
    latency, service = prefill_terms(sd, policy, st.decode_seqs, ctx, t_it, i)
    lam = st.requests_per_s
    rho = lam * service
    wq = mg1_wait_s(lam, service, service**2)  # M/D/1: prefill service is deterministic per bucket
    ttft = ttft_quantile_s(a, latency, 0.5 * t_it, rho, wq)
    o_dec = np.maximum(o - 1, 1)
    arrivals, per = tpot_spread(lam, t_it, t_dec, 1.0, o_dec)
    tpot = tpot_quantile_s(a, t_dec, arrivals, per, o_dec)
    ok = (ttft <= ttft_max) & (tpot <= tpot_max) & (rho < 1)
    shape = grid.shape
    return lam.reshape(shape), ok.reshape(shape), ttft.reshape(shape), tpot.reshape(shape)


def _aggregated(deps, inputs, outputs, request, policy):
    """Capacity on a coarse log grid of concurrency, then refined between the best feasible point and the
    next one (a coarse grid alone would understate capacity by up to a grid step)."""
    n_c, n_b = len(deps), inputs.size
    base = StackedDeployment.repeat(deps, n_b)
    i0, o0 = np.tile(inputs, n_c), np.tile(outputs, n_c)
    limits = concurrency_limits(base, policy, i0, o0)
    cap = np.min(np.stack(list(limits.values())), axis=0)  # (C*B,)
    fit = cap >= 1
    coarse = _log_grid(cap, COARSE_POINTS)
    lam, ok, ttft, tpot = _aggregated_points(deps, n_b, i0, o0, coarse, request, policy)
    ok &= fit[:, None]
    rows = np.arange(coarse.shape[0])
    best = np.where(ok.any(axis=1), np.where(ok, lam, -1).argmax(axis=1), 0)
    lo = coarse[rows, best]
    hi = coarse[rows, np.minimum(best + 1, COARSE_POINTS - 1)]
    fine = np.round(lo[:, None] + (hi - lo)[:, None] * np.linspace(0, 1, FINE_POINTS)[None, :])
    lam2, ok2, _, _ = _aggregated_points(deps, n_b, i0, o0, fine, request, policy)
    ok2 &= (fit & ok.any(axis=1))[:, None]
    all_lam = np.concatenate([np.where(ok, lam, 0.0), np.where(ok2, lam2, 0.0)], axis=1)
    all_n = np.concatenate([coarse, fine], axis=1)
    pick = all_lam.argmax(axis=1)
    mu = all_lam[rows, pick] * _replicas(deps, base.index)
    batch = all_n[rows, pick]
    t0 = np.where(fit, ttft[:, 0], np.inf)
    p0 = np.where(fit, tpot[:, 0], np.inf)
    return (mu.reshape(n_c, n_b), batch.reshape(n_c, n_b), t0.reshape(n_c, n_b), p0.reshape(n_c, n_b),
            fit.reshape(n_c, n_b))


def _prefill(deps, inputs, outputs, request, policy):
    ttft_max, _, a = _targets(request)
    n_c, n_b = len(deps), inputs.size
    sd = StackedDeployment.repeat(deps, n_b)
    i = np.tile(inputs, n_c)
    fit = kv_capacity(sd, policy, i).max_sequences >= 1
    latency, service = prefill_terms(sd, policy.with_(chunked_prefill=False), 0.0, 0.0, 0.0, i)
    transfer = np.concatenate([kv_transfer_s(DisaggPlan(d, 1, d, 1, placement=request.kv_placement), inputs)
                               for d in deps])
    fixed = latency + transfer
    # largest utilisation rho whose TTFT quantile stays within the target (the wait grows with rho)
    lo, hi = np.zeros_like(fixed), np.full_like(fixed, 0.999)
    for _ in range(40):
        mid = (lo + hi) / 2
        wq = mg1_wait_s(np.divide(mid, service, out=np.zeros_like(mid), where=service > 0), service, service**2)
        ok = ttft_quantile_s(a, fixed, 0.0, mid, wq) <= ttft_max
        lo, hi = np.where(ok, mid, lo), np.where(ok, hi, mid)
    feasible = (fixed <= ttft_max) & fit
    mu = np.where(feasible, lo / service, 0.0) * _replicas(deps, sd.index)
    t0 = np.where(fit, fixed, np.inf)
    return (mu.reshape(n_c, n_b), np.ones((n_c, n_b)), t0.reshape(n_c, n_b), np.zeros((n_c, n_b)),
            fit.reshape(n_c, n_b))


def _decode(deps, inputs, outputs, request, policy):
    _, tpot_max, _ = _targets(request)
    n_c, n_b, g = len(deps), inputs.size, GRID_POINTS
    base = StackedDeployment.repeat(deps, n_b)
    i0, o0 = np.tile(inputs, n_c), np.tile(outputs, n_c)
    ctx0 = charged_context_tokens(policy.admission, i0, o0)
    cap = np.minimum(kv_capacity(base, policy, ctx0).max_sequences, policy.max_num_seqs)
    fit = cap >= 1
    grid = _log_grid(cap, g)
    sd = StackedDeployment.repeat(deps, n_b * g)
    o = np.repeat(o0, g)
    ctx = mean_decode_context_tokens(np.repeat(i0, g), o)
    t = decode_only_iteration(sd, policy, grid.ravel(), ctx).time_s
    rate = grid.ravel() / (np.maximum(o - 1, 1) * t)
    ok = (t <= tpot_max) & np.repeat(fit, g)
    r = np.where(ok, rate, 0.0).reshape(-1, g)
    best = r.argmax(axis=1)
    rows = np.arange(r.shape[0])
    mu = r[rows, best] * _replicas(deps, base.index)
    p0 = np.where(fit, t.reshape(-1, g)[:, 0], np.inf)
    return (mu.reshape(n_c, n_b), grid[rows, best].reshape(n_c, n_b), np.zeros((n_c, n_b)),
            p0.reshape(n_c, n_b), fit.reshape(n_c, n_b))
