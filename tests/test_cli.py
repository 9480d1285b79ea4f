"""The command line: JSON output with units in keys; every bad input is one line on stderr and exit 2."""

from __future__ import annotations

import json

import pytest

from model.cli import main


def run(capsys, *args):
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


def test_estimate_json_has_units_in_keys(capsys):
    code, out, _ = run(capsys, "estimate", "--model", "llama-3.1-8b", "--gpu", "h100-sxm", "--batch", "4",
                       "--input-len", "512", "--output-len", "64", "--json")  # static batch
    assert code == 0
    data = json.loads(out)
    assert data["fits"] is True
    for key in ("ttft_s", "tpot_s", "throughput_tokens_per_s", "e2e_latency_s"):
        assert data[key] > 0
    assert data["memory"]["weights_bytes"] == pytest.approx(8.03e9 * 2, rel=0.01)
    ops = {row["operator"] for row in data["prefill"]["operators"]}
    assert {"qkv_proj", "attention", "gate_up_proj", "lm_head"} <= ops
    assert data["assumptions"]


def test_estimate_out_of_memory_reports_shortfall_not_latency(capsys):
    code, out, _ = run(capsys, "estimate", "--model", "llama-3.1-70b", "--gpu", "h100-sxm", "--batch", "1", "--json")
    data = json.loads(out)
    assert code == 0 and data["fits"] is False
    assert "ttft_s" not in data and "tpot_s" not in data
    assert data["memory"]["headroom_bytes"] < 0
    code, out, _ = run(capsys, "estimate", "--model", "llama-3.1-70b", "--gpu", "h100-sxm", "--rate", "1", "--json")
    data = json.loads(out)
    assert code == 0 and data["fits"] is False and "ttft_mean_s" not in data
    # 141 GB of bf16 weights on an 80 GB card: short by more than 60 GB
    assert data["memory_per_gpu"]["shortfall_bytes"] > 60e9


def test_estimate_human_output(capsys):
    code, out, _ = run(capsys, "estimate", "--model", "llama-3.1-70b", "--gpu", "h100-sxm", "--tp", "2", "--weights", "fp8")
    assert code == 0
    assert "TTFT" in out and "TPOT" in out and "Assumptions" in out


def test_step_json(capsys):
    code, out, _ = run(capsys, "step", "--model", "mixtral-8x7b", "--gpu", "h200", "--batch", "8", "--new-tokens", "1",
                       "--context", "1000", "--json")
    data = json.loads(out)
    assert code == 0 and data["step_time_s"] > 0 and data["flops"] > 0


@pytest.mark.parametrize("args, field", [
    (("estimate", "--gpu", "h100-sxmm"), "gpu"),
    (("estimate", "--model", "nope"), "model"),
    (("estimate", "--batch", "-1"), "batch"),
    (("estimate", "--batch", "lots"), "--batch"),
    (("estimate", "--input-len", "0"), "input_len"),
    (("estimate", "--weights", "int9"), "weights"),
    (("estimate", "--gpu", "a100-sxm-80gb", "--activations", "fp8"), "activations"),
    (("estimate", "--gpu", "v100-sxm2-32gb", "--weights", "bf16"), "weights"),
    (("estimate", "--model", "llama-3.1-70b", "--tp", "3"), "tp"),
    (("estimate", "--model", "llama-3.1-8b", "--ep", "2"), "ep"),
    (("estimate", "--model", "mixtral-8x7b", "--ep", "3"), "ep"),
    (("estimate", "--no-such-flag"), "--no-such-flag"),
    (("step", "--context", "-5"), "context"),
    (("hardware", "show", "nope"), "gpu"),
    (("models", "show", "nope"), "model"),
])
def test_bad_input_is_one_line_exit_2(capsys, args, field):
    code, out, err = run(capsys, *args)
    assert code == 2
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1, err
    assert lines[0].startswith("error: ") and field in lines[0]
    assert "Traceback" not in err + out


