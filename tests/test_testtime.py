"""Test-time compute accounting (CATALOG section 21)."""

from __future__ import annotations

import math

import pytest

from model.api import deployment
from model.errors import RidgeplanError
from model.operators.memory import kv_bytes_per_token
from model.techniques.phases import model_weight_bytes
from model.techniques.test_time_compute import (
    effective_flops, flops_matched_samples, kv_weight_crossover_tokens, parallel_streams, parscale_equivalent_params,
)


def test_flops_matched_samples_seed_a42():
    assert flops_matched_samples(1e9, 14e9) == pytest.approx(14.0)
    # with D = 20 P pre-training amortised over Q = 1e9 queries of T = 1,000 tokens:
    # N = (6 x 14e9 x 280e9 / 1e9 + 2 x 14e9 x 1e3 - 6 x 1e9 x 20e9 / 1e9) / (2 x 1e9 x 1e3) = 25.7 + 14 - 0.06
    n = flops_matched_samples(1e9, 14e9, 1000, pretrain_tokens_small=20e9, pretrain_tokens_large=280e9, queries=1e9)
    assert n == pytest.approx((6 * 14e9 * 280e9 / 1e9 + 2 * 14e9 * 1e3 - 6 * 1e9 * 20e9 / 1e9) / (2e9 * 1e3))
    with pytest.raises(RidgeplanError):
        flops_matched_samples(1e9, 14e9, pretrain_tokens_small=1e9)


def test_kv_weight_crossover():
    d = deployment("qwen3-0.6b", "h100-sxm")
    assert kv_weight_crossover_tokens(d) == pytest.approx(model_weight_bytes(d) / kv_bytes_per_token(d.arch))
    assert kv_bytes_per_token(d.arch) == 28 * 2 * 8 * 128 * 2  # 114,688 B


def test_effective_flops_sparse_budget():
    d = deployment("qwen3-0.6b", "h100-sxm")
    full, sparse = effective_flops(d, 32768), effective_flops(d, 32768, kv_budget=4096)
    ridge = 989.4e12 / 3.35e12
    assert full.dense_memory_flops == pytest.approx(ridge * model_weight_bytes(d), rel=0.02)
    assert sparse.total < full.total and sparse.dense_memory_flops == pytest.approx(full.dense_memory_flops)
    assert effective_flops(d, 32768, batch=8).dense_memory_flops == pytest.approx(full.dense_memory_flops / 8, rel=1e-4)


def test_parscale():
    # N (k ln P + 1): 1.6e9 x (0.4 x ln 8 + 1) = 1.6e9 x 1.832
    assert parscale_equivalent_params(1.6e9, 8, 0.4) == pytest.approx(1.6e9 * (0.4 * math.log(8) + 1))
    d = deployment("qwen3-1.7b", "a100-sxm-80gb")
    s = parallel_streams(d, 8, 1, 1024)
    st = d.step(8, 1, 1024)
    assert float(s.step_s[0]) == pytest.approx(float(st.time_s[0]))
    assert float(s.kv_bytes[0]) == pytest.approx(8 * float(d.step(1, 1, 1024).memory.kv_cache_bytes[0]))
