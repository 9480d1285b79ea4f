"""Hugging Face `config.json` → an `Architecture`: layer groups of attention and MLP blocks.

Fields are read as given (`head_dim`, `num_key_value_heads`, `intermediate_size`, MoE and MLA ranks, sliding
windows, layer types). Where a config omits a field, the default is the one the model's own Hugging Face
config class uses (e.g. `head_dim = hidden_size // num_attention_heads` for Llama, `ffn_hidden_size =
4 * hidden_size` for Falcon), and every such default is recorded in `Architecture.assumptions`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any, Literal

from model.errors import RidgeplanError

AttentionKind = Literal["softmax", "mla", "linear"]


@dataclass(frozen=True)
class Attention:
    """One attention block's shape. `window` None means full attention."""

    kind: AttentionKind
    num_heads: int
    num_kv_heads: int
    head_dim: int  # query/key head dim (softmax); for MLA the no-RoPE + RoPE query head dim
    v_head_dim: int
    window: int | None = None
    qkv_bias: bool = False
    o_bias: bool = False
    output_gate: bool = False  # q_proj also emits a sigmoid gate for the attention output (Qwen3-Next)
    qk_norm: bool = False  # per-head RMSNorm on q and k (Qwen3, Gemma-3)
    sinks: bool = False  # learned per-head attention sink logits (gpt-oss)
    rotary_dim: int | None = None
    # MLA (DeepSeek-V2/V3)
    q_lora_rank: int | None = None
    kv_lora_rank: int = 0
    qk_nope_head_dim: int = 0
    qk_rope_head_dim: int = 0
    # linear attention (Gated DeltaNet); a state of key_dim x value_dim per value head
    linear_key_heads: int = 0
    linear_value_heads: int = 0
    linear_key_dim: int = 0
    linear_value_dim: int = 0
    conv_kernel: int = 0

    @property
    def kv_features_per_head(self) -> int:
        """K plus V features one KV head stores per token (head_dim + v_head_dim)."""
        return self.head_dim + self.v_head_dim

    @property
    def kv_width(self) -> int:
        """K plus V features per token of one layer over all KV heads (the uncompressed K/V projection width)."""
        return self.num_kv_heads * self.kv_features_per_head


@dataclass(frozen=True)
class Mlp:
    """Feed-forward block: dense (gated or plain) or mixture-of-experts."""

    kind: Literal["dense", "moe"]
    intermediate_size: int  # dense: FFN width; moe: unused (see expert_intermediate_size)
    gated: bool = True  # SwiGLU/GeGLU: gate + up + down (3 matrices); plain: up + down (2)
    bias: bool = False
    activation: str = "silu"
    num_experts: int = 0
    top_k: int = 0
    expert_intermediate_size: int = 0
    shared_intermediate_size: int = 0  # all shared experts together (0: none)
    shared_expert_gate: bool = False  # a d -> 1 sigmoid gate on the shared expert output (Qwen MoE)
    router_bias: bool = False
    expert_bias: bool = False


@dataclass(frozen=True)
class LayerGroup:
    """`count` identical decoder layers."""

    count: int
    attention: Attention
    mlp: Mlp
    norms_per_layer: int = 2
    parallel_block: bool = False  # attention and MLP read the same input (GPT-J, Falcon)


@dataclass(frozen=True)
class Architecture:
    name: str
    model_type: str
    hidden_size: int
    vocab_size: int
    groups: tuple[LayerGroup, ...]
    layer_order: tuple[int, ...] = ()  # group index of each layer, first to last (pipeline stages need it)
    tie_word_embeddings: bool = False
    max_position_embeddings: int | None = None
    norm: Literal["rmsnorm", "layernorm"] = "rmsnorm"
    norm_bias: bool = False
    learned_positions: int = 0  # rows of a learned absolute position embedding (OPT, GPT-2)
    lm_head_bias: bool = False
    extra_params: int = 0  # parameters outside the modelled blocks (e.g. input projections), counted once
    torch_dtype: str = "bfloat16"
    quantization: Mapping[str, Any] = field(default_factory=dict, hash=False)
    assumptions: tuple[str, ...] = ()
    raw: Mapping[str, Any] = field(default_factory=dict, repr=False, compare=False, hash=False)

    @property
    def num_layers(self) -> int:
        return sum(g.count for g in self.groups)

    @property
    def is_moe(self) -> bool:
        return any(g.mlp.kind == "moe" for g in self.groups)

    def with_name(self, name: str) -> Architecture:
        return replace(self, name=name)


