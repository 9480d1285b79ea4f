"""The training planner (search space, choice, infeasibility explanations), the CLI and the benchmark."""

from __future__ import annotations

import json

import numpy as np
import pytest

from model.architecture import load_architecture
from model.bench import BENCHES
from model.cli import main
from model.errors import RidgeplanError
from model.training import plan_training
from model.training.planner import enumerate_candidates
from model.training.step import evaluate_candidates
from model.training.cluster import cluster_for


def test_search_space_uses_every_gpu():
    """PITFALLS: a search with a strict < on TP·PP never uses all the GPUs. Every candidate for 16 GPUs uses 16,
    and the pure model-parallel layouts (TP8 x PP2, DP1) are in the set; TP never exceeds the node or the heads."""
    arch = load_architecture("llama-3.1-70b")
    c = enumerate_candidates(arch, 16, seq_len=4096, global_batch=None, node_size=8)
    assert np.all(c.gpus == 16)
    assert np.any((c.tp == 8) & (c.pp == 2) & (c.dp == 1))
    assert np.any((c.tp == 1) & (c.pp == 1) & (c.dp == 16))
    assert c.tp.max() == 8 and set(np.unique(c.zero)) == {0.0, 1.0, 2.0, 3.0}
    assert np.all(c.global_batch % (c.dp * c.micro_batch) == 0)


def test_long_sequences_search_sequence_parallelism():
    arch = load_architecture("llama-3.1-8b")
    assert np.all(enumerate_candidates(arch, 16, seq_len=4096, global_batch=64, node_size=8).sp == 1)
    long = enumerate_candidates(arch, 16, seq_len=131072, global_batch=16, node_size=8)
    assert {2.0, 4.0, 8.0} <= set(np.unique(long.sp))


def test_plan_picks_the_fastest_fitting_layout():
    """The chosen layout is the fastest of all fitting candidates (checked against the raw evaluation)."""
    arch = load_architecture("llama-3.1-8b")
    plan = plan_training(arch, "h100-sxm", 32, node="dgx-h100", tokens=1e11, seq_len=4096)
    assert plan.feasible and plan.best.fits and plan.best.gpus == 32
    c = enumerate_candidates(arch, 32, seq_len=4096, global_batch=None, node_size=8)
    r = evaluate_candidates(arch, cluster_for("h100-sxm", "dgx-h100"), c, plan.best.settings)
    fastest = np.min(np.where(r.fits, r.step_time_s / r.tokens_per_step, np.inf))
    assert plan.best.step_time_s / plan.best.layout.global_batch / 4096 == pytest.approx(fastest, rel=1e-9)
    assert all(a.time_to_train_s >= plan.best.time_to_train_s for a in plan.alternatives)
    json.dumps(plan.to_dict())


def test_memory_infeasible_names_the_shortfall_and_the_nearest_relaxations():
    """Llama-3.1-405B cannot train on 8 H100 in any layout: the plan says so with the shortfall, and the GPU-count
    relaxation it offers is verified by planning again at that count."""
    plan = plan_training("llama-3.1-405b", "h100-sxm", 8, node="dgx-h100", tokens=1e11, seq_len=4096)
    assert not plan.feasible and plan.binding == "memory" and plan.best is None
    assert "short by" in plan.explanation
    more = next(r for r in plan.relaxations if r["change"] == "gpus")
    assert more["value"] > 8
    assert plan_training("llama-3.1-405b", "h100-sxm", more["value"], node="dgx-h100", tokens=1e11,
                         seq_len=4096).feasible


def test_deadline_infeasible_offers_the_fastest_time_and_more_gpus():
    plan = plan_training("llama-3.1-8b", "h100-sxm", 8, node="dgx-h100", tokens=1e12, seq_len=4096,
                         deadline_days=10)
    assert plan.binding == "deadline"
    later = next(r for r in plan.relaxations if r["change"] == "deadline_days")
    assert later["value"] > 10
    assert plan.alternatives[0].time_to_train_s / 86400 == pytest.approx(later["value"])
    more = next(r for r in plan.relaxations if r["change"] == "gpus")
    assert plan_training("llama-3.1-8b", "h100-sxm", more["value"], node="dgx-h100", tokens=1e12, seq_len=4096,
                         deadline_days=10).feasible


