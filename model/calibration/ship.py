"""Run the import over every GPU and engine of the tables and write hardware_db/calibration/ files.

Per device and engine `<id>.<engine>.toml`; per architecture class `_class-<arch>.<engine>.toml` (the mean of the
class's fitted devices: Hopper H100/H200, Blackwell B200/B300/GB200/GB300, those of them in hardware_db), with the
leave-one-GPU-out error of each device. Every file records its source, licence credit, date and held-out errors.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from model.calibration.importer import CLASSES, DeviceFit, K, EDGE, class_parameters, fit_engine, leave_one_out
from model.calibration.tables import ENGINES, GPU_IDS, PACKAGE, TableSource
from model.errors import RidgeplanError

SCHEMA = 1
LICENSE = "Apache-2.0"
CREDIT = ("kernel measurements from NVIDIA aiconfigurator-core (Apache-2.0, Copyright NVIDIA CORPORATION & "
          "AFFILIATES); ridgeplan ships only parameters fitted to them, not the tables")


@dataclass
class ImportReport:
    source: str
    version: str
    fits: list[DeviceFit] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    written: list[str] = field(default_factory=list)
    leave_one_out: pd.DataFrame = field(default_factory=pd.DataFrame)
    class_params: dict[str, dict[str, float]] = field(default_factory=dict)
    opened: list[str] = field(default_factory=list)

    def errors(self) -> pd.DataFrame:
        frames = [f.errors.assign(device=f.device.id, engine=f.engine) for f in self.fits]
        return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()


def _fmt(value) -> str:
    if isinstance(value, str):
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_fmt(v) for v in value) + "]"
    if isinstance(value, (bool, np.bool_)):
        return "true" if value else "false"
    if isinstance(value, (int, np.integer)):
        return str(int(value))
    return f"{float(value):.6g}" if np.isfinite(value) else "nan"


def _table(name: str, values: dict) -> list[str]:
    return [f"[{name}]", *(f"{k} = {_fmt(v)}" for k, v in values.items()), ""]


def _source_table(source: TableSource, files, rows_read: int, rows_used: int) -> dict:
    return {"package": PACKAGE, "version": source.version, "path": source.path.name, "files": sorted(files),
            "file_count": len(files), "rows_read": rows_read, "rows_used": rows_used, "license": LICENSE,
            "credit": CREDIT}


def device_toml(fit: DeviceFit, source: TableSource, date: str) -> str:
    errs = fit.errors
    held = {f"{r.family}_{r.split}": r.median_after for r in errs.itertuples() if r.split != "fit"}
    before = {f"{r.family}_{r.split}": r.median_before for r in errs.itertuples() if r.split != "fit"}
    long = {f"{r.family}_{r.split}": r.median_after_long for r in errs.itertuples()
            if r.split != "fit" and r.long_rows}
    lines = [f"# Efficiency of {fit.device.name} under {fit.engine}, fitted by `ridgeplan calibrate import` to "
             f"{PACKAGE} {source.version} kernel tables.",
             "# Estimates pick this file up by device and engine (deployment(..., engine=...)).", "",
             f"schema_version = {SCHEMA}", f'device = "{fit.device.id}"', f'engine = "{fit.engine}"',
             f'date = "{date}"', ""]
    lines += _table("source", _source_table(source, fit.tables.files, fit.tables.rows_read, len(fit.result.rows)))
    lines += _table("efficiency", fit.params)
    lines += _table("fit", {"method": "scipy least_squares on log(predicted/measured), soft_l1, staged per family",
                            "rows": len(fit.result.rows), "fit_rows": int((fit.result.rows["split"] == "fit").sum()),
                            "interpolation_every_kth": K, "extrapolation_edge_share": EDGE,
                            "not_informed": list(fit.result.unconstrained)})
    lines += ["# median |predicted/measured - 1| on rows the fit never saw, per op family and hold-out kind"]
    lines += _table("held_out_error", held)
    lines += ["# the same rows with the hand-set class defaults, before this calibration"]
    lines += _table("held_out_error_before", before)
    lines += ["# the same, kernels of at least 100 us only"]
    lines += _table("held_out_error_long", long)
    return "\n".join(lines)


def class_toml(arch: str, engine: str, fits: list[DeviceFit], params: dict, loo: pd.DataFrame,
               source: TableSource, date: str) -> str:
    files = sorted({f for fit in fits for f in fit.tables.files})
    lines = [f"# {arch} class efficiency under {engine}: the mean of the fitted devices' parameters (geometric for "
             "sizes and latencies).", "# Applies to every device of the class without its own calibration file.",
             "", f"schema_version = {SCHEMA}", f'device = "_class-{arch}"', f'engine = "{engine}"', f'date = "{date}"',
             f"devices = {_fmt([f.device.id for f in fits])}", ""]
    lines += _table("source", _source_table(source, files, sum(f.tables.rows_read for f in fits),
                                            sum(len(f.result.rows) for f in fits)))
    lines += _table("efficiency", params)
    sub = loo[loo["engine"] == engine] if len(loo) else loo
    lines += ["# leave-one-GPU-out: class parameters from the other devices, median |error| on all of this one's rows"]
    lines += _table("leave_one_out_error", {f"{r.device}_{r.family}": r.median_leave_one_out for r in sub.itertuples()})
    return "\n".join(lines)


def run_import(path: str | Path, out_dir: Path, gpus: list[str] | None = None,
               engines: tuple[str, ...] = ENGINES, date: str | None = None, write: bool = True) -> ImportReport:
    from model.hardware.db import load_device

    source = TableSource(path)
    date = date or dt.date.today().isoformat()
    report = ImportReport(str(path), source.version)
    wanted = gpus or source.gpus()
    unknown = set(wanted) - set(source.gpus())
    if unknown:
        raise RidgeplanError("gpu", f"the tables have no GPU {sorted(unknown)[0]!r}", source.gpus())
    for gpu in wanted:
        ident = GPU_IDS.get(gpu)
        try:
            device = load_device(ident) if ident else None
        except RidgeplanError:
            device = None
        if device is None:
            report.skipped.append(f"{gpu}: no hardware_db device ({ident or 'unmapped'}); its peaks are needed to fit")
            continue
        for engine in engines:
            fit = fit_engine(source, gpu, device, engine)
            if fit is None:
                report.skipped.append(f"{gpu} {engine}: no tables for this engine")
                continue
            report.fits.append(fit)
    if write:
        out_dir.mkdir(parents=True, exist_ok=True)
        for fit in report.fits:
            target = out_dir / f"{fit.device.id}.{fit.engine}.toml"
            target.write_text(device_toml(fit, source, date))
            report.written.append(str(target))
    loo_frames = []
    for arch, members in CLASSES.items():
        for engine in engines:
            fits = [f for f in report.fits if f.device.id in members and f.engine == engine]
            if not fits:
                continue
            params = class_parameters(fits)
            report.class_params[f"{arch}.{engine}"] = params
            loo = leave_one_out(fits)
            loo_frames.append(loo.assign(arch=arch) if len(loo) else loo)
            if write:
                target = out_dir / f"_class-{arch}.{engine}.toml"
                target.write_text(class_toml(arch, engine, fits, params, loo, source, date))
                report.written.append(str(target))
    report.leave_one_out = pd.concat(loo_frames, ignore_index=True) if loo_frames else pd.DataFrame()
    report.opened = list(source.opened)
    return report