# --------------------------------------------------------------------------------------------------------
# parsing helpers

class _Cfg:
    """Typed access to a config dict with errors that name the field."""

    def __init__(self, data: Mapping[str, Any], origin: str):
        self.data = data
        self.origin = origin
        self.assumptions: list[str] = []

    def has(self, *keys: str) -> bool:
        return any(self.data.get(k) is not None for k in keys)

    def int(self, *keys: str, default: int | None = None, why: str = "") -> int:
        for key in keys:
            value = self.data.get(key)
            if value is not None:
                if isinstance(value, bool) or not isinstance(value, (int, float)) or int(value) != value or value < 0:
                    raise RidgeplanError(f"{self.origin}: {key}", f"must be a non-negative whole number, got {value!r}")
                return int(value)
        if default is None:
            raise RidgeplanError(f"{self.origin}: {keys[0]}", "is missing from config.json", hint=_CONFIG_HINT)
        if why:
            self.assumptions.append(f"{keys[0]} absent: {why} = {default}")
        return default

    def bool(self, key: str, default: bool) -> bool:
        value = self.data.get(key, default)
        if value is None:
            return default
        if not isinstance(value, bool):
            raise RidgeplanError(f"{self.origin}: {key}", f"must be true or false, got {value!r}")
        return value

    def str(self, key: str, default: str) -> str:
        value = self.data.get(key, default)
        return default if value is None else str(value)


_CONFIG_HINT = "Pass a Hugging Face config.json of a decoder-only model (the file next to the weights on the hub)"

_GATED_ACTIVATIONS = {"silu", "swiglu", "gelu_pytorch_tanh", "geglu", "gelu_new_glu"}


