"""Engine rows (Blackwell, aiconfigurator's public sample) as layouts: every pool an engine ran is expressible and
accepted by that engine's rule; rows map to validated Deployments."""

from __future__ import annotations

from pathlib import Path

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
    d = row_deployment(row)
    assert d.layout.label() == "TP1xADP16xEP4xMoETP4" and d.layout.gpus == 16
    assert (d.precision.weights, d.precision.kv, d.device.id, d.node.id) == ("nvfp4", "fp8", "b200", "dgx-b200")
    vllm = dict(row, backend="vllm")
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
