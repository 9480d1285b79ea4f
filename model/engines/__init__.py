"""Serving engines: one module per engine, the single source of truth about it (scheduling defaults here; the
MoE layout rules and launch flags join the same modules). Each default names its source: engine version and
flag. Engines sit below placement and serving: they import only errors, architecture and hardware."""

from __future__ import annotations

from model.engines.sglang import SGLANG, SGLangDefaults
from model.engines.trtllm import TRTLLM, TRTLLMDefaults
from model.engines.vllm import VLLM, VLLMDefaults
from model.errors import RidgeplanError

EngineDefaults = VLLMDefaults | SGLangDefaults | TRTLLMDefaults

ENGINE_DEFAULTS: dict[str, EngineDefaults] = {"vllm": VLLM, "sglang": SGLANG, "trtllm": TRTLLM}


def get_engine(name: str) -> EngineDefaults:
    """The engine's scheduling defaults; an unknown name is refused with the allowed list."""
    try:
        return ENGINE_DEFAULTS[str(name).lower()]
    except KeyError:
        raise RidgeplanError("engine", f"unknown engine {name!r}", sorted(ENGINE_DEFAULTS)) from None


__all__ = ["ENGINE_DEFAULTS", "SGLANG", "TRTLLM", "VLLM", "EngineDefaults", "get_engine"]
