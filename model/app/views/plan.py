"""Plan: traffic, an SLO and candidate GPUs in; the planner's cheapest fleet out (pools, cost, launch commands,
downloads), the Pareto frontier of cost against the latency target, and the explanation when nothing fits.

The model and the engine come from the sidebar; the planner chooses GPU, layout and precision itself, so the
sidebar's GPU, layout, precision and workload are not used here.
"""

from __future__ import annotations

import json
import re

import numpy as np
import pandas as pd
import streamlit as st
from streamlit.delta_generator import DeltaGenerator

from model import format as fmt
from model.app import cache, charts
from model.app.cache import PlanKey
from model.app.scenario import LENGTHS, Context
from model.errors import RidgeplanError
from model.planner.request import OBJECTIVES

DEFAULT_GPUS = ["h100-sxm", "a100-sxm-80gb", "l40s", "l4"]
PRECISIONS = ("bf16/bf16", "fp8/fp8", "fp8/bf16", "int4/bf16", "int4/fp8", "nvfp4/fp8", "mxfp4/fp8", "fp16/fp16")
DEFAULT_PRECISIONS = ["bf16/bf16", "fp8/fp8"]
ROLES = {"aggregated + disaggregated": ("aggregated", "prefill", "decode"),
         "aggregated only": ("aggregated",),
         "disaggregated only": ("prefill", "decode")}
GPUS_PER_INSTANCE = ("1", "2", "4", "8")
PIPELINE_DEPTHS = ("1", "2", "4")
PARETO_POINTS = 5  # latency targets from a third of the target to three times it
ENGINE_NAMES = {"vllm": "vLLM", "sglang": "SGLang", "trtllm": "TensorRT-LLM"}

# which input slot shows an error, by the error's field
_SLOTS = {"rate": "traffic", "input_mean": "traffic", "output_mean": "traffic", "input_len": "traffic",
          "output_len": "traffic", "lengths": "traffic",
          "slo": "slo", "ttft_s": "slo", "tpot_s": "slo", "attainment": "slo",
          "gpus": "gpus", "price": "gpus", "gpu": "gpus",
          "precisions": "space", "roles": "space", "max_accuracy_risk": "space", "weights": "space", "kv": "space",
          "budget": "limits", "objective": "limits", "power_cap": "limits"}


def _report(slots: dict[str, DeltaGenerator], err: RidgeplanError) -> None:
    name = err.field.split(": ")[-1].split(".")[0]
    slot = _SLOTS.get(err.field) or _SLOTS.get(name)
    if slot in slots:
        slots[slot].error(err.one_line(), icon="⚠️")
    else:
        st.error(err.one_line(), icon="⚠️")


def _safe_key(gpu: str) -> str:
    return re.sub(r"[^a-z0-9]+", "_", gpu.lower())


