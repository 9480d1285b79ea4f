"""Issue 16: compatible prefill/decode pairs, the re-route loop, honest feasibility, and the fleet program against
an independent enumeration on random small instances."""

from __future__ import annotations

import itertools
from dataclasses import replace

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.optimize import linprog

from model.errors import RidgeplanError
from model.planner import GpuOption, PlanRequest, Traffic, plan
from model.planner.candidates import enumerate_candidates
from model.planner.check import check_pool, serving_check
from model.planner.ilp import solve_fleet
from model.planner.pairs import compatible, pair_transfer_s
from model.planner.request import Slice
from model.serving.disagg import DisaggPlan, kv_transfer_s
from model.serving.estimate import SLO
from model.serving.workload import Lengths

FAST = dict(gpus_per_instance=(1, 2), pipeline_depths=(1,), max_buckets=4)


def _req(gpus, rate=10.0, lengths=None, slo=SLO(1.0, 0.05), precisions=(("fp8", "fp8"), ("bf16", "bf16")),
         model="llama-3.1-8b", **kw):
    return PlanRequest((Traffic(model, rate, lengths or Lengths.lognormal(1500, 200)),), slo,
                       tuple(GpuOption(g) if isinstance(g, str) else g for g in gpus), precisions=precisions,
                       **{**FAST, **kw})


# --- pairs (finding 1) ---------------------------------------------------------------------------------------------

def test_pairs_share_formats_vendor_and_a_link():
    cands, _ = enumerate_candidates(_req(("h100-sxm", "mi300x", "l4"), precisions=(("fp8", "fp8"), ("int4", "bf16"))))
    pre = {(c.gpu, c.deployment.precision.weights): c for c in cands if c.role == "prefill"}
    dec = {(c.gpu, c.deployment.precision.weights): c for c in cands if c.role == "decode"}
    assert compatible(pre["h100-sxm", "fp8"], dec["h100-sxm", "fp8"], "across_nodes")
    assert not compatible(pre["h100-sxm", "fp8"], dec["h100-sxm", "int4"], "across_nodes")  # other weights/KV
    assert not compatible(pre["h100-sxm", "fp8"], dec["mi300x", "fp8"], "across_nodes")  # NVIDIA -> AMD
    assert not compatible(pre["l4", "fp8"], dec["h100-sxm", "fp8"], "across_nodes")  # L4: no NIC in hardware_db
    assert compatible(pre["l4", "fp8"], dec["l4", "fp8"], "across_nodes")  # same node type: its own link


def test_plan_pairs_only_compatible_pools_and_prices_each_pair():
    # finding 1: fp8/fp8 prefill pools were paired with an int4/bf16 decode pool, NVIDIA prefill with AMD decode
    req = _req(("l4", "h100-sxm", "mi300x"), rate=20.0, lengths=Lengths.lognormal(2000, 300), slo=SLO(1.0, 0.05),
               precisions=(("int4", "bf16"), ("fp8", "fp8")), roles=("prefill", "decode"))
    p = plan(req)
    assert p.feasible and p.pairs
    d = p.to_dict()
    assert len(d["pairs"]) == len(p.pairs)
    for q in p.pairs:
        a, b = p.pools[q.prefill].candidate, p.pools[q.decode].candidate
        assert compatible(a, b, req.kv_placement)
        assert a.deployment.precision == b.deployment.precision
        assert a.deployment.device.vendor == b.deployment.device.vendor
        bucket_in = p.pools[q.prefill].lengths.input_len
        # the hand-off each pair reports is the one its prefill capacity was computed with
        assumed = kv_transfer_s(DisaggPlan(a.deployment, 1, a.deployment, 1, placement=req.kv_placement), bucket_in)
        assert np.allclose(pair_transfer_s(a, b, bucket_in, req.kv_placement), assumed)
    for k, pool in enumerate(p.pools):  # every prefill pool's traffic leaves through its pairs, every decode's arrives
        through = sum(q.rate_per_s for q in p.pairs if k in ((q.prefill, q.decode)[pool.candidate.role == "decode"],))
        assert pool.candidate.role == "aggregated" or through == pytest.approx(pool.rate_per_s, rel=1e-6)


# --- the program against an independent enumeration (findings 2 and 3) ---------------------------------------------

