"""NVIDIA's measured MoE layer tables as ridgeplan rows, predicted with the graph's own expert operators.

aiconfigurator-core ships `systems/data/<gpu>/moe/<engine>/<version>/moe_perf.parquet` (Apache-2.0): one engine's
fused-experts call timed on one GPU per row (aiconfigurator collector/vllm/collect_moe.py `run_moe_torch`: vLLM
`fused_experts` or FlashInfer's TRT-LLM MoE with the routing weights given, so no router GEMM; SGLang and
TensorRT-LLM likewise). The time holds the experts' activation quantization, both grouped GEMMs, the activation
and the weighted sum: what `model.operators.graph.moe_expert_operators` builds for a layer. Columns: moe_dtype,
num_tokens (tokens entering the layer), hidden_size, inter_size (per expert, before the MoE-TP split), topk,
num_experts, moe_tp_size, moe_ep_size, distribution, latency (ms), kernel_source.

Rows kept (`moe_table_rows`):
- `balanced` routing: the collector's `balanced_logits` spreads the tokens' choices evenly over the experts, the
  uniform routing the graph assumes (its busiest-rank fluctuation z_ep is 0 on one GPU);
- moe_ep_size 1 (the MoE-TP sweep): with EP > 1 the single-GPU benchmark hands every token to the kernel, which
  skips those of other ranks' experts at a per-token cost (B200 vLLM FP8, 4096 x 1536 x 128 experts, 16,384
  tokens: 0.81 ms at EP 128 against 6.2 ms at EP 1, where local expert work shrinks 128-fold) that an engine's
  all-to-all dispatch does not pay;
- the formats ridgeplan's expert precisions run (MOE_DTYPES), with FP8 from the block-scaled tables: every FP8 MoE
  checkpoint in the catalogue is block-scaled (config quantization_config.weight_block_size = [128, 128]:
  DeepSeek-V3/R1, MiniMax-M2.5, GLM-5, Qwen3 FP8);
- gated experts only (TensorRT-LLM's `moe_torch_flow_nongated` rows time relu2 experts, one matrix fewer);
- per shape the newest table version holding it, and its fastest kernel (engines pick their best backend; the
  GEMM tables are read the same way); an older version only where it timed the kernel the newest version runs for
  that format (`current_kernels`).
`model.calibration.importer` also drops rows faster than reading their touched experts' weights at the nominal HBM
bandwidth (`weight_read_s`): their synthetic routing touched fewer distinct experts than the token count implies
(the DeepSeek-V3 shape, 7168 x 2048 x 256 experts, at 8-256 tokens).
"""

from __future__ import annotations

import re
from functools import lru_cache

import numpy as np
import pandas as pd

from model.architecture.blocks import Mlp
from model.errors import RidgeplanError
from model.hardware.schema import Device
from model.precision import Precision, compute_dtype_for, is_weight_only, number_format
from model.roofline.efficiency import Efficiency, moe_kernel_class

# table moe_dtype -> (expert weight format, GEMM activation dtype) as ridgeplan resolves that checkpoint's experts
MOE_DTYPES = {"bfloat16": ("bf16", "bf16"), "fp8_block": ("fp8", "fp8"), "nvfp4": ("nvfp4", "fp4"),
              "int4_wo": ("int4", "bf16"), "w4a16_mxfp4": ("mxfp4", "bf16")}
SHAPE = ["moe_dtype", "num_tokens", "hidden_size", "inter_size", "topk", "num_experts", "moe_tp_size"]
GROUP = ["hidden", "inter", "topk", "experts", "weights", "dtype"]  # one compiled operator set each


def moe_class(weights: str, activations: str) -> str:
    """The expert kernel class (Efficiency.moe_gemm_scale_*): `wo` for weight-only experts, else 16, 8 or 4."""
    return moe_kernel_class(compute_dtype_for(weights, activations), is_weight_only(weights, activations))


def _version_key(version: str) -> tuple[int, ...]:
    return tuple(int(x) for x in re.findall(r"\d+", version))


def newest_per_shape(tables: list[tuple[str, pd.DataFrame]]) -> pd.DataFrame:
    """Rows of several versions of one engine's table: per shape, those of the newest version holding it (a newer
    collection may add a few shapes and reuse the older one for the rest, TensorRT-LLM 1.3.0rc23's reuse.yaml),
    less an older version's rows timing a kernel the engine no longer runs (`current_kernels`)."""
    if not tables:
        return pd.DataFrame()
    order = {v: i for i, v in enumerate(sorted({v for v, _ in tables}, key=_version_key))}
    parts = [t.assign(_version=order[v]) for v, t in tables]
    t = current_kernels(pd.concat(parts, ignore_index=True))
    newest = t.groupby(SHAPE)["_version"].transform("max")
    return t[t["_version"] == newest].drop(columns="_version")


def current_kernels(t: pd.DataFrame) -> pd.DataFrame:
    """Rows (with `_version`, newer = larger) less those of an older version whose kernel (kernel_source) the newest
    version timing that format (moe_dtype) no longer runs: an engine upgrade that swaps the fused-experts kernel
    changes the time of every shape, so an older collection's shapes stand for the current engine only where it
    timed the same kernel. vLLM on B200 (aiconfigurator-core 0.12.0): 0.19.0 times INT4 experts with
    `vllm_marlin_int4_moe` and 16-bit/FP8 ones with the Triton `vllm_fused_moe`, 0.24.0 with the compressed-tensors
    WNA16 Marlin experts and FlashInfer's TRT-LLM kernels; on the one INT4 shape both time (7168 x 2048, 384
    experts, 135 token/TP points) 0.19.0 is 2.65x slower (median; 1.26-5.96x). Rows naming no kernel are kept, and
    so are non-gated kernels' rows, which moe_table_rows leaves out anyway (a version timing only those does not
    stand for the gated kernels)."""
    if "kernel_source" not in t:
        return t
    kernel = t["kernel_source"]
    named = kernel.notna() & ~kernel.astype(str).str.contains("nongated")
    keep = ~named
    for _, g in t[named].groupby("moe_dtype", sort=False):
        current = set(g.loc[g["_version"] == g["_version"].max(), "kernel_source"])
        keep[g.index] = g["kernel_source"].isin(current)
    return t[keep]


