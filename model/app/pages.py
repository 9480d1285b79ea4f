"""The page registry: the app shows one radio button per entry, in this order, and calls its `render`.

A page is a `render(ctx: Context) -> None` function in `model/app/views/`; it reads the sidebar scenario from
`ctx` (`ctx.deployment_key`, `ctx.workload_key`, `ctx.estimate()`), draws its own widgets (bind them to the URL
with `key=...` and `bind="query-params"`) and shows input errors with `ctx.report` / `ctx.call`. To add a page
(e.g. the ILP planner's "Plan"), write `model/app/views/plan.py` and add one `Page` line below.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from model.app.scenario import Context
from model.app.views import breakdown, compare, estimate, formulas, hardware, plan, roofline, scenarios


@dataclass(frozen=True)
class Page:
    title: str
    render: Callable[[Context], None]
    summary: str


PAGES: tuple[Page, ...] = (
    Page("Estimate", estimate.render, "fits or not, TTFT, TPOT, throughput per GPU and per user, cost"),
    Page("Roofline", roofline.render, "rooflines per dtype with ridge points; every operator of prefill and decode"),
    Page("Breakdown", breakdown.render, "step time by operator and by bound; sweeps vs batch and vs context"),
    Page("Compare", compare.render, "several GPUs or precisions side by side"),
    Page("Plan", plan.render, "the cheapest fleet for traffic within an SLO, its launch commands and cost frontier"),
    Page("Scenarios", scenarios.render, "research systems as runnable scenarios; their headline claims checked"),
    Page("Hardware", hardware.render, "the hardware database with sources; add or edit a device for the session"),
    Page("Formulas", formulas.render, "each operator's formula as LaTeX with the scenario's numbers"),
)


def page(title: str) -> Page:
    return next(p for p in PAGES if p.title == title)