def _inputs(ctx: Context) -> tuple[PlanKey | None, dict[str, DeltaGenerator], bool]:
    """Draw the inputs; the plan's key (None when an input is missing or wrong, with the error shown), the error
    slots and whether the Pareto sweep is asked for."""
    slots: dict[str, DeltaGenerator] = {}
    problems = False
    c1, c2, c3 = st.columns(3)
    with c1:
        st.markdown("**Traffic**")
        rate = float(st.number_input("Requests per second", min_value=0.001, max_value=1e6, value=20.0, step=5.0,
                                     format="%g", key="plan_rate", bind="query-params"))
        a, b = st.columns(2)
        isl = int(a.number_input("Input tokens (mean)", min_value=1, max_value=10_000_000, value=1024, step=128,
                                 key="plan_isl", bind="query-params"))
        osl = int(b.number_input("Output tokens (mean)", min_value=1, max_value=1_000_000, value=256, step=64,
                                 key="plan_osl", bind="query-params"))
        dist = st.selectbox("Lengths", list(LENGTHS), index=1, key="plan_dist", bind="query-params",
                            help="fixed: every request has these lengths; lognormal: these are the means")
        slots["traffic"] = st.empty()
    with c2:
        st.markdown("**SLO**")
        a, b = st.columns(2)
        ttft_ms = float(a.number_input("TTFT target (ms, 0 = none)", min_value=0.0, value=500.0, step=50.0,
                                       key="plan_ttft_ms", bind="query-params"))
        tpot_ms = float(b.number_input("TPOT target (ms, 0 = none)", min_value=0.0, value=50.0, step=5.0,
                                       key="plan_tpot_ms", bind="query-params"))
        attain = float(st.number_input("Attainment (% of requests within each target)", min_value=50.0,
                                       max_value=99.9, value=90.0, step=1.0, format="%g", key="plan_attain",
                                       bind="query-params"))
        slots["slo"] = st.empty()
        if not ttft_ms and not tpot_ms:
            slots["slo"].error("Give a TTFT and/or a TPOT target: the planner sizes the fleet for an SLO.",
                               icon="⚠️")
            problems = True
    with c3:
        st.markdown("**Objective and limits**")
        objective = st.selectbox("Objective", list(OBJECTIVES), key="plan_objective", bind="query-params",
                                 help="cost, GPUs or power: the least that serves the traffic; goodput: the most "
                                      "traffic served within the budget")
        a, b = st.columns(2)
        budget = float(a.number_input("Budget ($/h, 0 = none)", min_value=0.0, value=0.0, step=10.0, format="%g",
                                      key="plan_budget", bind="query-params"))
        power_kw = float(b.number_input("Power cap (kW, 0 = none)", min_value=0.0, value=0.0, step=1.0,
                                        format="%g", key="plan_power_kw", bind="query-params"))
        slots["limits"] = st.empty()

    prices = {**cache.planner_devices(),
              **{i: (json.loads(j).get("price") or {}).get("usd_per_hour") for i, j in ctx.custom_devices.items()}}
    c1, c2 = st.columns([3, 2])
    with c1:
        st.markdown("**Candidate GPUs**")
        gpus = st.multiselect("GPU types the fleet may use", list(prices),
                              default=[g for g in DEFAULT_GPUS if g in prices], key="plan_gpus", bind="query-params",
                              help="hardware_db devices (and this session's custom devices); the planner picks the "
                                   "mix, the layout of each instance and the prefill/decode split")
        slots["gpus"] = st.empty()
        unpriced = [g for g in gpus if prices.get(g) is None]
        with st.expander("Prices and availability", expanded=bool(unpriced)):
            st.caption("Per GPU type: $ per GPU-hour (0 = hardware_db's reference price) and how many GPUs are "
                       "available (0 = unlimited).")
            options = []
            for g in gpus:
                ref = prices.get(g)
                a, b, c = st.columns([2, 2, 2])
                a.markdown(f"`{g}`  \nreference: {fmt.usd(ref, '/h') if ref is not None else 'none'}")
                usd = float(b.number_input(f"$/GPU-hour for {g}", min_value=0.0, value=0.0, step=0.1, format="%g",
                                           key=f"plan_usd_{_safe_key(g)}", bind="query-params"))
                avail = int(c.number_input(f"available {g}", min_value=0, value=0, step=1,
                                           key=f"plan_avail_{_safe_key(g)}", bind="query-params"))
                options.append((g, usd or None, avail or None, ctx.custom_devices.get(g, "")))
        if not gpus:
            slots["gpus"].error("Choose at least one candidate GPU.", icon="⚠️")
            problems = True
        missing = [g for g, usd, _, _ in options if usd is None and prices.get(g) is None]
        if missing:
            slots["gpus"].error(f"{', '.join(missing)}: no reference price; enter a $/GPU-hour under "
                                "'Prices and availability'.", icon="⚠️")
            problems = True
    with c2:
        st.markdown("**Candidate space**")
        precisions = st.multiselect("Precisions (weights/KV)", list(PRECISIONS), default=DEFAULT_PRECISIONS,
                                    key="plan_prec", bind="query-params",
                                    help="weight and KV-cache formats the planner may choose")
        roles = st.radio("Instances", list(ROLES), key="plan_roles", bind="query-params", horizontal=True,
                         help="aggregated: prefill and decode on the same instances; disaggregated: separate "
                              "prefill and decode pools with KV hand-offs")
        with st.expander("More"):
            a, b = st.columns(2)
            gpi = a.multiselect("GPUs per instance", list(GPUS_PER_INSTANCE), default=list(GPUS_PER_INSTANCE),
                                key="plan_gpi", bind="query-params")
            depths = b.multiselect("Pipeline depths", list(PIPELINE_DEPTHS), default=["1"], key="plan_pp",
                                   bind="query-params", help="more depths: a larger candidate space, a slower plan")
            risk = int(st.slider("Highest accuracy risk allowed (0 none … 3 high)", 0, 3, 3, key="plan_risk",
                                 bind="query-params"))
        slots["space"] = st.empty()
        if not precisions:
            slots["space"].error("Choose at least one precision pair.", icon="⚠️")
            problems = True
        elif not gpi or not depths:
            slots["space"].error("Choose at least one instance size and one pipeline depth.", icon="⚠️")
            problems = True
    pareto = st.checkbox(f"Pareto frontier: cost vs the latency target ({PARETO_POINTS} re-plans)", value=False,
                         key="plan_pareto", bind="query-params")
    if problems:
        return None, slots, pareto
    key = PlanKey(ctx.deployment_key.model, rate, isl, osl, dist, ttft_ms, tpot_ms, attain / 100, tuple(options),
                  tuple(tuple(p.split("/")) for p in precisions), ROLES[roles], objective,
                  budget or None, power_kw * 1e3 or None, risk, tuple(sorted(int(x) for x in gpi)),
                  tuple(sorted(int(x) for x in depths)), ctx.workload_key.engine)
    return key, slots, pareto


