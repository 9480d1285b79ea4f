"""Block-scaled FP8 rows timed eagerly (Efficiency.gemm_eager_8b, gemm_host_s_8b, eager_call_s): vLLM's collector
times its fp8_block layers without CUDA graphs, so a loop of calls runs at the slower of the host's time per call and
the kernels' GPU time; by hand, set only for vLLM, neutral in the hand-set classes."""

from __future__ import annotations


import pandas as pd
import pytest

from model.calibration.importer import KERNEL_FACTS, PARSIMONY, stage_parameters
from model.hardware import load_device
from model.roofline.efficiency_forms import eager_call_s
from model.roofline.efficiency_sets import ARCH_DEFAULTS
from model.roofline.kernels import predict_kernels
from tests.test_calibration_deepgemm_waves import _eff  # H100 block-scaled FP8 without size terms or floors

H100 = load_device("h100-sxm")
BW = H100.memory.bandwidth_bytes_per_s
FP8 = H100.peak("fp8")


def test_eager_call_by_hand():
    # the host issues the next call while the GPU runs this one: 40 us of kernels behind 100 us of host time take
    # 100 us a call; 250 us of kernels take 250 us; no host time (0): the kernels' time
    assert eager_call_s(40e-6, 100e-6) == 100e-6
    assert eager_call_s(250e-6, 100e-6) == 250e-6
    assert eager_call_s(40e-6, 0.0) == 40e-6


def test_eagerly_timed_block_scaled_rows_wait_for_the_host():
    # m = 4096, n = 4096, k = 4096: 2 x 4096^3 = 137,438,953,472 FLOPs at 0.5 of peak (compute-bound: its stream,
    # 2 x 4096^2 x 1 B + 4096^2 x 2 B = 67,108,864 B, is far shorter at the near-hard corner), plus the quantization
    # call 2 us + 3 x 4096^2 / (0.8 BW) + 4096 x 1 ns
    rows = pd.DataFrame([dict(kernel="gemm", dtype="fp8", m=4096, n=4096, k=4096, block_scaled=1.0),
                         dict(kernel="gemm", dtype="fp8", m=16, n=1024, k=1024, block_scaled=1.0)])
    big_s = 137_438_953_472 / (FP8 * 0.5) + 2e-6 + 3 * 4096**2 / (BW * 0.8) + 4096e-9
    plain = predict_kernels(rows, H100, _eff())
    assert plain[0] == pytest.approx(big_s, rel=1e-4)
    assert plain[1] < 10e-6  # a few microseconds of kernels
    # host time 60 us: the small call waits for the host (60 us), the large one (over 100 us on the GPU) does not
    eager = predict_kernels(rows, H100, _eff(gemm_eager_8b=1.0, gemm_host_s_8b=60e-6))
    assert big_s > 60e-6 and eager[0] == plain[0]
    assert eager[1] == 60e-6
    # not eager (tables timed in CUDA graphs), no host time, or per-tensor rows: unchanged
    assert (predict_kernels(rows, H100, _eff(gemm_host_s_8b=60e-6)) == plain).all()
    assert (predict_kernels(rows, H100, _eff(gemm_eager_8b=1.0)) == plain).all()
    per_tensor = rows.assign(block_scaled=0.0)
    assert (predict_kernels(per_tensor, H100, _eff(gemm_eager_8b=1.0, gemm_host_s_8b=60e-6))
            == predict_kernels(per_tensor, H100, _eff())).all()


def test_eager_fact_is_vllms_only_and_neutral_in_the_hand_set_classes():
    # vLLM's collector times fp8_block without CUDA graphs (collector/vllm/collect_gemm.py); SGLang's and
    # TensorRT-LLM's replay graphs
    assert all(KERNEL_FACTS[key].get("gemm_eager_8b") == 1.0 for key in KERNEL_FACTS if key[0] == "vllm"
               and key[1] != "ampere")
    assert all("gemm_eager_8b" not in facts for key, facts in KERNEL_FACTS.items() if key[0] != "vllm")
    assert all(eff.gemm_eager_8b == 0.0 and eff.gemm_host_s_8b == 0.0 for eff in ARCH_DEFAULTS.values())
    # fitted only where the fact is set and block-scaled rows exist; a fact of the collector, so never dropped by the
    # parsimony test (its alternative on the fit rows is an unphysical ~110 us quantization call)
    rows = pd.DataFrame([dict(kernel="gemm", dtype="fp8", family="gemm_fp8", m=16, n=1024, k=1024, block_scaled=1.0)])
    names = ("gemm_max_8b", "gemm_host_s_8b")
    assert "gemm_host_s_8b" in stage_parameters(names, rows, _eff(gemm_eager_8b=1.0))
    assert "gemm_host_s_8b" not in stage_parameters(names, rows, _eff())
    assert "gemm_host_s_8b" not in stage_parameters(names, rows.assign(block_scaled=0.0), _eff(gemm_eager_8b=1.0))
    assert "gemm_host_s_8b" not in PARSIMONY
