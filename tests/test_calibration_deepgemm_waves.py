"""DeepGEMM's block picking for block-scaled FP8 on Hopper (Efficiency.gemm_waves_8b, deepgemm_wave_fill): padded
tiles in whole waves over the SMs; by hand, set only for SGLang on Hopper, neutral in the hand-set classes."""

from __future__ import annotations

from dataclasses import replace

import pandas as pd
import pytest

from model.calibration.importer import KERNEL_FACTS
from model.hardware import load_device
from model.roofline.efficiency_forms import deepgemm_wave_fill
from model.roofline.efficiency_sets import ARCH_DEFAULTS, efficiency_for
from model.roofline.kernels import predict_kernels

H100 = load_device("h100-sxm")  # 132 SMs
BW = H100.memory.bandwidth_bytes_per_s
FP8 = H100.peak("fp8")


def test_wave_fill_by_hand():
    # m = 129, n = 1024 on 132 SMs. block_m 64: 3 row blocks; one wave needs ceil(1024/bn) <= 44, bn >= 32: at most
    # 3 x 32 = 96 tiles (bn = 32); bn = 16 gives 192 tiles, two waves. block_m 128: 2 row blocks, bn = 16: 128 tiles,
    # one wave, last wave 128 (fuller than 96); block_m 256: 64 tiles at most. 16/32-row blocks: m > 32, not offered.
    # Pick (128, 16): 129 x 1024 / (1 x 132 x 128 x 16) = 132,096 / 270,336
    assert deepgemm_wave_fill(129, 1024, 132) == pytest.approx(132_096 / 270_336, rel=1e-12)
    # m = 256, n = 8448 = 132 x 64: block_m 64 needs bn >= 256 for one wave (none); block_m 128, bn = 128: 2 x 66 =
    # 132 tiles, one full wave: every slot carries output
    assert deepgemm_wave_fill(256, 8448, 132) == 1.0
    # m = 2, n = 2560: one row block at any block_m; bn = 16 gives 160 tiles (two waves), bn = 32 80 tiles (one wave,
    # the fullest: wider blocks give fewer tiles). (64, 32) first; the 16-row block ties it at the same bn and is
    # smaller: (16, 32), 2 x 2560 / (132 x 16 x 32)
    assert deepgemm_wave_fill(2, 2560, 132) == pytest.approx(5120 / (132 * 16 * 32), rel=1e-12)
    assert deepgemm_wave_fill(129, 1024, 0) == 1.0  # no SM count: no waves


def _eff(**changes):
    """H100 hand-set efficiency without size terms, floors or k loop, a near-hard corner (p = 50), block-scaled FP8
    at 0.5 of peak on a 128-row tile with a 2 us + 3 B/element + 1 ns/row quantization call."""
    eff = efficiency_for(H100, calibration=False)
    eff = replace(eff, mem_max=0.8, mem_bytes_half=0.0, kernel_floor_s=0.0, roofline_p=50.0, gemm_m_half=0.0,
                  gemm_n_half=0.0, gemm_k_s=0.0, gemm_k_split=0.0, gemm_max_8b=0.5, gemm_tile_m_8b=128.0,
                  gemm_k_scale_8b=1.0, gemm_quant_s_8b=2e-6, gemm_quant_bytes_8b=3.0, gemm_quant_row_s_8b=1e-9)
    return replace(eff, **changes)


def test_block_scaled_compute_runs_whole_waves_of_padded_tiles():
    # m = 129, n = 1024, k = 65536: 2 x 129 x 1024 x 65536 = 17,314,086,912 FLOPs at 0.5 of peak (129 rows fill the
    # 128-row tile) take 17.50 us; its stream, 65536 x 1024 + 129 x 65536 (1 B) + 129 x 1024 x 2 = 75,825,408 B,
    # 28.30 us: memory-bound without waves. With them the compute takes 1 / (132,096 / 270,336) = 2.047x: 35.81 us,
    # compute-bound ((28.30 / 35.81)^50 ~ 8e-6 of the time)
    rows = pd.DataFrame([dict(kernel="gemm", dtype="fp8", m=129, n=1024, k=65536, block_scaled=1.0)])
    quant = 2e-6 + 3 * 129 * 65536 / (BW * 0.8) + 129e-9
    plain = predict_kernels(rows, H100, _eff())[0] - quant
    waves = predict_kernels(rows, H100, _eff(gemm_waves_8b=1.0))[0] - quant
    assert plain == pytest.approx(75_825_408 / (BW * 0.8), rel=1e-4)
    assert waves == pytest.approx(17_314_086_912 / (FP8 * 0.5 * 132_096 / 270_336), rel=1e-4)
    # per-tensor rows ignore it
    per_tensor = rows.assign(block_scaled=0.0)
    assert predict_kernels(per_tensor, H100, _eff(gemm_waves_8b=1.0))[0] == predict_kernels(per_tensor, H100, _eff())[0]


def test_set_for_sglang_on_hopper_only_and_neutral_in_the_hand_set_classes():
    assert KERNEL_FACTS[("sglang", "hopper")]["gemm_waves_8b"] == 1.0
    assert all("gemm_waves_8b" not in facts for key, facts in KERNEL_FACTS.items() if key != ("sglang", "hopper"))
    assert all(eff.gemm_waves_8b == 0.0 for eff in ARCH_DEFAULTS.values())
