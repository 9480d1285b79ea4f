"""Architecture variants that research systems apply to a published model.

Each function takes an `Architecture` and returns a new one, so every cost (FLOPs, weights, KV, step time) of the
variant comes from the same operator graph as the original:
- `with_window`: sliding-window (+ attention sinks) attention on chosen layers (LM-Infinite, LongGen, StreamingLLM);
- `hybrid_window`: keep every n-th layer full and window the rest (LongGen: 1/3 full layers);
- `linearize`: replace softmax attention by linear attention with a fixed d_k x d_v state per head, optionally
  keeping some layers full (LoLCATs, BASED/GLA/DeltaNet-style hybrids);
- `skip_layers`: drop k of L decoder layers, input-independent (Unified Layer Skipping);
- `prune_experts`: keep E' of E routed experts per MoE layer (PreMoe-style task-conditioned pruning).

Layers keep their order (`layer_order`), so pipeline stages split a variant the same way as any model.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import replace

from model.architecture.config import Architecture, Attention, LayerGroup
from model.errors import RidgeplanError


def layers(arch: Architecture) -> list[LayerGroup]:
    """One LayerGroup (count 1) per decoder layer, first to last."""
    order = arch.layer_order or tuple(i for i, g in enumerate(arch.groups) for _ in range(g.count))
    return [replace(arch.groups[i], count=1) for i in order]


def from_layers(arch: Architecture, per_layer: list[LayerGroup], name: str, note: str) -> Architecture:
    """An Architecture with `arch`'s embeddings and head and the given decoder layers (regrouped)."""
    if not per_layer:
        raise RidgeplanError("layers", f"{name} would have no decoder layers")
    keys: dict[LayerGroup, int] = {}
    counts: list[int] = []
    order = []
    for layer in per_layer:
        key = replace(layer, count=1)
        if key not in keys:
            keys[key] = len(keys)
            counts.append(0)
        counts[keys[key]] += 1
        order.append(keys[key])
    groups = tuple(replace(k, count=counts[i]) for k, i in keys.items())
    return replace(arch, name=name, groups=groups, layer_order=tuple(order),
                   assumptions=tuple(arch.assumptions) + (note,))


def _select(n_layers: int, which: Iterable[int] | Callable[[int], bool] | None) -> set[int]:
    if which is None:
        return set(range(n_layers))
    if callable(which):
        return {i for i in range(n_layers) if which(i)}
    chosen = {int(i) % n_layers if int(i) < 0 else int(i) for i in which}
    bad = [i for i in chosen if not 0 <= i < n_layers]
    if bad:
        raise RidgeplanError("layers", f"layer indices {bad} outside 0..{n_layers - 1}")
    return chosen


def with_window(arch: Architecture, window: int, *, sink: int = 0,
                only: Iterable[int] | Callable[[int], bool] | None = None) -> Architecture:
    """Sliding-window attention of `window` recent tokens plus `sink` initial tokens on the chosen softmax layers
    (all of them by default). A query then attends to min(S, sink + window) keys and the layer caches that many
    positions: the sink tokens are modelled as part of the window (same count of keys and cached positions)."""
    if window < 1 or sink < 0:
        raise RidgeplanError("window", f"window must be >= 1 and sink >= 0, got {window} and {sink}")
    per = layers(arch)
    chosen = _select(len(per), only)
    span = window + sink
    out = []
    for i, layer in enumerate(per):
        a = layer.attention
        if i in chosen and a.kind == "softmax":
            a = replace(a, window=span if a.window is None else min(a.window, span))
        elif i in chosen and a.kind not in ("softmax", "none"):  # a layer without attention has nothing to window
            raise RidgeplanError("layers", f"layer {i} of {arch.name} is {a.kind} attention; windows apply to "
                                 "softmax layers")
        out.append(replace(layer, attention=a))
    label = f"window {window}" + (f" + {sink} sink tokens" if sink else "")
    return from_layers(arch, out, f"{arch.name}+win{span}",
                       f"variant: {label} on {len(chosen)} of {len(per)} layers (sinks counted inside the window)")