def _enumerate(cands, rates, cap, bound):
    """Cheapest integer counts in 0..bound per candidate for which a routing exists (a linear program per count
    vector, written from scratch: shares per bucket, pairs by equal (weights, KV, vendor, link))."""
    n_c, n_b = cap.shape
    key = [(c.deployment.precision.weights, c.deployment.precision.kv, c.deployment.device.vendor,
            "net" if c.deployment.device.scale_out is not None else c.gpu) for c in cands]
    groups = sorted({key[c] for c in range(n_c) if cands[c].role != "aggregated"})
    nv = n_b * n_c + n_b * len(groups)
    x = lambda b, c: b * n_c + c
    y = lambda b, g: n_b * n_c + b * len(groups) + g
    a_eq, b_eq = [], []
    for b in range(n_b):
        row = np.zeros(nv)
        for c in range(n_c):
            row[x(b, c)] = cands[c].role == "aggregated"
        for g in range(len(groups)):
            row[y(b, g)] = 1
        a_eq.append(row), b_eq.append(1.0)
        for g, k in enumerate(groups):
            for role in ("prefill", "decode"):
                row = np.zeros(nv)
                row[y(b, g)] = -1
                for c in range(n_c):
                    row[x(b, c)] = cands[c].role == role and key[c] == k
                a_eq.append(row), b_eq.append(0.0)
    bounds = [(0, 1 if cap[c, b] > 0 else 0) for b in range(n_b) for c in range(n_c)] + [(0, 1)] * (n_b * len(groups))
    vectors = sorted(itertools.product(range(bound + 1), repeat=n_c),
                     key=lambda counts: sum(n * c.cost_per_hour for n, c in zip(counts, cands)))
    for counts in vectors:  # cheapest first: the first count vector with a routing is the optimum
        cost = sum(n * c.cost_per_hour for n, c in zip(counts, cands))
        a_ub, b_ub = [], []
        for c in range(n_c):
            row = np.zeros(nv)
            for b in range(n_b):
                if cap[c, b] > 0:
                    row[x(b, c)] = rates[b] / cap[c, b]
            a_ub.append(row), b_ub.append(counts[c])
        if linprog(np.zeros(nv), A_ub=a_ub, b_ub=b_ub, A_eq=a_eq, b_eq=b_eq, bounds=bounds, method="highs").status == 0:
            return cost
    return np.inf


def test_fleet_program_matches_an_independent_enumeration_on_random_instances():
    req = _req(("h100-sxm", "l4", "mi300x"), precisions=(("fp8", "fp8"), ("bf16", "bf16")))
    pool, _ = enumerate_candidates(req)
    rng = np.random.default_rng(16)
    checked = paired = 0
    agg = [c for c in pool if c.role == "aggregated"]
    for _ in range(24):
        # an aggregated configuration, a prefill and a decode configuration (compatible or not) and one of any role
        pre = [c for c in pool if c.role == "prefill"]
        p0 = pre[rng.integers(len(pre))]
        dec = [c for c in pool if c.role == "decode" and (compatible(p0, c, "across_nodes") or rng.random() < 0.2)]
        pick = [agg[rng.integers(len(agg))], p0, dec[rng.integers(len(dec))], pool[rng.integers(len(pool))]]
        pick = [replace(c, price_per_gpu_hour=float(rng.choice([0.5, 1.0, 1.7, 3.0]))) for c in pick]
        n_b = 2
        cap = rng.uniform(0.5, 4.0, (4, n_b)) * (rng.random((4, n_b)) > 0.2)
        cap[0] = rng.uniform(1.0, 4.0, n_b)
        rates = rng.uniform(0.5, 3.0, n_b)
        sl = [Slice("llama-3.1-8b", b, 1000.0 + b, 100.0, float(rates[b])) for b in range(n_b)]
        sol = solve_fleet(req, pick, sl, cap)
        enum = _enumerate(pick, rates, cap, bound=3)
        if sol.status != "Optimal":
            assert enum == np.inf
            continue
        ilp = float(sum(sol.counts[c] * pick[c].cost_per_hour for c in range(4)))
        assert ilp <= enum + 1e-6
        if sol.counts.max() <= 3:
            assert ilp == pytest.approx(enum)
            checked += 1
            paired += any(v.sum() > 1e-9 for v in sol.pair_share.values())
    assert checked >= 15 and paired >= 2, (checked, paired)


