"""The 89 aiconfigurator-core model configs (catalogue/aic/): each is expressed or refused with the feature named;
new headline models match their published parameter counts; new operators match hand derivations."""

from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from model import api
from model.architecture import aic_ids, load_architecture
from model.architecture.decoder import UNSUPPORTED
from model.errors import RidgeplanError
from model.operators.memory import kv_cache_bytes
from model.operators.params import parameter_counts

# Refused, with the config field that names the missing feature (kept exact so that a change is visible).
REFUSED = {"moonshotai/Kimi-K3": "linear_attn_config"}


def test_all_89_configs_are_present():
    assert len(aic_ids()) == 89


@pytest.mark.parametrize("ident", aic_ids())
def test_each_config_is_expressed_or_refused_by_feature(ident):
    if ident in REFUSED:
        with pytest.raises(RidgeplanError) as err:
            load_architecture(ident)
        key = REFUSED[ident]
        assert key in str(err.value) and UNSUPPORTED[key].split(" (")[0] in str(err.value)
        return
    arch = load_architecture(ident)
    step = api.deployment(arch, "b200").step(1, 1, 1024)
    t = float(step.time_s[0])
    assert math.isfinite(t) and t > 0
    kv = float(kv_cache_bytes(arch, 1024)[0])
    assert math.isfinite(kv) and kv > 0
    assert parameter_counts(arch).total > 0


def test_share_expressed():
    share = 1 - len(REFUSED) / len(aic_ids())
    print(f"expressed {len(aic_ids()) - len(REFUSED)}/{len(aic_ids())} = {share:.1%}; refused: {sorted(REFUSED)}")
    assert share >= 0.95  # 88/89 = 98.9%


# ---- published parameter counts (within 1%, or the publisher's rounding) -------------------------------------

@pytest.mark.parametrize("ident, total, active, excludes, source", [
    ("MiniMaxAI/MiniMax-M2.5", 230e9, 10e9, 2, "MiniMax-M2 card: 230B total, 10B active"),
    ("zai-org/GLM-5", 744e9, 40e9, 2, "Z.ai GLM-5 announcement: 744B total, 40B active"),
    ("Qwen/Qwen3.5-397B-A17B", 397e9, 17e9, 0, "Qwen3.5 card: 397B total, 17B active"),
    ("deepseek-ai/DeepSeek-R1", 671e9, 37e9, 1, "DeepSeek-R1/V3 card: 671B total, 37B active"),
    ("nvidia/DeepSeek-V3.1-NVFP4", 671e9, 37e9, 1, "DeepSeek-V3.1 card: 671B total, 37B active"),
    ("nvidia/NVIDIA-Nemotron-3-Nano-30B-A3B-BF16", 31.6e9, 3.6e9, 0,
     "Nemotron 3 Nano card: 31.6B total, ~3.6B active incl. embeddings"),
])
def test_published_counts(ident, total, active, excludes, source):
    p = parameter_counts(load_architecture(ident))
    assert p.total == pytest.approx(total, rel=0.01), source
    # active counts are published to two digits: one unit of the last digit
    assert p.active - excludes * p.vocab_matrix == pytest.approx(active, abs=10 ** (math.floor(math.log10(active)) - 1)), source


