"""The library functions behind the app's pages: roofline chart data (model/serving/roofline_points.py), the scenario
report (model/serving/report.py) and custom devices (model/hardware/custom.py). Hand derivations where the
numbers are simple, invariants against the serving model where they are not."""

from __future__ import annotations

import numpy as np
import pytest

from model.api import deployment
from model.errors import RidgeplanError
from model.hardware import load_device, register_device, unregister_device
from model.hardware.custom import USER_SOURCE, custom_device, device_numbers, device_table, file_device_ids
from model.serving.roofline_points import attainable_flop_per_s, operator_points, ridge_points, roofline_lines
from model.serving import report
from model.serving.breakdown import op_table
from model.serving.estimate import estimate
from model.serving.static import StaticEstimate, static_batch
from model.serving.workload import Lengths, Workload
from model.serving.workload import mean_decode_context_tokens

H100_BF16_FLOP_PER_S, H100_BYTES_PER_S = 989.4e12, 3.35e12
CHAT = Workload(Lengths.fixed(1024, 256), concurrency=16)


@pytest.fixture(scope="module")
def llama8b():
    return deployment("llama-3.1-8b", "h100-sxm")


@pytest.fixture(scope="module")
def served(llama8b):
    return estimate(llama8b, CHAT)


# --- roofline chart data -----------------------------------------------------------------------------------

def test_roofline_lines_hand_values():
    h100 = load_device("h100-sxm")
    df = roofline_lines(h100, ["bf16"])
    ridge = H100_BF16_FLOP_PER_S / H100_BYTES_PER_S  # 295.3 FLOP/byte
    assert list(df["intensity_flop_per_byte"]) == pytest.approx([0.01, ridge, 1e4])
    assert list(df["attainable_flop_per_s"]) == pytest.approx([0.01 * H100_BYTES_PER_S, H100_BF16_FLOP_PER_S,
                                                               H100_BF16_FLOP_PER_S])
    # a ridge beyond the range is clipped: the whole line is memory-bound
    clipped = roofline_lines(h100, ["bf16"], (1.0, 10.0))
    assert list(clipped["attainable_flop_per_s"]) == pytest.approx([3.35e12, 3.35e13, 3.35e13])
    # every dtype of the device by default, fastest first; unknown dtypes are skipped
    assert list(roofline_lines(h100)["dtype"].unique())[:2] == ["fp8", "int8"]
    assert set(roofline_lines(h100, ["bf16", "fp4"])["dtype"]) == {"bf16"}
    with pytest.raises(ValueError):
        roofline_lines(h100, ["bf16"], (10.0, 1.0))


def test_ridge_points_and_attainable():
    h100 = load_device("h100-sxm")
    r = ridge_points(h100, ["bf16", "fp8"]).set_index("dtype")
    assert r.loc["bf16", "ridge_flop_per_byte"] == pytest.approx(295.343, rel=1e-4)
    assert r.loc["fp8", "ridge_flop_per_byte"] == pytest.approx(2 * 295.343, rel=1e-4)
    got = attainable_flop_per_s(h100, "bf16", [1.0, 295.343, 1000.0])
    assert got == pytest.approx([3.35e12, H100_BF16_FLOP_PER_S, H100_BF16_FLOP_PER_S], rel=1e-4)


def test_operator_points_sit_under_the_roofline():
    d = deployment("llama-3.1-70b", "h100-sxm", tp=2)
    dev = d.device
    top = max(dev.peak_flop_per_s.values())
    for phase, step in {"prefill": d.step(1, 2048, 0), "decode": d.step(32, 1, 4096)}.items():
        pts = operator_points(step, phase)
        table = op_table(step)
        assert list(pts["operator"]) == list(table["operator"]) and set(pts["phase"]) == {phase}
        on = pts[pts["on_chart"]]
        # modelled time is never below the roofline: achieved <= min(peak, I x bandwidth) of the fastest dtype
        bound = np.minimum(top, on["intensity_flop_per_byte"] * dev.memory.bandwidth_bytes_per_s)
        assert (on["achieved_flop_per_s"] <= bound * (1 + 1e-9)).all()
        assert (on["achieved_flop_per_s"] == on["flops"] / on["time_s"]).all()
        # the tensor-parallel all-reduce moves bytes over the network but does no arithmetic: off the chart
        ar = pts.set_index("operator").loc["tp_all_reduce"]
        assert not ar["on_chart"] and ar["network_bytes"] > 0 and ar["bound"] == "network"


# --- scenario report ---------------------------------------------------------------------------------------

