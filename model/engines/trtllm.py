"""TensorRT-LLM (PyTorch backend)."""

from __future__ import annotations

from model.errors import RidgeplanError

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


def layout_flags(*, tp: int, pp: int = 1, attention_dp: int = 1, moe_tp: int = 1, moe_ep: int = 1,
                 is_moe: bool = True, ep_comm: str = "auto") -> list[str]:
    flags = [f"--tp_size {tp * attention_dp}", f"--pp_size {pp}"]
    if is_moe and moe_ep > 1:
        flags.append(f"--ep_size {moe_ep}")
    if attention_dp > 1:
        flags.append("--extra_llm_api_options <(echo 'enable_attention_dp: true')")
    return flags
