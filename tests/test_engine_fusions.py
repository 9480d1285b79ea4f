"""Engine kernel facts, by hand: SGLang's FP8/FP4 linear layers quantizing their activations in a kernel of their
own."""

import pytest

from model.serving.breakdown import op_table
from model.serving.deployment import deployment


def test_sglang_fp8_linear_pays_its_activation_quantization_by_hand():
    from model.engines import step_quant_flags

    assert step_quant_flags("sglang")["step_quant_8"] == 1.0 and step_quant_flags("sglang")["step_quant_4"] == 1.0
    assert step_quant_flags("trtllm")["step_quant_8"] == 0.0  # fused into its norm / all-reduce kernels
    kw = {"weights": "fp8", "kv": "fp8", "tp": 8}
    sgl = op_table(deployment("zai-org/GLM-5", "b200", engine="sglang", **kw).step(4, 1, 1000)).set_index("operator")
    trt = op_table(deployment("zai-org/GLM-5", "b200", engine="trtllm", **kw).step(4, 1, 1000)).set_index("operator")
    # o_proj at TP8: m = 4 tokens, k = 64 heads / 8 x 256 = 2,048; the Blackwell class quantization: 3.52 us plus
    # 3.63 B per element at 8e12 x 0.74 B/s: 3.52e-6 + 3.63 x 4 x 2048 / 5.92e12 = 3.525 us per layer, 78 layers
    extra = 3.52e-6 + 3.63 * 4 * 2048 / (8e12 * 0.74)
    assert (sgl.loc["o_proj", "time_s"] - trt.loc["o_proj", "time_s"]) / 78 == pytest.approx(extra, rel=1e-3)


def test_glm5_quantization_kernels_only_where_sglang_runs_them():
    kw = {"weights": "fp8", "kv": "fp8", "tp": 8}
    sgl = op_table(deployment("zai-org/GLM-5", "b200", engine="sglang", **kw).step(4, 1, 1000)).set_index("operator")
    trt = op_table(deployment("zai-org/GLM-5", "b200", engine="trtllm", **kw).step(4, 1, 1000)).set_index("operator")
    # kv_a_proj runs in one GEMM with q_a_proj over one quantized input (fused_qkv_a_proj_with_mqa): no kernel of its
    # own; the indexer's weights projection is not quantized at all: 6,144 x 32 weights in bf16 = 393,216 B per layer
    assert sgl.loc["kv_a_proj", "time_s"] == pytest.approx(trt.loc["kv_a_proj", "time_s"])
    assert sgl.loc["indexer_weights_proj", "time_s"] == pytest.approx(trt.loc["indexer_weights_proj", "time_s"])
    weights = 6144 * 32 * 2
    assert sgl.loc["indexer_weights_proj", "bytes"] / 78 == pytest.approx(weights + 4 * (6144 + 32) * 2)
    assert sgl.loc["q_a_proj", "time_s"] > trt.loc["q_a_proj", "time_s"]
