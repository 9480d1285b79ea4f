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
import re
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
           "nvidia/DeepSeek-V3.1-NVFP4": "deepseek-v3", "nvidia/Qwen3-32B-NVFP4": "qwen3-32b",
           # Zhipu AI's hub organisation was renamed zhipuai -> zai-org; the catalogue holds zai-org/GLM-5
           "zhipuai/GLM-5": "glm-5"}


def _int(value: Any) -> int:
    """A degree column: empty / NaN / 0 mean 1 (the rows write 0 for 'not used')."""
    try:
        v = float(value)
    except (TypeError, ValueError):
        return 1
    return 1 if math.isnan(v) or v <= 0 else int(v)


# The InferenceMAX/InferenceX rows name their launch in the id: `..._tp{T}_ep{E}_{n}` (or `tp{T}_0_ep{E}_0`), the
# engine's --tp / --tp_size / --tensor-parallel-size (every GPU of the instance) and its --ep-size / --ep_size.
# InferenceX docs/results-and-ingestion.md: "Single-node GPU count is tp * pp * pcp_size" (EP lies inside TP), and
# its launch scripts (benchmarks/single_node/fixed_seq_len/dsr1_fp8_b200_trt.sh: `--tp_size=$TP --ep_size=$EP_SIZE`
# with enable_attention_dp; kimik2.5_fp4_b200.sh: DP attention as `--tensor-parallel-size 1 --data-parallel-size
# $TP`) run T GPUs with MoE-EP E and MoE-TP T / E.
_LAUNCH_TAG = re.compile(r"_tp(\d+)(?:_0)?_ep(\d+)(?:_0)?_\d+$")


def source_field(source: Any, key: str) -> str:
    """The `key=value` entry of a row's silicon_data_source (entries separated by ';'; '' when absent)."""
    for part in str(source).split(";"):
        name, _, value = part.strip().partition("=")
        if name == key:
            return value.strip()
    return ""


def silicon_concurrency(source: Any) -> int | None:
    """The benchmark's total concurrency, `silicon_concurrency=N` inside a row's silicon_data_source (None if absent)."""
    value = source_field(source, "silicon_concurrency")
    return int(value) if value.isdigit() else None


def launch_tag(row: Mapping[str, Any]) -> tuple[int, int] | None:
    """(T, E) of an InferenceMAX row id's `tp{T}_ep{E}` launch tag, or None when the id carries none."""
    m = _LAUNCH_TAG.search(str(row.get("id", "")))
    return (int(m.group(1)), int(m.group(2))) if m else None


def multinode_total_reason(row: Mapping[str, Any]) -> str:
    """Why a GB200/GB300 InferenceMAX row whose launch tag tp{T}_ep1 names more GPUs than an 8-GPU node, all in
    one pool, is not a layout ('' otherwise). These are multi-node disaggregated runs (T = prefill + decode GPUs,
    e.g. 12 = 4 + 8): every such aggregated row duplicates a disaggregated row of the same export with the same
    concurrency, lengths and TPOT (median difference 0.1%), and both record T for each pool, so the split is
    lost. Read as one pool they would be attention TP T, which no engine runs for an MLA model whose 128 heads T
    does not divide (SGLang DeepseekV2AttentionMLA and TensorRT-LLM's MLA shard heads evenly over attention TP).
    InferenceX's launch configs give the split of most of them (engine_rows_multinode, applied to the rows before
    this check); the rest are refused here: ambiguous between launches, decoded with MTP, or in no config."""
    tag = launch_tag(row)
    if tag is None or tag[1] != 1 or tag[0] <= 8 or str(row.get("system")) not in ("gb200", "gb300"):
        return ""
    pools = ["tp_size"] if str(row.get("mode")) == "agg" else ["prefill_tp_size", "decode_tp_size"]
    if all(_int(row.get(c)) == tag[0] for c in pools):
        from model.validation.engine_rows_multinode import multinode_run

        run, why = multinode_run(row)  # InferenceX's launch configs give the split of most (rows rewritten first)
        return why or ("" if run else (f"tp_size {tag[0]} is the GPU total of a multi-node disaggregated run (launch "
                                       f"tag tp{tag[0]}_ep1; the prefill/decode split is not recorded, and no "
                                       "InferenceX launch config in engine_rows_multinode gives it)"))
    return ""


