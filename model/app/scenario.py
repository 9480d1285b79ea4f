"""The scenario sidebar (model, GPU, layout, precision, engine, workload, SLO) and the context every page gets.

Every scenario widget is bound to the URL query string (`bind="query-params"`, the key is the parameter name),
so a link reproduces the scenario; values equal to the defaults are left out of the URL. Under each group of
widgets sits an empty slot where an input error is shown, next to the widget at fault.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

import streamlit as st
from streamlit.delta_generator import DeltaGenerator

from model.api import DEFAULT_GPU, DEFAULT_MODEL
from model.app import cache
from model.app.cache import DEFAULT_WORKLOAD, DeploymentKey, WorkloadKey
from model.errors import RidgeplanError
from model.serving.policy import ENGINES

WEIGHTS = ("checkpoint", "bf16", "fp16", "fp8", "int8", "int4", "mxfp4", "nvfp4")
KV = ("16-bit", "fp8", "int8", "int4", "int2")
MODES = {"concurrency": "sequences in flight", "rate": "request rate (Poisson)", "batch": "static batch",
         "max": "maximum throughput"}
LENGTHS = {"fixed": "fixed", "lognormal": "log-normal (mean)"}
CUSTOM_DEVICES = "custom_devices"  # session_state: id -> device dict as JSON

# which slot shows an error, by the error's field (the part after the last ': ' of compound fields)
_SLOTS = {
    "model": "model", "config": "model", "model_type": "model", "hidden_size": "model",
    "gpu": "gpu", "template": "gpu", "device dict": "gpu",
    "weights": "precision", "activations": "precision", "experts": "precision", "kv": "precision",
    "dtype": "precision", "format": "precision",
    "tp": "layout", "pp": "layout", "ep": "layout", "dp": "layout", "layout": "layout",
    "engine": "engine",
    "input_len": "workload", "output_len": "workload", "lengths": "workload", "concurrency": "workload",
    "rate": "workload", "batch": "workload", "memory": "workload", "workload": "workload", "weight": "workload",
    "ttft_s": "slo", "tpot_s": "slo", "attainment": "slo",
}


def slot_for(err: RidgeplanError, stage: str | None = None) -> str | None:
    """The sidebar slot for an error: the stage that raised it (architecture -> model, device -> gpu), else its
    field."""
    if stage in ("model", "gpu"):
        return stage
    name = err.field.split(": ")[-1].split(".")[0]
    return _SLOTS.get(err.field) or _SLOTS.get(name)


@dataclass
class Context:
    """What a page gets: the scenario's keys and a way to show errors next to the widget at fault."""

    deployment_key: DeploymentKey
    workload_key: WorkloadKey
    slots: dict[str, DeltaGenerator] = field(default_factory=dict)

    def report(self, err: RidgeplanError, stage: str | None = None) -> None:
        """Show a one-line error next to its widget (and a pointer in the page)."""
        slot = slot_for(err, stage)
        if slot in self.slots:
            self.slots[slot].error(err.one_line(), icon="⚠️")
            st.warning(f"No result: fix the input marked in the sidebar ({err.field}).")
        else:
            st.error(err.one_line(), icon="⚠️")

    def call(self, fn, *args, stage: str | None = None) -> Any | None:
        """`fn(*args)`, or None after showing a RidgeplanError next to its widget."""
        try:
            return fn(*args)
        except RidgeplanError as err:
            self.report(err, stage)
            return None

    def check(self) -> bool:
        """Build the architecture, the device and the deployment; False (with the error shown) if any fails."""
        d = self.deployment_key
        return (self.call(cache.architecture, d.model, d.config_json, stage="model") is not None
                and self.call(cache.device, d.gpu, d.gpu_json, stage="gpu") is not None
                and self.call(cache.deployment, d) is not None)

    def estimate(self):
        est = self.call(cache.scenario, self.deployment_key, self.workload_key) if self.check() else None
        w = self.workload_key
        if (est is not None and est.fits and w.mode == "concurrency" and w.concurrency > est.max_concurrency
                and "workload" in self.slots):
            self.slots["workload"].warning(
                f"{w.concurrency:,.0f} sequences in flight asked; the engine runs at most {est.max_concurrency:,.0f} "
                f"per replica (limited by {est.concurrency_limit}): the rest queue, and the numbers are for "
                f"{est.max_concurrency:,.0f}.", icon="⏳")
        return est

    def step_times(self, est) -> bool:
        """Per-operator and per-phase times exist only for a configuration that fits; otherwise say so."""
        if est.fits:
            return True
        st.info("No step or operator times: this configuration does not fit in memory (the Estimate page shows "
                "by how much).", icon="🚫")
        return False

    @property
    def custom_devices(self) -> dict[str, str]:
        return st.session_state.setdefault(CUSTOM_DEVICES, {})