def hybrid_window(arch: Architecture, window: int, *, sink: int = 0, full_every: int = 3) -> Architecture:
    """Keep every `full_every`-th layer (the last of each run) full attention and window the others (LongGen:
    full_every 3 gives 1/3 full layers)."""
    if full_every < 1:
        raise RidgeplanError("full_every", f"must be >= 1, got {full_every}")
    return with_window(arch, window, sink=sink, only=lambda i: (i + 1) % full_every != 0)


def linearize(arch: Architecture, *, key_dim: int, value_dim: int, key_heads: int | None = None,
              value_heads: int | None = None, conv_kernel: int = 4, keep_full: Iterable[int] = ()) -> Architecture:
    """Replace softmax attention by linear attention (a d_k x d_v state per value head, a short causal conv) on
    every layer except `keep_full`. Heads default to the model's query heads. The per-token cost of a linear layer
    does not grow with context; its state is a fixed number of bytes per sequence."""
    per = layers(arch)
    keep = _select(len(per), list(keep_full))
    out = []
    for i, layer in enumerate(per):
        a = layer.attention
        if i not in keep and a.kind != "none":
            if a.kind != "softmax":
                raise RidgeplanError("layers", f"layer {i} of {arch.name} is {a.kind}; only softmax layers are "
                                     "linearized")
            kh = key_heads or a.num_heads
            vh = value_heads or a.num_heads
            if vh % kh:
                raise RidgeplanError("value_heads", f"must be a multiple of key_heads ({kh}), got {vh}")
            a = Attention(kind="linear", num_heads=vh, num_kv_heads=kh, head_dim=key_dim, v_head_dim=value_dim,
                          linear_key_heads=kh, linear_value_heads=vh, linear_key_dim=key_dim,
                          linear_value_dim=value_dim, conv_kernel=conv_kernel)
        out.append(replace(layer, attention=a))
    return from_layers(arch, out, f"{arch.name}+linear{len(per) - len(keep)}",
                       f"variant: {len(per) - len(keep)} of {len(per)} layers use linear attention "
                       f"(state {key_dim} x {value_dim} per head, gated delta-rule cost)")


def skip_layers(arch: Architecture, skipped: int) -> Architecture:
    """Drop `skipped` intermediate decoder layers, evenly spaced and input-independent; the first and last layers
    are always kept. FLOPs, weight reads and KV of the decoder scale by (L - skipped) / L; embeddings and the
    head do not change."""
    per = layers(arch)
    n = len(per)
    if not 0 <= skipped <= n - 2:
        raise RidgeplanError("skipped", f"can skip 0..{n - 2} of the {n} layers (first and last are kept), "
                             f"got {skipped}")
    inner = list(range(1, n - 1))
    # evenly spaced picks over the inner layers
    drop = {inner[int((j + 0.5) * len(inner) / skipped)] for j in range(skipped)} if skipped else set()
    kept = [layer for i, layer in enumerate(per) if i not in drop]
    return from_layers(arch, kept, f"{arch.name}-skip{skipped}",
                       f"variant: {skipped} of {n} layers skipped (fixed, input-independent)")


def prune_experts(arch: Architecture, kept: int) -> Architecture:
    """Keep `kept` routed experts in every MoE layer (top-k capped at `kept`); shared experts and dense layers
    stay. Parameters become P_non_expert + (kept / E) x P_routed."""
    per = layers(arch)
    if not arch.is_moe:
        raise RidgeplanError("kept", f"{arch.name} has no experts to prune")
    out = []
    for layer in per:
        m = layer.mlp
        if m.kind == "moe":
            if not 1 <= kept <= m.num_experts:
                raise RidgeplanError("kept", f"must be between 1 and {m.num_experts}, got {kept}")
            m = replace(m, num_experts=kept, top_k=min(m.top_k, kept))
        out.append(replace(layer, mlp=m))
    return from_layers(arch, out, f"{arch.name}-experts{kept}", f"variant: {kept} routed experts kept per MoE layer")
