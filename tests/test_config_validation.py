"""Config and device input validation at the point of entry (issue 17): every bad value is refused with the
field named, quickly, and never as a traceback."""

from __future__ import annotations

import copy
import json
import math
import time

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from model.architecture import parse_config
from model.errors import RidgeplanError
from model.hardware.db import load_device

LLAMA = {"model_type": "llama", "hidden_size": 64, "num_hidden_layers": 2, "num_attention_heads": 4,
         "num_key_value_heads": 2, "intermediate_size": 128, "vocab_size": 100}


def _with(**changes):
    cfg = copy.deepcopy(LLAMA)
    cfg.update(changes)
    return cfg


@pytest.mark.parametrize("changes, field", [
    ({"hidden_size": float("nan")}, "hidden_size"),
    ({"num_hidden_layers": float("inf")}, "num_hidden_layers"),
    ({"intermediate_size": float("-inf")}, "intermediate_size"),
    ({"num_attention_heads": 0}, "num_attention_heads"),
    ({"num_key_value_heads": 0}, "num_key_value_heads"),
    ({"vocab_size": 0}, "vocab_size"),
    ({"sliding_window": -5}, "sliding_window"),
    ({"sliding_window": 0}, "sliding_window"),
    ({"head_dim": 0}, "head_dim"),
    ({"intermediate_size": 0}, "intermediate_size"),
    ({"hidden_size": 2.5}, "hidden_size"),
    ({"hidden_size": True}, "hidden_size"),
    ({"quantization_config": "fp8"}, "quantization_config"),
    ({"partial_rotary_factor": float("nan")}, "partial_rotary_factor"),
    ({"partial_rotary_factor": 3.0}, "partial_rotary_factor"),
    ({"layer_types": "full_attention"}, "layer_types"),
    ({"layer_types": ["full_attention"]}, "layer_types"),
    ({"model_type": 7}, "model_type"),
    ({"num_local_experts": 4, "num_experts_per_tok": 0}, "num_experts_per_tok"),
])
def test_bad_value_names_the_field(changes, field):
    with pytest.raises(RidgeplanError) as err:
        parse_config(_with(**changes), name="bad")
    assert field in str(err.value)


def test_nan_from_json_text_is_refused():
    cfg = json.loads('{"model_type": "llama", "hidden_size": NaN, "num_hidden_layers": 2, "vocab_size": 10,'
                     ' "num_attention_heads": 2, "intermediate_size": 8}')
    with pytest.raises(RidgeplanError, match="hidden_size"):
        parse_config(cfg)


def test_text_config_must_be_an_object():
    with pytest.raises(RidgeplanError, match="text_config"):
        parse_config({"model_type": "kimi_k25", "text_config": "deepseek_v3"})


def test_text_config_is_read_as_the_model():
    arch = parse_config({"model_type": "wrapper", "tie_word_embeddings": True, "text_config": LLAMA})
    assert arch.num_layers == 2 and arch.tie_word_embeddings


@pytest.mark.parametrize("field, value, bound", [
    ("num_hidden_layers", 1e9, "10,000"),
    ("num_hidden_layers", 10_001, "10,000"),
    ("hidden_size", 10**7, "262,144"),
    ("vocab_size", 10**9, "8,388,608"),
    ("intermediate_size", 10**8, "2,097,152"),
    ("num_attention_heads", 10**6, "65,536"),
])
def test_huge_values_refused_fast_with_the_bound(field, value, bound):
    start = time.perf_counter()
    with pytest.raises(RidgeplanError) as err:
        parse_config(_with(**{field: value}))
    assert time.perf_counter() - start < 0.5
    assert field in str(err.value) and bound in str(err.value)


def test_layer_bound_itself_is_accepted_and_cheap():
    start = time.perf_counter()
    arch = parse_config(_with(num_hidden_layers=10_000))
    assert arch.num_layers == 10_000 and len(arch.groups) == 1
    assert time.perf_counter() - start < 2.0


def test_bert_is_refused_as_encoder():
    bert = {"architectures": ["BertForMaskedLM"], "model_type": "bert", "hidden_size": 768, "num_hidden_layers": 12,
            "num_attention_heads": 12, "intermediate_size": 3072, "vocab_size": 30522}
    with pytest.raises(RidgeplanError, match="encoder"):
        parse_config(bert)


def test_encoder_decoder_is_refused():
    with pytest.raises(RidgeplanError, match="encoder"):
        parse_config(_with(model_type="t5", is_encoder_decoder=True))


def test_unsupported_feature_is_named():
    with pytest.raises(RidgeplanError, match="Kimi Delta Attention"):
        parse_config(_with(linear_attn_config={"kda_layers": [1]}))
    with pytest.raises(RidgeplanError, match="o_lora_rank"):
        parse_config(_with(o_lora_rank=1024))


@pytest.mark.parametrize("changes, field", [
    ({"compress_ratios": [0, 7]}, "compress_ratios"),
    ({"compress_ratios": [0]}, "compress_ratios"),
    ({"compress_ratios": "0,4"}, "compress_ratios"),
])
def test_bad_compress_ratios(changes, field):
    with pytest.raises(RidgeplanError, match=field):
        parse_config(_with(**changes))


