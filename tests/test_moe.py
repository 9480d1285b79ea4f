"""MoE pieces (model.techniques.expert_parallel): all-to-all bytes and time with locality, the EP-bound decode, null experts,
offload with a hit rate, affinity placement. Hand derivations in the comments."""

from __future__ import annotations

import numpy as np
import pytest

from model.errors import RidgeplanError
from model.planner.experts import evaluate_placement
from model.roofline.collectives import Tier
from model.techniques.expert_parallel import (
    affinity_placement, all_to_all_bytes, all_to_all_s, ep_bound_decode, null_expert_speedup, offloaded_step_s,
    placement_cost, remote_fraction_for_saving, routing_saving, slot_fraction_for_speedup,
)


def test_deepseek_v3_ep_bound():
    # (1 + 2) B x 32 tokens x 9 experts x 7,000 = 6,048,000 B; / 50 GB/s = 120.96 us; x 2 x 61 = 14.757 ms
    b = float(all_to_all_bytes(32, 9, 7000, exchange_bytes=(1.0, 2.0)))
    assert b == 6_048_000
    e = ep_bound_decode(b, 50e9, 61)
    assert e.layer_comm_s == pytest.approx(120.96e-6)
    assert e.tpot_s == pytest.approx(14.75712e-3)
    assert e.tokens_per_s == pytest.approx(67.764, rel=1e-4)
    assert ep_bound_decode(b, 900e9, 61).tokens_per_s == pytest.approx(1219.75, rel=1e-4)


def test_local_fraction_and_exchanges_scale_bytes():
    base = all_to_all_bytes(64, 2, 4096, local_fraction=0.125)  # 64 x 2 x 4096 x 4 B x 0.875 = 1,835,008
    assert float(base) == 1_835_008
    one = all_to_all_bytes(64, 2, 4096, exchange_bytes=(2.0,), local_fraction=0.5)
    assert float(one / base) == pytest.approx(0.5 * 0.5 / 0.875)
    with pytest.raises(RidgeplanError):
        all_to_all_bytes(1, 1, 1, local_fraction=1.5)


def test_all_to_all_time_single_tier():
    # 8 ranks, uniform: (8 - 1) alpha + 7/8 M / beta per exchange, M = 64 x 2 x 4096 x 2 B = 1,048,576
    t = Tier(100e9, 1e-6)
    m = 64 * 2 * 4096 * 2
    expected = 2 * (7 * 1e-6 + 7 / 8 * m / 100e9)
    assert float(all_to_all_s(64, 2, 4096, 8, intra=t)) == pytest.approx(expected)
    # half the pairs local: volume scales by 0.5 / 0.875
    half = 2 * (7 * 1e-6 + 0.5 * m / 100e9)
    assert float(all_to_all_s(64, 2, 4096, 8, intra=t, local_fraction=0.5)) == pytest.approx(half)


def test_routing_identities():
    assert float(routing_saving(2, 1, 1.0)) == pytest.approx(0.5)
    assert float(remote_fraction_for_saving(0.67, 2, 1)) == pytest.approx(0.66)
    assert float(routing_saving(2, 1, 0.66)) == pytest.approx(0.67)
    assert slot_fraction_for_speedup(2.0) == pytest.approx(0.5)
    assert null_expert_speedup(0.5) == pytest.approx(2.0)


def test_offloaded_step():
    # 10 ms compute; 1 GB of experts at 25 GB/s = 40 ms; 99% hits -> 0.4 ms of misses
    assert float(offloaded_step_s(0.010, 1e9, 25e9, 0.0)) == pytest.approx(0.050)
    assert float(offloaded_step_s(0.010, 1e9, 25e9, 0.99)) == pytest.approx(0.0104)
    assert float(offloaded_step_s(0.010, 1e9, 25e9, 0.0, prefetch=True)) == pytest.approx(0.040)


def test_affinity_placement_colocates_successors():
    # each expert e of layer l sends all its tokens to expert (e + 1) % 8 of layer l + 1: a perfect placement puts
    # (e + 1) % 8 on e's GPU, so no token changes GPU
    aff = np.zeros((8, 8))
    for e in range(8):
        aff[e, (e + 1) % 8] = 10.0
    a, b = affinity_placement(aff, 4)
    p = evaluate_placement(aff.sum(axis=1), aff.sum(axis=0), aff, a, b, 4)
    assert p.cross_gpu_tokens == 0
    assert np.bincount(b, minlength=4).tolist() == [2, 2, 2, 2]
    cost = placement_cost(p, float(aff.sum()), 64, 2, 4096, 4, 1e-3, intra=Tier(100e9, 1e-6))
    assert cost.local_fraction == 1.0 and cost.all_to_all_s == 0.0 and cost.expert_s == pytest.approx(1e-3)
