"""The operator graph of one forward step of an Architecture: an ordered list of `Operator`s.

Layer-level operators are built once per LayerGroup and carry `count` = the group's layer count; model-level
operators (embedding, final norm, LM head, sampling) have count 1. All costs are per tensor/expert-parallel rank.
"""

from __future__ import annotations

from functools import lru_cache

import sympy as sp

from model.architecture.config import Architecture, Attention, LayerGroup, Mlp
from model.operators.compressed_attention import compressed_attention_block, hyper_connection
from model.operators.formulas import (
    LINEAR_CHUNK, MLA_ABSORB_MAX_T, ONE, SHARED_QUANT_INPUT, ZERO, N, Operator, busiest_assignments, busiest_touched,
    collective, elementwise, gemm, heads_per_rank, keys_read, keys_seen, kv_heads_per_rank, moe_tokens, norm, ranks_hit,
    attention_depth, softmax_attention_core, sparse_keys_read,
)
from model.operators.symbols import (
    B, C, T, b_a, b_disp, b_e, b_emb, b_kv, b_state, b_u, b_w, e_red, ep, ep_nodes, etp, ll_decode, ll_prefill, moe_a2a, moe_ag,
    moe_imbalance, n_logit, q_e, tp,
)
from model.precision import QUANT_MODULES


def _with(op: Operator, **changes) -> Operator:
    from dataclasses import replace

    return replace(op, **changes)


# ---------------------------------------------------------------------------------------------------------
# attention blocks

def _softmax_block(a: Attention, d: int, norm_bias: bool) -> list[Operator]:
    h = heads_per_rank(a.num_heads)
    hk = kv_heads_per_rank(a.num_kv_heads)
    q_width = a.num_heads * a.head_dim * (2 if a.output_gate else 1)
    kv_width = a.kv_width
    full_qkv = d * (q_width + kv_width) + ((q_width + kv_width) if a.qkv_bias else 0)
    ops = [
        gemm("qkv_proj", N, h * a.head_dim * (2 if a.output_gate else 1) + hk * a.kv_features_per_head, d,
             bias=a.qkv_bias, full_params=sp.Integer(full_qkv),
             description="fused Q, K, V projection (column-parallel over heads)"),
    ]
    if a.qk_norm and a.qk_norm_all_heads:
        ops += _qk_norm_all_heads(a, h, hk)
    elif a.qk_norm:
        ops.append(elementwise("qk_norm", N * (h + hk) * a.head_dim, params=2 * sp.Integer(a.head_dim),
                               description="per-head RMSNorm of q and k"))
    rot = a.rotary_dim if a.rotary_dim is not None else a.head_dim
    ops.append(elementwise("rotary", N * (h + hk) * rot, flops_per_element=3,
                           description="rotary position embedding applied to q and k"))
    if a.sparse_topk and a.indexer_heads:
        ops += _indexer(a, d)
    ops.append(softmax_attention_core("attention", a.num_heads, a.num_kv_heads, a.head_dim, a.v_head_dim, a.window,
                                      sinks=a.sinks, topk=a.sparse_topk))
    if a.output_gate:
        ops.append(elementwise("attn_gate", N * h * a.v_head_dim, reads=2, flops_per_element=4,
                               description="sigmoid output gate of gated attention"))
    ops.append(gemm("o_proj", N, d, h * a.v_head_dim, bias=a.o_bias,
                    full_params=sp.Integer(a.num_heads * a.v_head_dim * d + (d if a.o_bias else 0)),
                    description="attention output projection (row-parallel)"))
    return ops


QK_NORM_STAT_BYTES = 4  # the mean squares are all-reduced in fp32 (q.to(torch.float32).pow(2).mean(...))


