"""The engine simulator: hand-checked timelines with made-up costs, then invariants on real deployments."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from model.api import deployment
from model.engines import get_engine
from model.errors import RidgeplanError
from model.serving.batching import iteration_cost
from model.serving.estimate import estimate
from model.serving.policy import ENGINES
from model.serving.simulator import Load, build_cost_table, read_trace, simulate
from model.serving.simulator.engine import Instance
from model.serving.simulator.loadgen import Requests
from model.serving.simulator.run import _Run
from model.serving.workload import Lengths, Workload


class LinearCost:
    """Made-up iteration cost: 10 ms + 0.1 ms per token in the step; records every call."""

    decode_tokens = 1.0

    def __init__(self):
        self.calls = []

    def iteration_s(self, decode_seqs, decode_context, prefill=(), separate=False):
        tokens = decode_seqs + sum(c * k for c, _, k in prefill)
        self.calls.append((decode_seqs, [(c, k) for c, _, k in prefill]))
        return 0.010 + 0.0001 * tokens


def _run(engine, inputs, outputs, *, budget=8192, pool=1e9, arrivals=None, concurrency=None, **opts):
    table = LinearCost()
    policy = ENGINES[engine].with_(max_num_batched_tokens=budget)
    n = len(inputs)
    arr = np.full(n, np.nan) if arrivals is None else np.asarray(arrivals, float)
    reqs = Requests(np.asarray(inputs, float), np.asarray(outputs, float), arr, np.zeros(n), np.full(n, -1))
    load = Load("closed", concurrency=concurrency or n, num_requests=n) if arrivals is None else \
        Load("trace", num_requests=n)
    inst = Instance(table, policy, pool, **opts)
    run = _Run({"both": [inst]}, reqs, load)
    run.go()
    return run, table


def test_two_requests_known_timeline():
    # vLLM, budget 150, prompts of 100, 3 output tokens each, both sent at t = 0:
    # it1: r0 whole (100) + r1's first chunk (50) = 150 tokens: 25 ms  -> r0 first token at 25 ms
    # it2: r0 decodes (1) + r1's last 50 = 51 tokens: 15.1 ms          -> r1 first token at 40.1 ms
    # it3: both decode (2 tokens): 10.2 ms  -> t = 50.3 ms, r0 has its 3 tokens
    # it4: r1 decodes (1 token): 10.1 ms   -> t = 60.4 ms, r1 done
    run, table = _run("vllm", [100, 100], [3, 3], budget=150)
    assert table.calls == [(0, [(100, 1), (50, 1)]), (1, [(50, 1)]), (2, []), (1, [])]
    ttft = run.first - run.arrival
    assert ttft == pytest.approx([0.025, 0.0401])
    tpot = (run.finish - run.first) / 2
    assert tpot == pytest.approx([(0.0503 - 0.025) / 2, (0.0604 - 0.0401) / 2])
    assert run.tokens.tolist() == [3, 3]


def test_chunking_arithmetic():
    # a 1,000-token prompt under a 256-token budget: ceil(1000 / 256) = 4 chunks, 256 + 256 + 256 + 232
    run, table = _run("vllm", [1000], [2], budget=256)
    assert [c for _, p in table.calls for c, _ in p] == [256, 256, 256, 232]
    assert run.first[0] == pytest.approx(3 * (0.010 + 0.0256) + 0.010 + 0.0232)


def test_sglang_pauses_decodes_for_a_prefill_batch():
    # r0 arrives at 0 and decodes; r1 arrives at 15 ms. SGLang's next iteration is r1's prefill alone (no
    # decode), so r0 sees a gap of a whole prefill; with --enable-mixed-chunk the decode rides along.
    # (overlap scheduling off here: test_overlap_scheduler_sees_arrivals_one_iteration_late has it on)
    run, table = _run("sglang", [100, 200], [5, 2], arrivals=[0.0, 0.015], role="both", overlap=False)
    assert table.calls[0] == (0, [(100, 1)])  # 0 -> 20 ms, r0's first token; r1 arrives meanwhile
    assert table.calls[1] == (0, [(200, 1)])  # the prefill batch pauses r0's decode: 20 -> 50 ms
    assert table.calls[2] == (2, [])  # then both decode
    assert run.first[0] == pytest.approx(0.020) and run.first[1] == pytest.approx(0.050)
    mixed, mtable = _run("sglang", [100, 200], [5, 2], arrivals=[0.0, 0.015], mixed_chunk=True, overlap=False)
    assert mtable.calls[1] == (1, [(200, 1)])
    assert run.finish[0] > mixed.finish[0]
    _, vtable = _run("vllm", [100, 200], [5, 2], arrivals=[0.0, 0.015])
    assert vtable.calls[1] == (1, [(200, 1)])  # vLLM: decodes first, the prefill in the same step


def test_overlap_scheduler_sees_arrivals_one_iteration_late():
    # TensorRT-LLM (overlap scheduler on by default): r0 (100 in, 5 out) arrives at 0 on an idle engine and
    # starts at once: it1 = r0's prefill, 10 + 0.1 x 100 = 20 ms. r1 (200 in, 2 out) arrives at 15 ms, after it2
    # was formed (at it1's start, t = 0), so it2 is r0's decode alone (10.1 ms, to 30.1 ms) and r1's prefill
    # rides in it3 (formed at 20 ms): 10 + 0.1 x 201 = 30.1 ms, so r1's first token comes at 60.2 ms, against
    # 20 + 30.1 = 50.1 ms without overlap (vLLM's default: --async-scheduling off).
    run, table = _run("trtllm", [100, 200], [5, 2], arrivals=[0.0, 0.015])
    assert table.calls[:3] == [(0, [(100, 1)]), (1, []), (1, [(200, 1)])]
    assert run.first[0] == pytest.approx(0.020) and run.first[1] == pytest.approx(0.0602)
    off, otable = _run("trtllm", [100, 200], [5, 2], arrivals=[0.0, 0.015], overlap=False)
    assert otable.calls[:2] == [(0, [(100, 1)]), (1, [(200, 1)])]
    assert off.first[1] == pytest.approx(0.0501)
    vllm, _ = _run("vllm", [100, 200], [5, 2], arrivals=[0.0, 0.015])
    assert vllm.first[1] == pytest.approx(0.0501)
    # a closed loop: the next request is sent when one finishes, so it always arrives after the batch that
    # follows was formed and waits one iteration more (a lone client: prefill, 2 decodes, then a decode-less
    # iteration would be empty, so an idle engine takes the new request at once: no lag without other work)
    solo, stable = _run("trtllm", [100, 100], [3, 3], concurrency=1)
    assert stable.calls == [(0, [(100, 1)]), (1, []), (1, []), (0, [(100, 1)]), (1, []), (1, [])]


def test_trtllm_aggregated_limits_as_aiconfigurator_launches_them():
    from model.engines.trtllm import aic_agg_limits

    # max_num_tokens = bs + ISL + 1500 rounded up to 32-token blocks: 64 + 1024 + 1500 = 2588 -> 81 x 32 = 2592
    assert aic_agg_limits(1024, 64) == (2592, 64)
    assert aic_agg_limits(8192, 4) == (9696, 4)  # 9696 = 303 x 32 already
    assert aic_agg_limits(1024, None) == (8192, 2048)  # no batch size: the engine's defaults
    assert aic_agg_limits(15000, float("nan")) == (17048, 2048)  # raised to hold a prompt beside the decodes


def test_trtllm_admission_guaranteed_no_evict_vs_max_utilization():
    # a pool of 256 tokens (32-token blocks): one request of 100 in + 100 out reserves ceil(201 / 32) x 32 = 224,
    # so GUARANTEED_NO_EVICT admits the second only when the first has finished; MAX_UTILIZATION admits both
    # prompts at once (2 x 128 = 256 tokens of blocks).
    gne, _ = _run("trtllm", [100, 100], [100, 100], pool=256)
    assert gne.first[1] == pytest.approx(gne.finish[0] + 0.010 + 0.0001 * 100)
    mu, table = _run("trtllm", [100, 100], [100, 100], pool=256, capacity_policy="MAX_UTILIZATION")
    assert table.calls[0] == (0, [(100, 2)])
    assert mu.tokens.tolist() == [100, 100]  # the pool runs out while decoding: one is preempted, recomputed
    assert mu.finish.max() > 0
    with pytest.raises(RidgeplanError, match="capacity_policy"):
        _run("trtllm", [10], [2], capacity_policy="FIRST_COME")


def test_engine_registry_and_sources():
    assert get_engine("vllm").max_num_seqs == ENGINES["vllm"].max_num_seqs == 256
    assert get_engine("trtllm").capacity_scheduler_policy == "GUARANTEED_NO_EVICT"
    assert ENGINES["trtllm"].admission == "max_length"
    assert ENGINES["sglang"].max_num_batched_tokens == get_engine("sglang").chunked_prefill_size
    with pytest.raises(RidgeplanError, match="allowed: sglang, trtllm, vllm"):
        get_engine("tgi")


D8 = deployment("llama-3.1-8b", "h100-sxm")


@settings(max_examples=6, deadline=None, derandomize=True)
@given(c=st.integers(2, 24), engine=st.sampled_from(["vllm", "sglang", "trtllm"]), seed=st.integers(0, 99))
def test_littles_law_closed_loop(c, engine, seed):
    # N = 40 C, warm-up C: every client busy between the first measured arrival and the last arrival, so the
    # completion rate there times the mean E2E is the concurrency (tolerance 2%).
    lengths = Lengths.lognormal(600, 120, sigma=0.3)
    r = simulate(D8, lengths, Load("closed", concurrency=c, num_requests=40 * c, warmup=c), engine, seed=seed)
    assert r.steady_requests_per_s * r.e2e_s.mean() == pytest.approx(c, rel=0.02)


@settings(max_examples=6, deadline=None, derandomize=True)
@given(c=st.integers(1, 40), engine=st.sampled_from(["vllm", "sglang", "trtllm"]), seed=st.integers(0, 99),
       budget=st.sampled_from([256, 2048, 8192]))
def test_every_request_gets_its_output_tokens(c, engine, seed, budget):
    lengths = Lengths.lognormal(400, 60)
    policy = ENGINES[engine].with_(max_num_batched_tokens=budget)
    if engine == "trtllm":
        opts = {"chunked_context": True}
    else:
        opts = {}
    r = simulate(D8, lengths, Load("closed", concurrency=c, num_requests=3 * c), policy, seed=seed, **opts)
    assert np.array_equal(r.tokens, r.output_len)
    assert np.all(r.first_token_s >= r.arrival_s) and np.all(r.finish_s >= r.first_token_s)


def test_preemption_keeps_token_counts():
    # a small pool forces vLLM to preempt (recompute) decoding requests; each still gets its tokens
    d = deployment("llama-3.1-70b", "h100-sxm", tp=2)
    policy = ENGINES["vllm"].with_(max_num_seqs=512)
    r = simulate(d, Lengths.fixed(3000, 2000), Load("closed", concurrency=400, num_requests=800), policy)
    assert r.preemptions > 0
    assert np.array_equal(r.tokens, r.output_len)


@pytest.mark.parametrize("engine", ["vllm", "sglang", "trtllm"])
def test_single_client_matches_steady_state(engine):
    lengths = Lengths.fixed(1000, 200)
    r = simulate(D8, lengths, Load("closed", concurrency=1, num_requests=5), engine).to_dict()
    e = estimate(D8, Workload(lengths, concurrency=1), engine).to_dict()
    assert r["ttft_mean_s"] == pytest.approx(e["ttft_mean_s"], rel=0.05)
    assert r["tpot_mean_s"] == pytest.approx(e["tpot_mean_s"], rel=0.05)


@settings(max_examples=5, deadline=None, derandomize=True)
@given(c=st.integers(1, 64), engine=st.sampled_from(["vllm", "sglang", "trtllm"]))
def test_ttft_never_below_solo_prefill(c, engine):
    lengths = Lengths.fixed(1500, 50)
    r = simulate(D8, lengths, Load("closed", concurrency=c, num_requests=2 * c), engine)
    solo = float(iteration_cost(D8, 0.0, 0.0, 1500.0, 1.0, 0.0).time_s[0])
    assert r.ttft_s.min() >= solo * (1 - 0.005)  # the table interpolates within 0.5% here


def test_cost_table_matches_direct_evaluation():
    d = deployment("llama-3.1-70b", "h100-sxm", tp=4)
    table = build_cost_table(d, ENGINES["vllm"], 4000)
    rng = np.random.default_rng(1)
    for _ in range(60):
        nd, cd = float(rng.integers(0, 257)), float(rng.uniform(1, 4000))
        pt, pc = float(rng.integers(1, 8192 - nd)), float(rng.uniform(0, 3000))
        direct = float(iteration_cost(d, nd, cd, pt, 1.0, pc).time_s[0])
        assert table.iteration_s(nd, cd, [(pt, pc, 1)]) == pytest.approx(direct, rel=0.01)


def test_above_capacity_closed_loop_queues():
    # 2,000 clients on one 8B replica: most wait, TTFT is minutes (Little's law), in both modes
    lengths = Lengths.fixed(4096, 1024)
    e = estimate(D8, Workload(lengths, concurrency=2000)).to_dict()
    r = simulate(D8, lengths, Load("closed", concurrency=2000, num_requests=2000)).to_dict()
    assert e["ttft_mean_s"] > 100 and r["ttft_mean_s"] > 100


def test_bad_input_is_one_line_error(tmp_path):
    with pytest.raises(RidgeplanError, match="^concurrency"):
        Load("closed", concurrency=0)
    with pytest.raises(RidgeplanError, match="^num_requests"):
        Load("closed", concurrency=8, num_requests=4)
    bad = tmp_path / "t.csv"
    bad.write_text("input_len,output_len\n100,10\n-5,10\n")
    with pytest.raises(RidgeplanError, match=r"^trace.input_len: row 2"):
        read_trace(bad)
    with pytest.raises(RidgeplanError, match="^trace.arrival_s"):
        (tmp_path / "a.csv").write_text("input_len,output_len,arrival_s\n10,10,1.0\n10,10,0.5\n")
        read_trace(tmp_path / "a.csv")


def test_trace_replay_with_prefix_ids(tmp_path):
    path = tmp_path / "trace.csv"
    path.write_text("input_len,output_len,arrival_s,prefix_id\n2000,20,0.0,a\n2100,20,1.0,a\n500,20,2.0,\n")
    r = simulate(D8, Lengths.fixed(1, 1), Load("trace"), "vllm", trace=path)
    ttft = r.first_token_s - r.arrival_s
    assert r.arrival_s.tolist() == [0.0, 1.0, 2.0]
    assert ttft[1] < ttft[0]  # the second request reuses the 1,999-token prefix the first one computed


def test_draft_model_weights_and_kv_count_in_memory():
    # Llama-3.1-70B fp8 (~70.6 GB of weights) plus an 8B bf16 draft (~16 GB) cannot share one 85.5 GB H100
    from model.serving.speculation_offload import Speculation

    d = deployment("llama-3.1-70b", "h100-sxm", weights="fp8")
    work = Workload(Lengths.fixed(1000, 200), concurrency=4)
    assert estimate(d, work).fits
    spec = Speculation(0.7, 4, draft_model="llama-3.1-8b")
    est = estimate(d, work, speculation=spec)
    assert not est.fits and est.memory["shortfall_bytes"] > 0


def test_disaggregated_prefill_that_does_not_fit_gets_no_latency():
    from model.errors import DoesNotFitError
    from model.serving.disagg import DisaggPlan, disaggregated

    one = deployment("llama-3.1-70b", "h100-sxm")  # 141 GB of bf16 weights on one 80 GB GPU
    four = deployment("llama-3.1-70b", "h100-sxm", tp=4)
    with pytest.raises(DoesNotFitError, match="^prefill"):
        disaggregated(DisaggPlan(one, 1, four, 1), Workload(Lengths.fixed(1000, 100), rate_per_s=1.0))


def test_offloaded_weights_count_in_ttft_and_tbt():
    # half of 70 GB of fp8 weights streamed over PCIe every iteration: TTFT and TBT p99 are at least that long
    from model.serving.speculation_offload import Offload

    d = deployment("llama-3.1-70b", "l40s", tp=2, weights="fp8")
    off = Offload("weights", "host-xeon-8480", 0.5)
    x = estimate(d, Workload(Lengths.fixed(1024, 128), concurrency=4), offload=off).to_dict()
    # weights_bytes is what stays on the GPU, (1 - 0.5) of them: the same amount is streamed per iteration
    floor = x["memory_per_gpu"]["weights_bytes"] / off.link_bytes_per_s(d.device)
    assert x["ttft_mean_s"] >= floor * 0.999 and x["tbt_p99_s"] >= floor * 0.999
    assert x["tbt_p99_s"] >= x["tpot_mean_s"] * 0.999


def test_speculation_drawn_per_cohort_matches_expected_gain():
    # acceptance drawn per step per cohort (binomial chain): over a run the mean tokens per step approaches
    # (1 - a^(k+1)) / (1 - a), so TPOT lands near the steady state's, and every request still gets its tokens
    from model.serving.speculation_offload import Speculation

    lengths = Lengths.fixed(1000, 300)
    for alpha in (0.5, 0.8):
        spec = Speculation(alpha, 4)
        r = simulate(D8, lengths, Load("closed", concurrency=16, num_requests=160), "vllm", speculation=spec)
        e = estimate(D8, Workload(lengths, concurrency=16), speculation=spec).to_dict()
        assert np.array_equal(r.tokens, r.output_len)
        assert r.tpot_s.mean() == pytest.approx(e["tpot_mean_s"], rel=0.05)


ENGINE_ROWS = Path(__file__).resolve().parents[1].parent / "shared" / "validation" / "engine_rows_blackwell.csv"


@pytest.mark.skipif(not ENGINE_ROWS.is_file(), reason="the Blackwell engine rows are not next to this checkout")
def test_engine_rows_sample():
    from model.validation.engine_rows import engine_rows_report

    rep = engine_rows_report(ENGINE_ROWS, sample=24, models=("meta-llama/Llama-3.1-70B",))
    rows = rep.rows
    assert len(rows) == 24 and (rows["reason"] == "").all()
    assert rows["sim_ttft_s"].notna().all() and rows["steady_tpot_s"].notna().all()
    # nothing fitted per row: the simulator's TTFT is closer to the measurements than the steady state's
    assert np.median(np.abs(rows["sim_ttft_err"])) < np.median(np.abs(rows["steady_ttft_err"]))
    # Qwen3-32B rows write attention_dp_size 0 or leave it empty, which reads as attention DP off (the rule's own
    # test is in test_engine_rows_layout); these rows are refused only for what they lack: a precision or a
    # concurrency
    zero = engine_rows_report(ENGINE_ROWS, models=("Qwen/Qwen3-32B",)).rows
    assert zero["reason"].str.startswith(("precision:", "no silicon_concurrency")).all(), zero["reason"].unique()


def test_simulated_goodput_brackets_the_slo():
    from model.serving.simulator.run import simulate_pool, simulated_goodput

    lengths = Lengths.fixed(800, 100)
    good = simulated_goodput(D8, lengths, "vllm", 0.3, 0.02, 0.9, 60.0, num_requests=150, steps=6)
    assert 0 < good < 60
    at = simulate_pool(D8, lengths, good, "vllm", num_requests=150)
    assert np.quantile(at.ttft_s, 0.9) <= 0.3 and np.quantile(at.tpot_s, 0.9) <= 0.02
    loose = simulated_goodput(D8, lengths, "vllm", 30.0, 1.0, 0.9, good, num_requests=150)
    assert loose == good  # every rate up to the bound meets a loose SLO


def test_cost_table_prefill_only_steps_on_a_calibrated_gpu():
    """Regression: a prefill-only step (no decode) sends one row to the LM head; the table once priced a fraction of
    a row at a vanishing tile efficiency, so with the calibrated H100 (gemm_m_half > 0) a 2,000-token prefill cost
    24 s instead of 0.11 s and every simulated TTFT at load exploded."""
    from model.serving.batching import iteration_cost
    from model.serving.policy import engine_policy
    from model.serving.simulator.costtable import build_cost_table

    d = deployment("llama-3.1-70b", "h100-sxm", tp=4, weights="fp8", engine="vllm", calibration=True)
    # the calibrated curve, not the hand-set one (its fitted gemm_m_half is now about 0: the GEMV path serves m <= 16)
    assert "h100-sxm.vllm.toml" in d.eff.source
    table = build_cost_table(d, engine_policy("vllm"), 2300.0, None, None)
    for tokens, ctx in ((2000, 0), (37, 0), (8000, 500)):
        direct = float(iteration_cost(d, 0, 0, tokens, 1, ctx).time_s.ravel()[0])
        assert table.iteration_s(0, 0, [(tokens, ctx, 1)]) == pytest.approx(direct, rel=0.01)
