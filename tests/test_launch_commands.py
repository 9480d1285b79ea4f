"""Launch commands: each engine's emitted command is read back by a parser built from that engine's flag table and
checked against its rules; invalid combinations are rejected (issue 16, finding 5)."""

from __future__ import annotations

from dataclasses import replace

import pytest

from model.engines import sglang, trtllm, vllm
from model.engines.launch import LaunchSpec
from model.errors import RidgeplanError
from model.planner import GpuOption, PlanRequest, Traffic
from model.planner.candidates import enumerate_candidates
from model.planner.commands import launch_commands, router_commands, spec_for
from model.serving.estimate import SLO
from model.serving.workload import Lengths

ENGINES = {"vllm": vllm, "sglang": sglang, "trtllm": trtllm}


def _cands(model="llama-3.1-8b", gpus=("h100-sxm",), precisions=(("bf16", "bf16"),), sizes=(1, 2)):
    req = PlanRequest((Traffic(model, 1.0, Lengths.fixed(500, 100)),), SLO(1.0, 0.05),
                      tuple(GpuOption(g) for g in gpus), precisions=precisions, gpus_per_instance=sizes,
                      pipeline_depths=(1, 2))
    return enumerate_candidates(req)[0]


@pytest.mark.parametrize("engine", sorted(ENGINES))
def test_every_emitted_command_parses_and_passes_its_engines_rules(engine):
    mod = ENGINES[engine]
    cands = _cands(precisions=(("bf16", "bf16"), ("fp8", "fp8"), ("int4", "bf16"))) \
        + _cands("mixtral-8x7b", precisions=(("fp8", "fp8"),), sizes=(2, 4))
    seen = 0
    for c in cands:
        cmds = launch_commands(c, 64)
        if engine not in cmds:
            assert engine in cmds.get("not_available", ""), (c.label(), cmds)
            continue
        spec, _ = spec_for(c, 64, engine)
        flags = mod.parse_command(cmds[engine])
        assert mod.check_launch(flags, spec) == [], (c.label(), cmds[engine])
        seen += 1
    assert seen >= 10


def test_sglang_rejects_dp_that_does_not_divide_tp():
    # finding 5: `--tp 1 --dp 2 --enable-dp-attention --ep-size 2` fails SGLang's tp_size % dp_size == 0 check
    bad = sglang.parse_command("python -m sglang.launch_server --model-path m --tp 1 --dp 2 --enable-dp-attention "
                               "--ep-size 2")
    errors = sglang.check_launch(bad)
    assert any("tp_size % dp_size" in e for e in errors) and any("--ep-size 2 must divide --tp 1" in e for e in errors)
    moe = [c for c in _cands("mixtral-8x7b", precisions=(("fp8", "fp8"),), sizes=(2, 4)) if c.deployment.layout.ep > 1]
    assert moe
    for c in moe:  # what the planner emits for attention-DP + EP layouts: --tp is the instance's GPU count
        flags = sglang.parse_command(launch_commands(c, 32)["sglang"])
        assert flags["--tp"] == c.gpus and flags["--tp"] % flags["--dp"] == 0 and flags["--enable-dp-attention"]


def test_trtllm_rejects_ep_that_does_not_divide_tp():
    # finding 5: `--tp_size 1 --ep_size 2` breaks moe_tp x moe_ep = tp_size
    errors = trtllm.check_launch(trtllm.parse_command("trtllm-serve m --tp_size 1 --ep_size 2"))
    assert errors and "moe_tp_size x moe_ep_size" in errors[0]
    for c in _cands("mixtral-8x7b", precisions=(("fp8", "fp8"),), sizes=(2, 4)):
        if c.deployment.layout.ep > 1:
            flags = trtllm.parse_command(launch_commands(c, 32)["trtllm"])
            assert flags["--tp_size"] % flags["--ep_size"] == 0


@pytest.mark.parametrize("command", [
    "vllm serve m --tensor-parallel-size two",  # wrong type
    "vllm serve m --quantization int4",  # not a vLLM quantization method
    "vllm serve m --no-such-flag 1",  # not in the table
    "vllm serve m --max-num-seqs",  # missing value
    "vllm serve --tensor-parallel-size 1",  # no model
])
def test_vllm_parser_rejects_what_its_table_does_not_allow(command):
    with pytest.raises(RidgeplanError):
        vllm.parse_command(command)


