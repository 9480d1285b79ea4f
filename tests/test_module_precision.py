"""Precision per module: a quantized checkpoint's exclude list keeps some dense modules (attention, its output
projection, shared experts, dense-layer MLPs) in 16 bits; routers always stay 16-bit. Bytes by hand."""

from __future__ import annotations

import numpy as np
import pytest

from model.architecture.quant import excluded_modules
from model.errors import RidgeplanError
from model.precision import Precision
from model.serving.deployment import deployment
from model.validation.engine_rows_layout import row_deployment, served_formats


def test_exclude_lists_by_hand():
    # moonshotai/Kimi-K2.5 (compressed-tensors `ignore`): attention, shared experts and the dense layer's MLP
    assert excluded_modules(["lm_head", "re:.*self_attn.*", "re:.*shared_experts.*",
                             "re:.*mlp\\.(gate|up|gate_up|down)_proj.*"]) == (
        "attention", "attention_out", "shared_experts", "dense_mlp")
    # ModelOpt's DeepSeek recipe: the four MLA input projections only; o_proj stays NVFP4; layer 61 is the MTP layer
    assert excluded_modules(["lm_head", "model.layers.0.self_attn.kv_a_proj_with_mqa",
                             "model.layers.0.self_attn.kv_b_proj", "model.layers.0.self_attn.q_a_proj",
                             "model.layers.0.self_attn.q_b_proj", "model.layers.61*"]) == ("attention",)
    # GLM-5-NVFP4: the indexer and every MLA projection, o_proj included
    assert excluded_modules(["model.layers.3.self_attn.indexer*", "model.layers.3.self_attn.o_proj",
                             "model.layers.3.self_attn.q_a_proj"]) == ("attention", "attention_out")
    # Qwen3.5-NVFP4: linear and full attention layers, shared experts and their gate
    assert excluded_modules(["*.mlp.shared_expert.*", "model.language_model.layers.0.linear_attn*",
                             "model.language_model.layers.3.self_attn*"]) == (
        "attention", "attention_out", "shared_experts")
    # a router (`mlp.gate`) and whole layers are not module kinds
    assert excluded_modules(["model.layers.3.mlp.gate", "model.layers.0*", "lm_head"]) == ()


def test_served_checkpoints_read_from_their_exclude_lists():
    assert served_formats("deepseek-v3", "nvfp4", "nvfp4") == ("nvfp4", "nvfp4", ("attention",))
    assert served_formats("glm-5", "nvfp4", "nvfp4") == ("nvfp4", "nvfp4", ("attention", "attention_out"))
    assert served_formats("kimi-k2.5", "int4", "int4") == (
        "int4", "int4", ("attention", "attention_out", "shared_experts", "dense_mlp"))
    assert served_formats("gpt-oss-120b", "nvfp4", "nvfp4") == ("bf16", "mxfp4", ())  # OpenAI's MXFP4 checkpoint
    assert served_formats("deepseek-v3", "fp8", "fp8") == ("fp8", "fp8", ())  # the catalogue's own FP8 checkpoint


def _weight_bytes(d, name: str) -> float:
    ops = d.graph.evaluate({**d.symbols(), "B": 1.0, "T": 1.0, "C": 100.0})
    rows = [i for i, op in enumerate(ops.ops) if op.name == name]
    assert rows, name
    return float(ops.weight_bytes[rows[0], 0])


def test_decode_bytes_per_module_in_stored_precision():
    """DeepSeek-V3 as nvidia's NVFP4 checkpoint on TP8: per rank, per layer, one decode token."""
    d = deployment("deepseek-v3", "b200", weights="nvfp4", experts="nvfp4", unquantized=("attention",), tp=8)
    # kv_a_proj (replicated, excluded -> bf16): hidden 7168 x (kv_lora 512 + rope 64) x 2 B = 8,257,536
    assert _weight_bytes(d, "kv_a_proj") == 7168 * 576 * 2 == 8_257_536
    # q_b_proj (column-parallel, bf16): q_lora 1536 x 128/8 heads x (128 + 64) x 2 B = 9,437,184
    assert _weight_bytes(d, "q_b_proj") == 1536 * 16 * 192 * 2 == 9_437_184
    # o_proj stays NVFP4 (4 bits + one fp8 scale per 16 = 4.5 bits = 0.5625 B): 16 heads x 128 x 7168 x 0.5625
    assert _weight_bytes(d, "o_proj") == 16 * 128 * 7168 * 0.5625 == 8_257_536
    # shared expert gate+up, NVFP4: 2 x 2048 / 8 x 7168 x 0.5625 = 2,064,384
    assert _weight_bytes(d, "shared_gate_up_proj") == 2 * 256 * 7168 * 0.5625 == 2_064_384
    # router: always 16-bit, replicated: 7168 x 256 experts x 2 B plus its 256 correction biases x 2 B = 3,670,528
    assert _weight_bytes(d, "router") == 7168 * 256 * 2 + 256 * 2 == 3_670_528
    # the same model with every dense module quantized reads kv_a_proj at 0.5625 B
    q = deployment("deepseek-v3", "b200", weights="nvfp4", experts="nvfp4", tp=8)
    assert _weight_bytes(q, "kv_a_proj") == 7168 * 576 * 0.5625


