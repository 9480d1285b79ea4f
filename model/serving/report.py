"""One scenario, reported: the headline numbers, the memory bar, the prefill and decode steps at the operating
point with what bounds them, per-operator stacks, a context-length sweep and a side-by-side comparison.

These are the data shapes the calculator app and notebooks display; every number comes from the serving model
(`estimate`, `static_batch`, `Deployment.step`, `steady_state`), nothing is recomputed here beyond unit-free
bookkeeping (sums, shares, which term is largest).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from model.errors import RidgeplanError
from model.operators.symbols import DEFAULTS
from model.serving.batching import concurrency_limits, steady_state
from model.serving.breakdown import bound_table, op_table
from model.serving.deployment import Deployment, StepResult
from model.serving.estimate import SLO, ServingEstimate, estimate
from model.serving.policy import EnginePolicy, engine_policy
from model.serving.static import StaticEstimate, static_batch
from model.serving.sweep import cost_per_million_tokens_usd
from model.serving.workload import Workload
from model.serving.workload import mean_decode_context_tokens

Estimate = ServingEstimate | StaticEstimate
PHASES = ("prefill", "decode")
BOUND_PARTS = ("compute_s", "memory_s", "network_s", "latency_s", "pipeline_p2p_s", "overhead_s")


def run_scenario(d: Deployment, workload: Workload, policy: EnginePolicy | str = "vllm", slo: SLO | None = None,
                 batch: int | None = None) -> Estimate:
    """A static batch of `batch` prompts (fixed lengths: the workload's mean input and output) when `batch` is
    given, else continuous batching of `workload` under `policy`."""
    if batch is not None:
        lengths = workload.lengths
        return static_batch(d, batch, round(lengths.mean_input), round(lengths.mean_output))
    return estimate(d, workload, policy, slo)



def operating_batches(est: Estimate) -> tuple[int, int]:
    """(sequences in a prefill step, sequences in a decode step) at the estimate's operating point: the whole
    static batch for both, or one prompt and the steady state's decoding sequences under continuous batching
    (one of each when nothing fits)."""
    if isinstance(est, StaticEstimate):
        return est.batch, est.batch
    if not est.fits or est.state is None:
        return 1, 1
    return 1, max(round(float(est.state.decode_seqs[est.point])), 1)


def _lengths(est: Estimate) -> tuple[float, float, float]:
    if isinstance(est, StaticEstimate):
        return float(est.input_len), float(est.output_len), 0.0
    lengths = est.workload.lengths
    return lengths.mean_input, lengths.mean_output, est.workload.prefix_hit_rate


def phase_shapes(est: Estimate) -> dict[str, tuple[int, int, int]]:
    """(sequences, new tokens per sequence, cached tokens per sequence) of the prefill step (the prompt's
    uncached tokens on top of its cached prefix) and of the decode step at the mean decode context, with the
    batches of `operating_batches`."""
    i, o, hit = _lengths(est)
    prefill_batch, decode_batch = operating_batches(est)
    return {"prefill": (prefill_batch, max(round(i * (1 - hit)), 1), round(i * hit)),
            "decode": (decode_batch, 1, round(float(mean_decode_context_tokens(i, o))))}


def phase_steps(est: Estimate) -> dict[str, StepResult]:
    """The prefill and decode steps of `phase_shapes`, evaluated on the estimate's deployment."""
    d = est.deployment
    return {phase: d.step(b, t, c) for phase, (b, t, c) in phase_shapes(est).items()}


def phase_table(steps: Mapping[str, StepResult]) -> pd.DataFrame:
    """One row per phase: step seconds, seconds by bound (compute, memory, network, per-kernel latency,
    pipeline hand-offs, engine overhead) and the kernel bound with the most seconds."""
    rows = []
    for phase, step in steps.items():
        parts = bound_table(step)
        kernel_parts = {k: parts[k] for k in ("compute_s", "memory_s", "network_s", "latency_s")}
        rows.append({"phase": phase, "time_s": float(step.time_s[0]), **{k: parts[k] for k in BOUND_PARTS},
                     "bound": max(kernel_parts, key=kernel_parts.get).removesuffix("_s")})
    return pd.DataFrame(rows, columns=["phase", "time_s", *BOUND_PARTS, "bound"])


def bound_stack(steps: Mapping[str, StepResult]) -> pd.DataFrame:
    """Long form of `phase_table` for a stacked bar: phase, part (compute / memory / network / latency /
    pipeline_p2p / overhead), seconds."""
    table = phase_table(steps)
    long = table.melt(id_vars=["phase"], value_vars=list(BOUND_PARTS), var_name="part", value_name="seconds")
    long["part"] = long["part"].str.removesuffix("_s")
    return long[long["seconds"] > 0].reset_index(drop=True)


# operator families, in the order a layer runs them; each is one hue in the app's stacked bars
FAMILIES = ("embedding & head", "norms", "attention projections", "attention", "MLP", "MoE", "communication")
_ATTENTION_CORE = {"attention", "linear_attention", "short_conv"}
_ATTENTION_PROJ = {"qkv_proj", "q_a_proj", "q_b_proj", "kv_a_proj", "kv_b_proj", "o_proj", "in_proj_qkvz", "in_proj_ba",
                   "out_proj", "attn_gate", "rotary", "qk_norm", "qk_norm_sumsq", "q_a_norm", "kv_a_norm",
                   "gated_norm"}
_MOE = {"experts", "router", "topk_softmax"}
_HEAD = {"embedding", "position_embedding", "lm_head", "sampling"}


def operator_family(name: str, kind: str) -> str:
    """The family of an operator, one of FAMILIES: what a reader groups it with in a breakdown."""
    if kind == "collective" or name.endswith(("all_reduce", "all_gather", "all_to_all", "p2p")):
        return "communication"
    if name in _ATTENTION_CORE or kind in ("attention", "linear_attention"):
        return "attention"
    if name in _ATTENTION_PROJ:
        return "attention projections"
    if name in _MOE or name.startswith("shared_"):
        return "MoE"
    if name in _HEAD or kind == "embedding":
        return "embedding & head"
    if name.endswith("norm"):
        return "norms"
    return "MLP"  # gate_up_proj, up_proj, down_proj, act, fc1/fc2


def operator_stack(steps: Mapping[str, StepResult]) -> pd.DataFrame:
    """Every operator of every phase: phase, operator, kind, family (operator_family), time_s, share of the
    phase, bound (long form)."""
    frames = []
    for phase, step in steps.items():
        df = op_table(step)
        if df.empty:
            continue
        df = df[["operator", "kind", "time_s", "share", "bound", "flops", "bytes"]].copy()
        df.insert(0, "phase", phase)
        df.insert(3, "family", [operator_family(n, k) for n, k in zip(df["operator"], df["kind"])])
        frames.append(df)
    cols = ["phase", "operator", "kind", "family", "time_s", "share", "bound", "flops", "bytes"]
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=cols)