def moe_table_rows(table: pd.DataFrame, expert_quant: tuple[str, ...]) -> pd.DataFrame:
    """Measured MoE layers as rows (kernel "moe", family moe_<class>, the shape, measured_s, size = FLOPs).

    `expert_quant`: the engine's `unfused_expert_quant` (activation dtypes its MoE layer quantizes in kernels of
    their own: the graph's q_e), so a row is predicted as that engine's step would run it."""
    need = set(SHAPE) | {"latency", "distribution", "moe_ep_size"}
    if missing := sorted(need - set(table.columns)):
        raise RidgeplanError(missing[0], "column missing from the MoE table", sorted(need))
    t = table[(table["distribution"] == "balanced") & (table["moe_ep_size"] == 1)
              & table["moe_dtype"].isin(list(MOE_DTYPES))]
    t = t[np.isfinite(t["latency"]) & (t["latency"] > 0)]
    if "kernel_source" in t:  # non-gated experts (TensorRT-LLM's relu2 kernels) are not the graph's gated experts
        t = t[~t["kernel_source"].astype(str).str.contains("nongated")]
    t = t.sort_values("latency").drop_duplicates(SHAPE, keep="first")  # the fastest kernel per shape
    weights = t["moe_dtype"].map(lambda d: MOE_DTYPES[d][0])
    acts = t["moe_dtype"].map(lambda d: MOE_DTYPES[d][1])
    cls = [moe_class(w, a) for w, a in zip(weights, acts)]
    out = pd.DataFrame({
        "kernel": "moe", "dtype": acts.to_numpy(), "weights": weights.to_numpy(),
        "family": [f"moe_{c}" for c in cls],
        "tokens": t["num_tokens"].to_numpy(float), "hidden": t["hidden_size"].to_numpy(int),
        "inter": t["inter_size"].to_numpy(int), "topk": t["topk"].to_numpy(int),
        "experts": t["num_experts"].to_numpy(int), "moe_tp": t["moe_tp_size"].to_numpy(float),
        "q_e": [float(compute_dtype_for(w, a) in expert_quant) for w, a in zip(weights, acts)],
        "measured_s": t["latency"].to_numpy(float) * 1e-3,
    })
    # gated experts (w1 holds gate and up: 2 x inter, the collector's weights): 2 x 3 x hidden x inter per pair
    return out.assign(size=6.0 * out["tokens"] * out["topk"] * out["hidden"] * out["inter"] / out["moe_tp"])


@lru_cache(maxsize=128)
def _compiled(hidden: int, inter: int, topk: int, experts: int):
    from model.operators.compiled import CompiledOps
    from model.operators.graph import moe_expert_operators

    mlp = Mlp(kind="moe", intermediate_size=0, num_experts=experts, top_k=topk, expert_intermediate_size=inter)
    return CompiledOps(tuple(moe_expert_operators(mlp, hidden)))


def _op_arrays(g: pd.DataFrame):
    """The expert operators of one shape group evaluated at its rows (one EP rank, uniform routing)."""
    first = g.iloc[0]
    compiled = _compiled(int(first["hidden"]), int(first["inter"]), int(first["topk"]), int(first["experts"]))
    return compiled.evaluate(B=g["tokens"].to_numpy(float), T=1.0, dp_attn=1.0, ep=1.0,
                             etp=g["moe_tp"].to_numpy(float), gamma_moe=1.0, z_ep=0.0, e_red=0.0,
                             b_e=number_format(str(first["weights"])).bytes_per_element,
                             b_a=2.0,  # bf16 hidden states
                             q_e=g["q_e"].to_numpy(float))


def moe_predictor(rows: pd.DataFrame, device: Device):
    """A function eff -> predicted seconds of every MoE row: the graph's expert operators, evaluated once per shape
    group, timed by the step evaluator with the context of the rows' precision (NaN where the device has no such
    tensor-core path)."""
    from model.roofline.evaluator import context_for, evaluate, resolve_precision

    groups = []
    for _, g in rows.groupby(GROUP, sort=False):
        first = g.iloc[0]
        try:
            rp = resolve_precision(Precision(weights=str(first["weights"]), activations=str(first["dtype"])), device)
        except RidgeplanError:
            rp = None
        groups.append((rows.index.get_indexer(g.index), _op_arrays(g), rp))

    def predict(eff: Efficiency) -> np.ndarray:
        out = np.full(len(rows), np.nan)
        for idx, ops, rp in groups:
            if rp is not None:
                out[idx] = evaluate(ops, context_for(device, rp, efficiency=eff)).time_s.sum(axis=0)
        return out

    return predict


def weight_read_s(rows: pd.DataFrame, device: Device) -> np.ndarray:
    """Seconds to read each row's touched experts' weights at the nominal HBM bandwidth (a hard lower bound)."""
    out = np.zeros(len(rows))
    for _, g in rows.groupby(GROUP, sort=False):
        ops = _op_arrays(g)
        out[rows.index.get_indexer(g.index)] = ops.weight_bytes.sum(axis=0) / device.memory.bandwidth_bytes_per_s
    return out