def test_part_of_a_bucket_can_be_disaggregated():
    # finding 3: the disaggregated share z was an integer of whole buckets; a fractional split is cheaper here
    req = _req(("h100-sxm",))
    cands, _ = enumerate_candidates(req)
    agg = next(c for c in cands if c.role == "aggregated")
    pre = next(c for c in cands if c.role == "prefill" and c.deployment.precision.weights == "fp8")
    dec = next(c for c in cands if c.role == "decode" and c.deployment.precision.weights == "fp8")
    trio = [replace(agg, price_per_gpu_hour=1.0), replace(pre, price_per_gpu_hour=1.0),
            replace(dec, price_per_gpu_hour=1.0)]
    cap = np.array([[1.0], [3.0], [3.0]])  # an aggregated GPU carries 1 req/s; a prefill + decode pair 3 for 2 GPUs
    sol = solve_fleet(req, trio, [Slice("llama-3.1-8b", 0, 1000.0, 100.0, 4.0)], cap)
    # whole bucket: 4 aggregated ($4) or 2 prefill + 2 decode ($4); split: 3 req/s through one pair + 1 aggregated
    assert sol.status == "Optimal" and sol.objective == pytest.approx(3.0)
    assert sol.share[0, 0] == pytest.approx(0.25) and sol.share[0, 1] == pytest.approx(0.75)
    assert next(iter(sol.pair_share.values()))[0] == pytest.approx(0.75)


# --- the re-route loop (finding 2) ---------------------------------------------------------------------------------

def _strict(candidate, lengths, rate, request):
    """A stricter check than the capacities: it demands 60% headroom, so the program's first fleet fails."""
    return serving_check(candidate, lengths, rate * 1.6, request)


def test_reroute_final_cost_never_exceeds_a_passing_visited_fleet():
    p = plan(_req(("a100-sxm-80gb",), rate=15.0, lengths=Lengths.lognormal(1000, 200)), check=_strict)
    assert p.feasible and len(p.visited) > 1 and not p.visited[0][1]  # the first fleet failed the strict check
    passing = [v for v, ok in p.visited if ok]
    assert p.cost_per_hour_usd <= min(passing) + 1e-9
    for pool in p.pools:  # the final plan passes the check it was planned with
        assert _strict(pool.candidate, pool.lengths, pool.rate_per_s / pool.instances, p.request).ok


@settings(max_examples=4, deadline=None)
@given(rate=st.floats(6.0, 30.0), gpus=st.sampled_from([("a100-sxm-80gb",), ("a100-sxm-80gb", "l40s")]))
def test_final_cost_never_exceeds_a_passing_visited_fleet_property(rate, gpus):
    # the same invariant over random rates and offers (the loop stops early at its bound, skips fallback fleets
    # that cannot win and one-type loops that cannot win: none of that may lose a cheaper passing fleet)
    p = plan(_req(gpus, rate=rate, lengths=Lengths.lognormal(1000, 200)), check=_strict)
    assert p.feasible
    assert p.cost_per_hour_usd <= min(v for v, ok in p.visited if ok) + 1e-9
    for pool in p.pools:
        assert _strict(pool.candidate, pool.lengths, pool.rate_per_s / pool.instances, p.request).ok


@settings(max_examples=3, deadline=None)
@given(extra=st.sampled_from(["h100-sxm", "l40s", "l4"]), rate=st.floats(4.0, 30.0))
def test_adding_a_gpu_type_never_raises_the_final_cost(extra, rate):
    # finding 2: offering more GPU types made one answer worse ($10.37 against $7.34 with A100 only)
    small = _req(("a100-sxm-80gb",), rate=rate, lengths=Lengths.lognormal(1000, 200))
    large = replace(small, gpus=small.gpus + (GpuOption(extra),))
    base = plan(small, check=_strict)
    more = plan(large, check=_strict, incumbent=base)
    assert base.feasible and more.feasible
    assert more.cost_per_hour_usd <= base.cost_per_hour_usd + 1e-9


def test_a_larger_offer_beats_each_of_its_types_alone_without_an_incumbent():
    req = _req(("a100-sxm-80gb", "l40s"), rate=15.0, lengths=Lengths.lognormal(1000, 200))
    both = plan(req, check=_strict)
    for g in req.gpus:
        alone = plan(replace(req, gpus=(g,)), check=_strict)
        if alone.feasible:
            assert both.cost_per_hour_usd <= alone.cost_per_hour_usd + 1e-9


# --- feasible means feasible, prices, context, labels (findings 6 and 7) -------------------------------------------

