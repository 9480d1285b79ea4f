"""Engine rows (Blackwell, aiconfigurator's public sample) as layouts: every pool an engine ran is expressible and
accepted by that engine's rule; rows map to validated Deployments."""

from __future__ import annotations

import math
from pathlib import Path

import pandas as pd
import pytest

from model.engines import check_layout
from model.errors import RidgeplanError
from model.validation.engine_rows_layout import row_deployment, row_layout

ROWS = Path(__file__).resolve().parents[2] / "shared" / "validation" / "engine_rows_blackwell.csv"
ROWS = ROWS if ROWS.exists() else Path("/work/shared/validation/engine_rows_blackwell.csv")
DENSE = ("Llama", "Qwen3-32B")


@pytest.mark.skipif(not ROWS.exists(), reason="engine rows not available")
def test_every_engine_pool_is_accepted_by_its_engine():
    pd = pytest.importorskip("pandas")
    rows = pd.read_csv(ROWS)
    assert not rows["system"].isin(["h100_sxm", "h200_sxm"]).any()  # the held-out rows are not in this file
    pools = 0
    for _, r in rows.iterrows():
        for pool in ([""] if r["mode"] == "agg" else ["prefill", "decode"]):
            lay = row_layout(r, pool)
            check_layout(r["backend"], tp=lay.tp, pp=lay.pp, attention_dp=lay.attention_dp, moe_tp=lay.moe_tp,
                         moe_ep=lay.ep, is_moe=not any(k in r["model_path"] for k in DENSE))
            pools += 1
    assert pools > 4000


def test_row_mapping_by_hand():
    row = {"model_path": "deepseek-ai/DeepSeek-R1", "system": "b200_sxm", "backend": "trtllm",
           "gemm_quant_mode": "nvfp4", "moe_quant_mode": "nvfp4", "tp_size": 1, "pp_size": 1,
           "attention_dp_size": 16, "moe_tp_size": 4, "moe_ep_size": 4}
    d = row_deployment(row)  # 16 GPUs on one 8-GPU B200 node: the export's TP4 x EP4 launch (4 GPUs)
    assert d.layout.label() == "TP1xADP4xEP4" and d.layout.gpus == 4
    assert (d.precision.weights, d.precision.kv, d.device.id, d.node.id) == ("nvfp4", "fp8", "b200", "dgx-b200")
    nvl = row_deployment(dict(row, system="gb200"))  # one NVL72 domain holds 16 GPUs: as written
    assert nvl.layout.label() == "TP1xADP16xEP4xMoETP4" and nvl.layout.gpus == 16
    vllm = dict(row, backend="vllm", system="gb200")
    with pytest.raises(RidgeplanError, match="vLLM"):
        row_deployment(vllm)  # vLLM has no MoE-TP x EP split
    with pytest.raises(RidgeplanError, match="held-out"):
        row_deployment(dict(row, system="h200_sxm"))
    dense = {"model_path": "nvidia/Qwen3-32B-NVFP4", "system": "gb200", "backend": "trtllm", "precision": "fp4",
             "tp_size": 2, "attention_dp_size": 0, "moe_tp_size": 0, "moe_ep_size": 0}
    assert row_deployment(dense).layout.label() == "TP2"


@pytest.mark.skipif(not ROWS.exists(), reason="engine rows not available")
def test_moe_tpot_report_on_a_few_rows():
    pd = pytest.importorskip("pandas")
    from model.validation.engine_rows_layout import moe_tpot_report

    rows = pd.read_csv(ROWS)
    pick = rows[(rows["model_path"] == "deepseek-ai/DeepSeek-V3") & (rows["system"] == "gb200")
                & (rows["mode"] == "disagg") & rows["decode_batch_size"].notna()].head(3)
    rep = moe_tpot_report(pick)
    assert len(rep) == 3 and rep["error"].notna().all()
    assert (rep["error"].abs() < 0.5).all()  # wide-EP decode pools on NVL72 (attention-DP 32 x EP 32 rows)


