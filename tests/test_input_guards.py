"""Regression tests for the crashes and accepted nonsense of issue 17: every public entry point rejects negative,
NaN, inf and wrong-typed sizes with the project's one-line error naming the field."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from model.api import deployment
from model.errors import RidgeplanError
from model.serving.estimate import SLO, estimate
from model.serving.workload import Lengths, Workload

NAN, INF = float("nan"), float("inf")
ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def d():
    return deployment("llama-3.1-8b", "h100-sxm")


@pytest.mark.parametrize("args, field", [((-1, 1, 0), "batch"), ((8, 1, -4096), "context"), ((8, 1, NAN), "context"),
                                         ((INF, 1, 0), "batch"), ((8, -2, 0), "new_tokens"),
                                         ((np.array([1, -1]), 1, 0), "batch"), (("8", 1, 0), "batch"),
                                         ((8, 1, 1e12), "context")])
def test_step_rejects_bad_sizes(d, args, field):
    """step(-1, 1, 0) gave 6.1 ms; step(8, 1, -4096) gave -4.29 GB of KV; a NaN context gave a finite time."""
    with pytest.raises(RidgeplanError, match=f"^{field}: "):
        d.step(*args)


def test_from_samples_takes_one_scalar_sample():
    """Found by fuzzing with other seeds: two scalars crashed inside pandas."""
    lengths = Lengths.from_samples(5, 6)
    assert lengths.input_len.tolist() == [5.0] and lengths.output_len.tolist() == [6.0]


def test_step_still_takes_arrays_and_zero_context(d):
    r = d.step(np.array([1, 8]), 1, np.array([0, 512]))
    assert r.time_s.shape == (2,) and np.all(r.time_s > 0)


@pytest.mark.parametrize("kw, field", [({"memory_utilization": None}, "memory_utilization"),
                                       ({"memory_utilization": NAN}, "memory_utilization"),
                                       ({"moe_imbalance": NAN}, "moe_imbalance"),
                                       ({"comm_overlap": "x"}, "comm_overlap"), ({"tp": 2.5}, "tp")])
def test_deployment_rejects_bad_fields(kw, field):
    """memory_utilization=None raised TypeError; a NaN imbalance was accepted."""
    with pytest.raises(RidgeplanError, match=f"^{field}: "):
        deployment("llama-3.1-8b", "h100-sxm", **kw)


@pytest.mark.parametrize("make", [
    lambda: Lengths(np.array([NAN]), np.array([1.0]), np.array([1.0])),
    lambda: Lengths(np.array([INF]), np.array([1.0]), np.array([1.0])),
    lambda: Lengths(np.array([10.0]), np.array([1.0]), np.array([NAN])),
    lambda: Lengths(["a"], [1], [1]),
    lambda: Lengths.lognormal(100, 100, NAN), lambda: Lengths.lognormal(100, 100, INF),
    lambda: Lengths.lognormal(100, 100, -1), lambda: Lengths.lognormal(NAN, 100),
    lambda: Lengths.lognormal(100, 100, 0.8, 2.5), lambda: Lengths.from_samples([1, 2], [1, 2], bins=1e12),
    lambda: Lengths.from_samples([[1, 2]], [[1, 2]]),
    lambda: Workload(Lengths.fixed(8, 8), prefix_hit_rate=None),
    lambda: Workload(Lengths.fixed(8, 8), concurrency=NAN), lambda: Workload("abc"),
    lambda: SLO("fast"), lambda: SLO(1.0, 0.1, None),
])
def test_lengths_workload_slo_reject_nonsense(make):
    """NaN or inf lengths or sigma passed Lengths, and estimate then returned NaN throughput and cost."""
    with pytest.raises(RidgeplanError):
        make()


@pytest.mark.parametrize("which", ["deployment", "engine", "slo"])
def test_estimate_rejects_wrong_types(d, which):
    args = {"d": d, "workload": Workload(Lengths.fixed(8, 8), concurrency=1), "policy": "vllm", "slo": None}
    args.update({"deployment": {"d": "llama"}, "engine": {"policy": ["vllm"]}, "slo": {"slo": "fast"}}[which])
    with pytest.raises(RidgeplanError):
        estimate(**args)


def test_overloaded_ttft_is_null_with_a_reason(d):
    out = estimate(d, Workload(Lengths.fixed(128, 128), rate_per_s=1e6), slo=SLO(1, 0.1)).to_dict()
    assert out["sustainable"] is False
    assert out["ttft_mean_s"] is None and set(out["ttft_percentiles_s"].values()) == {None}
    assert "grow without bound" in out["ttft_unbounded_reason"]


def test_overloaded_disaggregated_ttft_is_null_with_a_reason(d):
    from model.serving.disagg import DisaggPlan, disaggregated

    out = disaggregated(DisaggPlan(d, 1, d, 1), Workload(Lengths.fixed(512, 64), rate_per_s=1e6)).to_dict()
    assert out["sustainable"] is False and out["ttft_mean_s"] is None and out["ttft_unbounded_reason"]


def test_decode_overloaded_disaggregated_ttft_is_null(d):
    """Found by the property test: with only the decode pool overloaded, TTFT was reported as the prefill pool's
    finite time beside sustainable = False."""
    from model.serving.disagg import DisaggPlan, disaggregated

    est = disaggregated(DisaggPlan(d, 1, d, 1), Workload(Lengths.fixed(1, 42), rate_per_s=642.0))
    out = est.to_dict()
    assert est.bottleneck == "decode" and out["sustainable"] is False
    assert out["ttft_mean_s"] is None and "decode pool" in out["ttft_unbounded_reason"]


def test_kv_pool_of_a_configuration_that_does_not_fit_is_not_negative():
    """Found by the property test: Llama-3.1-70B bf16 on one H100 reported kv_pool_bytes = -66 GB."""
    out = estimate(deployment("llama-3.1-70b", "h100-sxm"), Workload(Lengths.fixed(1, 1), concurrency=1)).to_dict()
    assert out["fits"] is False
    assert out["memory_per_gpu"]["kv_pool_bytes"] == 0.0 and out["memory_per_gpu"]["shortfall_bytes"] > 60e9


def test_static_operator_table_has_no_infinite_intensity(d):
    """Operators with no memory bytes had intensity inf in the JSON output."""
    from model.serving.static import static_batch

    out = static_batch(d, 4, 512, 16).to_dict()
    values = [r["intensity_flop_per_byte"] for r in out["prefill"]["operators"]]
    assert all(v is None or np.isfinite(v) for v in values)


def test_device_without_a_16_bit_peak_is_an_error_not_stop_iteration():
    """The evaluator raised StopIteration for a device listing no bf16/fp16/fp32 peak."""
    from model.hardware.db import load_device

    dev = load_device("h100-sxm").model_copy(update={"peak_flop_per_s": {"fp8": 1.9e15}})
    with pytest.raises(RidgeplanError, match="^peak_flop_per_s: "):
        deployment("llama-3.1-8b", dev, weights="fp8", kv="fp8", activations="fp8").step(1, 1, 0)


@pytest.mark.parametrize("make", [
    lambda: __import__("model.serving.speculation_offload", fromlist=["x"]).Speculation(None, 4),
    lambda: __import__("model.serving.speculation_offload", fromlist=["x"]).Offload("kv", fraction=None),
    lambda: __import__("model.serving.speculation_offload", fromlist=["x"]).Offload(["kv"]),
])
def test_techniques_reject_wrong_types(make):
    with pytest.raises(RidgeplanError):
        make()


@pytest.mark.parametrize("kw", [{"gpus_per_instance": ("a",)}, {"gpus_per_instance": (0,)},
                                {"pipeline_depths": (float("nan"),)}, {"max_buckets": 1e12},
                                {"max_accuracy_risk": "3"}, {"engine": None}, {"slices_per_bucket": 2.5}])
def test_plan_request_rejects_what_crashed_the_planner(kw):
    from model.planner import GpuOption, PlanRequest, Traffic

    with pytest.raises(RidgeplanError):
        PlanRequest((Traffic("llama-3.1-8b", 2.0, Lengths.fixed(128, 16)),), SLO(1.0, 0.1),
                    (GpuOption("h100-sxm"),), **kw)


@pytest.mark.parametrize("text, message", [(b"input_len,output_len\n10,abc\n", "must hold numbers"),
                                           (b"\xff\xfe\xe9t\xe9", "is not UTF-8"), (b"", "not a readable CSV")])
def test_trace_csv_errors_are_one_line(tmp_path, text, message):
    path = tmp_path / "trace.csv"
    path.write_bytes(text)
    with pytest.raises(RidgeplanError, match=message) as err:
        Lengths.from_csv(path)
    assert "\n" not in err.value.one_line()


def test_cli_unexpected_error_is_one_line_not_a_traceback(monkeypatch, capsys):
    """The handler caught cx.Abort, which the installed typer does not have, so every unexpected error crashed
    inside the handler itself."""
    from model.cli import main
    from model.serving import deployment as dep_module

    def boom(*a, **k):
        raise ZeroDivisionError("simulated bug")

    monkeypatch.setattr(dep_module.Deployment, "step", boom)
    assert main(["step", "--json"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("internal error: ZeroDivisionError: simulated bug") and len(err.strip().splitlines()) == 1


def test_cli_closed_pipe_is_quiet():
    """`ridgeplan ... | head -1` crashed with a traceback once the reader closed the pipe."""
    code = ("import sys; from model.cli import main; sys.argv = ['ridgeplan', 'models', 'list', '--json']; "
            "raise SystemExit(main())")
    proc = subprocess.run(f"{sys.executable} -c \"{code}\" | head -c 10", shell=True, cwd=ROOT, capture_output=True,
                          text=True, env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"}, timeout=120, check=False)
    assert "Traceback" not in proc.stderr and "Error" not in proc.stderr, proc.stderr


@pytest.mark.parametrize("request_", [None, "llama-3.1-8b", {"traffic": []}])
def test_plan_rejects_what_is_not_a_request(request_):
    from model.planner import plan

    with pytest.raises(RidgeplanError, match="^request: "):
        plan(request_)
