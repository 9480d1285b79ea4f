"""Cached library calls keyed by plain values, so a widget change re-renders in milliseconds.

Results are immutable library objects shared across sessions (`st.cache_resource`) or frames
(`st.cache_data`). Errors are not cached: a `RidgeplanError` propagates to the view that shows it next to the
widget at fault.
"""

from __future__ import annotations

import json
from typing import Any, NamedTuple

import pandas as pd
import streamlit as st

from model import api
from model.architecture import load_architecture, model_ids
from model.architecture.config import Architecture
from model.errors import RidgeplanError
from model.hardware import load_device
from model.hardware.custom import device_numbers, device_table, file_device_ids
from model.hardware.schema import Device
from model.operators.latex import FORMULA_QUANTITIES, formula_latex, operator_names
from model.operators.symbols import DESCRIPTIONS
from model.planner import GpuOption, PlanRequest, Traffic, pareto_frontier
from model.planner import plan as plan_fleet
from model.serving.roofline_points import operator_points, ridge_points, roofline_lines
from model.serving import report
from model.serving.deployment import Deployment, StepResult
from model.serving.estimate import SLO
from model.serving.sweep import concurrency_sweep
from model.serving.workload import Lengths, Workload
from model.serving.workload import mean_decode_context_tokens


class DeploymentKey(NamedTuple):
    model: str  # catalogue id, or a label for a pasted/uploaded config
    config_json: str  # the config.json text ("" for catalogue models)
    gpu: str
    gpu_json: str  # the device dict as JSON for a session's custom device ("" for hardware_db devices)
    weights: str | None
    kv: str | None
    tp: int = 1
    pp: int = 1
    ep: int = 1
    dp: int = 1


class WorkloadKey(NamedTuple):
    mode: str  # concurrency | rate | batch | max
    concurrency: float
    rate_per_s: float
    batch: int
    input_len: int
    output_len: int
    lengths: str  # fixed | lognormal
    engine: str
    ttft_ms: float  # 0: no target
    tpot_ms: float


class PlanKey(NamedTuple):
    """The Plan page's inputs as plain values (the cache key of a plan)."""

    model: str  # a catalogue id
    rate_per_s: float
    input_len: int  # mean
    output_len: int
    lengths: str  # fixed | lognormal
    ttft_ms: float  # 0: no target
    tpot_ms: float
    attainment: float  # fraction, (0, 1)
    gpus: tuple[tuple[str, float | None, int | None, str], ...]  # (id, usd/h override, available, custom JSON)
    precisions: tuple[tuple[str, str], ...]  # (weights, kv)
    roles: tuple[str, ...]
    objective: str = "cost"
    budget_usd_per_hour: float | None = None
    power_cap_w: float | None = None
    max_accuracy_risk: int = 3
    gpus_per_instance: tuple[int, ...] = (1, 2, 4, 8)
    pipeline_depths: tuple[int, ...] = (1,)
    engine: str = "vllm"


DEFAULT_DEPLOYMENT = DeploymentKey(api.DEFAULT_MODEL, "", api.DEFAULT_GPU, "", None, None)
DEFAULT_WORKLOAD = WorkloadKey("concurrency", 16.0, 1.0, 8, 1024, 256, "fixed", "vllm", 0.0, 0.0)


def warm_up() -> None:
    """Evaluate the default scenario once with the library alone (no streamlit caches), filling the library's
    own caches (parsed configs, device files, compiled operator graphs) before the first visitor arrives."""
    from model.serving.report import phase_steps

    d = api.deployment(DEFAULT_DEPLOYMENT.model, DEFAULT_DEPLOYMENT.gpu)
    w = DEFAULT_WORKLOAD
    phase_steps(report.run_scenario(d, workload(w), w.engine, slo(w)))
    model_ids()
    for i in file_device_ids():
        load_device(i)


# -- catalogues ---------------------------------------------------------------------------------------------

@st.cache_resource(show_spinner=False)
def catalogue_models() -> list[str]:
    return model_ids()


