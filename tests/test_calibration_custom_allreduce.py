"""The engines' custom all-reduce (one-shot / two-shot CUDA-IPC kernels by the engine's size rule, NCCL above it), by
hand: neutral in the hand-set classes, the rule recorded per engine from its source, recovered by the staged fit."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pandas as pd
import pytest

from model.calibration.fit import predictor
from model.calibration.importer import fit_rows
from model.engines import custom_all_reduce_limits
from model.hardware import load_device
from model.placement.topology import efficiency_tiers
from model.roofline.collectives import Tier, collective_time, custom_limits_for
from model.roofline.efficiency_sets import ARCH_DEFAULTS, efficiency_for
from model.serving.deployment import deployment_efficiency

H100 = load_device("h100-sxm")
MIB, KIB = 1024**2, 1024
RULE = ((2, 1e6, 1e6), (4, 256e3, 8e6), (8, 128e3, 8e6))
# NCCL side: 100 GB/s, 1 us per step; custom kernel: 200 GB/s, two-shot +3 us; NCCL start-up +5 us over it
TIER = Tier(100e9, 1e-6, custom_bytes_per_s=200e9, custom_two_shot_latency_s=3e-6, custom_limits=RULE,
            nccl_base_latency_s=5e-6)


def test_the_engine_rule_picks_one_shot_two_shot_or_nccl_by_size():
    # 4 ranks, 100 kB < 256 kB: one-shot 1 us + 3 x 100e3 / 200e9 = 1 + 1.5 = 2.5 us
    assert collective_time("all_reduce", 100e3, 4, intra=TIER)[()] == pytest.approx(2.5e-6, rel=1e-12)
    # 4 ranks, 1 MB: two-shot 2 x 1 + 3 + 2 x 3/4 x 1e6 / 200e9 = 5 + 7.5 = 12.5 us
    assert collective_time("all_reduce", 1e6, 4, intra=TIER)[()] == pytest.approx(12.5e-6, rel=1e-12)
    # 4 ranks, 16 MB >= 8 MB: NCCL, ring 2 x 3 x 1 us + 2 x 3/4 x 16e6 / 100e9 = 6 + 240 = 246 us (tree: 4 + 320,
    # no in-switch reduction) + 5 us start-up = 251 us
    assert collective_time("all_reduce", 16e6, 4, intra=TIER)[()] == pytest.approx(251e-6, rel=1e-12)
    # 3 ranks take the 4-rank entry; 16 ranks lie past the rule: NCCL (ring 2 x 15 x 1 us + 2 x 15/16 x 1e3 / 1e11
    # = 30 + 0.01875 us; tree 2 x 4 x 1 + 0.02 = 8.02 us) + 5 us
    one, below = custom_limits_for(np.array([2.0, 3.0, 8.0, 16.0]), RULE)
    assert list(one) == [1e6, 256e3, 128e3, 0.0] and list(below) == [1e6, 8e6, 8e6, 0.0]
    assert collective_time("all_reduce", 1e3, 16, intra=TIER)[()] == pytest.approx(8.02e-6 + 5e-6, rel=1e-12)


def test_fastest_is_the_faster_of_the_engine_call_and_nccl():
    # a slow custom kernel (50 GB/s), 2 ranks, 0.9 MB: one-shot 1 + 0.9e6 / 50e9 = 19 us; NCCL ring 2 x 1 +
    # 0.9e6 / 100e9 = 11 us + 5 us = 16 us. The engine runs its kernel; a table keeping the faster measures NCCL
    slow = replace(TIER, custom_bytes_per_s=50e9)
    assert collective_time("all_reduce", 0.9e6, 2, intra=slow)[()] == pytest.approx(19e-6, rel=1e-12)
    assert collective_time("all_reduce", 0.9e6, 2, intra=slow, algorithm="fastest")[()] == pytest.approx(16e-6,
                                                                                                         rel=1e-12)


def test_no_custom_kernel_keeps_the_fastest_algorithm():
    plain = Tier(100e9, 1e-6)
    m, n = np.geomspace(1e3, 1e9, 13), np.array([2.0, 4.0, 8.0])[:, None]
    # one-shot 1 us + (n - 1) m / beta, ring, tree: the fastest of them, no NCCL start-up
    expect = np.minimum.reduce([1e-6 + (n - 1) * m / 100e9, 2 * (n - 1) * 1e-6 + 2 * (n - 1) / n * m / 100e9,
                                2 * np.log2(n) * 1e-6 + 2 * m / 100e9])
    for algorithm in ("auto", "fastest"):
        got = collective_time("all_reduce", m, n, intra=replace(TIER, custom_bytes_per_s=0.0), algorithm=algorithm)
        assert np.allclose(got, expect, rtol=1e-12)
        assert np.array_equal(got, collective_time("all_reduce", m, n, intra=plain, algorithm=algorithm))


def test_neutral_in_every_hand_set_class_and_tiers_without_the_fitted_bandwidth():
    for eff in ARCH_DEFAULTS.values():
        assert eff.custom_ar_bus_efficiency == 0 and eff.custom_ar_two_shot_s == 0 and eff.nccl_base_s == 0
        assert all(one == below == 0 for _, one, below in eff.custom_all_reduce_limits())
    # an engine's rule alone (deployment_efficiency sets it) leaves the tier as it was: no fitted kernel bandwidth
    eff = deployment_efficiency(H100, calibration=False, engine="trtllm")
    assert eff.ar_custom_below_8 == 8 * MIB
    intra = efficiency_tiers(H100, None, eff).intra
    assert intra.custom_bytes_per_s == 0 and intra.custom_limits == () and intra.nccl_base_latency_s == 0
    fitted = replace(eff, custom_ar_bus_efficiency=0.5, custom_ar_two_shot_s=4e-6, nccl_base_s=6e-6)
    intra = efficiency_tiers(H100, None, fitted).intra
    assert intra.custom_bytes_per_s == pytest.approx(0.5 * 450e9) and intra.custom_two_shot_latency_s == 4e-6
    assert intra.nccl_base_latency_s == 6e-6 and intra.custom_limits[2] == (8.0, 512 * KIB, 8 * MIB)


def test_engine_rules_as_their_sources_state_them():
    vllm = custom_all_reduce_limits("vllm", "hopper")  # all_reduce_utils.py "9.0": {2: 64, 4: 32 MiB, 8: 256 kB}
    assert (vllm["ar_one_shot_below_2"], vllm["ar_custom_below_2"]) == (64 * MIB, 64 * MIB)
    assert (vllm["ar_one_shot_below_4"], vllm["ar_custom_below_4"]) == (512 * KIB, 32 * MIB)
    assert (vllm["ar_one_shot_below_8"], vllm["ar_custom_below_8"]) == (256 * KIB, 256 * KIB)
    assert custom_all_reduce_limits("vllm", "blackwell")["ar_custom_below_8"] == 1 * MIB  # "10.0": 8 ranks 1 MB
    sglang = custom_all_reduce_limits("sglang", "hopper")  # v2 graph table, <= 128 kB one-shot at 8, 16 MiB cap
    assert sglang["ar_one_shot_below_8"] == 128 * KIB + 16 and sglang["ar_custom_below_8"] == 16 * MIB + 16
    trt = custom_all_reduce_limits("trtllm", "hopper")  # SM90 table, hidden 4096: one-shot to 32 tokens at TP8
    assert trt["ar_one_shot_below_8"] == 64 * 4096 * 2 == 512 * KIB and trt["ar_custom_below_8"] == 8 * MIB
    assert custom_all_reduce_limits(None, "hopper") == custom_all_reduce_limits("vllm", "ampere")
    assert set(custom_all_reduce_limits(None, "hopper").values()) == {0.0}


def test_staged_fit_recovers_the_custom_kernel_and_the_nccl_start_up():
    facts = custom_all_reduce_limits("trtllm", "hopper")  # one-shot, two-shot (4 and 8 ranks) and NCCL rows
    start = efficiency_for(H100, calibration=False)
    true = replace(start, **facts, collective_base_s=2e-6, collective_floor_s=1e-6, scale_up_bus_efficiency=0.7,
                   nvls_bus_efficiency=0.65, nvls_latency_s=40e-6, custom_ar_bus_efficiency=0.45,
                   custom_ar_two_shot_s=5e-6, nccl_base_s=9e-6)
    sizes = np.geomspace(256, 1e9, 40)
    rows = pd.DataFrame([{"kernel": "all_reduce", "dtype": "bf16", "family": "all_reduce", "message_bytes": m,
                          "ranks": r, "size": m, "measured_s": 1.0} for r in (2, 4, 8) for m in sizes])
    clean = predictor(rows, H100)(true)
    rows["measured_s"] = clean * np.exp(np.random.default_rng(3).normal(0, 0.01, len(rows)))
    result = fit_rows(rows, H100, facts=facts)
    for name, tol in (("custom_ar_bus_efficiency", 0.05), ("custom_ar_two_shot_s", 0.3), ("nccl_base_s", 0.3),
                      ("scale_up_bus_efficiency", 0.05)):
        assert result.params[name] == pytest.approx(getattr(true, name), rel=tol), name
    assert result.params["ar_custom_below_8"] == 8 * MIB  # the engine's rule is written with the fit, not fitted
    held = result.rows[result.rows["split"] != "fit"]
    assert float(np.median(np.abs(held["after"] / held["measured_s"] - 1))) < 0.03


def test_stacked_tiers_evaluate_as_each_tier_alone():
    # the planner stacks its candidates' tiers and indexes them per scenario: a tier with the custom kernel, one
    # without (the fastest-of form, one-shot included) and one with another rule give, stacked, their own times
    from model.roofline.collectives import stack_tiers, take_tier

    other = replace(TIER, custom_limits=((8, 1e6, 2e6),), custom_bytes_per_s=300e9)
    tiers = [TIER, Tier(100e9, 1e-6), other]
    idx = np.array([0, 1, 2, 2, 0, 1])
    stacked = take_tier(stack_tiers(tiers), idx)
    m = np.array([100e3, 100e3, 1.5e6, 16e6, 1e6, 5e8])
    n = np.array([4.0, 4.0, 8.0, 8.0, 8.0, 2.0])
    alone = [collective_time("all_reduce", m[s], n[s], intra=tiers[i])[()] for s, i in enumerate(idx)]
    assert np.allclose(collective_time("all_reduce", m, n, intra=stacked), alone, rtol=1e-12)
