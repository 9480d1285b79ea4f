"""Calibration: the kernel collector (on CPU, tiny sizes), the fitter on synthetic data with known parameters,
the CLI loop (collect -> fit -> automatic pickup) and its error paths."""

from __future__ import annotations

import json
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from model.api import deployment
from model.cli import main
from model.errors import RidgeplanError
from model.hardware import load_device
from model.roofline import efficiency_sets as efficiency_module
from model.calibration.fit import fit_efficiency, load_measurements, predictor
from model.calibration.collect import (Case, build_kernel, collect, design, estimate_seconds, plan_table,
                                    read_provenance)
from model.roofline.efficiency_sets import efficiency_for

torch = pytest.importorskip("torch")
H100 = load_device("h100-sxm")
# The CI runner's 2 cores, with nominal peaks (the 96-core socket entries would put every efficiency far below
# the fit's bounds). The fit only needs the right orders of magnitude; the test does not rely on them.
CPU_FIXTURE = """schema_version = 1
id = "ci-host-2core"
name = "2 cores of the test runner"
vendor = "test"
kind = "cpu"
arch = "x86-zen4"
[peak_flop_per_s]
fp32 = 153.6e9
bf16 = 307.2e9
[memory]
capacity_bytes = 16e9
bandwidth_bytes_per_s = 50e9
[sources]
peak_flop_per_s = "nominal: 2 cores x 2.4 GHz x {32, 64} FLOP/cycle"
memory = "nominal: about 25 GB/s of streaming per core"
"""
# known parameters the synthetic measurements are generated from (all away from the hopper defaults)
TRUE = replace(efficiency_for(H100, calibration=False), gemm_max_16=0.68, gemm_max_8=0.60, gemm_m_half=60.0,
               gemm_n_half=300.0, attention_max=0.55, mem_max=0.78, mem_bytes_half=2e6,
               kernel_floor_s=4.5e-6, step_overhead_s=2e-4)


def run(capsys, *args):
    code = main([str(a) for a in args])
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture(scope="module")
def cpu_device(tmp_path_factory):
    path = tmp_path_factory.mktemp("dev") / "ci-host-2core.toml"
    path.write_text(CPU_FIXTURE)
    return path


@pytest.fixture(scope="module")
def cpu_csv(tmp_path_factory):
    out = tmp_path_factory.mktemp("collect") / "cpu.csv"
    report = collect(out, platform="cpu", quick=True, progress=False)
    assert report["rows"] > 20
    return out


def synthetic(noise: float, seed: int = 1) -> pd.DataFrame:
    """The full GPU design with times predicted from TRUE, times lognormal noise."""
    table = plan_table(design("cuda", quick=False))
    clean = predictor(table, H100)(TRUE)
    return table.assign(measured_s=clean * np.exp(np.random.default_rng(seed).normal(0.0, noise, len(table))))


# --- the collector on CPU ---------------------------------------------------------------------------------

def test_cpu_collector_writes_a_table_the_fitter_accepts(cpu_csv, cpu_device):
    table = load_measurements(cpu_csv)
    assert set(table["kernel"]) == {"gemm", "attention", "decode_attention", "copy", "elementwise", "step"}
    assert (table["platform"] == "cpu").all() and (table["measured_s"] > 0).all()
    assert (table["min_s"] <= table["measured_s"]).all() and (table["measured_s"] <= table["p90_s"]).all()
    steps = table[table["kernel"] == "step"]
    assert steps["model"].map(lambda p: Path(p) == cpu_csv.parent / "step-model.json").all()  # found beside it
    meta = read_provenance(cpu_csv)
    assert meta["platform"] == "cpu" and meta["torch"] == torch.__version__ and "median" in meta["timing"]
    sidecar = json.loads(cpu_csv.with_suffix(".csv.json").read_text())
    assert sidecar["rows"] == len(table) and sidecar["step_config"]["model_type"] == "llama"
    assert any("rms_norm" in n for n in sidecar["notes"])  # skipped on CPU, and said so

    result = fit_efficiency(table, load_device(cpu_device), holdout=0.25)
    fit = result.rows[result.rows["split"] == "fit"]
    before, after = (float(np.sum(np.log(fit[c] / fit["measured_s"]) ** 2)) for c in ("before", "after"))
    assert after < before
    assert (result.rows["split"] == "held-out").sum() > 0 and np.isfinite(result.held_out_error())
    assert not set(result.unconstrained) & set(result.params)  # a parameter is fitted or reported idle, not both


