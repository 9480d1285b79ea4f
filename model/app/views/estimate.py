"""Estimate: fits or not (memory bar against capacity), TTFT, TPOT, throughput per GPU and per user, cost per
million tokens, and what bounds each phase."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from model import format as fmt
from model.app import cache, charts
from model.app.scenario import Context
from model.serving import report

PHASE_LABELS = {"prefill": "prefill", "decode": "decode"}


def scenario_caption(ctx: Context) -> str:
    d = cache.deployment(ctx.deployment_key)
    p = d.precision
    return (f"**{d.arch.name}** on **{d.layout.gpus}× {d.device.name}** ({d.layout.label()}) · weights {p.weights}, "
            f"KV {p.kv} · engine {ctx.workload_key.engine}")


def render(ctx: Context) -> None:
    est = ctx.estimate()
    if est is None:
        return
    d, w = ctx.deployment_key, ctx.workload_key
    h = cache.headline(d, w)
    st.markdown(scenario_caption(ctx))
    if not h["fits"]:
        st.error(report.fit_summary(est), icon="🚫")
    elif not h["sustainable"]:
        st.warning(f"{w.rate_per_s:g} requests/s is above what this deployment can serve: the queue grows without "
                   "bound (TTFT ∞). Lower the rate or add replicas (DP).")

    # two rows of three: a value with its unit ('1,234 ms', '$12.34') fits a third of the page from 1,280 px up
    # (six across truncated them: tests/test_app_browser.py measures it)
    c = st.columns(3) + st.columns(3)
    c[0].metric("Fits", "yes" if h["fits"] else "no", border=True)
    c[1].metric("TTFT (mean)", fmt.seconds(h["ttft_s"]), border=True, help="time to first token")
    c[2].metric("TPOT (mean)", fmt.seconds(h["tpot_s"]), border=True, help="time per output token after the first")
    c[3].metric("tok/s per GPU", fmt.rate(h["output_tokens_per_s_per_gpu"], ""), border=True,
                help="output tokens per second per GPU")
    c[4].metric("tok/s per user", fmt.rate(h["output_tokens_per_s_per_user"], ""), border=True,
                help="output tokens per second each request sees (1 / TPOT)")
    c[5].metric("$ per M tokens", fmt.usd(h["usd_per_million_output_tokens"]), border=True,
                help="device price × GPUs / output tokens per hour, per million output tokens")

    st.subheader("Memory per GPU")
    st.altair_chart(charts.memory_bar(cache.memory(d, w)), width="stretch")
    st.caption(report.fit_summary(est))

    left, right = st.columns(2)
    with left:
        st.subheader("Phases")
        if est.fits:  # a configuration that does not fit gets no step times
            shapes = report.phase_shapes(est)
            ph = cache.phases(d, w)
            st.dataframe(pd.DataFrame({
                "phase": ph["phase"],
                "sequences × new tokens @ cached": [f"{b} × {t} @ {c}" for b, t, c in (shapes[p] for p in ph["phase"])],
                "step time": [fmt.seconds(x) for x in ph["time_s"]],
                "bound": ph["bound"],
            }), hide_index=True, width="stretch")
        else:
            st.caption("No phase step times: the configuration does not fit.")
    with right:
        st.subheader("Operating point")
        rows = {"mode": h["mode"], "concurrency": fmt.count(h["concurrency"]),
                "max concurrency": fmt.count(h["max_concurrency"]), "limited by": h["limited_by"] or fmt.DASH}
        if "goodput_requests_per_s" in h and h["goodput_requests_per_s"] is not None:
            rows["goodput"] = fmt.rate(h["goodput_requests_per_s"], "req/s")
        st.dataframe(pd.DataFrame({"": list(rows), "value": [str(v) for v in rows.values()]}), hide_index=True,
                     width="stretch")
    if h.get("ttft_percentiles_s"):
        st.subheader("Latency percentiles")
        pct = list(h["ttft_percentiles_s"])
        st.dataframe(pd.DataFrame({"percentile": pct,
                                   "TTFT": [fmt.seconds(h["ttft_percentiles_s"][p]) for p in pct],
                                   "TPOT": [fmt.seconds(h["tpot_percentiles_s"][p]) for p in pct]}),
                     hide_index=True)
    if h["fits"]:
        sim = cache.simulated_run(d, w)
        if sim is not None:
            st.subheader("Simulated run")
            st.caption("The engine's scheduler simulated one iteration at a time, the clients as benchmark tools send "
                       "them (a closed loop starts all requests at t = 0)")
            st.altair_chart(charts.simulated_run(*sim), width="stretch")
    with st.expander("Assumptions"):
        st.markdown("\n".join(f"- {a}" for a in est.assumptions))
