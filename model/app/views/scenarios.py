"""Scenarios: the research systems of the catalogue as runnable scenarios (`model.scenarios`), each with its
set-up, the numbers the library computes for it and its headline claims checked against them; on request, the
coverage of the whole catalogue. Scenarios carry their own model, hardware and policy: the sidebar is not used."""

from __future__ import annotations

from typing import Any

import pandas as pd
import streamlit as st

from model import format as fmt
from model.app import cache
from model.app.scenario import Context


def numbers_table(result: dict[str, Any]) -> pd.DataFrame:
    """A scenario's result dict as quantity / value rows, each value with the unit its key names."""
    return pd.DataFrame({"quantity": [str(k) for k in result],
                         "value": [fmt.by_key(str(k), v) for k, v in result.items()]})


def render(ctx: Context) -> None:
    index = cache.scenario_index()
    st.caption(f"{len(index)} scenarios express the systems of the research catalogue (ordered by catalogue "
               "section); each sets its own model, hardware, layout and policy (the sidebar is not used here).")
    # plain ids as options: the URL carries the option itself
    ident = st.selectbox("Scenario", list(index["id"]), key="scenario", bind="query-params")
    with st.spinner("running the scenario"):
        rep = ctx.call(cache.scenario_report, ident)
    if rep is None:
        return
    st.markdown(f"**Systems:** {'; '.join(rep['systems'])}")
    st.markdown(rep["summary"])
    if rep["checks"]:
        st.subheader("Headline claims")
        st.dataframe(pd.DataFrame([{"check": c["id"], "tier": c["tier"], "status": c["status"],
                                    "claim": c["claim"], "expected": c["expected"], "ridgeplan": fmt.by_key(c["id"], c["value"]),
                                    "note": c["note"]} for c in rep["checks"]]), hide_index=True, width="stretch")
    st.subheader("Numbers")
    st.dataframe(numbers_table(rep["result"]), hide_index=True, width="stretch")
    with st.expander("Coverage of the whole catalogue"):
        if st.button("Run every scenario (about a minute the first time)", key="run_coverage"):
            bar = st.progress(0.0, text="Running every scenario…")

            def step(done: int, total: int, ident: str) -> None:
                bar.progress(done / total, text=f"Running every scenario: {done} / {total} ({ident})")

            cov = cache.coverage_report(_progress=step)
            bar.empty()
            done, total = cov.systems_expressed()
            st.markdown(f"**Systems expressed:** {done} / {total}")
            tiers = cov.tier_summary()
            st.dataframe(tiers.assign(share=tiers["share"].map(fmt.percent), target=tiers["target"].map(fmt.percent)),
                         hide_index=True)
            missed = cov.checks[cov.checks["status"] != "reproduced"]
            st.dataframe(missed[["id", "tier", "system", "status", "expected", "value", "note"]], hide_index=True,
                         width="stretch")
            st.dataframe(cov.systems[cov.systems["status"] != "expressed"][["name", "section", "why", "missing"]],
                         hide_index=True, width="stretch")
