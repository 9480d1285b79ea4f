"""Which operand bytes a GEMM table's benchmark finds in L2: a property of the measurement, not of the GPU.

aiconfigurator's GEMM collectors time a CUDA graph that calls several copies of one GEMM back to back and divide by
the copies, so an operand re-read before L2 evicts it comes from cache. How much stays warm is the collector's own
choice (aiconfigurator collector/*/collect_gemm.py, main 095f58a, unchanged since the SGLang 0.5.14 collection
e23be5a):
- SGLang: up to 6 copies (`outside_loop_count`, 45% of memory allowing), each with its own activation, weight and
  output (`create_gemm` draws `a_bfloat16` and `b_bfloat16` per copy): every operand is re-read only after the
  other copies have run, so the call is warm only when all copies fit in L2 together;
- vLLM: 6 copies of the weight (`RowParallelLinear`) on one shared activation `x`;
- TensorRT-LLM: ceil(L2 / weight bytes) copies (at most 5) on one shared activation.
Where the copies fit in L2 together every operand is warm; past that, a shared activation stays warm (read by the
next copy after one copy's traffic) while the copies' own weights and outputs stream. The tables show the
difference: on B200, GEMMs whose activation is over 90% of their bytes run slower under SGLang than the same shapes
under vLLM by a median 21% where SGLang's six copies overflow L2 1-2x, 32% at 2-4x, and 1% where they fit in half.

The share is a column of the importer's GEMM rows (`bench_l2_share`), read by single-kernel predictions through
Efficiency.bench_l2_floor_s (model.roofline.kernels.bench_l2_saving_s); a model step never sees it.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

# copies each engine's collector times per call, and whether they share one activation
COPIES = {"sglang": 6.0, "vllm": 6.0, "trtllm": 5.0}
SHARED_ACTIVATION = {"sglang": False, "vllm": True, "trtllm": True}
# the share of L2 a cyclic working set can fill and stay warm (B200's and Hopper's L2 are two partitions; a line
# read by SMs of both sides is held in both, so a working set past half of L2 begins to evict itself)
L2_FILL = 0.5
# weight bytes per element of each GEMM dtype (block scales left out); activations enter as BF16 in every collector
# (the FP8/FP4 ops quantize them inside the timed call, into a buffer of the GEMM's input width) and outputs are BF16
WEIGHT_BYTES = {"bf16": 2.0, "fp16": 2.0, "fp8": 1.0, "fp4": 0.5}


def copies(engine: str, weight_bytes: np.ndarray, l2_bytes: float, single: np.ndarray) -> np.ndarray:
    """Copies of one GEMM the engine's collector calls per timed graph: TensorRT-LLM enough to span L2 (at most 5),
    vLLM one for block-scaled FP8 and NVFP4 (`outside_loop_count`) and 6 otherwise, SGLang 6."""
    if engine == "trtllm":
        return np.clip(np.ceil(l2_bytes / np.maximum(weight_bytes, 1.0)), 1.0, COPIES[engine])
    return np.where(single & (engine == "vllm"), 1.0, COPIES.get(engine, 1.0))


def bench_l2_share(rows: pd.DataFrame, engine: str, l2_bytes: float) -> np.ndarray:
    """Share of each GEMM row's bytes that its benchmark reads from a warm L2 (0 for other rows and engines without
    a known collector)."""
    out = np.zeros(len(rows))
    if engine not in COPIES or not len(rows):
        return out
    gemm = ((rows["kernel"] == "gemm") & rows["dtype"].isin(list(WEIGHT_BYTES))).to_numpy()
    if not gemm.any():
        return out
    sub = rows.loc[gemm]
    m, n, k = (sub[c].to_numpy(float) for c in ("m", "n", "k"))
    elem = sub["dtype"].map(WEIGHT_BYTES).to_numpy(float)
    block = (sub["block_scaled"].fillna(0).to_numpy(float) > 0) if "block_scaled" in sub else np.zeros(len(sub), bool)
    a = 2 * m * k + np.where(elem < 2, elem * m * k, 0.0)  # the BF16 activation and its quantized copy
    w, o = elem * n * k, 2 * m * n
    c = copies(engine, w, l2_bytes, block | (elem < 1))
    cap = L2_FILL * l2_bytes
    if SHARED_ACTIVATION[engine]:
        together = a + c * (w + o) <= cap
        share = np.where(together, 1.0, np.where((c > 1) & (a + w + o <= cap), (c - 1) / c * a / (a + w + o), 0.0))
    else:
        share = np.where(c * (a + w + o) <= cap, 1.0, 0.0)
    out[gemm] = share
    return out
