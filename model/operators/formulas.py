"""Closed-form cost of each operator kind, as sympy expressions of the scenario symbols.

Every quantity is per GPU rank and per instance (one layer); the graph multiplies by the layer count.
Conventions (stated once, here):
- a GEMM of shape (m x k) @ (k x n) costs 2*m*n*k FLOPs and moves k*n weights plus m*k + m*n activations;
- attention FLOPs are 2*d_qk + 2*d_v per (query, key) pair (QK^T plus AV); which keys a query sees follows the
  `causal` symbol (1: the causal triangle, 0: the full square, as some published analyses count);
- norms and element-wise kernels are memory-bound and counted by the bytes they read and write;
- MoE weights read per step are those of the experts actually touched: E_loc * (1 - (1 - k/E)^tokens) under
  uniform routing. The step waits for the busiest EP rank: under random routing its token-expert pairs and
  touched experts are the mean plus z_ep standard deviations (z_ep = expected maximum of ep standard normals),
  times `gamma_moe` for routing skew beyond uniform (1 with EPLB).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import sympy as sp

from model.operators.symbols import (
    B, C, T, b_a, b_e, b_emb, b_kv, b_u, b_w, causal, dp_attn, ep, tp, z_ep,
)

ZERO = sp.Integer(0)
ONE = sp.Integer(1)

# Absorbed MLA (attention over the compressed latent) is what engines run when few queries per sequence
# arrive (decode, speculative verification); longer prefills decompress K/V and run ordinary MHA (SGLang/vLLM).
MLA_ABSORB_MAX_T = 32
# Chunk length of the chunkwise-parallel linear-attention kernels (Gated DeltaNet / FLA default 64).
LINEAR_CHUNK = 64

N = B * T  # tokens in the step on one attention rank


@dataclass(frozen=True)
class Operator:
    """One operator instance's cost on one rank. Units: FLOP, bytes, parameters (counts)."""

    name: str
    kind: str  # gemm | attention | linear_attention | elementwise | embedding | collective
    weight_role: str = "none"  # dense | unquantized | expert | embedding | none: which weight format applies
    flops: sp.Expr = ZERO
    weight_bytes: sp.Expr = ZERO  # weights read from memory
    act_bytes: sp.Expr = ZERO  # activations read + written
    kv_read_bytes: sp.Expr = ZERO
    kv_write_bytes: sp.Expr = ZERO
    comm_bytes: sp.Expr = ZERO  # bytes each rank contributes to the collective
    collective: str | None = None  # all_reduce | all_to_all | all_gather
    comm_group: str | None = None  # tp | ep
    m: sp.Expr = ZERO  # GEMM shape on this rank (0 when not a GEMM)
    n: sp.Expr = ZERO
    k: sp.Expr = ZERO
    params: sp.Expr = ZERO  # parameters resident on this rank
    resident_bytes: sp.Expr | None = None  # bytes of those parameters (None: params * b_a, 16-bit vectors)
    cache_bytes: sp.Expr = ZERO  # KV / recurrent state held on this rank for the B sequences after the step
    active_params: sp.Expr = ZERO  # parameters one token touches (whole model, no parallelism)
    kernels: int = 1
    description: str = ""
    group: int = -1  # layer group index, -1 for model-level operators
    count: int = 1  # instances per forward pass
    tags: tuple[str, ...] = field(default=())  # "per_sequence": cost depends on each sequence's context

    @property
    def bytes(self) -> sp.Expr:
        return self.weight_bytes + self.act_bytes + self.kv_read_bytes + self.kv_write_bytes

    @property
    def resident(self) -> sp.Expr:
        return self.params * b_a if self.resident_bytes is None else self.resident_bytes


# ---------------------------------------------------------------------------------------------------------
# counts shared with kernel tables (plain arithmetic: sympy expressions here, numpy arrays in model.roofline.kernels)

def gemm_flops(m, n, k):
    """(m x k) @ (k x n): one multiply and one add per (row, column, reduction) triple."""
    return 2 * m * n * k


def attention_flops_per_pair(d_qk, d_v):
    """FLOPs of one (query, key) pair: QK^T over d_qk and AV over d_v."""
    return 2 * d_qk + 2 * d_v


def attention_depth(d_qk, d_v):
    """The head dimension an attention kernel's efficiency sees: tensor-core FLOPs per (query, key) pair per head
    over 4, i.e. (d_qk + d_v) / 2 (= head_dim when Q, K and V share it; 160 for DeepSeek MLA's 192-wide queries and
    128-wide values). The attention operators carry it as their `k` (roofline.efficiency_forms.attention_eta)."""
    return sp.Rational(attention_flops_per_pair(int(d_qk), int(d_v)), 4)


