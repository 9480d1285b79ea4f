"""Research systems as runnable scenarios, and their headline claims as checks.

A scenario states a model, hardware, layout, policy and technique switches (and the baseline it compares
against), computes its numbers with the library, and carries the catalogue checks it reproduces:
- tier A: exact arithmetic (equality within rounding, 1% unless the check says otherwise);
- tier B: a roofline number inside the stated band, with the inputs and assumptions written in the check;
- tier C: a direction or a ranking.
A check that the planner cannot reproduce yet is registered with `known_gap` (why): the test suite expects it to
fail, so the day it passes the gap must be removed.
"""

from __future__ import annotations

import tomllib
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import lru_cache
from importlib import resources
from typing import Any

from model.errors import RidgeplanError, UnknownNameError


@dataclass(frozen=True)
class CheckOutcome:
    passed: bool
    value: Any  # what the planner computed
    expected: str  # the claim's number or band, in words
    note: str = ""


@dataclass(frozen=True)
class Check:
    id: str  # catalogue id, e.g. SEED-A19
    tier: str
    claim: str
    evaluate: Callable[[dict[str, Any]], CheckOutcome]
    known_gap: str = ""


@dataclass(frozen=True)
class Scenario:
    id: str
    systems: tuple[str, ...]  # catalogue system names (as in catalog.toml) this scenario expresses
    section: int
    summary: str  # model, hardware, layout, policy, switches and the baseline, in one paragraph
    compute: Callable[[], dict[str, Any]]
    checks: tuple[Check, ...] = field(default=())

    def run(self) -> dict[str, Any]:
        return _run_cached(self.id)

    def report(self) -> dict[str, Any]:
        """Everything a view shows: the set-up, the computed numbers and each check with its outcome."""
        checks = [{"id": c.id, "tier": c.tier, "claim": c.claim, "passed": o.passed,
                   "status": "reproduced" if o.passed else ("known gap" if c.known_gap else "FAILED"),
                   "value": o.value, "expected": o.expected, "note": c.known_gap or o.note}
                  for c, o in self.evaluate()]
        return {"id": self.id, "section": self.section, "summary": self.summary, "systems": list(self.systems),
                "result": self.run(), "checks": checks}

    def evaluate(self) -> list[tuple[Check, CheckOutcome]]:
        result = self.run()
        out = []
        for c in self.checks:
            try:
                outcome = c.evaluate(result)
            except RidgeplanError as err:
                outcome = CheckOutcome(False, None, "", f"error: {err.one_line()}")
            out.append((c, outcome))
        return out


SCENARIOS: dict[str, Scenario] = {}


def scenario(id: str, systems: tuple[str, ...] | list[str], section: int, summary: str,
             checks: list[Check] | None = None) -> Callable[[Callable[[], dict[str, Any]]], Callable[[], dict[str, Any]]]:
    """Register the decorated function as the computation of a scenario."""
    def wrap(fn: Callable[[], dict[str, Any]]) -> Callable[[], dict[str, Any]]:
        if id in SCENARIOS:
            raise RidgeplanError("scenario", f"duplicate scenario id {id!r}")
        SCENARIOS[id] = Scenario(id, tuple(systems), section, summary, fn, tuple(checks or ()))
        return fn
    return wrap


def check(id: str, tier: str, claim: str, known_gap: str = "") -> Callable[[Callable[[dict], CheckOutcome]], Check]:
    """Make a Check from a function of the scenario's result."""
    if tier not in ("A", "B", "C"):
        raise RidgeplanError("tier", f"unknown tier {tier!r}", ["A", "B", "C"])

    def wrap(fn: Callable[[dict], CheckOutcome]) -> Check:
        return Check(id, tier, claim, fn, known_gap)
    return wrap


def pick(result: dict[str, Any], *keys: str) -> dict[str, Any]:
    """The named entries of a scenario's result: what a check reports as the planner's value."""
    return {k: result[k] for k in keys}


def close(value: float, expected: float, rel: float = 0.01) -> bool:
    """Tier-A equality within rounding."""
    return abs(value - expected) <= rel * abs(expected)


def within(value: float, lo: float, hi: float) -> bool:
    return lo <= value <= hi


@lru_cache(maxsize=None)
def _run_cached(ident: str) -> dict[str, Any]:
    return SCENARIOS[ident].compute()


def load_all() -> dict[str, Scenario]:
    """Import every scenario module (they register themselves)."""
    from model.scenarios import library  # noqa: F401

    return SCENARIOS


def get_scenario(ident: str) -> Scenario:
    scenarios = load_all()
    if ident not in scenarios:
        import difflib

        close_ids = difflib.get_close_matches(ident, list(scenarios), n=3)
        raise UnknownNameError("scenario", f"unknown scenario {ident!r}", "run `ridgeplan scenario list`",
                               f"Did you mean {', '.join(close_ids)}?" if close_ids else "")
    return scenarios[ident]


@lru_cache(maxsize=1)
def catalog() -> dict[str, list[dict[str, Any]]]:
    with (resources.files("model.scenarios") / "catalog.toml").open("rb") as fh:
        return tomllib.load(fh)
