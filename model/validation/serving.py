"""Serving-level validation: the TensorRT-LLM throughput tables, MLPerf and the LLaMA-7B A100 table."""

from __future__ import annotations

import tomllib
from importlib import resources

import pandas as pd

from model.api import deployment
from model.serving.batching import steady_state
from model.serving.policy import engine_policy
from model.serving.static import static_batch


def _cases() -> list[dict]:
    with (resources.files("model.validation") / "serving.toml").open("rb") as fh:
        return tomllib.load(fh)["case"]


def predict_case(case: dict, calibration: bool | None = None, input_len: int | None = None) -> float:
    """The model's number for one reference case, in the case's own metric (at another mean input length if
    given: the sensitivity of a case whose input length is assumed)."""
    case = {**case, "input_len": input_len} if input_len is not None else case
    d = deployment(case["model"], case["gpu"], weights=case["weights"], kv=case["kv"], tp=case.get("tp", 1),
                   ep=case.get("ep", 1), dp=case.get("dp", 1), attention_dp=case.get("attention_dp"),
                   calibration=calibration, engine=case.get("engine", "vllm"))
    if case["kind"] == "max_throughput":
        state = steady_state(d, engine_policy(case["engine"]), case["input_len"], case["output_len"])
        return float(state.output_tokens_per_s[0]) * d.layout.batch_ranks
    est = static_batch(d, case["batch"], case["input_len"], max(case["output_len"], 2))
    if case["kind"] == "ttft":
        return float(est.ttft_s)
    if case["kind"] == "tpot":
        return float(est.tpot_s)
    return float(est.throughput_per_gpu_tokens_per_s)


def serving_report(calibration: bool | None = None) -> pd.DataFrame:
    rows = []
    for case in _cases():
        lo, hi = case.get("assumed_input_range", (None, None))
        sensitivity = ({"predicted_at_input_lo": predict_case(case, calibration, lo),
                        "predicted_at_input_hi": predict_case(case, calibration, hi),
                        "assumed_input_range": f"{lo}-{hi}"} if lo is not None else {})
        rows.append({"group": "serving", "subgroup": case["group"], "case": case["id"], "device": case["gpu"],
                     "metric": {"max_throughput": "output_tokens_per_s", "static": "output_tokens_per_s_per_gpu",
                                "ttft": "ttft_s", "tpot": "tpot_s"}[case["kind"]],
                     "predicted": predict_case(case, calibration), "measured": case["measured"],
                     "source": case["source"], "assumptions": case.get("assumptions", ""),
                     "excluded": case.get("excluded", ""), "extra_layout": case.get("extra_layout", ""),
                     **sensitivity})
    return pd.DataFrame(rows)
