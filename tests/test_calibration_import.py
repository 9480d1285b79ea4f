"""Calibration from the public kernel tables: the staged fit recovers known parameters, shipped files are sound,
estimates name the file they use, and the importer reads only kernel tables (never silicon_sample.csv)."""

from __future__ import annotations

import io
import json
import tomllib
import zipfile
from dataclasses import fields, replace
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from model.calibration.bench_cache import bench_l2_share
from model.calibration.fit import predictor
from model.calibration.importer import fit_rows, split_labels
from model.calibration.tables import ENGINES, PACKAGE, TableSource
from model.errors import RidgeplanError
from model.hardware.db import builtin_root, load_device
from model.roofline.efficiency import Efficiency
from model.roofline.efficiency_forms import gemm_sustain
from model.roofline.efficiency_sets import efficiency_for
from model.serving.deployment import deployment

pa = pytest.importorskip("pyarrow")
import pyarrow.parquet as pq  # noqa: E402

H100 = load_device("h100-sxm")
CALIBRATION = builtin_root() / "calibration"
TRUE = replace(efficiency_for(H100, calibration=False), gemm_max_16=0.82, gemm_m_half=24.0, gemm_n_half=64.0,
               gemm_max_8=0.6, mem_max=0.88, mem_bytes_half=2e6, kernel_floor_s=3e-6, roofline_p=2.0,
               attention_max=0.55, attention_q_half=12.0, attention_floor_s=9e-6, collective_base_s=4e-6,
               scale_up_bus_efficiency=0.72, attention_kv_half=900.0, gemm_tile_m_8=64.0, gemm_quant_s_8=1.5e-6,
               gemm_quant_bytes_8=8.0, gemm_k_s=1.2e-9, gemm_k_split=3000.0, gemm_k_scale_8=0.7,
               gemm_quant_row_s_8=5e-9, attention_d_half=40.0,
               decode_attention_floor_s=6e-6, nvls_bus_efficiency=0.62, nvls_latency_s=25e-6,
               collective_floor_s=2e-6, gemv_mem_scale=0.9, attention_roofline_p=3.0,
               gemm_k_split_8=6000.0, gemm_max_8b=0.5, gemm_tile_m_8b=32.0, gemm_k_scale_8b=1.4, gemm_quant_s_8b=1e-6,
               gemm_quant_bytes_8b=3.0, gemm_quant_row_s_8b=1e-9, decode_item_s=10e-9,
               prefill_tile_s=15e-9, gemm_sustain_drop=0.2, gemm_sustain_s=0.5e-3, bench_l2_floor_s=0.8e-6)


def synthetic_rows(eff: Efficiency, noise: float = 0.01, seed: int = 1) -> pd.DataFrame:
    """Kernel and all-reduce rows of every family the import fits, timed by the model with `eff` (+ noise)."""
    rng = np.random.default_rng(seed)
    g = [(m, n, k) for m in (1, 4, 16, 24, 32, 48, 64, 256, 1024, 4096, 16384) for n in (128, 1024, 4096, 16384)
         for k in (1024, 4096, 8192)]
    rows = [dict(kernel="gemm", dtype=dt, family=f"gemm_{dt}", m=m, n=n, k=k, size=2.0 * m * n * k)
            for dt in ("bf16", "fp8") for m, n, k in g]
    rows += [dict(kernel="copy", dtype="bf16", family="copy", bytes=b, size=b) for b in np.geomspace(6e7, 4e9, 40)]
    for b in (1, 8, 64, 256):
        for c in (128, 1024, 8192, 32768):
            for h, hk in ((32, 8), (64, 8), (32, 32), (64, 1)):
                rows.append(dict(kernel="decode_attention", dtype="bf16", family="attention_decode", batch=b, heads=h,
                                 kv_heads=hk, head_dim=128, context=c, size=2.0 * b * hk * 128 * c))
        for s in (16, 128, 512, 2048, 8192):
            for d in (64, 128, 256):  # head dimensions inform attention_d_half
                rows.append(dict(kernel="attention", dtype="bf16", family="attention_prefill", batch=b, heads=32,
                                 kv_heads=8, head_dim=d, seq_len=s, size=2.0 * b * 32 * d * s * s))
    rows += [dict(kernel="all_reduce", dtype="bf16", family="all_reduce", message_bytes=mb, ranks=r, size=mb)
             for r in (2, 4, 8) for mb in np.geomspace(1e3, 5e8, 20)]
    # block-scaled FP8 kernels (the tables' fp8_block rows) on the same shapes (last: the other rows keep their noise)
    rows += [dict(kernel="gemm", dtype="fp8", family="gemm_fp8", m=m, n=n, k=k, size=2.0 * m * n * k, block_scaled=1.0)
             for m, n, k in g]
    # FP8 rows also past twice their k split (6,000), per-tensor and block-scaled, so the split and the loop scale are
    # told apart from the fixed time warm rows save (bench_l2_floor_s), which the narrow, deep GEMMs also pay
    rows += [dict(kernel="gemm", dtype="fp8", family="gemm_fp8", m=m, n=n, k=16384, size=2.0 * m * n * 16384,
                  block_scaled=b) for b in (0.0, 1.0) for m in (1, 4, 16, 64, 256, 1024) for n in (128, 1024, 4096)]
    table = pd.DataFrame(rows)
    table["measured_s"] = 1.0
    # the GEMM rows an SGLang-style benchmark (six copies, each its own operands) re-reads from a warm L2
    table["bench_l2_share"] = bench_l2_share(table, "sglang", 50e6)
    clean = predictor(table, H100)(eff)
    return table.assign(measured_s=clean * np.exp(rng.normal(0, noise, len(table))))