@st.cache_resource(show_spinner=False)
def catalogue_devices() -> dict[str, str]:
    """id -> display name of every device file."""
    return {i: load_device(i).name for i in file_device_ids()}


@st.cache_data(show_spinner=False)
def catalogue_memory() -> dict[str, str]:
    """id -> its memory named both ways (marketed; runtime total, which fits use) of every device file."""
    from model.format import memory_capacity

    out = {}
    for i in file_device_ids():
        m = load_device(i).memory
        out[i] = memory_capacity(m.capacity_bytes, m.runtime_total_bytes)
    return out


@st.cache_data(show_spinner=False)
def devices_frame(custom: tuple[str, ...] = ()) -> pd.DataFrame:
    devices = [load_device(i) for i in file_device_ids()] + [load_device(json.loads(c)) for c in custom]
    return device_table(devices)


@st.cache_data(show_spinner=False, max_entries=64)
def device_sources(gpu: str, gpu_json: str) -> pd.DataFrame:
    return device_numbers(device(gpu, gpu_json))


# -- library objects ------------------------------------------------------------------------------------------

@st.cache_resource(show_spinner=False, max_entries=32)
def architecture(model: str, config_json: str) -> Architecture:
    if not config_json:
        return load_architecture(model)
    try:
        data = json.loads(config_json)
    except json.JSONDecodeError as err:
        raise RidgeplanError("config", f"is not valid JSON (line {err.lineno}: {err.msg})") from None
    if not isinstance(data, dict):
        raise RidgeplanError("config", "must be a JSON object (a Hugging Face config.json)")
    if not data:
        raise RidgeplanError("config", "is empty: paste or upload a Hugging Face config.json")
    data.setdefault("_name_or_path", model)
    return load_architecture(data)


@st.cache_resource(show_spinner=False, max_entries=64)
def device(gpu: str, gpu_json: str) -> Device:
    return load_device(json.loads(gpu_json) if gpu_json else gpu)


@st.cache_resource(show_spinner=False, max_entries=128)
def deployment(key: DeploymentKey, engine: str = "vllm") -> Deployment:
    """The deployment of the sidebar; `engine` (the sidebar's engine select) picks its kernel calibration."""
    return api.deployment(architecture(key.model, key.config_json), device(key.gpu, key.gpu_json),
                          weights=key.weights, kv=key.kv, tp=key.tp, pp=key.pp, ep=key.ep, dp=key.dp, engine=engine)


def workload(w: WorkloadKey) -> Workload:
    lengths = Lengths.from_input(w.input_len, w.output_len, w.lengths)
    return Workload(lengths, concurrency=w.concurrency if w.mode == "concurrency" else None,
                    rate_per_s=w.rate_per_s if w.mode == "rate" else None)


def slo(w: WorkloadKey) -> SLO:
    return SLO.from_ms(w.ttft_ms, w.tpot_ms)


@st.cache_resource(show_spinner=False, max_entries=256)
def scenario(d: DeploymentKey, w: WorkloadKey) -> report.Estimate:
    return report.run_scenario(deployment(d, w.engine), workload(w), w.engine, slo(w), w.batch if w.mode == "batch" else None)


@st.cache_resource(show_spinner=False, max_entries=128)
def steps(d: DeploymentKey, w: WorkloadKey) -> dict[str, StepResult]:
    return report.phase_steps(scenario(d, w))


@st.cache_data(show_spinner=False, max_entries=128)
def headline(d: DeploymentKey, w: WorkloadKey) -> dict[str, Any]:
    return report.headline(scenario(d, w))


@st.cache_data(show_spinner=False, max_entries=128)
def memory(d: DeploymentKey, w: WorkloadKey) -> pd.DataFrame:
    return report.memory_segments(scenario(d, w))


@st.cache_data(show_spinner=False, max_entries=128)
def phases(d: DeploymentKey, w: WorkloadKey) -> pd.DataFrame:
    return report.phase_table(steps(d, w))


@st.cache_data(show_spinner=False, max_entries=128)
def stacks(d: DeploymentKey, w: WorkloadKey) -> tuple[pd.DataFrame, pd.DataFrame]:
    s = steps(d, w)
    return report.operator_stack(s), report.bound_stack(s)


