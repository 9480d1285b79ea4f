"""`ridgeplan calibrate collect` and `ridgeplan calibrate fit`: measure your hardware, fit the efficiency model."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer
from rich.table import Table

from model.cli import app
from model.cli.output import console, print_json
from model.errors import RidgeplanError

calibrate_app = typer.Typer(help="Measure kernels on your hardware and fit the efficiency model to them.",
                            no_args_is_help=True)
app.add_typer(calibrate_app, name="calibrate")
JSON = typer.Option(False, "--json", help="machine-readable output, units in the keys")
ESTIMATE_DEVICE = "h100-sxm"  # the device the printed run-time estimate refers to


@calibrate_app.command("collect")
def collect_cmd(
    out: Path = typer.Option(..., "--out", help="CSV to write (provenance goes in # lines and OUT.json)"),
    quick: bool = typer.Option(False, "--quick", help="fewer cases and repetitions (under 2 minutes on an H100)"),
    device: str = typer.Option("cuda", "--device", help="cuda (the GPU), or cpu to test the code path"),
    json: bool = JSON,
) -> None:
    """Time GEMMs, attention, copies, element-wise kernels and whole decode steps with PyTorch."""
    from model.hardware.db import load_device
    from model.calibration.collect import check_platform, collect, design, estimate_seconds, import_torch

    torch = import_torch()
    check_platform(torch, device)
    if device == "cuda":
        plan = design(device, quick)
        est = estimate_seconds(plan, load_device(ESTIMATE_DEVICE))
        if not json:
            console.print(f"{len(plan.cases)} cases, up to {plan.reps} timed runs each; the model estimates "
                          f"{est['total_s']:.0f} s on {ESTIMATE_DEVICE} ({est['startup_s']:.0f} s of it start-up)")
    report = collect(out, platform=device, quick=quick, progress=not json)
    if json:
        print_json({"out": report["out"], "rows": report["rows"], "platform": report["platform"],
                    "device": report["device"], "elapsed_s": report["elapsed_s"], "notes": report["skipped"]})
        return
    console.print(f"{report['rows']} measurements on {report['device']} in {report['elapsed_s']:.1f} s -> {out}")
    for note in report["skipped"]:
        console.print(f"  note: {note}")
    target = "ID" if device == "cuda" else "CPU-DEVICE-ID"
    console.print(f"next: ridgeplan calibrate fit {out} --device {target}")


@calibrate_app.command("fit")
def fit_cmd(
    csv: Path = typer.Argument(..., help="measurements written by `calibrate collect` (or any table of that form)"),
    device: str = typer.Option(..., "--device", help="hardware_db device id or path to a device TOML"),
    out: Optional[Path] = typer.Option(None, "--out", help="TOML to write (default: hardware_db/calibration/ID.toml)"),
    holdout: float = typer.Option(0.2, "--holdout", help="fraction of the rows kept out of the fit to test it"),
    json: bool = JSON,
) -> None:
    """Fit the efficiency curves and floors to measured times; print the error before and after, held out too."""
    from model.hardware.db import load_device
    from model.calibration.fit import fit_efficiency, load_measurements
    from model.calibration.collect import read_provenance
    from model.roofline.efficiency_sets import calibration_path

    dev = load_device(device, field="device")
    table = load_measurements(csv)
    result = fit_efficiency(table, dev, holdout=holdout)
    default = calibration_path(dev.id)
    target = Path(out) if out else default
    if out is None:
        target.parent.mkdir(parents=True, exist_ok=True)
    elif not target.parent.is_dir():
        raise RidgeplanError("out", f"folder {str(target.parent)!r} does not exist")
    meta = read_provenance(csv)
    measured_on = meta.get("device", "an unrecorded device")
    provenance = (f"from {Path(csv).name}: measured on {measured_on}"
                  + (f" at {meta['collected_utc']}" if meta.get("collected_utc") else "")
                  + (f", torch {meta['torch']}" if meta.get("torch") else ""))
    target.write_text(result.to_toml(provenance))
    automatic = target.resolve() == default.resolve()
    held_rows = int((result.rows["split"] != "fit").sum())
    if json:
        print_json({"device": dev.id, "out": str(target), "picked_up_automatically": automatic,
                    "measured_on": measured_on, "rows": len(result.rows), "held_out_rows": held_rows,
                    "held_out_median_abs_error": result.held_out_error(), "params": result.params,
                    "before": {n: getattr(result.before, n) for n in result.params},
                    "not_informed": list(result.unconstrained), "errors": result.errors.to_dict(orient="records")})
        return
    console.print(f"fitted {len(result.params)} parameters for {dev.id} ({dev.name}) to {len(result.rows) - held_rows} "
                  f"of {len(result.rows)} measurements (measured on {measured_on})")
    errors = Table(title="median |predicted / measured - 1| per kernel class")
    for col in ("kernel", "split", "rows", "before", "after"):
        errors.add_column(col, justify="left" if col in ("kernel", "split") else "right")
    for _, r in result.errors.iterrows():
        errors.add_row(r["kernel"], r["split"], str(r["rows"]), f"{r['median_before']:.1%}", f"{r['median_after']:.1%}")
    console.print(errors)
    held = result.held_out_error()
    held_text = "no rows held out" if held != held else f"{held:.1%} over {held_rows} rows the fit never saw"
    console.print(f"held-out median |error|: {held_text}")
    params = Table(title="parameters")
    for col in ("parameter", "default", "fitted"):
        params.add_column(col)
    for name, value in result.params.items():
        params.add_row(name, f"{getattr(result.before, name):.4g}", f"{value:.4g}")
    console.print(params)
    if result.unconstrained:
        console.print(f"not informed by these measurements, left at the defaults: {', '.join(result.unconstrained)}")
    console.print(f"written to {target}: " + (f"picked up automatically for {dev.id}" if automatic else
                                              f"copy it to {default} to have it picked up for {dev.id}"))


@calibrate_app.command("import")
def import_cmd(
    path: Path = typer.Argument(..., help="the aiconfigurator-core wheel (.whl) or its extracted folder; never downloaded"),
    out: Optional[Path] = typer.Option(None, "--out", help="folder for the TOML files (default: hardware_db/calibration)"),
    gpu: Optional[list[str]] = typer.Option(None, "--gpu", help="table GPU folder(s), e.g. h100_sxm (default: all)"),
    engine: Optional[list[str]] = typer.Option(None, "--engine", help="vllm | sglang | trtllm (default: all three)"),
    json: bool = JSON,
) -> None:
    """Fit the efficiency model per GPU and engine to NVIDIA's public kernel tables; write calibration files."""
    from model.calibration.ship import run_import
    from model.calibration.tables import ENGINES
    from model.roofline.efficiency_sets import calibration_path

    engines = tuple(engine or ENGINES)
    for e in engines:
        if e not in ENGINES:
            raise RidgeplanError("engine", f"unknown engine {e!r}", ENGINES)
    target = Path(out) if out else calibration_path("x").parent
    if out is not None and not target.parent.is_dir():
        raise RidgeplanError("out", f"folder {str(target.parent)!r} does not exist")
    report = run_import(path, target, gpus=list(gpu) if gpu else None, engines=engines)
    errors = report.errors()
    held = errors[errors["split"] != "fit"] if len(errors) else errors
    if json:
        print_json({"source": report.source, "version": report.version, "written": report.written,
                    "skipped": report.skipped, "tables_read": len(report.opened),
                    "held_out": held.to_dict(orient="records"),
                    "leave_one_out": report.leave_one_out.to_dict(orient="records"),
                    "params": {f"{f.device.id}.{f.engine}": f.params for f in report.fits},
                    "class_params": report.class_params})
        return
    console.print(f"{len(report.fits)} device/engine fits from {report.version} tables ({len(report.opened)} files read)")
    t = Table(title="held-out median |predicted / measured - 1| (before: hand-set class defaults)")
    for col in ("device", "engine", "family", "split", "rows", "before", "after", "after, >=100 us"):
        t.add_column(col, justify="left" if col in ("device", "engine", "family", "split") else "right")
    for r in held.itertuples():
        t.add_row(r.device, r.engine, r.family, r.split, str(r.rows), f"{r.median_before:.1%}", f"{r.median_after:.1%}",
                  f"{r.median_after_long:.1%}" if r.long_rows else "-")
    console.print(t)
    if len(report.leave_one_out):
        loo = Table(title="leave-one-GPU-out within each class: median |error| on all of the GPU's rows")
        for col in ("class", "device", "engine", "family", "own fit", "from the others"):
            loo.add_column(col)
        for r in report.leave_one_out.itertuples():
            loo.add_row(r.arch, r.device, r.engine, r.family, f"{r.median_own_fit:.1%}", f"{r.median_leave_one_out:.1%}")
        console.print(loo)
    for note in report.skipped:
        console.print(f"  skipped: {note}")
    console.print("Ampere, Ada and other classes keep their hand-set defaults (one or no GPU with tables per class).")
    for w in report.written:
        console.print(f"written {w}")
