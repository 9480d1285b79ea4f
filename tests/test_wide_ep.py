"""Engine-style MoE layouts (TP x attention-DP, MoE-TP x MoE-EP), their per-engine rules, and wide-EP
communication, against hand derivations."""

from __future__ import annotations

from math import prod

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from model.api import deployment
from model.engines import accepting_engines, check_layout
from model.errors import RidgeplanError
from model.operators.formulas import FP8_DISPATCH_BYTES, expected_max_normal
from model.placement.layout import Layout
from model.roofline.collectives import Tier, collective_time

D_V3, E_V3, K_V3 = 7168, 256, 8  # DeepSeek-V3 hidden size, routed experts, experts per token


def _op(d, name, batch=1, new_tokens=1, context=1000):
    ops = d.graph.evaluate({**d.symbols(), "B": batch, "T": new_tokens, "C": context, "n_logit": 1.0})
    i = [op.name for op in ops.ops].index(name)
    return ops, i


# ---------------------------------------------------------------------------------------------------------
# the layout rule

def test_layout_derives_the_engine_degrees():
    # short form: EP wider than TP is made of attention-DP ranks (DeepSeek's DP attention + EP)
    lay = Layout(tp=1, ep=8)
    assert (lay.attention_dp, lay.moe_tp, lay.gpus, lay.batch_ranks) == (8, 1, 8, 8)
    # EP inside TP: experts split 4 ways, each expert 2 ways (TRT-LLM --tp_size 8 --ep_size 4)
    lay = Layout(tp=8, ep=4)
    assert (lay.attention_dp, lay.moe_tp, lay.gpus, lay.gpus_per_replica) == (1, 2, 8, 8)
    # TP4 x attention-DP4 with MoE-TP4 x MoE-EP4: 16 GPUs, 2 independent replicas -> 32
    lay = Layout(tp=4, attention_dp=4, ep=4, moe_tp=4, dp=2)
    assert (lay.moe_group, lay.gpus, lay.batch_ranks, lay.label()) == (16, 32, 8, "TP4xADP4xEP4xMoETP4xDP2")


def test_layout_rule_and_its_messages():
    with pytest.raises(RidgeplanError) as e:
        Layout(tp=2, attention_dp=4, ep=4, moe_tp=4)
    assert e.value.field == "moe_tp"
    assert "MoE-TP 4 x MoE-EP 4 = 16 must equal TP 2 x attention-DP 4 = 8" in str(e.value)
    with pytest.raises(RidgeplanError) as e:
        Layout(tp=8, ep=3)
    assert e.value.field == "moe_ep" and "3 does not divide the 8 GPUs" in str(e.value)
    with pytest.raises(RidgeplanError) as e:
        deployment("deepseek-v3", "gb200", tp=1, attention_dp=72, ep=72)
    assert "72 does not divide the 256 experts" in str(e.value) and "redundant_experts=32" in str(e.value)
    d = deployment("deepseek-v3", "gb200", tp=1, attention_dp=72, ep=72, redundant_experts=32)
    assert d.layout.label() == "TP1xADP72xEP72xR32"
    with pytest.raises(RidgeplanError) as e:
        deployment("llama-3.1-8b", "h100-sxm", tp=1, attention_dp=2)
    assert e.value.field == "attention_dp"


def test_old_dp_with_ep_is_one_line_pointing_to_attention_dp(capsys):
    from model.cli import main

    with pytest.raises(RidgeplanError) as e:
        deployment("deepseek-v3", "h200", tp=1, ep=8, dp=8)
    assert e.value.field == "dp" and "--attention-dp" in str(e.value)
    code = main(["estimate", "--model", "deepseek-v3", "--gpu", "h200", "--tp", "1", "--ep", "8", "--dp", "8"])
    err = capsys.readouterr().err
    assert code == 2 and len(err.strip().splitlines()) == 1 and "--attention-dp" in err
    # replicas of a layout with no attention DP stay expressible with --dp
    assert deployment("deepseek-v3", "h200", tp=8, ep=8, dp=2).layout.gpus == 16


