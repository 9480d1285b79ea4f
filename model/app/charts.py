"""Altair chart builders: they only map columns of library frames to marks (no numbers are computed here
except unit scaling for axes labelled in those units)."""

from __future__ import annotations

import colorsys

import altair as alt
import pandas as pd

BOUND_COLORS = {"compute": "#4c78a8", "memory": "#f58518", "network": "#54a24b", "latency": "#b279a2",
                "pipeline_p2p": "#9d755d", "overhead": "#bab0ac"}
LOG = alt.Scale(type="log")
# one hue per operator family (model.serving.report.FAMILIES); the operators of a family are shades of it
FAMILY_HUES = {"embedding & head": 0.16, "norms": 0.82, "attention projections": 0.5, "attention": 0.6, "MLP": 0.07,
               "MoE": 0.33, "communication": 0.0}
# a legend's height in the browser (measured in headless Chromium, tests/test_app_browser.py: up to 20 px a row,
# 10 px from the top, about 30 px more with a title): a chart must be at least that tall or its container cuts
# the legend off
LEGEND_ROW_PX, LEGEND_PAD_PX, LEGEND_TITLE_PX = 20, 20, 30


def family_colors(families: dict[str, str]) -> dict[str, str]:
    """operator -> colour: each family (`families`: operator -> family) one hue, its operators evenly spaced
    shades of it from dark to light, so neighbouring segments of a stacked bar never share a colour."""
    by_family: dict[str, list[str]] = {}
    for op, fam in families.items():
        by_family.setdefault(fam, []).append(op)
    out = {}
    for fam, ops in by_family.items():
        hue = FAMILY_HUES.get(fam, 0.0)
        saturation = 0.12 if fam not in FAMILY_HUES else 0.65
        for i, op in enumerate(sorted(ops)):
            light = 0.3 + 0.45 * (i / max(len(ops) - 1, 1)) if len(ops) > 1 else 0.45
            r, g, b = colorsys.hls_to_rgb(hue, light, saturation)
            out[op] = f"#{int(r * 255):02x}{int(g * 255):02x}{int(b * 255):02x}"
    return out


def memory_bar(segments: pd.DataFrame, height: int = 110) -> alt.LayerChart:
    """One horizontal bar of per-GPU memory segments (GB) with a rule at the device's capacity."""
    df = segments.assign(gigabytes=segments["bytes"] / 1e9, row="memory")
    bar = alt.Chart(df).mark_bar(size=36).encode(
        x=alt.X("sum(gigabytes):Q", title="GB per GPU", stack="zero"),
        y=alt.Y("row:N", title=None, axis=None),
        color=alt.Color("component:N", sort=list(df["component"]),
                        legend=alt.Legend(orient="right", title=None)),
        order=alt.Order("order:Q"),
        tooltip=[alt.Tooltip("component:N"), alt.Tooltip("gigabytes:Q", format=",.2f", title="GB")],
    )
    cap = pd.DataFrame({"capacity_gigabytes": [float(df["capacity_bytes"].iloc[0]) / 1e9], "row": "memory"})
    rule = alt.Chart(cap).mark_tick(color="black", thickness=3, size=52).encode(
        x="capacity_gigabytes:Q", y=alt.Y("row:N", axis=None),
        tooltip=[alt.Tooltip("capacity_gigabytes:Q", format=",.1f",
                             title="device memory, GB (runtime total when known; what fits use)")])
    rows = df["component"].nunique()
    return alt.layer(bar, rule).properties(height=max(height, LEGEND_ROW_PX * rows + LEGEND_PAD_PX))


