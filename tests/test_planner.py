"""The planner: ILP optimality against brute force, independent re-checks, research directions, explanations."""

from __future__ import annotations

import importlib
import itertools
from dataclasses import replace

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from model.errors import RidgeplanError
from model.planner import GpuOption, PlanRequest, Traffic, pareto_frontier, place_experts, plan, round_robin
from model.planner.candidates import capacities, enumerate_candidates, layouts
from model.planner.experts import evaluate_placement
from model.planner.ilp import solve_fleet
from model.planner.plan import undominated
from model.planner.request import buckets, slices
from model.serving.estimate import SLO
from model.serving.workload import Lengths

FAST = dict(precisions=(("fp8", "fp8"), ("bf16", "bf16")), gpus_per_instance=(1, 2), pipeline_depths=(1,))


def _request(gpus=("h100-sxm", "l40s"), rate=20.0, lengths=None, slo=SLO(1.0, 0.05), **kw):
    lengths = lengths or Lengths.fixed(1000, 200)
    return PlanRequest((Traffic("llama-3.1-8b", rate, lengths),), slo, tuple(GpuOption(g) for g in gpus),
                       **{**FAST, **kw})


def _matrix(request):
    cands, _ = enumerate_candidates(request)
    sl = slices(request)
    bi, bo, _ = buckets(request.traffic[0].lengths, request.max_buckets)
    caps = capacities(cands, bi, bo, request)
    cap = np.array([[caps.rate_per_s[c, s.bucket] for s in sl] for c in range(len(cands))])
    return cands, sl, cap


def test_ilp_cost_equals_brute_force_on_a_small_instance():
    request = _request(roles=("aggregated",), rate=30.0)
    cands, sl, cap = _matrix(request)
    sol = solve_fleet(request, cands, sl, cap)
    assert sol.status == "Optimal"
    ilp_cost = sum(sol.counts[c] * cands[c].cost_per_hour for c in range(len(cands)))
    # brute force: one bucket, so any instance mix whose total capacity covers the rate is feasible
    usable = [c for c in range(len(cands)) if cap[c, 0] > 0]
    best = np.inf
    bound = int(np.ceil(30.0 / min(cap[c, 0] for c in usable))) + 1
    small = [c for c in usable if cap[c, 0] > 0][:5]
    for counts in itertools.product(range(bound + 1), repeat=len(small)):
        if sum(n * cap[c, 0] for n, c in zip(counts, small)) >= 30.0 - 1e-9:
            best = min(best, sum(n * cands[c].cost_per_hour for n, c in zip(counts, small)))
    others = [c for c in usable if c not in small]
    for c in others:  # single-configuration fleets of the rest
        best = min(best, np.ceil(30.0 / cap[c, 0] - 1e-9) * cands[c].cost_per_hour)
    assert ilp_cost == pytest.approx(best)


def test_dominance_pruning_keeps_the_optimum():
    request = _request(rate=25.0, lengths=Lengths.lognormal(800, 200), max_buckets=4)
    cands, sl, cap = _matrix(request)
    full = solve_fleet(request, cands, sl, cap)
    keep = undominated(request, cands, cap)
    pruned = solve_fleet(request, cands, sl, np.where(keep[:, None], cap, 0.0))
    assert keep.sum() < len(cands)
    assert pruned.objective == pytest.approx(full.objective)


@settings(max_examples=4, deadline=None)
@given(rate=st.floats(2, 60), tpot_ms=st.sampled_from([30.0, 60.0]), ttft_s=st.sampled_from([0.5, 2.0]),
       mean_in=st.sampled_from([300, 2000]))
def test_every_plan_passes_the_serving_models_recheck(rate, tpot_ms, ttft_s, mean_in):
    p = plan(_request(rate=rate, lengths=Lengths.lognormal(mean_in, 200), slo=SLO(ttft_s, tpot_ms / 1e3),
                      max_buckets=6))
    assert p.feasible
    assert all(pool.meets_slo for pool in p.pools)
    routed = sum(pool.rate_per_s for pool in p.pools if pool.candidate.role in ("aggregated", "prefill"))
    assert routed == pytest.approx(rate, rel=1e-6)


