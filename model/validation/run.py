"""Predict every reference case and report the error per case, per group and overall (median |error|).

Error is predicted / measured - 1 on the reported metric (a rate: FLOP/s, bytes/s or tokens/s; or a
latency for TTFT cases), so +10% means the model is 10% optimistic for rates.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from importlib import resources

import numpy as np
import pandas as pd

from model.errors import RidgeplanError
from model.hardware.db import load_device
from model.roofline.efficiency import efficiency_for
from model.roofline.kernels import achieved, predict_kernels

GROUPS = ("kernels", "serving")


def _cases(name: str) -> list[dict]:
    with (resources.files("model.validation") / f"{name}.toml").open("rb") as fh:
        return tomllib.load(fh)["case"]


def kernel_report(calibration: bool | None = None) -> pd.DataFrame:
    rows = []
    for case in _cases("kernels"):
        device = load_device(case["device"])
        table = pd.DataFrame([case])
        seconds = predict_kernels(table, device, efficiency_for(device, calibration))
        rate = float(achieved(table, seconds)[case["metric"]].iloc[0])
        rows.append({"group": "kernels", "subgroup": case["kernel"], "case": case["id"], "device": case["device"],
                     "metric": case["metric"], "predicted": rate, "measured": case["measured"],
                     "source": case["source"]})
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
        grouped = ok.groupby(["group", "subgroup"])["error"]
        out = grouped.agg(cases="count", median_abs_error=lambda e: float(np.median(np.abs(e))),
                          mean_error=lambda e: float(np.mean(e))).reset_index()
        return out

    def median_abs_error(self, group: str | None = None) -> float:
        ok = self.included()
        if group:
            ok = ok[ok["group"] == group]
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
    cases["error"] = cases["predicted"] / cases["measured"] - 1
    for end in ("lo", "hi"):  # the error at either end of an assumed input length (NaN where none is assumed)
        col = f"predicted_at_input_{end}"
        cases[f"error_at_input_{end}"] = (cases[col] / cases["measured"] - 1) if col in cases else float("nan")
    return ValidationReport(cases)