def test_staged_fit_recovers_known_parameters_and_holds_out_by_shape():
    rows = synthetic_rows(TRUE)
    result = fit_rows(rows, H100)
    tolerance = {"gemm_max_16": 0.03, "gemm_max_8": 0.03, "mem_max": 0.03, "attention_max": 0.05,
                 "kernel_floor_s": 0.15, "attention_floor_s": 0.15,
                 "scale_up_bus_efficiency": 0.03, "gemm_m_half": 0.25, "attention_kv_half": 0.15,
                 "gemm_tile_m_8": 0.15, "gemm_quant_bytes_8": 0.15, "gemm_quant_s_8": 0.3, "gemm_k_s": 0.2,
                 "gemm_quant_row_s_8": 0.3, "attention_d_half": 0.15, "decode_attention_floor_s": 0.15,
                 "nvls_bus_efficiency": 0.05, "nvls_latency_s": 0.25, "gemm_k_split": 0.2,
                 "gemm_k_scale_8": 0.2, "gemv_mem_scale": 0.05, "attention_roofline_p": 0.25,
                 "gemm_k_split_8": 0.2, "gemm_max_8b": 0.03, "gemm_k_scale_8b": 0.2, "gemm_quant_s_8b": 0.3, "gemm_tile_m_8b": 0.2,
                 "gemm_quant_bytes_8b": 0.2, "gemm_quant_row_s_8b": 0.3,
                 "decode_item_s": 0.25, "prefill_tile_s": 0.25, "bench_l2_floor_s": 0.25}
    for name, tol in tolerance.items():
        assert result.params[name] == pytest.approx(getattr(TRUE, name), rel=tol), name
    # the long-GEMM fall: its drop and size scale trade against the ceiling over the few long rows (the largest are held
    # out); the ceiling it gives GEMMs of 0.25-2 ms of peak compute (gemm_max_16 x gemm_sustain) is what the rows pin
    fitted = replace(TRUE, **{n: result.params[n] for n in ("gemm_sustain_drop", "gemm_sustain_s", "gemm_max_16")})
    for x_s in (0.25e-3, 0.5e-3, 1e-3, 2e-3):
        assert float(fitted.gemm_max_16 * gemm_sustain(x_s, 1.0, fitted)) == pytest.approx(
            float(TRUE.gemm_max_16 * gemm_sustain(x_s, 1.0, TRUE)), rel=0.035), x_s
    # an all-reduce row pays collective_base_s + collective_floor_s alike (both fixed per call): only their sum is
    # identified by all-reduce rows (steps differ: the base overlaps compute, the floor does not)
    fixed = result.params["collective_base_s"] + result.params["collective_floor_s"]
    assert fixed == pytest.approx(TRUE.collective_base_s + TRUE.collective_floor_s, rel=0.1)
    held = result.rows[result.rows["split"] != "fit"]
    assert {"interpolation", "extrapolation"} <= set(held["split"])
    assert float(np.median(np.abs(held["after"] / held["measured_s"] - 1))) < 0.03  # about the noise level
    assert float(np.median(np.abs(held["before"] / held["measured_s"] - 1))) > 0.1  # the defaults were off


def test_staged_fit_keeps_an_engine_fact_and_recovers_the_decode_fallback_bandwidth():
    # TensorRT-LLM's decode kernel limit (KERNEL_FACTS) is set, not fitted; the per-query-head kernel's bandwidth
    # share is fitted from the rows it runs (64 query heads on 1 KV head, and plain MHA, in synthetic_rows); so is the
    # merge cost of the calls its multi-block rule splits (decode_split_tokens, also a fact)
    facts = {"decode_group_limit": 32.0, "decode_split_tokens": 128.0}
    # (a bandwidth share below the nominal-bandwidth cap, 0.88 x 1.1 < 1, so every fallback row informs it)
    true = replace(TRUE, decode_fallback_mem_scale=1.1, decode_split_s=4e-6, **facts)
    result = fit_rows(synthetic_rows(true), H100, facts=facts)
    assert result.params["decode_group_limit"] == 32.0 and result.params["decode_split_tokens"] == 128.0
    assert result.params["decode_fallback_mem_scale"] == pytest.approx(1.1, rel=0.05)
    assert result.params["decode_split_s"] == pytest.approx(4e-6, rel=0.25)
    # without the fact the parameter is not fitted (nothing runs that kernel); nor the unfused KV store without rows
    # whose value heads are narrower than their key heads
    plain = fit_rows(synthetic_rows(TRUE), H100).params
    assert "decode_fallback_mem_scale" not in plain and "kv_store_unfused_s" not in plain


def test_staged_fit_recovers_the_unfused_kv_store_call():
    # SGLang's MiMo-V2 rows (keys 192 wide, values 128: tables.with_v_head_dim) pay the unfused KV write per call
    true = replace(TRUE, kv_store_unfused_s=8e-6)
    mimo = pd.DataFrame([dict(kernel="decode_attention", dtype="bf16", family="attention_decode", batch=b, heads=h,
                              kv_heads=hk, head_dim=192, v_head_dim=128, context=c, size=2.0 * b * hk * 192 * c)
                         for b in (1, 16, 256) for c in (2, 512, 8192) for h, hk in ((64, 4), (16, 1))]
                        + [dict(kernel="attention", dtype="bf16", family="attention_prefill", batch=b, heads=16,
                                kv_heads=1, head_dim=192, v_head_dim=128, seq_len=s, size=2.0 * b * 16 * 192 * s * s)
                           for b in (1, 8) for s in (16, 256, 2048)])
    mimo = mimo.assign(measured_s=predictor(mimo.assign(measured_s=1.0), H100)(true)
                       * np.exp(np.random.default_rng(3).normal(0, 0.01, len(mimo))))
    result = fit_rows(pd.concat([synthetic_rows(true), mimo], ignore_index=True), H100)
    assert result.params["kv_store_unfused_s"] == pytest.approx(8e-6, rel=0.25)


