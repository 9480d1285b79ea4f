"""vLLM."""

from __future__ import annotations

from model.errors import RidgeplanError

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


def layout_flags(*, tp: int, pp: int = 1, attention_dp: int = 1, moe_tp: int = 1, moe_ep: int = 1,
                 is_moe: bool = True, ep_comm: str = "auto") -> list[str]:
    flags = [f"--tensor-parallel-size {tp}"]
    if pp > 1:
        flags.append(f"--pipeline-parallel-size {pp}")
    if attention_dp > 1:
        flags.append(f"--data-parallel-size {attention_dp}")
    if is_moe and moe_ep > 1:
        flags.append("--enable-expert-parallel")
    if ep_comm == "normal":
        flags.append("(env VLLM_ALL2ALL_BACKEND=deepep_high_throughput)")
    elif ep_comm == "low_latency":
        flags.append("(env VLLM_ALL2ALL_BACKEND=deepep_low_latency)")
    return flags
