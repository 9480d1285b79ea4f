"""The GQA/MHA attention forms of issue 15's fourth round, by hand: the decode call's per-(sequence, KV head) work
items, the prefill call's per-tile cost, the generic kernel past the flash kernels' head dimensions, TensorRT-LLM's
minimum XQA fill and its split-KV (multi-block) merge cost; each neutral in the hand-set classes."""

from __future__ import annotations

from dataclasses import replace

import pandas as pd
import pytest

from model.calibration.importer import KERNEL_FACTS
from model.hardware import load_device
from model.roofline.decode_splits import decode_split_blocks
from model.roofline.efficiency_sets import ARCH_DEFAULTS, efficiency_for
from model.roofline.kernels import decode_fallback, kernel_work, predict_kernels

H100 = load_device("h100-sxm")
BW = H100.memory.bandwidth_bytes_per_s  # 3.35e12 B/s
PEAK = H100.peak("bf16")
SMS = 132  # H100 SXM compute units (hardware_db)


def _plain(**values):
    """H100 hand-set efficiency without floors or size terms: memory at 0.8, attention at 0.5 of peak, p = 2."""
    eff = efficiency_for(H100, calibration=False)
    return replace(eff, mem_max=0.8, mem_bytes_half=0.0, kernel_floor_s=0.0, attention_floor_s=0.0,
                   decode_attention_floor_s=0.0, attention_q_half=0.0, attention_kv_half=0.0, attention_d_half=0.0,
                   attention_max=0.5, roofline_p=2.0, **values)


def _rows(kernel, **shape):
    return pd.DataFrame([dict(kernel=kernel, dtype="bf16", **shape)])


def test_the_attention_forms_are_neutral_in_every_hand_set_class():
    for eff in ARCH_DEFAULTS.values():
        assert eff.decode_item_s == 0 and eff.prefill_tile_s == 0
        assert eff.attention_wide_head_dim == 0 and eff.decode_wide_head_dim == 0 and eff.attention_wide_scale == 1
        assert eff.decode_group_min_fill == 0 and eff.decode_split_tokens == 0 and eff.decode_split_s == 0
        assert eff.decode_split_waves == 8 and eff.prefill_decode_tokens == 0


def test_decode_work_items_add_to_the_compute_term():
    # batch 1024, 32 heads on 8 KV heads, head_dim 128, 2 keys: FLOPs 1024 x 32 x 4 x 128 x 2 = 33,554,432;
    # bytes 1024 x 2 x 8 x 256 x 2 + 2 x 1024 x 32 x 128 x 2 = 8,388,608 + 16,777,216 = 25,165,824;
    # 1024 x 8 = 8,192 (sequence, KV head) items at 10 ns = 81.92 us beside the FLOPs
    row = _rows("decode_attention", batch=1024, heads=32, kv_heads=8, head_dim=128, context=2)
    w = kernel_work(row)
    assert w.flops[0] == 33_554_432 and w.bytes[0] == 25_165_824
    t_c = 33_554_432 / (PEAK * 0.5)
    t_m = 25_165_824 / (BW * 0.8)
    assert predict_kernels(row, H100, _plain())[0] == pytest.approx((t_c**2 + t_m**2) ** 0.5, rel=1e-12)
    items = _plain(decode_item_s=10e-9)
    assert predict_kernels(row, H100, items)[0] == pytest.approx(((t_c + 81.92e-6) ** 2 + t_m**2) ** 0.5, rel=1e-12)
    # prefill, MLA and the per-query-head fallback kernel's rows do not pay it
    prefill = _rows("attention", batch=8, heads=32, kv_heads=8, head_dim=128, seq_len=512)
    mla = _rows("decode_attention", batch=1024, heads=128, kv_heads=1, head_dim=544, context=2, kv_dim=576, mla=1)
    mha = _rows("decode_attention", batch=1024, heads=16, kv_heads=16, head_dim=128, context=2)
    fallback = replace(items, decode_group_limit=32.0)
    for r in (prefill, mla):
        assert predict_kernels(r, H100, items)[0] == predict_kernels(r, H100, _plain())[0]
    without = replace(fallback, decode_item_s=0.0)
    assert predict_kernels(mha, H100, fallback)[0] == predict_kernels(mha, H100, without)[0]


def test_prefill_tiles_count_sequences_kv_heads_and_packed_query_rows():
    eff = _plain(prefill_tile_s=20e-9)
    # batch 64, 32 heads on 8 KV heads (4 query heads per KV head), head_dim 128:
    # 16 tokens -> 64 packed query rows -> 1 tile per (sequence, KV head): 64 x 8 = 512 tiles = 10.24 us;
    # 100 tokens -> 400 rows -> 4 tiles each: 2,048 tiles = 40.96 us
    for seq_len, tiles in ((16, 512), (100, 2048)):
        row = _rows("attention", batch=64, heads=32, kv_heads=8, head_dim=128, seq_len=seq_len)
        w = kernel_work(row)
        assert w.shape_m[0] == seq_len * 4
        t_c = w.flops[0] / (PEAK * 0.5)
        t_m = w.bytes[0] / (BW * 0.8)
        want = ((t_c + tiles * 20e-9) ** 2 + t_m**2) ** 0.5
        assert predict_kernels(row, H100, eff)[0] == pytest.approx(want, rel=1e-12)
    decode = _rows("decode_attention", batch=64, heads=32, kv_heads=8, head_dim=128, context=1024)
    assert predict_kernels(decode, H100, eff)[0] == predict_kernels(decode, H100, _plain())[0]


