"""Serving model: hand derivations for each formula, invariants, and error paths."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from model.api import deployment
from model.errors import RidgeplanError
from model.operators.memory import kv_bytes_per_token
from model.serving.batching import iteration_cost, kv_capacity, steady_state
from model.techniques.context_parallel import context_parallel_prefill
from model.serving.disagg import DisaggPlan, disaggregated, kv_transfer_s
from model.serving.estimate import SLO, estimate
from model.serving.policy import ENGINES, EnginePolicy
from model.serving.quality import precision_risk
from model.serving.queueing import mg1_wait_s, wait_quantile_s
from model.serving.speculation_offload import Offload, Speculation, expected_tokens_per_step
from model.serving.workload import Lengths, Workload

VLLM = ENGINES["vllm"]


@pytest.fixture(scope="module")
def llama8b():
    return deployment("llama-3.1-8b", "h100-sxm")


# --- closed forms -----------------------------------------------------------------------------------------

@pytest.mark.parametrize("alpha, k, expected", [(0.8, 4, 3.3616), (0.8, 1, 1.8), (0.9, 1, 1.9), (1.0, 3, 4.0), (0.0, 5, 1.0)])
def test_expected_tokens_per_verification_seed_a19(alpha, k, expected):
    # E = (1 - a^(k+1)) / (1 - a): a = 0.8, k = 4 -> (1 - 0.32768) / 0.2 = 3.3616
    assert float(expected_tokens_per_step(alpha, k)) == pytest.approx(expected)


def test_md1_wait_hand_formula():
    # M/D/1: W_q = lambda D^2 / (2 (1 - rho)); lambda = 0.5/s, D = 1 s -> rho 0.5, W_q = 0.5 s
    assert float(mg1_wait_s(0.5, 1.0, 1.0)) == pytest.approx(0.5)
    assert np.isinf(mg1_wait_s(1.2, 1.0, 1.0))
    # with probability 1 - rho there is no wait at all
    assert float(wait_quantile_s(0.4, 0.5, 0.5)) == 0.0
    assert float(wait_quantile_s(0.99, 0.5, 0.5)) == pytest.approx((0.5 / 0.5) * np.log(0.5 / 0.01))


def test_kv_capacity_hand_derivation(llama8b):
    # vLLM: pool = 0.9 x 85,520,809,984 (nvidia-smi total) - weights 8,030,261,248 x 2 - workspace - 0.5 GB.
    # Workspace at the 8,192-token budget: the largest live set is SiLU-and-multiply reading gate and up and
    # writing their product: 8192 x 3 x 14336 x 2 B.
    pool = 0.9 * 85_520_809_984 - 16_060_522_496 - 8192 * 3 * 14336 * 2 - 0.5e9
    # a sequence at 1,100 tokens takes 1,104 (69 blocks of 16) x 131,072 B (32 layers x 2 x 8 x 128 x 2)
    per_seq = 1104 * 131_072
    cap = kv_capacity(llama8b, VLLM, 1100)
    assert cap.kv_pool_bytes == pytest.approx(pool)
    assert cap.kv_bytes_per_sequence[0] == pytest.approx(per_seq)
    assert cap.max_sequences[0] == np.floor(pool / per_seq)


def test_trtllm_reserves_whole_requests(llama8b):
    trt = replace(ENGINES["trtllm"], max_num_seqs=10**6)
    full = steady_state(llama8b, trt, 1000, 2000)
    current = steady_state(llama8b, replace(trt, admission="current"), 1000, 2000)
    assert full.concurrency[0] < current.concurrency[0]


def test_littles_law_in_steady_state(llama8b):
    # X = N_dec / ((O - 1) t): output tokens/s = X O and decode sequences = N (O - 1) / (O - 1 + chunks)
    s = steady_state(llama8b, VLLM, 500, 101, 40)
    n_dec = 40 * 100 / (100 + 1)
    assert s.decode_seqs[0] == pytest.approx(n_dec)
    assert s.requests_per_s[0] == pytest.approx(n_dec / (100 * s.iteration.time_s[0]))
    assert s.output_tokens_per_s[0] == pytest.approx(s.requests_per_s[0] * 101)


def test_iteration_reads_weights_once_when_chunked(llama8b):
    mixed = iteration_cost(llama8b, 32, 1000, 512, 1, 0).time_s[0]
    separate = iteration_cost(llama8b, 32, 1000, 512, 1, 0, separate_prefill=True).time_s[0]
    assert mixed < separate


def test_kv_transfer_hand_formula():
    # Llama-3.1-8B, 2,000-token prompt, bf16 KV: 2000 x 131,072 B over one H100's NDR NIC
    # (50 GB/s x bus efficiency) plus the link latency
    p = deployment("llama-3.1-8b", "h100-sxm")
    plan = DisaggPlan(p, 1, p, 1, placement="across_nodes")
    tier = p.tiers.inter
    expected = tier.latency_s + 2000 * 131_072 / tier.bandwidth_bytes_per_s
    assert float(kv_transfer_s(plan, 2000)) == pytest.approx(expected)
    assert kv_bytes_per_token(p.arch) == 131_072


def test_ring_and_ulysses_volumes():
    d = deployment("yi-34b", "h100-sxm")
    # ring: (cp - 1) K/V blocks of S/cp tokens: 7 x 16384 x 60 layers... per layer: 7 x 16384 x 2 x 8 x 128 x 2 B
    r = context_parallel_prefill(d, 131_072, 8, "ring")
    assert r.bytes_per_rank_per_layer == pytest.approx(7 * 16384 * 2 * 8 * 128 * 2)
    # Ulysses: (Q, K, V) + O all-to-alls of S/cp tokens, (cp - 1)/cp of them leave the rank
    u = context_parallel_prefill(d, 131_072, 8, "ulysses")
    assert u.bytes_per_rank_per_layer == pytest.approx(16384 * ((56 + 16) * 128 + 56 * 128) * 2 * 7 / 8)
    # SEED-C13: Ulysses volume per rank is constant when S/cp is fixed
    a = context_parallel_prefill(d, 32_768, 2, "ulysses").bytes_per_rank_per_layer / (1 / 2)
    b = context_parallel_prefill(d, 65_536, 4, "ulysses").bytes_per_rank_per_layer / (3 / 4)
    assert a == pytest.approx(b)
    assert r.kv_bytes_per_rank == pytest.approx(131_072 * 245_760 / 8)


# --- techniques -------------------------------------------------------------------------------------------

def test_speculation_pays_at_low_batch_not_at_high_batch_seed_c08():
    d = deployment("llama-3.1-8b", "h100-sxm")
    spec = Speculation(alpha=0.7, k=4, draft_cost_ratio=0.1)
    for n, faster in ((1, True), (256, False)):
        base = steady_state(d, VLLM, 200, 400, n)
        sp = steady_state(d, VLLM, 200, 400, n, speculation=spec)
        assert bool(sp.output_tokens_per_s[0] > base.output_tokens_per_s[0]) is faster


def test_full_weight_offload_is_bounded_by_the_host_link():
    # every decode step must bring all weights over PCIe Gen5 x16 (64 GB/s x bus efficiency)
    d = deployment("llama-3.1-8b", "h100-sxm")
    off = Offload("weights", "host-xeon-8480", 1.0)
    s = steady_state(d, VLLM, 500, 200, 8, offload=off)
    assert s.iteration.time_s[0] >= 16.06e9 / off.link_bytes_per_s(d.device)


def test_kv_offload_raises_capacity():
    d = deployment("llama-3.1-8b", "rtx-4090")
    base = kv_capacity(d, VLLM, 8000).max_sequences[0]
    more = kv_capacity(d, VLLM, 8000, Offload("kv", "host-xeon-8480", 0.5)).max_sequences[0]
    assert more >= 2 * base - 1


def test_full_kv_offload_does_not_make_oversized_weights_fit():
    """Llama-3.1-70B in BF16 is 141 GB of weights; one 48 GB L40S cannot hold them whatever happens to the KV
    cache, so offloading all of the KV must still report no sequence and no latency."""
    d = deployment("llama-3.1-70b", "l40s")
    off = Offload("kv", "host-xeon-8480", 1.0)
    assert kv_capacity(d, VLLM, 2000, off).max_sequences[0] == 0
    est = estimate(d, Workload(Lengths.fixed(1024, 256), concurrency=4), offload=off)
    assert not est.fits and est.memory["shortfall_bytes"] > 90e9


def test_chunked_prefill_sustains_more_under_a_tbt_slo_seed_c02():
    d = deployment("llama-3.1-8b", "h100-sxm")
    work = Workload(Lengths.fixed(2000, 200), rate_per_s=1.0)
    slo = SLO(ttft_s=2.0, tpot_s=0.015)
    chunked = estimate(d, work, VLLM, slo).goodput_requests_per_s
    stalled = estimate(d, work, replace(VLLM, chunked_prefill=False), slo).goodput_requests_per_s
    assert chunked > stalled


def test_quantized_formats_are_riskier_or_equal():
    from model.precision import Precision

    assert precision_risk(Precision("bf16")) == 0
    assert precision_risk(Precision("int2")) == 3
    assert precision_risk(Precision("fp8", kv="int2")) == 2


# --- estimates --------------------------------------------------------------------------------------------

def test_percentiles_are_ordered_and_goodput_below_capacity(llama8b):
    e = estimate(llama8b, Workload(Lengths.lognormal(800, 200), rate_per_s=15), VLLM, SLO(0.5, 0.05))
    t, p = e.latency.ttft_s, e.latency.tpot_s
    assert t[0.5] <= t[0.9] <= t[0.99]
    assert p[0.5] <= p[0.9] <= p[0.99]
    cap = estimate(llama8b, Workload(Lengths.lognormal(800, 200)), VLLM).requests_per_s
    assert 0 < e.goodput_requests_per_s <= cap * 1.001


def test_overload_is_reported_not_a_latency(llama8b):
    e = estimate(llama8b, Workload(Lengths.fixed(1000, 200), rate_per_s=1e4), VLLM)
    assert not e.sustainable and np.isinf(e.latency.ttft_mean_s)


def test_disaggregation_estimate_runs_and_matches_rates():
    p = deployment("llama-3.1-8b", "h100-sxm")
    e = disaggregated(DisaggPlan(p, 1, p, 2), Workload(Lengths.fixed(1000, 200), rate_per_s=5), VLLM, SLO(0.3, 0.02))
    assert e.sustainable and e.tpot_s > 0 and e.ttft_mean_s > e.kv_transfer_s
    assert e.goodput_requests_per_s <= min(e.prefill_capacity_per_s, e.decode_capacity_per_s)


@given(n=st.integers(1, 200))
def test_throughput_never_falls_with_concurrency_until_memory_runs_out(n):
    d = deployment("llama-3.1-8b", "h100-sxm")
    s = steady_state(d, VLLM, 1000, 300, np.array([n, n + 1]))
    assert s.output_tokens_per_s[1] >= s.output_tokens_per_s[0] * (1 - 1e-9)


@pytest.mark.parametrize("fmt", ["fp8", "int8", "int4", "int3", "int2", "mxfp4", "nvfp4"])
def test_quantized_weights_never_more_bytes(fmt):
    base = kv_capacity(deployment("llama-3.1-70b", "h200"), VLLM, 100).weights_bytes
    quant = kv_capacity(deployment("llama-3.1-70b", "h200", weights=fmt), VLLM, 100).weights_bytes
    assert quant < base


# --- errors -----------------------------------------------------------------------------------------------

@pytest.mark.parametrize("make, field", [
    (lambda: Speculation(alpha=1.5, k=2), "spec_alpha"),
    (lambda: Speculation(alpha=0.5, k=0), "spec_k"),
    (lambda: Offload("weights", "h100-sxm"), "offload_tier"),
    (lambda: Offload("activations"), "offload"),
    (lambda: Offload("weights", in_place_attention=True), "in_place_attention"),
    (lambda: Workload(Lengths.fixed(10, 10), concurrency=4, rate_per_s=2), "workload"),
    (lambda: Workload(Lengths.fixed(10, 10), rate_per_s=-1), "rate"),
    (lambda: Lengths.fixed(0, 10), "input_len"),
    (lambda: EnginePolicy(max_num_seqs=0), "max_num_seqs"),
    (lambda: SLO(ttft_s=-1), "ttft_s"),
    (lambda: deployment("llama-3.1-70b", "h100-sxm", tp=3), "tp"),
    (lambda: deployment("mixtral-8x7b", "h100-sxm", ep=3), "ep"),
    (lambda: deployment("llama-3.1-8b", "h100-sxm", ep=2), "ep"),
    (lambda: context_parallel_prefill(deployment("yi-34b", "h100-sxm"), 1000, 3, "ulysses"), "cp"),
])
def test_error_paths_name_the_field(make, field):
    with pytest.raises(RidgeplanError) as err:
        make()
    assert err.value.field == field