def keys_seen_full(t, c, causal):
    """Σ over t new queries on top of c cached positions of the keys each attends to, without a window:
    causal t*c + t(t+1)/2 (the triangle), square t*(c + t)."""
    return causal * (t * c + t * (t + 1) / 2) + (1 - causal) * t * (c + t)


# ---------------------------------------------------------------------------------------------------------
# building blocks

def gemm(name: str, m: sp.Expr, n: sp.Expr, k: sp.Expr, *, role: str = "dense", bias: bool = False,
         bytes_per_weight: sp.Expr | None = None, replicated: bool = False, full_params: sp.Expr | None = None,
         description: str = "") -> Operator:
    """A dense linear layer y = x W (+ b) with W of shape (k, n) on this rank."""
    bpw = bytes_per_weight if bytes_per_weight is not None else {"dense": b_w, "unquantized": b_u, "expert": b_e, "embedding": b_emb}[role]
    weights = k * n
    bias_params = n if bias else ZERO
    per_rank = weights + bias_params
    full = full_params if full_params is not None else per_rank
    return Operator(
        name=name, kind="gemm", weight_role=role,
        flops=gemm_flops(m, n, k),
        weight_bytes=weights * bpw + bias_params * b_a,
        act_bytes=(m * k + m * n) * b_a,
        m=m, n=n, k=k, params=per_rank, active_params=full, resident_bytes=weights * bpw + bias_params * b_a,
        description=description or f"GEMM ({name}): m x k @ k x n",
        tags=("replicated",) if replicated else (),
    )


def elementwise(name: str, elements: sp.Expr, *, reads: int = 1, writes: int = 1, flops_per_element: int = 1,
                params: sp.Expr = ZERO, full_params: sp.Expr | None = None, description: str = "") -> Operator:
    """A memory-bound kernel over `elements` activations (norms, activations, rotary, residual adds)."""
    return Operator(
        name=name, kind="elementwise", weight_role="none",
        flops=flops_per_element * elements,
        weight_bytes=params * b_a,
        act_bytes=(reads + writes) * elements * b_a,
        params=params, active_params=params if full_params is None else full_params,
        description=description or f"element-wise ({name})",
    )


# tag of a dense GEMM whose activations an engine quantizes once for it and the GEMM before it (one fused call):
# no activation-quantization kernel of its own (model.roofline.evaluator, ExecContext.dense_quant)
SHARED_QUANT_INPUT = "shared_quant_input"


def norm(name: str, d: int, *, bias: bool, tokens: sp.Expr = N) -> Operator:
    """RMSNorm/LayerNorm fused with the residual add: read x and residual, write both (4 passes of d)."""
    params = sp.Integer(d * (2 if bias else 1))
    return elementwise(name, tokens * d, reads=2, writes=2, flops_per_element=5, params=params,
                       description="norm fused with residual add: reads x and residual, writes both")


def collective(name: str, kind: str, group: str, bytes_per_rank: sp.Expr, description: str) -> Operator:
    return Operator(name=name, kind="collective", collective=kind, comm_group=group, comm_bytes=bytes_per_rank,
                    kernels=1, description=description)


# ---------------------------------------------------------------------------------------------------------
# attention

def keys_seen(window: int | None) -> sp.Expr:
    """Σ over the T new queries of a sequence of the keys each one attends to.

    Query i (1..T) sits at position C + i. Causal: it sees min(C + i, W) keys, so with n1 = clip(W - C, 0, T)
    queries inside the window the sum is n1*C + n1*(n1+1)/2 + (T - n1)*W; with no window, T*C + T*(T+1)/2.
    Square convention (causal = 0): every query sees min(C + T, W) keys.
    """
    if window is None:
        return keys_seen_full(T, C, causal)
    else:
        w = sp.Integer(window)
        n1 = sp.Min(sp.Max(w - C, 0), T)
        tri = n1 * C + n1 * (n1 + 1) / 2 + (T - n1) * w
        square = T * sp.Min(C + T, w)
    return causal * tri + (1 - causal) * square


def kv_cached_positions(window: int | None) -> sp.Expr:
    """Positions a sequence keeps in its KV cache after the step: all C + T, or the last W of them."""
    return C + T if window is None else sp.Min(C + T, sp.Integer(window))


def keys_read(window: int | None) -> sp.Expr:
    """Cached plus new positions whose K/V a step reads per sequence: C + T, or the last W + T - 1 of them."""
    if window is None:
        return C + T
    return sp.Min(C + T, sp.Integer(window) + T - 1)


def sparse_keys_read(window: int | None, topk: int) -> sp.Expr:
    """Cached plus new positions a step reads per sequence when each of the T queries attends to its own top-k
    keys (DeepSeek sparse attention): at most every position once, at most T * k distinct positions."""
    return sp.Min(keys_read(window), T * sp.Integer(topk))


def heads_per_rank(heads: int) -> sp.Expr:
    return sp.Integer(heads) / tp