def test_a_fleet_whose_pool_fails_its_check_is_not_feasible():
    def never(candidate, lengths, rate, request):
        r = serving_check(candidate, lengths, rate, request)
        return replace(r, ok=False, why=("TTFT p90 inf ms > 1,000 ms",))

    p = plan(_req(("h100-sxm",)), check=never)
    assert not p.feasible
    assert p.explanation.startswith("re-check failed") and "TTFT p90" in p.explanation
    assert p.to_dict()["cost_per_hour_usd"] is None


def test_final_plans_pass_the_planners_check():
    rng = np.random.default_rng(7)
    for _ in range(3):
        req = _req(("h100-sxm", "l40s", "a100-sxm-80gb"), rate=float(rng.uniform(5, 40)),
                   lengths=Lengths.lognormal(float(rng.choice([300, 1500, 4000])), 200),
                   slo=SLO(float(rng.choice([0.5, 2.0])), float(rng.choice([0.03, 0.08]))))
        p = plan(req)
        assert p.feasible
        for pool in p.pools:
            assert check_pool(pool.candidate, pool.lengths, pool.rate_per_s / pool.instances, req).ok


@pytest.mark.parametrize("price", [0.0, -1.0])
def test_zero_or_negative_price_is_refused_naming_the_field(price):
    # finding 6: `--gpus h100-sxm:0` gave "14 GPUs, $0.00/h"; through the API a feasible plan with 0 GPUs
    with pytest.raises(RidgeplanError) as err:
        GpuOption("h100-sxm", price)
    assert err.value.field == "usd_per_hour"


def test_requests_longer_than_the_context_are_refused():
    # finding 7: Llama-2-7B (4,096 tokens) was planned for 8,000-token prompts
    with pytest.raises(RidgeplanError) as err:
        plan(_req(("h100-sxm",), model="llama-2-7b", lengths=Lengths.fixed(8000, 200)))
    assert err.value.field == "input_len" and "4,096-token context" in str(err.value)


def test_each_latency_names_its_statistic():
    # finding 7: a decode pool's TPOT (a mean at interpolated concurrency) was labelled p90
    p = plan(_req(("h100-sxm",), rate=30.0, lengths=Lengths.fixed(4000, 300), slo=SLO(1.0, 0.010)))
    assert p.feasible
    roles = {pool.candidate.role: pool for pool in p.pools}
    assert "decode" in roles
    assert set(roles["decode"].tpot_s) == {"mean"} and roles["decode"].ttft_s == {}
    assert {"p50", "p90", "p99", "mean"} <= set(roles["prefill"].ttft_s)


def test_goodput_can_partly_disaggregate_a_bucket():
    # finding 3: `--gpus h200::8 --rate 12 --roles prefill,decode --objective goodput` failed although rate 8 worked
    for rate in (8.0, 12.0):
        req = _req((GpuOption("h200", None, 8),), rate=rate, model="llama-3.1-70b", slo=SLO(2.0, 0.05),
                   precisions=(("fp8", "fp8"),), roles=("prefill", "decode"), objective="goodput",
                   budget_usd_per_hour=100.0, gpus_per_instance=(1, 2, 4))
        p = plan(req)
        assert p.feasible and p.gpus <= 8
        served = sum(pool.rate_per_s for pool in p.pools if pool.candidate.role == "prefill")
        assert served > 0.5 * rate and all(pool.meets_slo for pool in p.pools)


def test_pools_that_cannot_pair_are_explained(monkeypatch):
    # prefill only in fp8 on L4 (no NIC in hardware_db), decode only on H100: nothing can hand KV over
    req = _req(("l4", "h100-sxm"), precisions=(("fp8", "fp8"),), roles=("prefill", "decode"))
    from model.planner.candidates import enumerate_candidates as real

    def split(request, progress=None):
        cands, dropped = real(request, progress)
        return [c for c in cands if (c.gpu, c.role) in (("l4", "prefill"), ("h100-sxm", "decode"))], dropped

    import importlib

    monkeypatch.setattr(importlib.import_module("model.planner.plan"), "enumerate_candidates", split)
    p = plan(req)
    assert not p.feasible and p.explanation.startswith("pairing"), p.explanation