def _percentiles(pools: list[dict], which: str) -> list[str]:
    """Statistic keys (p50, p90, p99, mean) in display order: the quantiles, then the mean."""
    keys = {k for p in pools for k in p[which]}
    return sorted(keys, key=lambda k: float(k[1:]) if k.startswith("p") else float("inf"))


def pools_table(pools: list[dict]) -> pd.DataFrame:
    """The pools for display (formatted)."""
    ttft, tpot = _percentiles(pools, "ttft_s"), _percentiles(pools, "tpot_s")
    rows = []
    for p in pools:
        pr = p["precision"]
        row = {"role": p["role"], "GPU × n": f"{p['gpu']} × {p['gpus_per_instance']}", "layout": p["layout"],
               "precision": f"{pr['weights']}/{pr['kv']}", "instances": p["instances"],
               "routed req/s": f"{p['rate_per_s']:.3g}"}
        row.update({f"TTFT {k}": fmt.seconds(p["ttft_s"].get(k)) for k in ttft})
        row.update({f"TPOT {k}": fmt.seconds(p["tpot_s"].get(k)) for k in tpot})
        row.update({"utilisation": f"{p['utilization']:.0%}", "SLO met": "yes" if p["meets_slo"] else "no",
                    "$/h": fmt.usd(p["cost_per_hour_usd"])})
        rows.append(row)
    return pd.DataFrame(rows)


def pools_csv(pools: list[dict]) -> str:
    """The pools as numbers (seconds, requests/s, $/h) for the CSV download."""
    ttft, tpot = _percentiles(pools, "ttft_s"), _percentiles(pools, "tpot_s")
    rows = []
    for p in pools:
        row = {"model": p["model"], "role": p["role"], "gpu": p["gpu"], "gpus_per_instance": p["gpus_per_instance"],
               "layout": p["layout"], "weights": p["precision"]["weights"], "kv": p["precision"]["kv"],
               "instances": p["instances"], "max_batch": p["max_batch"], "rate_per_s": p["rate_per_s"]}
        row.update({f"ttft_{k}_s": p["ttft_s"].get(k) for k in ttft})
        row.update({f"tpot_{k}_s": p["tpot_s"].get(k) for k in tpot})
        row.update({"utilization": p["utilization"], "meets_slo": p["meets_slo"],
                    "cost_per_hour_usd": p["cost_per_hour_usd"]})
        rows.append(row)
    return pd.DataFrame(rows).to_csv(index=False)


def _summary(result: dict) -> None:
    c = st.columns(4)
    c[0].metric("GPUs", fmt.count(result["gpus"]), border=True)
    c[1].metric("$ per hour", fmt.usd(result["cost_per_hour_usd"]), border=True, help="the fleet's GPU-hours × price")
    c[2].metric("$ per M tokens", fmt.usd(result["cost_per_million_output_tokens_usd"]), border=True,
                help="the fleet's $/h over the traffic's output tokens per hour, per million")
    c[3].metric("Power", fmt.si(result["power_w"], "W"), border=True, help="GPU TDP × GPUs")
    st.markdown(f"**Binding constraint:** {result['binding_constraint']}")


def _launch(pools: list[dict]) -> None:
    st.subheader("Engine launch commands")
    st.caption("One instance of each pool; start `instances` of them behind a router (disaggregated pools pair "
               "prefill and decode instances through the KV connector).")
    for p in pools:
        pr = p["precision"]
        st.markdown(f"**{p['role']}** · {p['gpu']} × {p['gpus_per_instance']} ({p['layout']}) · "
                    f"{pr['weights']}/{pr['kv']} · {p['instances']} instance{'s' if p['instances'] != 1 else ''}")
        engines = [e for e in p["launch"] if e not in ("needs", "not_available")]
        for tab, engine in zip(st.tabs([ENGINE_NAMES.get(e, e) for e in engines]), engines):
            tab.code(p["launch"][engine], language="yaml" if engine.endswith(".yaml") else "bash", wrap_lines=True)
        for k in ("needs", "not_available"):
            if k in p["launch"]:
                st.caption(f"{k.replace('_', ' ')}: {p['launch'][k]}")