def test_search_uses_every_gpu_of_the_node():
    # PITFALLS: a search with a strict '<' on TP x PP never tries the full node
    lays = layouts(8, (1, 2, 4, 8), (1, 2), set())
    assert any(lay.tp * lay.pp == 8 and lay.pp == 1 for lay in lays)
    assert any(lay.tp * lay.pp == 8 and lay.pp == 2 for lay in lays)
    moe = layouts(8, (1, 2, 4, 8), (1,), {8})
    assert any(lay.ep == 8 for lay in moe)


def test_heterogeneous_mix_no_worse_than_any_single_type_seed_c05():
    # Melange: short requests with a loose SLO on cheap GPUs, long ones on large-memory GPUs
    mix = Lengths(np.array([200.0, 12000.0]), np.array([100.0, 400.0]), np.array([0.7, 0.3]))
    gpus = ("h100-sxm", "l4", "a10g")
    both = plan(_request(gpus=gpus, rate=30.0, lengths=mix, slo=SLO(4.0, 0.08), roles=("aggregated",)))
    singles = [plan(_request(gpus=(g,), rate=30.0, lengths=mix, slo=SLO(4.0, 0.08), roles=("aggregated",)))
               for g in gpus]
    assert both.feasible
    best_single = min(p.cost_per_hour_usd for p in singles if p.feasible)
    assert both.cost_per_hour_usd <= best_single + 1e-9


def test_disaggregation_wins_when_slos_conflict_and_not_otherwise_seed_c01():
    tight = dict(rate=40.0, lengths=Lengths.fixed(4000, 300), slo=SLO(1.0, 0.010), gpus=("h100-sxm",))
    agg = plan(_request(roles=("aggregated",), **tight))
    dis = plan(_request(**tight))
    assert dis.cost_per_hour_usd < agg.cost_per_hour_usd
    assert any(pool.candidate.role == "decode" for pool in dis.pools)
    loose = dict(rate=40.0, lengths=Lengths.fixed(4000, 300), slo=SLO(5.0, 0.2), gpus=("h100-sxm",))
    agg2, dis2 = plan(_request(roles=("aggregated",), **loose)), plan(_request(**loose))
    assert dis2.cost_per_hour_usd == pytest.approx(agg2.cost_per_hour_usd)
    assert all(pool.candidate.role == "aggregated" for pool in dis2.pools)


def test_pareto_cost_falls_as_the_target_loosens():
    seen = []
    points = pareto_frontier(_request(rate=20.0, roles=("aggregated",)), tpot_targets_s=[0.012, 0.02, 0.05, 0.1],
                             progress=lambda done, total: seen.append((done, total)))
    assert seen == [(1, 4), (2, 4), (3, 4), (4, 4)]  # the app's progress bar: one call per re-plan
    costs = [p["cost_per_hour_usd"] for p in points if p["feasible"]]
    assert len(costs) >= 3
    assert all(a >= b - 1e-9 for a, b in zip(costs, costs[1:]))


def test_pareto_frontier_carries_a_cheaper_plan_from_a_tighter_target(monkeypatch):
    # a plan meeting 20 ms meets 50 ms: the frontier at 50 ms never costs more than the plan found at 20 ms
    planner = importlib.import_module("model.planner.plan")  # the package re-exports plan(), shadowing it

    real = planner.plan

    def costlier_when_loose(request, progress=None, **kw):
        p = real(request, progress, **kw)
        if request.slo.tpot_s > 0.03:  # pretend the looser target's solve came out worse
            p = replace(p, pools=tuple(replace(pool, instances=pool.instances + 1) for pool in p.pools))
        return p

    monkeypatch.setattr(planner, "plan", costlier_when_loose)
    request = _request(rate=10.0, gpus=("h100-sxm",), roles=("aggregated",))
    points = pareto_frontier(request, tpot_targets_s=[0.05, 0.02])
    loose, tight = points  # in the order asked
    assert (loose["target_s"], tight["target_s"]) == (0.05, 0.02)
    assert tight["feasible"] and tight["solved_at_s"] == 0.02
    assert loose["solved_at_s"] == 0.02 and loose["cost_per_hour_usd"] == tight["cost_per_hour_usd"]
    assert loose["mix"] == tight["mix"] and sum(loose["mix"].values()) == loose["gpus"]


