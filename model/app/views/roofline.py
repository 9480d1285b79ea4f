"""Roofline chart: the device's rooflines per dtype with ridge points, every operator of prefill and decode as a
point; a second GPU can be overlaid."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from model import format as fmt
from model.app import cache, charts
from model.app.scenario import Context
from model.errors import RidgeplanError

NONE = "none"


def default_dtypes(ctx: Context) -> list[str]:
    r = cache.deployment(ctx.deployment_key).resolved
    return list(dict.fromkeys([r.dense_dtype, r.attention_dtype]))


def render(ctx: Context) -> None:
    est = ctx.estimate()
    if est is None or not ctx.step_times(est):
        return
    d, w = ctx.deployment_key, ctx.workload_key
    device = cache.deployment(d).device
    names = {**cache.catalogue_devices(), **{i: i for i in ctx.custom_devices}}
    c1, c2 = st.columns(2)
    overlay = c1.selectbox("Overlay a second GPU", [NONE, *[g for g in names if g != d.gpu]], key="gpu2",
                           bind="query-params")
    overlay_slot = c1.empty()
    dtypes = c2.multiselect("Rooflines (dtype)", list(device.peak_flop_per_s), default=default_dtypes(ctx),
                            key="dtypes", help="the tensor-core paths to draw; the scenario's own are preselected")
    if not dtypes:
        c2.error("Choose at least one dtype to draw its roofline.", icon="⚠️")
        return
    lines, ridges, points = cache.roofline(d, w, tuple(dtypes))
    if overlay != NONE:
        d2 = d._replace(gpu=overlay, gpu_json=ctx.custom_devices.get(overlay, ""))
        try:
            cache.scenario(d2, w)
            more = cache.roofline(d2, w, tuple(dtypes))
        except RidgeplanError as err:
            overlay_slot.error(f"{overlay}: {err.one_line()}", icon="⚠️")
        else:
            lines, ridges, points = (pd.concat([a, b], ignore_index=True)
                                     for a, b in zip((lines, ridges, points), more, strict=True))
    shown = points[points["on_chart"]]
    st.altair_chart(charts.roofline(lines, ridges, shown), width="stretch")
    st.caption(f"Ridge points ({device.id}): " + ", ".join(
        f"{r.dtype} {r.ridge_flop_per_byte:,.0f} FLOP/byte" for r in ridges[ridges["device"] == device.id].itertuples())
        + ". Operators left of their dtype's ridge are memory-bound. Hover a point for its numbers.")
    off = points[~points["on_chart"] & (points["time_s"] > 0)]
    if len(off):
        st.caption("Not on the chart (no arithmetic): " + ", ".join(
            f"{r.operator} ({r.phase}, {fmt.seconds(r.time_s)}, {r.bound}-bound)" for r in off.itertuples()))
    table = points[(points["device"] == device.id) & (points["time_s"] > 0)]
    st.dataframe(pd.DataFrame({
        "phase": table["phase"], "operator": table["operator"], "FLOPs": [fmt.si(x) for x in table["flops"]],
        "bytes": [fmt.si(x, "B") for x in table["bytes"]],
        "FLOP/byte": [f"{x:.3g}" for x in table["intensity_flop_per_byte"]],
        "time": [fmt.seconds(x) for x in table["time_s"]], "bound": table["bound"],
        "achieved FLOP/s": [fmt.si(x, "FLOP/s") for x in table["achieved_flop_per_s"]],
    }), hide_index=True, width="stretch")
