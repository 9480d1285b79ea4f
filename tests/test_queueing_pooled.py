"""Pooled vs partitioned instances: Erlang C and the M/G/c wait (CATALOG section 11)."""

from __future__ import annotations

import math

import pytest

from model.errors import RidgeplanError
from model.serving.queueing import (
    erlang_c, instances_needed, latency_grid, mgc_mean_wait_s, mgc_wait_quantile_s, tail_latency_s,
)
from model.serving.queueing import mg1_wait_s, wait_quantile_s


def test_erlang_c_hand_values():
    # c = 1: C = rho.  c = 2, a = 1: (1/2 x 2/(2-1)) / (1 + 1 + 1) = 1/3
    assert erlang_c(1, 0.7) == pytest.approx(0.7)
    assert erlang_c(2, 1.0) == pytest.approx(1 / 3)
    # c = 3, a = 2: a^3/3! x 3/(3-2) = 4; sum_{k<3} 2^k/k! = 1 + 2 + 2 = 5 -> 4/9
    assert erlang_c(3, 2.0) == pytest.approx(4 / 9)
    assert erlang_c(2, 2.0) == 1.0
    with pytest.raises(RidgeplanError):
        erlang_c(2, -1)


def test_single_server_matches_mg1():
    # M/D/1 (cs2 = 0): W_q = lambda D^2 / (2 (1 - rho)); lambda = 6/s, D = 0.1 s -> 0.06 / 0.8 = 0.075 s
    assert mgc_mean_wait_s(6.0, 0.1, 1) == pytest.approx(0.075)
    assert mgc_mean_wait_s(6.0, 0.1, 1) == pytest.approx(float(mg1_wait_s(6.0, 0.1, 0.01)))
    # the tail matches queueing.wait_quantile_s (exponential conditional wait with mean W_q / rho)
    assert mgc_wait_quantile_s(0.99, 6.0, 0.1, 1) == pytest.approx(float(wait_quantile_s(0.99, 0.6, 0.075)))
    assert mgc_wait_quantile_s(0.99, 20.0, 0.1, 1) == math.inf


def test_pooling_needs_fewer_instances():
    # 60 req/s of 40 ms prompts (load 2.4): a shared queue reaches a 2 x D p99 target with far fewer instances
    pooled = instances_needed(0.99, 0.08, 60.0, 0.04, pooled=True)
    part = instances_needed(0.99, 0.08, 60.0, 0.04, pooled=False)
    assert 3 <= pooled < part
    assert tail_latency_s(0.99, 60.0, 0.04, pooled, True) <= 0.08 < tail_latency_s(0.99, 60.0, 0.04, pooled - 1, True)
    assert instances_needed(0.99, 0.03, 60.0, 0.04, pooled=True) == 0  # below the service time itself
    lat = latency_grid(0.99, 60.0, 0.04, [3, 4, 8], pooled=True)
    assert lat[0] >= lat[1] >= lat[2] >= 0.04
