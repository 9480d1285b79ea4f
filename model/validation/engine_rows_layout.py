"""Real-engine rows (aiconfigurator's silicon-sample columns) as ridgeplan layouts and Deployments.

The rows record, per pool (aggregated: no prefix; disaggregated: `prefill_` / `decode_`), tp_size (attention
TP), attention_dp_size, moe_tp_size, moe_ep_size and pp_size, with moe_tp x moe_ep = tp x attention_dp, which
is exactly model.placement.layout.Layout. Source of the rows: aiconfigurator-core 0.12.0 (Apache-2.0, NVIDIA),
systems/silicon_sample.csv; only its Blackwell rows are used here.

Assumptions stated once: the KV cache is FP8 when the row's precision is FP8 or NVFP4 (the rows do not record
it; TensorRT-LLM and SGLang serve these checkpoints with an FP8 KV cache in NVIDIA's recipes), 16-bit otherwise;
DeepSeek-R1 and the NVIDIA NVFP4 re-quantizations share DeepSeek-V3's architecture.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from functools import lru_cache
from typing import Any

from model.architecture.catalogue import catalogue_entry, model_ids
from model.errors import RidgeplanError
from model.placement.layout import Layout

# system column -> (hardware_db device, node type)
SYSTEMS = {"b200_sxm": ("b200", "dgx-b200"), "gb200": ("gb200", "gb200-nvl72"),
           "b300_sxm": ("b300", None), "gb300": ("gb300", None)}
HELD_OUT_SYSTEMS = ("h100_sxm", "h200_sxm")  # the project's held-out test: never mapped
# quant-mode column -> ridgeplan weight format
QUANT = {"fp8": "fp8", "fp8_block": "fp8", "nvfp4": "nvfp4", "int4_wo": "int4", "mxfp4": "mxfp4",
         "bf16": "bf16", "float16": "fp16", "fp16": "fp16", "fp4": "nvfp4", "int4": "int4"}
# checkpoints that are another catalogue model's architecture
ALIASES = {"deepseek-ai/DeepSeek-R1": "deepseek-v3", "nvidia/DeepSeek-R1-NVFP4": "deepseek-v3",
           "nvidia/DeepSeek-V3.1-NVFP4": "deepseek-v3", "nvidia/Qwen3-32B-NVFP4": "qwen3-32b"}


def _int(value: Any) -> int:
    """A degree column: empty / NaN / 0 mean 1 (the rows write 0 for 'not used')."""
    try:
        v = float(value)
    except (TypeError, ValueError):
        return 1
    return 1 if math.isnan(v) or v <= 0 else int(v)


def row_layout(row: Mapping[str, Any], pool: str = "") -> Layout:
    """The Layout of a row's pool ("" aggregated, "prefill" or "decode")."""
    p = f"{pool}_" if pool else ""
    tp, adp = _int(row.get(f"{p}tp_size")), _int(row.get(f"{p}attention_dp_size"))
    moe_tp, moe_ep = _int(row.get(f"{p}moe_tp_size")), _int(row.get(f"{p}moe_ep_size"))
    if moe_tp * moe_ep != tp * adp and moe_tp == moe_ep == 1:
        moe_tp = tp * adp  # a dense model's row leaves the MoE columns empty
    return Layout(tp=tp, pp=_int(row.get(f"{p}pp_size")), ep=moe_ep, attention_dp=adp, moe_tp=moe_tp)


@lru_cache(maxsize=1)
def _by_repo() -> dict[str, str]:
    out = {}
    for ident in model_ids():
        entry = catalogue_entry(ident)
        if entry is not None and entry.hf_repo:
            out[entry.hf_repo] = ident
    return out


def row_model(row: Mapping[str, Any]) -> str:
    """Catalogue id of a row's model_path, or a RidgeplanError naming the missing model."""
    path = str(row["model_path"])
    ident = ALIASES.get(path) or _by_repo().get(path)
    if ident is None:
        raise RidgeplanError("model_path", f"{path} is not in the catalogue")
    return ident