def test_an_incumbent_is_used_only_when_it_answers_the_same_request():
    small = _req(("a100-sxm-80gb",), rate=10.0, lengths=Lengths.lognormal(1000, 200))
    base = plan(small)
    # equal traffic built anew (arrays compared by value), a larger offer: the incumbent is admissible
    again = replace(small, traffic=(Traffic("llama-3.1-8b", 10.0, Lengths.lognormal(1000, 200)),),
                    gpus=small.gpus + (GpuOption("l4"),))
    assert plan(again, incumbent=base).cost_per_hour_usd <= base.cost_per_hour_usd + 1e-9

    def never(candidate, lengths, rate, request):
        return replace(serving_check(candidate, lengths, rate, request), ok=False, why=("refused",))

    kept = plan(again, check=never, incumbent=base)  # nothing on the larger offer passes: the incumbent stands
    assert kept.feasible and kept.pools == base.pools and any("incumbent" in n for n in kept.notes)
    # other traffic: the incumbent does not serve it and must not be returned
    other = replace(again, traffic=(Traffic("llama-3.1-8b", 12.0, Lengths.lognormal(1000, 200)),))
    p = plan(other, incumbent=base)
    assert p.pools != base.pools and not any("incumbent" in n for n in p.notes)


def test_the_issues_infeasible_reported_feasible_example_now_passes_every_pool():
    # finding 6: Llama-3.1-70B at 50 req/s with 16k log-normal prompts plus a Mixtral trickle, L4 and a $0.5/h B200:
    # a pool with TTFT inf and utilisation 1.0 (meets_slo=False) was reported feasible, 355 GPUs
    req = PlanRequest((Traffic("llama-3.1-70b", 50.0, Lengths.lognormal(16000, 300)),
                       Traffic("mixtral-8x7b", 0.5, Lengths.lognormal(1000, 300))), SLO(2.0, 0.05),
                      (GpuOption("l4"), GpuOption("b200", 0.5)), precisions=(("fp8", "fp8"),), **FAST)
    p = plan(req)
    assert p.feasible
    for pool in p.pools:
        # a simulated pool's utilisation is its rate over the run's completion rate, capped at 1: a stable open-loop
        # run ends by draining, so it sits at ~1 (0.999 or 1.0); passing and a finite TTFT rule out the unstable pool
        assert pool.meets_slo and np.isfinite(pool.ttft_s.get("p90", 0.0)) and pool.utilization <= 1
        assert check_pool(pool.candidate, pool.lengths, pool.rate_per_s / pool.instances, req).ok


def test_prefill_pools_launch_with_room_for_the_prompts_they_batch():
    # the capacity model batches waiting prompts up to the 8,192-token budget: `--max-num-seqs 1` would forbid it
    p = plan(_req(("h100-sxm",), rate=20.0, lengths=Lengths.fixed(1000, 300), slo=SLO(1.0, 0.010),
                  precisions=(("fp8", "fp8"),), roles=("prefill", "decode")))
    pre = [pool for pool in p.pools if pool.candidate.role == "prefill"]
    assert pre and all(pool.max_batch == 8192 // 1000 for pool in pre)
    assert "--max-num-seqs 8 " in pre[0].to_dict()["launch"]["vllm"]


def test_dominance_pruning_stays_inside_a_pair_group():
    # a faster fp8 prefill configuration must not prune the int4 one when only an int4 decode pool exists
    from model.planner.plan import undominated

    req = _req(("h100-sxm",), precisions=(("fp8", "fp8"), ("int4", "bf16")), roles=("prefill", "decode"))
    cands, _ = enumerate_candidates(req)
    one = lambda role, w: next(c for c in cands if c.role == role and c.deployment.precision.weights == w  # noqa: E731
                               and c.gpus == 1)
    trio = [one("prefill", "fp8"), one("prefill", "int4"), one("decode", "int4")]
    cap = np.array([[2.0], [1.0], [1.0]])
    keep = undominated(req, trio, cap)
    assert keep.tolist() == [True, True, True]
    sol = solve_fleet(req, trio, [Slice("llama-3.1-8b", 0, 1000.0, 100.0, 1.0)], np.where(keep[:, None], cap, 0.0))
    assert sol.status == "Optimal" and sol.counts.tolist() == [0, 1, 1]


def test_final_plans_pass_the_engine_simulator():
    from model.planner.check import simulator_check

    req = _req(("h100-sxm",), rate=5.0, lengths=Lengths.lognormal(1000, 200), slo=SLO(2.0, 0.1))
    p = plan(req, check=simulator_check)
    assert p.feasible
    for pool in p.pools:
        assert simulator_check(pool.candidate, pool.lengths, pool.rate_per_s / pool.instances, req).ok