def test_engine_rules_quote_the_engine():
    # MoE-TP4 x MoE-EP4 under TP4 x attention-DP4: SGLang takes it; vLLM has no mixed MoE-TP x EP;
    # TensorRT-LLM runs attention TP or DP, not both
    layout = dict(tp=4, attention_dp=4, moe_tp=4, moe_ep=4)
    assert accepting_engines(**layout) == ("sglang",)
    with pytest.raises(RidgeplanError, match="vLLM: 'the MoE layers span TP x DP GPUs"):
        check_layout("vllm", **layout)
    with pytest.raises(RidgeplanError, match="TensorRT-LLM: 'attention runs either tensor-parallel"):
        check_layout("trtllm", **layout)
    # attention-DP 16 with MoE-TP4 x EP4 (a TRT-LLM row): TRT-LLM and SGLang take it, vLLM does not
    assert accepting_engines(tp=1, attention_dp=16, moe_tp=4, moe_ep=4) == ("sglang", "trtllm")
    # SGLang's DeepEP forces EP = tp
    with pytest.raises(RidgeplanError, match="SGLang: 'with --moe-a2a-backend deepep"):
        check_layout("sglang", tp=8, moe_tp=2, moe_ep=4, ep_comm="low_latency")
    with pytest.raises(RidgeplanError, match="vLLM"):
        deployment("deepseek-v3", "b200", tp=8, ep=4, engine="vllm")
    assert deployment("deepseek-v3", "b200", tp=8, ep=4, engine="trtllm").layout.moe_tp == 2


# ---------------------------------------------------------------------------------------------------------
# all-to-all bytes per token, DeepSeek-V3

# A token's 8 experts are distinct; a rank holding E/g experts is missed with probability
# C(256 - 256/g, 8) / C(256, 8) = prod_{i<8} (256 - 256/g - i) / (256 - i), so it reaches g (1 - miss) ranks.
HITS = {
    8: 8 * (1 - (224 * 223 * 222 * 221 * 220 * 219 * 218 * 217) / (256 * 255 * 254 * 253 * 252 * 251 * 250 * 249)),
    32: 32 * (1 - (248 * 247 * 246 * 245 * 244 * 243 * 242 * 241) / (256 * 255 * 254 * 253 * 252 * 251 * 250 * 249)),
    72: 72 * (1 - prod((256 - 256 / 72 - i) / (256 - i) for i in range(8))),
}


def test_ranks_hit_by_hand():
    assert HITS[8] == pytest.approx(5.2947, abs=1e-4)
    assert HITS[32] == pytest.approx(7.2668, abs=1e-4)
    assert HITS[72] == pytest.approx(7.7228, abs=1e-4)


@pytest.mark.parametrize("ep, node, redundant", [(8, None, 0), (32, "dgx-b200", 0), (72, "gb200-nvl72", 32)])
def test_dispatch_and_combine_bytes_per_token(ep, node, redundant):
    gpu = "gb200" if ep == 72 else "b200"
    d = deployment("deepseek-v3", gpu, weights="fp8", kv="fp8", tp=1, attention_dp=ep, ep=ep, node=node,
                   redundant_experts=redundant, ep_comm="normal")
    assert d.dispatch_format == "fp8"
    ops, i = _op(d, "ep_dispatch")
    # normal kernels: one copy per destination rank, fp8 e4m3 + one fp32 scale per 128 channels
    dispatch = HITS[ep] * D_V3 * (1 + 4 / 128)
    assert ops.comm_bytes[i, 0] == pytest.approx(dispatch, rel=1e-9)
    _, j = _op(d, "ep_combine")
    assert ops.comm_bytes[j, 0] == pytest.approx(HITS[ep] * D_V3 * 2, rel=1e-9)  # bf16 combine
    # EP8: 5.29 ranks x 7168 x 1.03125 = 39,138 B dispatched per token, 75,904 B combined; 7/8 leave the GPU
    if ep == 8:
        assert dispatch == pytest.approx(39_138, abs=1)
    # low-latency kernels: one copy per selected expert, 8 x 7168 x 1.03125 = 59,136 B
    ll = deployment("deepseek-v3", gpu, weights="fp8", kv="fp8", tp=1, attention_dp=ep, ep=ep, node=node,
                    redundant_experts=redundant, ep_comm="low_latency")
    ops, i = _op(ll, "ep_dispatch_ll")
    assert ops.comm_bytes[i, 0] == pytest.approx(59_136, rel=1e-9)
    assert FP8_DISPATCH_BYTES == 1.03125