def row_deployment(row: Mapping[str, Any], pool: str = ""):
    """A validated Deployment for a row's pool; raises RidgeplanError when the row cannot be expressed."""
    from model.serving.deployment import deployment

    system = str(row["system"])
    if system in HELD_OUT_SYSTEMS:
        raise RidgeplanError("system", f"{system} rows are the held-out test and are never used")
    if system not in SYSTEMS:
        raise RidgeplanError("system", f"unknown system {system!r}", sorted(SYSTEMS))
    gpu, node = SYSTEMS[system]
    # the quant-mode columns, else the row's precision column (bf16 rows leave the quant modes empty)
    weights = QUANT.get(str(row.get("gemm_quant_mode"))) or QUANT.get(str(row.get("precision")))
    experts = QUANT.get(str(row.get("moe_quant_mode"))) or weights
    if weights is None:
        raise RidgeplanError("gemm_quant_mode", f"unknown quant mode {row.get('gemm_quant_mode')!r}", sorted(QUANT))
    kv = "fp8" if weights in ("fp8", "nvfp4") else None
    lay = row_layout(row, pool)
    return deployment(row_model(row), gpu, weights=weights, experts=experts, kv=kv, node=node, tp=lay.tp,
                      pp=lay.pp, ep=lay.ep, attention_dp=lay.attention_dp, moe_tp=lay.moe_tp,
                      engine=str(row["backend"]))


def predict_agg_tpot_s(row: Mapping[str, Any]) -> float:
    """TPOT of an aggregated row: continuous batching in steady state with `batch_size` sequences in flight on
    each attention-DP rank, the row's input/output lengths and its engine's scheduling policy (prefill chunks
    interleaved with decodes, as the engines run it). NaN when the row's batch does not fit (the model then
    holds fewer sequences than the row ran)."""
    from model.serving.batching import steady_state
    from model.serving.policy import engine_policy

    d = row_deployment(row)
    st = steady_state(d, engine_policy(str(row["backend"])), float(row["isl"]), float(row["osl"]),
                      concurrency=float(row["batch_size"]))
    t = float(st.tpot_s[0])
    return t if math.isfinite(t) and t > 0 and str(st.limit[0]) == "asked" else float("nan")


def predict_decode_tpot_s(row: Mapping[str, Any]) -> float:
    """TPOT of a disaggregated row's decode pool: decode-only iterations with `decode_batch_size` sequences per
    attention-DP rank at the mean decode context (input + output / 2). NaN when they do not fit."""
    from model.serving.batching import decode_only_iteration, kv_capacity
    from model.serving.policy import engine_policy

    d = row_deployment(row, "decode")
    policy = engine_policy(str(row["backend"]))
    batch = float(row.get("decode_batch_size", float("nan")))
    if not math.isfinite(batch) or batch <= 0:
        raise RidgeplanError("decode_batch_size", "the row does not record the decode pool's batch (nor its worker "
                             "count, so the concurrency cannot be split per rank)")
    ctx = float(row["isl"]) + float(row["osl"]) / 2
    if float(kv_capacity(d, policy, ctx).max_sequences[0]) < batch:
        return float("nan")
    return float(decode_only_iteration(d, policy, batch, ctx).time_s[0])


MOE_MODELS = ("DeepSeek", "gpt-oss", "Kimi", "Qwen3.5", "Qwen3-235B", "GLM", "MiniMax", "Mixtral")


def moe_tpot_report(rows):
    """Predicted against measured TPOT for the MoE rows of an engine-rows table (a pandas DataFrame): aggregated
    rows in continuous batching, disaggregated rows by their decode pool. One line per row with `error`
    (predicted / measured - 1; NaN where not predicted) and `why` (the refusal, or the batch not fitting)."""
    import pandas as pd

    out = []
    moe = rows[rows["model_path"].astype(str).str.contains("|".join(MOE_MODELS))
               & ~rows["system"].isin(HELD_OUT_SYSTEMS)]
    for _, r in moe.iterrows():
        agg = r["mode"] == "agg"
        try:
            p = predict_agg_tpot_s(r) if agg else predict_decode_tpot_s(r)
            why = "" if math.isfinite(p) else "the row's batch does not fit in ridgeplan's memory model"
        except RidgeplanError as err:
            p, why = float("nan"), err.one_line()
        measured = float(r["silicon_tpot_ms"]) / 1e3
        out.append({"id": r["id"], "model": r["model_path"], "system": r["system"], "backend": r["backend"],
                    "mode": r["mode"], "predicted_tpot_s": p, "measured_tpot_s": measured,
                    "error": p / measured - 1 if math.isfinite(p) and measured > 0 else float("nan"), "why": why})
    return pd.DataFrame(out)