def _model_inputs(sb: DeltaGenerator) -> tuple[str, str]:
    source = sb.radio("Model from", ["catalogue", "config.json"], key="model_src", bind="query-params",
                      horizontal=True, help="a catalogue model, or any Hugging Face config.json (paste or upload)")
    if source == "catalogue":
        models = cache.catalogue_models()
        model = sb.selectbox("Model", models, index=models.index(DEFAULT_MODEL), key="model", bind="query-params")
        return model, ""
    upload = sb.file_uploader("Upload config.json", type=["json"], key="config_file")
    text = sb.text_area("…or paste config.json", key="config_text", height=120, persist_state="session",
                        placeholder='{"model_type": "llama", "hidden_size": 4096, ...}')
    raw = upload.getvalue().decode("utf-8", errors="replace") if upload is not None else (text or "")
    name = upload.name.removesuffix(".json") if upload is not None else "pasted-config"
    return name, raw.strip() or "{}"


def url_parameters() -> dict[str, str]:
    """The scenario's URL query parameters as given (before the widgets read them)."""
    return {k: st.query_params.get(k) for k in st.query_params}


def unusable(given: dict[str, str], shown: dict[str, Any]) -> list[str]:
    """One line per URL parameter whose value the widget could not take (unknown name, out of range, not a
    number), naming what is shown instead."""
    out = []
    for key, value in shown.items():
        raw = given.get(key)
        if raw is None or _same(raw, value):
            continue
        out.append(f"URL parameter {key}={raw!r} could not be used; showing {key}={value!r} instead.")
    return out


def _same(raw: str, value: Any) -> bool:
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        try:
            return float(raw) == float(value)
        except ValueError:
            return False
    return str(raw) == str(value)


def _note(sb: DeltaGenerator, given: dict[str, str], shown: dict[str, Any]) -> None:
    for line in unusable(given, shown):
        sb.warning(line, icon="🔗")


