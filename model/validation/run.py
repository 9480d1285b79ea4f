"""Predict every reference case and report the error per case, per group and overall (median |error|).

Error is predicted / measured - 1 on the reported metric (a rate: FLOP/s, bytes/s or tokens/s; or a
latency for TTFT cases), so +10% means the model is 10% optimistic for rates.
"""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass
from importlib import resources

import numpy as np
import pandas as pd

from model.errors import RidgeplanError
from model.hardware.db import load_device
from model.roofline.efficiency_sets import efficiency_for
from model.roofline.kernels import achieved, predict_kernels

GROUPS = ("kernels", "serving")


def _cases(name: str) -> list[dict]:
    with (resources.files("model.validation") / f"{name}.toml").open("rb") as fh:
        return tomllib.load(fh)["case"]


SAMPLES = ("in-sample", "held-out")


def kernel_sample(case: dict, eff_source: str) -> str:
    """in-sample when the efficiency used was set from this case (hand-set class defaults whose sources include
    it: docs/efficiency_sources.md) or fitted on it; held-out otherwise. The calibration files are fitted to the
    aiconfigurator-core tables only, so every case here is held-out for a calibrated device."""
    calibrated = re.search(r"calibration \S+\.toml", eff_source) is not None
    fitted_on = case.get("fitted_on", False)  # a case taken from the tables the calibration was fitted to
    if fitted_on and calibrated:
        return "in-sample"
    return "held-out" if calibrated or not case.get("defaults_source", True) else "in-sample"


def kernel_report(calibration: bool | None = None) -> pd.DataFrame:
    rows = []
    for case in _cases("kernels"):
        device = load_device(case["device"])
        table = pd.DataFrame([case])
        eff = efficiency_for(device, calibration, engine="vllm")  # the default engine of the faces
        seconds = predict_kernels(table, device, eff)
        rate = float(achieved(table, seconds)[case["metric"]].iloc[0])
        rows.append({"group": "kernels", "subgroup": case["kernel"], "case": case["id"], "device": case["device"],
                     "metric": case["metric"], "predicted": rate, "measured": case["measured"],
                     "source": case["source"], "sample": kernel_sample(case, eff.source)})
    return pd.DataFrame(rows)


@dataclass(frozen=True)
class ValidationReport:
    cases: pd.DataFrame  # one row per case with predicted, measured, error

    def included(self) -> pd.DataFrame:
        """Cases that count in the error statistics (excluded ones and extra layouts are still listed, with the
        reason or the label)."""
        return self.cases[(self.cases["excluded"] == "") & (self.cases["extra_layout"] == "")
                          & self.cases["error"].notna()]

    def summary(self) -> pd.DataFrame:
        ok = self.included()
        grouped = ok.groupby(["group", "subgroup", "sample"])["error"]
        out = grouped.agg(cases="count", median_abs_error=lambda e: float(np.median(np.abs(e))),
                          mean_error=lambda e: float(np.mean(e))).reset_index()
        return out

    def median_abs_error(self, group: str | None = None, sample: str | None = None) -> float:
        ok = self.included()
        if group:
            ok = ok[ok["group"] == group]
        if sample:
            ok = ok[ok["sample"] == sample]
        return float(np.median(np.abs(ok["error"]))) if len(ok) else float("nan")


def validate(groups: tuple[str, ...] = GROUPS, calibration: bool | None = None) -> ValidationReport:
    frames = []
    for g in groups:
        if g not in GROUPS:
            raise RidgeplanError("group", f"unknown validation group {g!r}", GROUPS)
        if g == "kernels":
            frames.append(kernel_report(calibration))
        else:
            from model.validation.serving import serving_report

            frames.append(serving_report(calibration))
    cases = pd.concat(frames, ignore_index=True)
    for col in ("excluded", "extra_layout", "assumed_input_range"):
        cases[col] = cases[col].fillna("") if col in cases else ""
    if "sample" not in cases:
        cases["sample"] = "held-out"
    cases["sample"] = cases["sample"].fillna("held-out")  # serving cases: nothing is fitted to them
    cases["error"] = cases["predicted"] / cases["measured"] - 1
    for end in ("lo", "hi"):  # the error at either end of an assumed input length (NaN where none is assumed)
        col = f"predicted_at_input_{end}"
        cases[f"error_at_input_{end}"] = (cases[col] / cases["measured"] - 1) if col in cases else float("nan")
    return ValidationReport(cases)