def test_wide_head_dimensions_run_the_generic_kernel_at_its_own_speed():
    # with no floors a kernel at half the speed (compute and KV reads) takes exactly twice the time
    eff = _plain(attention_wide_head_dim=256.0, attention_wide_scale=0.5)
    both = replace(eff, decode_wide_head_dim=256.0)
    wide = _rows("attention", batch=2, heads=16, kv_heads=2, head_dim=512, seq_len=4096)
    flash = _rows("attention", batch=2, heads=16, kv_heads=2, head_dim=256, seq_len=4096)
    dec = _rows("decode_attention", batch=8, heads=16, kv_heads=2, head_dim=512, context=4096)
    plain = _plain()
    assert predict_kernels(wide, H100, eff)[0] == pytest.approx(2 * predict_kernels(wide, H100, plain)[0], rel=1e-12)
    assert predict_kernels(flash, H100, eff)[0] == predict_kernels(flash, H100, plain)[0]  # 256 is a flash size
    # decode calls follow decode_wide_head_dim (SGLang's decode at 512 stays on its kernel)
    assert predict_kernels(dec, H100, eff)[0] == predict_kernels(dec, H100, plain)[0]
    assert predict_kernels(dec, H100, both)[0] == pytest.approx(2 * predict_kernels(dec, H100, plain)[0], rel=1e-12)


def test_xqa_needs_a_quarter_of_the_sms_else_the_fallback_kernel_runs():
    eff = _plain(decode_group_limit=32.0, decode_group_min_fill=0.25, decode_split_tokens=128.0)
    # 1 sequence, 32 heads on 8 KV heads: 1024 keys -> history 1023 -> 7 blocks per KV head -> 56 CTAs >= 132/4 = 33:
    # XQA; 512 keys -> 3 blocks -> 24 CTAs < 33: the per-query-head kernel, reading each KV head 4 times;
    # batch 8 at 129 keys -> history 128 -> 1 block -> 64 CTAs: XQA
    table = pd.DataFrame([dict(kernel="decode_attention", dtype="bf16", batch=b, heads=32, kv_heads=8, head_dim=128,
                               context=c) for b, c in ((1, 1024), (1, 512), (8, 129))])
    w = kernel_work(table)
    out = decode_fallback(w, table, eff, SMS)
    assert out.fallback.tolist() == [False, True, False]
    # KV bytes of the 512-key row: 512 x 8 x 256 x 2 = 2,097,152, read 4 times; queries and outputs 2 x 32 x 128 x 2
    assert out.bytes[1] == 2_097_152 * 4 + 16_384 and out.shape_m[1] == 1
    # without the SM count (a device without compute_units) the rule does not apply
    assert not decode_fallback(w, table, eff, 0.0).fallback.any()


def test_the_kernel_facts_come_from_the_engines_sources():
    xqa = {"decode_group_limit": 32.0, "decode_group_min_fill": 0.25, "decode_split_tokens": 128.0,
           "decode_xqa_tile": 1.0}  # XQA's query/output tiles (test_calibration_fa3_decode)
    mla = {"mla_block": 64.0}  # FlashMLA's blocks (test_calibration_forms), on the GPUs with MLA tables
    # TensorRT-LLM's fmha_v2 context kernels on Hopper tile each query head apart (warpspec/dma.h)
    assert KERNEL_FACTS[("trtllm", "ampere")] == xqa
    assert KERNEL_FACTS[("trtllm", "hopper")] == {**xqa, **mla, "prefill_head_tiles": 1.0}
    # and the engines' MLA decode split rules (test_calibration_mla_split): trtllm-gen on Blackwell, FA3 under SGLang
    # on Hopper
    assert KERNEL_FACTS[("trtllm", "blackwell")] == {**mla, "mla_trtllm_gen_split": 1.0}
    split = {"decode_split_tokens": 128.0, "decode_split_waves": 1.0}
    gen = {"prefill_head_tiles": 1.0, "prefill_tile_waves": 1.0}  # trtllm-gen context kernels on Blackwell
    slices = {"prefill_v_slice_dim": 256.0}
    store = {"kv_store_kernel": 1.0}  # the KV-cache store kernel the tables time (test_calibration_kv_store_kernel)
    for arch in ("ampere", "hopper", "blackwell"):
        fp8 = {"gemm_k_tile_8": 64.0} if arch == "hopper" else {}  # the sm90 FP8 dispatch (test_calibration_gemm_forms)
        assert KERNEL_FACTS[("vllm", arch)] == {"attention_wide_head_dim": 256.0, "decode_wide_head_dim": 256.0,
                                                "prefill_decode_tokens": 1.0, **split, **store, **fp8,
                                                **(gen if arch == "blackwell" else {}),
                                                # fp8_block timed eagerly (test_calibration_eager_fp8)
                                                **({"gemm_eager_8b": 1.0} if arch != "ampere" else {})}
        wide = {"attention_wide_head_dim": 0.0, "attention_generic_head_dim": 192.0, **gen, **slices} \
            if arch == "blackwell" else {"attention_wide_head_dim": 256.0}
        assert KERNEL_FACTS[("sglang", arch)] == {**wide, **split, **store, **(mla if arch != "ampere" else {}),
                                                  **({"mla_fa3_split": 1.0} if arch == "hopper" else {}), **fp8,
                                                  # FA3's GQA decode tiles and split (test_calibration_fa3_decode)
                                                  **({"decode_fa3_split": 1.0} if arch == "hopper" else {}),
                                                  # DeepGEMM's SM90 block picking (test_calibration_deepgemm_waves)
                                                  **({"gemm_waves_8b": 1.0} if arch == "hopper" else {}),
                                                  # its per-tensor FP8 row tiles (test_calibration_gemm_forms)
                                                  **({"gemm_row_pad_8": 1.0} if arch == "hopper" else {})}


