"""Sweep helpers: each row agrees with the one-point estimate it vectorizes; hand checks for the small formulas."""

from __future__ import annotations

import numpy as np
import pytest

from model.api import deployment
from model.errors import RidgeplanError
from model.serving.batching import kv_capacity
from model.serving.breakdown import bound_table
from model.serving.disagg import DisaggPlan, disaggregated
from model.serving.estimate import SLO, estimate
from model.serving.policy import ENGINES
from model.serving.sweep import (
    admitted_context_tokens, concurrency_sweep, cost_per_million_tokens_usd, crossover, disagg_rate_sweep,
    dominant_bound, goodput_requests_per_s, max_concurrency, mean_decode_context_tokens, meets_slo, rate_sweep,
    ridge_flop_per_byte, smallest_tp, speculation_sweep, step_bound_seconds, step_intensity_flop_per_byte,
)
from model.serving.workload import Lengths, Workload

VLLM = ENGINES["vllm"]
CHAT = Lengths.lognormal(1000, 250)


@pytest.fixture(scope="module")
def llama8b_dp2():
    return deployment("llama-3.1-8b", "h100-sxm", dp=2)


def test_cost_per_million_tokens_hand_formula():
    d = deployment("llama-3.1-70b", "h100-sxm", tp=4)
    price = d.device.price.usd_per_hour
    # 4 GPUs at $price/h producing 1,000 tokens/s: 4 price / 3.6e6 tokens x 1e6
    assert float(cost_per_million_tokens_usd(d, 1000.0)) == pytest.approx(4 * price / 3.6)
    assert np.isnan(cost_per_million_tokens_usd(d, [0.0])[0])


def test_step_bounds_match_the_breakdown_table():
    d = deployment("llama-3.1-8b", "h100-sxm", tp=2)
    step = d.step(np.array([1.0, 64.0, 512.0]), 1, 2000)
    vec = step_bound_seconds(step)
    for s in range(3):
        table = bound_table(step, s)
        for name, values in vec.items():
            assert values[s] == pytest.approx(table[name], abs=1e-12)
    # batch 1 decode reads every weight for one token: far below the ridge, memory-bound
    assert dominant_bound(vec)[0] == "memory"
    intensity = step_intensity_flop_per_byte(step)
    assert intensity[0] < 2 < ridge_flop_per_byte(d)
    assert np.all(np.diff(intensity) > 0)


def test_ridge_point_is_peak_over_bandwidth_of_the_dense_path():
    d = deployment("llama-3.1-8b", "h100-sxm", weights="fp8")
    assert d.resolved.dense_dtype == "fp8"
    assert ridge_flop_per_byte(d) == pytest.approx(d.device.peak("fp8") / d.device.memory.bandwidth_bytes_per_s)


def test_crossover_interpolates_and_handles_the_edges():
    x = [1, 2, 4, 8]
    # a - b = -3, -1, 1, 5: crosses between 2 and 4, halfway
    assert crossover(x, [0, 1, 3, 7], [3, 2, 2, 2]) == pytest.approx(3.0)
    assert crossover(x, [5, 5, 5, 5], [1, 1, 1, 1]) == 1.0
    assert crossover(x, [0, 0, 0, 0], [1, 1, 1, 1]) is None
    assert crossover([1, 2, 3], [0, np.nan, 2], [1, 1, 1]) == pytest.approx(2.0)
    with pytest.raises(RidgeplanError):
        crossover([1, 2], [1], [1, 2])


def test_concurrency_sweep_rows_match_estimate(llama8b_dp2):
    df = concurrency_sweep(llama8b_dp2, CHAT, VLLM, [1, 64, 10_000])
    for n in (1, 64):
        row = df[df["concurrency"] == n].iloc[0]
        e = estimate(llama8b_dp2, Workload(CHAT, concurrency=n), VLLM).to_dict()
        assert row["ttft_mean_s"] == pytest.approx(e["ttft_mean_s"])
        assert row["tpot_p90_s"] == pytest.approx(e["tpot_percentiles_s"]["p90"])
        assert row["output_tokens_per_s"] == pytest.approx(e["output_tokens_per_s"])
        assert row["output_tokens_per_s_per_gpu"] == pytest.approx(e["output_tokens_per_s_per_gpu"])
        assert row["usd_per_million_output_tokens"] == pytest.approx(e["cost_per_million_output_tokens_usd"])
        assert row["limited_by"] == "asked"
    capped = df.iloc[-1]
    assert capped["scheduled_concurrency"] == capped["max_concurrency"] < 10_000
    assert capped["limited_by"] == "max_num_seqs"
    assert set(df["decode_bound"]) <= {"compute", "memory", "network", "latency"}


def test_concurrency_sweep_reports_a_model_that_does_not_fit():
    d = deployment("llama-3.1-70b", "h100-sxm")  # 141 GB of bf16 weights on one 80 GB GPU
    df = concurrency_sweep(d, CHAT, VLLM, [1, 2])
    assert len(df) == 1 and not df["fits"].iloc[0]