def test_all_to_all_time_uses_the_link_tiers():
    # EP8 normal dispatch inside one HGX H200: (n-1) alpha + (n-1)/n M / beta on NVLink, plus the collective base
    d = deployment("deepseek-v3", "h200", weights="fp8", kv="fp8", tp=1, attention_dp=8, ep=8, ep_comm="normal")
    s = d.step(64, 1, 1000)
    i = [op.name for op in s.ops.ops].index("ep_dispatch")
    m = 64 * HITS[8] * D_V3 * FP8_DISPATCH_BYTES
    t = d.tiers.intra
    hand = 7 * t.latency_s + 7 / 8 * m / t.bandwidth_bytes_per_s + d.eff.collective_base_s
    assert s.times.network_s[i, 0] == pytest.approx(hand, rel=1e-9)
    # direct (low-latency) all-to-all pays one latency for all peers
    tier = Tier(100e9, 5e-6)
    assert collective_time("all_to_all", 8e6, 8, intra=tier, algorithm="direct") == pytest.approx(5e-6 + 7 / 8 * 8e6 / 100e9)


def test_wide_ep_across_nodes_is_slower_than_one_nvl72_domain():
    kw = dict(weights="fp8", kv="fp8", tp=1, attention_dp=64, ep=64, ep_comm="normal")
    hgx = deployment("deepseek-v3", "b200", node="dgx-b200", **kw)
    nvl = deployment("deepseek-v3", "gb200", node="gb200-nvl72", **kw)
    assert (hgx.moe_nodes, nvl.moe_nodes) == (8, 1)
    # across 8 nodes the normal kernels send a token once per node over the NIC: the 8 nodes of 32 experts each
    # are reached like EP8's ranks, 5.29 of them; inside the NVL72 rack nothing crosses a NIC
    ops, i = _op(hgx, "ep_dispatch_rdma")
    assert ops.comm_bytes[i, 0] == pytest.approx(HITS[8] * D_V3 * FP8_DISPATCH_BYTES, rel=1e-9)
    assert _op(nvl, "ep_dispatch_rdma")[0].comm_bytes[i, 0] == 0
    names = [op.name for op in hgx.graph.ops]
    rows = [names.index(n) for n in ("ep_dispatch", "ep_combine", "ep_dispatch_rdma", "ep_combine_rdma")]
    t_hgx = hgx.step(128, 1, 2000).op_step_s()[rows, 0].sum()
    t_nvl = nvl.step(128, 1, 2000).op_step_s()[rows, 0].sum()
    assert t_hgx > 3 * t_nvl  # 8 GPUs per NVLink domain and InfiniBand beyond, against one domain


def test_modes_and_attention_dp_collectives():
    tp_only = deployment("deepseek-v3", "h200", weights="fp8", tp=8, ep=8)
    assert tp_only.moe_comm_mode == "none"  # tokens already on every TP rank: an all-reduce sums the experts
    adp = deployment("deepseek-v3", "h200", weights="fp8", tp=1, attention_dp=8, ep=8)
    assert adp.moe_comm_mode == "allgather"
    ops, i = _op(adp, "moe_all_gather", batch=16)
    # every one of 8 ranks contributes its 16 tokens of 7168 fp8 elements (+ scales) to the gather
    assert ops.comm_bytes[i, 0] == pytest.approx(16 * 8 * D_V3 * FP8_DISPATCH_BYTES)
    wide = deployment("deepseek-v3", "gb200", weights="fp8", tp=1, attention_dp=32, ep=32)
    assert wide.moe_comm_mode == "auto"  # low-latency kernels in decode, normal kernels in prefill
    assert wide.symbols()["ll_decode"] == 1 and wide.symbols()["ll_prefill"] == 0


