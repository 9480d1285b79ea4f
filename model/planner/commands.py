"""Engine launch commands for a planned instance (vLLM, SGLang; TensorRT-LLM where the layout maps)."""

from __future__ import annotations

from model.architecture.catalogue import catalogue_entry

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
    v = [f"vllm serve {repo}", f"--tensor-parallel-size {lay.tp}"]
    if lay.pp > 1:
        v.append(f"--pipeline-parallel-size {lay.pp}")
    if lay.ep > 1:
        v += [f"--data-parallel-size {lay.dp}", "--enable-expert-parallel"]
    if p.weights in _VLLM_QUANT and p.weights != "bf16":
        v.append(f"--quantization {_VLLM_QUANT[p.weights]}")
    if p.kv in _KV and _KV[p.kv] != "auto":
        v.append(f"--kv-cache-dtype {_KV[p.kv]}")
    v += [f"--max-num-seqs {seqs}", "--max-num-batched-tokens 8192", "--gpu-memory-utilization 0.90"]
    if candidate.role != "aggregated":
        role = "kv_producer" if candidate.role == "prefill" else "kv_consumer"
        v.append(f"--kv-transfer-config '{{\"kv_connector\":\"NixlConnector\",\"kv_role\":\"{role}\"}}'")
    out["vllm"] = " ".join(v)
    s = [f"python -m sglang.launch_server --model-path {repo}", f"--tp {lay.tp}"]
    if lay.pp > 1:
        s.append(f"--pp-size {lay.pp}")
    if lay.ep > 1:
        s += [f"--dp {lay.dp}", "--enable-dp-attention", f"--ep-size {lay.ep}"]
    if p.weights == "fp8":
        s.append("--quantization fp8")
    if p.kv == "fp8":
        s.append("--kv-cache-dtype fp8_e4m3")
    s += [f"--max-running-requests {seqs}", "--chunked-prefill-size 8192", "--mem-fraction-static 0.88"]
    if candidate.role != "aggregated":
        s.append(f"--disaggregation-mode {candidate.role}")
    out["sglang"] = " ".join(s)
    if candidate.role == "aggregated":
        t = [f"trtllm-serve {repo}", f"--tp_size {lay.tp}", f"--pp_size {lay.pp}"]
        if lay.ep > 1:
            t.append(f"--ep_size {lay.ep}")
        t += [f"--max_batch_size {seqs}", "--max_num_tokens 8192", "--kv_cache_free_gpu_memory_fraction 0.90"]
        out["trtllm"] = " ".join(t)
    return out
