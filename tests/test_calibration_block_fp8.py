"""Block-scaled FP8 GEMMs (Efficiency.gemm_*_8b): the kernel tables time per-tensor and block-scaled FP8 kernels
separately and the importer keeps, per shape, the faster one with its kind; by hand, and neutral in the hand-set
classes."""

from __future__ import annotations

from dataclasses import replace

import pandas as pd
import pytest

from model.calibration.tables import _gemm
from model.hardware import load_device
from model.roofline.efficiency_forms import gemm_k_loop_s
from model.roofline.efficiency_sets import ARCH_DEFAULTS, efficiency_for
from model.roofline.kernels import kernel_work, predict_kernels

H100 = load_device("h100-sxm")
BW = H100.memory.bandwidth_bytes_per_s  # 3.35e12 B/s
FP8 = H100.peak("fp8")  # 1.9789e15 FLOP/s dense


def _eff(**changes):
    """H100 hand-set efficiency without size terms or floors, a near-hard roofline corner (p = 50), a 1 ns k loop,
    per-tensor FP8 at 0.7 of peak on a 64-row tile with a 9 us quantization call, block-scaled FP8 at 0.5 on a
    128-row tile, twice the k loop and a 2 us + 3 B/element + 1 ns/row call."""
    eff = efficiency_for(H100, calibration=False)
    eff = replace(eff, mem_max=0.8, mem_bytes_half=0.0, kernel_floor_s=0.0, roofline_p=50.0, gemm_m_half=0.0,
                   gemm_n_half=0.0, gemm_k_s=1e-9, gemm_k_split=0.0, gemm_max_8=0.7, gemm_tile_m_8=64.0,
                   gemm_k_scale_8=1.0, gemm_quant_s_8=9e-6, gemm_quant_bytes_8=0.0, gemm_quant_row_s_8=0.0,
                   gemm_max_8b=0.5, gemm_tile_m_8b=128.0, gemm_k_scale_8b=2.0, gemm_quant_s_8b=2e-6,
                   gemm_quant_bytes_8b=3.0, gemm_quant_row_s_8b=1e-9)
    return replace(eff, **changes)


def _rows(m, n, k):
    return pd.DataFrame([dict(kernel="gemm", dtype="fp8", m=m, n=n, k=k, block_scaled=b) for b in (0.0, 1.0)])


def test_block_scaled_rows_take_their_own_quantization_call():
    # m = 64, n = 8192, k = 1024: memory-bound. Bytes (64 x 1024 + 1024 x 8192) x 1 + 64 x 8192 x 2 = 9,502,720
    # at 0.8 x 3.35 TB/s = 3.546 us. Compute 2 x 64 x 8192 x 1024 = 1,073,741,824 FLOPs: per-tensor at 0.7 of
    # peak 0.775 us, block-scaled at 0.5 x 64/128 = 0.25 of peak 2.170 us (p = 50: (2.17/3.546)^50 ~ 2e-11)
    rows = _rows(64, 8192, 1024)
    assert list(kernel_work(rows).block) == [False, True]
    t_m = 9_502_720 / (BW * 0.8)
    # per-tensor: + 9 us; block-scaled: + 2 us + 3 x 64 x 1024 B at 0.8 x 3.35 TB/s (73.4 ns) + 64 x 1 ns
    quant_b = 2e-6 + 3 * 64 * 1024 / (BW * 0.8) + 64e-9
    per_tensor, block = predict_kernels(rows, H100, _eff())
    assert per_tensor == pytest.approx(t_m + 9e-6, rel=1e-9)
    assert block == pytest.approx(t_m + quant_b, rel=1e-9)


def test_block_scaled_rows_take_their_own_ceiling_and_k_loop():
    # compute-bound: m = 4096, n = 8192, k = 8192, 549,755,813,888 FLOPs: 396.9 us at 0.7 of peak, 555.6 us at
    # 0.5 (the 4096 rows fill either tile); the stream of 167,772,160 B takes 62.6 us
    eff = _eff()
    rows = _rows(4096, 8192, 8192)
    quant_b = 2e-6 + 3 * 4096 * 8192 / (BW * 0.8) + 4096e-9
    per_tensor, block = predict_kernels(rows, H100, eff) - [9e-6, quant_b]
    assert per_tensor == pytest.approx(549_755_813_888 / (FP8 * 0.7), rel=1e-9)
    assert block == pytest.approx(549_755_813_888 / (FP8 * 0.5), rel=1e-9)
    # narrow and deep: m = 1, n = 32, k = 16384 waits on one tile's k loop, 16384 x 1 ns, twice that block-scaled
    # (its stream: 16384 + 16384 x 32 + 32 x 2 = 540,736 B, 0.2 us)
    per_tensor, block = predict_kernels(_rows(1, 32, 16384), H100, eff) - [9e-6, 2e-6 + 3 * 16384 / (BW * 0.8) + 1e-9]
    assert per_tensor == pytest.approx(16384e-9, rel=1e-9)
    assert block == pytest.approx(2 * 16384e-9, rel=1e-9)


