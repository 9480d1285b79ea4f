"""Operator formulas against hand derivations written out in each test."""

from __future__ import annotations

import numpy as np
import pytest
import sympy as sp
from hypothesis import given
from hypothesis import strategies as st

from model.architecture import load_architecture
from model.operators.compiled import compile_graph
from model.operators.formulas import keys_seen
from model.operators.latex import formula_latex, operator_names
from model.operators.memory import kv_bytes_per_token, kv_cache_bytes
from model.operators.params import parameter_counts
from model.operators.symbols import C, T, causal

GiB = 2**30


def _ops(model, **scenario):
    return compile_graph(load_architecture(model)).evaluate(**scenario)


def _total(ops, quantity, kinds=None, names=None):
    values = getattr(ops, quantity)[:, 0]
    keep = [i for i, op in enumerate(ops.ops)
            if (kinds is None or op.kind in kinds) and (names is None or op.name in names)]
    return float(sum(ops.counts[i] * values[i] for i in keep))


# --- KV cache -------------------------------------------------------------------------------------------

def test_kv_bytes_per_token_llama3_70b():
    # 2 (K and V) x 80 layers x 8 KV heads x 128 head_dim x 2 bytes = 327,680
    assert kv_bytes_per_token(load_architecture("llama-3.1-70b")) == 2 * 80 * 8 * 128 * 2 == 327_680


def test_kv_bytes_per_token_deepseek_v3_mla():
    # MLA caches the latent (kv_lora_rank 512) plus the shared RoPE key (64) per layer: 61 x 576 x 2 = 70,272
    assert kv_bytes_per_token(load_architecture("deepseek-v3")) == 61 * (512 + 64) * 2 == 70_272


@pytest.mark.parametrize("model, layers, kv_heads, head_dim", [
    ("llama-2-7b", 32, 32, 128),  # MHA: 524,288
    ("yi-34b", 60, 8, 128),  # 245,760
    ("llama-3.1-405b", 126, 8, 128),  # 516,096
    ("qwen2.5-72b", 80, 8, 128),  # 327,680
])
def test_kv_bytes_per_token_catalogue_seed_a11(model, layers, kv_heads, head_dim):
    assert kv_bytes_per_token(load_architecture(model)) == 2 * layers * kv_heads * head_dim * 2


def test_kv_int8_and_fp8_halve_bytes():
    a = load_architecture("llama-3.1-70b")
    assert kv_bytes_per_token(a, b_kv=1.0) == 327_680 / 2


def test_sliding_window_caps_kv():
    # Gemma-2-27B: 23 global layers grow with context, 23 window layers stop at 4096 tokens.
    a = load_architecture("gemma-2-27b")
    per_layer = 2 * 16 * 128 * 2  # K and V, 16 KV heads, head_dim 128, 2 bytes
    s = 50_000
    expected = 23 * per_layer * s + 23 * per_layer * 4096
    assert kv_cache_bytes(a, s)[0] == pytest.approx(expected)


def test_linear_attention_state_is_constant_in_context():
    a = load_architecture("qwen3-next-80b-a3b")
    short, long = kv_cache_bytes(a, [1_000, 100_000])
    full_per_token = 12 * 2 * 2 * 256 * 2  # 12 full layers, K and V, 2 KV heads, head_dim 256, 2 bytes
    assert long - short == pytest.approx(full_per_token * 99_000)


def test_yi34b_kv_at_50k_seed_a13():
    # 245,760 B/token x 50,000 = 12.29 GB; at 4K (4,096 tokens) 1.01 GB; ratio 1M/4K = 244
    a = load_architecture("yi-34b")
    kv_50k, kv_4k, kv_1m = kv_cache_bytes(a, [50_000, 4_096, 1_000_000])
    assert kv_50k == pytest.approx(12.288e9)
    assert kv_4k == pytest.approx(1.0066e9, rel=1e-3)
    assert kv_1m / kv_4k == pytest.approx(244.1, rel=1e-3)


# --- weights --------------------------------------------------------------------------------------------

def test_llama2_7b_weight_bytes_both_vocab_matrices():
    # 6,738,415,616 params x 2 bytes = 13,476,831,232 B = 12.55 GiB (PITFALLS: 12.31 GiB drops the LM head)
    ops = _ops("llama-2-7b")
    weights = float(ops.counts @ ops.resident_bytes[:, 0])
    assert weights == 6_738_415_616 * 2
    assert weights / GiB == pytest.approx(12.55, abs=0.005)


