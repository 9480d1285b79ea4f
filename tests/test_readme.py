"""The README's examples run and show what their text says they show: every ```python block runs, and every
`ridgeplan ...` line of its ```bash blocks (except those that need a GPU, a file the reader makes first, or write
into the repository) runs with exit status 0 AND, through its --json form, has the property the README states
(it fits, it reports goodput, speculation lowers TPOT, offload makes a non-fitting deployment fit, ...)."""

from __future__ import annotations

import json
import re
import shlex
from collections.abc import Callable
from pathlib import Path

import pytest

from model.cli import main

README = (Path(__file__).resolve().parents[1] / "README.md").read_text()
NEEDS_MORE = ("calibrate", "bench", "--write")  # a GPU / a CSV from `collect`; timing runs; writes docs/


def _python_blocks() -> list[str]:
    return re.findall(r"```python\n(.*?)```", README, re.S)


def _commands() -> list[str]:
    out = []
    for block in re.findall(r"```bash\n(.*?)```", README, re.S):
        text = block.replace("\\\n", " ")
        for line in text.splitlines():
            for part in line.split(" | "):  # `a | b` in the README shows two commands side by side
                cmd = part.split("#", 1)[0].strip()
                if cmd.startswith("ridgeplan ") and not any(word in cmd for word in NEEDS_MORE):
                    out.append(" ".join(cmd.split()))
    return out


def _run(args: list[str], capsys) -> str:
    code = main(args)
    out = capsys.readouterr()
    assert code == 0, out.err
    return out.out


def _json(args: list[str], capsys) -> dict:
    return json.loads(_run([*args, "--json"] if "--json" not in args else args, capsys))


def _without(args: list[str], *flags: str) -> list[str]:
    """`args` without each of `flags` and its value."""
    out, skip = [], False
    for a in args:
        if skip:
            skip = False
            continue
        if a in flags:
            skip = True
            continue
        out.append(a)
    return out


# what each README command is there to show, checked on its own --json output: (a piece of the command that
# identifies it, what the README's text claims, the check). Every README command must have one.
Claim = Callable[[list[str], object], None]


def _static_fits(args, capsys):
    x = _json(args, capsys)
    assert x["fits"] and x["ttft_s"] > 0 and x["tpot_s"] > 0  # 70B FP8 on 2 H100s: fits, with latencies


def _step_fits(args, capsys):
    x = _json(args, capsys)
    assert x["fits"] and x["step_time_s"] > 0 and len(x["operators"]) > 10  # a per-operator breakdown


def _hardware_list(args, capsys):
    if "show" in args:
        x = _json(args, capsys)  # H200: marketed 141 GB, runtime total 143,771 MiB (what fits use)
        assert x["memory"]["capacity_bytes"] == 141e9 and x["memory"]["runtime_total_bytes"] == 143771 * 2**20
    else:
        assert len(_json(args, capsys)["devices"]) >= 50


def _models(args, capsys):
    if "show" in args:
        x = _json(args, capsys)  # gpt-oss-120b: about 117 B parameters, MoE layers
        assert 110e9 < x["total_params"] < 125e9 and any(g["mlp"] == "moe" for g in x["groups"])
    else:
        assert len(_json(args, capsys)["models"]) >= 30


def _formula(args, capsys):
    out = _run(args, capsys)
    assert "\\" in out and "=" in out  # LaTeX with the value substituted


def _validate(args, capsys):
    x = _json(args, capsys)  # predicted vs measured, an error per case
    assert len(x["cases"]) > 50 and all("error" in c for c in x["cases"])


def _efficiency_named(args, capsys):
    x = _json(args, capsys)  # "Assumptions" names where the efficiencies come from (a calibration file once fit)
    assert any("efficiency" in a for a in x["assumptions"])


def _goodput(args, capsys):
    x = _json(args, capsys)
    assert x["fits"] and x["goodput_requests_per_s"] > 0  # requests/s meeting both targets


def _disagg(args, capsys):
    x = _json(args, capsys)
    assert x["sustainable"] and x["gpus"] == 8  # one prefill + one decode instance of TP 4 sustain 8 req/s
    assert x["prefill_pool"]["instances"] == 1 and x["decode_pool"]["instances"] == 1


