"""Config parsing: fields are read as given; parameter counts match the published ones."""

from __future__ import annotations

import json

import pytest

from model.architecture import catalogue_entry, load_architecture, model_ids, parse_config
from model.errors import RidgeplanError, UnknownNameError
from model.operators.params import parameter_counts

REQUIRED = ["llama-2-7b", "llama-2-13b", "llama-2-70b", "llama-3.1-8b", "llama-3.1-70b", "llama-3.1-405b", "mistral-7b",
            "mixtral-8x7b", "mixtral-8x22b", "qwen2.5-7b", "qwen2.5-72b", "qwen3-32b", "qwen3-235b-a22b", "deepseek-v3",
            "gpt-oss-120b", "gemma-2-27b", "falcon-180b", "opt-13b", "opt-66b", "opt-175b", "glm-130b", "yi-34b",
            "qwen3-next-80b-a3b"]


def test_catalogue_has_required_models():
    assert set(REQUIRED) <= set(model_ids())


@pytest.mark.parametrize("ident", model_ids())
def test_parameter_counts_match_published(ident):
    """Total and active counts within 1% of the published figure (one unit of the last digit when the
    publisher rounds, e.g. "13B"); active counts follow the publisher's vocab-matrix convention."""
    entry = catalogue_entry(ident)
    assert entry is not None, f"{ident} needs an index.toml entry"
    counts = parameter_counts(load_architecture(ident))
    total, active = entry.published_total_params, entry.published_active_params
    assert counts.total == pytest.approx(total, rel=entry.tolerance(total))
    assert counts.active_excluding(entry.active_excludes) == pytest.approx(active, rel=entry.tolerance(active))


def test_head_dim_read_as_given_not_derived():
    # Qwen3-32B: hidden 5120 / 64 heads = 80, but the config says head_dim = 128 (PITFALLS: hidden/heads)
    a = load_architecture("qwen3-32b")
    att = a.groups[0].attention
    assert a.hidden_size // att.num_heads == 80
    assert att.head_dim == 128
    assert att.num_kv_heads == 8


def test_gemma2_alternates_sliding_and_global():
    a = load_architecture("gemma-2-27b")
    windows = sorted((g.attention.window or 0, g.count) for g in a.groups)
    assert windows == [(0, 23), (4096, 23)]
    assert a.layer_order[0] != a.layer_order[1]
    assert a.tie_word_embeddings


def test_gpt_oss_sliding_full_moe():
    a = load_architecture("gpt-oss-120b")
    assert {g.attention.window for g in a.groups} == {128, None}
    assert all(g.mlp.kind == "moe" and g.mlp.num_experts == 128 and g.mlp.top_k == 4 for g in a.groups)
    assert all(g.attention.sinks for g in a.groups)


def test_deepseek_v3_mla_moe_shared_first_dense():
    a = load_architecture("deepseek-v3")
    dense = [g for g in a.groups if g.mlp.kind == "dense"]
    moe = [g for g in a.groups if g.mlp.kind == "moe"]
    assert [g.count for g in dense] == [3] and [g.count for g in moe] == [58]
    assert a.layer_order[:4] == (a.groups.index(dense[0]),) * 3 + (a.groups.index(moe[0]),)
    att = moe[0].attention
    assert (att.kind, att.kv_lora_rank, att.qk_rope_head_dim, att.q_lora_rank) == ("mla", 512, 64, 1536)
    m = moe[0].mlp
    assert (m.num_experts, m.top_k, m.expert_intermediate_size, m.shared_intermediate_size) == (256, 8, 2048, 2048)


def test_qwen3_next_hybrid_linear_attention():
    a = load_architecture("qwen3-next-80b-a3b")
    kinds = {g.attention.kind: g.count for g in a.groups}
    assert kinds == {"linear": 36, "softmax": 12}
    full = next(g for g in a.groups if g.attention.kind == "softmax")
    assert full.attention.output_gate and full.attention.head_dim == 256


def test_falcon_defaults_recorded_as_assumptions():
    a = load_architecture("falcon-180b")
    g = a.groups[0]
    assert g.mlp.intermediate_size == 4 * a.hidden_size and not g.mlp.gated
    assert any("ffn_hidden_size" in s for s in a.assumptions)


def test_load_from_path_and_dict(tmp_path):
    from importlib import resources

    text = (resources.files("model.architecture") / "catalogue" / "llama-2-7b.json").read_text()
    path = tmp_path / "config.json"
    path.write_text(text)
    by_path = load_architecture(str(path))
    by_dict = load_architecture(json.loads(text))
    assert parameter_counts(by_path).total == parameter_counts(by_dict).total == pytest.approx(6_738_415_616)


def test_unknown_model_suggests_close_match():
    with pytest.raises(UnknownNameError) as err:
        load_architecture("llama-3.1-8")
    assert "llama-3.1-8b" in str(err.value) and str(err.value).startswith("model:")


@pytest.mark.parametrize("config, field", [
    ({"model_type": "llama", "num_hidden_layers": 2, "num_attention_heads": 4, "intermediate_size": 8, "vocab_size": 10}, "hidden_size"),
    ({"model_type": "llama", "hidden_size": 8, "num_hidden_layers": 2, "num_attention_heads": 4, "intermediate_size": 8,
      "vocab_size": 10, "num_key_value_heads": 3}, "num_key_value_heads"),
    ({"model_type": "llama", "hidden_size": "big", "num_hidden_layers": 2}, "hidden_size"),
    ({"model_type": "mixtral", "hidden_size": 8, "num_hidden_layers": 2, "num_attention_heads": 2, "intermediate_size": 8,
      "vocab_size": 10, "num_local_experts": 4, "num_experts_per_tok": 6}, "num_experts_per_tok"),
    ({"model_type": "mamba", "hidden_size": 8}, "model_type"),
])
def test_malformed_config_names_the_field(config, field):
    with pytest.raises(RidgeplanError) as err:
        parse_config(config, name="bad")
    assert field in str(err.value)


def test_malformed_json_file(tmp_path):
    path = tmp_path / "config.json"
    path.write_text("{not json")
    with pytest.raises(RidgeplanError) as err:
        load_architecture(str(path))
    assert "not valid JSON" in str(err.value)


def test_config_must_be_an_object():
    with pytest.raises(RidgeplanError):
        parse_config([1, 2, 3])  # type: ignore[arg-type]
