"""The published accuracy risk of weight and KV formats, attached to results and used to filter plans."""

from __future__ import annotations

import tomllib
from functools import lru_cache
from importlib import resources

from model.precision import Precision


@lru_cache(maxsize=1)
def _table() -> dict:
    with (resources.files("model.serving") / "quality.toml").open("rb") as fh:
        return tomllib.load(fh)


def format_risk(kind: str, fmt: str) -> tuple[int, str, str]:
    """(risk 0-3, note, source) for a `kind` ('weights' or 'kv') and format; unknown formats are risk 3."""
    row = _table().get(kind, {}).get(fmt)
    if row is None:
        return 3, f"no published accuracy data for {kind} in {fmt}", "-"
    return int(row["risk"]), row["note"], row["source"]


def precision_risk(p: Precision) -> int:
    """The highest risk among a precision's weight, expert and KV formats."""
    return max(format_risk("weights", p.weights)[0], format_risk("weights", p.expert_weights)[0],
               format_risk("kv", p.kv)[0])


def accuracy_risk(p: Precision) -> list[str]:
    notes = []
    for kind, fmt in (("weights", p.weights), ("weights", p.expert_weights), ("kv", p.kv)):
        risk, note, source = format_risk(kind, fmt)
        text = f"accuracy risk of {kind} in {fmt}: {('none', 'low', 'medium', 'high')[risk]} ({note}; {source})"
        if text not in notes:
            notes.append(text)
    return notes
