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
from model.roofline.efficiency import ARCH_DEFAULTS, efficiency_for, gemm_eta
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
    assert {k for k, v in KERNEL_FACTS.items() if "decode_group_limit" in v} == {("trtllm", "hopper"),
                                                                                  ("trtllm", "ampere")}
    assert KERNEL_FACTS[("trtllm", "hopper")]["decode_group_limit"] == 32.0


def test_gemv_path_streams_weights_without_tile_or_row_terms():
    eff = _plain(gemv_mem_scale=0.9)
    # tiled: 0.8 x 1/16 (tile fill) x 1/(1 + 8) (row half-point); GEMV path: 0.8 (n half-point 0)
    assert float(gemm_eta(1, 12288, 0.8, _plain())) == pytest.approx(0.8 / 16 / 9)
    assert float(gemm_eta(1, 12288, 0.8, eff)) == pytest.approx(0.8)
    assert float(gemm_eta(17, 12288, 0.8, eff)) == pytest.approx(0.8 * 17 / 25)  # above 16 rows: the tiled curve
    # grouped MoE expert GEMMs (steps pass gemv=False for the expert role) keep the tiled curve
    assert float(gemm_eta(1, 12288, 0.8, eff, gemv=False)) == pytest.approx(0.8 / 16 / 9)
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


def test_attention_corner_takes_per_candidate_values():
    """A stacked planner context holds one efficiency value per candidate: the corner is chosen per candidate (a
    Python `if` on the array raised in the fleet notebook)."""
    eff = replace(ARCH_DEFAULTS["hopper"], attention_roofline_p=np.array([0.0, 6.0]), mla_roofline_p=np.array([3.0, 0.0]),
                  roofline_p=np.array([2.0, 2.0]))
    assert eff.attention_p().tolist() == [2.0, 6.0]
    assert eff.attention_p(np.array([[True], [False]])).tolist() == [[3.0, 6.0], [2.0, 6.0]]
