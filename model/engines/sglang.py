"""SGLang (v0.4-v0.5 runtime): scheduling defaults and how its scheduler works.

Scheduler (python/sglang/srt/managers/scheduler.py, `get_next_batch_to_run`): when requests wait and memory
allows, a prefill batch is built first (`get_new_batch_prefill`, PrefillAdder) and run apart from the decode
batch, so running decodes pause for that iteration; otherwise the decode batch runs. A prefill batch holds up
to chunked_prefill_size new tokens (a longer prompt is chunked and finished in later prefill batches).
With --enable-mixed-chunk the running decodes ride along the prefill batch instead of pausing. Admission
reserves KV for the prompt plus new_token_ratio x max_new_tokens of each running request
(SGLANG_INIT_NEW_TOKEN_RATIO 0.7 x schedule_conservativeness 1.0, decaying toward a floor); when decodes run
out of memory requests are retracted and recomputed. The radix cache shares prompt prefixes (on by default).

Layout rules and launch flags follow the scheduling defaults. Launch flags: The flags `ridgeplan plan` emits for `python -m sglang.launch_server`, for SGLang 0.4.10 (source:
https://docs.sglang.ai/backend/server_arguments.html), the quantization methods per weight format, the DP-attention /
EP rules (--tp is the instance's GPU count; --dp must divide it; --ep-size must divide it), ROCm support, and the
prefill/decode router (source: https://docs.sglang.ai/advanced_features/pd_disaggregation.html).

Qwen3.5 decode (python/sglang/srt/models/qwen3_5.py, layers/attention/hybrid_linear_attn_backend.py), as read for the
engine-row check: a Gated DeltaNet layer runs in_proj_qkvz and in_proj_ba (the latter on an alternate stream under
CUDA graphs), causal_conv1d_update, the fused recurrent gated delta rule with the gating inside, the gated RMSNorm
and out_proj; NVFP4 (modelopt_fp4) checkpoints run the linear- and full-attention projections unquantized. The
recurrent state is --mamba-ssm-dtype, "if not set, read from model config (mamba_ssm_dtype)": float32 for the Qwen3.5
configs, which the graph's b_state = 4 bytes matches (InferenceX's Qwen3.5 FP8/FP4 launches pass bfloat16 since
Mar 2026; not applied to the rows). NVIDIA's SGLang 0.5.14 gdn_perf tables (B200, B300: causal_conv1d_update and
fused_recurrent_gated_delta_rule_packed_decode, Qwen3.5-397B heads at TP 4 and 8, batch 1-256) put the recurrent
kernel within -25%..+30% of the graph's (within +-5% at batch 256, where the fp32 state streams); the conv kernel
measures 1.7-6.2 us against the graph's 3.1-5.2 us (the graph's launch floor binds it below batch 64).
"""

from __future__ import annotations

from dataclasses import dataclass

from model.engines.launch import Flag, LaunchSpec, LaunchTable, parse
from model.errors import RidgeplanError

