"""Issue 16, speed of the SLO capacities: what makes them fast must not change a bit of them.

Iterations time only the operators they read (per-sequence attention from per-sequence steps, the rest from
token-parallel ones), stacked deployments are stacked once per list and indexed per grid, per-deployment constants
are worked out once, and a warm plan reuses its candidates' deployments. Each test compares the fast path with the
straightforward one (every operator timed, nothing remembered) for exact equality."""

from __future__ import annotations

from dataclasses import fields, replace

import numpy as np
import pytest

from model.lru import LRU
from model.operators.memory import _kv_bytes_per_token, kv_bytes_per_token
from model.planner import GpuOption, PlanRequest, Traffic
from model.planner import candidates as cand_mod
from model.planner.candidates import capacities, enumerate_candidates
from model.planner.request import buckets
from model.serving import stacked as stacked_mod
from model.serving.batching import iteration_cost
from model.serving.deployment import Deployment, deployment
from model.serving.estimate import SLO
from model.serving.stacked import StackedDeployment
from model.serving.workload import Lengths


def _request(model="llama-3.1-8b", gpus=("h100-sxm", "l40s"), **kw):
    base = dict(gpus_per_instance=(1, 2, 4), pipeline_depths=(1, 2), max_buckets=4,
                precisions=(("fp8", "fp8"), ("bf16", "bf16")))
    return PlanRequest((Traffic(model, 10.0, Lengths.lognormal(1200, 250)),), SLO(1.0, 0.05),
                       tuple(GpuOption(g) for g in gpus), **{**base, **kw})


def _every_row(monkeypatch):
    """The straightforward path: every operator timed and the rows asked for cut out afterwards; nothing
    remembered between calls."""
    for cls in (Deployment, StackedDeployment):
        real = cls.op_seconds

        def full(self, *args, rows=None, _real=real, **kw):
            ops, times, exposed = _real(self, *args, **kw)
            return ops, times, exposed if rows is None else exposed[rows]

        monkeypatch.setattr(cls, "op_seconds", full)
    monkeypatch.setattr(stacked_mod, "_column_sets", LRU(0))
    cand_mod._built.clear()
    _kv_bytes_per_token.cache_clear()


def _caps(req):
    cands, _ = enumerate_candidates(req)
    bi, bo, _ = buckets(req.traffic[0].lengths, req.max_buckets)
    caps = capacities(cands, bi, bo, req)
    return cands, {f.name: getattr(caps, f.name) for f in fields(caps)}


def _assert_identical(a: dict, b: dict):
    for name, value in a.items():
        assert np.array_equal(value, b[name]), name


DEPLOYMENTS = [
    dict(model="llama-3.1-8b", gpu="h100-sxm", tp=2, pp=2, weights="fp8", kv="fp8"),
    dict(model="llama-3.1-70b", gpu="a100-sxm-80gb", tp=4),
    dict(model="mixtral-8x7b", gpu="h100-sxm", tp=1, attention_dp=4, moe_ep=4),
    dict(model="mixtral-8x7b", gpu="h100-sxm", tp=1, attention_dp=2, moe_ep=2, two_batch_overlap=True),
]


@pytest.mark.parametrize("spec", DEPLOYMENTS, ids=lambda s: f"{s['model']}-{s['gpu']}-{len(s)}")
def test_timing_some_operators_gives_exactly_their_rows_of_timing_all(spec):
    spec = dict(spec)
    d = deployment(spec.pop("model"), spec.pop("gpu"), **spec)
    rng = np.random.default_rng(3)
    batch, ctx = rng.uniform(1, 200, 64), rng.uniform(0, 8000, 64)
    _, _, whole = d.op_seconds(batch, 1.0, ctx)
    per_seq = d.per_sequence_ops
    assert 0 < per_seq.sum() < per_seq.size
    for rows in (per_seq, ~per_seq, np.flatnonzero(per_seq)):
        assert np.array_equal(d.op_seconds(batch, 1.0, ctx, rows=rows)[2], whole[rows])
    ops = d.graph.evaluate({**d.symbols(), "B": batch, "T": 1.0, "C": ctx})
    some = d.graph.evaluate({**d.symbols(), "B": batch, "T": 1.0, "C": ctx}, rows=~per_seq)
    assert np.array_equal(some.values, ops.values[:, ~per_seq])
    assert [op.name for op in some.ops] == [op.name for op, keep in zip(ops.ops, ~per_seq) if keep]


