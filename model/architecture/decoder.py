"""One parser for the decoder-only families whose configs follow the Hugging Face conventions.

Each layer's blocks are decided from the fields a config carries, not from its model_type:
- token mixer: `layer_types` / `hybrid_layer_pattern` / `full_attention_interval` / `attention_chunk_size` pick
  full, sliding-window, chunked or linear (Gated DeltaNet) attention per layer; `kv_lora_rank` means MLA;
  `index_topk` means DeepSeek sparse attention; `hybrid_override_pattern` / `layers_block_type` lay out Mamba-2,
  attention and MLP blocks (Nemotron-H);
- MLP: an expert count under any of its names makes the sparse layers MoE; which layers are sparse follows
  `first_k_dense_replace`, `moe_layer_freq`, `mlp_only_layers`, `decoder_sparse_step`, `interleave_moe_layer_step`;
- features ridgeplan cannot express are refused by name (see `UNSUPPORTED`).
"""

from __future__ import annotations

from typing import Any

from model.architecture.blocks import NO_ATTENTION, NO_MLP, Attention, Mlp
from model.architecture.fields import Cfg

Specs = tuple[list[tuple[Attention, Mlp]], dict[str, Any]]

# config field -> the feature it signals that the operator graph has no formula for
UNSUPPORTED = {
    "linear_attn_config": "Kimi Delta Attention (linear_attn_config: KDA linear-attention layers)",
    "attn_res_block_size": "attention residuals (attn_res_block_size)",
    "num_kv_shared_layers": "KV sharing across layers (num_kv_shared_layers)",
    "hidden_size_per_layer_input": "per-layer input embeddings (hidden_size_per_layer_input)",
}

EXPERT_KEYS = ("n_routed_experts", "num_local_experts", "num_experts")
TOPK_KEYS = ("num_experts_per_tok", "num_experts_per_token", "experts_per_token", "top_k_experts", "moe_topk")
# Llama-family MLP classes (Llama, Mistral, Mixtral, Qwen, DeepSeek, ...) always have gate, up and down projections,
# whatever hidden_act names; only the squared-ReLU MLPs (Nemotron, Nemotron-H) have up and down alone. Older
# non-gated families (GPT-J, OPT, Falcon, BLOOM, ...) are parsed in `legacy`.
_NON_GATED = {"relu2", "squared_relu"}
_QK_NORM_TYPES = ("qwen3", "qwen3_moe", "qwen3_next", "qwen3_5", "qwen3_5_moe", "qwen3_vl", "qwen3_vl_moe",
                  "gemma3", "gemma3_text", "gemma4", "gemma4_text")


def refuse_unsupported(c: Cfg) -> None:
    for key, feature in UNSUPPORTED.items():
        value = c.data.get(key)
        if value not in (None, 0, False, [], {}):
            raise c.err(key, f"the model uses {feature}, which ridgeplan cannot express yet")


# --------------------------------------------------------------------------------------------------------
# token mixers