@pytest.mark.parametrize("changes, starts", [
    (dict(slo=SLO(0.002, 0.05)), "TTFT"),
    (dict(slo=SLO(2.0, 0.001)), "TPOT"),
    (dict(gpus=("h100-sxm",), budget_usd_per_hour=1.0), "budget"),
    (dict(gpus=("l4",), precisions=(("bf16", "bf16"),), gpus_per_instance=(1,), model="llama-3.1-70b"), "memory"),
])
def test_infeasible_requests_are_explained(changes, starts):
    model = changes.pop("model", "llama-3.1-8b")
    request = _request(**changes)
    if model != "llama-3.1-8b":
        request = replace(request, traffic=(Traffic(model, 5.0, Lengths.fixed(1000, 200)),))
    p = plan(request)
    assert not p.feasible
    assert p.explanation.startswith(starts), p.explanation


def _suggested(explanation: str, after: str) -> float:
    import re

    return float(re.search(re.escape(after) + r" \$?([\d,.]+)", explanation).group(1).replace(",", ""))


@pytest.mark.parametrize("changes, follow", [
    # finding 4: "TTFT >= 20 ms is feasible" was the target itself; following it (and 21, 22, ...) stayed infeasible
    (dict(slo=SLO(0.002, 0.05)), lambda r, e: replace(r, slo=replace(r.slo, ttft_s=_suggested(e, "target is") / 1e3))),
    (dict(slo=SLO(2.0, 0.001)), lambda r, e: replace(r, slo=replace(r.slo, tpot_s=_suggested(e, "target is") / 1e3))),
    (dict(gpus=("h100-sxm",), budget_usd_per_hour=1.0),
     lambda r, e: replace(r, budget_usd_per_hour=_suggested(e, "minimum budget is"))),
    # finding 4: the power message quoted the cheapest fleet's draw, not the least power any feasible fleet needs
    (dict(gpus=("h100-sxm", "l40s"), power_cap_w=300.0, rate=40.0),
     lambda r, e: replace(r, power_cap_w=_suggested(e, "minimum power cap is"))),
])
def test_a_suggestion_the_user_follows_is_feasible(changes, follow):
    request = _request(**changes)
    p = plan(request)
    assert not p.feasible
    followed = plan(follow(request, p.explanation))
    assert followed.feasible, (p.explanation, followed.explanation)
    if request.power_cap_w is not None:  # the minimum: the least-power fleet draws exactly that
        least = plan(replace(request, power_cap_w=None, objective="power"))
        assert _suggested(p.explanation, "minimum power cap is") == pytest.approx(least.power_w, abs=1)
        assert followed.power_w <= least.power_w + 1


def test_availability_limit_is_binding_and_explained():
    short = plan(PlanRequest((Traffic("llama-3.1-8b", 400.0, Lengths.fixed(1000, 200)),), SLO(1.0, 0.05),
                             (GpuOption("h100-sxm", 3.0, 2),), **FAST))
    assert not short.feasible and short.explanation.startswith("availability")
    ok = plan(PlanRequest((Traffic("llama-3.1-8b", 20.0, Lengths.fixed(1000, 200)),), SLO(1.0, 0.05),
                          (GpuOption("h100-sxm", 3.0, 4), GpuOption("l40s", 0.8, 1)), **FAST))
    assert ok.feasible and sum(p.instances * p.candidate.gpus for p in ok.pools if p.candidate.gpu == "l40s") <= 1


def test_launch_commands_name_the_layout_and_precision():
    p = plan(_request(rate=10.0, gpus=("h100-sxm",)))
    cmd = p.pools[0].to_dict()["launch"]
    assert "--tensor-parallel-size" in cmd["vllm"] and "--max-num-seqs" in cmd["vllm"]
    assert "sglang.launch_server" in cmd["sglang"]


def test_two_models_share_the_fleet_limits():
    req = PlanRequest((Traffic("llama-3.1-8b", 10.0, Lengths.fixed(500, 100)),
                       Traffic("qwen2.5-7b", 10.0, Lengths.fixed(500, 100))), SLO(1.0, 0.05),
                      (GpuOption("h100-sxm"),), **FAST)
    p = plan(req)
    assert p.feasible and {pool.candidate.model for pool in p.pools} == {"llama-3.1-8b", "qwen2.5-7b"}