def _qk_norm_all_heads(a: Attention, h: sp.Expr, hk: sp.Expr) -> list[Operator]:
    """RMSNorm of the whole q (all heads) and of the whole k (MiniMax-M2, qk_norm_type per_layer). A TP rank holds
    h of the heads, so each token's mean square needs every rank's partial one: a kernel for the partial mean
    squares, one all-reduce of two fp32 numbers per token (q's and k's, concatenated), then the scaling kernel.
    vLLM MiniMaxText01RMSNormTP.forward_qk (vllm/model_executor/layers/mamba/linear_attn.py; one all-reduce for
    q and k since PR #31493, Dec 2025; the fused all-reduce + norm kernel is the opt-in pass_config
    fuse_minimax_qk_norm, PR #39782) and SGLang's RMSNormTP (PR #14416: "summation, all_reduce, and the remaining
    norm operation") run the same three steps. On one rank nothing is reduced and the two passes are one kernel
    (the partial pass and the all-reduce vanish at tp = 1)."""
    width = (h + hk) * a.head_dim
    split = sp.Min(tp - 1, 1)  # 0 on one rank, 1 on several
    return [
        elementwise("qk_norm_sumsq", split * N * width, writes=0, flops_per_element=2,
                    description="partial mean squares of q and k over this rank's heads (fp32)"),
        collective("qk_norm_all_reduce", "all_reduce", "tp", split * N * 2 * QK_NORM_STAT_BYTES,
                   "all-reduce of the q and k mean squares across the TP ranks (norm over all heads)"),
        elementwise("qk_norm", N * width, params=width, full_params=sp.Integer((a.num_heads + a.num_kv_heads)
                                                                                * a.head_dim),
                    description="RMSNorm of q and k over all heads: scale by the reduced mean squares"),
    ]


def _mla_block(a: Attention, d: int) -> list[Operator]:
    """DeepSeek multi-head latent attention. The latent KV cache (kv_lora_rank + rope dims per token) is
    replicated on every tensor-parallel rank."""
    h = heads_per_rank(a.num_heads)
    nope, rope, dv, r_kv = a.qk_nope_head_dim, a.qk_rope_head_dim, a.v_head_dim, a.kv_lora_rank
    latent = r_kv + rope
    ops: list[Operator] = []
    if a.q_lora_rank:
        ops.append(gemm("q_a_proj", N, a.q_lora_rank, d, replicated=True, description="query down-projection (replicated)"))
        ops.append(elementwise("q_a_norm", N * a.q_lora_rank, params=sp.Integer(a.q_lora_rank)))
        ops.append(gemm("q_b_proj", N, h * (nope + rope), a.q_lora_rank,
                        full_params=sp.Integer(a.q_lora_rank * a.num_heads * (nope + rope)),
                        description="query up-projection (column-parallel)"))
    else:
        ops.append(gemm("q_proj", N, h * (nope + rope), d, full_params=sp.Integer(d * a.num_heads * (nope + rope))))
    kv_a = gemm("kv_a_proj", N, latent, d, replicated=True,
                description="KV down-projection to the latent plus the shared RoPE key (replicated)")
    if a.q_lora_rank:  # one GEMM with q_a over one quantized input in the engines (SGLang fused_qkv_a_proj_with_mqa)
        kv_a = _with(kv_a, tags=kv_a.tags + (SHARED_QUANT_INPUT,))
    ops.append(kv_a)
    ops.append(elementwise("kv_a_norm", N * r_kv, params=sp.Integer(r_kv)))
    absorbed = sp.StrictLessThan(T, MLA_ABSORB_MAX_T + 1)
    # kv_b_proj: naive mode decompresses the latent of every position (prefix included) to per-head K_nope, V;
    # absorbed mode folds W_UK into the query and W_UV into the output: same weights, applied to the N queries.
    ctx = B * (C + T)
    kvb_full = sp.Integer(r_kv * a.num_heads * (nope + dv))
    m_kvb = sp.Piecewise((N, absorbed), (ctx, True))
    ops.append(Operator(
        name="kv_b_proj", kind="gemm", weight_role="dense",
        flops=2 * m_kvb * h * (nope + dv) * r_kv,
        weight_bytes=h * (nope + dv) * r_kv * b_w,
        act_bytes=sp.Piecewise((N * h * (nope + r_kv + r_kv + dv) * b_a, absorbed),
                               (ctx * (r_kv + h * (nope + dv)) * b_a, True)),
        m=m_kvb, n=h * (nope + dv), k=sp.Integer(r_kv), params=h * (nope + dv) * r_kv, active_params=kvb_full,
        resident_bytes=h * (nope + dv) * r_kv * b_w,
        description="latent K/V up-projection (naive prefill) or its absorbed per-head form (decode)",
    ))
    if a.sparse_topk and a.indexer_heads:
        ops += _indexer(a, d)
    seen = keys_seen(a.sparse_topk)  # DSA: a query attends to min(position, k) keys, as a window of k would
    read = keys_read(None) if not a.sparse_topk else sparse_keys_read(None, a.sparse_topk)
    ops.append(Operator(
        name="attention", kind="attention", weight_role="none", tags=("per_sequence", "mla"),  # MLA kernels
        flops=sp.Piecewise((B * h * (2 * latent + 2 * r_kv) * seen, absorbed),
                           (B * h * (2 * (nope + rope) + 2 * dv) * seen, True)),
        act_bytes=sp.Piecewise((N * h * (latent + r_kv) * b_a, absorbed), (N * h * (nope + rope + dv) * b_a, True)),
        kv_read_bytes=B * read * latent * b_kv,
        kv_write_bytes=N * latent * b_kv,
        cache_bytes=B * (C + T) * latent * b_kv,
        m=sp.Piecewise((T * h, absorbed), (T, True)),  # absorbed: all heads share the one latent KV head
        n=read,  # KV length the queries run over
        k=sp.Piecewise((attention_depth(latent, r_kv), absorbed),
                       (attention_depth(nope + rope, dv), True)),  # head dimension
        description="MLA attention: over the latent cache (absorbed, T <= %d) or decompressed MHA" % MLA_ABSORB_MAX_T,
    ))
    ops.append(gemm("o_proj", N, d, h * dv, full_params=sp.Integer(a.num_heads * dv * d)))
    return ops