def test_gpu_design_covers_the_issue_and_quick_fits_two_minutes_on_h100():
    full, quick = design("cuda", quick=False), design("cuda", quick=True)
    table = plan_table(full)
    gemm = table[table["kernel"] == "gemm"]
    assert gemm["m"].min() == 1 and gemm["m"].max() == 8192 and set(gemm["dtype"]) == {"bf16", "fp8"}
    assert (gemm.loc[gemm["dtype"] == "fp8", "m"] % 16 == 0).all()
    copies = table.loc[table["kernel"] == "copy", "bytes"]
    assert copies.min() == 1024 and copies.max() == 2**30
    decode = table[table["kernel"] == "decode_attention"]
    assert decode["batch"].nunique() > 2 and decode["context"].nunique() > 2 and decode["heads"].nunique() > 1
    assert "fp8" not in set(plan_table(design("cuda", quick=True, fp8=False))["dtype"])
    est_quick, est_full = estimate_seconds(quick, H100), estimate_seconds(full, H100)
    assert est_quick["total_s"] < 120 and est_quick["runs"] > len(quick.cases)
    assert est_full["kernel_s"] > est_quick["kernel_s"]


def test_fp8_gemm_and_sdpa_backend_guard_run_on_cpu():
    from model.calibration.collect import _attention_backends

    out = build_kernel(torch, Case("gemm", "fp8", "scaled_mm", {"m": 16, "n": 32, "k": 64}), "cpu")()
    assert out.shape == (16, 32) and out.dtype == torch.bfloat16 and torch.isfinite(out.float()).all()
    case = Case("decode_attention", "bf16", "sdpa", dict(batch=2, heads=8, kv_heads=2, head_dim=16, context=32))
    with _attention_backends(torch, "cuda"):  # the backend list the GPU run uses exists in this torch
        assert build_kernel(torch, case, "cpu")().shape == (2, 2, 4, 16)


def test_step_stack_matches_the_expanded_gqa_reference():
    from model.calibration.collect import _TINY_LLAMA
    from model.calibration.collect_step import LlamaStep, llama_shape

    stack = LlamaStep(torch, _TINY_LLAMA, batch=3, context=16, device="cpu", dtype=torch.float32)
    tokens = stack.step()
    assert tokens.shape == (3,) and int(tokens.max()) < _TINY_LLAMA["vocab_size"]
    layer, s = stack.layers[0], llama_shape(_TINY_LLAMA)
    # packed decode attention (query heads of a KV head as rows) equals attention with K/V expanded per head
    q = torch.randn(3, s["heads"], s["head_dim"])
    packed = stack.attention(q, layer)
    g = s["heads"] // s["kv_heads"]
    expanded = torch.nn.functional.scaled_dot_product_attention(
        q[:, :, None], layer["k_cache"].repeat_interleave(g, 1), layer["v_cache"].repeat_interleave(g, 1))
    assert torch.allclose(packed, expanded.reshape(3, -1), atol=1e-5)
    with pytest.raises(RidgeplanError):
        llama_shape({**_TINY_LLAMA, "model_type": "mixtral"})


# --- the fitter on synthetic data -------------------------------------------------------------------------