def _layer_kinds(c: Cfg, layers: int, model_type: str) -> list[str]:
    """full | sliding | chunked | linear for each layer."""
    types = c.seq("layer_types", layers)
    if types is not None:
        names = {"full_attention": "full", "sliding_attention": "sliding", "linear_attention": "linear",
                 "chunked_attention": "chunked", "deepseek_sparse_attention": "full"}  # DSA: index_topk fields
        bad = sorted({str(t) for t in types} - set(names))
        if bad:
            raise c.err("layer_types", f"unknown layer type {bad[0]!r}", sorted(names))
        return [names[t] for t in types]
    pattern = c.int_list("hybrid_layer_pattern", layers)
    if pattern is not None:  # MiMo-V2: 1 = sliding-window layer, 0 = full attention
        return ["sliding" if p else "full" for p in pattern]
    if c.has("full_attention_interval") or c.has("linear_num_value_heads"):
        interval = c.int("full_attention_interval")
        return ["full" if (i + 1) % interval == 0 else "linear" for i in range(layers)]
    if c.has("attention_chunk_size") and model_type.startswith("llama4"):
        no_rope = c.int_list("no_rope_layers", layers)
        if no_rope is None:
            step = c.int("no_rope_layer_interval", default=4,
                         why="Llama4TextConfig: every 4th layer is a global NoPE layer")
            no_rope = [int((i + 1) % step != 0) for i in range(layers)]
        return ["chunked" if r else "full" for r in no_rope]  # no_rope_layers[i] = 1: RoPE + chunked attention
    if model_type in ("gemma2", "gemma3", "gemma3_text", "gpt_oss"):
        c.assumptions.append("layer_types absent: layers alternate sliding (even) and full (odd) attention")
        return ["sliding" if i % 2 == 0 else "full" for i in range(layers)]
    if c.data.get("use_sliding_window") is False or not c.has("sliding_window"):
        return ["full"] * layers
    first_window = c.int("max_window_layers", default=0) if c.data.get("use_sliding_window") else 0
    return ["sliding" if i >= first_window else "full" for i in range(layers)]


def _softmax(c: Cfg, hidden: int, model_type: str, kind: str) -> Attention:
    swa = kind == "sliding" and c.has("swa_num_attention_heads")
    full = kind == "full"
    heads = c.int("swa_num_attention_heads") if swa else c.int("num_attention_heads", "n_head", "num_heads")
    if swa:
        kv = c.int("swa_num_key_value_heads")
    elif full and c.has("num_global_key_value_heads"):
        kv = c.int("num_global_key_value_heads")
    elif c.data.get("multi_query"):
        kv = 1
    else:
        kv = c.int("num_key_value_heads", "num_kv_heads", "n_head_kv", default=heads,
                   why="no num_key_value_heads: multi-head attention, so KV heads")
    if swa:
        hd = c.int("swa_head_dim", "head_dim")
        vd = c.int("swa_v_head_dim", "v_head_dim", default=hd)
    elif full and c.has("global_head_dim"):
        hd = vd = c.int("global_head_dim")
    elif c.has("head_dim"):
        hd = c.int("head_dim")
        vd = c.int("v_head_dim", default=hd)
    else:
        if hidden % heads:
            raise c.err("head_dim", "is absent and hidden_size is not divisible by num_attention_heads")
        hd = vd = c.int("head_dim", default=hidden // heads,
                        why="the config class defines head_dim = hidden_size // num_attention_heads")
    rotary = c.opt_int("rotary_dim")
    if rotary is None and c.has("partial_rotary_factor"):
        rotary = int(hd * c.float("partial_rotary_factor", 1.0, low=0.0, high=1.0))
    rope = Cfg(c.mapping("rope_parameters"), f"{c.origin}: rope_parameters")
    if rotary is None and rope.has("partial_rotary_factor"):
        # transformers v5 configs keep the factor inside rope_parameters (Qwen3.5: 0.25 of head_dim 256 = 64)
        rotary = int(hd * rope.float("partial_rotary_factor", 1.0, low=0.0, high=1.0))
    window = None
    if kind == "sliding":
        window = c.int("sliding_window", "sliding_window_size")
    elif kind == "chunked":
        window = c.int("attention_chunk_size")
    qwen2 = model_type in ("qwen2", "qwen2_moe")
    bias = c.bool("attention_bias", qwen2 or model_type == "gpt_oss")
    sinks = model_type == "gpt_oss" or (kind == "sliding" and c.bool("add_swa_attention_sink_bias", False)) or (
        kind == "full" and c.bool("add_full_attention_sink_bias", False))
    gate = c.bool("attn_output_gate", c.bool("attention_output_gate", model_type == "qwen3_next"))
    # a nested text config names its own model_type (qwen3_5_moe_text inside qwen3_5_moe): same attention class
    qk_norm = c.bool("use_qk_norm", model_type.removesuffix("_text") in _QK_NORM_TYPES)
    return Attention(
        kind="softmax", num_heads=heads, num_kv_heads=kv, head_dim=hd, v_head_dim=vd, window=window,
        qkv_bias=bias, o_bias=False if qwen2 else bias, output_gate=gate,
        qk_norm=qk_norm, qk_norm_all_heads=qk_norm and _qk_norm_type(c) == "per_layer",
        sinks=sinks, rotary_dim=rotary,
    )