def test_staged_fit_recovers_the_host_time_of_eagerly_timed_block_scaled_rows():
    # vLLM's fp8_block rows are timed without CUDA graphs (the gemm_eager_8b fact): the loop runs at the slower of a
    # 60 us host time per call and the kernels, so the small block-scaled calls sit at 60 us
    true = replace(TRUE, gemm_eager_8b=1.0, gemm_host_s_8b=60e-6)
    result = fit_rows(synthetic_rows(true), H100, facts={"gemm_eager_8b": 1.0})
    assert result.params["gemm_eager_8b"] == 1.0
    assert result.params["gemm_host_s_8b"] == pytest.approx(60e-6, rel=0.1)
    held = result.rows[(result.rows["split"] != "fit") & (result.rows["family"] == "gemm_fp8")]
    assert float(np.median(np.abs(held["after"] / held["measured_s"] - 1))) < 0.03
    # without the fact (tables timed in CUDA graphs) no host time is fitted
    assert "gemm_host_s_8b" not in fit_rows(synthetic_rows(TRUE), H100).params


def mla_rows(eff: Efficiency, noise: float = 0.01, seed: int = 2) -> pd.DataFrame:
    """MLA rows as the tables hold them (absorbed decode over the 576-wide latent; expanded and absorbed prefill),
    timed by the model with `eff` (+ noise)."""
    rng = np.random.default_rng(seed)
    absorbed, expanded = dict(kv_heads=1, head_dim=544.0, kv_dim=576.0), dict(head_dim=160.0, kv_dim=320.0)
    rows = [dict(kernel="decode_attention", family="mla_decode", batch=b, heads=h, context=c, **absorbed)
            for b in (1, 8, 64, 256) for c in (2, 100, 1024, 8192, 65536) for h in (64, 128)]
    rows += [dict(kernel="attention", family="mla_prefill", batch=b, heads=128, seq_len=s, kv_heads=128, **expanded)
             for b in (1, 4, 32) for s in (1, 16, 100, 512, 2048, 8192)]
    rows += [dict(kernel="attention", family="mla_prefill", batch=b, heads=128, seq_len=s, **absorbed)
             for b in (1, 8) for s in (16, 512, 4096)]
    table = pd.DataFrame(rows).assign(dtype="bf16", mla=1.0, measured_s=1.0)
    table["size"] = table["batch"] * table["heads"] * table["seq_len"].fillna(table["context"]) ** 2
    clean = predictor(table, H100)(eff)
    return table.assign(measured_s=clean * np.exp(rng.normal(0, noise, len(table))))


def test_staged_fit_recovers_the_mla_stage_with_its_block_fact():
    # the MLA stage on top of the attention curve: ceiling and half-point scales, corner, latent and query/output
    # bandwidth shares and the decode and prefill call floors, with the 64 x 64 blocks set as a kernel fact
    mla = dict(mla_attention_scale=1.1, mla_d_half_scale=2.0, mla_kv_half_scale=0.3, mla_q_half_scale=0.5,
               mla_roofline_p=3.0, mla_mem_scale=1.2, mla_qo_mem_scale=0.5, mla_decode_floor_s=11e-6,
               mla_prefill_floor_s=7e-6)
    true = replace(TRUE, mla_block=64.0, **mla)
    rows = pd.concat([synthetic_rows(true), mla_rows(true)], ignore_index=True)
    result = fit_rows(rows, H100, facts={"mla_block": 64.0})
    assert result.params["mla_block"] == 64.0
    tolerance = {"mla_attention_scale": 0.1, "mla_d_half_scale": 0.3, "mla_kv_half_scale": 0.2,
                 "mla_q_half_scale": 0.3, "mla_roofline_p": 0.3, "mla_mem_scale": 0.1, "mla_qo_mem_scale": 0.1,
                 "mla_decode_floor_s": 0.15, "mla_prefill_floor_s": 0.2}
    for name, tol in tolerance.items():
        assert result.params[name] == pytest.approx(mla[name], rel=tol), name
    held = result.rows[(result.rows["split"] != "fit") & result.rows["family"].str.startswith("mla")]
    assert float(np.median(np.abs(held["after"] / held["measured_s"] - 1))) < 0.03


def test_staged_fit_recovers_the_generic_kernel_speed_past_the_flash_head_dimensions():
    # an engine fact (here: prefill head dimensions above 128 leave the flash kernel) and the speed of the kernel
    # those rows run (the head_dim 256 prefill rows of synthetic_rows), fitted beside the head-dimension half-point
    facts = {"attention_wide_head_dim": 128.0}
    true = replace(TRUE, attention_wide_scale=0.6, **facts)
    result = fit_rows(synthetic_rows(true), H100, facts=facts)
    assert result.params["attention_wide_head_dim"] == 128.0
    assert result.params["attention_wide_scale"] == pytest.approx(0.6, rel=0.1)
    assert result.params["attention_d_half"] == pytest.approx(40.0, rel=0.2)