def _speculation(args, capsys):
    spec = _json(args, capsys)
    plain = _json(_without(args, "--spec-alpha", "--spec-k"), capsys)
    assert spec["fits"] and spec["tpot_mean_s"] < plain["tpot_mean_s"]  # speculation lowers TPOT


def _offload(args, capsys):
    with_offload = _json(args, capsys)
    without = _json(_without(args, "--offload", "--offload-tier"), capsys)
    assert not without["fits"]  # offload is the point: without it one sequence's KV does not fit
    assert with_offload["fits"] and with_offload["tpot_mean_s"] > 0
    assert any("offload" in a for a in with_offload["assumptions"])


def _plan(args, capsys):
    x = _json(args, capsys)
    assert x["feasible"] and x["cost_per_hour_usd"] > 0 and x["pools"]
    if "--budget" in args:
        assert x["cost_per_hour_usd"] <= float(args[args.index("--budget") + 1]) + 1e-9
    if "--pareto" in args:
        assert x["pareto"]


def _scenario(args, capsys):
    if "list" in args:
        assert len(_json(args, capsys)["scenarios"]) > 100
    else:
        x = _json(args, capsys)  # DistServe's claim reproduced
        assert x["checks"] and all(c["passed"] for c in x["checks"])


def _coverage(args, capsys):
    x = _json(args, capsys)
    assert {t["tier"] for t in x["tiers"]} == {"A", "B", "C"}


def _train(args, capsys):
    x = _json(args, capsys)
    if "plan" in args:
        assert x["feasible"]
    else:
        assert x["fits"] and 0 < x["mfu"] < 1


def _simulated(args, capsys):
    x = _json(args, capsys)  # concurrency and rate loads are simulated by default; --steady-state keeps the model
    assert x["fits"] and x["latency_mode"] == ("steady_state" if "--steady-state" in args else "simulation")
    assert x["ttft_mean_s"] > 0 and x["tpot_mean_s"] > 0


def _moe_layout(args, capsys):
    x = _json(args, capsys)  # DeepSeek-V3 on 8 B200s: attention-DP 8 x MoE-EP 8 accepted by SGLang, MTP drafting
    assert x["fits"] and x["gpus"] == 8 and x["tpot_mean_s"] > 0
    assert any("MTP" in a for a in x["assumptions"])


CLAIMS: dict[str, Claim] = {
    "--attention-dp 8 --moe-ep 8": _moe_layout,
    "--concurrency 64 --input-len 2000 --output-len 500": _simulated,
    "--burstiness 0.5": _simulated,
    "estimate --model llama-3.1-70b --gpu h100-sxm --tp 2 --weights fp8 --kv fp8 --batch 16": _static_fits,
    "ridgeplan step": _step_fits,
    "ridgeplan estimate --gpu h100-sxm": _efficiency_named,
    "hardware": _hardware_list,
    "models": _models,
    "formula": _formula,
    "validate": _validate,
    "--ttft-ms 1000 --tpot-ms 50": _goodput,
    "--disagg 1:1": _disagg,
    "--spec-alpha": _speculation,
    "--offload kv": _offload,
    "ridgeplan plan": _plan,
    "scenario": _scenario,
    "coverage": _coverage,
    "ridgeplan train": _train,
}


def _claim(command: str) -> Claim:
    found = [check for key, check in CLAIMS.items() if key in command]
    assert found, f"README command without a stated property to check: {command}"
    return found[0]


def test_readme_has_examples():
    assert len(_python_blocks()) >= 4 and len(_commands()) >= 12


def test_every_command_has_a_claim():
    for command in _commands():
        _claim(command)


@pytest.mark.parametrize("code", _python_blocks(), ids=lambda c: c.splitlines()[0][:40])
def test_python_example_runs(code, capsys):
    exec(compile(code, "README.md", "exec"), {})


@pytest.mark.parametrize("command", _commands())
def test_cli_example_shows_what_the_readme_says(command, capsys):
    # the --json form carries the property (the human form of the same computation is checked for its
    # formatting in tests/test_cli_output.py)
    _claim(command)(shlex.split(command)[1:], capsys)