def test_budget_infeasible_offers_the_minimum_cost():
    plan = plan_training("llama-3.1-8b", "h100-sxm", 64, node="dgx-h100", tokens=1e12, seq_len=4096,
                         budget_usd=1000)
    assert plan.binding == "budget"
    need = next(r for r in plan.relaxations if r["change"] == "budget_usd")["value"]
    assert need > 1000
    assert plan_training("llama-3.1-8b", "h100-sxm", 64, node="dgx-h100", tokens=1e12, seq_len=4096,
                         budget_usd=need * 1.001, objective="cost").feasible


def test_cost_objective_never_costs_more_than_the_fastest_plan():
    """Minimising cost may use a slice of the cluster; it never costs more than the time-optimal plan."""
    kw = dict(node="dgx-h100", tokens=1e11, seq_len=4096)
    fast = plan_training("llama-3.1-8b", "h100-sxm", 64, **kw)
    cheap = plan_training("llama-3.1-8b", "h100-sxm", 64, objective="cost", **kw)
    assert cheap.best.cost_usd <= fast.best.cost_usd * (1 + 1e-9)
    assert cheap.best.gpus <= 64


def test_planner_errors():
    with pytest.raises(RidgeplanError) as err:
        plan_training("llama-3.1-8b", "h100-sxm", 8, objective="speed")
    assert err.value.field == "objective"
    with pytest.raises(RidgeplanError) as err:
        plan_training("llama-3.1-8b", "a800", 8, budget_usd=1e6)  # the A800 file has no price
    assert err.value.field == "budget_usd"
    with pytest.raises(RidgeplanError) as err:
        plan_training("llama-3.1-8b", "h100-sxm", 0)
    assert err.value.field == "gpus"


# ---------------------------------------------------------------------------------------------------------
# CLI

def run(capsys, *args):
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


def test_cli_train_estimate_json(capsys):
    code, out, _ = run(capsys, "train", "estimate", "--model", "llama-3.1-8b", "--gpu", "h100-sxm", "--gpus", "16",
                       "--tp", "2", "--zero", "1", "--micro-batch", "2", "--global-batch", "64", "--seq-len", "4096",
                       "--recompute", "selective", "--optimizer", "adamw", "--tokens", "1e11", "--json")
    assert code == 0
    d = json.loads(out)
    assert d["fits"] and d["dp"] == 8 and d["gpus"] == 16
    for key in ("step_time_s", "mfu", "tokens_per_s", "time_to_train_s", "model_flops_per_step"):
        assert d[key] > 0
    assert d["memory"]["total_bytes"] == pytest.approx(sum(d["memory"][k] for k in (
        "weights_bytes", "grads_bytes", "optimizer_bytes", "activation_bytes", "buffer_bytes")))
    assert d["assumptions"]


def test_cli_train_estimate_human_and_not_fitting(capsys):
    code, out, _ = run(capsys, "train", "estimate", "--model", "llama-3.1-70b", "--gpus", "8", "--tp", "8",
                       "--zero", "0")
    assert code == 0 and "DOES NOT FIT" in out and "short by" in out and "throughput" not in out
    code, out, _ = run(capsys, "train", "estimate", "--model", "llama-3.1-8b", "--gpus", "8", "--tokens", "1e10")
    assert code == 0 and "MFU" in out and "time to train" in out and "Assumptions" in out


@pytest.mark.parametrize("args, field", [
    (("--tp", "3"), "tp"),
    (("--optimizer", "lion"), "optimizer"),
    (("--global-batch", "7", "--tp", "2"), "global_batch"),
    (("--recompute", "most"), "recompute"),
    (("--zero", "5"), "zero"),
])
def test_cli_train_errors_are_one_line(capsys, args, field):
    code, out, err = run(capsys, "train", "estimate", "--model", "llama-3.1-8b", "--gpus", "8", *args)
    assert code == 2 and out == ""
    assert err.startswith(f"error: {field}:") and err.count("\n") == 1


def test_cli_train_plan(capsys):
    code, out, _ = run(capsys, "train", "plan", "--model", "llama-3.1-8b", "--gpu", "h100-sxm", "--gpus", "16",
                       "--node", "dgx-h100", "--tokens", "1e11", "--json")
    d = json.loads(out)
    assert code == 0 and d["feasible"] and d["best"]["gpus"] == 16 and d["candidates_evaluated"] > 100
    code, out, _ = run(capsys, "train", "plan", "--model", "llama-3.1-8b", "--gpus", "8", "--tokens", "1e12",
                       "--deadline-days", "5", "--budget-usd", "1e9")
    assert code == 0 and "infeasible (deadline)" in out and "nearest relaxation" in out


def test_training_benchmark_is_registered():
    assert "training" in BENCHES