def test_split_holds_out_the_smallest_and_largest_and_every_kth_shape():
    rows = pd.DataFrame({"family": ["a"] * 100 + ["b"] * 10, "size": list(range(100)) + list(range(10)),
                         "measured_s": 1.0})
    labels = split_labels(rows, k=5, edge=0.05)
    a = labels[:100]
    assert list(a[:5]) == ["extrapolation"] * 5 and list(a[95:100]) == ["extrapolation"] * 5
    assert (a[5:95] == "interpolation").sum() == 18 and a[9] == "interpolation" and a[5] == "fit"
    b = labels[100:]
    assert b[0] == b[9] == "extrapolation" and (b == "fit").sum() >= 6


# --- the shipped files ----------------------------------------------------------------------------------

SHIPPED = sorted(CALIBRATION.glob("*.toml"))
EFF_FIELDS = {f.name for f in fields(Efficiency)} - {"source"}


def test_calibration_files_are_shipped_for_the_table_gpus_in_hardware_db():
    names = {p.name for p in SHIPPED}
    for dev in ("h100-sxm", "h200", "b200", "gb200", "b300", "gb300", "a100-sxm-80gb", "l40s"):
        for engine in ENGINES:
            assert f"{dev}.{engine}.toml" in names
    for arch in ("hopper", "blackwell"):
        assert f"_class-{arch}.vllm.toml" in names


@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: p.name)
def test_shipped_calibration_file_parses_matches_schema_and_names_its_source(path):
    data = tomllib.loads(path.read_text())
    assert data["schema_version"] == 1 and data["engine"] in ENGINES and data["date"]
    assert path.name == f"{data['device']}.{data['engine']}.toml"
    src = data["source"]
    assert src["package"] == PACKAGE and src["version"] == "0.12.0" and src["license"] == "Apache-2.0"
    assert "NVIDIA" in src["credit"] and src["rows_read"] > src["rows_used"] > 0
    assert src["file_count"] == len(src["files"]) > 0
    assert all(f.endswith(".parquet") and "silicon_sample" not in f for f in src["files"])
    assert set(data["efficiency"]) <= EFF_FIELDS and data["efficiency"]
    if data["device"].startswith("_class-"):
        assert data["leave_one_out_error"]
        return
    device = load_device(data["device"])
    assert all(s.split("/")[0].replace("_sxm", "") in device.id.replace("-sxm", "").replace("-80gb", "")
               for s in src["files"])
    held = data["held_out_error"]
    assert any(k.endswith("_interpolation") for k in held) and any(k.endswith("_extrapolation") for k in held)
    assert all(v >= 0 for v in held.values())
    eff = efficiency_for(device, True, engine=data["engine"])  # loads and validates every value
    for name, value in data["efficiency"].items():
        assert getattr(eff, name) == pytest.approx(value)


def test_estimates_name_the_calibration_file_they_use():
    vllm = deployment("llama-3.1-8b", "h100-sxm", engine="vllm", calibration=True)
    assert any("calibration h100-sxm.vllm.toml" in a for a in vllm.assumptions())
    trt = deployment("llama-3.1-8b", "h100-sxm", engine="trtllm", calibration=True)
    assert any("calibration h100-sxm.trtllm.toml" in a for a in trt.assumptions())
    assert trt.eff != vllm.eff
    # a Hopper part without tables gets the class calibration; Ampere without its own file stays hand-set
    pcie = deployment("llama-3.1-8b", "h100-pcie", engine="vllm", calibration=True)
    assert any("_class-hopper.vllm.toml" in a for a in pcie.assumptions())
    a100 = deployment("llama-3.1-8b", "a100-pcie-40gb", engine="vllm", calibration=True)
    assert any("hand-set, no calibration file for a100-pcie-40gb (vllm)" in a for a in a100.assumptions())
    # no engine named (library callers, training): the hand-set defaults, said so
    plain = deployment("llama-3.1-8b", "h100-sxm")
    assert not any("calibration h100" in a for a in plain.assumptions())
    assert any("no engine named" in a for a in plain.assumptions())
    with pytest.raises(RidgeplanError, match="engine"):
        deployment("llama-3.1-8b", "h100-sxm", engine="tgi")


# --- the importer reads only kernel tables ---------------------------------------------------------------

def _parquet(frame: pd.DataFrame) -> bytes:
    buf = io.BytesIO()
    pq.write_table(pa.Table.from_pandas(frame), buf)
    return buf.getvalue()


@pytest.fixture()
def fake_wheel(tmp_path) -> Path:
    """A wheel-shaped zip with a silicon_sample.csv next to small H100 vLLM GEMM and all-reduce tables."""
    gemm = synthetic_rows(TRUE, noise=0.0)
    gemm = gemm[gemm["kernel"] == "gemm"]
    g = pd.DataFrame({"gemm_dtype": gemm["dtype"].map({"bf16": "bfloat16", "fp8": "fp8"}), "m": gemm["m"],
                      "n": gemm["n"], "k": gemm["k"], "kernel_source": "x", "latency": gemm["measured_s"] * 1e3})
    ar = synthetic_rows(TRUE, noise=0.0)
    ar = ar[ar["kernel"] == "all_reduce"]
    c = pd.DataFrame({"op_name": "all_reduce", "kernel_source": "vLLM_custom_graph", "num_gpus": ar["ranks"],
                      "message_size": ar["message_bytes"] / 2, "latency": ar["measured_s"] * 1e3})
    path = tmp_path / "aiconfigurator_core-0.12.0-cp311-abi3-manylinux_2_28_x86_64.whl"
    base = "aiconfigurator_core/systems/"
    with zipfile.ZipFile(path, "w") as z:
        z.writestr(base + "silicon_sample.csv", "must,never,be,read\n")
        z.writestr(base + "data/h100_sxm/gemm/vllm/0.24.0/gemm_perf.parquet", _parquet(g))
        z.writestr(base + "data/h100_sxm/gemm/vllm/0.24.0/collection_meta.yaml", "schema_version: 1\n")
        z.writestr(base + "data/h100_sxm/comm/vllm/0.24.0/custom_allreduce_perf.parquet", _parquet(c))
    return path