@pytest.mark.parametrize("kwargs, field", [
    (dict(objective="speed"), "objective"),
    (dict(objective="goodput"), "budget"),
    (dict(roles=("prefill",)), "roles"),
    (dict(max_accuracy_risk=5), "max_accuracy_risk"),
])
def test_bad_requests(kwargs, field):
    with pytest.raises(RidgeplanError) as err:
        _request(**kwargs)
    assert err.value.field == field


def test_unpriced_gpu_needs_a_price():
    with pytest.raises(RidgeplanError) as err:
        PlanRequest((Traffic("llama-3.1-8b", 1.0, Lengths.fixed(10, 10)),), SLO(1.0), (GpuOption("h20"),))
    assert err.value.field == "price"


# --- MoE expert placement -------------------------------------------------------------------------------

def test_expert_placement_balances_load_and_keeps_tokens_local():
    rng = np.random.default_rng(0)
    experts, gpus = 8, 4
    load = rng.gamma(2.0, 50.0, experts)
    affinity = np.zeros((experts, experts))
    for e in range(experts):  # each expert mostly hands tokens to one partner in the next layer
        affinity[e, (e * 3 + 1) % experts] = load[e] * 0.8
        affinity[e, (e * 5 + 2) % experts] = load[e] * 0.2
    best = place_experts(load, load, affinity, gpus)
    rr = evaluate_placement(load, load, affinity, round_robin(experts, gpus), round_robin(experts, gpus), gpus)
    assert best.cross_gpu_tokens < rr.cross_gpu_tokens
    assert best.max_load <= rr.max_load * 1.5
    assert np.bincount(best.layer_a, minlength=gpus).max() <= experts // gpus


def test_expert_placement_errors():
    with pytest.raises(RidgeplanError):
        place_experts(np.ones(8), np.ones(8), np.ones((8, 7)), 4)
    with pytest.raises(RidgeplanError):
        place_experts(np.ones(8), np.ones(8), np.ones((8, 8)), 3)


def test_unsplit_slices_are_each_served_whole_and_loads_fit():
    """Without splitting, the grouped program (counts of interchangeable slices) must still give every slice to
    exactly one aggregated configuration or to one prefill and one decode configuration, and each configuration's
    routed load must fit its instances: sum_s rate_s * share[s, c] / capacity[c, s] <= n_c."""
    request = _request(rate=30.0, lengths=Lengths.lognormal(1500, 300), max_buckets=4, slices_per_bucket=4,
                       split_slices=False)
    cands, sl, cap = _matrix(request)
    sol = solve_fleet(request, cands, sl, cap)
    assert sol.status == "Optimal"
    assert set(np.unique(sol.share)) <= {0.0, 1.0}
    roles = np.array([c.role for c in cands])
    for s in range(len(sl)):
        agg, pre, dec = (sol.share[s, roles == r].sum() for r in ("aggregated", "prefill", "decode"))
        assert (agg, pre, dec) in {(1.0, 0.0, 0.0), (0.0, 1.0, 1.0)}
    rates = np.array([s.rate_per_s for s in sl])
    with np.errstate(divide="ignore", invalid="ignore"):
        load = np.nansum(np.where(sol.share.T > 0, rates[None, :] * sol.share.T / cap, 0.0), axis=1)
    assert np.all(load <= sol.counts + 1e-6)


def test_following_the_availability_suggestion_plans():
    import re

    request = PlanRequest((Traffic("llama-3.1-8b", 400.0, Lengths.fixed(1000, 200)),), SLO(1.0, 0.05),
                          (GpuOption("h100-sxm", 3.0, 2),), **FAST)
    short = plan(request)
    need = {gpu: int(n) for gpu, n in re.findall(r"([\w.-]+): (\d+) needed", short.explanation)}
    assert need["h100-sxm"] > 2
    followed = plan(replace(request, gpus=(GpuOption("h100-sxm", 3.0, need["h100-sxm"]),)))
    assert followed.feasible and followed.gpus <= need["h100-sxm"]