def test_shapes_and_steps(llama8b, served):
    assert float(mean_decode_context_tokens(1024, 256)) == 1024 + 255 / 2
    shapes = report.phase_shapes(served)
    decode_seqs = round(float(served.state.decode_seqs[0]))
    assert shapes == {"prefill": (1, 1024, 0), "decode": (decode_seqs, 1, round(1024 + 127.5))}
    steps = report.phase_steps(served)
    assert steps["decode"].time_s[0] == pytest.approx(llama8b.step(decode_seqs, 1, 1152).time_s[0])
    cached = estimate(llama8b, Workload(Lengths.fixed(1024, 256), concurrency=16, prefix_hit_rate=0.5))
    assert report.phase_shapes(cached)["prefill"] == (1, 512, 512)
    static = static_batch(llama8b, 8, 1024, 256)
    assert report.operating_batches(static) == (8, 8) and report.phase_shapes(static)["decode"][0] == 8


@pytest.mark.parametrize("pp", [1, 2])
def test_phase_table_parts_add_up_to_the_step(pp):
    d = deployment("llama-3.1-8b", "h100-sxm", tp=2, pp=pp)
    table = report.phase_table(report.phase_steps(estimate(d, CHAT))).set_index("phase")
    assert table[list(report.BOUND_PARTS)].sum(axis=1).to_numpy() == pytest.approx(table["time_s"].to_numpy())
    assert (table.loc["decode", "pipeline_p2p_s"] > 0) == (pp > 1)
    # decode of 16 sequences streams the weights (memory); a 1,024-token prefill is GEMM-bound (compute)
    assert table.loc["decode", "bound"] == "memory" and table.loc["prefill", "bound"] == "compute"
    long = report.bound_stack(report.phase_steps(estimate(d, CHAT)))
    assert (long["seconds"] > 0).all() and {"compute", "memory", "overhead"} <= set(long["part"])


def test_operator_stack_shares(served):
    df = report.operator_stack(report.phase_steps(served))
    assert df.groupby("phase")["share"].sum().to_numpy() == pytest.approx([1.0, 1.0])


def test_headline_matches_the_estimates(llama8b, served):
    h = report.headline(served)
    full = served.to_dict()
    assert h["fits"] and h["mode"] == "concurrency" and h["concurrency"] == 16
    assert h["ttft_s"] == full["ttft_mean_s"] and h["tpot_s"] == full["tpot_mean_s"]
    assert h["output_tokens_per_s_per_gpu"] == full["output_tokens_per_s_per_gpu"]
    assert h["usd_per_million_output_tokens"] == full["cost_per_million_output_tokens_usd"]
    assert h["ttft_percentiles_s"] == full["ttft_percentiles_s"]
    static = static_batch(llama8b, 8, 1024, 256)
    hs = report.headline(static)
    assert hs["tpot_s"] == static.tpot_s and hs["output_tokens_per_s_per_gpu"] == static.throughput_per_gpu_tokens_per_s
    # $3.00/h for one GPU at T tokens/s: 3 / (T x 3600) x 1e6 dollars per million tokens
    assert hs["usd_per_million_output_tokens"] == pytest.approx(3.00 / (static.throughput_tokens_per_s * 3600) * 1e6)


def test_does_not_fit_has_no_latency():
    big = deployment("llama-3.1-405b", "h100-sxm")
    for est in (estimate(big, CHAT), static_batch(big, 1, 1024, 256)):
        h = report.headline(est)
        assert not h["fits"] and h["ttft_s"] is None and h["tpot_s"] is None
        assert h["usd_per_million_output_tokens"] is None
        seg = report.memory_segments(est)
        assert seg["bytes"].sum() > big.capacity_bytes and not seg["fits"].any()
        assert "DOES NOT FIT" in report.fit_summary(est)


@pytest.mark.parametrize("engine", ["vllm", "trtllm"])
def test_memory_segments_fill_the_capacity(llama8b, engine):
    est = estimate(llama8b, CHAT, engine)
    seg = report.memory_segments(est).set_index("component")["bytes"]
    assert seg.sum() == pytest.approx(llama8b.capacity_bytes)
    m = est.memory
    assert seg["weights"] == m["weights_bytes"]
    assert seg["KV cache (in use)"] == pytest.approx(16 * m["kv_bytes_per_sequence"])
    assert seg["KV cache (in use)"] + seg["KV pool (free)"] == pytest.approx(m["kv_pool_bytes"])
    static = report.memory_segments(static_batch(llama8b, 8, 1024, 256))
    assert static["bytes"].sum() == pytest.approx(llama8b.capacity_bytes)
    assert "fits" in report.fit_summary(est)


def test_context_sweep_runs_fewer_sequences_when_kv_runs_out():
    d = deployment("llama-3.1-8b", "l4")  # 24 GB: the KV pool holds few long sequences
    df = report.context_sweep(d, "vllm", 256, 32, contexts=[512, 8192, 131072])
    assert list(df["scheduled_concurrency"]) == [32, 3, 0] and list(df["limited_by"]) == ["asked", "kv", "kv"]
    assert list(df["fits"]) == [True, True, False] and np.isnan(df["tpot_s"].iloc[2])
    assert df["tpot_s"].iloc[1] > df["tpot_s"].iloc[0]
    from model.serving.batching import steady_state
    from model.serving.policy import ENGINES
    one = steady_state(d, ENGINES["vllm"], 8192, 256, 32)
    assert df["tpot_s"].iloc[1] == pytest.approx(float(one.tpot_s[0]))
    assert df["output_tokens_per_s_per_gpu"].iloc[1] == pytest.approx(float(one.output_tokens_per_s[0]))
    with pytest.raises(RidgeplanError):
        report.context_sweep(d, "vllm", 256, 0.5)