def test_import_never_opens_silicon_sample_and_reads_only_parquet_tables(fake_wheel, tmp_path, monkeypatch):
    from model.calibration.ship import run_import

    read: list[str] = []
    original = zipfile.ZipFile.open

    def spy(self, name, *args, **kwargs):  # every member read goes through ZipFile.open
        read.append(name if isinstance(name, str) else name.filename)
        return original(self, name, *args, **kwargs)

    monkeypatch.setattr(zipfile.ZipFile, "open", spy)
    report = run_import(fake_wheel, tmp_path / "out", engines=("vllm",))
    assert read and all(n.endswith(".parquet") and "/systems/data/" in n for n in read)
    assert not any("silicon_sample" in n for n in read + report.opened)
    written = tomllib.loads((tmp_path / "out" / "h100-sxm.vllm.toml").read_text())
    assert written["efficiency"]["gemm_max_16"] == pytest.approx(TRUE.gemm_max_16, rel=0.05)
    assert written["source"]["file_count"] == 2


def test_cli_calibrate_import_writes_files_and_reports_held_out_errors(fake_wheel, tmp_path, capsys):
    from model.cli import main

    code = main(["calibrate", "import", str(fake_wheel), "--out", str(tmp_path / "o"), "--engine", "vllm", "--json"])
    data = json.loads(capsys.readouterr().out)
    assert code in (0, None) and any(w.endswith("h100-sxm.vllm.toml") for w in data["written"])
    assert {r["split"] for r in data["held_out"]} == {"interpolation", "extrapolation"}


def test_table_source_errors_are_one_line(tmp_path, monkeypatch):
    with pytest.raises(RidgeplanError, match="no such wheel"):
        TableSource(tmp_path / "missing.whl")
    (tmp_path / "empty").mkdir()
    with pytest.raises(RidgeplanError, match="systems/data"):
        TableSource(tmp_path / "empty")
    import builtins

    real_import = builtins.__import__

    def no_pyarrow(name, *args, **kwargs):
        if name.startswith("pyarrow"):
            raise ImportError(name)
        return real_import(name, *args, **kwargs)

    from model.calibration import tables

    monkeypatch.setattr(builtins, "__import__", no_pyarrow)
    with pytest.raises(RidgeplanError, match=r"ridgeplan\[calibrate\]"):
        tables._pyarrow()


def test_validate_labels_kernel_cases_and_drops_the_synthetic_rows():
    from model.validation import validate

    calibrated = validate(("kernels",), calibration=True).cases.set_index("case")
    assert "h100-bf16-gemm-8192" not in calibrated.index and "h100-large-copy" not in calibrated.index
    assert set(calibrated["sample"]) <= {"in-sample", "held-out"}
    assert calibrated.loc["h100-bf16-gemm-mamf", "sample"] == "held-out"  # fitted to other data: held out
    assert calibrated.loc["mi300x-bf16-gemm-mamf", "sample"] == "in-sample"  # a source of the hand-set default
    hand_set = validate(("kernels",), calibration=False)
    assert set(hand_set.cases["sample"]) == {"in-sample"}
    assert hand_set.median_abs_error("kernels", "held-out") != hand_set.median_abs_error("kernels", "held-out")  # nan


def test_cli_step_and_estimate_take_the_engine_and_name_its_calibration(capsys):
    from model.cli import main

    assert main(["step", "--model", "llama-3.1-8b", "--gpu", "h100-sxm", "--engine", "sglang", "--calibrated", "--json"]) in (0, None)
    step = json.loads(capsys.readouterr().out)
    assert any("h100-sxm.sglang.toml" in a for a in step["assumptions"])
    assert main(["estimate", "--model", "llama-3.1-8b", "--gpu", "b200", "--engine", "trtllm", "--calibrated", "--json"]) in (0, None)
    est = json.loads(capsys.readouterr().out)
    assert any("b200.trtllm.toml" in a for a in est["assumptions"])
    assert main(["step", "--engine", "tgi", "--json"]) == 2


def test_own_calibrate_fit_file_wins_over_the_engine_file(tmp_path, monkeypatch):
    import model.roofline.efficiency_sets as efficiency_module

    monkeypatch.setattr(efficiency_module, "calibration_path", lambda ident, engine=None: tmp_path / (
        f"{ident}.{engine}.toml" if engine else f"{ident}.toml"))
    (tmp_path / "h100-sxm.vllm.toml").write_text("[efficiency]\ngemm_max_16 = 0.5\n")
    assert efficiency_for(H100, True, engine="vllm").gemm_max_16 == 0.5
    assert efficiency_for(H100).gemm_max_16 == 0.80  # no engine: hand-set
    (tmp_path / "h100-sxm.toml").write_text("[efficiency]\ngemm_max_16 = 0.6\n")
    assert efficiency_for(H100, True, engine="vllm").gemm_max_16 == 0.6
    assert "calibration h100-sxm.toml" in efficiency_for(H100, True, engine="vllm").source


