"""DeepSeek sparse attention's lightning indexer as its reference code runs it (deepseek-ai/DeepSeek-V3.2-Exp
inference/model.py Indexer.forward; SGLang nsa_indexer.py forward_cuda): projections, rotary + Hadamard of q and
k, FP8 quantization of q and k, fp32 scores over every cached key, then top-k as a kernel of its own."""

from __future__ import annotations

from model.serving.deployment import deployment

INDEXER = ("indexer_q_proj", "indexer_k_proj", "indexer_k_norm", "indexer_weights_proj", "indexer_rotate",
           "indexer_quant", "indexer", "indexer_topk")


def test_glm5_indexer_kernels_and_bytes_by_hand():
    d = deployment("glm-5", "b200", weights="fp8", kv="fp8", tp=8)
    ops = d.graph.evaluate({**d.symbols(), "B": 4.0, "T": 1.0, "C": 1000.0})
    first = {op.name: i for i, op in reversed(list(enumerate(ops.ops)))}  # one attention layer's operators
    assert all(n in first for n in INDEXER)
    # 4 projections/norm + 3 (one rotary call for q and k, two Hadamard transforms) + 3 (two act_quant calls, the
    # q scales folded into the weights) + the scores + top-k = 12 kernels per layer
    assert sum(ops.ops[first[n]].kernels for n in INDEXER) == 12
    # GLM-5: 32 index heads x 128; 4 decode tokens: q (32 heads) and k (1) rotated and quantized, 4 x 33 x 128 =
    # 16,896 elements read and written in 16 bits = 67,584 bytes each
    assert ops.act_bytes[first["indexer_rotate"], 0] == 4 * 33 * 128 * 2 * 2 == 67_584
    assert ops.act_bytes[first["indexer_quant"], 0] == 67_584
    # top-k reads the 4 x 1,001 fp32 scores and writes 4 x 2,048 int32 indices: 16,016 + 32,768 = 48,784 bytes
    assert ops.act_bytes[first["indexer_topk"], 0] == 4 * 1001 * 4 + 4 * 2048 * 4 == 48_784
    # the scores kernel writes those fp32 scores on top of reading q (4 x 32 x 128) and the weights (4 x 32)
    assert ops.act_bytes[first["indexer"], 0] == 4 * (32 * 128 + 32) * 2 + 4 * 1001 * 4