def _indexer(a: Attention, d: int) -> list[Operator]:
    """Lightning indexer of DeepSeek sparse attention (DeepSeek-V3.2 / GLM-5): index queries (from the query
    latent, or the hidden state without one), one shared index key per token, per-head weights; it scores every
    cached key (2 * heads * dim FLOPs per query-key pair) and keeps its own key cache of `indexer_dim` per token.
    Replicated on every tensor-parallel rank, as engines run it."""
    hi, di = a.indexer_heads, a.indexer_dim
    q_in = a.q_lora_rank or d
    return [
        gemm("indexer_q_proj", N, sp.Integer(hi * di), q_in, replicated=True, description="indexer query projection"),
        gemm("indexer_k_proj", N, sp.Integer(di), d, replicated=True, description="indexer key projection"),
        elementwise("indexer_k_norm", N * di, params=sp.Integer(2 * di), description="LayerNorm of the index key"),
        # the engines leave it unquantized (SGLang nsa_indexer.py "weight_proj is not quantized", quant_config=None;
        # vLLM's Indexer the same)
        gemm("indexer_weights_proj", N, sp.Integer(hi), d, role="unquantized", replicated=True,
             description="per-head index weights (16-bit)"),
        # DeepSeek-V3.2's Indexer.forward (deepseek-ai/DeepSeek-V3.2-Exp inference/model.py), as SGLang runs it
        # (srt/layers/attention/nsa/nsa_indexer.py, forward_cuda): rotary on the rope slice of q and k (one call),
        # a Hadamard transform of q and of k (rotate_activation), FP8 quantization of q and of k with one scale per
        # 128 (act_quant), the q scales folded into the head weights: seven kernels, then the scores, then top-k
        _with(elementwise("indexer_rotate", N * (hi + 1) * di, flops_per_element=10,
                          description="rotary on the rope slice of q and k, then a Hadamard transform of each"),
              kernels=3),
        _with(elementwise("indexer_quant", N * (hi + 1) * di, flops_per_element=3,
                          description="FP8 quantization of q and k (one scale per 128), q scales folded into the "
                          "head weights"), kernels=3),
        Operator(
            name="indexer", kind="attention", weight_role="none", tags=("per_sequence",),
            flops=B * hi * 2 * di * keys_seen(None),
            act_bytes=N * (hi * di + hi) * b_a + N * (C + T) * 4,  # q, weights in; fp32 scores out
            kv_read_bytes=B * keys_read(None) * di * b_kv,
            kv_write_bytes=N * di * b_kv,
            cache_bytes=B * (C + T) * di * b_kv,
            m=T * hi,
            n=keys_read(None),
            k=attention_depth(di, 0),  # scores only: 2 * di FLOPs per pair
            description="indexer scores (fp32) of every cached key",
        ),
        Operator(
            name="indexer_topk", kind="elementwise", weight_role="none", tags=("per_sequence",),
            flops=N * (C + T) * 2,
            act_bytes=N * (C + T) * 4 + N * a.sparse_topk * 4,  # fp32 scores in, int32 indices out
            description=f"top-{a.sparse_topk} selection over the index scores (its own kernel)",
        ),
    ]


