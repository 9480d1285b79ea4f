"""One module per serving engine (vLLM, SGLang, TensorRT-LLM): the single source of truth for what each engine
does (scheduling defaults, the parallel layouts it accepts) and how it is launched (its launch-flag table).
`model.engines.launch` holds what the launch sections share (a flag table's types, a command parser built from a
table).

Layering: engines sit above roofline and below placement; they import only errors, architecture and hardware,
and their layout rules take plain integers (the degrees of model.placement.layout.Layout).
Each default names its source (engine version and flag).
"""

from __future__ import annotations

from importlib import import_module

from model.engines.sglang import SGLANG, SGLangDefaults
from model.engines.trtllm import TRTLLM, TRTLLMDefaults
from model.engines.vllm import VLLM, VLLMDefaults
from model.errors import RidgeplanError

ENGINES = ("vllm", "sglang", "trtllm")

EngineDefaults = VLLMDefaults | SGLangDefaults | TRTLLMDefaults

ENGINE_DEFAULTS: dict[str, EngineDefaults] = {"vllm": VLLM, "sglang": SGLANG, "trtllm": TRTLLM}


def get_engine(name: str) -> EngineDefaults:
    """The engine's scheduling defaults; an unknown name is refused with the allowed list."""
    try:
        return ENGINE_DEFAULTS[str(name).lower()]
    except KeyError:
        raise RidgeplanError("engine", f"unknown engine {name!r}", sorted(ENGINE_DEFAULTS)) from None




def step_quant_flags(engine: str | None) -> dict[str, float]:
    """Efficiency.step_quant_* for an engine: 1 for the activation dtypes it quantizes in a kernel of their own
    before each dense GEMM (its `unfused_activation_quant`), 0 otherwise; step_expert_quant_*: the same for the
    experts' grouped GEMMs (its `unfused_expert_quant`); no engine: all 0 (fused)."""
    unfused = get_engine(engine).unfused_activation_quant if engine else ()
    experts = get_engine(engine).unfused_expert_quant if engine else ()
    classes = (("8", "fp8"), ("4", "fp4"))
    return {**{f"step_quant_{cls}": float(dtype in unfused) for cls, dtype in classes},
            **{f"step_expert_quant_{cls}": float(dtype in experts) for cls, dtype in classes}}


def custom_all_reduce_limits(engine: str | None, arch: str) -> dict[str, float]:
    """Efficiency.ar_one_shot_below_* / ar_custom_below_* of an engine on a device class: its custom all-reduce's
    size rule (the engine module's CUSTOM_ALL_REDUCE, from its source); no engine or class: all 0 (no rule)."""
    rule = getattr(engine_module(engine), "CUSTOM_ALL_REDUCE", {}).get(arch, {}) if engine else {}
    return {**{f"ar_one_shot_below_{r}": float(rule[r][0]) if r in rule else 0.0 for r in (2, 4, 8)},
            **{f"ar_custom_below_{r}": float(rule[r][1]) if r in rule else 0.0 for r in (2, 4, 8)}}


def engine_module(engine: str):
    """The module of one engine (model.engines.vllm, .sglang, .trtllm)."""
    if engine not in ENGINES:
        raise RidgeplanError("engine", f"unknown engine {engine!r}", ENGINES)
    return import_module(f"model.engines.{engine}")


# ---------------------------------------------------------------------------------------------------------
# layout rules

def check_layout(engine: str, *, tp: int, pp: int = 1, attention_dp: int = 1, moe_tp: int = 1, moe_ep: int = 1,
                 is_moe: bool = True, ep_comm: str = "auto") -> None:
    """Raise a RidgeplanError quoting `engine`'s rule when it rejects the layout (None when it accepts it)."""
    engine_module(engine).check_layout(tp=tp, pp=pp, attention_dp=attention_dp, moe_tp=moe_tp, moe_ep=moe_ep,
                                       is_moe=is_moe, ep_comm=ep_comm)


def accepting_engines(**layout) -> tuple[str, ...]:
    """The engines that accept a layout (same keywords as `check_layout`)."""
    out = []
    for e in ENGINES:
        try:
            check_layout(e, **layout)
        except RidgeplanError:
            continue
        out.append(e)
    return tuple(out)