def headline(est: Estimate) -> dict[str, Any]:
    """The numbers a user reads first, under one set of keys for static and continuous batching:
    fits, ttft_s, tpot_s, output_tokens_per_s_per_gpu, output_tokens_per_s_per_user,
    usd_per_million_output_tokens, concurrency, max_concurrency, limited_by, sustainable, gpus, mode.
    Latencies and rates are None when the configuration does not fit."""
    d = est.deployment
    out: dict[str, Any] = {"fits": bool(est.fits), "gpus": d.layout.gpus if isinstance(est, ServingEstimate)
                           else d.layout.gpus_per_replica, "ttft_s": None, "tpot_s": None,
                           "output_tokens_per_s_per_gpu": None, "output_tokens_per_s_per_user": None,
                           "usd_per_million_output_tokens": None, "concurrency": None, "max_concurrency": None,
                           "limited_by": None, "sustainable": True}
    if isinstance(est, StaticEstimate):
        out["mode"] = "batch"
        out["concurrency"] = float(est.batch)
        if est.fits:
            cost = cost_per_million_tokens_usd(d, est.throughput_tokens_per_s or 0.0)
            out.update(ttft_s=est.ttft_s, tpot_s=est.tpot_s,
                       output_tokens_per_s_per_gpu=est.throughput_per_gpu_tokens_per_s,
                       output_tokens_per_s_per_user=est.tokens_per_s_per_user,
                       usd_per_million_output_tokens=None if np.isnan(cost) else float(cost))
        return out
    out["mode"] = est.workload.mode
    out["max_concurrency"] = float(est.max_concurrency)
    out["limited_by"] = est.concurrency_limit
    if est.fits and est.latency is not None and est.state is not None:
        lat = est.latency
        out.update(ttft_s=lat.ttft_mean_s, tpot_s=lat.tpot_mean_s,
                   output_tokens_per_s_per_gpu=est.output_tokens_per_s_per_gpu,
                   output_tokens_per_s_per_user=1.0 / lat.tpot_mean_s if lat.tpot_mean_s > 0 else None,
                   usd_per_million_output_tokens=est.cost_per_million_tokens_usd(),
                   concurrency=float(est.state.concurrency[est.point]), sustainable=bool(est.sustainable),
                   ttft_percentiles_s={f"p{round(p * 100)}": v for p, v in lat.ttft_s.items()},
                   tpot_percentiles_s={f"p{round(p * 100)}": v for p, v in lat.tpot_s.items()},
                   goodput_requests_per_s=(None if est.goodput_requests_per_s is None
                                           else est.goodput_requests_per_s * est.replicas))
    return out