def test_a_folder_source_lists_only_the_data_tables(fake_wheel, tmp_path):
    with zipfile.ZipFile(fake_wheel) as z:
        z.extractall(tmp_path / "x")
    source = TableSource(tmp_path / "x")  # found under aiconfigurator_core/systems/data
    assert source.gpus() == ["h100_sxm"] and all(f.endswith(".parquet") for f in source.files())
    rel = source.newest("h100_sxm", "gemm", "vllm", "gemm_perf")
    assert len(source.read(rel)) > 0 and source.opened == [str(tmp_path / "x/aiconfigurator_core/systems/data" / rel)]
    with pytest.raises(RidgeplanError, match="not a kernel table"):
        source.read("../silicon_sample.csv")


def test_attention_efficiency_saturates_in_kv_length_by_hand():
    from model.roofline.efficiency_forms import attention_eta

    eff = replace(efficiency_for(H100, calibration=False), attention_q_half=0.0, attention_kv_half=1000.0)
    # 0.6 * 1000 / (1000 + 1000) = 0.3; unknown KV length (None or 0): no KV term
    assert float(attention_eta(8.0, 0.6, eff, 1000.0)) == pytest.approx(0.3)
    assert float(attention_eta(8.0, 0.6, eff, 9000.0)) == pytest.approx(0.54)
    assert float(attention_eta(8.0, 0.6, eff)) == pytest.approx(0.6)
    assert float(attention_eta(8.0, 0.6, eff, 0.0)) == pytest.approx(0.6)


def test_fp8_gemm_pays_its_tile_and_activation_quantization_by_hand():
    from model.roofline.efficiency_forms import gemm_quant_s
    from model.roofline.kernel import gemm_time
    from model.roofline.kernels import predict_kernels

    eff = replace(efficiency_for(H100, calibration=False), mem_max=0.85, gemm_tile_m_8=64.0, gemm_quant_s_8=2e-6,
                  gemm_quant_bytes_8=3.0)
    assert eff.gemm_tile("fp8") == 64.0 and eff.gemm_tile("bf16") == eff.gemm_tile_m
    assert eff.gemm_quant("bf16") == (0.0, 0.0, 0.0) and eff.gemm_quant("fp8") == (2e-6, 3.0, 0.0)
    # 2 us + 3 bytes x 16384 x 1024 elements / (3.35 TB/s x 0.85) = 2 us + 17.676 us
    bw = H100.memory.bandwidth_bytes_per_s
    assert bw == pytest.approx(3.35e12)
    assert float(gemm_quant_s(16384, 1024, (2e-6, 3.0, 0.0), bw, eff)) == pytest.approx(19.676e-6, rel=1e-3)
    # a kernel-table row pays it on top of the GEMM; the GEMM inside a model (gemm_time, the step) does not
    table = pd.DataFrame({"kernel": ["gemm"] * 2, "dtype": ["fp8", "bf16"], "m": 16384, "n": 1024, "k": 1024})
    bare_eff = replace(eff, gemm_quant_s_8=0.0, gemm_quant_bytes_8=0.0)
    added = predict_kernels(table, H100, eff) - predict_kernels(table, H100, bare_eff)
    assert added[0] == pytest.approx(19.676e-6, rel=1e-3) and added[1] == 0.0
    inside = gemm_time(16384, 1024, 1024, device=H100, dtype="fp8", eff=eff, bytes_per_weight=1.0)
    assert float(inside.time_s) == float(gemm_time(16384, 1024, 1024, device=H100, dtype="fp8", eff=bare_eff,
                                                   bytes_per_weight=1.0).time_s)
    # a one-token FP8 GEMM fills 1 of 64 tile rows (a BF16 one 1 of 16); n = 8192 at n_half 128: 8192/8320
    eff = replace(eff, gemm_m_half=0.0, gemm_n_half=128.0)
    one = gemm_time(1, 8192, 8192, device=H100, dtype="fp8", eff=eff, bytes_per_weight=1.0)
    eta = eff.gemm_max_8 / 64 * 8192 / 8320
    assert float(one.compute_s) == pytest.approx(2 * 8192 * 8192 / (H100.peak("fp8") * eta), rel=1e-9)


def test_step_uses_the_fp8_tile_but_not_the_tables_quantization_call():
    from model.roofline.evaluator import evaluate

    d = deployment("llama-3.1-8b", H100, weights="fp8", calibration=False)
    ops = d.graph.evaluate({**d.symbols(), "B": 4, "T": 1, "C": 1024})
    base = d.context
    step = float(evaluate(ops, base).step_time_s()[0])
    # engines fuse the activation quantization into the kernel before the GEMM: a step does not pay the call the
    # kernel tables time with each FP8 GEMM
    quant = replace(base, eff=replace(base.eff, gemm_quant_s_8=1e-3, gemm_quant_bytes_8=8.0))
    assert float(evaluate(ops, quant).step_time_s()[0]) == pytest.approx(step, rel=1e-12)
    # the FP8 tile height does reach the step's dense GEMMs (4 decode rows fill 4 of 128 rows, not 4 of 16)
    assert base.gemm_tile["dense"] == base.eff.gemm_tile_m_8 == 16.0
    wide = replace(base, gemm_tile={**base.gemm_tile, "dense": 128.0})
    dense = np.array([op.kind == "gemm" and op.weight_role == "dense" for op in ops.ops])
    slower = evaluate(ops, wide)
    assert np.all(slower.compute_s[dense] == pytest.approx(8 * evaluate(ops, base).compute_s[dense], rel=1e-9))


