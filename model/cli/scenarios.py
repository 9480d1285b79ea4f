"""`ridgeplan scenario list|run` and `ridgeplan coverage`."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer
from rich.table import Table

from model.cli import app
from model import format as fmt
from model.cli.output import console, print_json

scenario_app = typer.Typer(help="Research systems as runnable scenarios.", no_args_is_help=True)
app.add_typer(scenario_app, name="scenario")


@scenario_app.command("list")
def scenario_list(json: bool = typer.Option(False, "--json")) -> None:
    """Every scenario with the systems it expresses and its checks."""
    from model.scenarios import load_all

    scen = load_all()
    if json:
        print_json({"scenarios": [{"id": s.id, "section": s.section, "systems": list(s.systems),
                                   "checks": [c.id for c in s.checks], "summary": s.summary} for s in scen.values()]})
        return
    table = Table(title=f"{len(scen)} scenarios")
    for col in ("id", "section", "systems", "checks"):
        table.add_column(col)
    for s in sorted(scen.values(), key=lambda s: (s.section, s.id)):
        table.add_row(s.id, str(s.section), "; ".join(s.systems), ", ".join(c.id for c in s.checks))
    console.print(table)


@scenario_app.command("run")
def scenario_run(name: str = typer.Argument(..., help="scenario id"), json: bool = typer.Option(False, "--json")) -> None:
    """Run one scenario: its numbers and each catalogue check against them."""
    from model.scenarios import get_scenario

    s = get_scenario(name)
    rep = s.report()
    result, checks = rep["result"], rep["checks"]
    if json:
        print_json(rep)
        return
    console.print(f"[bold]{s.id}[/bold] (section {s.section}): {s.summary}")
    table = Table(title="result", title_justify="left")
    table.add_column("quantity")
    table.add_column("value")
    for k, v in result.items():  # the unit each key names; dicts and lists as 'key: value' lists
        table.add_row(str(k), fmt.by_key(str(k), v))
    console.print(table)
    ct = Table(title="checks")
    for col in ("id", "tier", "passed", "planner", "expected", "note"):
        ct.add_column(col)
    for c in checks:
        ct.add_row(c["id"], c["tier"], "yes" if c["passed"] else "NO", fmt.by_key(c["id"], c["value"]), c["expected"],
                   c["note"])
    console.print(ct)


@app.command("coverage")
def coverage_command(write: Optional[Path] = typer.Option(None, "--write", help="write the markdown report here"),
                     json: bool = typer.Option(False, "--json")) -> None:
    """Systems expressed / total, claims reproduced per tier, and why each of the rest is not."""
    from model.scenarios.coverage import coverage, markdown

    cov = coverage()
    if write:
        write.write_text(markdown(cov))
    if json:
        print_json({"systems": cov.systems.to_dict(orient="records"), "checks": cov.checks.to_dict(orient="records"),
                    "tiers": cov.tier_summary().to_dict(orient="records")})
        return
    done, total = cov.systems_expressed()
    console.print(f"systems expressed: {done} / {total}")
    for _, r in cov.tier_summary().iterrows():
        console.print(f"tier {r['tier']}: {r['reproduced']} / {r['checks']} reproduced ({r['share']:.0%}; target {r['target']:.0%})")
    for _, r in cov.checks[cov.checks["status"] != "reproduced"].iterrows():
        console.print(f"  {r['id']} ({r['status']}): {r['note'] or r['expected']}")