def test_export_that_multiplied_gpus_by_ep_is_read_as_the_launch():
    """One InferenceMAX export wrote `--tp 8 --ep-size 8` (8 GPUs, InferenceX: GPU count = tp x pp) as tp_size 64
    with MoE-TP 8 x MoE-EP 8; the launch is 8 GPUs, MoE-EP 8, MoE-TP 8 / 8 = 1."""
    base = {"model_path": "deepseek-ai/DeepSeek-R1", "system": "b200_sxm", "backend": "sglang", "pp_size": 1}
    tagged = dict(base, id="2026_04_06_deepseek_r1_b200_sxm_sglang_fp8_agg_1024x1024_c4_tp8_ep8_920", tp_size=64,
                  attention_dp_size=1, moe_tp_size=8, moe_ep_size=8)
    lay = row_layout(tagged)
    assert (lay.tp, lay.attention_dp, lay.moe_tp, lay.ep, lay.gpus) == (8, 1, 1, 8, 8)
    # TensorRT-LLM with enable_attention_dp: attention_dp_size 64 -> 8 attention-DP ranks of TP 1
    dp = dict(tagged, backend="trtllm", tp_size=1, attention_dp_size=64)
    assert (row_layout(dp).tp, row_layout(dp).attention_dp, row_layout(dp).ep) == (1, 8, 8)
    # the `tp4_0_ep4_0` tag of the other export, whose columns are already the launch: unchanged
    other = dict(base, id="2026_03_25_x_agg_1024x1024_c4_tp4_0_ep4_0_7", tp_size=4, attention_dp_size=1,
                 moe_tp_size=1, moe_ep_size=4)
    assert (row_layout(other).tp, row_layout(other).moe_tp, row_layout(other).ep) == (4, 1, 4)
    # no tag: more GPUs than one 8-GPU B200 node split MoE-TP 4 x MoE-EP 4 -> the launch is TP 4, EP 4
    untagged = dict(base, id="cfg12", tp_size=16, attention_dp_size=1, moe_tp_size=4, moe_ep_size=4)
    assert (row_layout(untagged).gpus, row_layout(untagged).moe_tp, row_layout(untagged).ep) == (4, 1, 4)
    # no tag, vLLM DP attention written as tp = attention_dp = 4 with EP 16: 4 GPUs, DP 4, EP 4
    vllm = dict(base, backend="vllm", id="cfg13", tp_size=4, attention_dp_size=4, moe_tp_size=1, moe_ep_size=16)
    assert (row_layout(vllm).tp, row_layout(vllm).attention_dp, row_layout(vllm).ep) == (1, 4, 4)
    # a GB200 NVL72 pool is not one 8-GPU node: a 16-GPU MoE-TP 4 x EP 4 layout stays as written
    nvl = dict(untagged, system="gb200")
    assert row_layout(nvl).gpus == 16
    # a disaggregated pool is never rebuilt from the (prefill) tag
    assert row_layout(dict(tagged, prefill_tp_size=8, prefill_moe_tp_size=1, prefill_moe_ep_size=8), "prefill").tp == 8


def test_glm5_hub_id_of_the_old_organisation_maps_to_the_catalogue():
    from model.validation.engine_rows_layout import row_model

    assert row_model({"model_path": "zhipuai/GLM-5"}) == "glm-5"


def test_empty_attention_dp_is_off_when_the_moe_columns_close_the_rule():
    pd = pytest.importorskip("pandas")
    from model.validation.engine_rows import _layout_reason

    row = pd.Series({"tp_size": 8, "attention_dp_size": float("nan"), "moe_tp_size": 2, "moe_ep_size": 4})
    assert _layout_reason(row) == ""  # 2 x 4 = TP 8: attention DP off
    assert _layout_reason(row.copy().replace({2: 1})) != ""  # 1 x 4 != 8: the split is not recorded
    dense = pd.Series({"tp_size": 2, "attention_dp_size": 0, "moe_tp_size": 0, "moe_ep_size": 0})
    assert _layout_reason(dense) == ""


def test_multinode_totals_are_refused_with_the_reason():
    from model.validation.engine_rows_layout import multinode_total_reason

    row = {"id": "2026_04_06_deepseek_r1_gb200_trtllm_fp4_agg_1024x1024_c2252_tp12_ep1_27", "system": "gb200",
           "mode": "agg", "tp_size": 12}
    assert "GPU total of a multi-node disaggregated run" in multinode_total_reason(row)
    twin = dict(row, mode="disagg", tp_size=float("nan"), prefill_tp_size=12, decode_tp_size=12)
    assert multinode_total_reason(twin)
    assert multinode_total_reason(dict(row, system="b200_sxm")) == ""  # not a GB200/GB300 rack
    assert multinode_total_reason(dict(twin, decode_tp_size=8)) == ""  # the pools are recorded apart