def test_sidecar_must_be_an_object():
    with pytest.raises(RidgeplanError, match="hf_quant_config"):
        parse_config(LLAMA, quant_config={"quantization": "NVFP4"})


_JUNK = st.one_of(st.none(), st.booleans(), st.integers(-10, 10**12), st.floats(allow_nan=True, allow_infinity=True),
                  st.text(max_size=5), st.lists(st.integers(-2, 3), max_size=3), st.dictionaries(st.text(max_size=3),
                                                                                                  st.integers(), max_size=2))


@settings(max_examples=300, deadline=None)
@given(key=st.sampled_from(sorted({*LLAMA, "head_dim", "sliding_window", "num_local_experts", "num_experts_per_tok",
                                   "text_config", "quantization_config", "layer_types", "rotary_dim",
                                   "partial_rotary_factor", "tie_word_embeddings", "kv_lora_rank", "index_topk",
                                   "hybrid_override_pattern", "moe_layer_freq", "first_k_dense_replace"})),
       value=_JUNK)
def test_any_junk_value_is_a_result_or_our_error(key, value):
    try:
        arch = parse_config(_with(**{key: value}))
    except RidgeplanError:
        return
    assert arch.num_layers >= 1 and arch.hidden_size >= 1 and arch.vocab_size >= 1
    assert all(g.attention.num_heads >= 1 for g in arch.groups)


# ---- device TOML -------------------------------------------------------------------------------------------

DEVICE = {"id": "toy", "name": "toy", "vendor": "x", "kind": "gpu", "arch": "hopper",
          "peak_flop_per_s": {"bf16": 1e15}, "memory": {"capacity_bytes": 8e10, "bandwidth_bytes_per_s": 3e12},
          "scale_up": {"link": "nvlink4", "bandwidth_bytes_per_s_per_direction": 4.5e11, "max_domain_devices": 8},
          "sources": {"peak_flop_per_s": "s", "memory": "s", "scale_up": "s"}}


@pytest.mark.parametrize("path, value, field", [
    (("scale_up", "max_domain_devices"), 0, "max_domain_devices"),
    (("scale_up", "max_domain_devices"), -8, "max_domain_devices"),
    (("scale_up", "max_domain_devices"), 10**9, "max_domain_devices"),
    (("scale_up", "bandwidth_bytes_per_s_per_direction"), 0.0, "bandwidth_bytes_per_s_per_direction"),
    (("memory", "capacity_bytes"), math.nan, "capacity_bytes"),
    (("memory", "bandwidth_bytes_per_s"), math.inf, "bandwidth_bytes_per_s"),
    (("peak_flop_per_s", "bf16"), -1.0, "bf16"),
    (("release_year",), 1, "release_year"),
    (("on_chip",), {"compute_units": 0}, "compute_units"),
    (("efficiency",), {"gemm": math.nan}, "efficiency"),
])
def test_device_nonsense_names_the_field(path, value, field):
    dev = copy.deepcopy(DEVICE)
    target = dev
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = value
    if path[0] == "on_chip":
        dev["sources"]["on_chip"] = "s"
    with pytest.raises(RidgeplanError) as err:
        load_device(dev)
    assert field in str(err.value)


def test_node_nics_zero_refused():
    from model.hardware.db import _parse
    from model.hardware.schema import NodeType

    with pytest.raises(RidgeplanError, match="nics_per_node"):
        _parse(NodeType, {"id": "n", "name": "n", "device": "b200", "devices_per_node": 8,
                          "scale_up_topology": "switch", "nics_per_node": 0, "sources": {"node": "s"}}, "n.toml")


def test_mutated_real_configs_give_a_result_or_our_error():
    """1,500 seeded mutations of the 89 aiconfigurator-core configs (1-3 fields, at the top level or inside the
    text model, set to junk): every one parses or fails with RidgeplanError; a sample of the parsed ones is counted
    through the operator graph."""
    import random

    from model.architecture.catalogue import _folder
    from model.operators.params import parameter_counts

    rng = random.Random(17)
    # the 3 MB MiniMax-M3-NVFP4 file (a per-module quantization table) is left out: copying it dominates the time
    bases = [json.loads(p.read_text()) for p in sorted((_folder() / "aic").glob("*_config.json"))
             if not p.name.endswith("hf_quant_config.json") and p.stat().st_size < 200_000]
    junk = [None, True, 0, -1, 1, 3, 1e9, math.nan, math.inf, -5.5, 2.5, "x", [], [0], [1, 2, 3], {}, {"a": 1},
            ["full_attention"], "MEM*E", 10**12]
    counted = 0
    for i in range(1500):
        cfg = copy.deepcopy(rng.choice(bases))
        target = cfg["text_config"] if isinstance(cfg.get("text_config"), dict) and rng.random() < 0.8 else cfg
        for key in rng.sample(sorted(target), k=min(len(target), rng.randint(1, 3))):
            target[key] = rng.choice(junk)
        try:
            arch = parse_config(cfg, "mutated")
        except RidgeplanError:
            continue
        assert arch.num_layers >= 1 and arch.hidden_size >= 1
        if counted < 8 and i % 20 == 0:  # building the operator graph is the slow part: a deterministic sample of it
            assert parameter_counts(arch).total > 0
            counted += 1
    assert counted >= 3