@st.cache_data(show_spinner=False, max_entries=128)
def roofline(d: DeploymentKey, w: WorkloadKey, dtypes: tuple[str, ...]) -> tuple[pd.DataFrame, ...]:
    dev = deployment(d).device
    s = steps(d, w)
    points = pd.concat([operator_points(step, phase) for phase, step in s.items()], ignore_index=True)
    return roofline_lines(dev, dtypes), ridge_points(dev, dtypes), points


@st.cache_data(show_spinner=False, max_entries=64)
def concurrency_curve(d: DeploymentKey, w: WorkloadKey) -> pd.DataFrame:
    return concurrency_sweep(deployment(d, w.engine), workload(w).lengths, w.engine, points=20)


@st.cache_data(show_spinner=False, max_entries=64)
def batch_curve(d: DeploymentKey, w: WorkloadKey) -> pd.DataFrame:
    ctx = float(mean_decode_context_tokens(w.input_len, w.output_len))
    return report.batch_sweep(deployment(d, w.engine), ctx)


@st.cache_data(show_spinner=False, max_entries=64)
def largest_batch(d: DeploymentKey, w: WorkloadKey) -> int:
    return report.largest_static_batch(deployment(d, w.engine), float(mean_decode_context_tokens(w.input_len, w.output_len)))


def _curve_concurrency(w: WorkloadKey) -> float:
    return max(float(w.batch if w.mode == "batch" else w.concurrency if w.mode == "concurrency" else 16), 1.0)


@st.cache_data(show_spinner=False, max_entries=64)
def context_curve(d: DeploymentKey, w: WorkloadKey) -> pd.DataFrame:
    return report.context_sweep(deployment(d, w.engine), w.engine, w.output_len, _curve_concurrency(w))


@st.cache_data(show_spinner=False, max_entries=64)
def context_limit(d: DeploymentKey, w: WorkloadKey) -> dict | None:
    """The exact prompt length from which the engine holds fewer sequences than the context curve asks for."""
    return report.context_limit(deployment(d, w.engine), w.engine, w.output_len, _curve_concurrency(w))


@st.cache_data(show_spinner=False, max_entries=32)
def comparison(d: DeploymentKey, w: WorkloadKey, variants: tuple[tuple[str, str, str | None], ...]) -> pd.DataFrame:
    """`variants`: (label, gpu id or custom-device JSON, weights) triples on top of the scenario `d`."""
    def make(gpu: str, weights: str | None) -> Deployment:
        custom = gpu.startswith("{")
        gpu_id = json.loads(gpu)["id"] if custom else gpu
        return deployment(d._replace(gpu=gpu_id, gpu_json=gpu if custom else "", weights=weights), w.engine)

    rows = [{"label": label, "gpu": gpu, "weights": weights} for label, gpu, weights in variants]
    return report.compare(rows, make, workload(w), w.engine, slo(w), w.batch if w.mode == "batch" else None)


# -- planner ---------------------------------------------------------------------------------------------------

PLANNER_KINDS = ("gpu", "accelerator", "tpu", "npu")


@st.cache_resource(show_spinner=False)
def planner_devices() -> dict[str, float | None]:
    """id -> reference $ per device-hour (None: unpriced) of every hardware_db device the planner can place."""
    out = {}
    for i in file_device_ids():
        dev = load_device(i)
        if dev.kind in PLANNER_KINDS:
            out[i] = dev.price.usd_per_hour if dev.price else None
    return out


def plan_request(k: PlanKey) -> PlanRequest:
    """The library request for the page's inputs (raises RidgeplanError on bad input)."""
    lengths = Lengths.from_input(k.input_len, k.output_len, k.lengths)
    slo = SLO.from_ms(k.ttft_ms, k.tpot_ms, k.attainment)
    return PlanRequest((Traffic(k.model, k.rate_per_s, lengths),), slo,
                       tuple(GpuOption(g, usd, avail) for g, usd, avail, _ in k.gpus), k.precisions, k.roles,
                       k.max_accuracy_risk, k.gpus_per_instance, k.pipeline_depths, engine=k.engine,
                       budget_usd_per_hour=k.budget_usd_per_hour, power_cap_w=k.power_cap_w, objective=k.objective)