@pytest.mark.parametrize("ident, total, active", [
    # the hub name states the counts ("122B-A10B": 122B total, 10B active), rounded to the digits shown
    ("Qwen/Qwen3.5-122B-A10B", "122", "10"), ("Qwen/Qwen3.5-35B-A3B", "35", "3"), ("Qwen/Qwen3.5-27B", "27", None),
    ("Qwen/Qwen3-30B-A3B", "30", "3"), ("Qwen/Qwen3-Coder-480B-A35B-Instruct", "480", "35"),
    ("nvidia/NVIDIA-Nemotron-3-Super-120B-A12B-FP8", "120", "12"),
    ("nvidia/NVIDIA-Nemotron-3-Ultra-550B-A55B-BF16", "550", "55"),
    ("google/gemma-4-26B-A4B", "26", "4"), ("meta-llama/Llama-4-Maverick-17B-128E-Instruct", None, "17"),
    ("meta-llama/Llama-4-Scout-17B-16E-Instruct", None, "17"),
    ("nvidia/Llama-3_3-Nemotron-Super-49B-v1", "49", "49"),
])
def test_counts_stated_by_the_hub_name(ident, total, active):
    """Counts in billions within one unit of the last digit the name shows (active counts with or without the
    vocabulary matrices, as publishers differ)."""
    p = parameter_counts(load_architecture(ident))
    if total:
        assert abs(p.total / 1e9 - int(total)) <= max(1.0, 0.01 * int(total))
    if active:
        options = [(p.active - k * p.vocab_matrix) / 1e9 for k in (0, 1, 2)]
        assert min(abs(a - int(active)) for a in options) <= 1.0, options


@pytest.mark.parametrize("ident, total, active, rel", [
    # DeepSeek-V4 announcement and model cards: V4-Flash 284B total / 13B active, V4-Pro 1.6T / 49B (rounded)
    ("deepseek-ai/DeepSeek-V4-Flash", 284e9, 13e9, 0.01), ("sgl-project/DeepSeek-V4-Flash-FP8", 284e9, 13e9, 0.01),
    ("deepseek-ai/DeepSeek-V4-Pro", 1.6e12, 49e9, 0.0625), ("nvidia/DeepSeek-V4-Pro-NVFP4", 1.6e12, 49e9, 0.0625),
])
def test_deepseek_v4_counts(ident, total, active, rel):
    """Flash is stated to three digits (1%); Pro's "1.6T" to two (one unit of the last digit: 0.1T / 1.6T)."""
    p = parameter_counts(load_architecture(ident))
    assert p.total == pytest.approx(total, rel=rel)
    options = [(p.active - k * p.vocab_matrix) for k in (0, 1, 2)]
    assert min(abs(a - active) for a in options) <= 1e9


def test_deepseek_v4_kv_at_1m_by_hand():
    """DeepSeek-V4-Pro KV cache of one 1M-token sequence in bf16, published as 9.62 GiB. By hand, C = 2^20 tokens,
    entries of head_dim 512 at 2 bytes, 61 layers: 30 CSA layers keep C/4 entries of 512 plus indexer keys of 128,
    31 HCA layers C/128 entries of 512, every layer a 128-token window:
    30 x 262,144 x 640 x 2 + 31 x 8,192 x 512 x 2 + 61 x 128 x 512 x 2 = 10,334,568,448 B = 9.6247 GiB."""
    a = load_architecture("deepseek-ai/DeepSeek-V4-Pro")
    by_hand = 30 * 262_144 * 640 * 2 + 31 * 8_192 * 512 * 2 + 61 * 128 * 512 * 2
    assert float(kv_cache_bytes(a, 2**20)[0]) == pytest.approx(by_hand, rel=1e-6)
    assert by_hand / 2**30 == pytest.approx(9.62, abs=0.005)


def test_deepseek_v4_layer_layout():
    a = load_architecture("deepseek-ai/DeepSeek-V4-Flash")
    layout = {g.attention.compress_ratio: g.count for g in a.groups}
    assert layout == {0: 2, 4: 21, 128: 20}  # [0, 0, 4] + [128, 4] x 20 (+ one MTP entry)
    assert a.hyper_connections == 4 and all(g.attention.shared_kv for g in a.groups)
    assert load_architecture("deepseek-ai/DeepSeek-V4-Flash").quantization["experts"] == "mxfp4"
    assert load_architecture("nvidia/DeepSeek-V4-Flash-NVFP4").quantization["experts"] == "nvfp4"


