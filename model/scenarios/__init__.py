"""Research systems from the catalogue as runnable scenarios; their headline claims as checks."""

from model.scenarios.base import SCENARIOS, Check, CheckOutcome, Scenario, catalog, check, get_scenario, load_all, scenario

__all__ = ["SCENARIOS", "Check", "CheckOutcome", "Scenario", "catalog", "check", "get_scenario", "load_all", "scenario"]