def _linear_attention_block(a: Attention, d: int) -> list[Operator]:
    """Gated DeltaNet (Qwen3-Next/3.5) or Mamba-2 (Nemotron-H): per value head a d_k x d_v recurrent state, a short
    causal conv, gates."""
    hk = sp.Integer(a.linear_key_heads) / tp
    hv = sp.Integer(a.linear_value_heads) / tp
    dk, dv = a.linear_key_dim, a.linear_value_dim
    qkvz = 2 * a.linear_key_heads * dk + 2 * a.linear_value_heads * dv
    conv_ch = 2 * a.linear_key_heads * dk + a.linear_value_heads * dv
    conv_ch_rank = 2 * hk * dk + hv * dv
    # Mamba-2 (SSD) is the same recurrence shape: keys B and queries C of d_state per group, values x of head_dim
    # per head, output gate z; it projects one dt per head (DeltaNet: beta and decay), keeps A_log, D and dt_bias
    # per head (DeltaNet: A_log, dt_bias), a conv bias, and a gated norm over all of d_inner (DeltaNet: d_v)
    mamba = a.linear_variant == "mamba2"
    gates = 1 if mamba else 2
    per_head = 3 if mamba else 2
    conv_bias = conv_ch_rank if mamba else 0
    conv_bias_full = conv_ch if mamba else 0
    norm_rank = hv * dv if mamba else sp.Integer(dv)
    norm_full = a.linear_value_heads * dv if mamba else dv
    ops = [
        gemm("in_proj_qkvz", N, 2 * hk * dk + 2 * hv * dv, d, full_params=sp.Integer(d * qkvz),
             description="input projection to q, k, v and the output gate z"),
        gemm("in_proj_ba", N, gates * hv, d, full_params=sp.Integer(d * gates * a.linear_value_heads),
             description="input projection to the write strength beta and decay a" if not mamba
             else "input projection to the per-head step size dt"),
        Operator(
            name="short_conv", kind="elementwise", weight_role="none", tags=("per_sequence",),
            flops=2 * a.conv_kernel * conv_ch_rank * N,
            weight_bytes=(a.conv_kernel * conv_ch_rank + conv_bias) * b_a,
            act_bytes=2 * N * conv_ch_rank * b_a,
            kv_read_bytes=B * (a.conv_kernel - 1) * conv_ch_rank * b_a,
            kv_write_bytes=B * (a.conv_kernel - 1) * conv_ch_rank * b_a,
            cache_bytes=B * (a.conv_kernel - 1) * conv_ch_rank * b_a,
            params=a.conv_kernel * conv_ch_rank + conv_bias,
            active_params=sp.Integer(a.conv_kernel * conv_ch + conv_bias_full),
            description="causal depthwise conv over q, k, v with a rolling state of kernel-1 tokens",
        ),
        Operator(
            name="linear_attention", kind="linear_attention", weight_role="none", tags=("per_sequence",),
            # recurrent delta rule ~6 d_k d_v per token and head; chunkwise prefill adds the intra-chunk term
            flops=N * hv * (6 * dk * dv + 2 * sp.Min(T, LINEAR_CHUNK) * (dk + dv)),
            act_bytes=N * (2 * hk * dk + 2 * hv * dv) * b_a,
            kv_read_bytes=B * hv * dk * dv * b_state,
            kv_write_bytes=B * hv * dk * dv * b_state,
            cache_bytes=B * hv * dk * dv * b_state,
            m=sp.Min(T, LINEAR_CHUNK),
            params=per_head * hv, active_params=sp.Integer(per_head * a.linear_value_heads),
            description="gated delta-rule state update and read-out; state d_k x d_v per value head",
        ),
        elementwise("gated_norm", N * hv * dv, reads=2, flops_per_element=6, params=norm_rank,
                    full_params=sp.Integer(norm_full), description="RMSNorm of the output gated by z"),
        gemm("out_proj", N, d, hv * dv, full_params=sp.Integer(a.linear_value_heads * dv * d)),
    ]
    return ops