def _qk_norm_type(c: Cfg) -> str:
    """MiniMax-M2's qk_norm_type: per_head (one head_dim weight, Qwen3 style) or per_layer (one weight of
    heads x head_dim over the whole q, and of kv_heads x head_dim over k: modeling_minimax_m2.py)."""
    kind = c.str("qk_norm_type", "per_head")
    if kind not in ("per_head", "per_layer"):
        raise c.err("qk_norm_type", f"must be per_head or per_layer, got {kind!r}", ["per_head", "per_layer"])
    return kind


def _mla(c: Cfg) -> Attention:
    heads = c.int("num_attention_heads")
    nope, rope = c.int("qk_nope_head_dim"), c.int("qk_rope_head_dim")
    q_rank = c.opt_int("q_lora_rank")
    return Attention(
        kind="mla", num_heads=heads, num_kv_heads=heads, head_dim=nope + rope, v_head_dim=c.int("v_head_dim"),
        q_lora_rank=q_rank or None, kv_lora_rank=c.int("kv_lora_rank"), qk_nope_head_dim=nope,
        qk_rope_head_dim=rope, qkv_bias=c.bool("attention_bias", False), rotary_dim=rope,
    )


def _gated_deltanet(c: Cfg) -> Attention:
    kh, vh = c.int("linear_num_key_heads"), c.int("linear_num_value_heads")
    kd, vd = c.int("linear_key_head_dim"), c.int("linear_value_head_dim")
    if vh % kh:
        raise c.err("linear_num_value_heads", f"must be a multiple of linear_num_key_heads ({kh}), got {vh}")
    return Attention(kind="linear", num_heads=vh, num_kv_heads=kh, head_dim=kd, v_head_dim=vd,
                     linear_key_heads=kh, linear_value_heads=vh, linear_key_dim=kd, linear_value_dim=vd,
                     conv_kernel=c.int("linear_conv_kernel_dim"))


def _mamba2(c: Cfg) -> Attention:
    heads, groups = c.int("mamba_num_heads"), c.int("n_groups")
    if heads % groups:
        raise c.err("mamba_num_heads", f"must be a multiple of n_groups ({groups}), got {heads}")
    state, head_dim = c.int("ssm_state_size"), c.int("mamba_head_dim")
    return Attention(kind="linear", num_heads=heads, num_kv_heads=groups, head_dim=state, v_head_dim=head_dim,
                     linear_key_heads=groups, linear_value_heads=heads, linear_key_dim=state,
                     linear_value_dim=head_dim, conv_kernel=c.int("conv_kernel"), linear_variant="mamba2")


def _sparse(c: Cfg, attn: Attention, layer: int, model_type: str) -> Attention:
    """DeepSeek sparse attention (index_topk) or MiniMax block-sparse attention on this layer, else `attn`."""
    from dataclasses import replace

    if c.has("index_topk"):
        indexers = c.seq("indexer_types")
        if indexers is not None and layer < len(indexers) and indexers[layer] == "shared":
            # GLM-5.2+: this layer reuses the top-k selection of the last layer with its own indexer
            return replace(attn, sparse_topk=c.int("index_topk"))
        return replace(attn, sparse_topk=c.int("index_topk"), indexer_heads=c.int("index_n_heads"),
                       indexer_dim=c.int("index_head_dim"))
    sac = c.mapping("sparse_attention_config")
    if not sac or not sac.get("use_sparse_attention"):
        return attn
    s = Cfg(sac, f"{c.origin}: sparse_attention_config")
    freq = s.int_list("sparse_attention_freq")
    if freq is not None and (layer >= len(freq) or not freq[layer]):
        return attn
    blocks = s.int("sparse_topk_blocks") + s.int("sparse_local_block", default=0) + s.int("sparse_init_block", default=0)
    topk = blocks * s.int("sparse_block_size")
    note = (f"block-sparse attention read as top-{topk} keys per query ((top {s.int('sparse_topk_blocks')} + local + "
            "initial blocks) x block size) scored by an indexer over every cached key")
    if note not in c.assumptions:
        c.assumptions.append(note)
    return replace(attn, sparse_topk=topk, indexer_heads=s.int("sparse_num_index_heads"),
                   indexer_dim=s.int("sparse_index_dim"))


