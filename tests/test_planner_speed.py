"""Issue 16, speed: what makes the plan fast must not change what it answers.

Exact pruning by multiples, the lower bound that skips loops, the sustained-rate search on the checked latencies,
remembered verdicts and capacities, the loop's bound, and the plan path's lazy imports (timings themselves are in
`ridgeplan bench planner`, not in tests: the machine is shared)."""

from __future__ import annotations

import subprocess
import sys
from dataclasses import replace

import numpy as np
import pytest

from model.lru import LRU
from model.planner import GpuOption, PlanRequest, Traffic, plan
from model.planner.candidates import cached_capacities, enumerate_candidates
from model.planner.check import PoolCheck, serving_check, sustained_rate
from model.planner.ilp import solve_fleet
from model.planner.prune import lower_bound, undominated
from model.planner.request import Slice
from model.planner.reroute import memoized, reroute
from model.serving.estimate import SLO
from model.serving.workload import Lengths

FAST = dict(gpus_per_instance=(1, 2), pipeline_depths=(1,), max_buckets=4, precisions=(("fp8", "fp8"),))


def _req(gpus=("h100-sxm",), rate=10.0, **kw):
    return PlanRequest((Traffic("llama-3.1-8b", rate, Lengths.lognormal(1000, 200)),), SLO(1.0, 0.05),
                       tuple(GpuOption(g) for g in gpus), **{**FAST, **kw})


def _agg(req):
    cands, _ = enumerate_candidates(req)
    return [c for c in cands if c.role == "aggregated"]


# --- pruning by multiples and the lower bound (exact) ---------------------------------------------------------------

def test_a_candidate_beaten_by_two_copies_of_a_cheaper_one_is_dropped():
    one, two = sorted(_agg(_req(roles=("aggregated",))), key=lambda c: c.gpus)[:2]
    assert (one.gpus, two.gpus) == (1, 2)
    req = _req(roles=("aggregated",))
    # two 1-GPU instances carry 2 x 3 = 6 >= 5 req/s for the price of one 2-GPU instance: the 2-GPU one goes
    assert undominated(req, [one, two], np.array([[3.0], [5.0]])).tolist() == [True, False]
    # two of them carry 2 x 3 = 6 < 7: both stay (plain dominance would have kept both as well)
    assert undominated(req, [one, two], np.array([[3.0], [7.0]])).tolist() == [True, True]
    # equal candidates: the first stays
    assert undominated(req, [one, one], np.array([[3.0], [3.0]])).tolist() == [True, False]


def test_pruning_and_the_lower_bound_keep_the_optimum_on_random_instances():
    req = _req(("h100-sxm", "l40s"), roles=("aggregated", "prefill", "decode"), split_slices=False,
               slices_per_bucket=2, precisions=(("fp8", "fp8"), ("bf16", "bf16")))
    pool, _ = enumerate_candidates(req)
    rng = np.random.default_rng(16)
    checked = pruned = 0
    for _ in range(12):
        pick = [pool[k] for k in rng.choice(len(pool), 7, replace=False)]
        pick += [c for c in pool if c.role == "aggregated"][:1]  # something always serves every slice
        n_b = 2
        cap = rng.uniform(0.5, 6.0, (len(pick), n_b)) * (rng.random((len(pick), n_b)) > 0.25)
        cap[-1] = rng.uniform(1.0, 4.0, n_b)
        sl = [Slice("llama-3.1-8b", b, 1000.0, 100.0, float(r)) for b in range(n_b) for r in rng.uniform(0.5, 3, 2)]
        cap_s = cap[:, [s.bucket for s in sl]]
        full = solve_fleet(req, pick, sl, cap_s)
        keep = undominated(req, pick, cap_s)
        small = solve_fleet(req, pick, sl, np.where(keep[:, None], cap_s, 0.0))
        assert full.status == small.status == "Optimal"
        assert small.objective == pytest.approx(full.objective)
        assert lower_bound(req, pick, sl, cap_s) <= full.objective + 1e-9
        checked += 1
        pruned += int((~keep & (cap_s.max(axis=1) > 0)).sum())
    assert checked == 12 and pruned > 0


def test_the_lower_bound_on_one_gpu_type_is_whole_gpus():
    req = _req(roles=("aggregated",))
    one = min(_agg(req), key=lambda c: c.gpus)
    sl = [Slice("llama-3.1-8b", 0, 1000.0, 100.0, 1.0)]
    # 1 req/s on an instance carrying 4 req/s: a quarter of a GPU in the relaxation, a whole GPU in any fleet
    assert lower_bound(req, [one], sl, np.array([[4.0]])) == pytest.approx(one.cost_per_hour)
    assert solve_fleet(req, [one], sl, np.array([[4.0]])).objective == pytest.approx(one.cost_per_hour)