# ---------------------------------------------------------------------------------------------------------
# MLP blocks

def _dense_mlp(m: Mlp, d: int, *, tokens: sp.Expr = N, width: int | None = None, prefix: str = "") -> list[Operator]:
    inter = width if width is not None else m.intermediate_size
    i_rank = sp.Integer(inter) / tp
    up_width = 2 * i_rank if m.gated else i_rank
    full_up = d * inter * (2 if m.gated else 1) + (inter * (2 if m.gated else 1) if m.bias else 0)
    full_down = inter * d + (d if m.bias else 0)
    return [
        gemm(f"{prefix}gate_up_proj" if m.gated else f"{prefix}up_proj", tokens, up_width, d, bias=m.bias,
             full_params=sp.Integer(full_up),
             description="gate and up projections (column-parallel)" if m.gated else "up projection"),
        elementwise(f"{prefix}act", tokens * i_rank, reads=2 if m.gated else 1, flops_per_element=5,
                    description=f"{m.activation} activation" + (" times the gate" if m.gated else "")),
        gemm(f"{prefix}down_proj", tokens, d, i_rank, bias=m.bias, full_params=sp.Integer(full_down),
             description="down projection (row-parallel)"),
    ]


def _moe(m: Mlp, d_model: int) -> list[Operator]:
    """Router, routed experts and shared experts. A latent MoE (Nemotron-3) projects d -> latent before the experts
    and latent -> d after them, so the experts (and the dispatch) work in the latent width."""
    d = m.latent_size or d_model
    E, k, di = m.num_experts, m.top_k, m.expert_intermediate_size
    tokens = moe_tokens()
    matrices = 3 if m.gated else 2
    per_expert = matrices * d * di + ((2 * di + d) if m.expert_bias else 0)
    local_experts = sp.Integer(E) / ep
    held = (E + e_red) / ep  # experts resident per rank, redundant copies included
    touched = sp.Min(local_experts, busiest_touched(tokens, E, k) * moe_imbalance)  # on the busiest rank
    assignments = busiest_assignments(tokens, E, k) * moe_imbalance  # token-expert pairs on the busiest rank
    i_rank = sp.Integer(di) / etp
    expert_weights_rank = matrices * d * i_rank
    ops = [
        # the router stays 16-bit in a quantized model: vLLM builds it with quant_config=None ("Gate always runs at
        # half / full precision", vllm/model_executor/layers: the MoE models' `self.gate = ReplicatedLinear(...)`),
        # and the checkpoints exclude it (MiniMax `gate`, gpt-oss `mlp.router`, ModelOpt `block_sparse_moe.gate`)
        gemm("router", N, sp.Integer(E), d_model, role="unquantized", bias=m.router_bias, replicated=True,
             description="router logits over all experts (replicated, 16-bit)"),
        elementwise("topk_softmax", N * E, flops_per_element=4, description="top-k selection and routing weights"),
        Operator(
            name="experts", kind="gemm", weight_role="expert",
            flops=2 * assignments * expert_weights_rank,
            weight_bytes=touched * expert_weights_rank * b_e
            + (touched * (2 * i_rank + d) * b_a if m.expert_bias else ZERO),
            act_bytes=assignments * (d + 2 * i_rank * (matrices - 1) + i_rank + d) * b_a,
            m=assignments / touched, n=(matrices - 1) * i_rank, k=sp.Integer(d),
            params=held * (expert_weights_rank + ((2 * i_rank + d) if m.expert_bias else 0)),
            resident_bytes=held * (expert_weights_rank * b_e + ((2 * i_rank + d) * b_a if m.expert_bias else 0)),
            active_params=sp.Integer(k * per_expert),
            # five kernels per MoE layer: vLLM's fused_experts_impl (model_executor/layers/fused_moe/fused_moe.py)
            # runs moe_align_block_size, the w1 grouped GEMM, silu_and_mul, the w2 grouped GEMM and moe_sum;
            # SGLang's fused_moe_triton the same; TensorRT-LLM's CUTLASS MoE expandInputRows, GEMM1, the
            # activation, GEMM2 and finalizeMoeRouting
            kernels=5,
            description="routed experts (grouped GEMMs): only touched experts' weights are read",
        ),
    ]
    if m.latent_size:
        ops.insert(2, gemm("latent_down_proj", N, sp.Integer(d), d_model, replicated=True,
                           description="latent MoE: hidden state to the experts' latent width (replicated)"))
        ops.insert(4, gemm("latent_up_proj", N, sp.Integer(d_model), d, replicated=True,
                           description="latent MoE: expert output back to the hidden width (replicated)"))
    # FP8 experts in vLLM's and SGLang's Triton MoE quantize their activations per token group in kernels of
    # their own before each grouped GEMM (vLLM fused_experts_impl: moe_kernel_quantize_input for the hidden
    # states and for the activated intermediate; SGLang invoke_fused_moe_kernel: sglang_per_token_group_quant_fp8):
    # the tokens at this rank x d, then the busiest rank's token-expert pairs x its intermediate slice
    quant = elementwise("experts_quant", q_e * (tokens * d + assignments * i_rank),
                        description="activation quantization before each grouped GEMM (kernels of their own)")
    ops.insert(next(n for n, op in enumerate(ops) if op.name == "experts"), _with(quant, kernels=2))
    if m.shared_intermediate_size:
        shared = _dense_mlp(m, d_model, width=m.shared_intermediate_size, prefix="shared_")
        ops += shared
        if m.shared_expert_gate:
            ops.append(gemm("shared_gate", N, ONE, d_model, replicated=True, description="sigmoid gate of the shared expert"))
    return ops