def test_int4_plans_serve_a_quantized_checkpoint_or_say_one_is_needed():
    # finding 5: int4 got `--quantization awq_marlin` on the bf16 repo; SGLang and TensorRT-LLM got no flag at all
    c70 = next(c for c in _cands("llama-3.1-70b", precisions=(("int4", "bf16"),)) if c.role == "aggregated")
    cmds = launch_commands(c70, 8)
    for engine in ("vllm", "sglang", "trtllm"):
        assert "hugging-quants/Meta-Llama-3.1-70B-Instruct-AWQ-INT4" in cmds[engine]
    assert "--quantization awq_marlin" in cmds["vllm"] and "--quantization awq_marlin" in cmds["sglang"]
    q7 = next(c for c in _cands("qwen2.5-7b", precisions=(("int4", "bf16"),)) if c.role == "aggregated")
    cmds = launch_commands(q7, 8)
    assert "$INT4_CHECKPOINT" in cmds["vllm"] and "int4 checkpoint of Qwen/Qwen2.5-7B-Instruct" in cmds["needs"]
    spec, _ = spec_for(q7, 8, "vllm")
    named_bf16 = replace(spec, model="Qwen/Qwen2.5-7B-Instruct", checkpoint_format="bf16")
    assert any("needs a int4 checkpoint" in e for e in vllm.check_launch(vllm.parse_command(cmds["vllm"]), named_bf16))


def test_trtllm_carries_weight_and_kv_precision():
    # finding 5: TensorRT-LLM never carried weight or KV precision, so fp8 plans launched in bf16
    c = next(c for c in _cands(precisions=(("fp8", "fp8"),)) if c.role == "aggregated")
    cmds = launch_commands(c, 8)
    assert cmds["trtllm"].startswith("trtllm-serve $FP8_CHECKPOINT")
    assert "fp8 checkpoint of meta-llama/Llama-3.1-8B-Instruct" in cmds["needs"]
    assert "dtype: fp8" in cmds["trtllm_aggregated.yaml"]
    ampere = next(c for c in _cands(gpus=("a100-sxm-80gb",), precisions=(("fp8", "fp8"),)) if c.role == "aggregated")
    out = launch_commands(ampere, 8)
    assert "trtllm" not in out and "FP8 needs compute capability" in out["not_available"]


def test_amd_plans_get_rocm_engines_only():
    # finding 5: TensorRT-LLM was emitted for MI300X
    c = next(c for c in _cands(gpus=("mi300x",)) if c.role == "aggregated")
    cmds = launch_commands(c, 8)
    assert "vllm" in cmds and "sglang" in cmds and "trtllm" not in cmds
    assert "trtllm: no ROCm build" in cmds["not_available"]


def test_instruct_checkpoints_not_base():
    # finding 5: repos were base checkpoints
    c = next(c for c in _cands() if c.role == "aggregated")
    cmds = launch_commands(c, 8)
    assert "meta-llama/Llama-3.1-8B-Instruct" in cmds["vllm"] and "Llama-3.1-8B " not in cmds["vllm"]


def test_prefill_decode_plans_get_a_router():
    # finding 5: prefill/decode set-ups had no router or proxy command
    from model.planner.plan import Pair, Pool

    cands = _cands()
    pre = next(c for c in cands if c.role == "prefill")
    dec = next(c for c in cands if c.role == "decode")
    lengths = Lengths.fixed(500, 100)
    pools = [Pool(pre, 2, {0: 1.0}, lengths, 1), Pool(dec, 1, {0: 1.0}, lengths, 8)]
    out = router_commands(pools, [Pair(0, 1, 1.0, 0.001, "g")])
    assert "--prefiller-hosts PREFILL_0_0 PREFILL_0_1" in out["vllm"]
    assert out["sglang"].count("--prefill http://") == 2 and out["sglang"].count("--decode http://") == 1
    assert "context_servers" in out["trtllm disagg_config.yaml"]
    for role, c in (("prefill", pre), ("decode", dec)):
        cmds = launch_commands(c, 8)
        assert f"--disaggregation-mode {role}" in cmds["sglang"] and "NixlConnector" in cmds["vllm"]


def test_launch_spec_rules_need_the_instances_gpu_count():
    spec = LaunchSpec("m", 2, 1, 1, 1, "bf16", "bf16", "bf16", 8, 8192, "aggregated", "hopper", "NVIDIA", 4)
    assert any("GPU" in e for e in vllm.check_launch(vllm.parse_command(vllm.launch_command(replace(spec, gpus=2))),
                                                    spec))
