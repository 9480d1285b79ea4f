"""The kernel tables' warm-L2 saving, by hand: which operand bytes each engine's GEMM collector re-reads from L2
(model.calibration.bench_cache.bench_l2_share) and the fixed time those rows save (Efficiency.bench_l2_floor_s),
a property of the measurement: single kernel-table rows only, never a model step; neutral in the hand-set classes."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pandas as pd
import pytest

from model.calibration.bench_cache import L2_FILL, bench_l2_share, copies
from model.calibration.importer import stage_parameters
from model.hardware import load_device
from model.roofline.efficiency_sets import ARCH_DEFAULTS, efficiency_for
from model.roofline.evaluator import evaluate
from model.roofline.kernels import predict_kernels
from model.serving.deployment import deployment

H100 = load_device("h100-sxm")
L2 = 50e6  # H100 SXM's L2 bytes (hardware_db/devices/h100-sxm.toml)


def _gemm(shapes, dtype="bf16", block=0.0):
    return pd.DataFrame([dict(kernel="gemm", dtype=dtype, family=f"gemm_{dtype}", m=m, n=n, k=k, block_scaled=block)
                         for m, n, k in shapes])


def test_sglang_rows_are_warm_only_when_all_six_copies_fit():
    # L2_FILL 0.5 of 50 MB: 25e6 bytes. (16, 1024, 1024) BF16: activation 2*16*1024 = 32,768, weight
    # 2*1024*1024 = 2,097,152, output 2*16*1024 = 32,768: 2,162,688 per copy, 6 copies 12,976,128 <= 25e6: warm.
    # (16, 4096, 4096): weight 33,554,432 alone > 25e6: cold
    assert L2_FILL == 0.5
    share = bench_l2_share(_gemm([(16, 1024, 1024), (16, 4096, 4096)]), "sglang", L2)
    assert share.tolist() == [1.0, 0.0]


def test_a_shared_activation_stays_warm_between_copies():
    # vLLM, (8192, 128, 1024): activation 16,777,216, weight 262,144, output 2,097,152. The six copies and the
    # activation, 16,777,216 + 6 * 2,359,296 = 30,932,992 > 25e6: not all warm; one copy, 19,136,512 <= 25e6: the
    # activation is warm for copies 2-6: share = 5/6 * 16,777,216 / 19,136,512 = 0.730593
    rows = _gemm([(8192, 128, 1024)])
    assert bench_l2_share(rows, "vllm", L2)[0] == pytest.approx(5 / 6 * 16777216 / 19136512, rel=1e-12)
    assert bench_l2_share(rows, "vllm", L2)[0] == pytest.approx(0.730593, rel=1e-6)
    # SGLang gives every copy its own activation: 6 * 19,136,512 > 25e6, nothing warm
    assert bench_l2_share(rows, "sglang", L2)[0] == 0.0


def test_copies_per_collector():
    # TensorRT-LLM: ceil(L2 / weight bytes), 1 to 5: a 262,144-byte weight 5 copies, a 20 MB one ceil(2.5) = 3, a
    # 60 MB one 1; vLLM: one copy of block-scaled FP8 and NVFP4, six otherwise; SGLang six
    w = np.array([262144.0, 20e6, 60e6])
    assert copies("trtllm", w, L2, np.zeros(3, bool)).tolist() == [5.0, 3.0, 1.0]
    assert copies("vllm", w, L2, np.array([True, False, False])).tolist() == [1.0, 6.0, 6.0]
    assert copies("sglang", w, L2, np.array([True, False, False])).tolist() == [6.0, 6.0, 6.0]


def test_fp8_bytes_and_other_rows():
    # SGLang FP8 (1024, 2048, 1024): BF16 activation 2,097,152 + its FP8 copy 1,048,576, weight 2,097,152,
    # output 4,194,304: 9,437,184 per copy, 6 copies 56,623,104 > 25e6: cold; (64, 2048, 1024): 131,072 + 65,536 +
    # 2,097,152 + 262,144 = 2,555,904, 6 copies 15,335,424: warm
    share = bench_l2_share(_gemm([(1024, 2048, 1024), (64, 2048, 1024)], dtype="fp8"), "sglang", L2)
    assert share.tolist() == [0.0, 1.0]
    mixed = pd.concat([_gemm([(16, 1024, 1024)]), pd.DataFrame([dict(kernel="copy", dtype="bf16", bytes=1e6)])])
    assert bench_l2_share(mixed.reset_index(drop=True), "sglang", L2).tolist() == [1.0, 0.0]
    assert bench_l2_share(_gemm([(16, 1024, 1024)]), "other-engine", L2).tolist() == [0.0]


def test_a_warm_row_saves_the_fitted_fixed_time_by_hand():
    eff = replace(efficiency_for(H100, calibration=False), kernel_floor_s=3.4e-6, bench_l2_floor_s=1.2e-6)
    rows = _gemm([(16, 1024, 1024), (8192, 128, 1024)])
    plain = predict_kernels(rows, H100, eff)
    warm = predict_kernels(rows.assign(bench_l2_share=[1.0, 0.730593]), H100, eff)
    # share x 1.2 us: 1.2 us and 0.876712 us
    assert plain - warm == pytest.approx([1.2e-6, 0.730593 * 1.2e-6], rel=1e-9)
    # never more than the kernel floor it is part of: a 1.2 us saving on a 1 us floor saves 1 us
    small = predict_kernels(rows.assign(bench_l2_share=1.0), H100, replace(eff, kernel_floor_s=1e-6))
    assert predict_kernels(rows, H100, replace(eff, kernel_floor_s=1e-6)) - small == pytest.approx([1e-6, 1e-6])
    # without the term (0, the hand-set classes) the column changes nothing, to the bit
    hand = efficiency_for(H100, calibration=False)
    assert np.array_equal(predict_kernels(rows.assign(bench_l2_share=1.0), H100, hand),
                          predict_kernels(rows, H100, hand))


def test_neutral_in_hand_set_classes_and_never_in_a_step():
    for eff in ARCH_DEFAULTS.values():
        assert eff.bench_l2_floor_s == 0
    d = deployment("llama-3.1-8b", H100, tp=1)
    env = {**d.symbols(), "B": 8, "T": 1, "C": 1024}
    ops = d.graph.evaluate(env)
    base = evaluate(ops, d.context).step_time_s()
    warm = evaluate(ops, replace(d.context, eff=replace(d.context.eff, bench_l2_floor_s=1e-6))).step_time_s()
    assert np.array_equal(base, warm)  # a model step streams its weights: the measurement's saving never applies


def test_the_fit_drops_the_term_where_no_row_was_warm():
    eff = efficiency_for(H100, calibration=False)
    cold = _gemm([(16, 4096, 4096)]).assign(bench_l2_share=0.0)
    warm = _gemm([(16, 1024, 1024)]).assign(bench_l2_share=1.0)
    assert "bench_l2_floor_s" not in stage_parameters(["kernel_floor_s", "bench_l2_floor_s"], cold, eff)
    assert "bench_l2_floor_s" in stage_parameters(["kernel_floor_s", "bench_l2_floor_s"], warm, eff)