# Container images that identify multi-token-prediction (speculative) runs the rows do not mark. InferenceX
# perf-changelog.yaml: "dsr1-fp8-b200-trt / dsr1-fp8-b200-trt-mtp ... (off: v1.2.0rc6.post2 / mtp:
# v1.2.0rc6.post3)" and "dsr1-fp4-b200-trt-mtp: ... release:1.2.0rc6.post3". The same launch at the same
# concurrency runs about 2x faster in those rows (5.4 against 10.3 ms at 1k/1k, c4, TP8). These rows are run with
# MTP drafting as the launch script sets it (row_speculation), not compared with one-token decoding.
# Before that, InferenceX PR #392 ("Add MTP Benchmark Support for DeepSeek-R1 TRT", merged 2026-01-15, commit
# bf3456727) ran dsr1-fp{4,8}-b200-trt-mtp in the plain runs' image, release:1.1.0rc2.post2, with the same MTP=3 /
# MTP=1-with-DP_ATTENTION rule and token budget (benchmarks/dsr1_fp{4,8}_b200_trt_mtp_slurm.sh there): the rows of
# that image measured on 2026-01-14 are exactly its search space (fp8: tp8 ep8 c4-c32 at 1k/1k and 8k/1k, c4-c64
# at 1k/8k, DP attention above) and run 1.3-2.2x faster than the same launch measured 2025-12-15 (fp8 1k/1k c4
# tp8 ep8: 7.8 against 14.6 ms), whose 8k/1k c64 point, outside the MTP search space, is identical (41.76 ms).
# Each entry: (image, a further substring of silicon_data_source that marks the MTP run, '' for none).
MTP_IMAGES = {("trtllm", "deepseek-ai/DeepSeek-R1", "b200_sxm"): (
    ("tensorrt-llm/release:1.2.0rc6.post3", ""), ("tensorrt-llm/release:1.1.0rc2.post2", "measured=2026-01-14"))}
# InferenceX benchmarks/single_node/fixed_seq_len/dsr1_fp{4,8}_b200_trt_mtp.sh: `MTP=3`, and `MTP=1` when
# DP_ATTENTION is true (speculative_config: decoding_type MTP, num_nextn_predict_layers ${MTP});
# MAX_NUM_TOKENS=$(( ((MTP+1)*MAX_BATCH_SIZE+ISL+64+63)/64*64 )).
MTP_DRAFT_TOKENS, MTP_DRAFT_TOKENS_ATTENTION_DP = 3, 1


def mtp_image(row: Mapping[str, Any]) -> str:
    """The MTP container image a row was measured in ('' when it is not a known MTP run)."""
    source = str(row.get("silicon_data_source", ""))
    for image, mark in MTP_IMAGES.get((str(row.get("backend")), str(row.get("model_path")), str(row.get("system"))), ()):
        if image in source and mark in source:
            return image
    return ""


def row_speculation(row: Mapping[str, Any]):
    """MTP speculative decoding of a row measured in an MTP image (None otherwise): the launch script's draft
    depth, the checkpoint's MTP module reused for every draft token, and the sourced default acceptance
    for that depth (model.serving.mtp.mtp_acceptance; the rows do not record the measured one)."""
    if not mtp_image(row):
        return None
    from model.serving.speculation_offload import Speculation

    k = MTP_DRAFT_TOKENS_ATTENTION_DP if row_layout(row).attention_dp > 1 else MTP_DRAFT_TOKENS
    return Speculation.multi_token_prediction(k)


def mtp_max_num_tokens(draft_tokens: int, max_batch_size: int, isl: int) -> int:
    """TensorRT-LLM's token budget in InferenceX's MTP launch: ((MTP+1) x MAX_BATCH_SIZE + ISL + 64) rounded
    up to a multiple of 64."""
    return ((draft_tokens + 1) * max_batch_size + isl + 64 + 63) // 64 * 64


NODE_GPUS = {"b200_sxm": 8, "b300_sxm": 8}  # DGX/HGX B200 and B300: 8 GPUs per NVLink node


def _export_launch(row: Mapping[str, Any], tp: int, adp: int, moe_tp: int, moe_ep: int) -> tuple[int, int] | None:
    """(GPUs T, MoE-EP E) of an aggregated InferenceMAX launch whose export multiplied the GPU count by E, or None
    when the columns are the launch. Three signatures of that export:
    - the id's launch tag tp{T}_ep{E} with E > 1 and T x E GPUs in the columns;
    - vLLM's DP attention (`--tensor-parallel-size 1 --data-parallel-size T --enable-expert-parallel`) written as
      tp_size = attention_dp_size = T with MoE-EP T x T and MoE-TP 1;
    - more GPUs than one 8-GPU B200/B300 node (the aggregated runs are single-node) split as MoE-TP T x MoE-EP E
      with T x E = the columns' GPUs (tp_size T x E, or attention_dp_size T x E with tp_size 1)."""
    gpus = tp * adp
    tag = launch_tag(row)
    if tag is not None:
        t, e = tag
        return (t, e) if e > 1 and gpus == t * e and t % e == 0 else None
    if moe_tp == 1 and tp == adp > 1 and moe_ep == gpus:
        return tp, tp
    node = NODE_GPUS.get(str(row.get("system")))
    if node and gpus > node and moe_ep > 1 and moe_tp * moe_ep == gpus and moe_tp % moe_ep == 0 and moe_tp <= node:
        return moe_tp, moe_ep
    return None