def kv_heads_per_rank(kv_heads: int) -> sp.Expr:
    """KV heads on one rank: n_kv / tp, and at least 1 (heads are replicated when n_kv < tp)."""
    return sp.Max(sp.Integer(kv_heads) / tp, 1)


def softmax_attention_core(name: str, heads: int, kv_heads: int, d_qk: int, d_v: int, window: int | None,
                           *, sinks: bool = False, topk: int | None = None) -> Operator:
    """Fused attention; with `topk` each query attends to at most its top-k keys (sparse attention: the count of
    keys per query is that of a window of k, the cache still holds every position)."""
    h = heads_per_rank(heads)
    hk = kv_heads_per_rank(kv_heads)
    kv_elems_per_token = hk * (d_qk + d_v)
    seen = keys_seen(window if topk is None else (topk if window is None else min(window, topk)))
    read = keys_read(window) if topk is None else sparse_keys_read(window, topk)
    return Operator(
        name=name, kind="attention", weight_role="none", tags=("per_sequence",),
        flops=B * h * attention_flops_per_pair(d_qk, d_v) * seen,
        act_bytes=N * h * (d_qk + d_v) * b_a,  # read Q, write O
        kv_read_bytes=B * read * kv_elems_per_token * b_kv,
        kv_write_bytes=N * kv_elems_per_token * b_kv,
        cache_bytes=B * kv_cached_positions(window) * kv_elems_per_token * b_kv,
        m=T * h / hk,  # query rows sharing one KV head (GQA packing): the kernel's tile height
        n=read,  # KV length (keys a sequence's queries run over): attention efficiency grows with it
        k=attention_depth(d_qk, d_v),  # head dimension: tensor-core work per softmax element
        params=h if sinks else ZERO, active_params=sp.Integer(heads) if sinks else ZERO,
        description=("fused (flash) attention over the KV cache" + (f", sliding window {window}" if window else "")),
    )


# ---------------------------------------------------------------------------------------------------------
# MoE

def touched_fraction(tokens: sp.Expr, experts: int, top_k: int) -> sp.Expr:
    """Expected fraction of experts hit by `tokens` tokens each picking top_k of `experts` uniformly."""
    return 1 - (1 - sp.Rational(top_k, experts)) ** tokens


def moe_tokens() -> sp.Expr:
    """Tokens entering one EP group's MoE layer: each attention DP rank contributes its step's tokens."""
    return N * dp_attn


def ranks_hit(experts: int, top_k: int, groups: sp.Expr) -> sp.Expr:
    """Expected distinct expert groups (of experts/groups experts each) one token's top-k choices land in.

    The k experts are distinct (drawn without replacement), so a group of E/g experts is missed with
    probability C(E - E/g, k) / C(E, k) = Π_{i<k} (E - E/g - i) / (E - i); hits = g (1 - that)."""
    e = sp.Integer(experts)
    miss = sp.Integer(1)
    for i in range(top_k):
        miss = miss * sp.Max(e - e / groups - i, 0) / (e - i)
    return groups * (1 - miss)


def busiest_assignments(tokens: sp.Expr, experts: int, top_k: int) -> sp.Expr:
    """Token-expert pairs on the busiest of `ep` ranks under uniform routing: mean + z_ep standard deviations.

    Pairs of one token on one rank are hypergeometric (k draws from E, E/ep of them on the rank): mean k/ep,
    variance k (1/ep)(1 - 1/ep)(E - k)/(E - 1); tokens route independently."""
    mean = tokens * top_k / ep
    var = tokens * top_k / ep * (1 - 1 / ep) * sp.Rational(experts - top_k, max(experts - 1, 1))
    return mean + z_ep * sp.sqrt(var)


def busiest_touched(tokens: sp.Expr, experts: int, top_k: int) -> sp.Expr:
    """Experts touched on the busiest of `ep` ranks: each of its E/ep experts is hit with probability p =
    1 - (1 - k/E)^tokens (Bernoulli, mean E/ep p, variance E/ep p (1 - p)), capped at E/ep."""
    local = sp.Integer(experts) / ep
    p = touched_fraction(tokens, experts, top_k)
    return sp.Min(local, local * p + z_ep * sp.sqrt(local * p * (1 - p)))


def expected_max_normal(n) -> float:
    """Expected maximum of n independent standard normals (Blom's approximation Φ⁻¹((n - 0.375)/(n + 0.25)))."""
    n = float(n)
    if n <= 1:
        return 0.0
    from scipy.special import ndtri  # the normal quantile (scipy.stats.norm.ppf); scipy.stats costs ~1 s to import

    return float(ndtri((n - 0.375) / (n + 0.25)))


# DeepEP's FP8 dispatch: e4m3 payload plus one fp32 scale per 128 channels (deepseek-ai/DeepEP README).
FP8_DISPATCH_BYTES = 1 + 4 / 128