def test_mtp_runs_are_known_by_their_image_and_run_with_the_scripts_draft_depth():
    from model.serving.mtp import mtp_acceptance
    from model.validation.engine_rows_layout import mtp_image, mtp_max_num_tokens, row_speculation

    row = {"backend": "trtllm", "model_path": "deepseek-ai/DeepSeek-R1", "system": "b200_sxm", "mode": "agg",
           "tp_size": 8, "pp_size": 1, "attention_dp_size": 1, "moe_tp_size": 1, "moe_ep_size": 8,
           "silicon_data_source": "source_file=2026-04-06.csv; image=nvcr.io/nvidia/tensorrt-llm/release:1.2.0rc6.post3"}
    assert mtp_image(row) == "tensorrt-llm/release:1.2.0rc6.post3"
    assert mtp_image(dict(row, silicon_data_source=row["silicon_data_source"].replace("post3", "post2"))) == ""
    assert mtp_image(dict(row, system="gb200")) == ""
    # InferenceX PR #392's MTP sweep in the plain runs' image: only its 2026-01-14 rows
    jan = "source_file=2026-04-06.csv; measured=2026-01-14T00:00:00.000Z; image=nvcr.io/nvidia/tensorrt-llm/release:1.1.0rc2.post2"
    assert mtp_image(dict(row, silicon_data_source=jan)) == "tensorrt-llm/release:1.1.0rc2.post2"
    assert mtp_image(dict(row, silicon_data_source=jan.replace("2026-01-14", "2025-12-15"))) == ""
    spec = row_speculation(row)  # InferenceX dsr1_fp8_b200_trt_mtp.sh: MTP=3 without attention DP
    assert (spec.k, spec.alpha, spec.mtp) == (3, mtp_acceptance(3), True) and spec.tokens_per_step == pytest.approx(2.82)
    adp = dict(row, tp_size=1, attention_dp_size=8, moe_tp_size=1, moe_ep_size=8)
    assert row_speculation(adp).k == 1  # MTP=1 with DP_ATTENTION
    assert row_speculation(dict(row, silicon_data_source="x")) is None
    # ((MTP+1) x MAX_BATCH_SIZE + ISL + 64 + 63) // 64 x 64: (4 x 32 + 1024 + 127) // 64 x 64 = 1279 // 64 x 64 = 1216
    assert mtp_max_num_tokens(3, 32, 1024) == 1216
    assert mtp_max_num_tokens(1, 4, 8192) == (2 * 4 + 8192 + 127) // 64 * 64 == 8320


@pytest.mark.skipif(not ROWS.exists(), reason="engine rows not available")
def test_no_aggregated_b200_or_b300_row_is_read_as_more_than_one_node():
    """The aggregated B200/B300 runs are single-node (8 GPUs): after reading the launch, none spans more."""
    pd = pytest.importorskip("pandas")
    rows = pd.read_csv(ROWS)
    agg = rows[(rows["mode"] == "agg") & rows["system"].isin(["b200_sxm", "b300_sxm"])]
    gpus = [row_layout(r).gpus for _, r in agg.iterrows()]
    assert len(gpus) > 1500 and max(gpus) <= 8


ENGINE_ROWS = Path(__file__).resolve().parents[1].parent / "shared" / "validation" / "engine_rows_blackwell.csv"


@pytest.mark.skipif(not ENGINE_ROWS.is_file(), reason="the Blackwell engine rows are not next to this checkout")
def test_mtp_rows_simulated_with_drafting_and_calibration_on_request(tmp_path):
    import pandas as pd

    from model.validation.engine_rows import engine_rows_report
    from model.validation.engine_rows_layout import mtp_image, row_deployment

    df = pd.read_csv(ENGINE_ROWS)
    mtp = df[df.apply(lambda r: bool(mtp_image(r)), axis=1)]
    row = mtp[mtp["silicon_data_source"].str.contains("silicon_concurrency=4;")].iloc[0]
    plain = df[(df["silicon_data_source"].str.contains("1.2.0rc6.post2")) & (df["id"] != row["id"])]
    twin = plain[(plain["isl"] == row["isl"]) & (plain["osl"] == row["osl"]) & (plain["tp_size"] == row["tp_size"])
                 & (plain["moe_ep_size"] == row["moe_ep_size"]) & (plain["precision"] == row["precision"])
                 & plain["silicon_data_source"].str.contains("silicon_concurrency=4;")]
    path = tmp_path / "rows.csv"
    pd.concat([row.to_frame().T, twin.head(1)]).to_csv(path, index=False)
    rows = engine_rows_report(path).rows.set_index("id")
    assert (rows["reason"] == "").all()
    assert rows.loc[row["id"], "speculation"] == "MTP"
    if len(twin):  # the same launch without drafting decodes one token per step: slower per output token
        assert rows.loc[row["id"], "sim_tpot_s"] < rows.loc[twin.iloc[0]["id"], "sim_tpot_s"]
    d = row_deployment(row, calibration=True)
    assert "b200.trtllm.toml" in d.eff.source
    assert "b200.trtllm.toml" not in row_deployment(row).eff.source