def test_kimi_k25_count_by_hand():
    """Kimi-K2.5 (text model): published "1T total, 32B active" (card). Hand derivation from its config:
    routed experts 60 layers x 384 x 3 x 7168 x 2048 = 1,014,686,023,680; the config-implied total is
    1,026,408,232,448 (2.6% above "1T", 1.3% below the K2 report's 1.04T)."""
    a = load_architecture("moonshotai/Kimi-K2.5")
    p = parameter_counts(a)
    assert p.by_operator["experts"] == 60 * 384 * 3 * 7168 * 2048
    assert p.total == pytest.approx(1.0264e12, rel=1e-4)
    assert p.total == pytest.approx(1.0e12, rel=0.05) and p.active == pytest.approx(32e9, rel=0.03)
    assert a.groups[0].attention.kind == "mla" and a.groups[-1].mlp.num_experts == 384


# ---- new operators by hand ----------------------------------------------------------------------------------

def test_mamba2_mixer_params_by_hand():
    """Nemotron-3-Nano Mamba-2 mixer: d 2688, 64 heads x 64 (d_inner 4096), 8 groups x state 128, conv 4.
    in_proj: d x (2*4096 + 2*8*128 + 64) = 2688 x 10304; conv: (4096 + 2048) x 4 + bias 6144;
    A_log, D, dt_bias: 3 x 64; gated norm 4096; out_proj 4096 x 2688."""
    a = load_architecture("nvidia/NVIDIA-Nemotron-3-Nano-30B-A3B-BF16")
    mamba = next(g for g in a.groups if g.attention.linear_variant == "mamba2" and g.mlp.kind == "none")
    d = a.hidden_size
    assert d == 2688
    by_hand = d * 10304 + 6144 * 4 + 6144 + 3 * 64 + 4096 + 4096 * d + d  # + the block's norm
    from model.operators.graph import build_graph

    ops = [o for o in build_graph(a) if o.group == a.groups.index(mamba)]
    assert sum(float(o.active_params) for o in ops) == pytest.approx(by_hand)


def test_nas_blocks_by_hand():
    """Llama-3.3-Nemotron-Super-49B: 31 of 80 layers have no attention; ffn_mult 5.25 on hidden 8192 gives
    int(2 * 5.25 * 8192 / 3) = 28,672 (already a multiple of 256), ffn_mult 1.3125 gives 7,168, 0.5 gives 2,816
    (2,730 rounded up to 256); attention layers have 64 / 8 = 8 KV heads."""
    a = load_architecture("nvidia/Llama-3_3-Nemotron-Super-49B-v1")
    assert sum(g.count for g in a.groups if g.attention.kind == "none") == 31
    widths = {g.mlp.intermediate_size for g in a.groups}
    assert {28672, 7168, 2816} <= widths
    assert {g.attention.num_kv_heads for g in a.groups if g.attention.kind == "softmax"} == {8}
    kv = float(kv_cache_bytes(a, 1000)[0]) / 1000  # 49 attention layers x 8 x 128 x 2 x 2 B per token
    assert kv == pytest.approx(49 * 8 * 128 * 2 * 2)


def test_nemotron_h_pairs_blocks():
    a = load_architecture("nvidia/NVIDIA-Nemotron-3-Nano-30B-A3B-BF16")
    # 52 blocks: 23 M, 6 *, 23 E; each E follows a mixer -> 29 layers, 6 without an MLP
    assert a.num_layers == 29
    assert sum(g.count for g in a.groups if g.mlp.kind == "none") == 6


