"""The q/k RMSNorm over all heads (MiniMax-M2 qk_norm_type per_layer) and its TP all-reduce, against hand
derivations; the per-head qk norm and the partial rotary of nested Qwen3.5 text configs."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from model.architecture import load_architecture
from model.errors import RidgeplanError
from model.operators.compiled import compile_graph


def _softmax_attention(model):
    return [g.attention for g in load_architecture(model).groups if g.attention.kind == "softmax"]


def _row(ops, name):
    rows = [i for i, op in enumerate(ops.ops) if op.name == name]
    assert len(rows) == 1, name
    return rows[0]


def test_minimax_m25_normalises_q_and_k_over_all_heads():
    (a,) = _softmax_attention("MiniMaxAI/MiniMax-M2.5")
    assert a.qk_norm and a.qk_norm_all_heads
    assert (a.num_heads, a.num_kv_heads, a.head_dim, a.rotary_dim) == (48, 8, 128, 64)


@pytest.mark.parametrize("model", ["qwen3-235b-a22b", "MiniMaxAI/MiniMax-M3"])
def test_per_head_qk_norm_stays_per_head(model):
    assert all(a.qk_norm and not a.qk_norm_all_heads for a in _softmax_attention(model))


def test_qwen35_text_config_keeps_its_qk_norm():
    # the nested text_config names model_type qwen3_5_moe_text; its 15 gated full-attention layers have q_norm and
    # k_norm (Qwen3-Next attention class), as qwen3_5_moe does
    attn = _softmax_attention("Qwen/Qwen3.5-397B-A17B")
    assert attn and all(a.qk_norm and a.output_gate and not a.qk_norm_all_heads for a in attn)


def test_minimax_qk_norm_bytes_and_all_reduce_hand_derivation():
    # MiniMax-M2.5 decode, B = 4 sequences (N = 4 tokens), 16-bit activations, TP 4: each rank holds 48/4 = 12 query
    # heads and 8/4 = 2 KV heads of 128, so q and k hold (12 + 2) x 128 = 1,792 values per token.
    # partial mean squares: read 4 x 1,792 x 2 B = 14,336 B; all-reduce of q's and k's fp32 mean square:
    # 4 tokens x 2 x 4 B = 32 B; scaling: read and write 4 x 1,792 x 2 B twice = 28,672 B plus its weights
    # (1,792 x 2 B = 3,584 B).
    ops = compile_graph(load_architecture("MiniMaxAI/MiniMax-M2.5")).evaluate(B=4, T=1, C=1000, tp=4)
    s, r, n = _row(ops, "qk_norm_sumsq"), _row(ops, "qk_norm_all_reduce"), _row(ops, "qk_norm")
    assert ops.act_bytes[s, 0] == 4 * 1792 * 2 == 14_336
    assert ops.comm_bytes[r, 0] == 4 * 2 * 4 == 32
    assert ops.ops[r].collective == "all_reduce" and ops.ops[r].comm_group == "tp"
    assert ops.act_bytes[n, 0] == 2 * 4 * 1792 * 2 == 28_672
    assert ops.weight_bytes[n, 0] == 1792 * 2 == 3_584
    assert ops.counts[r] == 62  # one all-reduce per layer


def test_minimax_qk_norm_on_one_rank_is_one_kernel_without_reduction():
    # TP 1: (48 + 8) x 128 = 7,168 values per token, read and written once; no partial pass, nothing reduced
    ops = compile_graph(load_architecture("MiniMaxAI/MiniMax-M2.5")).evaluate(B=4, T=1, C=1000, tp=1)
    assert ops.act_bytes[_row(ops, "qk_norm_sumsq"), 0] == 0
    assert ops.comm_bytes[_row(ops, "qk_norm_all_reduce"), 0] == 0
    assert ops.act_bytes[_row(ops, "qk_norm"), 0] == 2 * 4 * 7168 * 2


def test_unknown_qk_norm_type_is_refused_by_name():
    import json
    from pathlib import Path

    import model.architecture as arch_pkg

    path = Path(arch_pkg.__file__).parent / "catalogue" / "aic" / "MiniMaxAI--MiniMax-M2.5_config.json"
    cfg = json.loads(path.read_text())
    cfg["qk_norm_type"] = "per_group"
    with pytest.raises(RidgeplanError) as e:
        load_architecture(cfg)
    assert "qk_norm_type" in str(e.value) and "per_layer" in str(e.value)


@settings(max_examples=25, deadline=None)
@given(tp=st.sampled_from([2, 4, 8]), batch=st.integers(1, 512))
def test_all_reduce_bytes_do_not_depend_on_tp_and_scale_with_tokens(tp, batch):
    # each rank contributes the same two fp32 numbers per token whatever the TP degree
    ops = compile_graph(load_architecture("MiniMaxAI/MiniMax-M2.5")).evaluate(B=batch, T=1, C=100, tp=tp)
    assert ops.comm_bytes[_row(ops, "qk_norm_all_reduce"), 0] == pytest.approx(8.0 * batch)
    assert np.all(ops.act_bytes[_row(ops, "qk_norm_sumsq")] > 0)


def test_breakdown_families_of_the_new_operators():
    from model.serving.report import operator_family

    assert operator_family("qk_norm_sumsq", "elementwise") == operator_family("qk_norm", "elementwise")
    assert operator_family("qk_norm_all_reduce", "collective") == "communication"


def test_qwen35_partial_rotary_read_from_rope_parameters():
    # transformers v5 nests partial_rotary_factor in rope_parameters: 0.25 x head_dim 256 = 64 rotated dims.
    # One token at TP 1: q and k hold 32 + 2 heads, rotary reads and writes 34 x 64 values of 2 bytes = 8,704 B
    (a,) = _softmax_attention("Qwen/Qwen3.5-397B-A17B")
    assert (a.head_dim, a.rotary_dim) == (256, 64)
    ops = compile_graph(load_architecture("Qwen/Qwen3.5-397B-A17B")).evaluate(B=1, T=1, C=100, tp=1)
    assert ops.act_bytes[_row(ops, "rotary"), 0] == 2 * 34 * 64 * 2 == 8_704
