"""`ridgeplan validate` and `ridgeplan bench`."""

from __future__ import annotations

import subprocess
import sys

import typer
from rich.table import Table

from model.cli import app
from model.cli.output import console, print_json


@app.command()
def validate(group: list[str] = typer.Option(["kernels", "serving"], "--group", help="kernels and/or serving"),
             json: bool = typer.Option(False, "--json"),
             no_calibration: bool = typer.Option(False, "--no-calibration", help="ignore fitted calibration files")) -> None:
    """Predict every case of the public reference measurements and print the error per case and group."""
    from model.validation import validate as run

    report = run(tuple(group), calibration=False if no_calibration else None)
    if json:
        print_json({"cases": report.cases.to_dict(orient="records"),
                    "summary": report.summary().to_dict(orient="records"),
                    "median_abs_error": {g: report.median_abs_error(g) for g in group},
                    "median_abs_error_held_out": {g: report.median_abs_error(g, "held-out") for g in group}})
        return
    table = Table(title="validation: predicted vs measured (error = predicted / measured - 1)")
    for col in ("group", "case", "device", "metric", "predicted", "measured", "error", "sample"):
        table.add_column(col)
    for _, r in report.cases.iterrows():
        err = "-" if r["error"] != r["error"] else f"{r['error']:+.1%}"
        if r.get("excluded"):
            err += " (excluded)"
        table.add_row(r["subgroup"], r["case"], r["device"], r["metric"], f"{r['predicted']:.4g}",
                      f"{r['measured']:.4g}", err, r["sample"])
    console.print(table)
    summary = Table(title="per group")
    for col in ("group", "subgroup", "sample", "cases", "median |error|", "mean error"):
        summary.add_column(col)
    for _, r in report.summary().iterrows():
        summary.add_row(r["group"], r["subgroup"], r["sample"], str(r["cases"]), f"{r['median_abs_error']:.1%}",
                        f"{r['mean_error']:+.1%}")
    console.print(summary)
    for g in group:
        held = report.median_abs_error(g, "held-out")
        console.print(f"median |error| {g}: {report.median_abs_error(g):.1%}; held-out cases only: "
                      + ("none" if held != held else f"{held:.1%}"))
    for _, r in report.cases[report.cases["excluded"] != ""].iterrows():
        console.print(f"excluded {r['case']}: {r['excluded']}")


@app.command()
def bench(names: list[str] = typer.Argument(None, help="benchmarks to run (default: all)"),
          json: bool = typer.Option(False, "--json")) -> None:
    """Speed benchmarks on one core (a separate process with BLAS/OpenMP threads pinned to 1)."""
    env_args = [sys.executable, "-m", "model.bench", *(names or []), *(["--json"] if json else [])]
    raise typer.Exit(subprocess.call(env_args, env={**__import__("os").environ, "OMP_NUM_THREADS": "1",
                                                    "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}))