def memory_segments(est: Estimate) -> pd.DataFrame:
    """Per-GPU memory as stacked segments against the device's capacity: weights, activations, engine reserve
    (CUDA graphs, communication buffers), KV in use, KV pool still free, and memory the engine leaves unused
    (its utilization fraction). When the configuration does not fit, `KV (one sequence)` is what the first
    sequence needs and the segments sum to more than the capacity. Columns: component, bytes, order,
    capacity_bytes, fits."""
    cap = est.deployment.capacity_bytes
    if isinstance(est, StaticEstimate):
        m = est.memory
        parts = [("weights", m.weights_bytes), ("activations", m.activation_bytes), ("KV cache", m.kv_cache_bytes),
                 ("free (usable)", max(m.usable_bytes - m.total_bytes, 0.0)),
                 ("not used by the engine", max(m.capacity_bytes - m.usable_bytes, 0.0))]
    else:
        m = est.memory
        w, a, r = m["weights_bytes"], m["activation_bytes"], m["reserved_bytes"]
        pool, per_seq = m["kv_pool_bytes"], m["kv_bytes_per_sequence"]
        engine_total = w + a + r + pool  # what the engine's memory policy hands out (pool 0 when nothing fits)
        if est.fits and est.state is not None:
            used = min(float(est.state.concurrency[est.point]) * per_seq, pool)
            kv = [("KV cache (in use)", used), ("KV pool (free)", max(pool - used, 0.0))]
        else:
            kv = [("KV (one sequence)", per_seq)]
        parts = [("weights", w), ("activations", a), ("engine reserve", r), *kv,
                 ("not used by the engine", max(cap - engine_total, 0.0))]
    df = pd.DataFrame([{"component": c, "bytes": float(b), "order": k} for k, (c, b) in enumerate(parts)])
    df["capacity_bytes"] = cap
    df["fits"] = bool(est.fits)
    return df