def _head_dim(c: _Cfg, hidden: int, heads: int) -> int:
    if c.has("head_dim"):
        return c.int("head_dim")
    if hidden % heads:
        raise RidgeplanError(f"{c.origin}: head_dim", "is absent and hidden_size is not divisible by num_attention_heads")
    return c.int("head_dim", default=hidden // heads, why="the config class defines head_dim = hidden_size // num_attention_heads")


def _softmax_attention(c: _Cfg, hidden: int, *, window: int | None, bias: bool, o_bias: bool | None = None,
                       qk_norm: bool = False, output_gate: bool = False, sinks: bool = False) -> Attention:
    heads = c.int("num_attention_heads", "n_head", "num_heads")
    kv = c.int("num_key_value_heads", "num_kv_heads", "n_head_kv", default=heads,
               why="no num_key_value_heads: multi-head attention, so KV heads") if not c.data.get("multi_query") else 1
    hd = _head_dim(c, hidden, heads)
    rotary = None
    if c.has("rotary_dim"):
        rotary = c.int("rotary_dim")
    elif c.data.get("partial_rotary_factor"):
        rotary = int(hd * float(c.data["partial_rotary_factor"]))
    return Attention(
        kind="softmax", num_heads=heads, num_kv_heads=kv, head_dim=hd, v_head_dim=hd, window=window,
        qkv_bias=bias, o_bias=bias if o_bias is None else o_bias, qk_norm=qk_norm, output_gate=output_gate,
        sinks=sinks, rotary_dim=rotary,
    )


def _dense_mlp(c: _Cfg, hidden: int, *, gated: bool, bias: bool, inter_keys: tuple[str, ...] = ("intermediate_size",),
               default_inter: int | None = None, why: str = "") -> Mlp:
    inter = c.int(*inter_keys, default=default_inter, why=why)
    act = c.str("hidden_act", c.str("hidden_activation", c.str("activation_function", "silu")))
    return Mlp(kind="dense", intermediate_size=inter, gated=gated, bias=bias, activation=act)


def _window(c: _Cfg) -> int | None:
    if c.data.get("use_sliding_window") is False:
        return None
    w = c.data.get("sliding_window")
    return int(w) if w else None


# --------------------------------------------------------------------------------------------------------
# per-family parsers: each returns (one (attention, mlp) spec per layer, extra Architecture kwargs)

def _parse_llama_like(c: _Cfg, hidden: int, model_type: str) -> tuple[list[tuple[Attention, Mlp]], dict[str, Any]]:
    layers = c.int("num_hidden_layers")
    qwen2 = model_type in ("qwen2", "qwen2_moe")
    bias = c.bool("attention_bias", qwen2)
    attn = _softmax_attention(c, hidden, window=_window(c), bias=bias, o_bias=False if qwen2 else bias,
                              qk_norm=model_type in ("qwen3", "qwen3_moe"))
    mlp_bias = c.bool("mlp_bias", False)
    if model_type in ("mixtral", "qwen3_moe", "qwen2_moe") or c.has("num_local_experts", "num_experts"):
        experts = c.int("num_local_experts", "num_experts")
        inter = c.int("moe_intermediate_size", "intermediate_size")
        shared = c.int("shared_expert_intermediate_size", default=0)
        moe = Mlp(kind="moe", intermediate_size=c.int("intermediate_size", default=inter), gated=True,
                  activation=c.str("hidden_act", "silu"), num_experts=experts, top_k=c.int("num_experts_per_tok"),
                  expert_intermediate_size=inter, shared_intermediate_size=shared, shared_expert_gate=shared > 0)
        dense_only = set(c.data.get("mlp_only_layers") or [])
        step = c.int("decoder_sparse_step", default=1)
        sparse = [i not in dense_only and (i + 1) % step == 0 for i in range(layers)]
        dense = _dense_mlp(c, hidden, gated=True, bias=mlp_bias)
        return [(attn, moe if s else dense) for s in sparse], {}
    return [(attn, _dense_mlp(c, hidden, gated=True, bias=mlp_bias))] * layers, {}


def _runs(layer_specs: list[tuple[Attention, Mlp]], norms: int = 2, parallel: bool = False) -> list[LayerGroup]:
    """One LayerGroup per distinct (attention, MLP) pair, in order of first use; see `_layer_order`."""
    counts: dict[tuple[Attention, Mlp], int] = {}
    for spec in layer_specs:
        counts[spec] = counts.get(spec, 0) + 1
    return [LayerGroup(n, a, m, norms_per_layer=norms, parallel_block=parallel) for (a, m), n in counts.items()]


def _layer_order(layer_specs: list[tuple[Attention, Mlp]], groups: list[LayerGroup]) -> tuple[int, ...]:
    index = {(g.attention, g.mlp): i for i, g in enumerate(groups)}
    return tuple(index[s] for s in layer_specs)


def _parse_deepseek(c: _Cfg, hidden: int) -> tuple[list[tuple[Attention, Mlp]], dict[str, Any]]:
    layers = c.int("num_hidden_layers")
    heads = c.int("num_attention_heads")
    nope, rope, v = c.int("qk_nope_head_dim"), c.int("qk_rope_head_dim"), c.int("v_head_dim")
    q_rank = c.data.get("q_lora_rank")
    attn = Attention(
        kind="mla", num_heads=heads, num_kv_heads=heads, head_dim=nope + rope, v_head_dim=v,
        q_lora_rank=int(q_rank) if q_rank else None, kv_lora_rank=c.int("kv_lora_rank"), qk_nope_head_dim=nope,
        qk_rope_head_dim=rope, qkv_bias=c.bool("attention_bias", False), rotary_dim=rope,
    )
    experts = c.int("n_routed_experts")
    expert_inter = c.int("moe_intermediate_size")
    n_shared = c.int("n_shared_experts", default=0)
    moe = Mlp(kind="moe", intermediate_size=c.int("intermediate_size"), gated=True, num_experts=experts,
              top_k=c.int("num_experts_per_tok"), expert_intermediate_size=expert_inter,
              shared_intermediate_size=n_shared * expert_inter,
              router_bias=c.data.get("topk_method") == "noaux_tc")
    dense = _dense_mlp(c, hidden, gated=True, bias=False)
    first_dense = c.int("first_k_dense_replace", default=0)
    freq = c.int("moe_layer_freq", default=1)
    specs = [(attn, moe if (i >= first_dense and i % freq == 0) else dense) for i in range(layers)]
    mtp = c.int("num_nextn_predict_layers", default=0)
    if mtp:
        c.assumptions.append(f"{mtp} multi-token-prediction layer(s) in the checkpoint are not part of the main model and are not counted")
    return specs, {}


def _parse_gpt_oss(c: _Cfg, hidden: int) -> tuple[list[tuple[Attention, Mlp]], dict[str, Any]]:
    layers = c.int("num_hidden_layers")
    window = c.int("sliding_window")
    types = c.data.get("layer_types") or ["sliding_attention" if i % 2 == 0 else "full_attention" for i in range(layers)]
    experts = c.int("num_local_experts")
    moe = Mlp(kind="moe", intermediate_size=c.int("intermediate_size"), gated=True, activation="swiglu",
              num_experts=experts, top_k=c.int("num_experts_per_tok", "experts_per_token"),
              expert_intermediate_size=c.int("intermediate_size"), router_bias=True, expert_bias=True)
    specs = []
    for t in types:
        attn = _softmax_attention(c, hidden, window=window if t == "sliding_attention" else None,
                                  bias=c.bool("attention_bias", True), sinks=True)
        specs.append((attn, moe))
    return specs, {}


def _parse_gemma2(c: _Cfg, hidden: int, model_type: str) -> tuple[list[tuple[Attention, Mlp]], dict[str, Any]]:
    layers = c.int("num_hidden_layers")
    window = c.int("sliding_window")
    types = c.data.get("layer_types")
    if not types:
        # Gemma-2: even layers use the sliding window (HF Gemma2DecoderLayer: is_sliding = not layer_idx % 2)
        types = ["sliding_attention" if i % 2 == 0 else "full_attention" for i in range(layers)]
        c.assumptions.append("layer_types absent: Gemma-2 alternates sliding (even layers) and global attention")
    mlp = _dense_mlp(c, hidden, gated=True, bias=False)
    specs = [(_softmax_attention(c, hidden, window=window if t == "sliding_attention" else None,
                                 bias=c.bool("attention_bias", False), qk_norm=model_type == "gemma3"), mlp)
             for t in types]
    return specs, {"_norms": 4}


def _parse_falcon(c: _Cfg, hidden: int) -> tuple[list[tuple[Attention, Mlp]], dict[str, Any]]:
    layers = c.int("num_hidden_layers", "n_layer")
    heads = c.int("num_attention_heads", "n_head")
    new_arch = c.bool("new_decoder_architecture", False)
    if new_arch:
        kv = c.int("num_kv_heads", default=heads)
    else:
        kv = 1 if c.bool("multi_query", True) else heads
    hd = c.int("head_dim", default=hidden // heads, why="FalconConfig defines head_dim = hidden_size // num_attention_heads")
    bias = c.bool("bias", False)
    attn = Attention(kind="softmax", num_heads=heads, num_kv_heads=kv, head_dim=hd, v_head_dim=hd,
                     qkv_bias=bias, o_bias=bias)
    mlp = _dense_mlp(c, hidden, gated=False, bias=bias, inter_keys=("ffn_hidden_size",), default_inter=4 * hidden,
                     why="FalconConfig defaults ffn_hidden_size to 4 * hidden_size")
    mlp = replace(mlp, activation=c.str("activation", "gelu"))
    parallel = c.bool("parallel_attn", True)
    norms = 2 if (new_arch or not parallel) else 1
    return [(attn, mlp)] * layers, {"norm": "layernorm", "norm_bias": True, "_norms": norms, "_parallel": parallel}


def _parse_opt(c: _Cfg, hidden: int) -> tuple[list[tuple[Attention, Mlp]], dict[str, Any]]:
    layers = c.int("num_hidden_layers")
    bias = c.bool("enable_bias", True)
    attn = _softmax_attention(c, hidden, window=None, bias=bias)
    mlp = _dense_mlp(c, hidden, gated=False, bias=bias, inter_keys=("ffn_dim",))
    mlp = replace(mlp, activation=c.str("activation_function", "relu"))
    if c.int("word_embed_proj_dim", default=hidden) != hidden:
        raise RidgeplanError(f"{c.origin}: word_embed_proj_dim", "differs from hidden_size (OPT-350m style); not supported")
    positions = c.int("max_position_embeddings") + 2  # OPTLearnedPositionalEmbedding keeps an offset of 2
    return [(attn, mlp)] * layers, {"norm": "layernorm", "norm_bias": True, "learned_positions": positions}


def _parse_gptj(c: _Cfg, hidden: int) -> tuple[list[tuple[Attention, Mlp]], dict[str, Any]]:
    layers = c.int("n_layer")
    heads = c.int("n_head")
    hd = hidden // heads
    attn = Attention(kind="softmax", num_heads=heads, num_kv_heads=heads, head_dim=hd, v_head_dim=hd,
                     rotary_dim=c.int("rotary_dim", default=hd))
    inter = c.int("n_inner", default=4 * hidden, why="GPTJConfig defaults n_inner to 4 * n_embd")
    mlp = Mlp(kind="dense", intermediate_size=inter, gated=False, bias=True, activation=c.str("activation_function", "gelu_new"))
    c.assumptions.append("GPT-J: head_dim = n_embd // n_head as GPTJAttention defines it")
    return [(attn, mlp)] * layers, {"norm": "layernorm", "norm_bias": True, "lm_head_bias": True,
                                    "_norms": 1, "_parallel": True}


def _parse_glm(c: _Cfg, hidden: int) -> tuple[list[tuple[Attention, Mlp]], dict[str, Any]]:
    layers = c.int("num_layers", "num_hidden_layers")
    attn = _softmax_attention(c, hidden, window=None, bias=True)
    gated = c.str("hidden_act", c.str("activation", "geglu")).lower() in _GATED_ACTIVATIONS
    mlp = _dense_mlp(c, hidden, gated=gated, bias=True, inter_keys=("inner_hidden_size", "ffn_hidden_size", "intermediate_size"))
    return [(attn, mlp)] * layers, {"norm": "layernorm", "norm_bias": True}


def _parse_qwen3_next(c: _Cfg, hidden: int) -> tuple[list[tuple[Attention, Mlp]], dict[str, Any]]:
    layers = c.int("num_hidden_layers")
    types = c.data.get("layer_types")
    if not types:
        interval = c.int("full_attention_interval")
        types = ["full_attention" if (i + 1) % interval == 0 else "linear_attention" for i in range(layers)]
    full = _softmax_attention(c, hidden, window=None, bias=c.bool("attention_bias", False), qk_norm=True,
                              output_gate=True)
    linear = Attention(
        kind="linear", num_heads=c.int("linear_num_value_heads"), num_kv_heads=c.int("linear_num_key_heads"),
        head_dim=c.int("linear_key_head_dim"), v_head_dim=c.int("linear_value_head_dim"),
        linear_key_heads=c.int("linear_num_key_heads"), linear_value_heads=c.int("linear_num_value_heads"),
        linear_key_dim=c.int("linear_key_head_dim"), linear_value_dim=c.int("linear_value_head_dim"),
        conv_kernel=c.int("linear_conv_kernel_dim"),
    )
    inter = c.int("moe_intermediate_size")
    shared = c.int("shared_expert_intermediate_size", default=0)
    moe = Mlp(kind="moe", intermediate_size=c.int("intermediate_size", default=inter), gated=True,
              num_experts=c.int("num_experts"), top_k=c.int("num_experts_per_tok"), expert_intermediate_size=inter,
              shared_intermediate_size=shared, shared_expert_gate=shared > 0)
    dense_only = set(c.data.get("mlp_only_layers") or [])
    dense = _dense_mlp(c, hidden, gated=True, bias=False)
    specs = [(full if t == "full_attention" else linear, dense if i in dense_only else moe) for i, t in enumerate(types)]
    return specs, {}


_LLAMA_LIKE = {"llama", "mistral", "qwen2", "qwen3", "mixtral", "qwen2_moe", "qwen3_moe", "yi", "internlm2", "granite"}


def parse_config(data: Mapping[str, Any], name: str = "custom") -> Architecture:
    """Build an Architecture from a Hugging Face config dict (errors name the field at fault)."""
    if not isinstance(data, Mapping):
        raise RidgeplanError("config", f"must be a JSON object, got {type(data).__name__}", hint=_CONFIG_HINT)
    if "text_config" in data and "hidden_size" not in data:
        data = {**data["text_config"], "_wrapper": data.get("model_type")}
    c = _Cfg(data, name)
    model_type = c.str("model_type", "").lower()
    families = _LLAMA_LIKE | {"deepseek_v3", "deepseek_v2", "gpt_oss", "gemma2", "gemma3_text", "gemma3", "falcon",
                              "refinedweb", "refinedwebmodel", "opt", "gptj", "glm", "glm130b", "glm-130b", "qwen3_next"}
    if model_type not in families and not c.has("num_attention_heads", "intermediate_size", "num_hidden_layers"):
        raise RidgeplanError(f"{name}: model_type", f"unsupported model_type {model_type!r}", sorted(families),
                             hint=_CONFIG_HINT)
    hidden = c.int("hidden_size", "n_embd", "d_model")
    if hidden == 0:
        raise RidgeplanError(f"{name}: hidden_size", "must be > 0")
    vocab = c.int("vocab_size", "padded_vocab_size")
    extra: dict[str, Any] = {}
    if model_type in ("deepseek_v3", "deepseek_v2"):
        specs, extra = _parse_deepseek(c, hidden)
    elif model_type == "gpt_oss":
        specs, extra = _parse_gpt_oss(c, hidden)
    elif model_type in ("gemma2", "gemma3_text", "gemma3"):
        specs, extra = _parse_gemma2(c, hidden, model_type)
    elif model_type in ("falcon", "refinedweb", "refinedwebmodel"):
        specs, extra = _parse_falcon(c, hidden)
    elif model_type == "opt":
        specs, extra = _parse_opt(c, hidden)
    elif model_type == "gptj":
        specs, extra = _parse_gptj(c, hidden)
    elif model_type in ("glm", "glm130b", "glm-130b"):
        specs, extra = _parse_glm(c, hidden)
    elif model_type == "qwen3_next":
        specs, extra = _parse_qwen3_next(c, hidden)
    else:
        if model_type not in _LLAMA_LIKE:
            c.assumptions.append(f"model_type {model_type or '(none)'} read as a Llama-style decoder "
                                 "(gated MLP, RMSNorm, biases only where the config says)")
        specs, extra = _parse_llama_like(c, hidden, model_type)
    if not specs:
        raise RidgeplanError(f"{name}: num_hidden_layers", "must be > 0")
    groups = _runs(specs, norms=extra.pop("_norms", 2), parallel=extra.pop("_parallel", False))
    for g in groups:
        _check_group(g, name)
    tie_default = model_type in ("opt", "falcon", "gemma2", "gemma3_text", "gemma3", "glm")
    return Architecture(
        name=name, model_type=model_type, hidden_size=hidden, vocab_size=vocab, groups=tuple(groups),
        layer_order=_layer_order(specs, groups),
        tie_word_embeddings=c.bool("tie_word_embeddings", tie_default),
        max_position_embeddings=c.data.get("max_position_embeddings") or c.data.get("seq_length"),
        torch_dtype=c.str("torch_dtype", c.str("dtype", "bfloat16")),
        quantization=dict(c.data.get("quantization_config") or {}),
        assumptions=tuple(c.assumptions), raw=dict(data), **extra,
    )


def _check_group(g: LayerGroup, name: str) -> None:
    a = g.attention
    if a.num_heads <= 0:
        raise RidgeplanError(f"{name}: num_attention_heads", "must be > 0")
    if a.kind == "softmax":
        if a.num_kv_heads <= 0 or a.num_heads % a.num_kv_heads:
            raise RidgeplanError(f"{name}: num_key_value_heads",
                                 f"must divide num_attention_heads ({a.num_heads}), got {a.num_kv_heads}")
        if a.head_dim <= 0:
            raise RidgeplanError(f"{name}: head_dim", "must be > 0")
    m = g.mlp
    if m.kind == "moe" and not (0 < m.top_k <= m.num_experts):
        raise RidgeplanError(f"{name}: num_experts_per_tok", f"must be between 1 and the expert count ({m.num_experts}), got {m.top_k}")
    if m.kind == "dense" and m.intermediate_size <= 0:
        raise RidgeplanError(f"{name}: intermediate_size", "must be > 0")