def test_split_kv_blocks_follow_tensorrt_llms_multi_block_count_by_hand():
    eff = _plain(decode_split_tokens=128.0)
    # history = context - 1; blocks = history // 128, at most round(sqrt(8 x that)), cut where
    # batch x KV heads x blocks / 132 SMs exceeds 8 waves, at most 6000 // batch:
    # (1, 8, 1025): 8, sqrt(64) = 8 -> 8;      (1, 8, 32769): 256, round(sqrt(2048)) = 45 -> 45;
    # (64, 8, 32769): 45, waves 64 x 8 x 45 / 132 / 8 = 21.8 -> floor(45 / 21.8) = 2;
    # (256, 8, 4097): 32 -> 16, waves 31.0 -> 0 -> 1;   (1, 8, 129): 1
    batch = [1, 1, 64, 256, 1]
    context = [1025, 32769, 32769, 4097, 129]
    blocks = decode_split_blocks(batch, 8, context, eff, SMS)
    assert blocks.tolist() == [8, 45, 2, 1, 1]
    assert decode_split_blocks(batch, 8, context, _plain(), SMS).tolist() == [1] * 5  # no split rule
    # a split call pays decode_split_s once, on top of the decode floor; unsplit calls do not
    split = replace(eff, decode_split_s=5e-6)
    table = pd.DataFrame([dict(kernel="decode_attention", dtype="bf16", batch=b, heads=32, kv_heads=8, head_dim=128,
                               context=c) for b, c in zip(batch, context)])
    extra = predict_kernels(table, H100, split) - predict_kernels(table, H100, eff)
    assert extra == pytest.approx([5e-6, 5e-6, 5e-6, 0.0, 0.0], abs=1e-15)
    # FlashAttention's and FlashInfer's planners split only below about one wave (decode_split_waves 1):
    # (64, 8, 32769): waves 64 x 8 x 45 / 132 = 174.5 -> floor(45 / 174.5) = 0 -> 1; (1, 8, 1025): 8 x 8 / 132 < 1 -> 8;
    # (8, 8, 32769): 8 x 8 x 45 / 132 = 21.8 -> floor(45 / 21.8) = 2
    one = replace(eff, decode_split_waves=1.0)
    assert decode_split_blocks([64, 1, 8], 8, [32769, 1025, 32769], one, SMS).tolist() == [1, 8, 2]


def test_one_token_prefills_pay_the_decode_floor_where_the_engine_runs_them_as_decodes():
    base = replace(_plain(), attention_floor_s=10e-6, decode_attention_floor_s=7e-6)
    eff = replace(base, prefill_decode_tokens=1.0)
    one = _rows("attention", batch=8, heads=32, kv_heads=8, head_dim=128, seq_len=1)
    two = _rows("attention", batch=8, heads=32, kv_heads=8, head_dim=128, seq_len=2)
    # the one-token prefill swaps the 10 us prefill floor for the 7 us decode floor; a two-token one keeps it
    assert predict_kernels(one, H100, base)[0] - predict_kernels(one, H100, eff)[0] == pytest.approx(3e-6, rel=1e-9)
    assert predict_kernels(two, H100, eff)[0] == predict_kernels(two, H100, base)[0]
    # and, on the decode path, no prefill tiles (64 of them at 20 ns otherwise: 8 sequences x 8 KV heads x 1 tile)
    tiles = replace(base, prefill_tile_s=20e-9)
    assert predict_kernels(one, H100, replace(tiles, prefill_decode_tokens=1.0))[0] \
        == predict_kernels(one, H100, replace(eff, prefill_tile_s=0.0))[0]
    assert predict_kernels(two, H100, replace(tiles, prefill_decode_tokens=1.0))[0] \
        == predict_kernels(two, H100, tiles)[0]
