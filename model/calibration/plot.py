"""Measured against predicted kernel times per op family, before (hand-set defaults) and after calibration.

    python -m model.calibration.plot WHEEL_OR_FOLDER h100_sxm vllm docs/calibration_h100_vllm.png

writes the chart of docs/calibration.md (PNG needs vl-convert-python, the `docs` extra; .html or .json
work with altair alone). Only held-out rows are drawn: the fit never saw them.
"""

from __future__ import annotations

import sys

import altair as alt
import pandas as pd

from model.calibration.importer import DeviceFit


def fit_chart(fit: DeviceFit) -> alt.Chart:
    rows = fit.result.rows
    held = rows[rows["split"] != "fit"]
    long = pd.concat([held.assign(model="before: hand-set defaults", predicted_s=held["before"]),
                      held.assign(model="after: calibrated", predicted_s=held["after"])])
    long = long.assign(measured_us=long["measured_s"] * 1e6, predicted_us=long["predicted_s"] * 1e6)
    lo, hi = float(long[["measured_us", "predicted_us"]].min().min()), float(long[["measured_us", "predicted_us"]].max().max())
    scale = alt.Scale(type="log", domain=[lo, hi])
    points = alt.Chart().mark_circle(size=14, opacity=0.5).encode(
        x=alt.X("measured_us:Q", scale=scale, title="measured (us)"),
        y=alt.Y("predicted_us:Q", scale=scale, title="predicted (us)"),
        color=alt.Color("split:N", title="held out"))
    diagonal = alt.Chart(pd.DataFrame({"measured_us": [lo, hi], "predicted_us": [lo, hi]})).mark_line(
        color="gray", strokeDash=[4, 4]).encode(x="measured_us:Q", y="predicted_us:Q")
    return alt.layer(points, diagonal, data=long).properties(width=170, height=170).facet(
        row=alt.Row("model:N", title=None, sort=["before: hand-set defaults", "after: calibrated"]),
        column=alt.Column("family:N", title=None)).properties(
        title=f"{fit.device.name}, {fit.engine}: held-out kernel times, measured vs predicted")


def main(argv: list[str]) -> int:
    from model.calibration.importer import fit_engine
    from model.calibration.tables import GPU_IDS, TableSource
    from model.hardware.db import load_device

    source_path, gpu, engine, out = argv
    fit = fit_engine(TableSource(source_path), gpu, load_device(GPU_IDS[gpu]), engine)
    if fit is None:
        print(f"no tables for {gpu} {engine}")
        return 2
    fit_chart(fit).save(out, scale_factor=1.5) if out.endswith(".png") else fit_chart(fit).save(out)
    try:  # a 64-colour palette keeps the PNG small enough to commit (40 kB instead of 1.6 MB)
        from PIL import Image

        if out.endswith(".png"):
            Image.open(out).convert("RGB").quantize(colors=64).save(out, optimize=True)
    except ImportError:
        pass
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
