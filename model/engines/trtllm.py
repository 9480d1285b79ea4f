"""TensorRT-LLM (PyTorch backend, 0.20-1.3, trtllm-serve / trtllm-bench): scheduling defaults.

In-flight batching (tensorrt_llm/_torch/pyexecutor/scheduler.py): the capacity scheduler decides which
requests hold KV memory: GUARANTEED_NO_EVICT (default) admits a request only when blocks for its whole
prompt plus max_tokens are free, so nothing is ever evicted; MAX_UTILIZATION admits on current needs and
pauses (evicts) requests when the pool runs out. The micro-batch scheduler then fills one iteration with
generation requests (one token each) and context requests FCFS up to max_batch_size requests and
max_num_tokens tokens; context and generation run in the same forward. Without chunked context a prompt
must fit the remaining token budget whole; with --enable_chunked_prefill it is cut to the budget.

Layout rules and launch flags follow the scheduling defaults. Launch flags: The flags `ridgeplan plan` emits for `trtllm-serve` (PyTorch backend), for TensorRT-LLM 1.0 (source:
https://nvidia.github.io/TensorRT-LLM/commands/trtllm-serve.html). TensorRT-LLM takes its weight precision from
the checkpoint (no quantization flag): an fp8/int4/nvfp4 plan must serve a ModelOpt-quantized checkpoint. The KV
format, attention DP and the disaggregated cache transceiver go in the --extra_llm_api_options YAML. MoE rule:
moe_tp_size x moe_ep_size = tp_size, so --ep_size must divide --tp_size. FP8 needs compute capability >= 8.9
(Ada, Hopper, Blackwell). CUDA only: no ROCm build. Prefill/decode: `trtllm-serve disaggregated -c CONFIG`
(source: https://nvidia.github.io/TensorRT-LLM/advanced/disaggregated-service.html).
"""

from __future__ import annotations

from dataclasses import dataclass

from model.engines.launch import Flag, LaunchSpec, LaunchTable, parse
from model.errors import RidgeplanError

@dataclass(frozen=True)
class TRTLLMDefaults:
    name: str = "trtllm"
    max_batch_size: int = 2048  # --max_batch_size 2048 (BuildConfig / LLM API default)
    max_num_tokens: int = 8192  # --max_num_tokens 8192
    capacity_scheduler_policy: str = "GUARANTEED_NO_EVICT"  # CapacitySchedulerPolicy default
    enable_chunked_prefill: bool = False  # --enable_chunked_prefill off by default
    inflight_batching: bool = True  # context and generation requests share an iteration
    tokens_per_block: int = 32  # KvCacheConfig tokens_per_block 32
    free_gpu_memory_fraction: float = 0.90  # KvCacheConfig.free_gpu_memory_fraction 0.9 of memory after weights
    memory_mode: str = "fraction_of_free"
    # disable_overlap_scheduler False (TorchLlmArgs, llm_args.py; aiconfigurator's generator keeps it on for
    # aggregated workers): PyExecutor._executor_loop_overlap forms and launches batch n+1 before batch n's
    # results are processed, so a request that arrives while batch n runs enters batch n+2
    overlap_scheduler: bool = True
    # TensorRT-LLM fuses FP8/FP4 activation quantization into the norm, activation and
    # attention-output kernels before its quantized GEMMs (fused RMSNorm+quant, SwiGLU+quant, FMHA output quant)
    unfused_activation_quant: tuple[str, ...] = ()
    # not modelled as unfused: its CUTLASS MoE quantizes inside expandInputRows and the activation kernel
    unfused_expert_quant: tuple[str, ...] = ()
    source: str = "TensorRT-LLM 0.20-1.3 PyTorch backend (tensorrt_llm/llmapi/llm_args.py, _torch/pyexecutor/scheduler.py)"

    @property
    def admission(self) -> str:
        """ridgeplan's admission name for the capacity policy."""
        return "max_length" if self.capacity_scheduler_policy == "GUARANTEED_NO_EVICT" else "current"


CAPACITY_POLICIES = ("GUARANTEED_NO_EVICT", "MAX_UTILIZATION")


AIC_AGG_EXTRA_TOKENS = 1500  # aiconfigurator's generator: max_num_tokens = bs + ISL + 1500 (aggregated worker)