# --- the sustained-rate search ----------------------------------------------------------------------------------

def _queue_check(capacity, calls):
    """A check whose p90 TPOT grows like a queue's, 40 ms / (1 - rate / capacity), against the 50 ms target."""
    def check(candidate, lengths, rate, request):
        calls.append(rate)
        tpot = 0.040 / (1 - rate / capacity) if rate < capacity else np.inf
        return PoolCheck({"p90": 0.5}, {"p90": tpot}, tpot <= 0.05 * 1.001, rate / capacity)
    return check


@pytest.mark.parametrize(("capacity", "most"), [(3.0, 6), (9.0, 4), (9.9, 4)])
def test_sustained_rate_search_finds_the_boundary_with_few_probes(capacity, most):
    cand = _agg(_req(roles=("aggregated",)))[0]
    req = _req(roles=("aggregated",))
    boundary = capacity * (1 - 0.040 / (0.05 * 1.001))
    calls = []
    check = _queue_check(capacity, calls)
    failing = check(cand, None, 10.0, req)
    calls.clear()
    found = sustained_rate(check, cand, Lengths.fixed(1000, 100), 10.0, req, failing=failing)
    probes = list(calls)
    assert check(cand, None, found, req).ok  # the answer passes ...
    assert boundary - 10.0 / 64 <= found <= boundary  # ... within rate_hi / 64 of the boundary
    # blind bisection asked a trickle and 6 probes; a passing probe vouches for the trickle. Far from the
    # boundary (capacity 3 of 10 req/s: no latency at the failing end) it takes as many probes as bisection
    assert len(probes) <= most and 10.0 * 1e-3 not in probes, probes


def test_sustained_rate_is_zero_when_a_trickle_fails():
    cand = _agg(_req(roles=("aggregated",)))[0]

    def never(candidate, lengths, rate, request):
        return PoolCheck({}, {}, False, 1.0, ("does not fit",))

    assert sustained_rate(never, cand, Lengths.fixed(1000, 100), 10.0, _req()) == 0.0


# --- remembered verdicts and capacities, the loop's bound ------------------------------------------------------------

def test_a_verdict_is_asked_once_per_configuration_mix_and_rate():
    cand = _agg(_req(roles=("aggregated",)))[0]
    asked = []

    def check(candidate, lengths, rate, request):
        asked.append(rate)
        return serving_check(candidate, lengths, rate, request)

    once = memoized(check)
    mix = Lengths(np.array([1000.0, 2000.0]), np.array([100.0, 200.0]), np.array([1.0, 3.0]))
    same = Lengths(mix.input_len.copy(), mix.output_len.copy(), mix.weight.copy())
    assert once(cand, mix, 2.0, _req()) is once(cand, same, 2.0, _req())
    once(cand, mix, 2.5, _req())
    once(cand, Lengths(mix.input_len, mix.output_len, np.array([3.0, 1.0])), 2.0, _req())
    assert asked == [2.0, 2.5, 2.0]


def test_capacities_are_remembered_only_for_equal_inputs():
    req = _req(roles=("aggregated",))
    cands = _agg(req)
    bi, bo = np.array([800.0, 1500.0]), np.array([150.0, 300.0])
    first = cached_capacities(cands, bi, bo, req)
    again = cached_capacities(_agg(_req(rate=33.0, roles=("aggregated",))), bi, bo, req)  # rebuilt, another rate
    assert again is first
    tighter = cached_capacities(cands, bi, bo, replace(req, slo=SLO(1.0, 0.03)))
    assert tighter is not first and (tighter.rate_per_s <= first.rate_per_s + 1e-12).all()
    other = cached_capacities(cands, bi * 2, bo, req)
    assert other is not first


def test_the_loop_checks_nothing_that_cannot_beat_its_bound():
    req = _req(roles=("aggregated",))
    from model.planner.plan import _capacity_matrix, slices

    cands, _ = enumerate_candidates(req)
    sl = slices(req)
    cap, info = _capacity_matrix(req, cands, sl, None)
    asked = []

    def check(candidate, lengths, rate, request):
        asked.append(rate)
        return serving_check(candidate, lengths, rate, request)

    first = reroute(req, cands, sl, cap, info, check)
    assert first and first[0].passed and asked
    asked.clear()
    assert reroute(req, cands, sl, cap, info, check, bound=first[0].value) == [] and asked == []