def _pairs(result: dict) -> None:
    """Prefill -> decode pairs (the rate through each and its KV hand-off) and the router that fronts them."""
    if not result.get("pairs"):
        return
    st.subheader("Prefill → decode pairs")
    st.dataframe(pd.DataFrame([{"prefill pool": q["prefill"], "decode pool": q["decode"],
                                "routed req/s": f"{q['rate_per_s']:.3g}",
                                "KV transfer (mean)": fmt.seconds(q["kv_transfer_s"]["mean"]),
                                "group": q["group"]} for q in result["pairs"]]), hide_index=True)
    engines = list(result.get("router", {}))
    for tab, engine in zip(st.tabs(engines), engines):
        tab.code(result["router"][engine], language="yaml" if engine.endswith(".yaml") else "bash", wrap_lines=True)


def _pareto(key: PlanKey) -> None:
    st.subheader("Pareto frontier")
    metric = "tpot" if key.tpot_ms else "ttft"
    target_s = (key.tpot_ms if metric == "tpot" else key.ttft_ms) / 1e3
    targets = tuple(float(x) for x in np.geomspace(target_s / 3, target_s * 3, PARETO_POINTS))
    bar = st.progress(0.0, text=f"Re-planning at each of {len(targets)} targets…")

    def step(done: int, total: int) -> None:
        bar.progress(done / total, text=f"Re-planning at each target: {done} / {total}")

    try:
        df = cache.fleet_frontier(key, metric, targets, _progress=step)
    except RidgeplanError as err:
        st.error(err.one_line(), icon="⚠️")
        return
    finally:
        bar.empty()
    ok = df[df["feasible"]]
    label = metric.upper()
    if ok.empty:
        st.info(f"No {label} target between {fmt.seconds(targets[0])} and {fmt.seconds(targets[-1])} has a "
                "feasible plan.")
        return
    st.altair_chart(charts.pareto(ok, target_s, f"{label} target (ms)"), width="stretch")
    st.caption(f"Cost of the optimal fleet as the {label} target moves (the other limits held); the rule marks "
               "this plan's target; hover a point for its GPU mix."
               + (f" Infeasible: {', '.join(fmt.seconds(t) for t in df.loc[~df['feasible'], 'target_s'])}."
                  if len(ok) < len(df) else ""))


def render(ctx: Context) -> None:
    d = ctx.deployment_key
    if d.config_json:
        ctx.report(RidgeplanError("model", "planning needs a catalogue model (the planner looks the model up by id): "
                                  "choose 'catalogue' under 'Model from'"), stage="model")
        return
    if ctx.call(cache.architecture, d.model, "", stage="model") is None:
        return
    st.caption(f"Model **{d.model}** and engine **{ctx.workload_key.engine}** from the sidebar; the planner chooses "
               "the GPUs, layouts, precisions and prefill/decode split.")
    key, slots, pareto = _inputs(ctx)
    if key is None:
        return
    try:
        with st.spinner("Planning…"):
            result = cache.fleet_plan(key)
    except RidgeplanError as err:
        _report(slots, err)
        return
    st.divider()
    if not result["feasible"]:
        st.error(result["explanation"], icon="🚫")
        st.caption("The explanation names the constraint that cannot be met and the nearest feasible relaxation.")
    else:
        _summary(result)
        st.subheader("Pools")
        st.dataframe(pools_table(result["pools"]), hide_index=True, width="stretch")
        _launch(result["pools"])
        _pairs(result)
        c1, c2 = st.columns(2)
        c1.download_button("Download plan (JSON)", json.dumps(fmt.with_schema(result), indent=2),
                           file_name="ridgeplan-plan.json",
                           mime="application/json", on_click="ignore")
        c2.download_button("Download pools (CSV)", pools_csv(result["pools"]), file_name="ridgeplan-pools.csv",
                           mime="text/csv", on_click="ignore")
        with st.expander("Notes"):
            st.markdown("\n".join(f"- {n}" for n in result["notes"]))
    if pareto:
        _pareto(key)