def test_busiest_rank_statistics():
    # Blom: E[max of 8 standard normals] ~ Phi^-1((8 - 0.375) / 8.25) = Phi^-1(0.92424) = 1.4342
    assert expected_max_normal(8) == pytest.approx(1.4342, abs=1e-3)
    assert expected_max_normal(1) == 0.0
    # batch-1 decode, EP8: each rank holds 32 experts, each hit with p = 8/256: mean 1 expert, sd sqrt(1 - 1/32);
    # the busiest rank reads 1 + 1.4342 x 0.9843 = 2.41 experts' weights
    d = deployment("deepseek-v3", "h200", weights="fp8", tp=8, ep=8)
    ops, i = _op(d, "experts")
    per_expert = 3 * D_V3 * 2048 * 1.0
    touched = 1 + expected_max_normal(8) * np.sqrt(1 - 1 / 32)
    assert ops.weight_bytes[i, 0] == pytest.approx(touched * per_expert, rel=1e-9)
    # EPLB removes a routing skew, not the randomness of one batch
    skew = deployment("deepseek-v3", "h200", weights="fp8", tp=8, ep=8, moe_imbalance=1.3)
    balanced = deployment("deepseek-v3", "h200", weights="fp8", tp=8, ep=8, moe_imbalance=1.3, eplb=True)
    assert _op(skew, "experts")[0].flops[i, 0] == pytest.approx(1.3 * _op(balanced, "experts")[0].flops[i, 0])


def test_two_batch_overlap_hides_communication_at_large_batch_only():
    kw = dict(weights="fp8", kv="fp8", tp=1, attention_dp=32, ep=32, node="dgx-b200")
    off, on = deployment("deepseek-v3", "b200", **kw), deployment("deepseek-v3", "b200", two_batch_overlap=True, **kw)
    assert on.step(256, 1, 2000).time_s[0] < off.step(256, 1, 2000).time_s[0]
    assert on.step(1, 1, 2000).time_s[0] > off.step(1, 1, 2000).time_s[0]  # weights read twice, nothing to hide


# ---------------------------------------------------------------------------------------------------------
# property: no layout reads less than the physical minimum

ATTN_PARAMS_PER_LAYER = (7168 * 1536 + 1536 * 128 * 192 + 7168 * 576 + 512 * 128 * (128 + 128) + 128 * 128 * 7168)
EXPERT_PARAMS = 3 * 7168 * 2048


