"""GEMM forms of issue 15's fifth round, by hand: the long-GEMM sustained clock (Efficiency.gemm_sustain_drop,
gemm_sustain_s; single kernels, kernel-table rows and model steps alike) and the per-tensor FP8 k loop growing with
the tile its dispatch picks for m rows (Efficiency.gemm_k_tile_8); each neutral in the hand-set classes."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pandas as pd
import pytest

from model.hardware import load_device
from model.calibration.importer import KERNEL_FACTS
from model.roofline.efficiency_forms import gemm_k_tile_area, gemm_row_fill, gemm_sustain
from model.roofline.efficiency_sets import ARCH_DEFAULTS, efficiency_for
from model.roofline.evaluator import evaluate
from model.roofline.kernel import gemm_time
from model.roofline.kernels import predict_kernels
from model.serving.deployment import deployment

H100 = load_device("h100-sxm")
PEAK = H100.peak("bf16")  # 989.4e12 FLOP/s dense BF16


def _plain(**values):
    """H100 hand-set efficiency without floors, k loop or size terms: compute at gemm_max_16 = 0.8."""
    eff = efficiency_for(H100, calibration=False)
    return replace(eff, kernel_floor_s=0.0, gemm_n_half=0.0, gemm_m_half=0.0, gemm_max_16=0.8, roofline_p=64.0,
                   **values)


def test_sustain_is_neutral_in_every_hand_set_class():
    for eff in ARCH_DEFAULTS.values():
        assert eff.gemm_sustain_drop == 0 and eff.gemm_sustain_s == 0
        factor = gemm_sustain(np.array([0.0, 1e9, 1e15]), PEAK, eff)
        assert np.array_equal(factor, np.ones(3))  # exactly 1: hand-set step times stay bit-identical


def test_sustain_slows_a_long_gemm_by_hand():
    # 8192^3 BF16: 2 * 8192^3 = 1.0995e12 FLOPs; x = 1.0995e12 / 989.4e12 = 1.1113 ms at the peak.
    # drop 0.2, half-point 1 ms: share = 1.1113 / (1.1113 + 1) = 0.52637; factor 1 + 0.2 * 0.52637 = 1.10527
    eff = _plain(gemm_sustain_drop=0.2, gemm_sustain_s=1e-3)
    m = n = k = 8192
    x = 2 * 8192**3 / 989.4e12
    assert x == pytest.approx(1.1113e-3, rel=1e-4)
    base = gemm_time(m, n, k, device=H100, dtype="bf16", eff=_plain(), bytes_per_weight=2)
    slow = gemm_time(m, n, k, device=H100, dtype="bf16", eff=eff, bytes_per_weight=2)
    assert float(base.compute_s) == pytest.approx(2 * 8192**3 / (989.4e12 * 0.8))
    assert float(slow.compute_s / base.compute_s) == pytest.approx(1.10527, rel=1e-4)
    # a 2.7 us GEMM (x = 2 * 64 * 4096^2 / 989.4e12 = 2.17 us) keeps its time within 0.05%:
    # 1 + 0.2 * 2.17e-6 / 1.00217e-3 = 1.000433
    short = [gemm_time(64, 4096, 4096, device=H100, dtype="bf16", eff=e, bytes_per_weight=2).compute_s
             for e in (_plain(), eff)]
    assert float(short[1] / short[0]) == pytest.approx(1 + 0.2 * 2 * 64 * 4096 * 4096 / PEAK / (
        2 * 64 * 4096 * 4096 / PEAK + 1e-3), rel=1e-9)
    assert float(short[1] / short[0]) == pytest.approx(1.000433, rel=1e-6)


def test_sustain_applies_to_16_bit_kernel_table_rows_only():
    table = pd.DataFrame([dict(kernel="gemm", dtype=dt, m=16384, n=16384, k=8192) for dt in ("bf16", "fp8")])
    eff = _plain(gemm_sustain_drop=0.25, gemm_sustain_s=2e-3, gemm_max_8=0.8)
    base = predict_kernels(table, H100, _plain(gemm_max_8=0.8))
    slow = predict_kernels(table, H100, eff)
    # BF16, compute-bound: x = 2 * 16384^2 * 8192 / 989.4e12 = 4.446 ms; 1 + 0.25 * 4.446 / 6.446 = 1.1724
    x = 2 * 16384 * 16384 * 8192 / PEAK
    assert x == pytest.approx(4.446e-3, rel=1e-3)
    assert slow[0] / base[0] == pytest.approx(1.1724, rel=2e-3)
    assert slow[1] == base[1]  # FP8 keeps its ceiling (the FP8/FP4 tables show no such fall)


def test_sustain_in_a_step_takes_each_gemm_kernel_on_its_own():
    d = deployment("llama-3.1-8b", H100, tp=1)
    ops = d.graph.evaluate({**d.symbols(), "B": 1, "T": 16384, "C": 0})
    eff = replace(d.context.eff, gemm_sustain_drop=0.2, gemm_sustain_s=1e-3)
    base = evaluate(ops, d.context)
    slow = evaluate(ops, replace(d.context, eff=eff))
    names = [op.name for op in ops.ops]
    j = names.index("gate_up_proj")  # 16384 x 28672 x 4096, one kernel per layer
    x = 2 * 16384 * 28672 * 4096 / PEAK
    assert slow.compute_s[j, 0] / base.compute_s[j, 0] == pytest.approx(1 + 0.2 * x / (x + 1e-3), rel=1e-9)
    rest = [i for i, op in enumerate(ops.ops) if op.kind != "gemm"]
    assert np.array_equal(slow.time_s[rest], base.time_s[rest])
    # an FP8 deployment's dense GEMMs keep their time
    d8 = deployment("llama-3.1-8b", H100, tp=1, weights="fp8", activations="fp8")
    ops8 = d8.graph.evaluate({**d8.symbols(), "B": 1, "T": 16384, "C": 0})
    eff8 = replace(d8.context.eff, gemm_sustain_drop=0.2, gemm_sustain_s=1e-3)
    assert d8.context.gemm_sustain["dense"] == 0.0
    assert np.array_equal(evaluate(ops8, replace(d8.context, eff=eff8)).time_s[j], evaluate(ops8, d8.context).time_s[j])


def test_fp8_tile_area_steps_with_the_dispatch_rows():
    # gemm_k_tile_8 = 64 (vLLM's sm90 dispatch): 64x64 tiles up to 64 rows, 64x128 up to 128, 128x128 above
    assert gemm_k_tile_area(np.array([1, 64, 65, 128, 129, 4096]), 64.0).tolist() == [1, 1, 2, 2, 4, 4]
    assert gemm_k_tile_area(np.array([1, 129, 4096]), 0.0).tolist() == [1, 1, 1]
    for eff in ARCH_DEFAULTS.values():
        assert eff.gemm_k_tile_8 == 0
    assert KERNEL_FACTS[("vllm", "hopper")]["gemm_k_tile_8"] == 64.0
    assert "gemm_k_tile_8" not in KERNEL_FACTS[("trtllm", "hopper")]


def test_fp8_k_loop_of_a_narrow_deep_gemm_grows_with_the_tile_by_hand():
    # n = 128, k = 65536 FP8 (per-tensor) on H100, no split: the loop is 65536 * 1e-9 * 0.5 = 32.8 us at m <= 64,
    # 65.5 us at m = 100 (64x128 tile), 131.1 us at m = 256 (128x128); the roofline is far below (m = 256: 2 * 256 *
    # 128 * 65536 / (1978.9e12 * 0.7) = 3.1 us), so the loop is the time
    eff = _plain(gemm_k_s=1e-9, gemm_k_scale_8=0.5, gemm_k_split=0.0, gemm_max_8=0.7, gemm_k_tile_8=64.0)
    table = pd.DataFrame([dict(kernel="gemm", dtype="fp8", m=m, n=128, k=65536) for m in (64, 100, 256)]
                         + [dict(kernel="gemm", dtype="bf16", m=256, n=128, k=65536)])
    got = predict_kernels(table, H100, eff)
    assert got[:3] == pytest.approx([32.768e-6, 65.536e-6, 131.072e-6], rel=1e-9)
    assert got[3] == pytest.approx(65.536e-6, rel=1e-9)  # BF16 GEMMs: the 16-bit loop, no tile area
    # block-scaled kernels (their own set, gemm_max_8b > 0) keep their loop
    block = table.iloc[:3].assign(block_scaled=1.0)
    got_b = predict_kernels(block, H100, replace(eff, gemm_max_8b=0.7, gemm_k_scale_8b=0.5))
    assert got_b == pytest.approx([32.768e-6] * 3, rel=1e-9)


def test_fp8_row_tiles_pad_the_compute_by_hand():
    # t = 64 (SGLang's sm90 dispatch): 64-row units up to 128 rows, the 128-row tile up to 1024, 2 x 1 clusters of
    # it (256 rows) above; within one unit the tile fill covers it (1). m = 100: 100 / 128; m = 513: 513 / 640;
    # m = 1025: 1025 / 1280; m = 4096: 1; t = 0: none
    m = np.array([64, 100, 128, 256, 513, 1024, 1025, 4096])
    assert gemm_row_fill(m, 64.0) == pytest.approx([1, 100 / 128, 1, 1, 513 / 640, 1, 1025 / 1280, 1], rel=1e-12)
    assert gemm_row_fill(m, 0.0).tolist() == [1.0] * 8
    assert KERNEL_FACTS[("sglang", "hopper")]["gemm_row_pad_8"] == 1.0
    assert all("gemm_row_pad_8" not in facts for key, facts in KERNEL_FACTS.items() if key != ("sglang", "hopper"))
    for eff in ARCH_DEFAULTS.values():
        assert eff.gemm_row_pad_8 == 0


def test_fp8_compute_on_whole_row_tiles_by_hand():
    # m = 513, n = k = 8192 per-tensor FP8 on H100 at gemm_max_8 = 0.7: 2 x 513 x 8192^2 = 68,853,694,464 FLOPs take
    # 49.71 us at 0.7 x 1978.9e12 FLOP/s; on whole 128-row tiles (640 rows) 62.02 us. Its stream, 8192 x 8192 +
    # 513 x 8192 (1 B) + 513 x 8192 x 2 B, is 79.7 MB: 24 us at 3.35 TB/s, under the compute at p = 64
    eff = _plain(gemm_k_s=0.0, gemm_max_8=0.7, gemm_tile_m_8=16.0, gemm_k_tile_8=64.0)
    table = pd.DataFrame([dict(kernel="gemm", dtype="fp8", m=513, n=8192, k=8192),
                          dict(kernel="gemm", dtype="fp8", m=512, n=8192, k=8192)])
    plain, padded = predict_kernels(table, H100, eff), predict_kernels(table, H100, replace(eff, gemm_row_pad_8=1.0))
    assert plain[0] == pytest.approx(68_853_694_464 / (H100.peak("fp8") * 0.7), rel=1e-3)
    assert padded[0] == pytest.approx(plain[0] * 640 / 513, rel=1e-3)
    assert padded[1] == plain[1]  # 512 rows fill four tiles