def _mixer(c: Cfg, hidden: int, model_type: str, kind: str, layer: int) -> Attention:
    if kind == "linear":
        return _gated_deltanet(c)
    attn = _mla(c) if c.has("kv_lora_rank") else _softmax(c, hidden, model_type, kind)
    return _sparse(c, attn, layer, model_type)


# --------------------------------------------------------------------------------------------------------
# MLPs

def _activation(c: Cfg) -> str:
    return c.str("mlp_hidden_act", c.str("hidden_act", c.str("hidden_activation", "silu")))


def dense_mlp(c: Cfg, *keys: str) -> Mlp:
    key = c.first_key(*keys, "intermediate_size")
    inter = c.int(key or "intermediate_size")
    if inter == 0:
        raise c.err(key or "intermediate_size", "must be >= 1, got 0")
    act = _activation(c)
    return Mlp(kind="dense", intermediate_size=inter, gated=act.lower() not in _NON_GATED,
               bias=c.bool("mlp_bias", False), activation=act)


def _moe(c: Cfg, model_type: str) -> Mlp:
    experts = c.int(*EXPERT_KEYS)
    top_k = c.int(*TOPK_KEYS)
    inter = c.int("moe_intermediate_size", "expert_intermediate_size", "intermediate_size")
    if c.has("shared_expert_intermediate_size", "shared_intermediate_size", "moe_shared_expert_intermediate_size"):
        shared = c.int("shared_expert_intermediate_size", "shared_intermediate_size",
                       "moe_shared_expert_intermediate_size")
    elif c.has("share_expert_dim"):
        shared = c.int("n_shared_experts", default=1) * c.int("share_expert_dim")
    elif model_type.startswith("llama4"):
        # Llama4TextMoe always adds one shared expert of intermediate_size (no config field names it)
        shared = c.int("intermediate_size")
        c.assumptions.append("Llama-4 MoE layers carry one shared expert of intermediate_size (Llama4TextMoe)")
    elif model_type.startswith("gemma4"):
        # Gemma-4 MoE layers keep their dense MLP beside the routed experts: every token runs it, like a shared expert
        shared = c.int("intermediate_size")
        c.assumptions.append("Gemma-4 MoE layers: the dense MLP beside the experts counted as a shared expert")
    else:
        shared = c.int("n_shared_experts", "num_shared_experts", default=0) * inter
    act = _activation(c)
    latent = c.int("moe_latent_size", default=0)
    return Mlp(kind="moe", intermediate_size=c.int("intermediate_size", default=inter),
               gated=act.lower() not in _NON_GATED, activation=act, num_experts=experts, top_k=top_k,
               expert_intermediate_size=inter, shared_intermediate_size=shared,
               shared_expert_gate=shared > 0 and model_type.startswith("qwen"),
               router_bias=(c.data.get("topk_method") == "noaux_tc" or c.bool("use_routing_bias", False)
                            or c.bool("use_moe_router_bias", False) or model_type == "gpt_oss"),
               expert_bias=model_type == "gpt_oss", latent_size=latent)


