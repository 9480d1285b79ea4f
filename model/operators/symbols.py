"""The named symbols every operator formula is written in.

A *scenario* gives each of these a value (or a numpy array of values, one per scenario); formulas are
lambdified once per architecture and evaluated over those arrays.
"""

from __future__ import annotations

import sympy as sp

# workload of one forward step
B = sp.Symbol("B", positive=True)  # sequences in the step
T = sp.Symbol("T", positive=True)  # new tokens per sequence in this step (prefill chunk, 1 for decode)
C = sp.Symbol("C", nonnegative=True)  # tokens already in each sequence's KV cache before the step
n_logit = sp.Symbol("n_logit", positive=True)  # positions per sequence that produce logits (1 when serving)
causal = sp.Symbol("causal", nonnegative=True)  # 1: count only the keys a causal query sees; 0: the full square

# parallel degrees
tp = sp.Symbol("tp", positive=True)  # tensor parallel (attention heads, dense MLP, vocab)
ep = sp.Symbol("ep", positive=True)  # expert parallel (experts split across ranks)
etp = sp.Symbol("etp", positive=True)  # tensor parallel inside each expert (intermediate split)
dp_attn = sp.Symbol("dp_attn", positive=True)  # attention data-parallel ranks feeding one EP group
moe_imbalance = sp.Symbol("gamma_moe", positive=True)  # routing skew beyond uniform (>= 1; 1 with EPLB)
z_ep = sp.Symbol("z_ep", nonnegative=True)  # expected max of ep standard normals: the busiest EP rank's fluctuation

# MoE communication mode (indicators set by the deployment, model.serving.deployment)
moe_ag = sp.Symbol("moe_ag", nonnegative=True)  # 1: attention-DP all-gather / reduce-scatter around the MoE layer
moe_a2a = sp.Symbol("moe_a2a", nonnegative=True)  # 1: dispatch / combine all-to-all (DeepEP style)
ll_decode = sp.Symbol("ll_decode", nonnegative=True)  # 1: low-latency all-to-all kernels in decode steps (T = 1)
ll_prefill = sp.Symbol("ll_prefill", nonnegative=True)  # 1: low-latency kernels in prefill steps too
b_disp = sp.Symbol("b_disp", positive=True)  # bytes per element of the dispatched / gathered tokens
e_red = sp.Symbol("e_red", nonnegative=True)  # redundant expert copies spread over the EP ranks (EPLB)
ep_nodes = sp.Symbol("ep_nodes", positive=True)  # scale-up domains (nodes) the MoE group spans

# bytes per element
b_w = sp.Symbol("b_w", positive=True)  # dense linear weights
b_e = sp.Symbol("b_e", positive=True)  # MoE expert weights
b_u = sp.Symbol("b_u", positive=True)  # linear layers a quantized checkpoint leaves in its 16-bit dtype
q_e = sp.Symbol("q_e", nonnegative=True)  # 1: the MoE layer quantizes its activations in kernels of their own
b_emb = sp.Symbol("b_emb", positive=True)  # embedding and LM head
b_a = sp.Symbol("b_a", positive=True)  # activations between kernels (and biases, norm weights)
b_kv = sp.Symbol("b_kv", positive=True)  # KV cache element
b_state = sp.Symbol("b_state", positive=True)  # recurrent state element of linear-attention layers

SCENARIO_SYMBOLS: tuple[sp.Symbol, ...] = (
    B, T, C, n_logit, causal, tp, ep, etp, dp_attn, moe_imbalance, b_w, b_e, b_emb, b_a, b_kv, b_state,
    z_ep, moe_ag, moe_a2a, ll_decode, ll_prefill, b_disp, e_red, ep_nodes, b_u, q_e,
)
SYMBOL_NAMES: tuple[str, ...] = tuple(s.name for s in SCENARIO_SYMBOLS)

DESCRIPTIONS: dict[str, str] = {
    "B": "sequences in the step",
    "T": "new tokens per sequence in the step",
    "C": "tokens already cached per sequence",
    "n_logit": "positions per sequence that produce logits",
    "causal": "1 = causal attention FLOP convention (triangle), 0 = full square",
    "tp": "tensor-parallel degree",
    "ep": "expert-parallel degree",
    "etp": "tensor-parallel degree inside an expert",
    "dp_attn": "attention data-parallel ranks feeding one EP group",
    "gamma_moe": "routing skew beyond uniform routing (busiest rank / mean; 1 with EPLB)",
    "z_ep": "expected maximum of ep standard normals (busiest EP rank under random routing)",
    "moe_ag": "1 when attention-DP ranks all-gather tokens before and reduce-scatter after the MoE layer",
    "moe_a2a": "1 when tokens reach experts by dispatch/combine all-to-all",
    "ll_decode": "1 when decode steps use low-latency all-to-all kernels",
    "ll_prefill": "1 when prefill steps use low-latency all-to-all kernels",
    "b_disp": "bytes per element of dispatched tokens (fp8 dispatch: 1 + 4/128)",
    "ep_nodes": "scale-up domains (nodes) the MoE group spans",
    "e_red": "redundant expert copies over the EP group (held in memory, (E + e_red) / ep per rank)",
    "b_w": "bytes per dense weight",
    "b_e": "bytes per expert weight",
    "b_u": "bytes per weight of the linear layers a quantized checkpoint excludes (kept in 16 bits)",
    "q_e": "1 when the engine's MoE layer quantizes the experts' activations in kernels of their own",
    "b_emb": "bytes per embedding / LM-head weight",
    "b_a": "bytes per activation element",
    "b_kv": "bytes per KV-cache element",
    "b_state": "bytes per linear-attention state element",
}

# Defaults a scenario starts from (single GPU, one decode token, causal convention, 16-bit everything).
DEFAULTS: dict[str, float] = {
    "B": 1.0, "T": 1.0, "C": 0.0, "n_logit": 1.0, "causal": 1.0, "tp": 1.0, "ep": 1.0, "etp": 1.0,
    "dp_attn": 1.0, "gamma_moe": 1.0, "b_w": 2.0, "b_e": 2.0, "b_emb": 2.0, "b_a": 2.0, "b_kv": 2.0,
    "b_state": 4.0, "z_ep": 0.0, "moe_ag": 0.0, "moe_a2a": 0.0, "ll_decode": 0.0, "ll_prefill": 0.0, "b_disp": 2.0, "e_red": 0.0, "ep_nodes": 1.0,
    "b_u": 2.0, "q_e": 0.0,
}
