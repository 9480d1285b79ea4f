"""The calculator app under streamlit's AppTest: every page renders its defaults, a widget change changes the
numbers, and bad input shows a message next to the widget (never an exception in the page)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pyarrow as pa
import pytest
from streamlit.testing.v1 import AppTest

from model.hardware import unregister_device

ROOT = Path(__file__).resolve().parents[1]
CATALOGUE = ROOT / "model" / "architecture" / "catalogue"


def app(page: str = "Estimate", **params) -> AppTest:
    at = AppTest.from_file(str(ROOT / "model" / "app" / "page.py"), default_timeout=60)
    at.query_params["page"] = page
    for k, v in params.items():
        at.query_params[k] = v if isinstance(v, list) else str(v)  # a list: a multiselect's options
    return at.run()


def clean(at: AppTest) -> AppTest:
    assert not at.exception, [e.value for e in at.exception]
    assert not at.error, [e.value for e in at.error]
    return at


def metrics(at: AppTest) -> dict[str, str]:
    return {m.label: m.value for m in at.metric}


def charts(at: AppTest) -> list[dict]:
    """Each altair chart as {'spec': dict, 'data': [DataFrame per dataset]}."""
    out = []
    for el in at.get("vega_lite_chart"):
        frames = [pa.ipc.open_stream(d.data.data).read_all().to_pandas() for d in el.proto.datasets]
        out.append({"spec": json.loads(el.proto.spec), "data": frames})
    return out


def errors(at: AppTest, where: str = "sidebar") -> str:
    root = at.sidebar if where == "sidebar" else at.main
    return " | ".join(e.value for e in root.error)


# --- entry point ------------------------------------------------------------------------------------------

def test_app_py_serves_the_page_script_and_warms_the_default_scenario():
    import runpy

    import streamlit as st

    from model.app import cache

    ns = runpy.run_path(str(ROOT / "app.py"))
    assert isinstance(ns["app"], st.App) and ns["PAGE_SCRIPT"] == ROOT / "model" / "app" / "page.py"
    cache.warm_up()  # what the server runs at start-up
    # the warmed scenario is the one a first visitor sees
    at = clean(app())
    assert at.selectbox(key="model").value == cache.DEFAULT_DEPLOYMENT.model
    assert at.selectbox(key="gpu").value == cache.DEFAULT_DEPLOYMENT.gpu
    assert at.number_input(key="conc").value == cache.DEFAULT_WORKLOAD.concurrency
    assert at.number_input(key="isl").value == cache.DEFAULT_WORKLOAD.input_len


# --- Estimate ----------------------------------------------------------------------------------------------

def test_estimate_defaults_give_a_meaningful_answer():
    at = clean(app())
    m = metrics(at)
    assert m["Fits"] == "yes"
    assert m["TPOT (mean)"].endswith("ms") and m["TTFT (mean)"].endswith("ms")
    assert float(m["tok/s per GPU"].replace(",", "")) > 100 and m["$ per M tokens"].startswith("$")
    assert at.selectbox(key="gpu").value == "h100-sxm" and at.selectbox(key="model").value == "llama-3.1-8b"
    bar, run = charts(at)  # the memory bar against capacity, the simulated run (TTFT per request, batch, queue)
    assert "vconcat" in run["spec"]
    segments = bar["data"][0]
    assert {"weights", "KV cache (in use)", "activations"} <= set(segments["component"])
    phases = at.dataframe[0].value
    assert list(phases["phase"]) == ["prefill", "decode"] and set(phases["bound"]) <= {"compute", "memory",
                                                                                        "network", "latency"}


def test_estimate_gpu_and_workload_changes_change_the_numbers():
    at = clean(app())
    before = metrics(at)
    at.selectbox(key="gpu").set_value("h200").run()
    after = metrics(clean(at))
    assert after["TPOT (mean)"] != before["TPOT (mean)"]
    assert after["tok/s per GPU"] != before["tok/s per GPU"]
    at.number_input(key="isl").set_value(8192).run()
    assert metrics(clean(at))["TTFT (mean)"] != after["TTFT (mean)"]
    at.radio(key="mode").set_value("batch").run()
    assert metrics(clean(at))["TPOT (mean)"] != after["TPOT (mean)"]


def test_estimate_url_reproduces_a_scenario():
    direct = clean(app(gpu="h200", tp=2, isl=2048, kv="fp8"))
    assert direct.selectbox(key="gpu").value == "h200" and direct.number_input(key="tp").value == 2
    at = clean(app())
    at.selectbox(key="gpu").set_value("h200")
    at.number_input(key="tp").set_value(2)
    at.number_input(key="isl").set_value(2048)
    at.selectbox(key="kv").set_value("fp8").run()
    assert metrics(direct) == metrics(clean(at))


def test_estimate_bad_layout_shows_the_error_next_to_the_widget():
    at = app(tp=3)
    assert not at.exception
    assert "tp: 3 does not divide the 32 attention heads" in errors(at)
    assert any("fix the input" in w.value for w in at.main.warning)
    assert not at.metric  # no numbers for a scenario that cannot be built


def test_estimate_unsupported_precision_and_bad_config_are_reported():
    at = app(gpu="t4", weights="bf16")
    assert not at.exception and "has no bf16 support" in errors(at)
    at = app(model_src="config.json")
    assert not at.exception and "config: is empty" in errors(at)
    at.text_area(key="config_text").set_value('{"model_type": "llama", "hidden_size": ').run()
    assert not at.exception and "config: is not valid JSON" in errors(at)
    at.text_area(key="config_text").set_value('{"model_type": "llama"}').run()
    assert not at.exception and "num_hidden_layers" in errors(at)  # names the missing fields


def test_estimate_pasted_config_is_estimated():
    text = (CATALOGUE / "qwen3-0.6b.json").read_text()
    at = app(model_src="config.json")
    at.text_area(key="config_text").set_value(text).run()
    small = metrics(clean(at))
    assert small["Fits"] == "yes"
    assert small["TPOT (mean)"] != metrics(clean(app()))["TPOT (mean)"]


def test_estimate_shows_a_configuration_that_does_not_fit():
    at = app(model="llama-3.1-405b")
    assert not at.exception
    assert metrics(at)["Fits"] == "no" and metrics(at)["TPOT (mean)"].startswith("—")
    assert "DOES NOT FIT" in errors(at, "main")


def test_estimate_rate_above_capacity_warns():
    at = app(mode="rate", rate=100000)
    assert not at.exception
    assert any("above what this deployment can serve" in w.value for w in at.main.warning)
    assert metrics(at)["TTFT (mean)"] == "∞"


# --- Roofline ----------------------------------------------------------------------------------------------

def _roofline_frames(at: AppTest):
    (chart,) = charts(at)
    layers = chart["spec"]["layer"]
    assert all(layer["encoding"]["x"]["scale"]["type"] == "log" for layer in layers)
    lines, ridges, points = chart["data"]
    return lines, ridges, points


def test_roofline_defaults_show_rooflines_ridges_and_every_operator():
    at = clean(app("Roofline"))
    lines, ridges, points = _roofline_frames(at)
    assert set(lines["dtype"]) == {"bf16"} and len(ridges) == 1
    assert ridges["ridge_flop_per_byte"].iloc[0] == pytest.approx(989.4e12 / 3.35e12)
    assert set(points["phase"]) == {"prefill", "decode"}
    assert {"qkv_proj", "attention", "gate_up_proj", "down_proj", "lm_head"} <= set(points["operator"])
    # decode GEMMs at batch 16 sit left of the bf16 ridge, prefill GEMMs right of it
    gemm = points[points["operator"] == "gate_up_proj"].set_index("phase")["intensity_flop_per_byte"]
    assert gemm["decode"] < ridges["ridge_flop_per_byte"].iloc[0] < gemm["prefill"]


def test_roofline_overlay_and_gpu_change():
    at = clean(app("Roofline"))
    _, ridges, _ = _roofline_frames(at)
    at.selectbox(key="gpu2").set_value("mi300x").run()
    lines, _, points = _roofline_frames(clean(at))
    assert set(lines["device"]) == {"h100-sxm", "mi300x"} and set(points["device"]) == {"h100-sxm", "mi300x"}
    at.selectbox(key="gpu").set_value("a100-sxm-80gb").run()
    _, ridges3, _ = _roofline_frames(clean(at))
    assert set(ridges3["device"]) == {"a100-sxm-80gb", "mi300x"}
    assert ridges3["ridge_flop_per_byte"].iloc[0] != ridges["ridge_flop_per_byte"].iloc[0]


def test_roofline_bad_input():
    at = clean(app("Roofline"))
    at.multiselect(key="dtypes").set_value([]).run()
    assert not at.exception and "Choose at least one dtype" in errors(at, "main")
    at = app("Roofline", gpu2="t4", weights="bf16")  # bf16 weights: fine on the H100, not on a T4
    assert not at.exception and "t4: weights: NVIDIA T4 16GB has no bf16 support" in errors(at, "main")
    at = app("Roofline", tp=5)
    assert not at.exception and "tp: 5 does not divide" in errors(at)


# --- Breakdown ---------------------------------------------------------------------------------------------

def test_breakdown_defaults_and_change():
    at = clean(app("Breakdown"))
    c = charts(at)
    assert len(c) == 6  # by operator, by bound, TPOT and throughput vs concurrency, and vs context
    by_operator, by_bound = c[0]["data"][0], c[1]["data"][0]
    assert by_operator.groupby("phase")["time_s"].sum().gt(0).all()
    assert {"memory", "overhead"} <= set(by_bound["part"])
    tpot_vs_conc = c[2]["data"][0]
    assert tpot_vs_conc["concurrency"].is_monotonic_increasing
    assert tpot_vs_conc["_y"].iloc[-1] > tpot_vs_conc["_y"].iloc[0]
    at.number_input(key="osl").set_value(1024).run()
    c2 = charts(clean(at))
    assert not c2[4]["data"][0]["_y"].equals(c[4]["data"][0]["_y"])  # the context sweep moved
    at.radio(key="mode").set_value("batch").run()
    c3 = charts(clean(at))
    batch_sweep = c3[2]["data"][0]  # static batch: the sweep is over the batch, marking what fits in memory
    assert "batch" in batch_sweep.columns and set(batch_sweep["memory"]) == {"fits", "does not fit"}


def test_breakdown_thresholds_are_exact_and_segments_named_by_family():
    from model.api import deployment
    from model.serving import report

    at = clean(app("Breakdown"))
    exact = report.context_limit(deployment("llama-3.1-8b", "h100-sxm"), "vllm", 256, 16)["context_tokens"]
    captions = " ".join(c.value for c in at.caption)
    assert f"From {exact:,} prompt tokens (exact)" in captions  # not the sweep's next point (32,768)
    ops = charts(at)[0]
    fields = {t["field"] for t in ops["spec"]["encoding"]["tooltip"]}
    assert {"operator", "family"} <= fields and "scale" in ops["spec"]["encoding"]["color"]
    batch = clean(app("Breakdown", mode="batch"))
    assert any("(exact, by bisection)" in c.value for c in batch.caption)


def test_breakdown_bad_input():
    at = app("Breakdown", pp=64)
    assert not at.exception and "pp: 64 stages for 32 layers" in errors(at)


# --- Compare -----------------------------------------------------------------------------------------------

def test_compare_defaults_and_more_precisions():
    at = clean(app("Compare"))
    table = at.dataframe[0].value
    assert list(table["variant"]) == ["h100-sxm", "h200", "a100-sxm-80gb", "mi300x"]
    assert (table["fits"] == "yes").all() and table["tok/s per GPU"].nunique() == 4
    at.multiselect(key="cmp_weights").set_value(["as in the sidebar", "fp8"]).run()
    table2 = clean(at).dataframe[0].value
    assert len(table2) == 8 and "h100-sxm · fp8" in list(table2["variant"])
    fp8 = table2.set_index("variant")
    assert fp8.loc["h100-sxm · fp8", "TPOT"] != fp8.loc["h100-sxm", "TPOT"]


def test_compare_honours_the_sidebar_precisions():
    # the sidebar says fp8 weights and fp8 KV: Compare's default rows are those, so they agree with Estimate
    for gpu in ("h100-sxm", "mi300x"):
        est = clean(app("Estimate", gpu=gpu, weights="fp8", kv="fp8"))
        cmp = clean(app("Compare", gpu=gpu, weights="fp8", kv="fp8")).dataframe[0].value.set_index("variant")
        assert cmp.loc[gpu, "TPOT"] == metrics(est)["TPOT (mean)"]
        assert cmp.loc[gpu, "tok/s per GPU"].split()[0] == metrics(est)["tok/s per GPU"]
    bf16 = clean(app("Compare", gpu="mi300x", weights="bf16", kv="fp8")).dataframe[0].value.set_index("variant")
    assert bf16.loc["mi300x", "TPOT"] != cmp.loc["mi300x", "TPOT"]  # the sidebar's weights, not the checkpoint's


def test_compare_bad_input():
    at = app("Compare")
    at.multiselect(key="cmp_gpus").set_value([]).run()
    assert not at.exception and "Choose at least one GPU" in errors(at, "main")
    at = app("Compare")
    at.multiselect(key="cmp_gpus").set_value(["h100-sxm", "t4"])
    at.multiselect(key="cmp_weights").set_value(["bf16"]).run()
    assert not at.exception and "t4 · bf16: weights: NVIDIA T4 16GB has no bf16 support" in errors(at, "main")
    table = at.dataframe[0].value.set_index("variant")
    assert table.loc["h100-sxm · bf16", "fits"] == "yes" and "no bf16 support" in table.loc["t4 · bf16", "problem"]


# --- Plan --------------------------------------------------------------------------------------------------

def test_plan_defaults_show_a_fleet_with_its_cost_and_launch_commands():
    at = clean(app("Plan"))
    m = metrics(at)
    assert m["$ per hour"].startswith("$") and m["$ per M tokens"].startswith("$") and int(m["GPUs"]) >= 1
    assert m["Power"].endswith("W") and any("Binding constraint" in x.value for x in at.markdown)
    pools = at.dataframe[0].value
    assert {"role", "GPU × n", "layout", "precision", "instances", "routed req/s", "utilisation", "SLO met"} \
        <= set(pools.columns)
    assert (pools["SLO met"] == "yes").all() and pools["instances"].sum() >= 1
    assert any(c.startswith("TTFT p") for c in pools.columns) and any(c.startswith("TPOT p") for c in pools.columns)
    assert any(c.value.startswith("vllm serve meta-llama/Llama-3.1-8B") for c in at.code)
    assert [b.proto.label for b in at.get("download_button")] == ["Download plan (JSON)", "Download pools (CSV)"]
    assert not charts(at)  # the Pareto sweep waits for its checkbox


def test_plan_rate_and_candidates_change_the_plan():
    at = clean(app("Plan"))
    before = metrics(at)
    at.number_input(key="plan_rate").set_value(100.0).run()
    after = metrics(clean(at))
    assert after["$ per hour"] != before["$ per hour"] and int(after["GPUs"]) > int(before["GPUs"])
    # the URL carries the candidates and their overrides: one h200 at $2.50/h
    at = clean(app("Plan", plan_gpus=["l4", "h200"], plan_usd_h200=2.5, plan_avail_h200=1, plan_prec=["fp8/fp8"]))
    pools = at.dataframe[0].value
    assert set(pools["precision"]) == {"fp8/fp8"} and set(pools["GPU × n"]) <= {"l4 × 1", "h200 × 1", "l4 × 2",
                                                                                "l4 × 4", "l4 × 8"}
    h200 = pools[pools["GPU × n"] == "h200 × 1"]
    assert h200["instances"].sum() <= 1 and (h200["$/h"] == "$2.50").all()


def test_plan_pareto_frontier_of_cost_vs_tpot_target():
    at = clean(app("Plan", plan_dist="fixed", plan_roles="aggregated only", plan_pareto="true"))
    (chart,) = charts(at)
    frontier = chart["data"][0].sort_values("target_s")
    assert len(frontier) == 5 and frontier["feasible"].all()
    assert frontier["target_s"].iloc[2] == pytest.approx(0.05)  # centred on the 50 ms TPOT target
    assert frontier["cost_per_hour_usd"].is_monotonic_decreasing  # a looser target never costs more
    assert frontier["mix"].str.contains("×").all()


def test_plan_impossible_slo_shows_the_explanation():
    at = app("Plan", plan_tpot_ms=0.5)
    assert not at.exception and not metrics(at)
    (explanation,) = at.main.error
    assert explanation.value.startswith("TPOT: no configuration meets TPOT <= 0.5 ms")
    at = app("Plan", plan_ttft_ms=1)
    assert not at.exception and at.main.error[0].value.startswith("TTFT")


def test_plan_bad_input_shows_an_error_next_to_the_widget():
    at = clean(app("Plan"))
    at.multiselect(key="plan_gpus").set_value([]).run()
    assert not at.exception and "Choose at least one candidate GPU" in errors(at, "main") and not metrics(at)
    at.multiselect(key="plan_gpus").set_value(["a40"]).run()  # no reference price in hardware_db
    assert not at.exception and "a40: no reference price" in errors(at, "main")
    at = app("Plan", plan_ttft_ms=0, plan_tpot_ms=0)
    assert not at.exception and "Give a TTFT and/or a TPOT target" in errors(at, "main")
    at = app("Plan", plan_objective="goodput")
    assert not at.exception and "budget: the goodput objective" in errors(at, "main")
    at = app("Plan", model_src="config.json")
    assert not at.exception and "planning needs a catalogue model" in errors(at)


# --- Hardware ----------------------------------------------------------------------------------------------

def test_hardware_browse_with_sources():
    at = clean(app("Hardware"))
    devices, details = at.dataframe[0].value, at.dataframe[1].value
    assert "h100-sxm" in set(devices["id"]) and set(devices["kind"]) == {"gpu"}
    assert "NVIDIA H100" in " ".join(details["source"]) and "bandwidth_bytes_per_s" in set(details["field"])
    at.selectbox(key="hw").set_value("mi300x").run()
    assert any("AMD Instinct MI300X" in m.value for m in clean(at).markdown)
    assert "AMD" in " ".join(at.dataframe[1].value["source"])


def test_scenarios_page_runs_a_scenario_from_the_url_and_shows_its_checks():
    at = clean(app("Scenarios", scenario="distserve-goodput-per-gpu"))
    assert at.selectbox(key="scenario").value == "distserve-goodput-per-gpu"
    assert any("DistServe" in m.value for m in at.markdown)
    checks, numbers = at.dataframe[0].value, at.dataframe[1].value
    assert list(checks["check"]) == ["SEED-C01"] and checks["status"].iloc[0] == "reproduced"
    assert "kv_handoff_s" in set(numbers["quantity"])
    # numbers with units, never a dict repr or a 16-digit float
    assert numbers.set_index("quantity").loc["kv_handoff_s", "value"].endswith(("ms", "µs", " s"))
    text = " ".join(numbers["value"])
    assert "{'" not in text and not re.search(r"\d\.\d{6,}", text) and "None" not in text
    at.selectbox(key="scenario").set_value("instinfer-csd-attention").run()
    checks = clean(at).dataframe[0].value
    assert checks.set_index("check").loc["SEED-B08", "status"] == "known gap"  # a miss is shown with its reason
    assert "SmartSSD" in checks.set_index("check").loc["SEED-B08", "note"]


def test_scenarios_page_unknown_id_in_the_url_is_not_a_traceback():
    at = app("Scenarios", scenario="no-such-scenario")
    assert not at.exception


def _custom_form(at: AppTest, **numbers):
    labels = {"id": "id (lowercase, digits, '-', '.')", "bandwidth": "memory bandwidth (GB/s)"}
    for name, value in numbers.items():
        widget = (at.text_input if name == "id" else at.number_input)
        next(w for w in widget if w.label == labels[name]).set_value(value)
    at.button[0].click().run()  # the form's submit button
    return at


def test_hardware_custom_device_changes_the_estimate():
    at = clean(app("Hardware"))
    try:
        _custom_form(at, id="h100-fast", bandwidth=6700.0)
        assert "h100-fast" in clean(at).selectbox(key="gpu").options
        at.radio(key="page").set_value("Estimate").run()
        base = metrics(clean(at))["TPOT (mean)"]
        at.selectbox(key="gpu").set_value("h100-fast").run()
        fast = metrics(clean(at))["TPOT (mean)"]
        assert float(fast.split()[0]) < float(base.split()[0])  # twice the bandwidth: faster memory-bound decode
        # another session does not see this session's device
        assert "h100-fast" not in clean(app()).selectbox(key="gpu").options
    finally:
        unregister_device("h100-fast")  # register_device is process-wide; keep other tests' device lists intact


def test_hardware_custom_device_bad_input_next_to_the_field():
    at = clean(app("Hardware"))
    _custom_form(at, id="H100 Custom!")
    assert not at.exception and "id" in errors(at, "main") and "should match pattern" in errors(at, "main")
    at = clean(app("Hardware"))
    _custom_form(at, id="h200")
    assert "already names a device" in errors(at, "main")
    at = clean(app("Hardware"))
    _custom_form(at, id="h100-zero", bandwidth=0.0)
    assert "bandwidth_bytes_per_s must be a finite positive number" in errors(at, "main")


# --- Formulas ----------------------------------------------------------------------------------------------

def test_formulas_defaults_and_change():
    at = clean(app("Formulas"))
    prefill = [x.value for x in at.latex]
    assert len(prefill) >= 10 and all("=" in x for x in prefill)
    at.radio(key="phase").set_value("decode").run()
    decode = [x.value for x in clean(at).latex]
    assert decode != prefill and len(decode) == len(prefill)
    at.selectbox(key="quantity").set_value("weight_bytes").run()
    assert [x.value for x in clean(at).latex] != decode


def test_formulas_bad_input():
    at = app("Formulas", tp=7)
    assert not at.exception and "tp: 7 does not divide" in errors(at)
    assert not at.latex


# --- input that cannot be used (issue 17) -----------------------------------------------------------------

def _sidebar_warnings(at: AppTest) -> str:
    return " | ".join(w.value for w in at.sidebar.warning)


@pytest.mark.parametrize("key, value, shown", [("gpu", "nonexistent", "h100-sxm"), ("model", "foo", "llama-3.1-8b"),
                                               ("tp", "-3", "1"), ("isl", "1e12", "1024")])
def test_bad_url_parameter_is_named_next_to_the_widget(key, value, shown):
    """A mistyped shared link must not silently show another scenario: the parameter and what is shown instead
    are named in the sidebar."""
    at = app(**{key: value})
    assert not at.exception
    text = _sidebar_warnings(at)
    assert f"URL parameter {key}={value!r} could not be used" in text
    assert f"showing {key}=" in text and shown in text


def test_good_url_parameters_give_no_warning():
    at = clean(app(gpu="h200", tp=2, isl=2048, kv="fp8"))
    assert "URL parameter" not in _sidebar_warnings(at)


def test_concurrency_above_the_engine_limit_says_it_queues():
    at = app(conc=99999)
    assert not at.exception
    assert "99,999 sequences in flight asked" in _sidebar_warnings(at) and "the rest queue" in _sidebar_warnings(at)


@pytest.mark.parametrize("page", ["Roofline", "Breakdown"])
def test_configuration_that_does_not_fit_gets_no_operator_times(page):
    at = app(page, model="llama-3.1-405b")
    assert not at.exception
    assert not at.dataframe and not at.get("vega_lite_chart")
    assert any("does not fit" in i.value for i in at.main.info)


def test_estimate_phases_table_absent_when_it_does_not_fit():
    at = app(model="llama-3.1-405b")
    assert not at.exception
    assert all("phase" not in df.value.columns for df in at.dataframe)
    assert any("No phase step times" in c.value for c in at.main.caption)