def _sparse_layers(c: Cfg, layers: int, model_type: str) -> list[bool]:
    """Which layers carry the MoE block."""
    if model_type.startswith("gemma4") and not c.bool("enable_moe_block", False):
        return [False] * layers
    if not c.has(*EXPERT_KEYS):
        return [False] * layers
    kinds = c.seq("mlp_layer_types", layers)
    if kinds is not None:
        if set(kinds) - {"dense", "sparse"}:
            raise c.err("mlp_layer_types", "entries must be 'dense' or 'sparse'")
        return [k == "sparse" for k in kinds]
    sparse = [True] * layers
    first = c.int("first_k_dense_replace", default=0)
    freq = c.data.get("moe_layer_freq")
    if isinstance(freq, list):
        flags = c.int_list("moe_layer_freq", layers) or []
        sparse = [bool(f) for f in flags]
    elif freq is not None:
        step = c.int("moe_layer_freq")
        sparse = [step > 0 and i % step == 0 for i in range(layers)]
    if c.has("interleave_moe_layer_step"):
        step = c.int("interleave_moe_layer_step")
        sparse = [(i + 1) % step == 0 for i in range(layers)]
    if c.has("decoder_sparse_step"):
        step = c.int("decoder_sparse_step")
        sparse = [s and (i + 1) % step == 0 for i, s in enumerate(sparse)]
    dense_only = set(c.int_list("mlp_only_layers") or [])
    return [s and i >= first and i not in dense_only for i, s in enumerate(sparse)]


# --------------------------------------------------------------------------------------------------------
# layouts

def parse_decoder(c: Cfg, hidden: int, model_type: str) -> Specs:
    refuse_unsupported(c)
    if c.has("hybrid_override_pattern", "layers_block_type"):
        return _parse_block_pattern(c, hidden, model_type)
    if c.has("block_configs"):
        return _parse_block_configs(c, hidden, model_type)
    layers = c.int("num_hidden_layers", "n_layer", "num_layers")
    if c.has("o_lora_rank") and not c.has("compress_ratios"):
        raise c.err("o_lora_rank", "a grouped low-rank output projection without DeepSeek-V4 compress_ratios is not "
                    "a layout ridgeplan can express yet")
    sparse = _sparse_layers(c, layers, model_type)
    if any(sparse):
        moe = _moe(c, model_type)
    dense = None if all(sparse) else dense_mlp(c, "dense_intermediate_size", "intermediate_size_mlp")
    specs = []
    if c.has("compress_ratios"):
        mixers_by_ratio: dict[int, Attention] = {}
        for i, ratio in enumerate(_compress_ratios(c, layers)):
            if ratio not in mixers_by_ratio:
                mixers_by_ratio[ratio] = _compressed_attention(c, ratio)
            specs.append((mixers_by_ratio[ratio], moe if sparse[i] else dense))
    else:
        kinds = _layer_kinds(c, layers, model_type)
        mixers: dict[tuple[str, Any], Attention] = {}
        for i, kind in enumerate(kinds):
            key = (kind, _sparse_key(c, i))
            if key not in mixers:
                mixers[key] = _mixer(c, hidden, model_type, kind, i)
            specs.append((mixers[key], moe if sparse[i] else dense))
        if any(k == "chunked" for k in kinds):
            c.assumptions.append("chunked local attention read as a sliding window of attention_chunk_size keys (an "
                                 "upper bound: a query sees only the keys of its own chunk, on average half of it)")
    extra: dict[str, Any] = {}
    hc = c.int("hc_mult", default=0)
    if hc > 1:
        extra["hyper_connections"] = hc
    if model_type.startswith("gemma"):
        extra["_norms"] = 4
    if c.bool("attention_k_eq_v", False):
        c.assumptions.append("attention_k_eq_v: values reuse the keys on full-attention layers; ridgeplan counts a "
                             "separate V projection and V cache there (over-counts those layers' KV and weights)")
    _note_mtp(c)
    return specs, extra


# DeepSeek-V4 compress ratios and the attention each one means (transformers DeepseekV4Config.compress_rates)
_COMPRESS_KINDS = {0: "sliding window only", 4: "CSA (indexer top-k)", 128: "HCA (all entries)"}


