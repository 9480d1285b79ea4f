"""Validation case selection: one rule for assumed inputs, every reference case in its stated setup."""

from __future__ import annotations

import tomllib
from importlib import resources

import pytest

from model.validation import validate


def _cases() -> list[dict]:
    with (resources.files("model.validation") / "serving.toml").open("rb") as fh:
        return tomllib.load(fh)["case"]


@pytest.fixture(scope="module")
def report():
    return validate(("serving",))


def test_assumed_input_cases_are_included_with_a_sensitivity_range(report):
    """A case with an ASSUMED input is included and carries the range over which its error is shown: no case is
    excluded for an assumed length alone (the Mixtral rows were, while Llama-2-70B was included)."""
    for case in _cases():
        if "input" in case.get("assumptions", "") and "ASSUMED" in case["assumptions"] and not case.get("excluded"):
            assert len(case["assumed_input_range"]) == 2, case["id"]
        assert "assumed input" not in case.get("excluded", "").lower()
    rows = report.cases.set_index("case")
    for ident in ("mlperf-llama2-70b-99-offline", "mlperf-mixtral-8x7b-offline"):
        r = rows.loc[ident]
        assert r["excluded"] == "" and r["assumed_input_range"] == "100-1000"
        # a longer prompt costs more prefill per output token: the error range brackets the assumption's error
        assert r["error_at_input_hi"] < r["error"] < r["error_at_input_lo"]


def test_mlperf_llama2_output_as_stated():
    """REFERENCE.md: ~265 output tokens per sample for llama2-70b-99."""
    assert all(c["output_len"] == 265 for c in _cases() if c["id"].startswith("mlperf-llama2-70b"))


def test_qwen3_runs_the_stated_tp8_and_the_ep_layout_is_an_uncounted_extra_row(report):
    rows = report.cases.set_index("case")
    included = set(report.included()["case"])
    for gpu in ("h100-sxm", "h200"):
        stated = f"trtllm-qwen3-235b-a22b-{gpu}-tp8-1000-1000"
        extra = f"trtllm-qwen3-235b-a22b-{gpu}-ep8-1000-1000"
        assert stated in included and extra not in included
        assert rows.loc[extra, "extra_layout"].startswith("EP8 + attention-DP8")
    tp8 = next(c for c in _cases() if c["id"] == "trtllm-qwen3-235b-a22b-h100-sxm-tp8-1000-1000")
    assert tp8["tp"] == 8 and tp8.get("ep", 1) == 1 and tp8.get("dp", 1) == 1
