"""One whole decode step of a Llama-shaped stack in PyTorch, for the collector's `step` rows.

The stack follows the operator graph ridgeplan predicts for the same config: embedding; per layer RMSNorm,
fused QKV projection, rotary embedding, KV-cache write, decode attention over the cached context plus the new
token, output projection (residual added in the GEMM epilogue), RMSNorm, fused gate+up projection, SiLU-and-
multiply, down projection (residual in the epilogue); final RMSNorm, LM head and greedy sampling. Weights are
random (timing does not depend on values). On a GPU the step is captured once in a CUDA graph and replayed,
as serving engines run decode. Rotary (4 kernels), SiLU-and-multiply (2) and the KV write (2) stay separate
eager kernels where engines fuse them; the fitted `step_overhead_s` absorbs that difference.
"""

from __future__ import annotations

from collections.abc import Callable

from model.errors import RidgeplanError


def llama_shape(config: dict) -> dict:
    """The sizes of a Llama-shaped (dense, GQA, gated MLP) Hugging Face config."""
    if config.get("model_type") != "llama":
        raise RidgeplanError("model", f"the step stack is Llama-shaped; got model_type {config.get('model_type')!r}",
                             ["llama"])
    heads = int(config["num_attention_heads"])
    hidden = int(config["hidden_size"])
    return {"hidden": hidden, "heads": heads, "kv_heads": int(config.get("num_key_value_heads") or heads),
            "head_dim": int(config.get("head_dim") or hidden // heads), "inter": int(config["intermediate_size"]),
            "layers": int(config["num_hidden_layers"]), "vocab": int(config["vocab_size"]),
            "tied": bool(config.get("tie_word_embeddings", False)), "eps": float(config.get("rms_norm_eps", 1e-5)),
            "theta": float(config.get("rope_theta", 10000.0))}


class LlamaStep:
    """Weights, KV cache and inputs for `batch` sequences with `context` cached tokens each."""

    def __init__(self, torch, config: dict, batch: int, context: int, device: str, dtype):
        s = llama_shape(config)
        self.torch, self.s, self.batch, self.context = torch, s, batch, context
        h, hk, d, hid = s["heads"], s["kv_heads"], s["head_dim"], s["hidden"]

        def w(*shape):
            return torch.randn(*shape, device=device, dtype=dtype) * 0.02

        self.embed = w(s["vocab"], hid)
        self.lm_head = self.embed if s["tied"] else w(s["vocab"], hid)
        self.final_norm = torch.ones(hid, device=device, dtype=dtype)
        self.layers = [{"attn_norm": torch.ones(hid, device=device, dtype=dtype), "qkv": w((h + 2 * hk) * d, hid),
                        "o": w(hid, h * d), "mlp_norm": torch.ones(hid, device=device, dtype=dtype),
                        "gate_up": w(2 * s["inter"], hid), "down": w(hid, s["inter"]),
                        "k_cache": w(batch, hk, context + 1, d), "v_cache": w(batch, hk, context + 1, d)}
                       for _ in range(s["layers"])]
        self.tokens = torch.randint(0, s["vocab"], (batch,), device=device)
        inv = 1.0 / (s["theta"] ** (torch.arange(0, d, 2, device=device, dtype=torch.float32) / d))
        angle = context * inv
        self.cos = torch.cat([angle.cos(), angle.cos()]).to(dtype)
        self.sin = torch.cat([angle.sin(), angle.sin()]).to(dtype)

    def _rotary(self, x):
        half = x.shape[-1] // 2
        rotated = self.torch.cat([-x[..., half:], x[..., :half]], dim=-1)
        return self.torch.addcmul(x * self.cos, rotated, self.sin)

    def attention(self, q, layer):
        """Decode attention of q (batch, heads, head_dim) over the layer's cache -> (batch, heads * head_dim).

        The query heads sharing a KV head are packed as query rows, as decode kernels do, so K and V are read
        once per KV head and no GQA support is needed from the attention backend."""
        b, h, d = q.shape
        packed = q.reshape(b, self.s["kv_heads"], h // self.s["kv_heads"], d)
        out = self.torch.nn.functional.scaled_dot_product_attention(packed, layer["k_cache"], layer["v_cache"])
        return out.reshape(b, h * d)

    def step(self):
        torch, s, b, c = self.torch, self.s, self.batch, self.context
        F = torch.nn.functional
        h, hk, d, hid = s["heads"], s["kv_heads"], s["head_dim"], s["hidden"]
        x = F.embedding(self.tokens, self.embed)
        for layer in self.layers:
            qkv = F.linear(F.rms_norm(x, (hid,), layer["attn_norm"], s["eps"]), layer["qkv"])
            qk = self._rotary(qkv[:, : (h + hk) * d].view(b, h + hk, d))
            layer["k_cache"][:, :, c] = qk[:, h:]
            layer["v_cache"][:, :, c] = qkv[:, (h + hk) * d:].view(b, hk, d)
            x = torch.addmm(x, self.attention(qk[:, :h], layer), layer["o"].t())
            gate, up = F.linear(F.rms_norm(x, (hid,), layer["mlp_norm"], s["eps"]), layer["gate_up"]).chunk(2, dim=-1)
            x = torch.addmm(x, F.silu(gate) * up, layer["down"].t())
        logits = F.linear(F.rms_norm(x, (hid,), self.final_norm, s["eps"]), self.lm_head)
        return logits.argmax(dim=-1)


def build_step(torch, config: dict, case, platform: str) -> tuple[Callable[[], object], str]:
    """A callable running one decode step for the case's batch and context, and how it is timed."""
    dtype = getattr(torch, {"bf16": "bfloat16", "fp16": "float16", "fp32": "float32"}[case.dtype])
    stack = LlamaStep(torch, config, int(case.shape["batch"]), int(case.shape["context"]), platform, dtype)
    if platform != "cuda":
        return stack.step, "eager step, perf_counter, 32 MB written before each run"
    side = torch.cuda.Stream()
    side.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(side):  # warm up outside the capture, as torch.cuda.graphs requires
        for _ in range(2):
            stack.step()
    torch.cuda.current_stream().wait_stream(side)
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        stack.step()

    def replay():
        graph.replay()
        return stack  # the graph reads the stack's tensors: keep them alive as long as this callable

    return replay, "CUDA graph replay timed with cuda-events, L2 flushed before each run"