def context_sweep(d: Deployment, policy: EnginePolicy | str, output_len: float, concurrency: float,
                  contexts=None, points: int = 16, max_context_tokens: float | None = None) -> pd.DataFrame:
    """Continuous batching at `concurrency` sequences for prompts of each length in `contexts` (default: a log
    grid from 128 tokens to the model's context window). Where the KV pool cannot hold `concurrency` sequences
    the engine runs fewer (`scheduled_concurrency`, `limited_by`); where none fits, `fits` is False and the
    latency and rate columns are NaN."""
    policy = engine_policy(policy)
    if not concurrency >= 1:
        raise RidgeplanError("concurrency", f"must be >= 1, got {concurrency}")
    if contexts is None:
        top = max_context_tokens or float(d.arch.max_position_embeddings or 131072)
        contexts = np.unique(np.round(np.geomspace(128, max(top, 256), points)))
    ctx = np.atleast_1d(np.asarray(contexts, dtype=float))
    if np.any(ctx < 1):
        raise RidgeplanError("context", "every context length must be >= 1 token")
    s = steady_state(d, policy, ctx, float(output_len), np.full(ctx.shape, float(concurrency)))
    fits = s.concurrency >= 1
    tpot = np.where(fits, s.tpot_s, np.nan)
    per_gpu = np.where(fits, s.output_tokens_per_s / d.layout.gpus_per_replica, np.nan)
    return pd.DataFrame({"context_tokens": ctx, "concurrency": float(concurrency),
                         "scheduled_concurrency": s.concurrency, "limited_by": s.limit, "fits": fits,
                         "tpot_s": tpot, "output_tokens_per_s_per_gpu": per_gpu,
                         "output_tokens_per_s_per_user": np.where(fits, 1.0 / tpot, np.nan)})


def first_true(predicate: Callable[[int], bool], lo: int, hi: int) -> int | None:
    """The smallest integer n in (lo, hi] with predicate(n), for a predicate that is False up to some n and True
    from there on (bisection: about log2(hi - lo) calls); None when predicate(hi) is False. predicate(lo) is
    taken to be False."""
    if hi <= lo or not predicate(hi):
        return None
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if predicate(mid):
            hi = mid
        else:
            lo = mid
    return hi


def context_limit(d: Deployment, policy: EnginePolicy | str, output_len: float, concurrency: float,
                  max_context_tokens: float | None = None) -> dict[str, Any] | None:
    """The exact prompt length from which the engine cannot hold `concurrency` sequences (the same caps as
    `context_sweep`'s scheduled_concurrency: KV pool, max_num_seqs, token budget), found by bisection on
    `concurrency_limits`: {'context_tokens': the first such prompt length, 'sequences': how many it holds
    there, 'limited_by': which cap}; None when every prompt up to `max_context_tokens` (default: the model's
    context window) keeps `concurrency` in flight, or when not even a 1-token prompt does."""
    policy = engine_policy(policy)
    top = int(max_context_tokens or d.arch.max_position_embeddings or 131072)

    def caps(prompt: int) -> dict[str, np.ndarray]:
        return concurrency_limits(d, policy, float(prompt), float(output_len))

    def short(prompt: int) -> bool:
        return float(min(v.min() for v in caps(prompt).values())) < concurrency

    if short(1):
        return None
    first = first_true(short, 1, top)
    if first is None:
        return None
    limits = {k: float(v.min()) for k, v in caps(first).items()}
    which = min(limits, key=limits.get)
    return {"context_tokens": first, "sequences": limits[which], "limited_by": which}


def largest_static_batch(d: Deployment, context_tokens: float, max_batch: int = 1 << 20) -> int:
    """The largest static batch whose decode step at `context_tokens` fits in usable memory (weights, KV and
    activations, as `batch_sweep`'s `fits`), by bisection; 0 when not even one sequence fits."""
    def too_big(b: int) -> bool:
        mem = d.step(float(b), 1, float(context_tokens)).memory
        total = mem.weights_bytes + mem.kv_cache_bytes + mem.activation_bytes
        return bool(np.asarray(total).max() > d.usable_bytes)

    if too_big(1):
        return 0
    first = first_true(too_big, 1, max_batch)
    return max_batch if first is None else first - 1