def test_unquantized_modules_run_16bit_and_skip_vllms_fp4_activation_quant():
    """vLLM quantizes NVFP4 activations in a kernel of its own before each FP4 GEMM (model.engines.vllm); a
    module the checkpoint keeps in bf16 is an ordinary bf16 GEMM: no quantization kernel, the bf16 peak."""
    kw = {"weights": "nvfp4", "experts": "nvfp4", "tp": 4, "engine": "vllm"}
    fp4 = deployment("minimax-m2.5", "b200", **kw)
    bf16 = deployment("minimax-m2.5", "b200", unquantized=("attention", "attention_out"), **kw)
    for d, role in ((fp4, "dense"), (bf16, "unquantized")):
        assert next(op for op in d.graph.ops if op.name == "o_proj").weight_role == role
    step_fp4, step_bf16 = fp4.step(1, 1, 1000), bf16.step(1, 1, 1000)
    i = next(k for k, op in enumerate(fp4.graph.ops) if op.name == "o_proj")
    quant_s = fp4.eff.step_quant("fp4")[0]
    assert quant_s > 0
    # the FP4 o_proj's floor holds the quantization kernel; the bf16 one has only its kernel floor
    assert step_fp4.times.floor_s[i, 0] > step_bf16.times.floor_s[i, 0] + 0.9 * quant_s
    ctx = bf16.context
    assert ctx.peak_flop_per_s["unquantized"] == bf16.device.peak("bf16")
    assert not bool(np.asarray(ctx.weight_only["unquantized"]))


def test_rows_serve_the_checkpoint_exclude_lists():
    row = {"model_path": "MiniMaxAI/MiniMax-M2.5", "system": "b200_sxm", "backend": "vllm",
           "gemm_quant_mode": "nvfp4", "moe_quant_mode": "nvfp4", "tp_size": 4, "pp_size": 1,
           "attention_dp_size": 1, "moe_tp_size": 4, "moe_ep_size": 1}
    d = row_deployment(row)
    assert (d.precision.weights, d.precision.expert_weights, d.precision.unquantized) == (
        "nvfp4", "nvfp4", ("attention", "attention_out"))


def test_unknown_module_is_refused():
    with pytest.raises(RidgeplanError, match="unquantized"):
        Precision(weights="nvfp4", unquantized=("mlp",))


def test_moe_layer_kernels_and_fp8_activation_quantization_by_hand():
    """A grouped MoE layer runs five kernels (vLLM fused_experts_impl: align, w1 GEMM, silu_and_mul, w2 GEMM,
    moe_sum); vLLM's and SGLang's Triton MoE quantize FP8 activations per token group in two kernels of their own
    (before each grouped GEMM); TensorRT-LLM fuses them. MiniMax-M2.5 on TP4 (MoE-TP 4), 4 decode tokens: the
    tokens 4 x 3072 plus the 4 x 8 token-expert pairs x 1536 / 4 = 12,288 + 12,288 = 24,576 elements, read and
    written in 16 bits = 98,304 bytes."""
    for engine, quantized in (("vllm", True), ("sglang", True), ("trtllm", False)):
        d = deployment("minimax-m2.5", "b200", weights="fp8", experts="fp8", tp=4, engine=engine)
        ops = d.graph.evaluate({**d.symbols(), "B": 4.0, "T": 1.0, "C": 1000.0})
        names = [op.name for op in ops.ops]
        e, q = names.index("experts"), names.index("experts_quant")
        assert ops.ops[e].kernels == 5 and ops.ops[q].kernels == 2 and q == e - 1
        assert ops.act_bytes[q, 0] == (98_304 if quantized else 0)
        floor = d.step(4.0, 1, 1000.0).times.floor_s[q, 0]
        assert (floor == 2 * d.eff.kernel_floor_s) if quantized else floor == 0  # no work, no kernel
    # NVFP4 experts keep their quantization inside the MoE kernels on every engine
    d = deployment("minimax-m2.5", "b200", weights="nvfp4", experts="nvfp4", tp=4, engine="vllm")
    assert d.symbols()["q_e"] == 0.0