def _compress_ratios(c: Cfg, layers: int) -> list[int]:
    ratios = c.int_list("compress_ratios") or []
    if len(ratios) < layers:
        raise c.err("compress_ratios", f"must have at least one entry per layer ({layers}), got {len(ratios)}")
    bad = sorted(set(ratios) - set(_COMPRESS_KINDS))
    if bad:
        raise c.err("compress_ratios", f"unknown compress ratio {bad[0]}", sorted(_COMPRESS_KINDS))
    if len(ratios) > layers:
        c.assumptions.append(f"compress_ratios beyond the {layers} layers belong to MTP layers (not counted)")
    hashed = c.int("num_hash_layers", default=0)
    if hashed:
        c.assumptions.append(f"the first {hashed} MoE layers route by a token-id hash table; costed as learned routing")
    return ratios[:layers]


def _compressed_attention(c: Cfg, ratio: int) -> Attention:
    """One DeepSeek-V4 attention layer: shared K = V MQA of head_dim over a sliding window, plus compressed entries."""
    heads, kv = c.int("num_attention_heads"), c.int("num_key_value_heads", default=1)
    if kv != 1:
        raise c.err("num_key_value_heads", f"DeepSeek-V4 attention has one shared key/value head, got {kv}")
    hd = c.int("head_dim")
    groups = c.int("o_groups")
    if groups == 0 or heads * hd % groups:
        raise c.err("o_groups", f"must divide num_attention_heads x head_dim ({heads * hd}), got {groups}")
    csa = ratio == 4
    return Attention(
        kind="softmax", num_heads=heads, num_kv_heads=1, head_dim=hd, v_head_dim=hd, window=c.int("sliding_window"),
        sinks=True, q_lora_rank=c.int("q_lora_rank"), qk_rope_head_dim=c.int("qk_rope_head_dim"),
        rotary_dim=c.int("qk_rope_head_dim"), compress_ratio=ratio, shared_kv=True, o_groups=groups,
        o_lora_rank=c.int("o_lora_rank"), sparse_topk=c.int("index_topk") if csa else None,
        indexer_heads=c.int("index_n_heads") if csa else 0, indexer_dim=c.int("index_head_dim") if csa else 0,
    )


def _sparse_key(c: Cfg, layer: int) -> Any:
    indexers = c.data.get("indexer_types")
    if isinstance(indexers, list) and layer < len(indexers):
        return indexers[layer]
    sac = c.data.get("sparse_attention_config")
    if isinstance(sac, dict) and isinstance(sac.get("sparse_attention_freq"), list):
        freq = sac["sparse_attention_freq"]
        return bool(freq[layer]) if layer < len(freq) else False
    return None


def _parse_block_pattern(c: Cfg, hidden: int, model_type: str) -> Specs:
    """Nemotron-H: a sequence of single blocks (M Mamba-2, * attention, E MoE, - MLP). Each MLP/MoE block is paired
    with the mixer before it into one layer (two norms, as the blocks have); a mixer followed by another mixer
    forms a layer without an MLP."""
    pattern = c.data.get("hybrid_override_pattern")
    if pattern is None:
        names = {"mamba": "M", "attention": "*", "moe": "E", "mlp": "-"}
        seq = c.seq("layers_block_type")
        bad = sorted({str(b) for b in seq or []} - set(names))
        if bad:
            raise c.err("layers_block_type", f"unknown block type {bad[0]!r}", sorted(names))
        pattern = "".join(names[b] for b in seq or [])
    if not isinstance(pattern, str) or set(pattern) - set("M*E-") or not pattern:
        raise c.err("hybrid_override_pattern", f"must be a string of M, *, E and -, got {pattern!r}")
    if c.has("num_hidden_layers") and c.int("num_hidden_layers") != len(pattern):
        raise c.err("num_hidden_layers", f"must equal the block pattern's length ({len(pattern)})")
    if len(pattern) > 2 * 10_000:
        raise c.err("hybrid_override_pattern", "must have at most 20,000 blocks")
    mamba = _mamba2(c) if "M" in pattern else None
    attn = _softmax(c, hidden, model_type, "full") if "*" in pattern else None
    moe = _moe(c, model_type) if "E" in pattern else None
    dense = dense_mlp(c) if "-" in pattern else None
    specs: list[tuple[Attention, Mlp]] = []
    for block in pattern:
        if block in "M*":
            specs.append((mamba if block == "M" else attn, NO_MLP))
        else:
            if not specs or specs[-1][1] is not NO_MLP:
                raise c.err("hybrid_override_pattern", "an MLP block (E or -) must follow a mixer block (M or *)")
            specs[-1] = (specs[-1][0], moe if block == "E" else dense)
    c.assumptions.append(f"{len(pattern)} Nemotron-H blocks paired into {len(specs)} layers (each MLP block with the "
                         "mixer before it)")
    _note_mtp(c)
    return specs, {}  # type: ignore[return-value]