def test_malformed_config_file(capsys, tmp_path):
    path = tmp_path / "config.json"
    path.write_text('{"model_type": "llama", "hidden_size": 64}')
    code, _, err = run(capsys, "estimate", "--model", str(path))
    assert code == 2 and "num_hidden_layers" in err or "is missing" in err


def test_hardware_and_models_listing(capsys):
    code, out, _ = run(capsys, "hardware", "list", "--json")
    data = json.loads(out)
    assert code == 0 and any(d["id"] == "h100-sxm" for d in data["devices"])
    code, out, _ = run(capsys, "models", "list", "--json")
    assert code == 0 and any(m["id"] == "deepseek-v3" for m in json.loads(out)["models"])
    code, out, _ = run(capsys, "hardware", "show", "h200")
    assert code == 0 and "source" in out
    code, out, _ = run(capsys, "models", "show", "gpt-oss-120b", "--json")
    assert code == 0 and json.loads(out)["layers"] == 36


def test_formula_command(capsys):
    code, out, _ = run(capsys, "formula", "--model", "llama-3.1-8b", "--operator", "attention", "--batch", "1",
                       "--new-tokens", "1", "--context", "100")
    assert code == 0 and "=" in out


def test_plan_json_and_infeasible_explanation(capsys):
    code, out, _ = run(capsys, "plan", "--model", "llama-3.1-8b", "--rate", "10", "--ttft-ms", "1000", "--tpot-ms", "50",
                       "--gpus", "h100-sxm,l40s", "--precisions", "fp8/fp8", "--json")
    data = json.loads(out)
    assert code == 0 and data["feasible"] and data["cost_per_hour_usd"] > 0
    assert all("vllm" in p["launch"] for p in data["pools"])
    code, out, _ = run(capsys, "plan", "--model", "llama-3.1-8b", "--rate", "10", "--ttft-ms", "1", "--tpot-ms", "50",
                       "--gpus", "h100-sxm", "--precisions", "fp8/fp8", "--json")
    data = json.loads(out)
    assert code == 0 and not data["feasible"] and data["explanation"].startswith("TTFT")


def test_plan_text_shows_the_prefill_decode_pairs_and_router(capsys):
    code, out, _ = run(capsys, "plan", "--model", "llama-3.1-8b", "--rate", "20", "--ttft-ms", "1000", "--tpot-ms", "10",
                       "--input-len", "4000", "--output-len", "300", "--lengths", "fixed", "--gpus", "h100-sxm",
                       "--precisions", "fp8/fp8", "--roles", "prefill,decode")
    assert code == 0 and "prefill -> decode pairs" in out and "KV transfer mean ms" in out
    assert "router sglang: python -m sglang_router.launch_router --pd-disaggregation" in out


@pytest.mark.parametrize("args, field", [
    (("plan", "--model", "llama-3.1-8b", "--rate", "1", "--rate", "2", "--tpot-ms", "50"), "rate"),
    (("plan", "--model", "llama-3.1-8b", "--rate", "1"), "slo"),
    (("plan", "--model", "llama-3.1-8b", "--rate", "1", "--tpot-ms", "50", "--gpus", "h100-sxm:cheap"), "gpus"),
    (("plan", "--model", "llama-3.1-8b", "--rate", "1", "--tpot-ms", "50", "--objective", "fast"), "objective"),
    # issue 16 finding 6: `--gpus h100-sxm:0` gave "14 GPUs, $0.00/h"
    (("plan", "--model", "llama-3.1-8b", "--rate", "1", "--tpot-ms", "50", "--gpus", "h100-sxm:0"), "usd_per_hour"),
    (("plan", "--model", "llama-2-7b", "--rate", "1", "--tpot-ms", "50", "--input-len", "8000", "--lengths", "fixed"),
     "input_len"),
])
def test_plan_bad_input(capsys, args, field):
    code, _, err = run(capsys, *args)
    assert code == 2 and err.startswith("error: ") and field in err