def test_fp8_tile_reaches_dense_gemms_but_not_the_grouped_expert_kernels():
    from model.precision import Precision
    from model.roofline.evaluator import context_for

    eff = replace(efficiency_for(H100, calibration=False), gemm_tile_m_8=64.0)
    ctx = context_for(H100, Precision(weights="fp8"), efficiency=eff)
    # the tile is fitted to dense GEMM tables; MoE grouped kernels are not in them and keep the 16-row tile, as do
    # the 16-bit layers (embeddings, the modules a quantized checkpoint leaves unquantized)
    assert ctx.gemm_tile == {"dense": 64.0, "unquantized": 16.0, "expert": 16.0, "embedding": 16.0}
    # so does the FP8 k loop's scale
    ctx = context_for(H100, Precision(weights="fp8"), efficiency=replace(eff, gemm_k_scale_8=0.7))
    assert ctx.gemm_k_scale == {"dense": 0.7, "unquantized": 1.0, "expert": 1.0, "embedding": 1.0}


def test_the_k_loop_stops_growing_where_the_library_splits_k_by_hand():
    from model.roofline.efficiency_forms import gemm_k_loop_s
    from model.roofline.kernel import gemm_time

    eff = replace(efficiency_for(H100, calibration=False), gemm_k_s=1.2e-9, gemm_k_split=3000.0)
    # k = 1024 < 3000: 1024 x 1.2 ns = 1.2288 us; k = 7168 and 16384: capped at 3000 x 1.2 ns = 3.6 us
    assert gemm_k_loop_s(np.array([1024.0, 7168.0, 16384.0]), eff) == pytest.approx([1.2288e-6, 3.6e-6, 3.6e-6])
    # gemm_k_split = 0 (the hand-set classes): no cap, k x gemm_k_s
    assert float(gemm_k_loop_s(16384.0, replace(eff, gemm_k_split=0.0))) == pytest.approx(16384 * 1.2e-9)
    # n = 32, k = 7168, one token: the roofline ~0.2 us, so the capped loop sets the busy time
    t = gemm_time(1, 32, 7168, device=H100, dtype="bf16", eff=eff, bytes_per_weight=2.0)
    assert float(t.busy_s) == pytest.approx(3.6e-6)
    assert float(efficiency_for(H100, calibration=False).gemm_k_split) == 0.0
    # an FP8 GEMM's loop at gemm_k_scale_8 of the 16-bit one: 0.7 x 3.6 us = 2.52 us (16-bit GEMMs keep 1)
    fp8 = replace(eff, gemm_k_scale_8=0.7)
    assert float(gemm_time(1, 32, 7168, device=H100, dtype="fp8", eff=fp8, bytes_per_weight=1.0).busy_s) \
        == pytest.approx(2.52e-6)
    assert float(gemm_time(1, 32, 7168, device=H100, dtype="bf16", eff=fp8, bytes_per_weight=2.0).busy_s) \
        == pytest.approx(3.6e-6)


def test_a_gemm_waits_for_one_tiles_serial_loop_over_k_by_hand():
    from model.roofline.kernel import gemm_time

    eff = replace(efficiency_for(H100, calibration=False), gemm_k_s=5e-10)
    # n = 32, k = 7168, one token: the roofline is 32 x 7168 x 2 bytes / 3.35 TB/s ~ 0.2 us; the k loop 3.584 us
    t = gemm_time(1, 32, 7168, device=H100, dtype="bf16", eff=eff, bytes_per_weight=2.0)
    assert float(t.busy_s) == pytest.approx(7168 * 5e-10)
    assert float(t.time_s) == pytest.approx(7168 * 5e-10 + eff.kernel_floor_s)
    # a large GEMM is far above it: unchanged
    big = dict(device=H100, dtype="bf16", bytes_per_weight=2.0)
    assert float(gemm_time(8192, 8192, 8192, eff=eff, **big).time_s) == float(
        gemm_time(8192, 8192, 8192, eff=replace(eff, gemm_k_s=0.0), **big).time_s)
    # the step evaluator applies the same bound to its GEMMs
    from model.roofline.evaluator import evaluate

    d = deployment("llama-3.1-8b", H100, calibration=False)
    ops = d.graph.evaluate({**d.symbols(), "B": 1, "T": 1, "C": 128})
    slow = replace(d.context, eff=replace(d.context.eff, gemm_k_s=1e-8))  # 10 ns per k element: binds every GEMM
    times = evaluate(ops, slow)
    gemm = np.array([op.kind == "gemm" for op in ops.ops]) & (ops.m[:, 0] > 0)
    busy = times.time_s[gemm, 0] - times.floor_s[gemm, 0]
    k_loop = ops.k[gemm, 0] * 1e-8
    assert np.all(busy >= k_loop * (1 - 1e-12)) and np.sum(np.isclose(busy, k_loop, rtol=1e-9)) >= 3
    assert np.all(times.network_s[gemm, 0] == 0)  # a latency of the GEMM itself, not network time


