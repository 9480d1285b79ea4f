"""Convenience entry points used by the CLI, the app and notebooks: strings in, validated objects out."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from model.architecture.catalogue import load_architecture
from model.architecture.config import Architecture
from model.hardware.db import get_node, load_device
from model.hardware.schema import Device
from model.precision import Precision
from model.roofline.efficiency import efficiency_for
from model.serving.deployment import Deployment
from model.serving.layout import Layout

DEFAULT_MODEL = "llama-3.1-8b"
DEFAULT_GPU = "h100-sxm"


def deployment(model: str | Path | Mapping[str, Any] | Architecture = DEFAULT_MODEL,
               gpu: str | Path | Mapping[str, Any] | Device = DEFAULT_GPU, *, weights: str | None = None,
               activations: str | None = None, kv: str | None = None, experts: str | None = None,
               tp: int = 1, pp: int = 1, ep: int = 1, dp: int = 1, node: str | None = None,
               attention_convention: str = "causal", comm_overlap: float = 0.0, moe_imbalance: float = 1.0,
               memory_utilization: float = 0.9, calibration: str | Path | bool | None = None) -> Deployment:
    """A Deployment from ids or paths. `weights=None` takes the checkpoint's own dtype (bf16/fp16; the
    published format for FP8 or MXFP4 checkpoints); `kv=None` keeps the KV cache in 16 bits."""
    arch = load_architecture(model)
    device = load_device(gpu)
    w = weights or checkpoint_weight_format(arch)
    sixteen = "bf16" if device.supports("bf16") or not device.supports("fp16") else "fp16"
    if w in ("bf16", "fp16") and not device.supports(w) and weights is None:
        w = sixteen  # the checkpoint's 16-bit dtype is not native here: engines cast (e.g. bf16 -> fp16 on V100)
    exp = experts if experts is not None else checkpoint_expert_format(arch, w)
    prec = Precision(weights=w, activations=activations, kv=kv or sixteen, experts=exp,
                     embeddings=sixteen)
    node_type = get_node(node) if node else None
    eff = efficiency_for(device, calibration)
    return Deployment(arch, device, prec, Layout(tp=tp, pp=pp, ep=ep, dp=dp), node=node_type, efficiency=eff,
                      attention_convention=attention_convention, comm_overlap=comm_overlap,
                      moe_imbalance=moe_imbalance, memory_utilization=memory_utilization)


def checkpoint_weight_format(arch: Architecture) -> str:
    """The dense weight format of the published checkpoint."""
    q = arch.quantization or {}
    method = str(q.get("quant_method", "")).lower()
    if q.get("weights") in ("fp8", "nvfp4", "mxfp4", "int4", "int8"):  # normalised by model.architecture.quant
        return str(q["weights"])
    if method == "fp8":
        return "fp8"
    dtype = str(arch.torch_dtype).lower()
    return "fp16" if "float16" in dtype and "bfloat" not in dtype else "bf16"


def checkpoint_expert_format(arch: Architecture, dense: str) -> str | None:
    """Expert weights format when the checkpoint stores experts differently (gpt-oss: MXFP4 experts)."""
    q = arch.quantization or {}
    method = str(q.get("quant_method", "")).lower()
    if method == "mxfp4" and arch.is_moe:
        return "mxfp4"
    if arch.is_moe and q.get("experts") in ("fp8", "nvfp4", "mxfp4", "int4", "int8") and q["experts"] != dense:
        return str(q["experts"])
    return None
