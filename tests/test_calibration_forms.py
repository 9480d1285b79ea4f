"""The calibration forms of issue 15's third round, by hand: the attention and MLA roofline corners, the MLA latent
read scale and decode-call floor, TensorRT-LLM's per-query-head decode fallback and the GEMV path; each neutral in the
hand-set classes."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pandas as pd
import pytest

from model.calibration.importer import KERNEL_FACTS
from model.hardware import load_device
from model.roofline.efficiency_forms import gemm_eta
from model.roofline.efficiency_sets import ARCH_DEFAULTS, efficiency_for
from model.roofline.kernel import gemm_time
from model.roofline.kernels import kernel_work, predict_kernels

H100 = load_device("h100-sxm")
BW = H100.memory.bandwidth_bytes_per_s  # 3.35e12 B/s
PEAK = H100.peak("bf16")


def _plain(**values):
    """H100 hand-set efficiency without floors or size terms: memory at mem_max, attention at attention_max."""
    eff = efficiency_for(H100, calibration=False)
    return replace(eff, mem_max=0.8, mem_bytes_half=0.0, kernel_floor_s=0.0, attention_floor_s=0.0,
                   decode_attention_floor_s=0.0, attention_q_half=0.0, attention_max=0.5, roofline_p=2.0,
                   gemm_n_half=0.0, gemm_m_half=8.0, gemm_max_16=0.8, **values)


def _decode(batch, heads, kv_heads, head_dim, context, **extra):
    return pd.DataFrame([dict(kernel="decode_attention", dtype="bf16", batch=batch, heads=heads, kv_heads=kv_heads,
                              head_dim=head_dim, context=context, **extra)])


def test_new_forms_are_neutral_in_every_hand_set_class():
    for eff in ARCH_DEFAULTS.values():
        assert eff.attention_roofline_p == 0 and eff.mla_roofline_p == 0 and eff.mla_mem_scale == 1
        assert eff.mla_decode_floor_s == 0
        assert eff.decode_group_limit == 0 and eff.decode_fallback_mem_scale == 1 and eff.gemv_mem_scale == 0
        assert float(eff.attention_p(True)) == float(eff.attention_p(False)) == eff.roofline_p
        assert not eff.gemv(1.0) and float(eff.gemm_mem_scale(1.0)) == 1.0


def test_attention_corner_replaces_the_gemm_corner_for_attention_only():
    # decode attention, batch 64, 32 heads on 8 KV heads, head_dim 128, 8192 keys:
    # FLOPs = 64 x 32 x 4 x 128 x 8192 = 8,589,934,592; bytes = 64 x 8192 x 8 x 256 x 2 + 2 x 64 x 32 x 128 x 2
    # = 2,147,483,648 + 1,048,576 = 2,148,532,224
    row = _decode(64, 32, 8, 128, 8192)
    w = kernel_work(row)
    assert w.flops[0] == 8_589_934_592 and w.bytes[0] == 2_148_532_224
    t_c = 8_589_934_592 / (PEAK * 0.5)
    t_m = 2_148_532_224 / (BW * 0.8)
    soft = _plain()
    assert predict_kernels(row, H100, soft)[0] == pytest.approx((t_c**2 + t_m**2) ** 0.5, rel=1e-12)
    hard = _plain(attention_roofline_p=16.0)
    assert predict_kernels(row, H100, hard)[0] == pytest.approx((t_c**16 + t_m**16) ** (1 / 16), rel=1e-12)
    # a GEMM keeps roofline_p
    gemm = pd.DataFrame([dict(kernel="gemm", dtype="bf16", m=4096, n=4096, k=4096)])
    assert predict_kernels(gemm, H100, hard)[0] == predict_kernels(gemm, H100, soft)[0]
    # MLA kernels take mla_roofline_p where set, else the attention corner
    eff = _plain(attention_roofline_p=3.0, mla_roofline_p=8.0)
    assert list(eff.attention_p(np.array([True, False]))) == [8.0, 3.0]


def test_mla_latent_read_scale():
    # absorbed MLA decode, batch 64, 128 heads, 131072 keys: the latent cache is 64 x 131072 x 576 x 2 B
    # = 9,663,676,416 B, plus queries and outputs 2 x 64 x 128 x 544 x 2 = 17,825,792 B
    row = _decode(64, 128, 1, 544, 131072, kv_dim=576, mla=1)
    nbytes = 9_663_676_416 + 17_825_792
    assert kernel_work(row).bytes[0] == nbytes
    eff = _plain(attention_roofline_p=50.0, mla_roofline_p=50.0, attention_mem_scale=0.9, mla_mem_scale=1.2,
                 mla_attention_scale=4.0)
    # memory-bound: at 0.8 x 0.9 x 1.2 = 0.864 of 3.35 TB/s (compute 2176 x 128 x 64 x 131072 FLOPs at 100% of
    # peak takes 2.36 ms, the stream 3.34 ms; p = 50 leaves the larger term within 1e-7)
    assert predict_kernels(row, H100, eff)[0] == pytest.approx(nbytes / (BW * 0.864), rel=1e-6)


def test_mla_decode_call_floor_replaces_the_gqa_decode_floor_for_mla_only():
    # batch 1, 128 heads, 2 keys: the busy time is far below a microsecond, the call floors dominate
    mla, gqa = _decode(1, 128, 1, 544, 2, kv_dim=576, mla=1), _decode(1, 32, 8, 128, 2)
    base = replace(_plain(), decode_attention_floor_s=7e-6)
    eff = replace(base, mla_decode_floor_s=11e-6)
    assert predict_kernels(mla, H100, eff)[0] - predict_kernels(mla, H100, base)[0] == pytest.approx(4e-6, rel=1e-9)
    assert predict_kernels(gqa, H100, eff)[0] == predict_kernels(gqa, H100, base)[0]


def test_decode_fallback_reads_the_kv_head_once_per_query_head():
    eff = _plain(decode_group_limit=32.0, decode_fallback_mem_scale=2.0, attention_roofline_p=50.0)
    # 64 query heads on 1 KV head: past XQA's 32, so one CTA per query head; batch 2, head_dim 128, 4096 keys:
    # KV bytes 2 x 4096 x 1 x 256 x 2 = 4,194,304, read 64 times = 268,435,456; queries and outputs
    # 2 x 2 x 64 x 128 x 2 = 65,536
    wide = _decode(2, 64, 1, 128, 4096)
    nbytes = 268_435_456 + 65_536
    # at 0.8 x 2.0 of the bandwidth (capped at 1): 1.0 x 3.35 TB/s; compute 2 x 64 x 512 x 4096 FLOPs at q = 1 is
    # far below it
    assert predict_kernels(wide, H100, eff)[0] == pytest.approx(nbytes / BW, rel=1e-6)
    # plain MHA also leaves XQA (TensorRT-LLM never runs vanilla MHA there); a group of 16 stays on the grouped kernel
    mha, grouped = _decode(2, 16, 16, 128, 4096), _decode(2, 64, 4, 128, 4096)
    plain = _plain(attention_roofline_p=50.0)
    assert predict_kernels(mha, H100, eff)[0] == pytest.approx(predict_kernels(mha, H100, plain)[0] * 0.8, rel=1e-6)
    assert predict_kernels(grouped, H100, eff)[0] == predict_kernels(grouped, H100, plain)[0]
    # the limit is TensorRT-LLM's on Ampere and Hopper only (kernelUtils.cpp), and no other engine's
    limits = {key: facts["decode_group_limit"] for key, facts in KERNEL_FACTS.items() if "decode_group_limit" in facts}
    assert limits == {("trtllm", "hopper"): 32.0, ("trtllm", "ampere"): 32.0}


def test_gemv_path_streams_weights_without_tile_or_row_terms():
    eff = _plain(gemv_mem_scale=0.9)
    # tiled: 0.8 x 1/16 (tile fill) x 16/(16 + 8) (row half-point at the padded tile's 16 rows); GEMV path: 0.8
    # (n half-point 0)
    assert float(gemm_eta(1, 12288, 0.8, _plain())) == pytest.approx(0.8 / 16 * 16 / 24)
    assert float(gemm_eta(1, 12288, 0.8, eff)) == pytest.approx(0.8)
    assert float(gemm_eta(17, 12288, 0.8, eff)) == pytest.approx(0.8 * 17 / 25)  # above 16 rows: the tiled curve
    # grouped MoE expert GEMMs (steps pass gemv=False for the expert role) keep the tiled curve
    assert float(gemm_eta(1, 12288, 0.8, eff, gemv=False)) == pytest.approx(0.8 / 16 * 16 / 24)
    # m = 1, n = 12288, k = 5376 (the H100 GEMV case of `ridgeplan validate`): weights 5376 x 12288 x 2 B plus the
    # activation row 5376 x 2 and output row 12288 x 2: 132,155,904 B at 0.8 x 0.9 of 3.35 TB/s = 54.79 us;
    # compute 2 x 12288 x 5376 FLOPs at 0.8 of peak: 0.17 us, p = 2 adds 0.03 %
    t = gemm_time(1, 12288, 5376, device=H100, dtype="bf16", eff=eff, bytes_per_weight=2.0)
    t_m = 132_155_904 / (BW * 0.72)
    t_c = 2 * 12288 * 5376 / (PEAK * 0.8)
    assert float(t.memory_s) == pytest.approx(t_m, rel=1e-12)
    assert float(t.busy_s) == pytest.approx((t_m**2 + t_c**2) ** 0.5, rel=1e-12)
    row = pd.DataFrame([dict(kernel="gemm", dtype="bf16", m=1, n=12288, k=5376)])
    assert predict_kernels(row, H100, eff)[0] == pytest.approx(float(t.time_s), rel=1e-12)


def test_a_gemm_below_one_tile_takes_the_time_of_the_full_tile():
    # tile 64 rows, row half-point 90 (a B300 SGLang fit), n half-point 0, ceiling 0.8, no GEMV path:
    # m = 4: 0.8 x 4/64 (tile fill) x 64/(64 + 90) (the padded tile's rows) = 0.8 x 4 x 64 / (64 x 154) = 0.020779;
    # m = 64: 0.8 x 1 x 64/154 = 0.33247; m = 128: 0.8 x 128/218 = 0.46972 (above a tile: the m ramp as before)
    eff = replace(_plain(), gemm_m_half=90.0)
    eta = gemm_eta(np.array([4.0, 64.0, 128.0]), 4096, 0.8, eff, tile=64, gemv=False)
    assert eta == pytest.approx([0.8 * 4 / 154, 0.8 * 64 / 154, 0.8 * 128 / 218])
    # compute time m / eta: the 4-row GEMM runs the 64-row tile, as long as the full tile, never longer
    assert 4 / eta[0] == pytest.approx(64 / eta[1])
    # the old m/(m + half) at m = 4 gave 0.8 x 4/64 x 4/94: 7.7x the full tile's time
    assert (4 / (0.8 * 4 / 64 * 4 / 94)) / (64 / eta[1]) == pytest.approx(94 / 4 * 64 / 154)
    # hand-set classes (half-point 0): 1 at every m, as before; m = 0 rows keep their old value
    hand = replace(_plain(), gemm_m_half=0.0)
    assert gemm_eta(np.array([1.0, 16.0, 100.0]), 4096, 0.8, hand, tile=64, gemv=False) == pytest.approx(
        [0.8 / 64, 0.8 / 4, 0.8])


def test_attention_corner_takes_per_candidate_values():
    """A stacked planner context holds one efficiency value per candidate: the corner is chosen per candidate (a
    Python `if` on the array raised in the fleet notebook)."""
    eff = replace(ARCH_DEFAULTS["hopper"], attention_roofline_p=np.array([0.0, 6.0]), mla_roofline_p=np.array([3.0, 0.0]),
                  roofline_p=np.array([2.0, 2.0]))
    assert eff.attention_p().tolist() == [2.0, 6.0]
    assert eff.attention_p(np.array([[True], [False]])).tolist() == [[3.0, 6.0], [2.0, 6.0]]


# --- MLA forms of the fourth round: absorbed SGLang prefill rows, MLA half-point scales, query/output bandwidth,
# whole 64 x 64 blocks ------------------------------------------------------------------------------------------

def _mla_prefill(batch, heads, kv_heads, head_dim, kv_dim, seq_len):
    return pd.DataFrame([dict(kernel="attention", dtype="bf16", batch=batch, heads=heads, kv_heads=kv_heads,
                              head_dim=head_dim, kv_dim=kv_dim, seq_len=seq_len, mla=1)])


def test_mla_forms_of_the_fourth_round_are_neutral_in_every_hand_set_class():
    for eff in ARCH_DEFAULTS.values():
        assert eff.mla_kv_half_scale == 1 and eff.mla_q_half_scale == 1 and eff.mla_qo_mem_scale == 1
        assert eff.mla_block == 0 and eff.mla_prefill_floor_s == 0
    # and a row predicts the same with or without them at their neutral values
    row = _decode(64, 128, 1, 544, 4096, kv_dim=576, mla=1)
    base = efficiency_for(H100, calibration=False)
    assert predict_kernels(row, H100, base)[0] == predict_kernels(row, H100, replace(base, mla_qo_mem_scale=1.0))[0]


def test_mla_half_point_scales_apply_to_mla_kernels_only():
    from model.roofline.kernel import compute_eta

    eff = replace(_plain(attention_kv_half=1000.0, mla_q_half_scale=0.5, mla_kv_half_scale=0.25), attention_q_half=8.0)
    # MLA: 0.5 x 4/(4 + 8 x 0.5) x 250/(250 + 1000 x 0.25) = 0.5 x 1/2 x 1/2 = 0.125
    assert float(compute_eta("attention", 4.0, 250.0, eff, mla=True)) == pytest.approx(0.125, rel=1e-12)
    # other attention keeps the curve: 0.5 x 4/12 x 250/1250 = 1/30
    assert float(compute_eta("attention", 4.0, 250.0, eff)) == pytest.approx(1 / 30, rel=1e-12)
    # a scale of 0 takes the term out (the fit's lower bound)
    none = replace(eff, mla_q_half_scale=0.0, mla_kv_half_scale=0.0)
    assert float(compute_eta("attention", 4.0, 250.0, none, mla=True)) == pytest.approx(0.5, rel=1e-12)


def test_mla_query_and_output_bytes_move_at_their_own_share():
    # absorbed decode, batch 1,024, 128 heads over 2 keys: latent 1,024 x 2 x 576 x 2 = 2,359,296 B; queries and
    # outputs 2 x 1,024 x 128 x 544 x 2 = 285,212,672 B. At mla_qo_mem_scale 0.5 they count twice.
    row = _decode(1024, 128, 1, 544, 2, kv_dim=576, mla=1)
    w = kernel_work(row)
    assert w.bytes[0] == 2_359_296 + 285_212_672 and w.qo_bytes[0] == 285_212_672
    eff = _plain(attention_roofline_p=50.0, mla_roofline_p=50.0, mla_attention_scale=2.0, mla_qo_mem_scale=0.5)
    # memory-bound: (2,359,296 + 2 x 285,212,672) B at 0.8 of 3.35 TB/s = 213.7 us; compute 1,024 x 128 x 2 x 2,176
    # FLOPs at 1.0 of peak = 0.58 us
    assert predict_kernels(row, H100, eff)[0] == pytest.approx((2_359_296 + 2 * 285_212_672) / (BW * 0.8), rel=1e-6)
    # a GQA decode row is untouched
    gqa = _decode(64, 32, 8, 128, 8192)
    assert predict_kernels(gqa, H100, eff)[0] == predict_kernels(gqa, H100, replace(eff, mla_qo_mem_scale=1.0))[0]


def test_mla_prefill_call_floor_replaces_the_gqa_prefill_floor_for_mla_only():
    # one one-token sequence: the busy time is far below a microsecond, the call floors dominate
    mla, gqa = _mla_prefill(1, 128, 128, 160, 320, 1), _mla_prefill(1, 128, 128, 160, 320, 1).assign(mla=0)
    base = replace(_plain(), attention_floor_s=13e-6)
    eff = replace(base, mla_prefill_floor_s=11e-6)
    assert predict_kernels(mla, H100, eff)[0] - predict_kernels(mla, H100, base)[0] == pytest.approx(-2e-6, rel=1e-9)
    assert predict_kernels(gqa, H100, eff)[0] == predict_kernels(gqa, H100, base)[0]
    # a decode call keeps its own floor
    dec = _decode(1, 128, 1, 544, 2, kv_dim=576, mla=1)
    assert predict_kernels(dec, H100, eff)[0] == predict_kernels(dec, H100, base)[0]


def test_mla_kernels_compute_whole_blocks():
    from model.roofline.kernels import mla_blocks

    eff = _plain(mla_block=64.0)
    # expanded prefill, batch 2, 128 heads, 100 tokens, depth 160 (4 x 160 = 640 FLOPs per pair): 2 query blocks,
    # the first over 1 key block, the second over 2: 64^2 x 3 = 12,288 pairs per sequence and head, not
    # 100 x 101 / 2 = 5,050; FLOPs 2 x 128 x 640 x 12,288 = 2,013,265,920 (unblocked 827,392,000)
    row = _mla_prefill(2, 128, 128, 160, 320, 100)
    w = kernel_work(row)
    assert w.flops[0] == 827_392_000
    b = mla_blocks(w, row, eff)
    assert b.flops[0] == 2_013_265_920 and b.shape_m[0] == 128 and b.shape_n[0] == 128
    # one token costs a whole block: 64^2 pairs
    one = _mla_prefill(2, 128, 128, 160, 320, 1)
    assert mla_blocks(kernel_work(one), one, eff).flops[0] == 2 * 128 * 640 * 4096
    # absorbed decode over 100 keys runs 2 key blocks: 64 x 128 x 2,176 x 128 FLOPs; 128 heads fill 2 row blocks
    dec = _decode(64, 128, 1, 544, 100, kv_dim=576, mla=1)
    bd = mla_blocks(kernel_work(dec), dec, eff)
    assert bd.flops[0] == 64 * 128 * 2176 * 128 and bd.shape_m[0] == 128 and bd.shape_n[0] == 128
    # no blocks where mla_block = 0 (the hand-set classes) or for other attention
    assert mla_blocks(w, row, _plain()) is w
    gqa = _decode(64, 32, 8, 128, 100)
    assert mla_blocks(kernel_work(gqa), gqa, eff).flops[0] == kernel_work(gqa).flops[0]


def test_mla_block_is_a_kernel_fact_for_the_mla_engines():
    # FlashMLA's 64 x 64 blocks (csrc/kernels/config.h), set for the engines with MLA tables, never fitted
    for engine in ("sglang", "trtllm"):
        for arch in ("hopper", "blackwell"):
            assert KERNEL_FACTS[(engine, arch)]["mla_block"] == 64.0
    assert all("mla_block" not in KERNEL_FACTS[("vllm", arch)] for arch in ("hopper", "blackwell"))


def test_sglang_hopper_prefill_rows_are_absorbed_mla():
    from model.calibration.tables import MLA_DECODE_HEAD_DIM, MLA_PREFILL_HEAD_DIM, _mla

    # aiconfigurator's SGLang collector runs prefill over the latent (one KV head, 576/512 wide) on its
    # FlashAttention and Triton backends, expanded (MHA, 192/128 wide) on trtllm_mla
    raw = pd.DataFrame({"kernel_source": ["flash_attention", "trtllm_mla"], "kv_cache_dtype": "bfloat16",
                        "mla_dtype": "bfloat16", "tp_size": 1, "batch_size": [2, 3], "isl": 1024, "num_heads": 128,
                        "step": 0, "latency": 1.0})
    rows = _mla(raw, decode=False).set_index("batch")
    assert rows.loc[2, "kv_heads"] == 1 and rows.loc[2, "head_dim"] == MLA_DECODE_HEAD_DIM == 544
    assert rows.loc[2, "kv_dim"] == 576
    assert rows.loc[3, "kv_heads"] == 128 and rows.loc[3, "head_dim"] == MLA_PREFILL_HEAD_DIM == 160
    assert rows.loc[3, "kv_dim"] == 320
    # absorbed: 128 query rows per KV head per token, 4 x 544 FLOPs per pair
    w = kernel_work(rows.reset_index().iloc[[0]])
    assert w.shape_m[0] == 1024 * 128 and w.flops[0] == 2 * 128 * 2176 * (1024 * 1025 / 2)