@dataclass(frozen=True)
class SGLangDefaults:
    name: str = "sglang"
    # --max-running-requests: unset means bounded by the KV pool; ridgeplan's policy keeps 1024 as a cap
    max_running_requests: int = 1024
    # --chunked-prefill-size 8192 (ServerArgs default for GPUs with large memory; 2048-4096 on small ones)
    chunked_prefill_size: int = 8192
    page_size: int = 1  # --page-size 1 (token-granular KV pages)
    mem_fraction_static: float = 0.88  # --mem-fraction-static, ~0.88 on 80 GB-class GPUs (set from GPU memory)
    memory_mode: str = "fraction_of_total"
    schedule_policy: str = "fcfs"  # --schedule-policy (fcfs in current releases; lpm with the radix cache)
    enable_mixed_chunk: bool = False  # --enable-mixed-chunk off: prefill batches pause decodes
    prefill_first: bool = True  # get_next_batch_to_run prefers a new prefill batch over decoding
    init_new_token_ratio: float = 0.7  # SGLANG_INIT_NEW_TOKEN_RATIO (schedule_batch / global_config)
    admission: str = "current"
    # --disable-overlap-schedule False (ServerArgs): event_loop_overlap receives requests and forms batch n+1
    # while batch n runs, so a request that arrives during batch n enters batch n+2. SGLang turns it off for
    # speculative decoding without spec v2 (server_args._handle_speculative_decoding)
    overlap_scheduler: bool = True
    # --scheduler-recv-interval 1 (ServerArgs default): the scheduler polls the tokenizer for new requests at
    # every loop iteration. Above 1, SchedulerRecvSkipper (managers/scheduler_recv_skipper.py) adds a weight
    # per iteration for the last batch's forward mode (DECODE / TARGET_VERIFY 1, no batch 1, any other mode,
    # EXTEND included, 1000: SGLANG_SCHEDULER_RECV_SKIPPER_WEIGHT_* defaults) and receives only once the sum
    # reaches the interval, then resets it: while decodes run, a new request waits for the next multiple of
    # the interval in decode iterations; right after a prefill batch it is received at once
    scheduler_recv_interval: int = 1
    recv_weight_decode: int = 1
    recv_weight_other: int = 1000
    # FP8 and FP4 linear layers quantize their activations in a kernel of their own before the GEMM: block-scaled FP8
    # (python/sglang/srt/layers/quantization/fp8_utils.py: deepgemm_w8a8_block_fp8_linear_with_fallback runs
    # sglang_per_token_group_quant_fp8(input_2d, block_size[1], ...) then the DeepGEMM fp8 GEMM; the CUTLASS and Triton
    # fallbacks per_token_group_quant_fp8 the same way) and NVFP4 (modelopt_quant.py ModelOptFp4LinearMethod.apply:
    # scaled_fp4_quant(x, layer.input_scale_inv) then fp4_gemm); no RMSNorm + quant fusion on these paths
    unfused_activation_quant: tuple[str, ...] = ("fp8", "fp4")
    # FP8 experts: fused_moe_triton's invoke_fused_moe_kernel quantizes A per token group
    # (sglang_per_token_group_quant_fp8) before each of the two grouped GEMMs, as vLLM's Triton MoE does
    unfused_expert_quant: tuple[str, ...] = ("fp8",)
    radix_cache: bool = True  # --disable-radix-cache off: prefix sharing on
    source: str = "SGLang v0.4-v0.5 (python/sglang/srt/server_args.py, managers/scheduler.py)"


SGLANG = SGLangDefaults()

_MIB, _KIB = 1024**2, 1024
# SGLang's CUDA-graph custom all-reduce, as (one-shot below, custom kernel below) bytes per group size. From 0.5.12 the
# JIT kernel v2 is the default (python/sglang/srt/environ.py: SGLANG_OPT_USE_CUSTOM_ALL_REDUCE_V2 = True): its graph
# table (python/sglang/srt/distributed/device_communicators/configs/custom_all_reduce_v2.py, _sm90_config /
# _sm100_config graph_map, nbytes <= threshold) runs one-shot (push, then pull) up to the pull threshold and two-shot
# (pull; multicast for 8 ranks) up to the two-shot threshold, every size clipped to the workspace cap
# SGLANG_CUSTOM_ALL_REDUCE_V2_MAX_SIZE_KB = 16 MiB; larger messages go to NCCL. Sizes are multiples of 16 bytes, so
# "at most X" is "below X + 16". SM90: 2 ranks one-shot to 128 MB (clipped: 16 MiB), 4 ranks to 384 kB, 8 ranks to
# 128 kB; SM100: 2 ranks to 32 MB (clipped), 4 ranks to 1.125 MB, 8 ranks to 0.5 MB.
CUSTOM_ALL_REDUCE = {
    "hopper": {2: (16 * _MIB + 16, 16 * _MIB + 16), 4: (384 * _KIB + 16, 16 * _MIB + 16),
               8: (128 * _KIB + 16, 16 * _MIB + 16)},
    "blackwell": {2: (16 * _MIB + 16, 16 * _MIB + 16), 4: (1152 * _KIB + 16, 16 * _MIB + 16),
                  8: (512 * _KIB + 16, 16 * _MIB + 16)},
}