def roofline(lines: pd.DataFrame, ridges: pd.DataFrame, points: pd.DataFrame, height: int = 460) -> alt.LayerChart:
    """Log-log roofline: a line per (device, dtype), its ridge point, and one point per operator and phase."""
    x_title, y_title = "arithmetic intensity (FLOP/byte)", "FLOP/s"
    line = alt.Chart(lines).mark_line(strokeWidth=2).encode(
        x=alt.X("intensity_flop_per_byte:Q", scale=LOG, title=x_title),
        y=alt.Y("attainable_flop_per_s:Q", scale=LOG, title=y_title, axis=alt.Axis(format="~s")),
        color=alt.Color("dtype:N", title="roofline dtype"),
        strokeDash=alt.StrokeDash("device:N", title="device"),
        detail="device:N", order="order:Q",
        tooltip=["device:N", "dtype:N"],
    )
    ridge = alt.Chart(ridges).mark_point(shape="diamond", filled=True, size=90).encode(
        x=alt.X("ridge_flop_per_byte:Q", scale=LOG), y=alt.Y("peak_flop_per_s:Q", scale=LOG),
        color=alt.Color("dtype:N", legend=None),
        tooltip=["device:N", "dtype:N", alt.Tooltip("ridge_flop_per_byte:Q", format=".1f", title="ridge FLOP/byte"),
                 alt.Tooltip("peak_flop_per_s:Q", format=".3s", title="peak FLOP/s"),
                 alt.Tooltip("memory_bytes_per_s:Q", format=".3s", title="memory B/s")],
    )
    pts = alt.Chart(points).mark_point(filled=True, size=110, opacity=0.85, stroke="black", strokeWidth=0.5).encode(
        x=alt.X("intensity_flop_per_byte:Q", scale=LOG), y=alt.Y("achieved_flop_per_s:Q", scale=LOG),
        fill=alt.Fill("phase:N", scale=alt.Scale(range=["#e45756", "#1f77b4"]), title="phase"),
        shape=alt.Shape("device:N", title="operators on"),
        tooltip=["operator:N", "phase:N", "device:N", "bound:N",
                 alt.Tooltip("flops:Q", format=".3s", title="FLOPs"),
                 alt.Tooltip("bytes:Q", format=".3s", title="bytes"),
                 alt.Tooltip("intensity_flop_per_byte:Q", format=".3g", title="FLOP/byte"),
                 alt.Tooltip("time_s:Q", format=".3s", title="time (s)"),
                 alt.Tooltip("achieved_flop_per_s:Q", format=".3s", title="achieved FLOP/s"),
                 alt.Tooltip("share:Q", format=".1%", title="share of step")],
    )
    return alt.layer(line, ridge, pts).resolve_scale(color="independent").properties(height=height)