EXPERT_KERNELS = ("experts_quant", "experts")  # the operators one fused MoE kernel call runs (no router, no comm)


def moe_expert_operators(m: Mlp, d_model: int) -> list[Operator]:
    """The operators of one MoE layer that an engine's fused-experts call runs, as the layer builds them: the
    experts' activation quantization (where the engine runs it as kernels of its own, symbol q_e) and the grouped
    expert GEMMs, without the router, the shared experts and the token communication. What NVIDIA's MoE kernel
    tables time (model.calibration.moe_rows)."""
    return [op for op in _moe(m, d_model) if op.name in EXPERT_KERNELS]


def _moe_comm(m: Mlp, d: int) -> list[Operator]:
    """How tokens reach the experts of an MoE layer split MoE-TP x MoE-EP over TP x attention-DP GPUs.

    - Every layout: the TP ranks of an attention-DP rank hold the same N tokens; the experts' partial outputs are
      summed by a tensor-parallel all-reduce of N d (zero with TP 1).
    - Attention DP, all-gather mode (moe_ag): the attention-DP ranks all-gather their tokens (N x ADP x d at the
      dispatch width) before the layer and reduce-scatter the partial outputs (at the activation width) after.
    - Attention DP, all-to-all mode (moe_a2a): each GPU dispatches its N / TP tokens to the expert groups its
      tokens' top-k experts sit in and combines the results back. Normal kernels send a token once per
      destination group (expected ranks_hit groups x MoE-TP GPUs); low-latency kernels (DeepEP style) send one
      copy per selected expert (k x MoE-TP), with one latency for all peers (group "moe_ll", direct algorithm).
      Messages count every copy, the local one included: the collective sends (n - 1)/n of them off-GPU.
      Across nodes, normal kernels send a token once per remote node over the NIC (group "moe_nodes", one rank
      per node; ranks_hit over ep_nodes groups) and forward it over NVLink inside the node (group "moe_local"),
      as DeepEP's internode kernels do; low-latency kernels send every copy directly (group "moe_ll").
    """
    E, k = m.num_experts, m.top_k
    gathered = moe_tokens() * d
    sent = N / tp * d
    ll = sp.Piecewise((ll_decode, sp.StrictLessThan(T, 2)), (ll_prefill, True))
    normal = moe_a2a * (1 - ll) * sent
    normal_copies = ranks_hit(E, k, ep) * etp
    node_copies = ranks_hit(E, k, ep_nodes) * sp.Piecewise((0, sp.Eq(ep_nodes, 1)), (1, True))
    ll_copies = k * etp
    return [
        collective("moe_all_gather", "all_gather", "adp", moe_ag * gathered * b_disp,
                   "attention-DP all-gather of every rank's tokens before the MoE layer"),
        collective("moe_reduce_scatter", "reduce_scatter", "adp", moe_ag * gathered * b_a,
                   "attention-DP reduce-scatter of the MoE output back to each rank's tokens"),
        collective("ep_dispatch", "all_to_all", "moe_local", normal * normal_copies * b_disp,
                   "expert-parallel dispatch all-to-all (normal kernels: one copy per destination rank, NVLink)"),
        collective("ep_combine", "all_to_all", "moe_local", normal * normal_copies * b_a,
                   "expert-parallel combine all-to-all (normal kernels, NVLink)"),
        collective("ep_dispatch_rdma", "all_to_all", "moe_nodes", normal * node_copies * b_disp,
                   "expert-parallel dispatch across nodes (normal kernels: one copy per destination node)"),
        collective("ep_combine_rdma", "all_to_all", "moe_nodes", normal * node_copies * b_a,
                   "expert-parallel combine across nodes (normal kernels)"),
        collective("ep_dispatch_ll", "all_to_all", "moe_ll", moe_a2a * ll * sent * ll_copies * b_disp,
                   "expert-parallel dispatch, low-latency kernels (one copy per selected expert)"),
        collective("ep_combine_ll", "all_to_all", "moe_ll", moe_a2a * ll * sent * ll_copies * b_a,
                   "expert-parallel combine, low-latency kernels"),
        collective("moe_tp_all_reduce", "all_reduce", "tp", N * d * b_a,
                   "tensor-parallel all-reduce of the MoE output over the attention TP ranks"),
    ]