def test_tied_embeddings_counted_once():
    p = parameter_counts(load_architecture("gemma-2-27b"))
    assert p.embedding == 256_000 * 4608  # one V x d matrix


def test_int4_weights_include_group_scales():
    # int4 g128 with an fp16 scale and a 4-bit zero per group: 4 + 20/128 = 4.15625 bits per weight
    ops = _ops("llama-2-7b", b_w=4.15625 / 8)
    dense = [i for i, op in enumerate(ops.ops) if op.weight_role == "dense"]
    per_layer = 4096 * 12288 + 4096 * 4096 + 4096 * 22016 + 11008 * 4096  # qkv, o, gate_up, down
    assert sum(ops.counts[i] * ops.resident_bytes[i, 0] for i in dense) == pytest.approx(32 * per_layer * 4.15625 / 8)


def test_mixtral_active_params_hand_count():
    # embedding + LM head: 2 x 32000 x 4096 = 262,144,000
    # per layer: attention 4096 x (4096 + 2 x 1024) + 4096 x 4096 = 41,943,040; two experts 2 x 3 x 4096 x 14336
    # = 352,321,536; router 4096 x 8 = 32,768; two norms 8,192  -> 394,305,536 per layer
    # total active = 32 x 394,305,536 + 262,144,000 + 4,096 (final norm) = 12,879,925,248
    assert parameter_counts(load_architecture("mixtral-8x7b")).active == 12_879_925_248


def test_tp_shards_weights_but_replicates_mla_latent():
    a = load_architecture("deepseek-v3")
    kv1 = kv_cache_bytes(a, 1000, tp=1)[0]
    kv8 = kv_cache_bytes(a, 1000, tp=8)[0]
    assert kv1 == kv8  # the MLA latent cache is replicated on every TP rank
    g = compile_graph(a)
    w1 = g.evaluate(tp=1)
    w8 = g.evaluate(tp=8, etp=8)  # no EP: every expert is split 8 ways like a dense MLP
    total1 = float(w1.counts @ w1.resident_bytes[:, 0])
    total8 = float(w8.counts @ w8.resident_bytes[:, 0])
    assert total1 / 8 < total8 < total1 / 7  # mostly sharded; replicated down-projections and router remain


def test_gqa_kv_heads_replicated_when_tp_exceeds_them():
    # Qwen3-235B has 4 KV heads: at TP8 each rank still holds one KV head (8 / 4 = 2x replication)
    a = load_architecture("qwen3-235b-a22b")
    assert kv_cache_bytes(a, 1, tp=8)[0] == kv_cache_bytes(a, 1, tp=4)[0] == kv_cache_bytes(a, 1, tp=1)[0] / 4


# --- FLOPs ----------------------------------------------------------------------------------------------

def test_llama2_7b_prefill_flops_hand_derivation():
    # One 2048-token prompt. GEMMs: 32 layers x 2 x 2048 x (qkv 4096x12288 + o 4096x4096 + gate_up 4096x22016
    # + down 11008x4096 = 202,375,168 weights) plus the LM head for the last position only: 2 x 4096 x 32000.
    s = 2048
    gemm = 32 * 2 * s * 202_375_168 + 2 * 4096 * 32000
    # causal attention: query i sees i keys; 4 x 32 heads x 128 x sum_{i=1..S} i per layer
    attention = 32 * 4 * 32 * 128 * s * (s + 1) // 2
    ops = _ops("llama-2-7b", B=1, T=s, C=0)
    assert _total(ops, "flops", kinds={"gemm"}) == gemm
    assert _total(ops, "flops", kinds={"attention"}) == attention
    # ~2 x non-embedding params x tokens (REFERENCE.md section 5): 2 x (6.738e9 - 2 x 32000 x 4096) x 2048
    assert gemm == pytest.approx(2 * (6.738e9 - 2 * 32000 * 4096) * s, rel=0.01)


def test_square_convention_doubles_long_prefill_attention():
    causal_ops = _ops("yi-34b", B=1, T=50_000, C=0, causal=1)
    square_ops = _ops("yi-34b", B=1, T=50_000, C=0, causal=0)
    ratio = _total(square_ops, "flops", kinds={"attention"}) / _total(causal_ops, "flops", kinds={"attention"})
    assert ratio == pytest.approx(2 * 50_000 / 50_001)


