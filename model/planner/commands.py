"""Engine launch commands for a planned instance (vLLM, SGLang; TensorRT-LLM where the layout maps)."""

from __future__ import annotations

from model.architecture.catalogue import catalogue_entry
from model.engines import accepting_engines, launch_flags

_VLLM_QUANT = {"fp8": "fp8", "int4": "awq_marlin", "int8": "compressed-tensors", "mxfp4": "mxfp4", "nvfp4": "modelopt_fp4"}
_KV = {"fp8": "fp8", "bf16": "auto", "fp16": "auto"}


def launch_commands(candidate, max_batch: int) -> dict[str, str]:
    """Commands that start one instance of `candidate` with the planned layout, precisions and batch."""
    d = candidate.deployment
    lay, p = d.layout, d.precision
    entry = catalogue_entry(d.arch.name)
    repo = entry.hf_repo if entry and entry.hf_repo else d.arch.name
    seqs = max(int(max_batch), 1)
    out = {}
    shape = dict(tp=lay.tp, pp=lay.pp, attention_dp=lay.attention_dp, moe_tp=lay.moe_tp, moe_ep=lay.ep,
                 is_moe=d.arch.is_moe)
    engines = accepting_engines(**shape)  # each engine's own layout rule (model.engines)
    v = [f"vllm serve {repo}", *launch_flags("vllm", **shape)] if "vllm" in engines else []
    if v and p.weights in _VLLM_QUANT and p.weights != "bf16":
        v.append(f"--quantization {_VLLM_QUANT[p.weights]}")
    if v and p.kv in _KV and _KV[p.kv] != "auto":
        v.append(f"--kv-cache-dtype {_KV[p.kv]}")
    if v:
        v += [f"--max-num-seqs {seqs}", "--max-num-batched-tokens 8192", "--gpu-memory-utilization 0.90"]
    if v and candidate.role != "aggregated":
        role = "kv_producer" if candidate.role == "prefill" else "kv_consumer"
        v.append(f"--kv-transfer-config '{{\"kv_connector\":\"NixlConnector\",\"kv_role\":\"{role}\"}}'")
    if v:
        out["vllm"] = " ".join(v)
    if "sglang" in engines:
        s = [f"python -m sglang.launch_server --model-path {repo}", *launch_flags("sglang", **shape)]
        if p.weights == "fp8":
            s.append("--quantization fp8")
        if p.kv == "fp8":
            s.append("--kv-cache-dtype fp8_e4m3")
        s += [f"--max-running-requests {seqs}", "--chunked-prefill-size 8192", "--mem-fraction-static 0.88"]
        if candidate.role != "aggregated":
            s.append(f"--disaggregation-mode {candidate.role}")
        out["sglang"] = " ".join(s)
    if candidate.role == "aggregated" and "trtllm" in engines:
        t = [f"trtllm-serve {repo}", *launch_flags("trtllm", **shape)]
        t += [f"--max_batch_size {seqs}", "--max_num_tokens 8192", "--kv_cache_free_gpu_memory_fraction 0.90"]
        out["trtllm"] = " ".join(t)
    return out
