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
             no_calibration: bool = typer.Option(False, "--no-calibration", help="ignore fitted calibration files"),
             engine_rows: str = typer.Option(None, "--engine-rows", help="CSV of real-engine rows (aiconfigurator "
                                             "format): steady state and simulator against measured TTFT/TPOT"),
             sample: int = typer.Option(None, "--sample", help="with --engine-rows: a random sample of N rows"),
             calibrated: bool = typer.Option(False, "--calibrated", help="with --engine-rows: each engine's "
                                             "public-table calibration instead of the hand-set efficiency"),
             range_ratio: float = typer.Option(1.0, "--range-ratio", help="with --engine-rows: aggregated rows' "
                                               "lengths uniform on [ratio x ISL/OSL, ISL/OSL] (InferenceX's client "
                                               "runs 0.8); 1 = fixed")) -> None:
    """Predict every case of the public reference measurements and print the error per case and group."""
    from model.validation import validate as run

    if engine_rows:
        _engine_rows(engine_rows, sample, json, calibrated, range_ratio)
        return

    report = run(tuple(group), calibration=False if no_calibration else True)
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
        if r.get("assumed_input_range"):  # the error over the assumed input range, beside the error
            err += (f" (input {r['assumed_input_range']}: {r['error_at_input_lo']:+.0%} to "
                    f"{r['error_at_input_hi']:+.0%})")
        if r.get("excluded"):
            err += " (excluded)"
        if r.get("extra_layout"):
            err += " (extra layout, not counted)"
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
    for _, r in report.cases[report.cases["extra_layout"] != ""].iterrows():
        console.print(f"extra layout {r['case']}: {r['extra_layout']}")


@app.command()
def bench(names: list[str] = typer.Argument(None, help="benchmarks to run (default: all)"),
          json: bool = typer.Option(False, "--json")) -> None:
    """Speed benchmarks on one core (a separate process with BLAS/OpenMP threads pinned to 1)."""
    env_args = [sys.executable, "-m", "model.bench", *(names or []), *(["--json"] if json else [])]
    raise typer.Exit(subprocess.call(env_args, env={**__import__("os").environ, "OMP_NUM_THREADS": "1",
                                                    "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}))


def _engine_rows(path: str, sample, json: bool, calibrated: bool = False, range_ratio: float = 1.0) -> None:
    from model.validation.engine_rows import engine_rows_report

    report = engine_rows_report(path, sample=sample, calibration=calibrated, range_ratio=range_ratio)
    rows = report.rows
    bys = ("engine", "gpu", "model", "dense")
    if json:
        print_json({"summary": {b: report.summary(b).to_dict(orient="records") for b in bys},
                    "rows": rows.to_dict(orient="records")})
        return
    for by in bys:
        t = Table(title=f"engine rows: median |error| per {by} (steady state | simulator; "
                        f"{'calibrated' if calibrated else 'hand-set efficiency'})")
        for col in ("mode", by, "rows", "TTFT steady", "TTFT sim", "TPOT steady", "TPOT sim"):
            t.add_column(col)
        for _, r in report.summary(by).iterrows():
            t.add_row(r["mode"], str(r[by]), str(r["rows"]), f"{r['steady_ttft_median_abs_err']:.1%}",
                      f"{r['sim_ttft_median_abs_err']:.1%}", f"{r['steady_tpot_median_abs_err']:.1%}",
                      f"{r['sim_tpot_median_abs_err']:.1%}")
        console.print(t)
    bad = rows[rows["reason"] != ""]
    console.print(f"{len(rows) - len(bad)} rows expressed, {len(bad)} not expressible:")
    for reason, g in bad.groupby("reason"):
        console.print(f"  {len(g)} rows: {reason} (e.g. {', '.join(g['id'].astype(str).head(2))})")
