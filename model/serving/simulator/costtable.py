"""The iteration cost tabulated once per deployment, interpolated inside the event loop.

The analytical iteration cost (model.serving.batching.iteration_cost) is additive in its parts with one
pipeline stage: time = linear layers (a function of the tokens in the step and the rows sent to the LM head)
+ decode attention (decoding sequences x their mean context) + prefill attention (each prefilling sequence's
chunk x the context it attends to) + the engine's step overhead. Each part is evaluated once on a geometric
grid with the vectorized evaluator; the loop interpolates (linear in the value between geometric grid points,
index found by arithmetic, no search) and never calls the evaluator. With pipeline parallelism the parts are
scaled by the ratio of the full round to their sum, tabulated over the tokens in the step.
Speculative drafts and offload transfers are tabulated the same way from the functions that define them.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from model.errors import RidgeplanError
from model.serving.batching import IterationCost, _add_draft, _add_offload, iteration_cost
from model.serving.deployment import Deployment
from model.serving.policy import EnginePolicy
from model.serving.speculation_offload import Offload, Speculation


@dataclass(frozen=True)
class Axis:
    """A geometric grid from lo to hi (values >= 0 enter as x + 1) with arithmetic lookup."""

    lo: float
    hi: float
    n: int

    @property
    def points(self) -> np.ndarray:
        return np.geomspace(self.lo + 1, self.hi + 1, self.n) - 1

    def locate(self, x: float) -> tuple[int, float]:
        """(lower index, weight of the upper point); values outside the grid are clamped to it."""
        g = self.points_list
        if x <= g[0]:
            return 0, 0.0
        if x >= g[-1]:
            return self.n - 2, 1.0
        i = min(int(math.log((x + 1) / (self.lo + 1)) * self.inv_step), self.n - 2)
        while x < g[i]:  # guard against rounding at a grid point
            i -= 1
        while x > g[i + 1]:
            i += 1
        return i, (x - g[i]) / (g[i + 1] - g[i])

    def __post_init__(self) -> None:
        object.__setattr__(self, "points_list", self.points.tolist())
        object.__setattr__(self, "inv_step", (self.n - 1) / math.log((self.hi + 1) / (self.lo + 1)))


def _bilinear(table: list[list[float]], ax: Axis, ay: Axis, x: float, y: float) -> float:
    i, fx = ax.locate(x)
    j, fy = ay.locate(y)
    r0, r1 = table[i], table[i + 1]
    a = r0[j] + (r0[j + 1] - r0[j]) * fy
    b = r1[j] + (r1[j + 1] - r1[j]) * fy
    return a + (b - a) * fx


def _grid(ax: Axis, ay: Axis) -> tuple[np.ndarray, np.ndarray]:
    x, y = np.meshgrid(ax.points, ay.points, indexing="ij")
    return x.ravel(), y.ravel()


@dataclass
class CostTable:
    """Seconds of one iteration from the batch it carries (see the module docstring)."""

    deployment: Deployment
    policy: EnginePolicy
    tokens_axis: Axis
    logits_axis: Axis
    seqs_axis: Axis
    context_axis: Axis
    chunk_axis: Axis
    linear: list
    decode_attention: list
    prefill_attention: list
    draft: list | None
    transfer_kv: list | None
    transfer_tokens: list | None
    transfer_const_s: float
    offload: Offload | None
    pp_scale: list | None
    overhead_s: float
    decode_tokens: float  # tokens each decoding sequence runs per step (k + 1 with speculation)

    def iteration_s(self, decode_seqs: float, decode_context: float, prefill=(), separate: bool = False) -> float:
        """One iteration: `decode_seqs` decoding at mean `decode_context`, plus prefill chunks given as
        (tokens per sequence, context attended, sequences). `separate`: decodes and prefill run as two forward
        steps (two overheads, weights read twice)."""
        q = self.decode_tokens
        dec_tok = decode_seqs * q
        pf_tok = 0.0
        attn = 0.0
        n_pf = 0
        for chunk, ctx, count in prefill:
            pf_tok += chunk * count
            n_pf += count
            attn += count * _bilinear(self.prefill_attention, self.chunk_axis, self.context_axis, chunk, ctx)
        steps = 0
        lin = 0.0
        if separate:
            if decode_seqs > 0:
                lin += _bilinear(self.linear, self.tokens_axis, self.logits_axis, dec_tok, dec_tok)
                steps += 1
            if n_pf:
                lin += _bilinear(self.linear, self.tokens_axis, self.logits_axis, pf_tok, n_pf)
                steps += 1
        elif decode_seqs > 0 or n_pf:
            lin = _bilinear(self.linear, self.tokens_axis, self.logits_axis, dec_tok + pf_tok, dec_tok + n_pf)
            steps = 1
        gpu = lin + attn
        if decode_seqs > 0:
            gpu += _bilinear(self.decode_attention, self.seqs_axis, self.context_axis, decode_seqs, decode_context)
        if self.pp_scale is not None:
            gpu *= _linear1(self.pp_scale, self.tokens_axis, dec_tok + pf_tok)
        total = gpu + self.overhead_s * steps
        if self.draft is not None and decode_seqs > 0:
            total += _bilinear(self.draft, self.seqs_axis, self.context_axis, decode_seqs, decode_context)
        if self.offload is not None:
            moved = self.transfer_const_s
            if self.transfer_kv is not None and decode_seqs > 0:
                moved += _bilinear(self.transfer_kv, self.seqs_axis, self.context_axis, decode_seqs, decode_context)
            if self.transfer_tokens is not None:
                moved += _linear1(self.transfer_tokens, self.tokens_axis, dec_tok + pf_tok)
            total = max(total, moved) if self.offload.overlap else total + moved
        return total


def _linear1(values: list, ax: Axis, x: float) -> float:
    i, f = ax.locate(x)
    return values[i] + (values[i + 1] - values[i]) * f


def build_cost_table(d: Deployment, policy: EnginePolicy, max_context: float, speculation: Speculation | None = None,
                     offload: Offload | None = None, points: int = 96, context_points: int = 48) -> CostTable:
    """Tabulate the iteration cost of `d` under `policy` for contexts up to `max_context` tokens."""
    if offload is not None and offload.in_place_attention:
        raise RidgeplanError("in_place_attention", "the simulator does not model attention run on the drive; "
                             "use the steady state (--steady-state) for this offload")
    q = float(speculation.k + 1) if speculation else 1.0
    max_seqs = float(policy.max_num_seqs)
    budget = float(policy.max_num_batched_tokens)
    tok_hi = max(budget, max_seqs * q) + budget
    tokens = Axis(0.0, tok_hi, points)
    logits = Axis(1.0, tok_hi, 12)  # a step with work sends at least one row to the LM head
    seqs = Axis(0.0, max_seqs, context_points)
    ctx = Axis(0.0, max(max_context, 2.0), context_points)
    chunk = Axis(0.0, max(budget, max_context), context_points)
    kw = {"step_overhead_s": policy.step_overhead_s}
    t, lg = _grid(tokens, logits)
    # never more LM-head rows than tokens, and never fewer than one: a fraction of a row would price the LM-head
    # GEMM at a vanishing tile efficiency and, interpolated, pollute every step near it
    lg = np.maximum(np.minimum(lg, t), 1.0)
    lin = iteration_cost(d, 0.0, 0.0, t, lg, 0.0, **kw).linear_s
    lin = np.where(t > 0, lin, 0.0).reshape(tokens.n, logits.n)
    n, c = _grid(seqs, ctx)
    dec = iteration_cost(d, n, c, 0.0, 0.0, 0.0, decode_tokens=q, **kw).decode_attention_s
    dec = np.where(n > 0, dec, 0.0).reshape(seqs.n, ctx.n)
    k, p = _grid(chunk, ctx)
    pf = iteration_cost(d, 0.0, 0.0, k, 1.0, p, **kw).prefill_attention_s
    pf = np.where(k > 0, pf, 0.0).reshape(chunk.n, ctx.n)
    overhead = d.eff.step_overhead_s if policy.step_overhead_s is None else policy.step_overhead_s
    pp_scale = None
    if d.layout.pp > 1:  # the full pipeline round over the sum of its parts, along decode-heavy steps
        tk = tokens.points
        full = iteration_cost(d, np.maximum(tk, 1e-6), max_context / 2, 0.0, 0.0, 0.0, **kw)
        parts = full.linear_s + full.decode_attention_s + full.prefill_attention_s
        pp_scale = ((full.time_s - overhead) / np.maximum(parts, 1e-12)).tolist()
    draft = None
    if speculation is not None:
        zero = IterationCost(np.zeros(n.size), 0.0, 0.0, 0.0, 0.0)
        dr = _add_draft(d, zero, speculation, n, c, dict(separate_prefill=False, **kw)).draft_s
        draft = np.where(n > 0, dr, 0.0).reshape(seqs.n, ctx.n).tolist()
    t_kv = t_tok = None
    t_const = 0.0
    if offload is not None:
        zero_n = IterationCost(np.zeros(n.size), 0.0, 0.0, 0.0, 0.0)
        if offload.target == "kv":
            t_kv = (_add_offload(d, policy, zero_n, offload, n, c, n * q).transfer_s
                    .reshape(seqs.n, ctx.n).tolist())
        elif offload.target == "experts":
            tk = np.maximum(tokens.points, 1.0)
            zero_t = IterationCost(np.zeros(tk.size), 0.0, 0.0, 0.0, 0.0)
            t_tok = np.asarray(_add_offload(d, policy, zero_t, offload, tk, 0.0, tk).transfer_s).tolist()
        else:
            zero1 = IterationCost(np.zeros(1), 0.0, 0.0, 0.0, 0.0)
            t_const = float(np.asarray(_add_offload(d, policy, zero1, offload, 1.0, 0.0, 1.0).transfer_s).ravel()[0])
    return CostTable(d, policy, tokens, logits, seqs, ctx, chunk, lin.tolist(), dec.tolist(), pf.tolist(), draft,
                     t_kv, t_tok, t_const, offload, pp_scale, overhead, q)