def sidebar() -> Context:
    """Draw the scenario widgets; return the page context with their values."""
    sb = st.sidebar
    given = url_parameters()
    slots: dict[str, DeltaGenerator] = {}
    model, config_json = _model_inputs(sb)
    if not config_json:
        _note(sb, given, {"model": model})
    slots["model"] = sb.empty()

    customs: dict[str, str] = st.session_state.setdefault(CUSTOM_DEVICES, {})
    names = {**cache.catalogue_devices(), **{i: json.loads(j)["name"] for i, j in customs.items()}}
    gpus = list(names)
    gpu = sb.selectbox("GPU", gpus, index=gpus.index(DEFAULT_GPU), key="gpu", bind="query-params",
                       help="hardware_db device id, or a custom device added on the Hardware page")
    memory = cache.catalogue_memory().get(gpu)
    sb.caption(names.get(gpu, "") + (f" · memory: {memory}" if memory else ""))
    _note(sb, given, {"gpu": gpu})
    slots["gpu"] = sb.empty()

    c1, c2 = sb.columns(2)
    weights = c1.selectbox("Weights", WEIGHTS, key="weights", bind="query-params",
                           help="checkpoint: the published format (bf16, or FP8/MXFP4 where the checkpoint is)")
    kv = c2.selectbox("KV cache", KV, key="kv", bind="query-params")
    _note(sb, given, {"weights": weights, "kv": kv})
    slots["precision"] = sb.empty()

    c1, c2, c3, c4 = sb.columns(4)
    tp = c1.number_input("TP", min_value=1, max_value=512, value=1, step=1, key="tp", bind="query-params")
    pp = c2.number_input("PP", min_value=1, max_value=256, value=1, step=1, key="pp", bind="query-params")
    ep = c3.number_input("EP", min_value=1, max_value=512, value=1, step=1, key="ep", bind="query-params")
    dp = c4.number_input("DP", min_value=1, max_value=1024, value=1, step=1, key="dp", bind="query-params")
    _note(sb, given, {"tp": tp, "pp": pp, "ep": ep, "dp": dp})
    slots["layout"] = sb.empty()

    engine = sb.selectbox("Engine", list(ENGINES), key="engine", bind="query-params",
                          help="batching and memory policy of the serving engine")
    _note(sb, given, {"engine": engine})
    slots["engine"] = sb.empty()

    mode = sb.radio("Workload", list(MODES), key="mode", bind="query-params", horizontal=True,
                    help="; ".join(f"{k}: {v}" for k, v in MODES.items()))
    w0 = DEFAULT_WORKLOAD
    conc, rate, batch = w0.concurrency, w0.rate_per_s, w0.batch
    if mode == "concurrency":
        conc = float(sb.number_input("Sequences in flight (per replica)", min_value=1.0, max_value=1e5, value=w0.concurrency,
                                     step=1.0, format="%g", key="conc",
                                     bind="query-params"))
    elif mode == "rate":
        rate = float(sb.number_input("Requests per second (all replicas)", min_value=0.001, max_value=1e6,
                                     value=w0.rate_per_s, step=0.5, format="%g", key="rate", bind="query-params"))
    elif mode == "batch":
        batch = int(sb.number_input("Batch (prompts prefilled together)", min_value=1, max_value=100000, value=w0.batch,
                                    step=1, key="batch", bind="query-params"))
    c1, c2 = sb.columns(2)
    isl = int(c1.number_input("Input tokens", min_value=1, max_value=10_000_000, value=w0.input_len, step=128, key="isl",
                              bind="query-params"))
    osl = int(c2.number_input("Output tokens", min_value=1, max_value=1_000_000, value=w0.output_len, step=64, key="osl",
                              bind="query-params"))
    dist = sb.selectbox("Lengths", list(LENGTHS), key="dist", bind="query-params",
                        help="fixed: every request has these lengths; lognormal: these are the means")
    _note(sb, given, {"mode": mode, "isl": isl, "osl": osl, "dist": dist,
                      **{k: v for k, v in (("conc", conc), ("rate", rate), ("batch", batch)) if k in given
                         and mode == {"conc": "concurrency", "rate": "rate", "batch": "batch"}[k]}})
    slots["workload"] = sb.empty()

    with sb.expander("SLO (goodput)"):
        ttft_ms = float(st.number_input("TTFT target (ms, 0 = none)", min_value=0.0, value=0.0, step=50.0,
                                        key="ttft_ms", bind="query-params"))
        tpot_ms = float(st.number_input("TPOT target (ms, 0 = none)", min_value=0.0, value=0.0, step=5.0,
                                        key="tpot_ms", bind="query-params"))
    _note(sb, given, {"ttft_ms": ttft_ms, "tpot_ms": tpot_ms})
    slots["slo"] = sb.empty()

    dkey = DeploymentKey(model, config_json, gpu, customs.get(gpu, ""), None if weights == "checkpoint" else weights,
                         None if kv == "16-bit" else kv, int(tp), int(pp), int(ep), int(dp))
    wkey = WorkloadKey(mode, conc, rate, batch, isl, osl, dist, engine, ttft_ms, tpot_ms)
    return Context(dkey, wkey, slots)