def _layouts(gpus: int) -> list[dict]:
    out = []
    for tp in (1, 2, 4, 8, 16, 32, 64):
        if gpus % tp or tp > gpus:
            continue
        for ep in (1, 2, 4, 8, 16, 32, 64):
            if gpus % ep == 0 and 2048 % (gpus // ep) == 0:
                out.append(dict(tp=tp, attention_dp=gpus // tp, ep=ep, moe_tp=gpus // ep))
    return out


@settings(max_examples=40, deadline=None)
@given(gpus=st.sampled_from([8, 16, 32, 64]), pick=st.integers(0, 10_000), batch=st.integers(1, 256),
       context=st.integers(0, 8192))
def test_bytes_per_gpu_never_below_the_physical_minimum(gpus, pick, batch, context):
    layouts = _layouts(gpus)
    kw = layouts[pick % len(layouts)]
    d = deployment("deepseek-v3", "b200", weights="fp8", kv="fp8", node="dgx-b200", **kw)
    ops = d.graph.evaluate({**d.symbols(), "B": batch, "T": 1, "C": context, "n_logit": 1.0})
    read = float(ops.counts @ (ops.weight_bytes[:, 0] + ops.kv_read_bytes[:, 0]))
    tp, adp = kw["tp"], kw["attention_dp"]
    attention = 61 * ATTN_PARAMS_PER_LAYER * 1.0 / tp  # its TP share of the attention weights (fp8)
    kv = 61 * batch * (context + 1) * 576 * 1.0 / tp  # its share of its sequences' latent KV
    tokens = batch * adp  # tokens of the whole MoE group
    touched = E_V3 * (1 - (1 - K_V3 / E_V3) ** tokens)
    experts = 58 * touched * EXPERT_PARAMS * 1.0 / gpus  # its share of the experts the group's tokens touch
    assert read >= attention + kv + experts


# ---------------------------------------------------------------------------------------------------------
# the planner proposes them

def test_planner_candidate_space_has_wide_ep_nvl72_and_fp4():
    from model.architecture.catalogue import load_architecture
    from model.hardware.db import load_device
    from model.planner.candidates import candidate_precisions, layouts
    from model.planner.request import GpuOption, PlanRequest, Traffic
    from model.serving.estimate import SLO
    from model.serving.workload import Lengths

    nvl72 = layouts(72, (1, 2, 4, 8), (1,), {256})
    assert any(lay.attention_dp == 72 and lay.ep == 72 and lay.redundant_experts == 32 for lay in nvl72)
    assert any(lay.tp == 8 and lay.attention_dp == 8 and lay.ep == 64 for lay in nvl72)
    hgx = layouts(8, (1, 2, 4, 8), (1,), {256}, scale_out=True)
    assert max(lay.gpus for lay in hgx) == 32 and not any(lay.gpus == 72 for lay in hgx)
    assert layouts(8, (8,), (1,), set()) == [Layout(tp=8)]  # dense models keep plain TP/PP
    req = PlanRequest((Traffic("deepseek-v3", 1.0, Lengths.fixed(100, 10)),), SLO(1.0, 0.1), (GpuOption("b200"),))
    arch = load_architecture("deepseek-v3")
    assert ("nvfp4", "fp8") in candidate_precisions(req, load_device("b200"), arch)
    assert ("nvfp4", "fp8") not in candidate_precisions(req, load_device("h200"), arch)  # no FP4 tensor cores
    assert ("mxfp4", "fp8") in candidate_precisions(req, load_device("b200"), load_architecture("gpt-oss-120b"))


def test_planning_deepseek_v3_on_h200_and_b200_picks_attention_dp_and_expert_parallel():
    from model.planner import GpuOption, PlanRequest, Traffic, plan
    from model.serving.estimate import SLO
    from model.serving.workload import Lengths

    req = PlanRequest((Traffic("deepseek-v3", 40.0, Lengths.fixed(2000, 500)),), SLO(5.0, 0.1),
                      (GpuOption("h200"), GpuOption("b200")), precisions=(("fp8", "fp8"),), gpus_per_instance=(8,),
                      pipeline_depths=(1,), roles=("aggregated",))
    p = plan(req)
    assert p.feasible
    layouts_chosen = [pool.candidate.deployment.layout for pool in p.pools]
    assert any(lay.attention_dp > 1 and lay.ep > 1 for lay in layouts_chosen)


def test_simulator_recheck_sends_one_attention_dp_rank_its_share_of_the_rate(monkeypatch):
    """The deployment's batch, step cost and KV pool are one attention-DP rank's, and the capacity the planner
    solves with is that rank's rate x attention_dp (x dp): the re-check must simulate one rank at rate / (A x dp),
    as `estimate` divides a rate by batch_ranks. Handing one rank the instance's whole rate overloaded it A-fold."""
    from model.planner import GpuOption, PlanRequest, Traffic
    from model.planner import check
    from model.planner.candidates import enumerate_candidates
    from model.serving.estimate import SLO
    from model.serving.simulator import run as sim_run
    from model.serving.workload import Lengths

    req = PlanRequest((Traffic("deepseek-v3", 40.0, Lengths.fixed(2000, 500)),), SLO(5.0, 0.1), (GpuOption("h200"),),
                      precisions=(("fp8", "fp8"),), gpus_per_instance=(8,), pipeline_depths=(1,), roles=("aggregated",))
    cands, _ = enumerate_candidates(req)
    adp = next(c for c in cands if c.deployment.layout.attention_dp == 8)
    seen = []

    def record(d, lengths, rate_per_s, *a, **kw):
        seen.append(rate_per_s)
        raise sim_run.RidgeplanError("rate", "recorded")  # stop here: only the rate handed over matters

    monkeypatch.setattr(sim_run, "simulate_pool", record)
    monkeypatch.setattr(check, "_memory", type(check._memory)(check.REMEMBERED_DEPLOYMENTS))
    check.simulator_check(adp, req.traffic[0].lengths, 12.0, req, num_requests=50)
    assert seen == [12.0 / 8]