def test_dsa_kv_bytes_and_keys_by_hand():
    """GLM-5 (bf16 KV): per layer and token the MLA latent (512 + 64) and the indexer key (128), 2 bytes each:
    (576 + 128) x 2 = 1,408 B; 78 layers -> 109,824 B per token. Attention reads at most index_topk = 2048 keys."""
    from model.operators.graph import build_graph
    from model.operators.symbols import B, C, T, b_kv, tp

    a = load_architecture("zai-org/GLM-5")
    ops = build_graph(a)
    cache = sum(o.cache_bytes * o.count for o in ops)
    per_token = float(cache.subs({B: 1, T: 1, C: 99_999, b_kv: 2, tp: 1})) / 100_000
    assert per_token == pytest.approx(78 * 1408)
    attn = next(o for o in ops if o.name == "attention")
    read = attn.kv_read_bytes.subs({B: 1, T: 1, b_kv: 2})
    assert float(read.subs(C, 100_000)) == pytest.approx(2048 * 576 * 2)
    assert float(read.subs(C, 99)) == pytest.approx(100 * 576 * 2)


def test_qwen35_hybrid_shape():
    a = load_architecture("Qwen/Qwen3.5-397B-A17B")
    kinds = {g.attention.kind: g.count for g in a.groups}
    assert kinds == {"linear": 45, "softmax": 15}
    m = a.groups[0].mlp
    assert (m.num_experts, m.top_k, m.expert_intermediate_size, m.shared_intermediate_size, m.shared_expert_gate) == (
        512, 10, 1024, 1024, True)


def test_nvfp4_sidecar_sets_expert_format():
    d = api.deployment("nvidia/DeepSeek-V3.1-NVFP4", "b300", tp=8)
    assert d.precision.expert_weights == "nvfp4"
    assert d.device.peak("fp4") == pytest.approx(13.5e15)


def _sparse_and_dense_core():
    """(flops, kv_read, cache) of GLM-5's MLA attention with and without DSA, as numpy functions."""
    from dataclasses import replace

    import sympy as sp

    from model.operators.graph import _mla_block
    from model.operators.symbols import B, C, T, b_a, b_kv, causal, tp

    a = next(g.attention for g in load_architecture("zai-org/GLM-5").groups)
    fixed = {b_kv: 1, b_a: 2, tp: 1, causal: 1}

    def core(attn):
        op = next(o for o in _mla_block(attn, 6144) if o.name == "attention")
        exprs = [e.subs(fixed) for e in (op.flops, op.kv_read_bytes, op.cache_bytes)]
        return sp.lambdify((B, C, T), exprs, "numpy")

    return core(a), core(replace(a, sparse_topk=None, indexer_heads=0, indexer_dim=0))


_CORES = []


@settings(max_examples=60, deadline=None)
@given(context=st.integers(0, 300_000), new=st.integers(1, 8192), batch=st.integers(1, 64))
def test_sparse_attention_never_costs_more_than_dense(context, new, batch):
    """DSA attends to at most index_topk keys per query: its core attention FLOPs and KV reads never exceed those
    of the same MLA attending to every key; the cache holds every position either way."""
    if not _CORES:
        _CORES.extend(_sparse_and_dense_core())
    sparse, dense = (f(batch, context, new) for f in _CORES)
    assert sparse[0] <= dense[0] * (1 + 1e-12) and sparse[1] <= dense[1] * (1 + 1e-12)
    assert sparse[2] == dense[2]


def test_mamba_state_does_not_grow_with_context():
    """A Mamba-2 layer keeps heads x head_dim x d_state (+ conv tail) per sequence whatever the context."""
    from model.operators.graph import build_graph
    from model.operators.symbols import C

    a = load_architecture("nvidia/Nemotron-H-56B-Base-8K")
    m = next(g.attention for g in a.groups if g.attention.linear_variant == "mamba2")
    for op in build_graph(a):
        if op.name in ("linear_attention", "short_conv"):
            assert C not in op.cache_bytes.free_symbols
        if op.name == "linear_attention":
            from model.operators.symbols import B, b_state, tp

            state = op.cache_bytes.subs({B: 1, b_state: 4, tp: 1})
            assert state == m.linear_value_heads * m.linear_value_dim * m.linear_key_dim * 4