def test_the_export_that_multiplied_gpus_by_ep_also_divided_the_batch_size():
    from model.validation.engine_rows import _per_replica
    from model.validation.engine_rows_layout import row_batch_size, row_layout

    # the 2026-04-06 export of the tp8_ep8 c64 launch: attention_dp_size 64, batch_size 1 (= 64 / 64); the
    # 2026-03-25 export of the same launch: attention_dp_size 8, batch_size 8. Rebuilt: 8 ranks of 1 x 64 / 8 = 8.
    row = {"id": "2026_04_06_deepseek_r1_b200_sxm_trtllm_fp4_agg_1024x1024_c64_tp8_ep8_937", "backend": "trtllm",
           "model_path": "deepseek-ai/DeepSeek-R1", "system": "b200_sxm", "mode": "agg", "tp_size": 1.0,
           "pp_size": 1.0, "attention_dp_size": 64.0, "moe_tp_size": 8.0, "moe_ep_size": 8.0, "batch_size": 1.0,
           "silicon_data_source": "source_file=2026-04-06.csv; silicon_concurrency=64"}
    assert row_layout(row).attention_dp == 8 and row_batch_size(row) == 8.0
    assert _per_replica(pd.Series(row)) == 8  # min(64 / 8 ranks, batch 8)
    # tp4_ep4 c256: attention_dp_size 16, batch_size 16 -> 4 ranks of 16 x 16 / 4 = 64
    tp4 = dict(row, id=row["id"].replace("c64_tp8_ep8", "c256_tp4_ep4"), attention_dp_size=16.0, moe_tp_size=4.0,
               moe_ep_size=4.0, batch_size=16.0)
    assert row_layout(tp4).attention_dp == 4 and row_batch_size(tp4) == 64.0
    # the other export's columns are the launch: unchanged
    other = dict(row, id="2026_03_25_deepseek_r1_b200_sxm_trtllm_fp4_agg_1024x1024_c64_tp8_0_ep8_0_976",
                 attention_dp_size=8.0, moe_tp_size=1.0, batch_size=8.0)
    assert row_batch_size(other) == 8.0
    assert math.isnan(row_batch_size(dict(other, batch_size=float("nan"))))


def test_data_defects_are_reported_with_their_evidence():
    from model.validation.engine_rows import _expressible
    from model.validation.engine_rows_defects import data_defect_reason, source_file

    src = ("source_file=/Users/x/data/b200_sxm/trtllm/1.3.0rc1/nvidia_DeepSeek-R1-NVFP4.csv; gtl_job_id=1; "
           "silicon_concurrency=40; measured=2026-03-17")
    row = {"id": "r", "backend": "trtllm", "model_path": "nvidia/DeepSeek-R1-NVFP4", "system": "b200_sxm",
           "mode": "agg", "tp_size": 8.0, "pp_size": 1.0, "attention_dp_size": float("nan"), "moe_tp_size": 1.0,
           "moe_ep_size": 8.0, "batch_size": 5.0, "silicon_data_source": src}
    assert source_file(row).endswith("trtllm/1.3.0rc1/nvidia_DeepSeek-R1-NVFP4.csv")
    why = data_defect_reason(row)
    assert "data defect" in why and "85-92 ms at every batch" in why
    assert _expressible(pd.Series(row)) == why
    assert data_defect_reason(dict(row, model_path="nvidia/DeepSeek-V3.1-NVFP4")) == ""
    assert data_defect_reason(dict(row, silicon_data_source="source_file=2026-04-06.csv")) == ""


def test_harness_recv_interval_follows_the_inferencex_launch_rule():
    from model.validation.engine_rows_layout import harness_recv_interval

    # dsr1_fp8_b200.sh: 10 below CONC 16, 30 from 16; GLM-5's scripts of the rows' dates set none; vLLM has none;
    # dsr1_fp4_b200.sh sets 1 with DP attention
    row = {"id": "cfg1", "model_path": "deepseek-ai/DeepSeek-R1", "system": "b200_sxm", "backend": "sglang",
           "tp_size": 8, "pp_size": 1, "attention_dp_size": 1, "moe_tp_size": 8, "moe_ep_size": 1}
    assert [harness_recv_interval(row, c) for c in (1, 4, 15, 16, 256)] == [10, 10, 10, 30, 30]
    assert harness_recv_interval(dict(row, model_path="zhipuai/GLM-5"), 4) == 1
    assert harness_recv_interval(dict(row, backend="vllm"), 4) == 1
    assert harness_recv_interval(dict(row, tp_size=1, attention_dp_size=8, moe_tp_size=1, moe_ep_size=8), 4) == 1


def test_engine_rows_refuse_a_range_ratio_outside_zero_one():
    from model.validation.engine_rows import engine_rows_report

    for bad in (0.0, 1.2):
        with pytest.raises(RidgeplanError, match="range_ratio"):
            engine_rows_report("no-such-file.csv", range_ratio=bad)  # refused before the file is read