def test_decode_attention_reads_whole_cache():
    # Llama-3.1-8B decode, 16 sequences at 4,000 cached tokens: K and V of 4,001 positions x 32 layers x
    # 8 KV heads x 128 x 2 bytes each
    ops = _ops("llama-3.1-8b", B=16, T=1, C=4000)
    assert _total(ops, "kv_read_bytes", kinds={"attention"}) == 16 * 4001 * 32 * 2 * 8 * 128 * 2


def test_gemm_flops_are_2mnk():
    ops = _ops("llama-3.1-8b", B=3, T=5, C=0)
    for i, op in enumerate(ops.ops):
        if op.kind == "gemm" and op.weight_role != "expert":
            assert ops.flops[i, 0] == pytest.approx(2 * ops.m[i, 0] * ops.n[i, 0] * ops.k[i, 0])


def test_moe_decode_touches_nearly_all_experts_at_batch_32():
    # PITFALLS: MoE decode must not read only top-k experts. Uniform routing, 32 tokens, top-2 of 8:
    # expected distinct experts = 8 x (1 - (1 - 2/8)^32) = 7.9992; expert bytes read = that x 3 x 4096 x 14336 x 2
    ops = _ops("mixtral-8x7b", B=32, T=1, C=100)
    per_expert = 3 * 4096 * 14336 * 2
    expected = 8 * (1 - 0.75**32) * per_expert
    assert _total(ops, "weight_bytes", names={"experts"}) == pytest.approx(32 * expected)
    single = _ops("mixtral-8x7b", B=1, T=1, C=100)
    assert _total(single, "weight_bytes", names={"experts"}) == pytest.approx(32 * 2 * per_expert)


@given(t=st.integers(1, 300), c=st.integers(0, 5000), w=st.integers(1, 4096))
def test_window_key_count_equals_brute_force(t, c, w):
    expr = keys_seen(w).subs({causal: 1, T: t, C: c})
    brute = sum(min(c + i, w) for i in range(1, t + 1))
    assert int(sp.simplify(expr)) == brute


@given(t=st.integers(1, 300), c=st.integers(0, 5000))
def test_full_key_count_equals_brute_force(t, c):
    expr = keys_seen(None).subs({causal: 1, T: t, C: c})
    assert int(expr) == sum(c + i for i in range(1, t + 1))


def test_vectorized_evaluation_matches_scalar():
    g = compile_graph(load_architecture("deepseek-v3"))
    batch = np.array([1, 7, 64])
    tokens = np.array([1, 512, 1])
    vec = g.evaluate(B=batch, T=tokens, C=300, tp=8)
    for j in range(3):
        one = g.evaluate(B=int(batch[j]), T=int(tokens[j]), C=300, tp=8)
        np.testing.assert_allclose(vec.values[:, :, j], one.values[:, :, 0])


def test_formula_renders_latex_with_substitution():
    a = load_architecture("llama-3.1-8b")
    assert "qkv_proj" in operator_names(a)
    tex = formula_latex(a, "qkv_proj", "flops", values={"B": 2, "T": 3, "C": 0, "tp": 1})
    assert "B" in tex and "T" in tex
    # 2 x (2 x 3 tokens) x 4096 x (4096 + 2 x 1024) = 301,989,888
    assert tex.endswith(r"3.02 \times 10^{8}")


def test_attention_operators_carry_their_head_dimension_as_k():
    """The attention efficiency's head-dimension term (roofline.efficiency_forms.attention_eta) reads k = FLOPs per
    (query, key) pair per head / 4 = (d_qk + d_v) / 2: Llama-3.1-8B 128; DeepSeek-V3 MLA absorbed (decode) over
    the 576-wide latent with 512-wide values (576 + 512) / 2 = 544, decompressed (prefill)
    (128 + 64 + 128) / 2 = 160."""
    def attention(model, **scenario):
        ops = _ops(model, **scenario)
        rows = [i for i, op in enumerate(ops.ops) if op.kind == "attention"]
        return [(ops.ops[i], float(ops.k[i, 0])) for i in rows]

    assert {k for _, k in attention("llama-3.1-8b", B=1, T=1, C=1024)} == {128.0}
    decode = attention("deepseek-v3", B=1, T=1, C=1024)
    prefill = attention("deepseek-v3", B=1, T=4096, C=0)
    assert {k for _, k in decode} == {544.0} and {k for _, k in prefill} == {160.0}
    assert all("mla" in op.tags for op, _ in decode)
    assert not any("mla" in op.tags for op, _ in attention("llama-3.1-8b", B=1, T=1, C=1024))