@pytest.mark.parametrize("spec", DEPLOYMENTS, ids=lambda s: f"{s['model']}-{s['gpu']}-{len(s)}")
@pytest.mark.parametrize("separate_prefill", [False, True])
def test_an_iteration_costs_exactly_what_timing_every_operator_gives(spec, separate_prefill, monkeypatch):
    spec = dict(spec)
    d = deployment(spec.pop("model"), spec.pop("gpu"), **spec)
    rng = np.random.default_rng(5)
    n = 40
    args = (rng.choice([0.0, 1.0, 17.0, 120.0], n), rng.uniform(0, 6000, n), rng.choice([0.0, 300.0, 4096.0], n),
            rng.choice([0.0, 0.4, 1.0, 3.0], n), rng.uniform(0, 2000, n))
    fast = iteration_cost(d, *args, separate_prefill=separate_prefill)
    _every_row(monkeypatch)
    slow = iteration_cost(d, *args, separate_prefill=separate_prefill)
    for f in fields(fast):
        assert np.array_equal(np.asarray(getattr(fast, f.name)), np.asarray(getattr(slow, f.name))), f.name


@pytest.mark.parametrize("kw", [dict(), dict(model="mixtral-8x7b", gpus=("h100-sxm",), gpus_per_instance=(2, 4),
                                                pipeline_depths=(1,))], ids=["llama-8b", "mixtral"])
def test_capacities_on_the_fast_path_equal_the_straightforward_ones(kw, monkeypatch):
    """Warm (columns, deployments and KV sizes remembered, a second traffic shape after a first) against cold
    with every operator timed."""
    req = _request(**kw)
    _caps(req)  # warms what is remembered
    other = replace(req, traffic=(Traffic(req.traffic[0].model, 30.0, Lengths.lognormal(1900, 400)),))
    cands_warm, warm = _caps(other)
    _every_row(monkeypatch)
    cands_cold, cold = _caps(other)
    assert [c.label() for c in cands_warm] == [c.label() for c in cands_cold]
    assert (warm["rate_per_s"] > 0).any()
    _assert_identical(warm, cold)


def test_stacking_candidates_gives_each_one_exactly_its_capacities_alone():
    """Vectorized over candidates against one candidate at a time, within 1e-12: the operator counts are summed by a
    matrix product whose BLAS kernel (and so its last bit) depends on how many scenarios it multiplies."""
    req = _request()
    cands, caps = _caps(req)
    bi, bo, _ = buckets(req.traffic[0].lengths, req.max_buckets)
    rng = np.random.default_rng(7)
    for k in rng.choice(len(cands), 6, replace=False):
        alone = capacities([cands[k]], bi, bo, req)
        for name, value in caps.items():
            np.testing.assert_allclose(getattr(alone, name)[0], value[k], rtol=1e-12, atol=0,
                                       err_msg=f"{cands[k].label()} {name}")


def test_a_candidates_deployment_is_reused_only_while_its_inputs_are_the_same(monkeypatch):
    req = _request(gpus=("h100-sxm",))
    first, _ = enumerate_candidates(req)
    again, _ = enumerate_candidates(replace(req, traffic=(Traffic("llama-3.1-8b", 3.0, Lengths.fixed(500, 50)),)))
    assert all(a.deployment is b.deployment for a, b in zip(first, again))
    # a calibration file written meanwhile: the next plan builds its deployments with it
    from model.serving import deployment as deployment_mod

    real = deployment_mod.efficiency_for
    monkeypatch.setattr(deployment_mod, "efficiency_for", lambda *a, **kw: replace(real(*a, **kw), mem_max=0.5))
    recalibrated, _ = enumerate_candidates(req)
    assert all(a.deployment is not b.deployment for a, b in zip(first, recalibrated))
    assert all(b.deployment.efficiency.mem_max == 0.5 for b in recalibrated)


def test_remembered_per_deployment_constants_are_copies_and_exact():
    d = deployment("llama-3.1-8b", "h100-sxm", tp=2, pp=2)
    sym = d.symbols()
    sym["b_w"] = 99.0
    assert d.symbols()["b_w"] == 1.0 * 2  # bf16 weights: 2 bytes, untouched by the caller's edit
    base, per_token = d.p2p_affine_s
    assert base == float(d.p2p_seconds(0.0)) and base + per_token == pytest.approx(float(d.p2p_seconds(1.0)))
    _kv_bytes_per_token.cache_clear()
    # Llama-3.1-8B: 32 layers x K and V x 8 KV heads x 128 dims x 2 bytes = 131,072 B per token
    assert kv_bytes_per_token(d.arch) == 32 * 2 * 8 * 128 * 2 == kv_bytes_per_token(d.arch, b_kv=2, tp=1)
    assert kv_bytes_per_token(d.arch, b_kv=1.0) == 32 * 2 * 8 * 128
