"""Non-causal transformer stacks as Architectures: diffusion transformers (DiT), ViT image encoders and text
encoders, evaluated by the ordinary operator graph and roofline.

A bidirectional stack of L identical blocks (self-attention over all N tokens, then an MLP) is described by an
HF-style dict and parsed with `model.architecture.parse_config` (the GPT-J family gives a plain, non-gated MLP
of any width; the Llama family a gated one), then adjusted: sequential blocks with two norms, and an optional
attention window. Evaluate it with `Deployment.step(batch, N, 0, n_logit=N)` under the "square" attention
convention: every query then sees all N keys (or `window` of them), and the output projection ("LM head", of
width `out_dim`) runs over every token, as a DiT's final patch projection does.

Attention variants map onto the window (keys each query attends to), which is exact for FLOPs:
- full attention: window None (N keys);
- sparse attention keeping a share rho of the keys: window = ceil(rho N);
- local (neighbourhood) attention over K keys: window = K;
- linear attention with a d_h x d_h state per head: an update k^T v and a read-out q S cost 4 d_h^2 FLOPs per
  token and head, the same as softmax attention over d_h keys (4 d_h per key), so window = d_h.
"""

from __future__ import annotations

import math
from dataclasses import replace

from model.architecture.config import Architecture, parse_config
from model.errors import RidgeplanError

ATTENTION_KINDS = ("full", "sparse", "local", "linear")


def keys_per_query(kind: str, tokens: int, head_dim: int, *, keep: float | None = None,
                   window: int | None = None) -> int | None:
    """Keys one query attends to under an attention variant (None: all `tokens`)."""
    if kind not in ATTENTION_KINDS:
        raise RidgeplanError("attention", f"unknown attention variant {kind!r}", ATTENTION_KINDS)
    if kind == "full":
        return None
    if kind == "sparse":
        if keep is None or not 0 < keep <= 1:
            raise RidgeplanError("keep", f"sparse attention needs a kept share in (0, 1], got {keep!r}")
        return max(1, math.ceil(keep * tokens))
    if kind == "local":
        if window is None or window < 1:
            raise RidgeplanError("window", f"local attention needs a window of >= 1 keys, got {window!r}")
        return int(window)
    return int(head_dim)


def bidirectional_transformer(name: str, *, hidden: int, layers: int, heads: int, mlp_width: int, out_dim: int,
                              gated: bool = False, window: int | None = None, head_dim: int | None = None,
                              dtype: str = "bfloat16", notes: tuple[str, ...] = ()) -> Architecture:
    """An Architecture of `layers` non-causal blocks (MHA + MLP of width `mlp_width`) with an output projection
    to `out_dim` values per token. `window`: keys per query (see the module doc for sparse/local/linear)."""
    for field_name, value in (("hidden", hidden), ("layers", layers), ("heads", heads), ("mlp_width", mlp_width),
                              ("out_dim", out_dim)):
        if not isinstance(value, int) or value <= 0:
            raise RidgeplanError(field_name, f"must be a whole number > 0, got {value!r}")
    if window is not None and window < 1:
        raise RidgeplanError("window", f"must be >= 1 keys, got {window}")
    hd = head_dim or hidden // heads
    if gated:
        cfg = {"model_type": "llama", "hidden_size": hidden, "num_hidden_layers": layers,
               "num_attention_heads": heads, "num_key_value_heads": heads, "head_dim": hd,
               "intermediate_size": mlp_width, "vocab_size": out_dim, "torch_dtype": dtype}
    else:
        cfg = {"model_type": "gptj", "n_embd": hidden, "n_layer": layers, "n_head": heads, "n_inner": mlp_width,
               "vocab_size": out_dim, "rotary_dim": hd, "torch_dtype": dtype, "activation_function": "gelu_new"}
        if head_dim is not None and head_dim != hidden // heads:
            raise RidgeplanError("head_dim", "a non-gated stack uses head_dim = hidden // heads")
    arch = parse_config(cfg, name)
    groups = tuple(replace(g, attention=replace(g.attention, window=window), parallel_block=False,
                           norms_per_layer=2) for g in arch.groups)
    mlp = "gated" if gated else "plain (GELU)"
    assumptions = (f"non-causal stack: {layers} blocks of {heads}-head self-attention over every token "
                   f"({'all keys' if window is None else f'{window} keys per query'}) and a {mlp} MLP of width "
                   f"{mlp_width}; output projection to {out_dim} values per token", *notes)
    return replace(arch, groups=groups, assumptions=assumptions, tie_word_embeddings=False)
