"""Phase models (CATALOG section 8): theoretical peak, idealized runtime, launch-bound steps, KV predictor."""

from __future__ import annotations

import math

import numpy as np
import pytest

from model.api import deployment
from model.errors import RidgeplanError
from model.techniques.phases import (
    at_peak, host_bound, idealized_runtime, kernels_per_step, kv_width, model_weight_bytes, predictor_ttft,
    transition_batch,
)


@pytest.fixture(scope="module")
def llama7b_a100():
    return deployment("llama-2-7b", "a100-sxm-80gb")


def test_peak_decode_is_bytes_over_bandwidth(llama7b_a100):
    # at 100% of peak a batch-1 decode step is memory-bound in every operator: time = bytes / BW exactly
    # (Llama-2-7B bf16: ~13.5 GB of weights / 2.039 TB/s = ~6.6 ms)
    d = at_peak(llama7b_a100)
    st = d.step(1, 1, 0)
    total_bytes = float(st.ops.total("bytes")[0])
    assert float(st.time_s[0]) == pytest.approx(total_bytes / 2.039e12, rel=1e-6)
    assert 6.4e-3 < float(st.time_s[0]) < 6.8e-3


def test_peak_prefill_is_flops_over_peak(llama7b_a100):
    # a 4,096-token prefill is compute-bound: 2 P S / 312 TFLOP/s plus causal attention 2 L S^2 d / 312e12
    # (the element-wise operators stay memory-bound: they are left out of the comparison)
    d = at_peak(llama7b_a100)
    p_nonemb = 6.738415616e9 - 2 * 32000 * 4096
    s = 4096
    hand = (2 * p_nonemb * s + 2 * 32 * s * s * 4096) / 312e12
    st = d.step(1, s, 0)
    heavy = np.array([op.kind in ("gemm", "attention") for op in st.ops.ops])
    t = float(st.ops.counts[heavy] @ st.times.time_s[heavy, 0])
    assert t == pytest.approx(hand, rel=0.01)
    assert float(st.time_s[0]) > t


def test_idealized_runtime_counts_accelerators():
    # Llama-3.1-70B bf16: 141 GB of weights over 80 GB devices -> ceil(1.76) = 2 accelerators
    d = deployment("llama-3.1-70b", "h100-sxm", tp=2)
    r = idealized_runtime(d, 100, 3)
    assert model_weight_bytes(d) == pytest.approx(2 * 70.553706496e9, rel=1e-3)
    assert r.accelerators == 2
    steps = d.step(1, 1, np.array([100.0, 101.0])).time_s
    assert r.decode_s == pytest.approx(float(steps.sum()))
    assert r.runtime_s == pytest.approx(r.prefill_s + r.decode_s)
    assert r.accelerator_s == pytest.approx(2 * r.runtime_s)


def test_host_bound_is_max_of_gpu_and_launches():
    # Llama-3.2-1B batch-1 decode: ~2.5 GB / 2 TB/s ~ 1.5 ms of GPU time vs 3 x 181 kernels x 10 us = 5.4 ms
    d = deployment("llama-3.2-1b", "a100-sxm-80gb")
    st = d.step(np.array([1.0, 256.0]), np.array([1.0, 512.0]), 0)
    n = kernels_per_step(d)
    assert n == sum(op.kernels * op.count for op in d.graph.ops)  # one replica, no PP
    hb = host_bound(st, 10e-6, 3.0)
    assert hb.kernels == pytest.approx(3 * n)
    np.testing.assert_allclose(hb.host_s, 3 * n * 10e-6)
    np.testing.assert_allclose(hb.gpu_s, st.time_s - st.overhead_s)
    np.testing.assert_allclose(hb.time_s, np.maximum(hb.gpu_s, hb.host_s))
    assert hb.launch_bound[0] and not hb.launch_bound[1]  # batch-1 decode launch-bound, 256 x 512 prefill not
    assert hb.exposed_host_s[1] == 0


def test_transition_batch_rises_with_launch_cost_and_falls_with_fusion():
    d = deployment("llama-3.2-1b", "gh200")
    eager = transition_batch(d, 512, 0, 15e-6, 3.0)
    assert transition_batch(d, 512, 0, 10e-6, 3.0) <= eager
    assert transition_batch(d, 512, 0, 15e-6, 1.0) < eager
    assert transition_batch(d, 512, 0, 1.0, 1.0) == math.inf  # a second per launch: never GPU-bound
    with pytest.raises(RidgeplanError):
        host_bound(d.step(1, 1, 0), 0.0)


def test_predictor_flops_hand_derivation():
    # Qwen3-0.6B -> Qwen3-1.7B: 8 KV heads x (128 + 128) = 2,048 K+V features each side, 28 base layers:
    # 2 x 2,048 tokens x 28 x 2,048 x 2,048 = 481 GFLOP
    base, aux = deployment("qwen3-1.7b", "apple-m2-pro"), deployment("qwen3-0.6b", "apple-m2-pro")
    assert kv_width(base) == kv_width(aux) == 2048
    r = predictor_ttft(base, aux, 2048)
    assert r.predictor_flops == pytest.approx(2 * 2048 * 28 * 2048 * 2048)
    assert r.with_predictor_s == pytest.approx(r.auxiliary_s + r.predictor_s)
    assert r.base_s > r.with_predictor_s  # the small model's prefill is cheaper
