"""Formulas: each operator's sympy formula as LaTeX, with the current scenario's numbers substituted."""

from __future__ import annotations

import streamlit as st

from model.app import cache
from model.app.scenario import Context
from model.operators.latex import FORMULA_QUANTITIES
from model.serving import report

QUANTITY_LABELS = {"flops": "FLOPs", "weight_bytes": "weight bytes", "act_bytes": "activation bytes",
                   "kv_read_bytes": "KV bytes read", "kv_write_bytes": "KV bytes written",
                   "comm_bytes": "bytes sent in collectives", "cache_bytes": "KV cache bytes held",
                   "params": "parameters"}


def render(ctx: Context) -> None:
    est = ctx.estimate()
    if est is None:
        return
    shapes = report.phase_shapes(est)
    c1, c2 = st.columns(2)
    phase = c1.radio("Step", list(shapes), key="phase", bind="query-params", horizontal=True)
    quantity = c2.selectbox("Quantity", list(FORMULA_QUANTITIES), key="quantity", bind="query-params",
                            help=", ".join(f"{k}: {v}" for k, v in QUANTITY_LABELS.items()))
    b, t, c = shapes[phase]
    df = ctx.call(cache.formulas, ctx.deployment_key, quantity, float(b), float(t), float(c))
    if df is None:
        return
    st.caption(f"Per layer and per GPU rank, before multiplying by the layer count. B = {b} sequences, T = {t} new "
               f"tokens each, C = {c} cached tokens; bytes per element and parallel degrees from the sidebar.")
    for row in df.itertuples():
        st.markdown(f"**{row.operator}**")
        st.latex(row.latex)
    with st.expander("Symbols and their values"):
        st.dataframe(cache.formula_symbols(ctx.deployment_key, float(b), float(t), float(c)), hide_index=True,
                     width="stretch")
