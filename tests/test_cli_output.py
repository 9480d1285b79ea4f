"""What a person reads from the CLI: every value through model.format (no dict reprs, no 17-digit floats, no
None), and what a program reads: raw numbers with a `schema_version` in every --json document."""

from __future__ import annotations

import json
import re

import pytest

from model.cli import main
from model.format import SCHEMA_VERSION

HUMAN = [
    ["estimate", "--disagg", "1:1", "--rate", "2"],
    ["estimate", "--model", "llama-3.1-8b", "--gpu", "h100-sxm"],
    ["estimate", "--batch", "4"],
    ["models", "show", "deepseek-v3"],
    ["hardware", "show", "h200"],
    ["scenario", "run", "hip-topk-attention"],
    ["step", "--batch", "8", "--context", "1024"],
]
JSON = [
    ["estimate", "--disagg", "1:1", "--rate", "2", "--json"],
    ["estimate", "--json"],
    ["estimate", "--batch", "4", "--json"],
    ["step", "--json"],
    ["models", "show", "deepseek-v3", "--json"],
    ["models", "list", "--json"],
    ["hardware", "show", "h200", "--json"],
    ["scenario", "run", "hip-topk-attention", "--json"],
]
LONG_FLOAT = re.compile(r"\d\.\d{6,}")  # 0.027000521590359417, 47.26900731569021
DICT_REPR = re.compile(r"\{'[^']+': ")


def _run(args, capsys) -> str:
    code = main(args)
    out = capsys.readouterr()
    assert code == 0, out.err
    return out.out


@pytest.mark.parametrize("args", HUMAN, ids=" ".join)
def test_tables_are_formatted(args, capsys):
    out = _run(args, capsys)
    assert not DICT_REPR.search(out), out
    assert not LONG_FLOAT.search(out), LONG_FLOAT.search(out).group(0)
    assert "None" not in out
    assert not re.search(r"\d{7,}\.0\b", out), "a large float printed raw (116829156672.0)"


def test_models_show_counts_parameters_readably(capsys):
    out = _run(["models", "show", "deepseek-v3"], capsys)
    assert "671,026,419,200" in out and "671026419200.0" not in out  # 671.0 B with every digit separated


def test_disagg_says_why_goodput_is_missing(capsys):
    out = _run(["estimate", "--disagg", "1:1", "--rate", "2"], capsys)
    assert "--ttft-ms" in out and "req/s" in out and " ms" in out


@pytest.mark.parametrize("args", JSON, ids=" ".join)
def test_json_carries_schema_version_and_raw_numbers(args, capsys):
    data = json.loads(_run(args, capsys))
    assert next(iter(data)) == "schema_version" and data["schema_version"] == SCHEMA_VERSION
    text = json.dumps(data)
    assert " ms\"" not in text and "tok/s\"" not in text  # raw numbers: units live in the keys


def test_memory_is_named_marketed_and_runtime(capsys):
    out = _run(["hardware", "show", "h100-sxm"], capsys)
    assert "marketed 80 GB; runtime total 85.5 GB = 79.6 GiB (fits use this)" in out
    est = _run(["estimate", "--gpu", "h100-sxm"], capsys)
    assert "usable memory = 90% of the runtime-reported total, 85.5 GB = 79.6 GiB (marketed 80 GB)" in est