def batch_sweep(d: Deployment, context_tokens: float, batches=None, points: int = 16) -> pd.DataFrame:
    """Decode steps of a static batch at each batch size (default: a log grid from 1 to 1024) with every
    sequence at `context_tokens`: TPOT, output tokens/s per GPU and per user, and whether the batch's weights,
    KV and activations fit in usable memory."""
    if batches is None:
        batches = np.unique(np.round(np.geomspace(1, 1024, points)))
    b = np.atleast_1d(np.asarray(batches, dtype=float))
    if np.any(b < 1):
        raise RidgeplanError("batch", "every batch must be >= 1")
    step = d.step(b, 1, float(context_tokens))
    mem = step.memory
    total = mem.weights_bytes + mem.kv_cache_bytes + mem.activation_bytes
    tpot = step.time_s
    return pd.DataFrame({"batch": b, "context_tokens": float(context_tokens), "tpot_s": tpot,
                         "output_tokens_per_s_per_gpu": b / tpot / d.layout.gpus_per_replica,
                         "output_tokens_per_s_per_user": 1.0 / tpot, "memory_bytes": total,
                         "fits": total <= d.usable_bytes})


def compare(variants: Sequence[Mapping[str, Any]], make: Callable[..., Deployment], workload: Workload,
            policy: EnginePolicy | str = "vllm", slo: SLO | None = None, batch: int | None = None) -> pd.DataFrame:
    """One row per variant (keyword arguments of `make`, e.g. `model.serving.deployment.deployment`, plus a `label`): the
    `headline` numbers, or the one-line error of a variant that cannot be built (an unsupported dtype, a layout
    that does not divide the heads). Columns: label, error, and the headline keys."""
    rows = []
    for v in variants:
        kwargs = {k: val for k, val in v.items() if k != "label"}
        label = str(v.get("label") or ", ".join(f"{k}={val}" for k, val in kwargs.items()))
        try:
            est = run_scenario(make(**kwargs), workload, policy, slo, batch)
        except RidgeplanError as err:
            rows.append({"label": label, "error": err.one_line(), "fits": False})
            continue
        h = headline(est)
        h.pop("ttft_percentiles_s", None)
        h.pop("tpot_percentiles_s", None)
        rows.append({"label": label, "error": "", **h})
    return pd.DataFrame(rows)


def formula_values(d: Deployment, batch: float, new_tokens: float, context: float) -> dict[str, float]:
    """Values of every formula symbol for one step of `d`: the deployment's bytes per element and parallel
    degrees, and the step's batch (B), new tokens (T) and cached context (C)."""
    return {**DEFAULTS, **d.symbols(), "B": float(batch), "T": float(new_tokens), "C": float(context)}


def fit_summary(est: Estimate) -> str:
    """One sentence on memory per GPU: what is used of what is usable, or the shortfall."""
    gb = 1e9
    if isinstance(est, StaticEstimate):
        return est.memory.summary()
    m = est.memory
    fixed = m["weights_bytes"] + m["activation_bytes"] + m["reserved_bytes"]
    if est.fits:
        return (f"fits: weights, activations and engine reserve take {fixed / gb:.2f} GB per GPU, leaving a "
                f"{m['kv_pool_bytes'] / gb:.2f} GB KV pool ({m['kv_bytes_per_sequence'] / gb:.3f} GB per sequence, "
                f"up to {est.max_concurrency:,.0f} sequences, limited by {est.concurrency_limit})")
    return (f"DOES NOT FIT: weights, activations and engine reserve take {fixed / gb:.2f} GB per GPU; the KV pool "
            f"left is {m['kv_pool_bytes'] / gb:.2f} GB but one sequence needs {m['kv_bytes_per_sequence'] / gb:.3f} GB "
            f"(short by {m['shortfall_bytes'] / gb:.2f} GB): add GPUs (TP/PP), quantize, or shorten the context")