def test_a_candidate_pruned_by_a_faster_one_returns_when_that_one_fails():
    # the faster configuration fails every check: the loop must fall back to the one it had pruned
    req = _req(roles=("aggregated",), gpus_per_instance=(1,), precisions=(("fp8", "fp8"), ("bf16", "bf16")))
    cands, _ = enumerate_candidates(req)
    from model.planner.plan import _capacity_matrix, slices

    cap, _ = _capacity_matrix(req, cands, slices(req), None)
    fp8 = np.array([c.deployment.precision.weights == "fp8" for c in cands])
    assert not undominated(req, cands, cap)[~fp8].any()  # at first every bf16 configuration is pruned

    def no_fp8(c, lengths, rate, r):
        if c.deployment.precision.weights == "fp8":
            return PoolCheck({}, {}, False, 1.0, ("refused",))
        return serving_check(c, lengths, rate, r)

    p = plan(req, check=no_fp8)
    assert p.feasible and all(pool.candidate.deployment.precision.weights == "bf16" for pool in p.pools)


# --- lazy imports ----------------------------------------------------------------------------------------------------

def test_the_plan_command_imports_neither_scipy_stats_nor_pandas():
    """scipy.stats (~1 s) and pandas (~0.5 s) are not on the plan path: a plan command with the simulator re-check
    runs with both blocked."""
    code = (
        "import sys\n"
        "class Block:\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        "        if name == 'pandas' or name.startswith(('scipy.stats', 'pandas.', 'scipy.optimize')):\n"
        "            raise ImportError(f'blocked {name}')\n"
        "sys.meta_path.insert(0, Block())\n"
        "from model.cli import main\n"
        "raise SystemExit(main(['plan', '--model', 'llama-3.1-8b', '--rate', '4', '--gpus', 'h100-sxm',\n"
        "                       '--precisions', 'fp8/fp8', '--roles', 'aggregated', '--tpot-ms', '50', '--json']))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300, check=False)
    assert out.returncode == 0, out.stderr[-2000:]
    assert '"feasible": true' in out.stdout


# --- the solver ------------------------------------------------------------------------------------------------------

def test_the_fleet_program_is_solved_by_cbc_even_when_highs_is_installed(monkeypatch):
    """highspy 1.16.0 reported a wrong optimum on the README benchmark's program (model.planner.ilp.solver): the
    planner must not switch solver because another one is installed."""
    import pulp

    from model.planner.ilp import solver

    monkeypatch.setattr(pulp, "listSolvers", lambda onlyAvailable=False: ["PULP_CBC_CMD", "HiGHS"])
    assert isinstance(solver(), pulp.PULP_CBC_CMD)


# --- remembered simulations: cost tables per deployment, verdicts per process ------------------------------------

def test_one_cost_table_serves_every_rate_of_a_deployment_and_gives_the_same_run(monkeypatch):
    from model.serving.simulator import run as sim_run

    cand = _agg(_req(roles=("aggregated",)))[0]
    mix = Lengths(np.array([800.0, 1600.0]), np.array([150.0, 300.0]), np.array([1.0, 1.0]))
    built = []
    real = sim_run.build_cost_table

    def counting(*a, **kw):
        built.append(a[2])
        return real(*a, **kw)

    monkeypatch.setattr(sim_run, "build_cost_table", counting)
    tables: dict = {}
    shared = [sim_run.simulate_pool(cand.deployment, mix, r, "vllm", num_requests=200, tables=tables) for r in (2.0, 4.0)]
    assert len(built) == 1 and len(tables) == 1  # the lengths are drawn before the arrivals: one longest context
    alone = sim_run.simulate_pool(cand.deployment, mix, 4.0, "vllm", num_requests=200)
    assert len(built) == 2
    assert np.array_equal(shared[1].ttft_s, alone.ttft_s) and np.array_equal(shared[1].tpot_s, alone.tpot_s)


def test_a_simulated_verdict_is_remembered_across_plans_for_equal_deployments(monkeypatch):
    from model.planner import check
    from model.serving.simulator import run as sim_run

    runs = []
    real = sim_run.simulate_pool

    def counting(*a, **kw):
        runs.append(a[2])
        return real(*a, **kw)

    monkeypatch.setattr(sim_run, "simulate_pool", counting)
    monkeypatch.setattr(check, "_memory", LRU(check.REMEMBERED_DEPLOYMENTS))
    req = _req(roles=("aggregated",))
    mix = Lengths(np.array([800.0, 1600.0]), np.array([150.0, 300.0]), np.array([1.0, 1.0]))
    first = check.simulator_check(_agg(req)[0], mix, 3.0, req, num_requests=200)
    rebuilt = _agg(req)[0]  # another plan builds its candidates anew: equal by value, not the same objects
    assert rebuilt is not _agg(req)[0]
    assert check.simulator_check(rebuilt, mix, 3.0, req, num_requests=200) is first and runs == [3.0]
    # anything the verdict depends on asks again: the rate, the mix, the SLO
    check.simulator_check(rebuilt, mix, 3.5, req, num_requests=200)
    check.simulator_check(rebuilt, Lengths(mix.input_len, mix.output_len, np.array([3.0, 1.0])), 3.0, req,
                          num_requests=200)
    tighter = replace(req, slo=SLO(1.0, 0.03))
    again = check.simulator_check(rebuilt, mix, 3.0, tighter, num_requests=200)
    assert runs == [3.0, 3.5, 3.0, 3.0] and again.ok == (again.tpot_s["p90"] <= 0.03 * 1.001)


# --- pruning whole pair groups (exact) -------------------------------------------------------------------------------

def _pair_cands():
    req = _req(roles=("prefill", "decode"), gpus_per_instance=(1,), precisions=(("fp8", "fp8"), ("bf16", "bf16")))
    cands, _ = enumerate_candidates(req)
    pick = {(c.deployment.precision.weights, c.role): c for c in cands if c.deployment.layout.tp == 1}
    return req, [pick["fp8", "prefill"], pick["fp8", "decode"], pick["bf16", "prefill"], pick["bf16", "decode"]]


def test_a_pair_group_beaten_on_both_sides_by_a_kept_group_is_dropped():
    req, four = _pair_cands()  # fp8 prefill, fp8 decode, bf16 prefill, bf16 decode: one GPU each, same price
    beaten = np.array([[4.0, 4.0], [3.0, 3.0], [2.0, 2.0], [2.0, 2.0]])
    assert undominated(req, four, beaten).tolist() == [True, True, False, False]
    # the bf16 decode carries more than the fp8 one: the bf16 group has a side nothing beats, it stays
    one_side = np.array([[4.0, 4.0], [3.0, 3.0], [2.0, 2.0], [5.0, 5.0]])
    assert undominated(req, four, one_side).tolist() == [True, True, True, True]
    # equal groups: one of them stays
    equal = np.array([[4.0, 4.0], [3.0, 3.0], [4.0, 4.0], [3.0, 3.0]])
    assert sorted(undominated(req, four, equal).tolist()) == [False, False, True, True]


def test_pruning_pair_groups_keeps_the_optimum_on_random_instances():
    req, four = _pair_cands()
    agg = _agg(_req(roles=("aggregated",), gpus_per_instance=(1,)))[0]
    cands = [*four, agg]
    req = replace(req, roles=("aggregated", "prefill", "decode"), split_slices=False, slices_per_bucket=2)
    rng = np.random.default_rng(7)
    dropped = 0
    for _ in range(12):
        fp8 = rng.uniform(1.0, 5.0, (2, 2))
        bf16 = fp8 * rng.uniform(0.6, 1.1, (2, 2))  # often beaten on both sides, sometimes not
        cap_b = np.vstack([fp8, bf16, rng.uniform(0.5, 2.0, (1, 2))])
        sl = [Slice("llama-3.1-8b", b, 1000.0, 100.0, float(r)) for b in range(2) for r in rng.uniform(0.5, 3, 2)]
        cap = cap_b[:, [s.bucket for s in sl]]
        keep = undominated(req, cands, cap)
        full = solve_fleet(req, cands, sl, cap)
        small = solve_fleet(req, cands, sl, np.where(keep[:, None], cap, 0.0))
        assert full.status == small.status == "Optimal" and small.objective == pytest.approx(full.objective)
        dropped += int(not keep[2] and not keep[3])
    assert 0 < dropped < 12


def test_capping_cbcs_root_cut_passes_keeps_the_optimum(monkeypatch):
    from model.planner import ilp

    req, four = _pair_cands()
    cands = [*four, _agg(_req(roles=("aggregated",), gpus_per_instance=(1,)))[0]]
    req = replace(req, roles=("aggregated", "prefill", "decode"), split_slices=False, slices_per_bucket=2)
    rng = np.random.default_rng(11)
    for _ in range(6):
        sl = [Slice("llama-3.1-8b", b, 1000.0, 100.0, float(r)) for b in range(3) for r in rng.uniform(0.5, 3, 2)]
        cap = rng.uniform(0.5, 5.0, (len(cands), 3))[:, [s.bucket for s in sl]]
        capped = solve_fleet(req, cands, sl, cap)
        monkeypatch.setattr(ilp, "ROOT_CUT_PASSES", None)
        default = solve_fleet(req, cands, sl, cap)
        monkeypatch.setattr(ilp, "ROOT_CUT_PASSES", 10)
        assert capped.status == default.status == "Optimal"
        assert capped.objective == pytest.approx(default.objective)