# ---------------------------------------------------------------------------------------------------------
# assembling a step

def _layer_ops(g: LayerGroup, arch: Architecture, index: int) -> list[Operator]:
    d = arch.hidden_size
    a, m = g.attention, g.mlp
    tp_reduce = collective("tp_all_reduce", "all_reduce", "tp", N * d * b_a,
                           "tensor-parallel all-reduce of the block output")
    ops: list[Operator] = [norm("attn_norm", d, bias=arch.norm_bias)] if a.kind != "none" else []
    if arch.hyper_connections:
        ops.insert(0, hyper_connection("attn_hc", d, arch.hyper_connections))
    if a.compress_ratio is not None:
        ops += compressed_attention_block(a, d)
    elif a.kind == "mla":
        ops += _mla_block(a, d)
    elif a.kind == "linear":
        ops += _linear_attention_block(a, d)
    elif a.kind == "softmax":
        ops += _softmax_block(a, d, arch.norm_bias)
    if not g.parallel_block and a.kind != "none":
        ops.append(tp_reduce)
    if arch.hyper_connections and m.kind != "none":
        ops.append(hyper_connection("ffn_hc", d, arch.hyper_connections))
    if g.norms_per_layer >= 2 and m.kind != "none":  # a parallel block with two norms (Falcon-180B) normalises twice
        ops.append(norm("mlp_norm", d, bias=arch.norm_bias))
    if g.norms_per_layer == 4:  # Gemma-2: post-attention and post-feed-forward norms as well
        ops.append(norm("post_attn_norm", d, bias=arch.norm_bias))
        ops.append(norm("post_mlp_norm", d, bias=arch.norm_bias))
    if m.kind == "moe":
        ops += _moe(m, d)
        ops += _moe_comm(m, m.latent_size or d)  # a latent MoE (Nemotron-3) dispatches in the latent width
    elif m.kind == "dense":
        ops += _dense_mlp(m, d)
        ops.append(tp_reduce)
    return [_with(op, group=index, count=g.count) for op in ops]


