"""MLA decode split rules, by hand: FlashAttention-3's split-KV rule as SGLang runs it on Hopper (its split CTAs' query
and fp32 partial bytes, the key blocks one CTA walks), TensorRT-LLM's trtllm-gen kernel choice and KV split on
Blackwell, the per-call reduction cost of a split call; each neutral in the hand-set classes; and the staged fit
recovers the two fitted terms."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pandas as pd
import pytest

from model.calibration.importer import KERNEL_FACTS
from model.hardware import load_device
from model.roofline.decode_splits import fa3_mla_decode_splits, fa3_static_splits, trtllm_gen_mla_decode_splits
from model.roofline.efficiency_sets import ARCH_DEFAULTS, efficiency_for
from model.roofline.kernels import kernel_work, mla_split_work, predict_kernels

H100 = load_device("h100-sxm")  # 132 SMs


def _plain(**values):
    """H100 hand-set efficiency without floors: only the terms under test add time."""
    eff = efficiency_for(H100, calibration=False)
    return replace(eff, kernel_floor_s=0.0, attention_floor_s=0.0, decode_attention_floor_s=0.0, **values)


def _mla_decode(batch, heads, context):
    return pd.DataFrame([dict(kernel="decode_attention", dtype="bf16", batch=batch, heads=heads, kv_heads=1,
                              head_dim=544, kv_dim=576, context=context, mla=1)])


def test_split_forms_are_neutral_in_every_hand_set_class():
    for eff in ARCH_DEFAULTS.values():
        assert eff.mla_fa3_split == 0 and eff.mla_trtllm_gen_split == 0
        assert eff.mla_block_s == 0 and eff.mla_split_s == 0
    row = _mla_decode(1, 128, 16384)
    w = kernel_work(row)
    same, splits, chain = mla_split_work(w, row, efficiency_for(H100, calibration=False), 132.0)
    assert same is w and splits[0] == 1 and chain[0] == 0


def test_fa3_static_split_heuristic_by_hand():
    # hopper/heuristics.h num_splits_heuristic with 132 SMs, max 128 splits:
    # one m block, 2,048 key blocks: efficiency S/132 up to S = 128 (0.970); the first S >= 0.85 x 0.970 x 132 =
    # 108.8 is 109
    assert fa3_static_splits(1, 2048, 132) == 109
    # two m blocks: 2S/132 peaks at S = 66 (1.0); the first 2S/132 >= 0.85 is S = 57 (56 gives 0.848)
    assert fa3_static_splits(2, 2048, 132) == 57
    # <= 4 key blocks, or m blocks filling 80% of the SMs (105.6): no split
    assert fa3_static_splits(1, 4, 132) == 1 and fa3_static_splits(106, 2048, 132) == 1


def test_fa3_dynamic_split_by_hand():
    # batch 1, 128 heads (2 m blocks of 64), 16,384 keys (256 blocks of 64): static 57 (above);
    # flash_prepare_scheduler.cu: blocks per SM = ceil(1 x 2 x 256 x 1.1 / 132) = ceil(4.27) = 5, splits
    # ceil(256 / 5) = 52 <= 57
    assert fa3_mla_decode_splits(1, 128, 1, 16384, 64.0, 132.0)[0] == 52
    # batch 64, 64 heads, 2,048 keys (32 blocks): static ceil(0.85 x 32) = 28; blocks per SM ceil(64 x 32 x 1.1 /
    # 132) = 18, splits ceil(32 / 18) = 2
    assert fa3_mla_decode_splits(64, 64, 1, 2048, 64.0, 132.0)[0] == 2
    # 256 keys (4 blocks) never split; above 992 sequences the prepare kernel runs several CTAs and splits nothing
    assert fa3_mla_decode_splits(1, 128, 1, 256, 64.0, 132.0)[0] == 1
    assert fa3_mla_decode_splits(993, 64, 1, 131072, 64.0, 132.0)[0] == 1


def test_fa3_split_bytes_and_block_chain_by_hand():
    eff = _plain(mla_block=64.0, mla_fa3_split=1.0)
    row = _mla_decode(1, 128, 16384)
    w = kernel_work(row)
    out, splits, chain = mla_split_work(w, row, eff, 132.0)
    assert splits[0] == 52
    # 51 more query loads of 576 x 2 bytes and 52 fp32 partials of 512 x 4 + 4 bytes, written and read, per head:
    # 128 x (51 x 1,152 + 2 x 52 x 2,052) = 128 x (58,752 + 213,408) = 34,836,480 bytes
    assert out.bytes[0] - w.bytes[0] == 34_836_480 and out.qo_bytes[0] - w.qo_bytes[0] == 34_836_480
    # 104 CTAs (1 x 2 m blocks x 52) in one wave, each over ceil(256 / 52) = 5 key blocks
    assert chain[0] == 5
    # a 1 ms block step dominates: 5 ms, plus the reduction cost of a split call
    slow = replace(eff, mla_block_s=1e-3, mla_split_s=2e-6)
    assert predict_kernels(row, H100, slow)[0] == pytest.approx(5e-3 + 2e-6, rel=1e-12)
    # an unsplit call (256 keys) walks its 4 blocks and pays no reduction
    short = _mla_decode(1, 128, 256)
    assert predict_kernels(short, H100, slow)[0] == pytest.approx(4e-3, rel=1e-12)
    # GQA decode rows are untouched
    gqa = pd.DataFrame([dict(kernel="decode_attention", dtype="bf16", batch=1, heads=32, kv_heads=8, head_dim=128,
                             context=16384)])
    assert predict_kernels(gqa, H100, slow)[0] == predict_kernels(gqa, H100, eff)[0]


def test_trtllm_gen_kernel_choice_and_kv_split_by_hand():
    sms = 148.0  # B200
    # batch 1, 64 heads, 4,096 keys: low-latency kernel (1 x 4 x 2 = 8 <= 148); 4 head CTAs, k = min(32 tiles of 128,
    # 148 // 4 = 37) = 32: 128 CTAs; batch 1 (correction 1): 128 <= 148 but 256 > 148, so the 512-wide values split
    # over 2 CTAs: 8 head CTAs, k = min(32, 148 // 8 = 18) = 18, 144 CTAs
    k, ctas = trtllm_gen_mla_decode_splits(1, 64, 1, 4096, sms)
    assert k[()] == 18 and ctas[()] == 144
    # batch 8, 128 heads, 8,192 keys: 8 x 8 x 2 = 128 <= 148, low latency; k = min(64, 148 // 64 = 2) = 2, 128 CTAs;
    # 128 x 2 (correction) = 256 > 148: no value split
    k, ctas = trtllm_gen_mla_decode_splits(8, 128, 1, 8192, sms)
    assert k[()] == 2 and ctas[()] == 128
    # batch 16, 128 heads: 16 x 8 x 2 = 256 > 148, the high-throughput kernel (64 heads per CTA, a 2-CTA pair for
    # 128): no split, 32 CTAs
    k, ctas = trtllm_gen_mla_decode_splits(16, 128, 1, 131072, sms)
    assert k[()] == 1 and ctas[()] == 32


def test_trtllm_gen_split_calls_pay_the_reduction_once():
    b200 = load_device("b200")
    eff = replace(efficiency_for(b200, calibration=False), mla_block=64.0, mla_trtllm_gen_split=1.0)
    split, whole = _mla_decode(8, 128, 8192), _mla_decode(16, 128, 8192)
    paid = replace(eff, mla_split_s=5e-6)
    assert predict_kernels(split, b200, paid)[0] - predict_kernels(split, b200, eff)[0] == pytest.approx(5e-6)
    assert predict_kernels(whole, b200, paid)[0] == predict_kernels(whole, b200, eff)[0]


def test_split_rules_are_engine_facts():
    assert KERNEL_FACTS[("sglang", "hopper")]["mla_fa3_split"] == 1.0
    assert KERNEL_FACTS[("trtllm", "blackwell")]["mla_trtllm_gen_split"] == 1.0
    for key, facts in KERNEL_FACTS.items():
        if key != ("sglang", "hopper"):
            assert "mla_fa3_split" not in facts, key
        if key != ("trtllm", "blackwell"):
            assert "mla_trtllm_gen_split" not in facts, key


def test_staged_fit_recovers_the_block_step_and_the_split_reduction():
    from model.calibration.importer import fit_rows
    from tests.test_calibration_import import TRUE, mla_rows, synthetic_rows

    mla = dict(mla_attention_scale=1.1, mla_roofline_p=3.0, mla_qo_mem_scale=0.5, mla_decode_floor_s=11e-6,
               mla_prefill_floor_s=7e-6, mla_block_s=2e-6, mla_split_s=3e-6)
    facts = {"mla_block": 64.0, "mla_fa3_split": 1.0}
    true = replace(TRUE, **facts, **mla)
    rows = pd.concat([synthetic_rows(true), mla_rows(true)], ignore_index=True)
    result = fit_rows(rows, H100, facts=facts)
    assert result.params["mla_fa3_split"] == 1.0
    for name, tol in {"mla_block_s": 0.15, "mla_split_s": 0.3, "mla_decode_floor_s": 0.15}.items():
        assert result.params[name] == pytest.approx(mla[name], rel=tol), name
    held = result.rows[(result.rows["split"] != "fit") & result.rows["family"].str.startswith("mla")]
    assert float(np.median(np.abs(held["after"] / held["measured_s"] - 1))) < 0.03
