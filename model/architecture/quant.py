"""The weight formats a published checkpoint stores, from its `quantization_config` or an `hf_quant_config.json`
sidecar (NVIDIA ModelOpt), normalised to ridgeplan's format names (model.precision).

The result keeps the original keys and adds `weights` (dense linear layers) and `experts` (routed experts) where
the checkpoint says; a key left out means "the checkpoint's 16-bit dtype".
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from model.architecture.fields import Cfg
from model.precision import QUANT_MODULES

_ALGOS = {"nvfp4": "nvfp4", "w4a16_nvfp4": "nvfp4", "fp8": "fp8", "mxfp4": "mxfp4", "mxfp8": "fp8",
          "w4a16_awq": "int4", "w4a8_awq": "int4", "int8_sq": "int8"}


def checkpoint_quantization(c: Cfg, sidecar: Mapping[str, Any] | None) -> tuple[dict[str, Any], tuple[str, ...]]:
    """(normalised quantization dict, assumption notes)."""
    q = dict(c.mapping("quantization_config"))
    if sidecar is not None:
        if not isinstance(sidecar, Mapping) or not isinstance(sidecar.get("quantization"), Mapping):
            raise c.err("hf_quant_config", "must be a JSON object with a 'quantization' object")
        q = {**q, **sidecar["quantization"], "quant_method": "modelopt"}
    if not q:
        return {}, ()
    method = str(q.get("quant_method", "")).lower()
    algo = str(q.get("quant_algo") or "").lower()
    notes: list[str] = []
    excluded = [str(e) for e in q.get("exclude_modules") or q.get("ignore") or [] if isinstance(e, str)]
    attention_excluded = any("attn" in e for e in excluded)
    fmt = None
    if algo == "mixed_precision":
        layers = q.get("quantized_layers")
        algos = [str(v.get("quant_algo", "")).lower() for v in layers.values()] if isinstance(layers, Mapping) else []
        four = [a for a in algos if "fp4" in a]
        fmt = "nvfp4" if four else ("fp8" if algos else None)
        if four and len(four) < len(algos):
            notes.append(f"mixed-precision checkpoint: {len(four)} of {len(algos)} quantized modules NVFP4 "
                         "(experts), the others 8-bit; dense weights taken as FP8")
            q["weights"] = "fp8"
    elif algo in _ALGOS:
        fmt = _ALGOS[algo]
    elif method in ("fp8", "mxfp4"):
        fmt = method
    elif method == "compressed-tensors":
        fmt = _compressed_tensors(q)
    if fmt is None:
        return q, (f"checkpoint quantization {method or algo!r} not recognised; weights taken as 16-bit",)
    groups = excluded_modules(excluded)
    if fmt == "mxfp4" and method == "mxfp4":  # gpt-oss: MXFP4 experts, everything else bf16
        q["experts"] = "mxfp4"
    elif fmt in ("nvfp4", "int4", "mxfp4") and groups:
        q["experts"] = fmt
        q.setdefault("weights", fmt)
        q["unquantized"] = groups
        notes.append(f"{fmt.upper()} checkpoint: routed experts {fmt}; {', '.join(groups)} excluded from "
                     "quantization (kept at the checkpoint's 16-bit dtype); the other dense layers " + fmt)
    elif fmt in ("nvfp4", "int4", "mxfp4") and attention_excluded:
        q["experts"] = fmt
        q.setdefault("weights", None)
        notes.append(f"{fmt.upper()} checkpoint: routed experts {fmt}; attention (excluded from quantization) "
                     "and the other dense layers taken at the checkpoint's 16-bit dtype")
    else:
        q["experts"] = fmt
        q.setdefault("weights", fmt)
    if str(c.data.get("expert_dtype") or "").lower() == "fp4" and q.get("experts") not in ("nvfp4", "mxfp4"):
        # DeepSeek-V4 checkpoints: FP4 experts with ue8m0 (MX) scales; a ModelOpt sidecar's NVFP4 takes precedence
        q["experts"] = "mxfp4"
        notes.append("expert_dtype fp4 read as MXFP4 experts (e2m1 with ue8m0 block scales); other weights as "
                     "quantization_config says")
    if q.get("weights") is None:
        q.pop("weights", None)
    if str(q.get("kv_cache_quant_algo") or "").upper() == "FP8":
        notes.append("the checkpoint ships FP8 KV-cache scales (choose kv='fp8' to use them)")
    return q, tuple(notes)


def excluded_modules(excluded: list[str]) -> tuple[str, ...]:
    """The modules (model.precision.QUANT_MODULES) an exclude / ignore list keeps out of quantization. The lists
    name modules per layer (`model.layers.7.self_attn*`), by regular expression (`re:.*shared_experts.*`) or by
    glob; a module excluded in any layer is taken as excluded in every layer (the checkpoints exclude the same
    modules in each layer of a kind: Qwen3.5 lists self_attn for its full-attention layers and linear_attn for the
    others). Whole-layer entries (`model.layers.0*`, MTP layers) and routers (`mlp.gate`) are not module kinds
    here; routers are never quantized by the engines (model.operators.graph)."""
    found: set[str] = set()
    for entry in excluded:
        e = entry.lower().replace("\\", "")
        whole = re.search(r"(self_attn|linear_attn)(\*|\.\*|$)", e)
        if whole:
            found |= {"attention", "attention_out"}
        elif re.search(r"self_attn\.(o_proj)", e):
            found.add("attention_out")
        elif re.search(r"self_attn\.(q_|kv_|k_|v_|qkv|indexer|wq|wk|weights_proj)", e):
            found.add("attention")
        if "shared_expert" in e:
            found.add("shared_experts")
        elif re.search(r"mlp\.\(?(gate_up|gate|up|down)[|_)]", e) and "expert" not in e:
            found.add("dense_mlp")
    return tuple(m for m in QUANT_MODULES if m in found)


def _compressed_tensors(q: Mapping[str, Any]) -> str | None:
    groups = q.get("config_groups")
    if not isinstance(groups, Mapping):
        return None
    for group in groups.values():
        w = group.get("weights") if isinstance(group, Mapping) else None
        if isinstance(w, Mapping):
            bits, kind = w.get("num_bits"), str(w.get("type", "")).lower()
            if bits == 4:
                return "int4" if kind == "int" else ("nvfp4" if w.get("group_size") == 16 else "mxfp4")
            if bits == 8:
                return "fp8" if kind == "float" else "int8"
    return None