def test_batch_sweep_matches_steps_and_flags_memory(llama8b):
    df = report.batch_sweep(llama8b, 2048)
    step = llama8b.step(df["batch"].to_numpy(), 1, 2048)
    assert df["tpot_s"].to_numpy() == pytest.approx(step.time_s)
    assert df["output_tokens_per_s_per_gpu"].to_numpy() == pytest.approx(df["batch"] / step.time_s)
    fits = df["fits"].to_numpy()
    assert fits[0] and not fits[-1] and (np.diff(fits.astype(int)) <= 0).all()  # fits up to a batch, then not


def test_compare_rows_and_errors():
    rows = [{"label": "h100", "gpu": "h100-sxm"}, {"label": "h200", "gpu": "h200"},
            {"label": "t4 bf16", "gpu": "t4", "weights": "bf16"}, {"label": "tp3", "gpu": "h100-sxm", "tp": 3}]
    df = report.compare(rows, lambda **kw: deployment("llama-3.1-8b", **kw), CHAT).set_index("label")
    assert df.loc["h100", "tpot_s"] == report.headline(estimate(deployment("llama-3.1-8b", "h100-sxm"), CHAT))["tpot_s"]
    assert df.loc["h200", "tpot_s"] < df.loc["h100", "tpot_s"]  # more bandwidth, memory-bound decode
    assert "no bf16 support" in df.loc["t4 bf16", "error"] and "tp: 3 does not divide" in df.loc["tp3", "error"]
    static = report.compare(rows[:1], lambda **kw: deployment("llama-3.1-8b", **kw), CHAT, batch=4)
    assert static["mode"].iloc[0] == "batch" and static["concurrency"].iloc[0] == 4


def test_run_scenario_and_formula_values(llama8b):
    assert isinstance(report.run_scenario(llama8b, CHAT, batch=2), StaticEstimate)
    fp8 = deployment("llama-3.1-8b", "h100-sxm", weights="fp8", tp=2)
    v = report.formula_values(fp8, 4, 1, 2048)
    assert (v["B"], v["T"], v["C"], v["b_w"], v["tp"], v["b_kv"]) == (4.0, 1.0, 2048.0, 1.0, 2, 2.0)


# --- custom devices ----------------------------------------------------------------------------------------

def test_custom_device_replaces_numbers_and_sources():
    data = custom_device("h100-sxm", id="h100-fast", bandwidth_bytes_per_s=6.7e12, capacity_bytes=96e9,
                         peak_flop_per_s={"fp8": 0, "bf16": 1000e12}, usd_per_hour=0)
    dev = load_device(data)
    assert dev.memory.bandwidth_bytes_per_s == 6.7e12 and dev.memory.total_bytes == 96e9  # no stale runtime total
    assert "fp8" not in dev.peak_flop_per_s and dev.ridge_flop_per_byte["bf16"] == pytest.approx(1000e12 / 6.7e12)
    assert dev.price is None and dev.sources["memory"] == USER_SOURCE and "based on h100-sxm" in dev.notes
    assert dev.scale_up == load_device("h100-sxm").scale_up  # untouched sections are copied
    try:
        assert register_device(data).id == "h100-fast" and load_device("h100-fast").memory.capacity_bytes == 96e9
        assert "h100-fast" not in file_device_ids()
    finally:
        unregister_device("h100-fast")


def test_custom_device_errors_name_the_field():
    with pytest.raises(RidgeplanError) as err:
        custom_device("h100-sxm", id="h200")
    assert err.value.field == "id"
    with pytest.raises(RidgeplanError) as err:
        custom_device("h100-sxm", id="H100 custom")
    assert "id" in err.value.field
    with pytest.raises(RidgeplanError) as err:
        custom_device("h100-sxm", id="h100-x", bandwidth_bytes_per_s=0)
    assert "bandwidth_bytes_per_s" in err.value.one_line()


def test_device_table_and_numbers():
    table = device_table([load_device("h100-sxm"), load_device("t4")]).set_index("id")
    assert table.loc["h100-sxm", "ridge_bf16_flop_per_byte"] == pytest.approx(295.343, rel=1e-4)
    assert table.loc["t4", "bf16_or_fp16_flop_per_s"] == load_device("t4").peak_flop_per_s["fp16"]
    numbers = device_numbers(load_device("h100-sxm")).set_index(["section", "field"])
    assert numbers.loc[("memory", "bandwidth_bytes_per_s"), "value"] == 3.35e12
    assert "datasheet" in numbers.loc[("memory", "bandwidth_bytes_per_s"), "source"]
    assert numbers.loc[("price", "usd_per_hour"), "source"].startswith("Mercatus")