# The grouped MoE kernels SGLang runs per expert format on Blackwell, as NVIDIA's MoE tables name them
# (aiconfigurator-core 0.12.0 systems/data/b200_sxm/moe/sglang/0.5.14/moe_perf.parquet, kernel_source), with the
# fastest per shape: the kernels behind model.roofline.efficiency_sets.MOE_ENGINE_DEFAULTS["sglang"]
MOE_KERNELS = {
    "bf16": "FlashInfer TRT-LLM MoE (--moe-runner-backend flashinfer_trtllm) or fused_moe_triton",
    "fp8": "FlashInfer TRT-LLM block-FP8 MoE or fused_moe_triton (per-token-group FP8 quantization of its own)",
    "nvfp4": "FlashInfer TRT-LLM NVFP4 MoE",
    "int4": "FlashInfer TRT-LLM MoE, W4A16",
    "mxfp4": "FlashInfer TRT-LLM MXFP4 MoE",
}


# ---------------------------------------------------------------------------------------------------------
NAME = "SGLang"

# ---------------------------------------------------------------------------------------------------------
# layout rules
#
# SGLang's --tp is every GPU of the model (our tp x attention_dp); --dp with --enable-dp-attention splits them
# into attention data-parallel ranks of tp/dp GPUs each; --ep-size splits the experts and the rest (tp/ep) splits
# each expert. DeepEP (--moe-a2a-backend deepep) forces ep-size = tp. Sources: python/sglang/srt/server_args.py
# (tp_size % dp_size; ep_size adjusted to tp_size under DeepEP) and docs/advanced_features/server_arguments.md.
LAYOUT_SOURCE = "python/sglang/srt/server_args.py, docs/advanced_features/server_arguments.md"
RULE_DP = "--tp must be divisible by --dp (each DP-attention rank holds tp/dp GPUs)"
RULE_EP = "--ep-size must divide --tp (experts are split ep ways, each expert tp/ep ways)"
RULE_DEEPEP = "with --moe-a2a-backend deepep the expert-parallel size equals --tp (no MoE-TP)"
EP_COMM = ("auto", "allgather", "normal", "low_latency")


def check_layout(*, tp: int, pp: int = 1, attention_dp: int = 1, moe_tp: int = 1, moe_ep: int = 1,
                 is_moe: bool = True, ep_comm: str = "auto") -> None:
    world = tp * attention_dp
    if is_moe and (moe_tp * moe_ep != world or world % moe_ep):
        raise RidgeplanError("moe_ep", f"SGLang: '{RULE_EP}' (--tp {world}, --ep-size {moe_ep}, MoE-TP {moe_tp}; "
                             f"{LAYOUT_SOURCE})", [d for d in range(1, world + 1) if world % d == 0])
    if ep_comm not in EP_COMM:
        raise RidgeplanError("ep_comm", f"SGLang has no {ep_comm!r} MoE communication", EP_COMM)
    if ep_comm in ("normal", "low_latency") and is_moe and moe_tp != 1:
        raise RidgeplanError("ep_comm", f"SGLang: '{RULE_DEEPEP}' (MoE-TP {moe_tp}; {LAYOUT_SOURCE})",
                             ["allgather", f"moe_tp=1 moe_ep={world}"])