def _parse_block_configs(c: Cfg, hidden: int, model_type: str) -> Specs:
    """Nemotron-NAS (DeciLM): each layer's attention (`n_heads_in_group` query heads per KV head, or `no_op`) and
    FFN (`ffn_mult`, or `no_op`) from `block_configs`. The FFN width is DeciLM's
    _ffn_mult_to_intermediate_size: int(2 * ffn_mult * hidden / 3) rounded up to a multiple of 256."""
    layers = c.int("num_hidden_layers")
    blocks = c.seq("block_configs", layers) or []
    heads = c.int("num_attention_heads")
    specs: list[tuple[Attention, Mlp]] = []
    for i, block in enumerate(blocks):
        b = Cfg(block if isinstance(block, dict) else {}, f"{c.origin}: block_configs[{i}]")
        if not isinstance(block, dict):
            raise b.err("block", "must be a JSON object")
        att = Cfg(b.mapping("attention"), f"{b.origin}.attention")
        ffn = Cfg(b.mapping("ffn"), f"{b.origin}.ffn")
        for part in (att, ffn):
            for feature in ("replace_with_linear", "sparsify"):
                if part.data.get(feature):
                    raise part.err(feature, f"the block uses {feature}, which ridgeplan cannot express yet")
        if att.bool("no_op", False):
            attn = NO_ATTENTION
        else:
            group = att.int("n_heads_in_group")
            if heads % group:
                raise att.err("n_heads_in_group", f"must divide num_attention_heads ({heads}), got {group}")
            window = att.opt_int("window_length")
            hd = c.int("head_dim", default=hidden // heads)
            attn = Attention(kind="softmax", num_heads=heads, num_kv_heads=heads // group, head_dim=hd,
                             v_head_dim=hd, window=window, qkv_bias=c.bool("attention_bias", False),
                             o_bias=c.bool("attention_bias", False))
        if ffn.bool("no_op", False):
            mlp = NO_MLP
        else:
            mult = ffn.float("ffn_mult", 0.0, low=0.0, high=1000.0)
            if mult <= 0:
                raise ffn.err("ffn_mult", f"must be > 0, got {mult}")
            width = -(-int(2 * mult * hidden / 3) // 256) * 256
            mlp = Mlp(kind="dense", intermediate_size=width, gated=True, bias=c.bool("mlp_bias", False),
                      activation=c.str("hidden_act", "silu"))
        if attn is NO_ATTENTION and mlp is NO_MLP:
            raise b.err("block", "has neither attention nor an FFN")
        specs.append((attn, mlp))
    c.assumptions.append(f"NAS blocks: {sum(a is NO_ATTENTION for a, _ in specs)} of {len(specs)} layers without "
                         "attention; FFN widths from ffn_mult (DeciLM rounding)")
    return specs, {}


def _note_mtp(c: Cfg) -> None:
    mtp = c.int("num_nextn_predict_layers", "mtp_num_hidden_layers", "mtp_transformer_layers", default=0)
    if mtp:
        c.assumptions.append(f"{mtp} multi-token-prediction layer(s) in the checkpoint are not part of the main "
                             "model and are not counted")