def stacked_bars(df: pd.DataFrame, value: str, category: str, group: str, title: str,
                 colors: dict[str, str] | None = None, family: str | None = None, height: int = 160) -> alt.Chart:
    """Horizontal bars, one per `group`, stacked by `category`; `value` in seconds, drawn in milliseconds.

    `family`: a column grouping the categories (operator families): segments and legend are ordered by it and
    coloured one hue per family (family_colors), and the hover names the family too."""
    data = df.assign(milliseconds=df[value] * 1e3)
    tooltip = [f"{group}:N", f"{category}:N", alt.Tooltip("milliseconds:Q", format=".4g", title="ms")]
    if family:
        order = data.drop_duplicates(category).sort_values([family, category], key=_family_key)
        colors = family_colors(dict(zip(order[category], order[family])))
        data = data.assign(_order=data[category].map({c: i for i, c in enumerate(colors)}))
        tooltip.insert(1, f"{family}:N")
        if "share" in data:
            tooltip.append(alt.Tooltip("share:Q", format=".1%", title="share of the step"))
    scale = alt.Scale(domain=list(colors), range=list(colors.values())) if colors else alt.Undefined
    entries = len(colors) if colors else data[category].nunique()  # the legend lists the scale's whole domain
    columns = 2 if entries > 12 else 1
    legend_rows = -(-entries // columns)
    title_text = f"{category} (by {family})" if family else category
    enc = {"y": alt.Y(f"{group}:N", title=None, axis=alt.Axis(labelLimit=320)),
           "x": alt.X("sum(milliseconds):Q", title=title),
           "color": alt.Color(f"{category}:N", scale=scale, sort=list(colors) if colors else alt.Undefined,
                              legend=alt.Legend(title=title_text, columns=columns, symbolLimit=0)),
           "tooltip": tooltip}
    if family:
        enc["order"] = alt.Order("_order:Q")
    # the legend (title + rows) must fit in the chart's height, or the container cuts it off
    return alt.Chart(data).mark_bar().encode(**enc).properties(
        height=max(height, LEGEND_ROW_PX * legend_rows + LEGEND_PAD_PX + LEGEND_TITLE_PX))


def _family_key(col: pd.Series) -> pd.Series:
    """Sort families in the order a layer runs them (FAMILY_HUES' order); categories alphabetically."""
    if col.name == "family" or col.isin(list(FAMILY_HUES)).all():
        return col.map({f: i for i, f in enumerate(FAMILY_HUES)}).fillna(len(FAMILY_HUES))
    return col


def sweep(df: pd.DataFrame, x: str, y: str, x_title: str, y_title: str, y_scale: float = 1.0, log_x: bool = True,
          color: str | None = None, height: int = 260) -> alt.Chart:
    """A line with points of `y` (times `y_scale` for display units) against `x`."""
    data = df.assign(_y=df[y] * y_scale)
    enc = {"x": alt.X(f"{x}:Q", scale=LOG if log_x else alt.Undefined, title=x_title),
           "y": alt.Y("_y:Q", title=y_title),
           "tooltip": [alt.Tooltip(f"{x}:Q", format=",.0f", title=x_title),
                       alt.Tooltip("_y:Q", format=".4g", title=y_title)]}
    if color:
        enc["color"] = alt.Color(f"{color}:N", title=None)
        enc["tooltip"].append(f"{color}:N")
    return alt.Chart(data).mark_line(point=True).encode(**enc).properties(height=height)


def grouped_bars(df: pd.DataFrame, value: str, label: str, title: str, scale: float = 1.0,
                 height: int = 240) -> alt.Chart:
    """One bar per row (`label`), `value` times `scale` for display units."""
    data = df.assign(_v=df[value] * scale)
    return alt.Chart(data).mark_bar().encode(
        x=alt.X("_v:Q", title=title),
        y=alt.Y(f"{label}:N", sort=None, title=None, axis=alt.Axis(labelOverlap=False, labelLimit=200)),
        tooltip=[f"{label}:N", alt.Tooltip("_v:Q", format=",.4g", title=title)],
    ).properties(height=height)


def pareto(df: pd.DataFrame, target_s: float, x_title: str, height: int = 280) -> alt.LayerChart:
    """Fleet cost ($/h) against the latency target (`target_s` column, drawn in milliseconds, log axis), the GPU
    mix in the tooltip; a rule at the current plan's target."""
    data = df.assign(target_ms=df["target_s"] * 1e3, solved_at_ms=df["solved_at_s"] * 1e3)
    line = alt.Chart(data).mark_line(point=alt.OverlayMarkDef(size=80, filled=True), interpolate="step-after").encode(
        x=alt.X("target_ms:Q", scale=LOG, title=x_title),
        y=alt.Y("cost_per_hour_usd:Q", title="fleet $ per hour", scale=alt.Scale(zero=False)),
        tooltip=[alt.Tooltip("target_ms:Q", format=".3g", title="target (ms)"),
                 alt.Tooltip("cost_per_hour_usd:Q", format="$,.2f", title="$ per hour"),
                 alt.Tooltip("gpus:Q", title="GPUs"), alt.Tooltip("mix:N", title="mix"),
                 alt.Tooltip("solved_at_ms:Q", format=".3g", title="plan found at target (ms)")],
    )
    rule = alt.Chart(pd.DataFrame({"target_ms": [target_s * 1e3]})).mark_rule(strokeDash=[4, 4], color="gray").encode(
        x="target_ms:Q", tooltip=[alt.Tooltip("target_ms:Q", format=".3g", title="this plan's target (ms)")])
    return alt.layer(line, rule).properties(height=height)


def simulated_run(requests: pd.DataFrame, series: pd.DataFrame) -> alt.VConcatChart:
    """TTFT of each request against its arrival, above the running batch and the queue over time."""
    ttft = alt.Chart(requests).mark_circle(size=12).encode(
        x=alt.X("arrival_s:Q", title="time (s)"), y=alt.Y("ttft_s:Q", title="TTFT (s)"))
    step = max(1, len(series) // 2000)  # keep the chart light on long runs
    long = series.iloc[::step].melt("t_s", ["running", "queue"], var_name="requests", value_name="count")
    lines = alt.Chart(long).mark_line(interpolate="step-after").encode(
        x=alt.X("t_s:Q", title="time (s)"), y=alt.Y("count:Q", title="requests"), color="requests:N")
    return alt.vconcat(ttft.properties(height=160), lines.properties(height=120))
