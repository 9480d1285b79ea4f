"""Compare: several GPUs and weight precisions side by side for the scenario's model, layout and workload."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from model import format as fmt
from model.app import cache, charts
from model.app.scenario import WEIGHTS, Context

DEFAULT_GPUS = ["h100-sxm", "h200", "a100-sxm-80gb", "mi300x"]
SIDEBAR = "as in the sidebar"  # the sidebar's weight precision, whatever it is now
MAX_VARIANTS = 24


def render(ctx: Context) -> None:
    d, w = ctx.deployment_key, ctx.workload_key
    names = {**cache.catalogue_devices(), **{i: i for i in ctx.custom_devices}}
    c1, c2 = st.columns([3, 2])
    gpus = c1.multiselect("GPUs", list(names), default=[g for g in DEFAULT_GPUS if g in names], key="cmp_gpus",
                          bind="query-params")
    gpu_slot = c1.container()
    precisions = c2.multiselect("Weight precisions", [SIDEBAR, *WEIGHTS], default=[SIDEBAR], key="cmp_weights",
                                bind="query-params",
                                help=f"'{SIDEBAR}' follows the sidebar's Weights (now {d.weights or 'checkpoint'})")
    precision_slot = c2.container()
    if not gpus:
        gpu_slot.error("Choose at least one GPU to compare.", icon="⚠️")
    if not precisions:
        precision_slot.error("Choose at least one weight precision.", icon="⚠️")
    if not gpus or not precisions:
        return
    def weights(p: str) -> str | None:
        return d.weights if p == SIDEBAR else None if p == "checkpoint" else p

    variants = [(g if p == SIDEBAR else f"{g} · {p}", ctx.custom_devices.get(g, g), weights(p))
                for g in gpus for p in precisions]
    if len(variants) > MAX_VARIANTS:
        gpu_slot.error(f"{len(variants)} combinations: choose at most {MAX_VARIANTS} (GPUs × precisions).",
                       icon="⚠️")
        return
    if ctx.call(cache.architecture, d.model, d.config_json, stage="model") is None:
        return
    df = cache.comparison(d, w, tuple(variants))
    st.caption(f"Model, layout (TP{d.tp} PP{d.pp} EP{d.ep} DP{d.dp}), KV precision ({d.kv or 'bf16'}), weights "
               f"'{SIDEBAR}' ({d.weights or 'checkpoint'}), engine and workload from the sidebar; one row per GPU × "
               "weight precision.")
    table = pd.DataFrame({
        "variant": df["label"],
        "fits": ["yes" if f else "no" for f in df["fits"]],
        "TTFT": [fmt.seconds(x) for x in df.get("ttft_s", pd.Series([None] * len(df)))],
        "TPOT": [fmt.seconds(x) for x in df.get("tpot_s", pd.Series([None] * len(df)))],
        "tok/s per GPU": [fmt.rate(x) for x in df.get("output_tokens_per_s_per_gpu", pd.Series([None] * len(df)))],
        "tok/s per user": [fmt.rate(x) for x in df.get("output_tokens_per_s_per_user", pd.Series([None] * len(df)))],
        "$ per M tokens": [fmt.usd(x) for x in df.get("usd_per_million_output_tokens", pd.Series([None] * len(df)))],
        "problem": df["error"],
    })
    st.dataframe(table, hide_index=True, width="stretch")
    bad = df[df["error"] != ""]
    if len(bad) == len(df) and df["error"].nunique() == 1:  # the sidebar scenario itself is at fault
        ctx.call(cache.deployment, d)
    for row in bad.itertuples():
        precision_slot.error(f"{row.label}: {row.error}", icon="⚠️")
    ok = df[(df["error"] == "") & df["fits"]]
    if ok.empty:
        st.info("No variant fits: nothing to chart.")
        return
    h = 50 + 30 * len(ok)
    c1, c2, c3 = st.columns(3)
    c1.altair_chart(charts.grouped_bars(ok, "output_tokens_per_s_per_gpu", "label", "output tok/s per GPU",
                                        height=h), width="stretch")
    c2.altair_chart(charts.grouped_bars(ok, "tpot_s", "label", "TPOT (ms)", 1e3, height=h), width="stretch")
    priced = ok.dropna(subset=["usd_per_million_output_tokens"])
    if len(priced):
        c3.altair_chart(charts.grouped_bars(priced, "usd_per_million_output_tokens", "label", "$ per M output tokens",
                                            height=50 + 30 * len(priced)), width="stretch")