LAUNCH = LaunchTable(
    engine="sglang", version="0.4.10", source="https://docs.sglang.ai/backend/server_arguments.html",
    entry=("python", "-m", "sglang.launch_server"), model_flag="--model-path", rocm=True,
    flags=(
        Flag("--model-path", "str"), Flag("--tp", "int"), Flag("--dp", "int"), Flag("--pp-size", "int"),
        Flag("--ep-size", "int"), Flag("--enable-dp-attention", "switch"),
        Flag("--quantization", "str", ("fp8", "awq", "awq_marlin", "gptq", "gptq_marlin", "compressed-tensors",
                                       "modelopt", "modelopt_fp4", "w8a8_fp8", "w8a8_int8", "mxfp4")),
        Flag("--kv-cache-dtype", "str", ("auto", "fp8_e4m3", "fp8_e5m2")),
        Flag("--max-running-requests", "int"), Flag("--chunked-prefill-size", "int"),
        Flag("--mem-fraction-static", "float"),
        Flag("--disaggregation-mode", "str", ("null", "prefill", "decode")),
        Flag("--disaggregation-transfer-backend", "str", ("mooncake", "nixl")),
        Flag("--host", "str"), Flag("--port", "int"),
    ),
    notes=("fp8 weights: SGLang quantizes a bf16 checkpoint at load time with --quantization fp8",
           "int4: needs a pre-quantized AWQ/GPTQ checkpoint"),
)

QUANTIZATION = {"fp8": ("fp8", False), "int4": ("awq_marlin", True), "nvfp4": ("modelopt_fp4", True),
                "mxfp4": ("mxfp4", True)}
KV_DTYPE = {"bf16": "auto", "fp16": "auto", "fp8": "fp8_e4m3"}
ROUTER = ("python -m sglang_router.launch_router --pd-disaggregation {prefill_urls} {decode_urls} "
          "--host 0.0.0.0 --port 8000")


def launch_command(s: LaunchSpec) -> str:
    # --tp is the instance's GPU count; with DP attention the attention runs as --dp replicas inside it
    v = ["python -m sglang.launch_server", f"--model-path {s.model}", f"--tp {s.tp if s.ep == 1 else s.gpus // s.pp}"]
    if s.pp > 1:
        v.append(f"--pp-size {s.pp}")
    if s.ep > 1:
        v += [f"--dp {s.dp}", "--enable-dp-attention", f"--ep-size {s.ep}"]
    if s.weights in QUANTIZATION:
        v.append(f"--quantization {QUANTIZATION[s.weights][0]}")
    if KV_DTYPE.get(s.kv, "auto") != "auto":
        v.append(f"--kv-cache-dtype {KV_DTYPE[s.kv]}")
    v += [f"--max-running-requests {s.max_seqs}", f"--chunked-prefill-size {s.batched_tokens}",
          "--mem-fraction-static 0.88"]
    if s.role != "aggregated":
        v += [f"--disaggregation-mode {s.role}", "--disaggregation-transfer-backend nixl"]
    return " ".join(v)


def check_launch(flags: dict, spec: LaunchSpec | None = None) -> list[str]:
    errors = []
    tp, dp, ep, pp = (int(flags.get(k, 1)) for k in ("--tp", "--dp", "--ep-size", "--pp-size"))
    if flags.get("--enable-dp-attention") and tp % dp != 0:
        errors.append(f"tp_size % dp_size == 0 fails: --tp {tp} --dp {dp}")
    if dp > 1 and not flags.get("--enable-dp-attention"):
        errors.append("--dp > 1 inside one server needs --enable-dp-attention here")
    if ep > 1 and tp % ep != 0:
        errors.append(f"--ep-size {ep} must divide --tp {tp}")
    if spec is not None:
        want = QUANTIZATION.get(spec.weights)
        if want and flags.get("--quantization") != want[0]:
            errors.append(f"{spec.weights} weights need --quantization {want[0]}")
        if want and want[1] and spec.checkpoint_format != spec.weights and not spec.model.startswith("$"):
            errors.append(f"--quantization {want[0]} needs a {spec.weights} checkpoint, not {spec.model}")
        if tp * pp != spec.gpus:
            errors.append("--tp x --pp-size is not the instance's GPU count")
    return errors


def parse_command(command: str) -> dict:
    return parse(LAUNCH, command)