def test_fit_recovers_known_parameters_exactly_without_noise():
    result = fit_efficiency(synthetic(noise=0.0), H100, holdout=0.2)
    for name, value in result.params.items():
        # attention_kv_half and gemm_k_s are 0 (no such term) in TRUE: recovered as a length far below one key and a
        # k loop far below a nanosecond for the deepest GEMM
        tolerance = {"attention_kv_half": dict(abs=1e-2), "gemm_k_s": dict(abs=1e-14)}.get(name, {})
        assert value == pytest.approx(getattr(TRUE, name), rel=1e-3, **tolerance), name
    assert result.held_out_error() < 1e-6
    # the design's attention rows have long query blocks, so attention_q_half (the small-query fall-off) is not
    # informed, nor is vector_max (element-wise rows are memory-bound): both stay at their defaults
    # nor is gemm_k_s (the design's GEMMs are far longer than a 10 ps-per-k loop from zero would move), nor the k
    # split of that loop (no loop, nothing to cap), nor the long-GEMM fall (none in TRUE: from 0 neither its drop nor
    # its size scale moves a prediction)
    assert set(result.unconstrained) == {"gemm_k_s", "gemm_k_split", "attention_q_half", "vector_max",
                                         "gemm_sustain_drop", "gemm_sustain_s"}
    assert result.after.vector_max == TRUE.vector_max and result.after.gemm_k_s == 0


def test_fit_recovers_known_parameters_with_noise_and_an_honest_held_out_error():
    result = fit_efficiency(synthetic(noise=0.03), H100, holdout=0.2)
    p = result.params
    for name in ("gemm_max_16", "gemm_max_8", "attention_max", "mem_max"):
        assert p[name] == pytest.approx(getattr(TRUE, name), rel=0.03), name
    for name, tol in (("gemm_m_half", 0.2), ("gemm_n_half", 0.2), ("kernel_floor_s", 0.15)):
        assert p[name] == pytest.approx(getattr(TRUE, name), rel=tol), name
    held = result.rows[result.rows["split"] == "held-out"]
    assert len(held) > 20
    assert result.held_out_error() < 0.03  # about the noise level, on rows the fit never saw
    assert float(np.median(np.abs(held["before"] / held["measured_s"] - 1))) > 5 * result.held_out_error()


# --- the CLI loop ---------------------------------------------------------------------------------------

def test_cli_collect_cpu_then_fit_writes_a_toml_efficiency_for_loads(tmp_path, capsys, cpu_device):
    csv = tmp_path / "m.csv"
    code, out, _ = run(capsys, "calibrate", "collect", "--out", csv, "--device", "cpu", "--quick", "--json")
    assert code == 0 and json.loads(out)["rows"] > 20 and (tmp_path / "step-model.json").is_file()
    toml = tmp_path / "fit.toml"
    code, out, _ = run(capsys, "calibrate", "fit", csv, "--device", cpu_device, "--out", toml, "--json")
    data = json.loads(out)
    assert code == 0 and data["picked_up_automatically"] is False and data["held_out_rows"] > 0
    assert {e["kernel"] for e in data["errors"]} >= {"gemm", "copy", "step"}
    eff = efficiency_for(load_device(cpu_device), toml)
    for name, value in data["params"].items():
        assert getattr(eff, name) == pytest.approx(value, rel=1e-5)
    assert "calibration fit.toml" in eff.source
    code, out, _ = run(capsys, "calibrate", "fit", csv, "--device", cpu_device, "--out", toml)
    assert code == 0 and "held-out median |error|" in out and "before" in out