def _model_ops(arch: Architecture) -> list[Operator]:
    d, V = arch.hidden_size, arch.vocab_size
    emb_params = sp.Integer(V * d)
    ops = [
        Operator(name="embedding", kind="embedding", weight_role="embedding",
                 weight_bytes=N * d * b_emb, act_bytes=N * d * b_a,
                 params=emb_params / tp, active_params=emb_params, resident_bytes=emb_params / tp * b_emb,
                 description="token embedding gather (vocab-parallel)"),
    ]
    if arch.learned_positions:
        pos = sp.Integer(arch.learned_positions * d)
        ops.append(Operator(name="position_embedding", kind="embedding", weight_role="embedding",
                            weight_bytes=N * d * b_emb, act_bytes=2 * N * d * b_a, params=pos, active_params=pos,
                            resident_bytes=pos * b_emb,
                            description="learned absolute position embedding"))
    if arch.hyper_connections:
        n = arch.hyper_connections
        ops.append(elementwise("hc_head", B * n_logit * n * d, flops_per_element=2 * n + 2,
                               params=sp.Integer(n * n * d + n + 1),
                               description=f"final collapse of the {n} hyper-connection streams"))
    ops.append(norm("final_norm", d, bias=arch.norm_bias, tokens=B * n_logit))
    lm_params = ZERO if arch.tie_word_embeddings else emb_params
    lm = gemm("lm_head", B * n_logit, sp.Integer(V) / tp, d, role="embedding", bias=arch.lm_head_bias,
              full_params=lm_params + (V if arch.lm_head_bias else 0),
              description="LM head over the positions that produce logits (vocab-parallel)")
    if arch.tie_word_embeddings:
        lm = _with(lm, params=ZERO, resident_bytes=ZERO,
                   description=lm.description + "; weights tied to the embedding")
    ops.append(lm)
    ops.append(collective("logits_all_gather", "all_gather", "tp", B * n_logit * V / tp * b_a,
                          "gather vocab-parallel logits"))
    ops.append(elementwise("sampling", B * n_logit * V, reads=2, writes=1, flops_per_element=6,
                           description="softmax, top-k/top-p and sampling over the vocabulary (fp32 logits)"))
    ops[-1] = _with(ops[-1], act_bytes=3 * B * n_logit * V * 4)
    return ops


# The dense linear layers of a layer, by the module a checkpoint's exclude list names (model.architecture.quant):
# the attention block's input projections (MLA, GQA, sparse-attention indexer, linear attention), its output
# projection, the shared experts, and the MLP of the dense layers.
MODULE_OPERATORS: dict[str, tuple[str, ...]] = {
    "attention": ("qkv_proj", "q_proj", "q_a_proj", "q_b_proj", "kv_a_proj", "kv_b_proj", "kv_proj",
                  "indexer_q_proj", "indexer_k_proj", "indexer_weights_proj", "in_proj_qkvz", "in_proj_ba"),
    "attention_out": ("o_proj", "out_proj"),
    "shared_experts": ("shared_gate_up_proj", "shared_up_proj", "shared_down_proj", "shared_gate"),
    "dense_mlp": ("gate_up_proj", "up_proj", "down_proj"),
}
assert tuple(MODULE_OPERATORS) == QUANT_MODULES


def _unquantize(op: Operator) -> Operator:
    """A dense GEMM whose weights the checkpoint keeps in 16 bits: bytes at b_u, role "unquantized" (the 16-bit
    tensor-core path, no activation quantization)."""
    return _with(op, weight_role="unquantized", weight_bytes=op.weight_bytes.subs(b_w, b_u),
                 resident_bytes=None if op.resident_bytes is None else op.resident_bytes.subs(b_w, b_u))


@lru_cache(maxsize=256)
def build_graph(arch: Architecture, unquantized: tuple[str, ...] = ()) -> tuple[Operator, ...]:
    """Operators of one forward step, in execution order: embedding, each layer group, head. `unquantized`:
    the modules (model.precision.QUANT_MODULES) whose dense GEMMs the checkpoint leaves in its 16-bit dtype."""
    model_ops = _model_ops(arch)
    head_start = 2 if arch.learned_positions else 1
    ops: list[Operator] = model_ops[:head_start]
    for i, g in enumerate(arch.groups):
        ops += _layer_ops(g, arch, i)
    ops += model_ops[head_start:]
    names = {n for m in unquantized for n in MODULE_OPERATORS[m]}
    return tuple(_unquantize(op) if op.weight_role == "dense" and op.name in names else op for op in ops)