def test_block_terms_fall_back_to_the_per_tensor_ones_where_unset():
    # no block-scaled ceiling: every per-tensor term, the quantization call included
    eff = _eff(gemm_max_8b=0.0)
    assert eff.gemm_max("fp8", True) == 0.7 and eff.gemm_tile("fp8", True) == 64.0
    assert eff.gemm_k_scale("fp8", True) == 1.0 and eff.gemm_quant("fp8", True) == (9e-6, 0.0, 0.0)
    # with one, an unset tile or k-loop scale is the per-tensor one
    eff = _eff(gemm_tile_m_8b=0.0, gemm_k_scale_8b=0.0)
    assert eff.gemm_tile("fp8", True) == 64.0 and eff.gemm_k_scale("fp8", True) == 1.0
    assert eff.gemm_max("fp8", True) == 0.5 and eff.gemm_quant("fp8", True) == (2e-6, 3.0, 1e-9)
    # other dtypes ignore the flag
    assert eff.gemm_max("bf16", True) == eff.gemm_max_16 and eff.gemm_quant("fp4", True) == eff.gemm_quant("fp4")


def test_block_scaled_form_is_neutral_in_every_hand_set_class():
    rows = pd.concat([_rows(m, n, k) for m, n, k in ((1, 4096, 4096), (64, 8192, 1024), (8192, 8192, 8192))])
    for eff in ARCH_DEFAULTS.values():
        assert (eff.gemm_max_8b, eff.gemm_tile_m_8b, eff.gemm_k_scale_8b) == (0.0, 0.0, 0.0)
        assert (eff.gemm_quant_s_8b, eff.gemm_quant_bytes_8b, eff.gemm_quant_row_s_8b) == (0.0, 0.0, 0.0)
        t = predict_kernels(rows, H100, eff)
        assert list(t[1::2]) == list(t[0::2])  # bit-identical: block-scaled rows predict as per-tensor ones


def test_the_table_reader_keeps_the_faster_kernel_and_its_kind():
    # TensorRT-LLM H200 at m = 1, n = 4096, k = 1024: per-tensor 13.1 us, block-scaled 5.6 us; at m = 16384, n = 4096,
    # k = 1024 per-tensor 164 us wins over block-scaled 196 us; k = 32 has no block-scaled kernel (128-deep blocks)
    raw = pd.DataFrame({"gemm_dtype": ["fp8", "fp8_block", "fp8", "fp8_block", "fp8", "bfloat16"],
                        "m": [1, 1, 16384, 16384, 1, 1], "n": 4096, "k": [1024, 1024, 1024, 1024, 32, 32],
                        "latency": [0.0131, 0.0056, 0.164, 0.1956, 0.0121, 0.0028]})
    out = _gemm(raw).sort_values(["family", "m", "k"]).reset_index(drop=True)
    assert list(out["family"]) == ["gemm_bf16", "gemm_fp8", "gemm_fp8", "gemm_fp8"]
    assert list(out["block_scaled"]) == [0.0, 0.0, 1.0, 0.0]
    assert list(out["measured_s"] * 1e3) == pytest.approx([0.0028, 0.0121, 0.0056, 0.164])


def test_fp8_and_fp4_gemms_split_k_at_their_own_depth():
    # m = 1, n = 32, k = 65536 waits on one tile's k loop (stream: 65536 + 65536 x 32 + 64 B = 2.2 MB, 0.8 us):
    # 1 ns per element up to the split. 16-bit split at 4096 elements: 4.096 us; FP8 at gemm_k_split_8 = 16384:
    # 16.384 us, at 0 the 16-bit split
    eff = _eff(gemm_k_split=4096.0, gemm_k_split_8=16384.0)
    row = pd.DataFrame([dict(kernel="gemm", dtype="fp8", m=1, n=32, k=65536, block_scaled=0.0)])
    assert predict_kernels(row, H100, eff)[0] - 9e-6 == pytest.approx(16384e-9, rel=1e-9)
    assert predict_kernels(row, H100, replace(eff, gemm_k_split_8=0.0))[0] - 9e-6 == pytest.approx(4096e-9, rel=1e-9)
    assert eff.gemm_k_split_of("bf16") == 4096.0 and eff.gemm_k_split_of("fp4") == 4096.0
    # FP4 (NVFP4) GEMMs alike with gemm_k_split_4: 65536 elements at 1 ns x gemm_k_scale_4 = 2, split at 32768
    fp4 = replace(eff, gemm_k_split_4=32768.0, gemm_k_scale_4=2.0)
    assert fp4.gemm_k_split_of("fp4") == 32768.0 and fp4.gemm_k_split_of("fp8") == 16384.0
    assert float(gemm_k_loop_s(65536, fp4, fp4.gemm_k_scale("fp4"), fp4.gemm_k_split_of("fp4"))) == \
        pytest.approx(2 * 32768e-9, rel=1e-12)
    for hand_set in ARCH_DEFAULTS.values():
        assert hand_set.gemm_k_split_8 == 0.0 and hand_set.gemm_k_split_4 == 0.0