def test_fitted_file_is_picked_up_and_named_in_estimate(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(efficiency_module, "calibration_path", lambda ident, engine=None: tmp_path / "calibration" / (
        f"{ident}.{engine}.toml" if engine else f"{ident}.toml"))
    csv = tmp_path / "h100.csv"
    synthetic(noise=0.02).assign(platform="cuda").to_csv(csv, index=False)
    code, out, _ = run(capsys, "calibrate", "fit", csv, "--device", "h100-sxm")
    assert code == 0 and "picked up automatically for h100-sxm" in out
    assert (tmp_path / "calibration" / "h100-sxm.toml").is_file()
    code, out, _ = run(capsys, "estimate", "--model", "llama-3.1-8b", "--gpu", "h100-sxm", "--json")
    data = json.loads(out)
    assert code == 0 and any("calibration h100-sxm.toml" in a for a in data["assumptions"])
    plain = deployment("llama-3.1-8b", "h100-sxm", calibration=False).step(batch=1, new_tokens=1, context=1024)
    fitted = deployment("llama-3.1-8b", "h100-sxm").step(batch=1, new_tokens=1, context=1024)
    assert float(fitted.time_s[0]) != pytest.approx(float(plain.time_s[0]), rel=1e-3)


# --- error paths: one line, exit 2 ------------------------------------------------------------------------

def _write(path, text):
    path.write_text(text)
    return path


@pytest.mark.parametrize("csv_text, field", [
    ("kernel,dtype,m,n,k\ngemm,bf16,1,2,3\ngemm,bf16,1,2,3\ngemm,bf16,1,2,3\n", "measured_s"),
    ("kernel,dtype,m,n,measured_s\ngemm,bf16,1,2,1e-5\ngemm,bf16,8,2,1e-5\ngemm,bf16,64,2,1e-5\n", "k"),
    ("kernel,dtype,bytes,measured_s\ncopy,bf16,1024,1e-5\ncopy,bf16,2048,-1e-5\ncopy,bf16,4096,1e-5\n", "measured_s"),
    ("kernel,dtype,bytes,measured_s\ncopy,bf16,1024,1e-5\nconv2d,bf16,2048,1e-5\ncopy,bf16,4096,1e-5\n", "kernel"),
    ("kernel,model,batch,new_tokens,measured_s\nstep,llama-3.2-1b,1,1,1e-3\nstep,llama-3.2-1b,8,1,1e-3\n"
     "step,llama-3.2-1b,32,1,1e-3\n", "context"),
    ("kernel,bytes,measured_s,platform\ncopy,1024,1e-5,cpu\ncopy,2048,1e-5,cpu\ncopy,4096,1e-5,cpu\n", "device"),
])
def test_fit_bad_tables_are_one_line_exit_2(tmp_path, capsys, csv_text, field):
    code, out, err = run(capsys, "calibrate", "fit", _write(tmp_path / "bad.csv", csv_text), "--device", "h100-sxm",
                         "--out", tmp_path / "x.toml")
    lines = [line for line in err.splitlines() if line.strip()]
    assert code == 2 and len(lines) == 1 and lines[0].startswith(f"error: {field}"), err
    assert "Traceback" not in out + err and not (tmp_path / "x.toml").exists()


@pytest.mark.parametrize("args, field", [
    (("calibrate", "fit", "{csv}", "--device", "h100-sxmm"), "device"),
    (("calibrate", "fit", "{csv}", "--device", "h100-sxm", "--holdout", "1.5"), "holdout"),
    (("calibrate", "fit", "{tmp}/missing.csv", "--device", "h100-sxm"), "csv"),
    (("calibrate", "fit", "{csv}", "--device", "h100-sxm", "--out", "{tmp}/no/such/dir/x.toml"), "out"),
    (("calibrate", "collect", "--out", "{tmp}/x.csv", "--device", "tpu"), "device"),
    (("calibrate", "collect", "--out", "{tmp}/no/such/dir/x.csv", "--device", "cpu"), "out"),
])
def test_calibrate_bad_arguments_are_one_line_exit_2(tmp_path, capsys, args, field):
    csv = tmp_path / "ok.csv"
    synthetic(noise=0.0).head(40).to_csv(csv, index=False)
    code, out, err = run(capsys, *(a.format(csv=csv, tmp=tmp_path) for a in args))
    lines = [line for line in err.splitlines() if line.strip()]
    assert code == 2 and len(lines) == 1 and lines[0].startswith(f"error: {field}"), err


def test_collect_without_a_gpu_says_so_and_exits_2(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    code, out, err = run(capsys, "calibrate", "collect", "--out", tmp_path / "x.csv")
    lines = [line for line in err.splitlines() if line.strip()]
    assert code == 2 and len(lines) == 1 and "no CUDA GPU" in lines[0] and "--device cpu" in lines[0]
    assert not (tmp_path / "x.csv").exists()


def test_collect_without_torch_names_the_extra(tmp_path, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "torch", None)  # makes `import torch` fail
    code, _, err = run(capsys, "calibrate", "collect", "--out", tmp_path / "x.csv", "--device", "cpu")
    assert code == 2 and err.startswith("error: torch:") and "ridgeplan[collect]" in err