def test_quantization_rows_head_dimension_mla_and_caps_by_hand():
    from model.roofline.efficiency_forms import attention_eta, gemm_quant_s
    from model.roofline.kernel import compute_eta, roofline_terms
    from model.roofline.kernels import predict_kernels

    eff = replace(efficiency_for(H100, calibration=False), mem_max=0.85, attention_q_half=0.0, attention_kv_half=0.0,
                  attention_d_half=64.0, mla_attention_scale=0.5, mla_d_half_scale=2.0)
    # per-row quantization: 2 us + 3 B x 16384 x 1024 / (3.35 TB/s x 0.85) + 5 ns x 16384 rows = 2 + 17.676 + 81.92 us
    assert float(gemm_quant_s(16384, 1024, (2e-6, 3.0, 5e-9), 3.35e12, eff)) == pytest.approx(101.596e-6, rel=1e-4)
    # head dimension at d_half 64: d = 64 halves the ceiling, d = 192 keeps 3/4 of it
    assert float(attention_eta(8.0, 0.6, eff, 1000.0, 64.0)) == pytest.approx(0.3)
    assert float(attention_eta(8.0, 0.6, eff, 1000.0, 192.0)) == pytest.approx(0.45)
    # MLA: ceiling 0.5 x attention_max (0.70), half-point 2 x 64 = 128: d = 128 -> 0.70 x 0.5 x 0.5 = 0.175
    assert float(compute_eta("attention", 8.0, 1000.0, eff, depth=128.0, mla=True)) == pytest.approx(0.175)
    assert float(compute_eta("attention", 8.0, 1000.0, eff, depth=128.0)) == pytest.approx(0.70 * 128 / 192)
    # no kernel beats the peak: 0.70 x 4 = 2.8 stops at 1
    big = replace(eff, mla_attention_scale=4.0, attention_d_half=0.0)
    assert float(compute_eta("attention", 8.0, 1000.0, big, depth=544.0, mla=True)) == 1.0
    # attention KV reads at attention_mem_scale of the streaming ceiling (mem_bytes_half 0.5 MB): 1 GB at
    # 0.5 x 0.85 x 1e9/(1e9 + 5e5) of 3.35 TB/s; a scale of 2 stops at the nominal bandwidth
    _, half = roofline_terms(0.0, 1e9, 1.0, 1.0, 3.35e12, eff, 0.5)
    assert float(half) == pytest.approx(1e9 / (3.35e12 * 0.5 * 0.85 * 1e9 / (1e9 + 5e5)))
    _, capped = roofline_terms(0.0, 1e9, 1.0, 1.0, 3.35e12, eff, 2.0)
    assert float(capped) == pytest.approx(1e9 / 3.35e12)
    # a decode call pays decode_attention_floor_s, a prefill call attention_floor_s, each only its own
    table = pd.DataFrame({"kernel": ["decode_attention", "attention"], "dtype": "bf16", "batch": 1, "heads": 8,
                          "kv_heads": 8, "head_dim": 128, "context": [8192, None], "seq_len": [None, 512]})
    floors = replace(eff, decode_attention_floor_s=5e-6, attention_floor_s=7e-6)
    added = predict_kernels(table, H100, floors) - predict_kernels(table, H100, eff)
    assert added == pytest.approx([5e-6, 7e-6])


def test_indexing_a_stacked_context_keeps_every_per_role_field():
    # the planner stacks its candidates' contexts once and indexes them per scenario grid (take_context): a field
    # the indexing forgot would silently fall back to its default (here the FP8 k-loop scale back to 1)
    from model.precision import Precision
    from model.roofline.evaluator import ExecContext, context_for, stack_contexts, take_context

    eff = replace(efficiency_for(H100, calibration=False), gemm_k_scale_8=0.7, gemm_tile_m_8=64.0)
    contexts = [context_for(H100, Precision(weights="fp8"), efficiency=eff), context_for(H100, efficiency=eff)]
    taken = take_context(stack_contexts(contexts), np.array([0, 1, 0]))
    for f in fields(ExecContext):
        value = getattr(taken, f.name)
        if isinstance(value, dict) and f.name != "comm":
            assert set(value) == set(getattr(contexts[0], f.name)), f.name
    assert list(taken.gemm_k_scale["dense"]) == [0.7, 1.0, 0.7]
    assert list(taken.gemm_tile["dense"]) == [64.0, 16.0, 64.0]


def test_staged_fit_drops_half_points_the_rows_do_not_identify():
    # GEMMs built without row or column half-points (nor a long-GEMM fall): the fit's parsimony step (importer._parsimonious) sets both to
    # exactly 0 (no such term) instead of leaving them wherever the flat loss let them drift; the ceiling, corner
    # and floor are recovered as before
    true = replace(TRUE, gemm_m_half=0.0, gemm_n_half=0.0, gemm_sustain_drop=0.0, gemm_sustain_s=0.0)
    result = fit_rows(synthetic_rows(true), H100)
    assert result.params["gemm_m_half"] == 0.0 and result.params["gemm_n_half"] == 0.0
    # likewise the long-GEMM fall, with its size scale
    assert result.params["gemm_sustain_drop"] == 0.0 and result.params["gemm_sustain_s"] == 0.0
    assert result.after.gemm_m_half == 0.0 and result.after.gemm_n_half == 0.0
    for name in ("gemm_max_16", "mem_max", "roofline_p"):
        assert result.params[name] == pytest.approx(getattr(true, name), rel=0.05), name
    # every parameter of the stage is still written (those idle in the refit keep their fitted values)
    assert {"mem_bytes_half", "kernel_floor_s", "gemv_mem_scale"} <= set(result.params)