def row_batch_size(row: Mapping[str, Any]) -> float:
    """The aggregated launch's batch size per attention-DP rank (NaN when the row records none).

    The export that multiplied the GPU count by the EP size (row_layout) also wrote batch_size per *recorded*
    attention-DP rank: its tp8_ep8 c64 launch reads attention_dp_size 64, batch_size 1, where the other export of
    the same launch (same TPOT to the last digit, 12.289 ms) reads attention_dp_size 8, batch_size 8; in all 37
    such rows batch_size x the recorded ranks is the benchmark concurrency. When the launch is rebuilt, the batch
    size is rescaled to the launch's ranks: batch_size x recorded ranks / launch ranks."""
    bs = row.get("batch_size")
    try:
        bs = float(bs)
    except (TypeError, ValueError):
        return float("nan")
    tp, adp = _int(row.get("tp_size")), _int(row.get("attention_dp_size"))
    launch = _export_launch(row, tp, adp, _int(row.get("moe_tp_size")), _int(row.get("moe_ep_size")))
    if launch is None or adp <= 1 or bs != bs:
        return bs
    return bs * adp / launch[0]


def row_layout(row: Mapping[str, Any], pool: str = "") -> Layout:
    """The Layout of a row's pool ("" aggregated, "prefill" or "decode").

    One export of the aggregated InferenceMAX rows (source_file 2026-04-06) multiplied the GPU count by the EP
    size: its `tp8_ep8` launch (8 GPUs) is recorded as tp_size 64 (or attention_dp_size 64) with MoE-TP 8 x
    MoE-EP 8, where the other export (2026-03-25) of the same launches records 8 GPUs. When the columns' GPU
    count is T x E of the id's launch tag (E > 1), the layout is rebuilt from the launch: T GPUs, MoE-EP E,
    MoE-TP T / E, attention data-parallel over the T GPUs when the row records attention DP, else TP T."""
    p = f"{pool}_" if pool else ""
    tp, adp = _int(row.get(f"{p}tp_size")), _int(row.get(f"{p}attention_dp_size"))
    moe_tp, moe_ep = _int(row.get(f"{p}moe_tp_size")), _int(row.get(f"{p}moe_ep_size"))
    launch = None if pool else _export_launch(row, tp, adp, moe_tp, moe_ep)
    if launch is not None:
        gpus, moe_ep = launch
        tp, adp, moe_tp = (1, gpus, gpus // moe_ep) if adp > 1 else (gpus, 1, gpus // moe_ep)
    if moe_tp * moe_ep != tp * adp and moe_tp == moe_ep == 1:
        moe_tp = tp * adp  # a dense model's row leaves the MoE columns empty
    spare = row.get(f"{p}redundant_experts")  # written by engine_rows_multinode only
    spare = 0 if spare is None or math.isnan(float(spare)) else int(spare)
    return Layout(tp=tp, pp=_int(row.get(f"{p}pp_size")), ep=moe_ep, attention_dp=adp, moe_tp=moe_tp,
                  redundant_experts=spare)


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


# The checkpoint a row serves, where its quant mode is not the catalogue model's own checkpoint: its exclude list
# says which modules stay 16-bit (model.architecture.quant.excluded_modules). The NVFP4 rows serve NVIDIA's
# ModelOpt checkpoints (InferenceX launch scripts: nvidia/DeepSeek-R1-0528-NVFP4-v2, nvidia/Kimi-K2.5-NVFP4, ...);
# DeepSeek-R1/V3's follow ModelOpt's one DeepSeek recipe (examples/deepseek/README.md: "DeepSeek V3, R1 and
# V3.1"), whose copy here is nvidia/DeepSeek-V3.1-NVFP4. gpt-oss-120b is published only as OpenAI's MXFP4
# checkpoint (experts MXFP4, attention and router bf16: its quantization_config), whatever the row's label.
SERVED_CHECKPOINTS = {("deepseek-v3", "nvfp4"): "nvidia/DeepSeek-V3.1-NVFP4", ("glm-5", "nvfp4"): "nvidia/GLM-5-NVFP4",
                      ("minimax-m2.5", "nvfp4"): "nvidia/MiniMax-M2.5-NVFP4",
                      ("qwen3.5-397b-a17b", "nvfp4"): "nvidia/Qwen3.5-397B-A17B-NVFP4",
                      ("kimi-k2.5", "nvfp4"): "nvidia/Kimi-K2.5-NVFP4", ("kimi-k2.5", "int4"): "moonshotai/Kimi-K2.5",
                      ("gpt-oss-120b", "nvfp4"): "openai/gpt-oss-120b", ("gpt-oss-120b", "mxfp4"): "openai/gpt-oss-120b"}


def served_formats(model: str, weights: str, experts: str) -> tuple[str, str, tuple[str, ...]]:
    """(dense weights, experts, modules kept 16-bit) as the checkpoint a row serves stores them; the row's quant
    modes unchanged (nothing kept 16-bit) when SERVED_CHECKPOINTS has no entry."""
    from model.architecture.catalogue import load_architecture

    hub = SERVED_CHECKPOINTS.get((model, weights))
    if hub is None:
        return weights, experts, ()
    q = load_architecture(hub).quantization or {}
    dense = q.get("weights") or "bf16"  # a key left out: the checkpoint's 16-bit dtype (model.architecture.quant)
    return dense, q.get("experts") or dense, tuple(q.get("unquantized") or ())


def row_deployment(row: Mapping[str, Any], pool: str = "", calibration: bool = False):
    """A validated Deployment for a row's pool; raises RidgeplanError when the row cannot be expressed.
    `calibration=True`: the engine's public-table calibration instead of the hand-set efficiency."""
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
    if weights is None and all(str(row.get(c)) in ("nan", "None", "") for c in ("gemm_quant_mode", "precision")):
        raise RidgeplanError("precision", "the row records no precision (precision and gemm_quant_mode are empty)")
    if weights is None:
        raise RidgeplanError("gemm_quant_mode", f"unknown quant mode {row.get('gemm_quant_mode')!r}", sorted(QUANT))
    kv = "fp8" if weights in ("fp8", "nvfp4") else None
    lay = row_layout(row, pool)
    model = row_model(row)
    weights, experts, unquantized = served_formats(model, weights, experts)
    return deployment(model, gpu, weights=weights, experts=experts, unquantized=unquantized, kv=kv, node=node,
                      tp=lay.tp, pp=lay.pp, ep=lay.ep, attention_dp=lay.attention_dp, moe_tp=lay.moe_tp,
                      redundant_experts=lay.redundant_experts,
                      engine=str(row["backend"]), calibration=True if calibration else None)


def predict_agg_tpot_s(row: Mapping[str, Any]) -> float:
    """TPOT of an aggregated row: continuous batching in steady state with `batch_size` sequences in flight on
    each attention-DP rank, the row's input/output lengths and its engine's scheduling policy (prefill chunks
    interleaved with decodes, as the engines run it). NaN when the row's batch does not fit (the model then
    holds fewer sequences than the row ran)."""
    from model.serving.batching import steady_state
    from model.serving.policy import engine_policy

    d = row_deployment(row)
    st = steady_state(d, engine_policy(str(row["backend"])), float(row["isl"]), float(row["osl"]),
                      concurrency=row_batch_size(row))
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

    from model.validation.engine_rows_multinode import with_multinode_split

    out = []
    rows = pd.DataFrame([with_multinode_split(r) for r in rows.to_dict("records")], index=rows.index)
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


# InferenceX's single-node SGLang launch scripts (SemiAnalysisAI/InferenceX, benchmarks/single_node/, e.g.
# dsr1_fp8_b200.sh and dsr1_fp4_b200.sh since b0c4ed21b of 2026-01-22, qwen3.5_fp8_b200.sh at efd49e50b and
# qwen3.5_bf16_b200.sh at 9dc87a68c): "Default: recv every ~10 requests; if CONC >= 16, relax to ~30 requests
# between scheduler recv polls", passed as --scheduler-recv-interval (CONC: the benchmark's max concurrency), and 1
# with DP attention (dsr1_fp4_b200.sh). The GLM-5 scripts had no such flag before 475cc1dbc (2026-04-09, after the
# rows' images of 2026-03-17 to 04-01; glm5_fp8_*.sh never set it). Qwen3.5 FP8/FP4 B200 moved to 30 above CONC 4
# on 2026-04-30 (515294190); the rows' images predate it.
RECV_INTERVAL_LOW, RECV_INTERVAL_HIGH, RECV_INTERVAL_FROM_CONC = 10, 30, 16
RECV_INTERVAL_NOT_SET = ("zhipuai/GLM-5",)


def harness_recv_interval(row: Mapping[str, Any], total_concurrency: int) -> int:
    """The --scheduler-recv-interval InferenceX launched an aggregated SGLang row with (1 for other engines)."""
    if str(row["backend"]) != "sglang" or str(row["model_path"]) in RECV_INTERVAL_NOT_SET:
        return 1
    if row_layout(row).attention_dp > 1:
        return 1
    return RECV_INTERVAL_HIGH if total_concurrency >= RECV_INTERVAL_FROM_CONC else RECV_INTERVAL_LOW
