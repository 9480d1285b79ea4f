"""Continuous batching: mixed prefill/decode iterations, KV capacity, and the steady state of an engine.

An iteration runs the linear layers once over every token scheduled in it (decodes plus prefill chunk), and
attention per sequence over its own context. In steady state at concurrency N (Little's law):
- decode sequences per iteration  N_dec = N x (O - 1) / (O - 1 + ceil(I / chunk))
- prefill tokens per iteration     P = N_dec x I / (O - 1)        (new prompts replace finished ones)
- with chunked prefill the iteration carries N_dec + P <= token budget tokens, so
  N_dec <= budget x (O - 1) / (O - 1 + I)                          (the budget limit)
- requests complete at X = N_dec / ((O - 1) x t_iteration); output tokens/s = X x O.
Without chunked prefill (prefill-prioritising) prompts run in their own iterations, so each cycle costs a
decode step plus a prefill step of P tokens, and decodes stall while it runs.
With pipeline parallelism the batch is split into pp micro-batches that fill the pipeline: one round
(every sequence advances a token) costs pp x the slowest stage of a micro-batch.
Attention data-parallel ranks meet at every MoE layer, so an iteration lasts as long as the busiest rank's:
when a rank starts a prompt in a share ps < 1 of its iterations, one of `attention_dp` ranks does so in
1 - (1 - ps)^attention_dp of them, and the iteration is timed with that rank's prefill chunk.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from model.serving.deployment import Deployment
from model.serving.protocol import CostedDeployment
from model.serving.policy import EnginePolicy
from model.serving.speculation_offload import Offload, Speculation, speculative_step_s
from model.serving.workload import charged_context_tokens, mean_decode_context_tokens

_TINY = 1e-9
# operators whose load is the whole MoE group's (every attention-DP rank's tokens), not one rank's
GROUP_LEVEL_OPS = ("experts", "moe_all_gather", "moe_reduce_scatter")


def _arr(x) -> np.ndarray:
    return np.asarray(x, dtype=float)


@dataclass(frozen=True)
class IterationCost:
    """Seconds of one engine iteration (vectorized over scenarios), split into its parts."""

    time_s: np.ndarray  # wall time of the iteration (a full pipeline round with PP)
    linear_s: np.ndarray  # GPU seconds of the token-parallel operators (GEMMs, norms, collectives)
    decode_attention_s: np.ndarray
    prefill_attention_s: np.ndarray
    overhead_s: np.ndarray  # engine overhead and pipeline hand-offs
    draft_s: np.ndarray | float = 0.0  # speculative draft steps
    transfer_s: np.ndarray | float = 0.0  # offload transfers (or in-place attention on the tier)


def iteration_cost(d: CostedDeployment, decode_seqs, decode_context, prefill_tokens, prefill_seqs, prefill_context,
                   *, separate_prefill: bool = False, step_overhead_s: float | None = None,
                   decode_tokens: float = 1.0) -> IterationCost:
    """Cost of an iteration with `decode_seqs` decoding sequences at `decode_context` cached tokens and a
    prefill of `prefill_tokens` tokens from `prefill_seqs` sequences at `prefill_context` cached tokens.

    `separate_prefill`: the prefill runs as its own step (prefill-prioritising schedulers), so the weights are
    read twice and the engine overhead is paid twice. `decode_tokens`: tokens each decoding sequence runs
    through the model (k + 1 when verifying k speculated tokens). All arguments broadcast as numpy arrays.
    """
    nd, cd, pt, ps, pc = np.broadcast_arrays(_arr(decode_seqs), _arr(decode_context), _arr(prefill_tokens),
                                             _arr(prefill_seqs), _arr(prefill_context))
    pt_mean, ps_mean = pt, ps
    pt, ps = synchronized_prefill(pt, ps, d.layout.attention_dp)
    pp = d.layout.pp
    overhead = d.eff.step_overhead_s if step_overhead_s is None else step_overhead_s
    # a full pipeline round = pp micro-batches of 1/pp of the work through the slowest stage
    nd_mb, pt_mb, ps_mb = nd / pp, pt / pp, ps / pp
    mask = d.per_sequence_ops[:, None]
    has_dec, has_pf = nd_mb > _TINY, pt_mb > _TINY
    q = float(decode_tokens)
    n_ops = len(d.graph.ops)
    zeros = np.zeros((n_ops, nd.size))
    per_seq, token_parallel = mask[:, 0], ~mask[:, 0]

    def exposed_s(rows, *args, **kw):
        """d.op_seconds' exposed seconds with only `rows` evaluated, zero on the other operators (which the
        caller never reads: attention comes from per-sequence steps, everything else from token-parallel ones)."""
        out = np.zeros((n_ops, nd.size))
        if rows.any():
            out[rows] = d.op_seconds(*args, rows=rows, **kw)[2]
        return out

    if has_dec.any():
        dec = exposed_s(per_seq, np.maximum(nd_mb, _TINY), q, cd, n_logit=q)
        dec = np.where(has_dec, dec, 0.0)
    else:
        dec = zeros
    if has_pf.any():
        chunk = np.where(has_pf, pt_mb / np.maximum(ps_mb, _TINY), 1.0)
        pf = exposed_s(per_seq, np.maximum(ps_mb, _TINY), chunk, pc)
        pf = np.where(has_pf, pf, 0.0)
    else:
        pf = zeros

    def linear_ops(pt_mb, ps_mb):
        if separate_prefill:
            lin_d = exposed_s(token_parallel, 1.0, np.maximum(nd_mb * q, _TINY), 0.0, n_logit=np.maximum(nd_mb * q, _TINY))
            lin_p = exposed_s(token_parallel, 1.0, np.maximum(pt_mb, _TINY), 0.0, n_logit=np.maximum(ps_mb, _TINY))
            return np.where(has_dec, lin_d, 0.0) + np.where(pt_mb > _TINY, lin_p, 0.0)
        total = np.maximum(nd_mb * q + pt_mb, _TINY)
        return exposed_s(token_parallel, 1.0, total, 0.0, n_logit=np.maximum(nd_mb * q + ps_mb, _TINY))

    lin = linear_ops(pt_mb, ps_mb)
    if np.any(pt != pt_mean):  # the experts and the attention-DP gathers see every rank's mean load
        shared = np.array([op.name in GROUP_LEVEL_OPS for op in d.graph.ops])[:, None]
        lin = np.where(shared, linear_ops(pt_mean / pp, ps_mean / pp), lin)
    steps = (has_dec.astype(float) + has_pf.astype(float)) if separate_prefill else np.ones_like(nd)
    handoff_tokens = nd_mb * q + pt_mb
    exposed = np.where(mask, dec + pf, lin)
    stage = d.counts @ exposed  # (pp, S)
    p2p = d.p2p_seconds(handoff_tokens) * steps if pp > 1 else np.zeros_like(nd)
    round_s = pp * (stage.max(axis=0) + p2p) + overhead * steps
    counts_total = d.counts.sum(axis=0)
    linear = counts_total @ np.where(mask, 0.0, lin)
    return IterationCost(round_s, pp * linear, pp * (counts_total @ np.where(mask, dec, 0.0)),
                         pp * (counts_total @ np.where(mask, pf, 0.0)), pp * p2p + overhead * steps)


def synchronized_prefill(prefill_tokens, prefill_seqs, attention_dp) -> tuple[np.ndarray, np.ndarray]:
    """(tokens, sequences) of prefill that time an iteration of `attention_dp` ranks synchronized by the MoE
    layers: the chunk of pt / ps tokens, in a share 1 - (1 - ps)^A of iterations (unchanged when ps >= 1)."""
    pt, ps = _arr(prefill_tokens), _arr(prefill_seqs)
    if np.all(_arr(attention_dp) <= 1):
        return pt, ps
    share = np.where(ps < 1, 1 - (1 - np.clip(ps, 0, 1)) ** attention_dp, ps)
    chunk = pt / np.maximum(ps, _TINY)
    return np.where(ps > _TINY, chunk * share, pt), np.where(ps > _TINY, share, ps)


# ---------------------------------------------------------------------------------------------------------
# memory capacity

@dataclass(frozen=True)
class KVCapacity:
    """Per-GPU memory accounting, one value per scenario."""

    weights_bytes: np.ndarray  # per GPU, fullest stage
    activation_bytes: np.ndarray  # workspace at the token budget
    reserved_bytes: float  # CUDA graphs, NCCL buffers
    kv_pool_bytes: np.ndarray  # left for the KV cache on the binding stage (can be negative)
    kv_bytes_per_sequence: np.ndarray  # per GPU on the binding stage, at the context asked for
    max_sequences: np.ndarray  # sequences whose KV fits (0 when nothing fits)

    @property
    def fits(self) -> np.ndarray:
        return self.max_sequences >= 1


def kv_capacity(d: CostedDeployment, policy: EnginePolicy, context_tokens, offload: Offload | None = None,
                speculation: Speculation | None = None) -> KVCapacity:
    """How many sequences of `context_tokens` cached tokens fit in the KV pool (paged, block-rounded).

    Offloaded weights or experts free GPU memory for the pool; offloaded KV keeps only (1 - fraction) of each
    sequence on the GPU, and the tier's capacity caps the rest. Vectorized over contexts (and over stacked
    deployments, see model.serving.stacked)."""
    ctx = np.atleast_1d(_arr(context_tokens))
    blk = policy.block_size
    rounded = np.ceil(np.maximum(ctx, 1) / blk) * blk
    ops = d.graph.evaluate({**d.symbols(), "B": 1.0, "T": 1.0, "C": rounded - 1})
    weights_stage = d.counts @ ops.resident_bytes  # (pp, S)
    kv_stage = d.counts @ ops.cache_bytes  # (pp, S)
    if d.kv_residual_tokens:
        # the residual window is stored in 16 bits instead of the compressed format
        compressed = d.symbols()["b_kv"]
        window = np.minimum(rounded, d.kv_residual_tokens)
        per_token = kv_stage / np.maximum(rounded, 1)
        kv_stage = kv_stage + per_token * window * (2.0 / compressed - 1)
    tier_seqs = np.inf
    if offload is not None and offload.target == "weights":
        weights_stage = weights_stage * (1 - offload.fraction)
    elif offload is not None and offload.target == "experts":
        expert_rows = np.array([op.weight_role == "expert" for op in ops.ops])
        weights_stage = weights_stage - offload.fraction * (d.counts[:, expert_rows] @ ops.resident_bytes[expert_rows])
    elif offload is not None and offload.target == "kv":
        tier = offload.tier_device
        tier_seqs = np.floor(tier.memory.capacity_bytes * offload.devices * 0.9
                             / np.maximum(offload.fraction * kv_stage.sum(axis=0) * d.layout.gpus_per_replica, 1))
        kv_stage = kv_stage * (1 - offload.fraction)
    if getattr(d, "mtp_layers", 0):  # MTP modules live on the last stage with one more layer of KV each
        from model.serving.mtp import mtp_cache_rows, mtp_resident_bytes

        weights_stage[-1] = weights_stage[-1] + mtp_resident_bytes(d)
        kv_stage[-1] = kv_stage[-1] + d.mtp_layers * ops.cache_bytes[mtp_cache_rows(d)].sum(axis=0)
    if speculation is not None and speculation.draft_model is not None:
        # a separate draft model shares the GPUs: its weights and its own KV cache per sequence
        draft_w, draft_kv = draft_memory_bytes(d, speculation, rounded)
        weights_stage = weights_stage + draft_w
        kv_stage = kv_stage + draft_kv * rounded
    work = d.graph.evaluate({**d.symbols(), "B": 1.0, "T": float(policy.max_num_batched_tokens), "C": 0.0})
    act = work.act_bytes.max(axis=0)  # (S,) the largest live activation set of a full-budget step
    total = d.capacity_bytes
    reserved = policy.cuda_graph_bytes
    if policy.memory_mode == "fraction_of_total":
        pool = policy.memory_fraction * total - weights_stage - act - reserved
    else:
        pool = policy.memory_fraction * (total - weights_stage - act - reserved)
    with np.errstate(divide="ignore", invalid="ignore"):
        # a stage whose weights and activations already overflow holds no sequence, even with all KV offloaded
        per_stage = np.floor(np.where(pool < 0, 0.0, np.where(kv_stage > 0, pool / kv_stage, np.inf)))
    binding = np.argmin(per_stage, axis=0)
    cols = np.arange(per_stage.shape[1])
    max_seq = np.maximum(np.minimum(per_stage[binding, cols], tier_seqs), 0)
    worst_w = np.argmax(weights_stage, axis=0)
    return KVCapacity(weights_stage[worst_w, cols], np.broadcast_to(act, cols.shape), reserved,
                      pool.min(axis=0), kv_stage[binding, cols], max_seq)


# ---------------------------------------------------------------------------------------------------------
# steady state

@dataclass(frozen=True)
class SteadyState:
    """Continuous batching in steady state, one value per scenario."""

    concurrency: np.ndarray  # sequences in flight actually scheduled
    decode_seqs: np.ndarray
    prefill_tokens_per_iter: np.ndarray
    iteration: IterationCost
    requests_per_s: np.ndarray
    output_tokens_per_s: np.ndarray
    limit: np.ndarray  # what capped the concurrency: asked | kv | max_num_seqs | token_budget
    prefill_iterations: np.ndarray  # iterations a prompt needs (chunks)
    tokens_per_iteration: float = 1.0  # tokens each decoding sequence gains per iteration (speculation)
    preempted_fraction: np.ndarray | float = 0.0  # requests preempted (and recomputed) once because the pool ran out

    @property
    def tpot_s(self) -> np.ndarray:
        return self.iteration.time_s / self.tokens_per_iteration


def concurrency_limits(d: CostedDeployment, policy: EnginePolicy, input_len, output_len, offload: Offload | None = None,
                       tokens_per_decode_step: float = 1.0,
                       speculation: Speculation | None = None) -> dict[str, np.ndarray]:
    """The caps on sequences in flight: KV memory (at the mean context I + O/2, or the full I + O when the engine
    reserves whole requests), max_num_seqs, and the token budget."""
    i, o = np.broadcast_arrays(_arr(input_len), _arr(output_len))
    cap = kv_capacity(d, policy, charged_context_tokens(policy.admission, i, o), offload, speculation)
    out = {"kv": cap.max_sequences.reshape(i.shape), "max_num_seqs": np.full(i.shape, float(policy.max_num_seqs))}
    if policy.chunked_prefill:
        # decodes (q tokens each) plus the prefill that keeps them fed must fit the budget:
        # N_dec q + N_dec I / steps <= budget, with steps = (O - 1) / q decode iterations per request
        q = tokens_per_decode_step
        steps = np.maximum(o - 1, 1) / q
        dec_cap = policy.max_num_batched_tokens / (q + i / steps)
        chunks = np.ceil(i / policy.max_num_batched_tokens)
        out["token_budget"] = np.floor(dec_cap * (steps + chunks) / steps)
    return out


def steady_state(d: CostedDeployment, policy: EnginePolicy, input_len, output_len, concurrency=None,
                 prefix_hit_rate: float = 0.0, speculation: Speculation | None = None,
                 offload: Offload | None = None) -> SteadyState:
    """Steady state at `concurrency` sequences in flight (None: as many as the engine allows)."""
    d = with_mtp(d, speculation)
    conc = np.atleast_1d(_arr(0.0 if concurrency is None else concurrency))
    i, o, conc = np.broadcast_arrays(np.atleast_1d(_arr(input_len)), np.atleast_1d(_arr(output_len)), conc)
    gain = speculation.tokens_per_step if speculation else 1.0  # tokens per decode iteration per sequence
    q = float(speculation.k + 1) if speculation else 1.0  # tokens verified per sequence per iteration
    limits = concurrency_limits(d, policy, i, o, offload, q, speculation)
    names = list(limits)
    stacked = np.stack([limits[n] for n in names])
    cap = stacked.min(axis=0)
    which = np.array(names)[stacked.argmin(axis=0)]
    if concurrency is None:
        n, limit = cap, which
    else:
        n = np.minimum(conc, cap)
        limit = np.where(conc <= cap, "asked", which)
    budget = float(policy.max_num_batched_tokens)
    computed_prompt = i * (1 - prefix_hit_rate)  # prompt tokens that must be prefilled
    chunks = np.ceil(np.maximum(computed_prompt, 1) / budget) if policy.chunked_prefill else np.ones_like(i)
    dec_steps = np.maximum(o - 1, 0) / gain  # decode iterations a request spends
    decode = np.where(dec_steps > 0, n * dec_steps / np.maximum(dec_steps + chunks, _TINY), 0.0)
    # prompts started per iteration = requests finishing per iteration
    starts = np.where(dec_steps > 0, decode / np.maximum(dec_steps, _TINY), n / chunks)
    prefill_tokens = starts * computed_prompt
    # Preemption: admitting on the current context (vLLM) lets more sequences in than can all reach their final
    # length; when the pool runs out, a share 1 - full/n of the requests is preempted once and its context
    # (about I + O/2 tokens) recomputed as extra prefill work.
    preempted = np.zeros_like(n)
    if policy.admission == "current":
        full = kv_capacity(d, policy, i + o, offload, speculation).max_sequences.reshape(i.shape)
        preempted = np.clip(1 - full / np.maximum(n, _TINY), 0.0, 1.0)
        prefill_tokens = prefill_tokens + starts * preempted * charged_context_tokens("current", i, o)
    if policy.chunked_prefill:
        room = np.maximum(budget - decode * q, 0)
        prefill_tokens = np.minimum(prefill_tokens, room)
        chunk = np.minimum(np.maximum(computed_prompt, 1), np.maximum(room, 1))
        prefill_ctx = i * prefix_hit_rate + np.maximum(computed_prompt - chunk, 0) / 2
        prefill_seqs = prefill_tokens / chunk
    else:
        prefill_ctx = i * prefix_hit_rate
        prefill_seqs = prefill_tokens / np.maximum(computed_prompt, 1)
    decode_ctx = mean_decode_context_tokens(i, o)
    kw = dict(separate_prefill=not policy.chunked_prefill, step_overhead_s=policy.step_overhead_s)
    it = iteration_cost(d, decode, decode_ctx, prefill_tokens, prefill_seqs, prefill_ctx, decode_tokens=q, **kw)
    if speculation is not None:
        it = _add_draft(d, it, speculation, decode, decode_ctx, kw)
    if offload is not None:
        it = _add_offload(d, policy, it, offload, decode, decode_ctx, decode * q + prefill_tokens)
    finished = np.where(dec_steps > 0, decode / np.maximum(dec_steps, _TINY),
                        prefill_tokens / np.maximum(computed_prompt, 1))
    req_per_s = finished / it.time_s
    return SteadyState(n, decode, prefill_tokens, it, req_per_s, req_per_s * o, limit, chunks, gain, preempted)


def decode_only_iteration(d: CostedDeployment, policy: EnginePolicy, decode, ctx, speculation: Speculation | None = None,
                          offload: Offload | None = None) -> IterationCost:
    """An iteration with decodes only (speculation and offload applied as in the steady state)."""
    d = with_mtp(d, speculation)
    kw = dict(separate_prefill=not policy.chunked_prefill, step_overhead_s=policy.step_overhead_s)
    q = float(speculation.k + 1) if speculation else 1.0
    it = iteration_cost(d, decode, ctx, 0.0, 0.0, 0.0, decode_tokens=q, **kw)
    if speculation is not None:
        it = _add_draft(d, it, speculation, decode, ctx, kw)
    if offload is not None:
        it = _add_offload(d, policy, it, offload, decode, ctx, np.asarray(decode, dtype=float) * q)
    return it


def with_mtp(d: Deployment, speculation: Speculation | None) -> Deployment:
    """The deployment holding its MTP modules when speculation drafts with them."""
    if speculation is None or not speculation.mtp or getattr(d, "mtp_layers", 0):
        return d
    from dataclasses import replace

    from model.serving.mtp import mtp_modules

    return replace(d, mtp_layers=max(min(mtp_modules(d.arch), speculation.k), 1))


def draft_deployment(d: Deployment, spec: Speculation) -> Deployment:
    """The draft model on the target's GPUs, split by the target's TP when its heads allow."""
    from dataclasses import replace

    from model.architecture.catalogue import load_architecture
    from model.errors import RidgeplanError
    from model.placement.layout import Layout

    arch = load_architecture(spec.draft_model, field="draft_model")
    try:
        return replace(d, arch=arch, layout=Layout(tp=d.layout.tp))
    except RidgeplanError:
        return replace(d, arch=arch, layout=Layout())


def draft_memory_bytes(d: Deployment, spec: Speculation | None, context_tokens) -> tuple[float, float]:
    """(draft weights per GPU, draft KV bytes per token per GPU) that share the target's memory; zero for
    self-drafting or MTP heads (counted in the target's own graph)."""
    if spec is None or spec.draft_model is None:
        return 0.0, 0.0
    draft = draft_deployment(d, spec)
    ctx = max(float(np.max(context_tokens)), 1.0)
    ops = draft.graph.evaluate({**draft.symbols(), "B": 1.0, "T": 1.0, "C": ctx - 1})
    weights = float((draft.counts @ ops.resident_bytes).max())
    kv = float((draft.counts @ ops.cache_bytes).max()) / ctx  # per token, at the longest context asked
    return weights, kv


def _add_draft(d: Deployment, it: IterationCost, spec: Speculation, decode, ctx, kw) -> IterationCost:
    """k draft decode steps per verification: a draft model's own steps, or a fraction of a target step."""
    if spec.mtp:
        from model.serving.mtp import mtp_draft_s

        # the k MTP forwards as the engine runs them (the first over the k + 1 verified positions)
        total = np.where(decode > _TINY, mtp_draft_s(d, decode, ctx, spec.k), 0.0) + it.time_s
    else:
        if spec.draft_model is not None:
            one = iteration_cost(draft_deployment(d, spec), decode, ctx, 0.0, 0.0, 0.0, **kw).time_s
        else:
            one = spec.draft_cost_ratio * iteration_cost(d, decode, ctx, 0.0, 0.0, 0.0, **kw).time_s
        total = speculative_step_s(spec.k, np.where(decode > _TINY, one, 0.0), it.time_s)
    return IterationCost(total, it.linear_s, it.decode_attention_s, it.prefill_attention_s,
                         it.overhead_s, it.draft_s + total - it.time_s, it.transfer_s)


def _add_offload(d: Deployment, policy: EnginePolicy, it: IterationCost, off: Offload, decode, ctx,
                 tokens) -> IterationCost:
    """Bytes an iteration must bring from the tier, and how they combine with GPU time."""
    gpu_s = it.time_s
    bw = off.link_bytes_per_s(d.device)
    if off.target == "weights":
        moved = np.full_like(gpu_s, off.fraction * _weights_per_gpu(d))
    elif off.target == "experts":
        ops = d.graph.evaluate({**d.symbols(), "B": 1.0, "T": np.maximum(tokens, 1.0), "C": 0.0})
        rows = np.array([op.weight_role == "expert" for op in ops.ops])
        touched = d.counts.sum(axis=0)[rows] @ ops.weight_bytes[rows]
        moved = off.fraction * (1 - off.hit_rate) * touched
    else:  # kv
        per_seq = kv_capacity(d, policy, ctx).kv_bytes_per_sequence.reshape(np.shape(ctx)) if np.ndim(ctx) else \
            kv_capacity(d, policy, ctx).kv_bytes_per_sequence
        kv_read = off.fraction * decode * per_seq
        if off.in_place_attention:
            drive_s = kv_read / off.in_place_bytes_per_s()
            gpu_only = gpu_s - off.fraction * it.decode_attention_s
            total = np.maximum(gpu_only, drive_s)
            return IterationCost(total, it.linear_s, it.decode_attention_s * (1 - off.fraction),
                                 it.prefill_attention_s, it.overhead_s, it.draft_s, drive_s)
        moved = kv_read
    transfer = moved / bw
    total = np.maximum(gpu_s, transfer) if off.overlap else gpu_s + transfer
    return IterationCost(total, it.linear_s, it.decode_attention_s, it.prefill_attention_s, it.overhead_s,
                         it.draft_s, transfer)


def _weights_per_gpu(d: CostedDeployment) -> float:
    ops = d.graph.evaluate({**d.symbols(), "B": 1.0, "T": 1.0, "C": 0.0})
    return float((d.counts @ ops.resident_bytes[:, 0]).max())
