"""vLLM (V1 engine, v0.8 and later): scheduling defaults and how its scheduler works.

Scheduler (vllm/v1/core/sched/scheduler.py, `Scheduler.schedule`): one token budget per step
(max_num_batched_tokens). Running requests are served first: every decoding request takes 1 token (k + 1 with
speculation); then waiting requests are admitted FCFS while the budget, max_num_seqs and free KV blocks allow,
a long prompt taking the remaining budget as a chunk (chunked prefill is always on in V1). When a decode
cannot get a KV block the most recently admitted running request is preempted and later recomputed
(PreemptionMode.RECOMPUTE, the only mode in V1). Automatic prefix caching is on by default in V1.

Layout rules and launch flags follow the scheduling defaults. Launch flags: The flags `ridgeplan plan` emits for `vllm serve`, for vLLM 0.10 (source: https://docs.vllm.ai/en/v0.10.0/cli/serve.html
and `vllm serve --help`), the quantization methods per weight format, the MoE/DP rules, ROCm support, and the
prefill/decode proxy (NIXL connector; proxy from vLLM's tests/v1/kv_connector/nixl_integration/toy_proxy_server.py).

Per-model kernels read for the engine-row check (v0.17-v0.19, the MiniMax-M2.5 rows' images):
- MiniMax-M2 (vllm/model_executor/models/minimax_m2.py): q and k are RMS-normalised over all heads
  (MiniMaxText01RMSNormTP, weights of heads x head_dim, sharded by TP); with TP > 1 `forward_qk` all-reduces the fp32
  mean squares of q and k in one tensor_model_parallel_all_reduce per layer (PR #31493, Dec 2025), between the kernel
  that forms them and the kernel that scales. The fused all-reduce + norm kernel is the opt-in compilation pass
  `fuse_minimax_qk_norm` (PR #39782, Apr 2026), which InferenceX's B200/B300 MiniMax-M2.5 launches do not set
  (benchmarks/single_node/fixed_seq_len/deprecated/minimaxm2.5_fp{4,8}_b{200,300}.sh). Modelled in
  model.operators.graph._qk_norm_all_heads; partial rotary (rotary_dim 64 of head_dim 128) in the graph's rotary.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from model.engines.launch import Flag, LaunchSpec, LaunchTable, parse
from model.errors import RidgeplanError

@dataclass(frozen=True)
class VLLMDefaults:
    name: str = "vllm"
    # --max-num-seqs 256 and --max-num-batched-tokens 8192: ridgeplan's long-standing policy. vLLM itself picks
    # per GPU in EngineArgs.get_batch_defaults (vllm/engine/arg_utils.py, v0.9+): see `server_batch_defaults`.
    max_num_seqs: int = 256
    max_num_batched_tokens: int = 8192
    chunked_prefill: bool = True  # --enable-chunked-prefill: always on in the V1 engine
    block_size: int = 16  # --block-size 16 (CacheConfig.block_size on CUDA)
    gpu_memory_utilization: float = 0.90  # --gpu-memory-utilization 0.9 (CacheConfig)
    memory_mode: str = "fraction_of_total"  # the KV pool is util x total minus weights and activations
    scheduling_policy: str = "fcfs"  # --scheduling-policy fcfs (SchedulerConfig.policy)
    preemption: str = "recompute"  # V1: PreemptionMode.RECOMPUTE; the last admitted request is preempted first
    admission: str = "current"  # blocks for the tokens being scheduled now, not the whole request
    enable_prefix_caching: bool = True  # --enable-prefix-caching: on by default in V1
    # --async-scheduling off by default (SchedulerConfig.async_scheduling, v0.10-v0.11): a step's batch is
    # formed after the previous step's outputs, so a request that arrives during a step enters the next one
    overlap_scheduler: bool = False
    # activation dtypes whose quantization runs as its own kernel before each linear layer's GEMM: NVFP4.
    # ModelOptNvFp4LinearMethod.apply (vllm/model_executor/layers/quantization/modelopt.py) calls
    # `scaled_fp4_quant(x, layer.input_scale_inv)` and then `cutlass_scaled_fp4_mm`, as do the compressed-tensors
    # W4A4 scheme and the FlashInfer backends; FP8 activation quantization is a torch op that torch.compile fuses
    # into the preceding norm or activation, so FP8 is not listed
    unfused_activation_quant: tuple[str, ...] = ("fp4",)
    # expert activation dtypes its MoE layer quantizes in kernels of their own before each grouped GEMM: FP8
    # (fused_moe.py fused_experts_impl: moe_kernel_quantize_input for the hidden states, then for the activated
    # intermediate, around the Triton fused_moe_kernel calls)
    unfused_expert_quant: tuple[str, ...] = ("fp8",)
    source: str = "vLLM v0.8-v0.19 V1 engine (vllm/config/scheduler.py, vllm/engine/arg_utils.py)"


VLLM = VLLMDefaults()

# The grouped MoE kernels vLLM runs per expert format on Blackwell, as NVIDIA's MoE tables name them
# (aiconfigurator-core 0.12.0 systems/data/b200_sxm/moe/vllm/0.24.0/moe_perf.parquet, kernel_source; the collector
# builds the layer through vLLM's own quant methods, so the backend is vLLM's choice), with the fastest per shape:
# the kernels behind the Blackwell moe_*_scale defaults (model.roofline.efficiency_sets.MOE_ENGINE_DEFAULTS["vllm"])
MOE_KERNELS = {
    "bf16": "FlashInfer TRT-LLM BF16 experts (TrtLlmBf16Experts), FlashInfer CUTLASS",
    "fp8": "FlashInfer TRT-LLM block-FP8 MoE (TrtLlmFp8Experts, monolithic or modular; Fp8MoEMethod)",
    "nvfp4": "FlashInfer TRT-LLM NVFP4 MoE (monolithic), FlashInfer CUTLASS (compressed-tensors W4A4 NVFP4)",
    "int4": "Marlin MoE (compressed-tensors WNA16 MarlinExperts): W4A16, the weights dequantized in the kernel",
    "mxfp4": "FlashInfer TRT-LLM MXFP4 x BF16 (gpt-oss Mxfp4MoEMethod), Marlin for other W4A16 MXFP4",
}


GIB = 1024**3
MIB, KIB = 1024**2, 1024

# vLLM's CUDA-graph custom all-reduce, as (one-shot below, custom kernel below) bytes per group size, by device class.
# One-shot (cross_device_reduce_1stage: every rank reads every peer's buffer) for 2 ranks always, below 512 kB for up
# to 4 and below 256 kB for up to 8; two-shot (cross_device_reduce_2stage) above (csrc/custom_all_reduce.cuh,
# REDUCE_CASE). The kernel takes messages below CUSTOM_ALL_REDUCE_MAX_SIZES[compute capability][world size] where
# symmetric memory is available (vllm/distributed/device_communicators/all_reduce_utils.py; should_custom_ar:
# inp_size < max_size); larger ones go to the symmetric-memory (multimem) all-reduce or NCCL.
CUSTOM_ALL_REDUCE = {
    "hopper": {2: (64 * MIB, 64 * MIB), 4: (512 * KIB, 32 * MIB), 8: (256 * KIB, 256 * KIB)},  # "9.0"
    "blackwell": {2: (2 * MIB, 2 * MIB), 4: (512 * KIB, 2 * MIB), 8: (256 * KIB, 1 * MIB)},  # "10.0"
}


def server_batch_defaults(device_memory_bytes: float, device_name: str) -> tuple[int, int]:
    """(max_num_batched_tokens, max_num_seqs) that `vllm serve` picks when neither is given
    (EngineArgs.get_batch_defaults, OPENAI_API_SERVER context): 8192 and 1024 on GPUs with at least 70 GiB
    that are not A100s (H100, H200, B200, MI300X), else 2048 and 256."""
    if device_memory_bytes >= 70 * GIB and "a100" not in device_name.lower():
        return 8192, 1024
    return 2048, 256


# ---------------------------------------------------------------------------------------------------------
NAME = "vLLM"

# ---------------------------------------------------------------------------------------------------------
# layout rules
#
# vLLM: --tensor-parallel-size T, --data-parallel-size D (attention data-parallel ranks of an MoE model) and
# --enable-expert-parallel. The MoE layers span the T x D GPUs: with expert parallelism every expert sits whole on
# one GPU (EP = T x D, no MoE-TP); without it every expert is split T x D ways (EP 1). Source:
# vllm/model_executor/layers/fused_moe/config.py (FusedMoEParallelConfig.make) and docs/serving/expert_parallel_deployment.md.
LAYOUT_SOURCE = "vllm/model_executor/layers/fused_moe/config.py (FusedMoEParallelConfig.make)"
RULE_MOE = ("the MoE layers span TP x DP GPUs: --enable-expert-parallel gives EP = TP x DP with whole experts, "
            "otherwise every expert is split TP x DP ways (no mixed MoE-TP x EP)")
EP_COMM = ("auto", "allgather", "normal", "low_latency")  # VLLM_ALL2ALL_BACKEND: allgather_reducescatter, deepep_*


def check_layout(*, tp: int, pp: int = 1, attention_dp: int = 1, moe_tp: int = 1, moe_ep: int = 1,
                 is_moe: bool = True, ep_comm: str = "auto") -> None:
    world = tp * attention_dp
    if is_moe and not ((moe_tp == 1 and moe_ep == world) or (moe_tp == world and moe_ep == 1)):
        raise RidgeplanError("moe_ep", f"vLLM: '{RULE_MOE}' (MoE-TP {moe_tp} x MoE-EP {moe_ep} on {world} GPUs; "
                             f"{LAYOUT_SOURCE})", [f"moe_tp=1 moe_ep={world}", f"moe_tp={world} moe_ep=1"])
    if ep_comm not in EP_COMM:
        raise RidgeplanError("ep_comm", f"vLLM has no {ep_comm!r} MoE communication", EP_COMM)
    if ep_comm in ("normal", "low_latency") and is_moe and moe_ep == 1 and world > 1:
        raise RidgeplanError("ep_comm", "vLLM: the DeepEP all-to-all backends need --enable-expert-parallel "
                             f"({LAYOUT_SOURCE})", ["allgather", f"moe_ep={world}"])


LAUNCH = LaunchTable(
    engine="vllm", version="0.10", source="https://docs.vllm.ai/en/v0.10.0/cli/serve.html",
    entry=("vllm", "serve"), model_flag=None, rocm=True,
    flags=(
        Flag("--tensor-parallel-size", "int"), Flag("--pipeline-parallel-size", "int"),
        Flag("--data-parallel-size", "int"), Flag("--enable-expert-parallel", "switch"),
        Flag("--quantization", "str", ("fp8", "awq", "awq_marlin", "gptq", "gptq_marlin", "compressed-tensors",
                                       "modelopt", "modelopt_fp4", "mxfp4", "bitsandbytes")),
        Flag("--kv-cache-dtype", "str", ("auto", "fp8", "fp8_e4m3", "fp8_e5m2")),
        Flag("--max-num-seqs", "int"), Flag("--max-num-batched-tokens", "int"),
        Flag("--gpu-memory-utilization", "float"), Flag("--kv-transfer-config", "json"),
        Flag("--host", "str"), Flag("--port", "int"),
    ),
    notes=("fp8 weights: vLLM quantizes a bf16 checkpoint at load time (dynamic per-tensor FP8)",
           "int4: needs a pre-quantized AWQ (awq_marlin kernel) or GPTQ checkpoint"),
)

# weight format -> (--quantization, whether a pre-quantized checkpoint is required)
QUANTIZATION = {"fp8": ("fp8", False), "int4": ("awq_marlin", True), "nvfp4": ("modelopt_fp4", True),
                "mxfp4": ("mxfp4", True)}
KV_DTYPE = {"bf16": "auto", "fp16": "auto", "fp8": "fp8"}
PROXY = ("python tests/v1/kv_connector/nixl_integration/toy_proxy_server.py --port 8000 "
         "--prefiller-hosts {prefill_hosts} --prefiller-ports {prefill_ports} "
         "--decoder-hosts {decode_hosts} --decoder-ports {decode_ports}")


def launch_command(s: LaunchSpec) -> str:
    v = ["vllm serve", s.model, f"--tensor-parallel-size {s.tp}"]
    if s.pp > 1:
        v.append(f"--pipeline-parallel-size {s.pp}")
    if s.ep > 1:  # attention DP x expert parallel: one process group of dp ranks, experts spread over them
        v += [f"--data-parallel-size {s.dp}", "--enable-expert-parallel"]
    if s.weights in QUANTIZATION:
        v.append(f"--quantization {QUANTIZATION[s.weights][0]}")
    if KV_DTYPE.get(s.kv, "auto") != "auto":
        v.append(f"--kv-cache-dtype {KV_DTYPE[s.kv]}")
    v += [f"--max-num-seqs {s.max_seqs}", f"--max-num-batched-tokens {s.batched_tokens}",
          "--gpu-memory-utilization 0.90"]
    if s.role != "aggregated":
        v.append("--kv-transfer-config '" + json.dumps({"kv_connector": "NixlConnector", "kv_role": "kv_both"},
                                                      separators=(",", ":")) + "'")
    return " ".join(v)


def check_launch(flags: dict, spec: LaunchSpec | None = None) -> list[str]:
    """Combination rules on parsed flags (empty: the command is valid)."""
    errors = []
    tp, pp, dp = (int(flags.get(f"--{k}", 1)) for k in ("tensor-parallel-size", "pipeline-parallel-size",
                                                        "data-parallel-size"))
    if flags.get("--enable-expert-parallel") and tp * dp < 2:
        errors.append("--enable-expert-parallel needs tensor-parallel-size x data-parallel-size >= 2")
    quant = flags.get("--quantization")
    if spec is not None:
        if spec.vendor == "AMD" and not LAUNCH.rocm:
            errors.append("vLLM build without ROCm")
        want = QUANTIZATION.get(spec.weights)
        if want and quant != want[0]:
            errors.append(f"{spec.weights} weights need --quantization {want[0]}")
        if want and want[1] and spec.checkpoint_format != spec.weights and not spec.model.startswith("$"):
            errors.append(f"--quantization {want[0]} needs a {spec.weights} checkpoint, not {spec.model}")
        if tp * pp * (dp if flags.get("--enable-expert-parallel") else 1) != spec.gpus:
            errors.append("parallel sizes do not multiply to the instance's GPUs")
    return errors


def parse_command(command: str) -> dict:
    return parse(LAUNCH, command)
