"""SGLang."""

from __future__ import annotations

from model.errors import RidgeplanError

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


def layout_flags(*, tp: int, pp: int = 1, attention_dp: int = 1, moe_tp: int = 1, moe_ep: int = 1,
                 is_moe: bool = True, ep_comm: str = "auto") -> list[str]:
    flags = [f"--tp {tp * attention_dp}"]
    if pp > 1:
        flags.append(f"--pp-size {pp}")
    if attention_dp > 1:
        flags += [f"--dp {attention_dp}", "--enable-dp-attention"]
    if is_moe and moe_ep > 1:
        flags.append(f"--ep-size {moe_ep}")
    if ep_comm in ("normal", "low_latency"):
        flags += ["--moe-a2a-backend deepep", f"--deepep-mode {ep_comm}"]
    return flags