def aic_agg_limits(isl: int, batch_size: int | None = None) -> tuple[int, int]:
    """(max_num_tokens, max_batch_size) of an aggregated worker as aiconfigurator's generator launches it:
    max_batch_size = the configured batch size, max_num_tokens = batch size + ISL + 1500 rounded up to
    tokens_per_block, chunked context off (aiconfigurator generator/backends/trtllm.py, Oct 2025:
    `agg_cfg["max_num_tokens"] = agg_cfg["bs"] + ctx.runtime.isl + 1500`; the same rule in
    generator/rule_plugin/trtllm.rule through 2026). Without a batch size: the engine's default
    max_batch_size and max_num_tokens, raised to hold a prompt beside the decodes."""
    if not batch_size or batch_size != batch_size or batch_size < 1:
        return max(TRTLLM.max_num_tokens, int(isl) + 2048), TRTLLM.max_batch_size
    bs = int(batch_size)
    block = TRTLLM.tokens_per_block
    return -(-(bs + int(isl) + AIC_AGG_EXTRA_TOKENS) // block) * block, bs

TRTLLM = TRTLLMDefaults()

_MIB, _KIB = 1024**2, 1024
# TensorRT-LLM's all-reduce strategy AUTO with its autotuner off (as NVIDIA's collector runs it,
# TLLM_DISABLE_ALLREDUCE_AUTOTUNE=1) reads AllReduceBestStrategyTableSM90 / SM100
# (cpp/tensorrt_llm/common/customAllReduceUtils.h, selectStrategyLookUpTable: [tp][fusion][hidden][log2 tokens],
# 4 = ONESHOT, 5 = TWOSHOT, 0 = NCCL; past the table NCCL_SYMMETRIC). Row fusion NONE, hidden 4096 (the collector's
# [size / 4096, 4096] tensors), first switch of each row, as (one-shot below, custom kernel below) bytes of BF16
# (tokens x 4096 x 2): SM90 TP2 one-shot to 1024 tokens, NCCL from 2048; TP4 one-shot to 4 tokens, two-shot 8-512
# (one 128-token ONESHOT cell), NCCL from 1024; TP8 one-shot to 32 tokens, two-shot 64-512, NCCL from 1024.
# SM100 TP2 one-shot to 1024 tokens, NCCL from 2048; TP4 one-shot to 256, two-shot 512, NCCL from 1024; TP8 one-shot
# to 128, two-shot 256-512, NCCL from 1024.
CUSTOM_ALL_REDUCE = {
    "hopper": {2: (16 * _MIB, 16 * _MIB), 4: (64 * _KIB, 8 * _MIB), 8: (512 * _KIB, 8 * _MIB)},
    "blackwell": {2: (16 * _MIB, 16 * _MIB), 4: (4 * _MIB, 8 * _MIB), 8: (2 * _MIB, 8 * _MIB)},
}

# The grouped MoE kernels TensorRT-LLM runs per expert format on Blackwell, as NVIDIA's MoE tables name them
# (aiconfigurator-core 0.12.0 systems/data/b200_sxm/moe/trtllm/1.3.0rc20/moe_perf.parquet, kernel_source), with
# the fastest per shape: the kernels behind model.roofline.efficiency_sets.MOE_ENGINE_DEFAULTS["trtllm"]
MOE_KERNELS = {
    "bf16": "CUTLASS MoE (moe_torch_flow_cutlass)",
    "fp8": "DeepGEMM grouped block-FP8 GEMMs (deepgemm)",
    "nvfp4": "TRT-LLM-gen min-latency NVFP4 MoE (moe_torch_flow_min_latency), CUTLASS for large batches",
    "mxfp4": "MXFP4 MoE (moe_torch_flow), W4A16",
}


# ---------------------------------------------------------------------------------------------------------
NAME = "TensorRT-LLM"

# ---------------------------------------------------------------------------------------------------------
# layout rules
#
# TensorRT-LLM's Mapping takes tp_size = all GPUs of a pipeline stage (our tp x attention_dp), pp_size,
# moe_tp_size, moe_ep_size and enable_attention_dp. Sources: tensorrt_llm/mapping.py (Mapping.__init__ raises
# unless moe_tp_size * moe_ep_size == tp_size) and docs/source/features/parallel-strategy.md ("Attention module:
# tensor parallelism or data parallelism"; with enable_attention_dp every rank runs attention on its own batch).
LAYOUT_SOURCE = "tensorrt_llm/mapping.py, docs/source/features/parallel-strategy.md"
RULE_MOE = "moe_tp_size * moe_ep_size must equal tp_size"
RULE_ATTENTION = "attention runs either tensor-parallel or, with enable_attention_dp, data-parallel (TP 1 per rank)"
EP_COMM = ("auto", "allgather", "normal", "low_latency")


def check_layout(*, tp: int, pp: int = 1, attention_dp: int = 1, moe_tp: int = 1, moe_ep: int = 1,
                 is_moe: bool = True, ep_comm: str = "auto") -> None:
    world = tp * attention_dp
    if is_moe and moe_tp * moe_ep != world:
        raise RidgeplanError("moe_tp", f"TensorRT-LLM: '{RULE_MOE}' ({moe_tp} x {moe_ep} != {world}; "
                             f"{LAYOUT_SOURCE})", [f"{m}x{world // m}" for m in range(1, world + 1) if world % m == 0])
    if attention_dp > 1 and tp > 1:
        raise RidgeplanError("attention_dp", f"TensorRT-LLM: '{RULE_ATTENTION}': TP{tp} x attention-DP{attention_dp} "
                             f"is not expressible ({LAYOUT_SOURCE})",
                             [f"tp=1 attention_dp={world}", f"tp={world} attention_dp=1"])
    if ep_comm not in EP_COMM:
        raise RidgeplanError("ep_comm", f"TensorRT-LLM has no {ep_comm!r} MoE communication", EP_COMM)


LAUNCH = LaunchTable(
    engine="trtllm", version="1.0", source="https://nvidia.github.io/TensorRT-LLM/commands/trtllm-serve.html",
    entry=("trtllm-serve",), model_flag=None, rocm=False,
    flags=(
        Flag("--backend", "str", ("pytorch",)), Flag("--tp_size", "int"), Flag("--pp_size", "int"),
        Flag("--ep_size", "int"), Flag("--max_batch_size", "int"), Flag("--max_num_tokens", "int"),
        Flag("--kv_cache_free_gpu_memory_fraction", "float"), Flag("--extra_llm_api_options", "str"),
        Flag("--host", "str"), Flag("--port", "int"),
    ),
    notes=("precision comes from the checkpoint: fp8/int4/nvfp4 plans need a ModelOpt-quantized checkpoint",),
)

CHECKPOINT_FORMATS = ("bf16", "fp16", "fp8", "int4", "nvfp4")  # ModelOpt export formats trtllm-serve loads
FP8_ARCHS = ("ada", "hopper", "blackwell")
DISAGG = "trtllm-serve disaggregated -c disagg_config.yaml"


def extra_options(s: LaunchSpec) -> str:
    """The --extra_llm_api_options YAML for the instance."""
    lines = []
    if s.kv == "fp8":
        lines += ["kv_cache_config:", "  dtype: fp8"]
    if s.ep > 1 and s.dp > 1:
        lines.append("enable_attention_dp: true")
    if s.role != "aggregated":
        lines += ["cache_transceiver_config:", "  backend: NIXL"]
    return "\n".join(lines)


def launch_command(s: LaunchSpec) -> str:
    tp = s.gpus // s.pp  # attention DP runs inside the tp group: tp_size is the instance's GPUs per stage
    v = ["trtllm-serve", s.model, "--backend pytorch", f"--tp_size {tp}", f"--pp_size {s.pp}"]
    if s.ep > 1:
        v.append(f"--ep_size {s.ep}")
    v += [f"--max_batch_size {s.max_seqs}", f"--max_num_tokens {s.batched_tokens}",
          "--kv_cache_free_gpu_memory_fraction 0.90"]
    if extra_options(s):
        v.append(f"--extra_llm_api_options trtllm_{s.role}.yaml")
    return " ".join(v)


def check_launch(flags: dict, spec: LaunchSpec | None = None) -> list[str]:
    errors = []
    tp, ep, pp = (int(flags.get(k, 1)) for k in ("--tp_size", "--ep_size", "--pp_size"))
    if tp % ep != 0:
        errors.append(f"moe_tp_size x moe_ep_size = tp_size fails: --tp_size {tp} --ep_size {ep}")
    if spec is not None:
        if spec.vendor == "AMD":
            errors.append("TensorRT-LLM has no ROCm build")
        if spec.weights not in CHECKPOINT_FORMATS:
            errors.append(f"no TensorRT-LLM checkpoint format for {spec.weights} weights")
        elif spec.weights not in ("bf16", "fp16") and spec.checkpoint_format != spec.weights \
                and not spec.model.startswith("$"):
            errors.append(f"{spec.weights} weights need a {spec.weights} (ModelOpt) checkpoint, not {spec.model}")
        if "fp8" in (spec.weights, spec.kv) and spec.gpu_arch not in FP8_ARCHS:
            errors.append(f"FP8 needs compute capability >= 8.9; {spec.gpu_arch} has none")
        if spec.kv == "fp8" and "--extra_llm_api_options" not in flags:
            errors.append("an fp8 KV cache needs kv_cache_config.dtype in --extra_llm_api_options")
        if tp * pp != spec.gpus:
            errors.append("--tp_size x --pp_size is not the instance's GPU count")
    return errors


def parse_command(command: str) -> dict:
    return parse(LAUNCH, command)