@st.cache_data(show_spinner=False, max_entries=64)
def fleet_plan(k: PlanKey) -> dict[str, Any]:
    """The planner's plan for the page's inputs, as `Plan.to_dict()` (pools with launch commands)."""
    return plan_fleet(plan_request(k)).to_dict()


@st.cache_data(show_spinner=False, max_entries=32)
def fleet_frontier(k: PlanKey, metric: str, targets_s: tuple[float, ...], _progress=None) -> pd.DataFrame:
    """Cost of the optimal plan per latency target (`metric`: tpot | ttft), one row per target; `_progress`
    (not part of the cache key) is called after each re-plan."""
    request = plan_request(k)
    points = pareto_frontier(request, **{f"{metric}_targets_s": list(targets_s)}, progress=_progress)
    return pd.DataFrame([{**{k2: v for k2, v in pt.items() if k2 != "mix"},
                          "mix": ", ".join(f"{n} × {g}" for g, n in pt["mix"].items())} for pt in points])


@st.cache_data(show_spinner=False, max_entries=64)
def formulas(d: DeploymentKey, quantity: str, batch: float, new_tokens: float, context: float) -> pd.DataFrame:
    """operator, symbolic LaTeX with the value substituted, for every operator of the model."""
    if quantity not in FORMULA_QUANTITIES:
        raise RidgeplanError("quantity", f"unknown quantity {quantity!r}", FORMULA_QUANTITIES)
    dep = deployment(d)
    values = report.formula_values(dep, batch, new_tokens, context)
    rows = [{"operator": name, "latex": formula_latex(dep.arch, name, quantity, values=values)}
            for name in operator_names(dep.arch)]
    return pd.DataFrame(rows)


@st.cache_data(show_spinner=False, max_entries=64)
def formula_symbols(d: DeploymentKey, batch: float, new_tokens: float, context: float) -> pd.DataFrame:
    values = report.formula_values(deployment(d), batch, new_tokens, context)
    return pd.DataFrame([{"symbol": k, "value": v, "meaning": DESCRIPTIONS.get(k, "")} for k, v in values.items()])


@st.cache_resource(show_spinner=False)
def scenario_index() -> pd.DataFrame:
    from model.scenarios import load_all

    rows = [{"id": s.id, "section": s.section, "systems": "; ".join(s.systems),
             "checks": ", ".join(c.id for c in s.checks)} for s in load_all().values()]
    return pd.DataFrame(rows).sort_values(["section", "id"], ignore_index=True)


@st.cache_resource(show_spinner=False, max_entries=64)
def scenario_report(ident: str) -> dict[str, Any]:
    from model.scenarios import get_scenario

    return get_scenario(ident).report()


@st.cache_resource(show_spinner=False)
def coverage_report(_progress=None):
    from model.scenarios.coverage import coverage

    return coverage(progress=_progress)


@st.cache_data(show_spinner=False, max_entries=32)
def simulated_run(d: DeploymentKey, w: WorkloadKey) -> tuple[pd.DataFrame, pd.DataFrame] | None:
    """The engine simulator on the scenario (concurrency or rate loads): per-request TTFT, and the running
    batch and queue over time. None for static batches and offline runs."""
    from model.serving.simulator import load_for, simulate

    work = workload(w)
    if w.mode not in ("concurrency", "rate"):
        return None
    n = int(min(2000, max(200, 5 * (work.concurrency or 0))))
    run = simulate(deployment(d, w.engine), work.lengths, load_for(work, num_requests=n), w.engine)
    requests = pd.DataFrame({"arrival_s": run.arrival_s, "ttft_s": run.first_token_s - run.arrival_s})
    series = pd.DataFrame({"t_s": run.series["t_s"], "running": run.series["running"],
                           "queue": run.series["queue"]})
    return requests, series