def test_rate_sweep_rows_match_estimate(llama8b_dp2):
    slo = SLO(ttft_s=0.05, tpot_s=0.03)
    df = rate_sweep(llama8b_dp2, CHAT, VLLM, [5.0, 40.0, 1e4], slo)
    for r in (5.0, 40.0):
        row = df[df["rate_per_s"] == r].iloc[0]
        e = estimate(llama8b_dp2, Workload(CHAT, rate_per_s=r), VLLM, slo)
        assert row["sustainable"] and e.sustainable
        assert row["ttft_p90_s"] == pytest.approx(e.latency.ttft_s[0.9])
        assert row["tpot_p99_s"] == pytest.approx(e.latency.tpot_s[0.99])
    over = df.iloc[-1]
    assert not over["sustainable"] and np.isinf(over["ttft_p90_s"]) and not over["meets_slo"]
    good = goodput_requests_per_s(df)
    assert good in (0.0, 5.0, 40.0)
    # one sweep answers other targets at the same attainment: looser targets never lower the goodput
    assert goodput_requests_per_s(df, SLO(ttft_s=10.0, tpot_s=1.0)) == 40.0
    assert goodput_requests_per_s(df, SLO(ttft_s=1e-4)) == 0.0
    assert goodput_requests_per_s(df, SLO(ttft_s=0.05, tpot_s=0.03)) == good
    with pytest.raises(RidgeplanError):
        goodput_requests_per_s(df, SLO(ttft_s=1.0, attainment=0.75))
    # the library's own goodput (on its operating grid) is consistent with the sweep's pass/fail
    lib = estimate(llama8b_dp2, Workload(CHAT, rate_per_s=5.0), VLLM, slo).to_dict()["goodput_requests_per_s"]
    assert (lib >= 5.0) == bool(df["meets_slo"].iloc[0])


def test_disagg_rate_sweep_matches_disaggregated():
    d = deployment("llama-3.1-8b", "h100-sxm")
    plan = DisaggPlan(d, 1, d, 3)
    slo = SLO(ttft_s=0.5, tpot_s=0.03)
    df = disagg_rate_sweep(plan, CHAT, VLLM, [4.0, 1e4], slo)
    e = disaggregated(plan, Workload(CHAT, rate_per_s=4.0), VLLM, slo)
    row = df.iloc[0]
    assert row["ttft_p90_s"] == pytest.approx(e.ttft_s[0.9])
    assert row["tpot_mean_s"] == pytest.approx(e.tpot_s)
    assert row["gpus"] == 4 and row["meets_slo"]
    assert not df.iloc[1]["sustainable"] and not df.iloc[1]["meets_slo"]
    auto = disagg_rate_sweep(plan, CHAT, VLLM, None, slo)
    assert goodput_requests_per_s(auto) <= min(e.prefill_capacity_per_s, e.decode_capacity_per_s) + 1e-9
    with pytest.raises(RidgeplanError):
        goodput_requests_per_s(disagg_rate_sweep(plan, CHAT, VLLM, [1.0]))


def test_meets_slo_checks_each_target():
    slo = SLO(ttft_s=1.0, tpot_s=0.05)
    assert meets_slo([0.5, 2.0, 0.5], [0.01, 0.01, 0.1], slo).tolist() == [True, False, False]
    assert meets_slo([9.0], [0.01], SLO(tpot_s=0.05)).tolist() == [True]


def test_speculation_sweep_pays_at_batch_one_and_not_with_no_acceptance():
    d = deployment("llama-3.1-8b", "h100-sxm")
    df = speculation_sweep(d, Lengths.fixed(200, 400), VLLM, alphas=[0.0, 0.8], ks=[4], concurrency=[1, 256],
                           draft_cost_ratio=0.1)
    at = df.set_index(["alpha", "concurrency"])["speedup"]
    assert at[(0.8, 1.0)] > 1.5  # 3.36 tokens per verification for ~1.4 target steps of cost
    assert at[(0.0, 1.0)] < 1.0  # every draft rejected: pure overhead
    assert at[(0.8, 256.0)] < at[(0.8, 1.0)]
    assert df["tokens_per_step"].max() == pytest.approx(3.3616)


def test_max_concurrency_and_smallest_tp():
    n, limit = max_concurrency(deployment("llama-3.1-8b", "h100-sxm"), VLLM, [1000, 100_000], [200, 200])
    assert n[0] == 256 and limit[0] == "max_num_seqs" and n[1] < 256 and limit[1] == "kv"
    d = smallest_tp("llama-3.1-70b", "h100-sxm", CHAT, VLLM, min_concurrency=16)
    assert d.layout.tp == 2  # 141 GB of weights: one GPU cannot hold them, two hold them and 16 chats
    assert smallest_tp("llama-3.1-70b", "h100-sxm", CHAT, VLLM, min_concurrency=16, weights="int4").layout.tp == 1
    with pytest.raises(RidgeplanError) as err:
        smallest_tp("llama-3.1-70b", "rtx-4090", CHAT, VLLM, candidates=(1, 2))
    assert err.value.field == "tp"


def test_context_rules_match_the_engine_accounting():
    # the steady state charges decodes at the context half-way through the output: I + (O - 1) / 2
    assert float(mean_decode_context_tokens(1000, 201)) == 1100.0
    assert float(mean_decode_context_tokens(1000, 1)) == 1000.0
    assert float(admitted_context_tokens("vllm", 1000, 200)) == 1100.0
    assert float(admitted_context_tokens("trtllm", 1000, 200)) == 1200.0
    d = deployment("llama-3.1-8b", "h100-sxm")
    for engine in ("vllm", "trtllm"):
        work = Workload(Lengths.fixed(1000, 200))
        per_seq = estimate(d, work, engine).memory["kv_bytes_per_sequence"]
        ctx = admitted_context_tokens(engine, 1000, 200)
        assert kv_capacity(d, ENGINES[engine], ctx).kv_bytes_per_sequence[0] == pytest.approx(per_seq)
