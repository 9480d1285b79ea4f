"""Breakdown: step time by operator and by bound (stacked bars), and sweeps of TPOT and throughput against the
batch (or sequences in flight) and against the context length."""

from __future__ import annotations

import streamlit as st

from model.app import cache, charts
from model.app.scenario import Context
from model.serving import report


def _phase_labels(est) -> dict[str, str]:
    shapes = report.phase_shapes(est)
    b, t, _ = shapes["prefill"]
    db, _, dc = shapes["decode"]
    return {"prefill": f"prefill ({b} × {t} tokens)", "decode": f"decode ({db} seqs @ {dc} cached)"}


def render(ctx: Context) -> None:
    est = ctx.estimate()
    if est is None or not ctx.step_times(est):
        return
    d, w = ctx.deployment_key, ctx.workload_key
    ops, bounds = cache.stacks(d, w)
    labels = _phase_labels(est)
    ops = ops.assign(phase=ops["phase"].map(labels))
    bounds = bounds.assign(phase=bounds["phase"].map(labels))

    st.subheader("Step time by operator")
    st.altair_chart(charts.stacked_bars(ops, "time_s", "operator", "phase", "step time (ms)", family="family",
                                        height=110),
                    width="stretch")
    st.subheader("Step time by bound")
    st.altair_chart(charts.stacked_bars(bounds, "seconds", "part", "phase", "step time (ms)",
                                        colors=charts.BOUND_COLORS, height=110), width="stretch")
    st.caption("compute / memory / network: the binding roofline term of each operator; latency: kernels below "
               "their launch floor; pipeline_p2p: stage hand-offs; overhead: the engine's per-step cost.")

    if w.mode == "batch":
        st.subheader("Static batch: decode step vs batch")
        curve = cache.batch_curve(d, w)
        curve = curve.assign(memory=curve["fits"].map({True: "fits", False: "does not fit"}))
        x, x_title, color = "batch", "batch (sequences)", "memory"
        largest = cache.largest_batch(d, w)
        st.caption(f"Every sequence at {curve['context_tokens'].iloc[0]:,.0f} cached tokens; "
                   + (f"the largest batch that fits in usable memory is {largest:,} (exact, by bisection)."
                      if largest else "not even one sequence fits in usable memory."))
        tpot, tput = "tpot_s", "output_tokens_per_s_per_gpu"
    else:
        st.subheader("Continuous batching vs sequences in flight")
        curve = cache.concurrency_curve(d, w)
        if not bool(curve["fits"].iloc[0]):
            st.info("No sequence fits in the KV pool: nothing to sweep.")
            return
        x, x_title, color = "concurrency", "sequences in flight (per replica)", None
        tpot, tput = "tpot_mean_s", "output_tokens_per_s_per_gpu"
        st.caption(f"Above {curve['max_concurrency'].iloc[0]:,.0f} sequences the engine caps the batch "
                   f"(limited by {cache.headline(d, w)['limited_by']}).")
    c1, c2 = st.columns(2)
    c1.altair_chart(charts.sweep(curve, x, tpot, x_title, "TPOT (ms)", 1e3, color=color), width="stretch")
    c2.altair_chart(charts.sweep(curve, x, tput, x_title, "output tok/s per GPU", color=color), width="stretch")

    ctx_curve = cache.context_curve(d, w)
    n = ctx_curve["concurrency"].iloc[0]
    st.subheader(f"Continuous batching vs context length ({n:g} sequences in flight)")
    ok = ctx_curve[ctx_curve["fits"]]
    if ok.empty:
        st.info("No context length in the sweep fits in memory.")
        return
    c1, c2 = st.columns(2)
    c1.altair_chart(charts.sweep(ok, "context_tokens", "tpot_s", "prompt tokens", "TPOT (ms)", 1e3),
                    width="stretch")
    c2.altair_chart(charts.sweep(ok, "context_tokens", "output_tokens_per_s_per_gpu", "prompt tokens",
                                 "output tok/s per GPU"), width="stretch")
    limit = cache.context_limit(d, w)
    if limit is not None:
        why = {"kv": "the KV pool holds", "max_num_seqs": "max_num_seqs allows",
               "token_budget": "the token budget feeds"}.get(limit["limited_by"], f"{limit['limited_by']} allows")
        st.caption(f"From {limit['context_tokens']:,} prompt tokens (exact) {why} fewer than {n:g} sequences "
                   f"({limit['sequences']:g} there); the engine runs what fits.")
