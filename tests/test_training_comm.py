"""Training communication over multi-tier networks: each term by hand, catalogue checks, invariants."""

from __future__ import annotations

import numpy as np
import pytest

from hypothesis import given, settings
from hypothesis import strategies as st
from test_training_formulas import gpt

from model.architecture import load_architecture
from model.hardware import get_node, load_device
from model.roofline.collectives import Tier, collective_time
from model.training import Level, Topology, estimate_training, topology_for
from model.training import comm
from model.training.config import Candidates, TrainingSettings
from model.training.formulas import speedup_from_comm_reduction
from model.training.step import forward_arrays
from model.placement.topology import fanouts, group_collective_s, p2p_s


def test_dgx_topology_has_two_tiers():
    """DGX A100: NVLink 3 at 300 GB/s x 0.78 bus efficiency = 234 GB/s inside 8 GPUs; one HDR NIC per GPU,
    25 GB/s x 0.90 = 22.5 GB/s across nodes."""
    topo = topology_for("a100-sxm-80gb", "dgx-a100")
    assert [lv.size for lv in topo.levels] == [8, np.inf]
    assert topo.levels[0].tier.bandwidth_bytes_per_s == pytest.approx(234e9)
    assert topo.levels[1].tier.bandwidth_bytes_per_s == pytest.approx(22.5e9)


def test_frontier_topology_has_three_tiers():
    """Frontier: GCD pair in one package (200 GB/s x 0.8 = 160), GCDs of one node over xGMI links (50 GB/s x 0.8
    = 40), Slingshot 12.5 GB/s per GCD x 0.85 = 10.6 GB/s. TP8 fans out 2 x 4 x 1; DP6 at stride 8 crosses
    only the network."""
    topo = topology_for("mi250x-gcd", "mi250x-frontier-node")
    assert [lv.size for lv in topo.levels] == [2, 8, np.inf]
    bw = [lv.tier.bandwidth_bytes_per_s for lv in topo.levels]
    assert bw == [pytest.approx(160e9), pytest.approx(40e9), pytest.approx(12.5e9 * 0.85)]
    assert [float(k) for k in fanouts(topo, [(8, 1)])] == [2, 4, 1]
    assert [float(k) for k in fanouts(topo, [(6, 8)])] == [1, 1, 6]
    assert [float(k) for k in fanouts(topo, [(4, 2)])] == [1, 4, 1]  # stride 2 skips the in-package link


def test_hierarchical_all_reduce_equals_the_library_two_tier_form():
    """Catalogue 6: Σ_tier volume/β. For 64 ranks on 8 DGX nodes and a 1 GB message, our per-tier composition
    (all-reduce of M inside the node, then of M/8 across 8 nodes) equals the library's hierarchical algorithm
    (reduce-scatter + inter all-reduce of M/8 + all-gather). Hand (bandwidth terms): 2·7/8·1e9/234e9 +
    2·7/8·1.25e8/22.5e9 = 7.48 ms + 9.72 ms."""
    topo = topology_for("a100-sxm-80gb", "dgx-a100")
    ours = float(group_collective_s("all_reduce", 1e9, topo, [(64, 1)]))
    lib = float(collective_time("all_reduce", 1e9, 64, intra=topo.levels[0].tier, inter=topo.levels[1].tier,
                                ranks_per_node=8, algorithm="hierarchical"))
    assert ours == pytest.approx(lib, rel=1e-6)
    assert ours == pytest.approx(2 * 7 / 8 * 1e9 / 234e9 + 2 * 7 / 8 * 1.25e8 / 22.5e9, rel=0.01)


def test_all_to_all_over_tiers_is_paced_by_the_slowest():
    """16 ranks over 2 DGX nodes, 1 GB per rank: 7/16 of it goes over NVLink, 8/16 over the NIC, concurrently:
    8 x 62.5 MB / 22.5 GB/s + 8 x 5 us / 8 (the 8 ranks of a node start their remote sends together) = 22.2 ms
    (the NVLink share takes 1.9 ms). The same formula as the serving path's two-tier all-to-all."""
    topo = topology_for("a100-sxm-80gb", "dgx-a100")
    t = float(group_collective_s("all_to_all", 1e9, topo, [(16, 1)]))
    assert t == pytest.approx(8 * 1e9 / 16 / 22.5e9 + 8 * 5e-6 / 8, rel=1e-6)
    nv, ib = topo.levels[0].tier, topo.levels[1].tier
    assert t == pytest.approx(float(collective_time("all_to_all", 1e9, 16, intra=nv, inter=ib, ranks_per_node=8)))


def test_p2p_takes_the_first_tier_holding_both_ranks():
    topo = topology_for("h100-sxm", "dgx-h100")
    nv, ib = topo.levels[0].tier, topo.levels[1].tier
    assert float(p2p_s(1e8, topo, 4)) == pytest.approx(nv.latency_s + 1e8 / nv.bandwidth_bytes_per_s)
    assert float(p2p_s(1e8, topo, 8)) == pytest.approx(ib.latency_s + 1e8 / ib.bandwidth_bytes_per_s)


def test_tp_collectives_come_from_the_operator_graph():
    """Megatron TP: per dense layer two all-reduces of tokens·d·b_a in the forward; for Llama-3.1-8B at micro-batch
    2 x 4096 tokens, TP8 on one H100 node: 8192 x 4096 x 2 B = 67.1 MB each."""
    arch = load_architecture("llama-3.1-8b")
    c = Candidates.from_columns(tp=8, micro_batch=2, seq_len=4096, global_batch=2)
    ops = forward_arrays(arch, c, TrainingSettings())
    topo = topology_for("h100-sxm", "dgx-h100")
    times = comm.layer_collective_s(ops, c, topo)
    rows = [i for i, op in enumerate(ops.ops) if op.name == "tp_all_reduce"]
    assert len(rows) == 2 and all(ops.counts[i] == 32 for i in rows)  # after attention and after the MLP
    expected = float(group_collective_s("all_reduce", 8192 * 4096 * 2, topo, [(8, 1)]))
    for i in rows:
        assert ops.comm_bytes[i, 0] == pytest.approx(8192 * 4096 * 2)
        assert times[i, 0] == pytest.approx(expected)
    logits = [i for i, op in enumerate(ops.ops) if op.name == "logits_all_gather"]
    assert times[logits[0], 0] == 0  # vocab-parallel cross-entropy: no logits gather in training


def test_dp_volumes_by_zero_stage_and_compression():
    """DP over 16 ranks on 2 DGX nodes, 1e9 parameters per GPU at 2 B: ZeRO-0..2 all-reduce the gradients
    (2·P·b of ring traffic), ZeRO-3 reduce-scatters them and gathers the weights twice per micro-batch
    (3·P·b at one micro-batch): 1.5x the all-reduce. Compression c = 32 with 17.4% warm-up cuts the gradient
    volume 5x."""
    topo = topology_for("a100-sxm-80gb", "dgx-a100")
    c = Candidates.from_columns(dp=16, zero=np.array([0.0, 1.0, 2.0, 3.0]), global_batch=16)
    sync, gather = comm.dp_sync_s(c, topo, np.full(4, 1e9), np.zeros(4), TrainingSettings())
    assert sync[0] == sync[1] == sync[2]
    assert gather[:3].tolist() == [0.0, 0.0, 0.0]
    assert (sync[3] + gather[3]) / sync[0] == pytest.approx(1.5, rel=0.01)
    one = Candidates.from_columns(dp=16, zero=0, global_batch=16)
    slow, _ = comm.dp_sync_s(one, topo, 1e9, 0.0, TrainingSettings())
    fast, _ = comm.dp_sync_s(one, topo, 1e9, 0.0, TrainingSettings(compression_ratio=32, compression_warmup=0.1742))
    assert float(slow / fast) == pytest.approx(5.0, rel=0.01)


def test_seed_c13_ulysses_volume_constant_ring_hidden_when_blocks_are_large():
    """SEED-C13: Ulysses all-to-all volume per device, (N−1)/N · 4·(S/N)·d·b, stays within (N−1)/N of constant
    when S/N is fixed; ring attention's K/V hand-offs hide behind block compute for long blocks on NVLink and
    turn communication-bound when S/N is small on a slow link."""
    topo = topology_for("h100-sxm", "dgx-h100")
    times = [float(comm.ulysses_s(Candidates.from_columns(sp=n, seq_len=4096 * n, global_batch=1), topo,
                                  3 * 4096, 4096)) for n in (2, 4, 8)]
    assert max(times) / min(times) < 2.0  # the sequence grew 4x
    c = Candidates.from_columns(sp=8, seq_len=8 * 32768, global_batch=1)
    assert float(comm.ring_exposed_s(c, topo, 2048, attention_s=2.0)) == 0.0  # 8 blocks of 0.25 s hide the hops
    eth = Topology((Level("node", 1, Tier(1e9, 1e-6)), Level("network", np.inf, Tier(1.25e9, 25e-6))))
    short = Candidates.from_columns(sp=8, seq_len=8 * 512, global_batch=1)
    assert float(comm.ring_exposed_s(short, eth, 2048, attention_s=1e-3)) > 0


def _bert_large():
    """BERT-Large shapes (24 layers, 1024 hidden, 16 heads, 4096 FFN, 30528 vocabulary) as a GPT-style config."""
    return gpt("bert-large", 24, 1024, 16, vocab=30528, seq=512)


def test_seed_b35_one_bit_adam_baseline_is_tcp_bound():
    """SEED-B35 (1-bit Adam): BERT-Large data-parallel on 256 V100s over TCP spends ≥ 80% (±10 points) of the step
    in communication. Setup (external, verify): 64 nodes of 4 V100 joined by NVLink, one 40 Gb Ethernet link per
    node (4 GPUs share it), batch 4,096 sequences of 128 tokens, fp16 gradients, no overlap. Then SEED-A22's
    arithmetic: the 5x compressed run is speedup_from_comm_reduction(share, 5) faster, ≈ 3.3x."""
    eth = Tier(40e9 / 8 * 0.8 / 4, 25e-6)
    v100 = load_device("v100-sxm2-32gb")
    topo = Topology((Level("node", 4, Tier(150e9 * 0.75, 0.7e-6)), Level("network", np.inf, eth)))
    kw = dict(seq_len=128, global_batch=4096, micro_batch=16, recompute="none", zero=0, dp_overlap=0.0,
              grad_bytes=2.0, topology=topo)
    base = estimate_training(_bert_large(), v100, 256, **kw)
    share = base.breakdown_s["dp_comm_s"] / base.step_time_s
    assert 0.70 <= share <= 0.95
    onebit = estimate_training(_bert_large(), v100, 256, compression_ratio=32, compression_warmup=0.174, **kw)
    gain = base.step_time_s / onebit.step_time_s
    assert gain == pytest.approx(speedup_from_comm_reduction(share, 5.0), rel=0.02)
    assert 2.5 <= gain <= 4.0


def test_seed_c11_holmes_slow_link_placement():
    """SEED-C11 (Holmes): two RDMA islands of 16 A100 joined only by 25 Gb Ethernet (8 GPUs per NIC). Step time:
    all-RDMA <= PP across the Ethernet (only activations cross it) << DP across it (gradients cross it).
    Llama-2-7B, TP8, 16 sequences of 4096 tokens per step."""
    node = topology_for("a100-sxm-80gb", "dgx-a100")
    ib = node.levels[1]
    eth = Tier(25e9 / 8 * 0.8 / 8, 25e-6)
    islands = Topology((node.levels[0], Level("island", 16, ib.tier), Level("ethernet", np.inf, eth)))
    kw = dict(seq_len=4096, global_batch=16, micro_batch=1, recompute="none", zero=1)
    rdma = estimate_training("llama-2-7b", "a100-sxm-80gb", 32, tp=8, pp=2, topology=node, **kw)
    holmes = estimate_training("llama-2-7b", "a100-sxm-80gb", 32, tp=8, pp=2, topology=islands, **kw)
    dp_eth = estimate_training("llama-2-7b", "a100-sxm-80gb", 32, tp=8, pp=1, topology=islands, **kw)
    assert rdma.step_time_s <= holmes.step_time_s
    assert dp_eth.step_time_s > 2 * holmes.step_time_s


def test_scale_out_override_shares_the_nic():
    """--scale-out-link replaces the NIC; GPUs per NIC default to devices per node / NICs per node."""
    topo = topology_for("a100-sxm-80gb", "dgx-a100", scale_out_link="ethernet-25g", gpus_per_nic=8)
    assert topo.levels[-1].tier.bandwidth_bytes_per_s == pytest.approx(3.125e9 * 0.8 / 8)
    assert get_node("dgx-a100").nics_per_node == 8


@settings(max_examples=10, deadline=None)
@given(scale=st.floats(1.0, 20.0), pp=st.sampled_from([1, 2]), zero=st.sampled_from([0, 3]))
def test_more_bandwidth_never_slower(scale, pp, zero):
    """Scaling every tier's bandwidth up never lengthens the step."""
    base = topology_for("h100-sxm", "dgx-h100")

    def faster(topo, k):
        return Topology(tuple(Level(lv.name, lv.size, Tier(lv.tier.bandwidth_bytes_per_s * k, lv.tier.latency_s),
                                    lv.link) for lv in topo.levels))
    kw = dict(tp=4, pp=pp, seq_len=2048, global_batch=32, recompute="none", zero=zero, dp_overlap=0.0)
    slow = estimate_training("llama-3.1-8b", "h100-sxm", 32, topology=base, **kw)
    quick = estimate_training("llama-3.1-8b", "h100-sxm", 32, topology=faster(base, scale), **kw)
    assert quick.step_time_s <= slow.step_time_s * (1 + 1e-9)


def test_ulysses_and_ring_by_hand():
    """Ulysses, SP = 4 inside one H100 node, micro-batch 1 x 32768 tokens, Llama-3.1-8B widths (Q+K+V = 6144,
    O = 4096), 2 B: all-to-alls of 8192 x 6144 x 2 = 100.7 MB and 8192 x 4096 x 2 = 67.1 MB per rank, each
    (N−1)·α + (N−1)/N·M/β. Ring, 1024 elements of K and V per token: a block of 8192 x 1024 x 2 = 16.8 MB per
    hop; with 4 ms of attention per pass (1 ms per block) the 3 hops are hidden; with 0.1 ms they are exposed by
    3 x (t_hop − 0.025 ms)."""
    topo = topology_for("h100-sxm", "dgx-h100")
    nv = topo.levels[0].tier
    c = Candidates.from_columns(sp=4, seq_len=32768, global_batch=1)

    def a2a(m):
        return 3 * nv.latency_s + 3 / 4 * m / nv.bandwidth_bytes_per_s
    assert float(comm.ulysses_s(c, topo, 6144, 4096)) == pytest.approx(a2a(8192 * 6144 * 2) + a2a(8192 * 4096 * 2))
    hop = nv.latency_s + 8192 * 1024 * 2 / nv.bandwidth_bytes_per_s
    assert float(comm.ring_exposed_s(c, topo, 1024, attention_s=4e-3)) == 0.0
    assert float(comm.ring_exposed_s(c, topo, 1024, attention_s=1e-4)) == pytest.approx(3 * (hop - 2.5e-5))


def test_pipeline_hand_off_by_hand():
    """PP p2p: micro-batch 2 x 4096 tokens x 8192 hidden x 2 B split over TP 8 = 16.8 MB per hand-off; stages are
    tp·sp·dp = 8 x 1 x 2 = 16 ranks apart, so it crosses the InfiniBand tier: α + M/β."""
    topo = topology_for("h100-sxm", "dgx-h100")
    ib = topo.levels[1].tier
    c = Candidates.from_columns(tp=8, pp=4, dp=2, micro_batch=2, seq_len=4096, global_batch=16)
    assert float(comm.pp_p2p_s(c, topo, 8192)) == pytest.approx(ib.latency_s + 2 * 4096 * 8192 * 2 / 8
                                                                 / ib.bandwidth_bytes_per_s)


def test_expert_parallel_all_to_all_and_expert_sharding():
    """EP for Mixtral-8x7B, TP1 x EP8 over one H100 node: the graph's dispatch+combine all-to-all runs over the
    8-rank EP group on NVLink; expert weights are split 8 ways (each rank holds one of the 8 experts) while the
    attention weights are whole on every rank."""
    arch = load_architecture("mixtral-8x7b")
    c = Candidates.from_columns(tp=1, ep=8, dp=8, seq_len=4096, global_batch=8)
    ops = forward_arrays(arch, c, TrainingSettings())
    topo = topology_for("h100-sxm", "dgx-h100")
    times = comm.layer_collective_s(ops, c, topo)
    row = next(i for i, op in enumerate(ops.ops) if op.name == "ep_dispatch")
    assert ops.comm_bytes[row, 0] > 0
    assert times[row, 0] == pytest.approx(float(group_collective_s("all_to_all", ops.comm_bytes[row, 0], topo,
                                                                   [(1, 1), (8, 1)])))
    experts = next(i for i, op in enumerate(ops.ops) if op.name == "experts")
    qkv = next(i for i, op in enumerate(ops.ops) if op.name == "qkv_proj")
    assert ops.resident_bytes[experts, 0] == pytest.approx(3 * 4096 * 14336 * 2)  # one expert per rank
    assert ops.resident_bytes[qkv, 0] == pytest.approx(4096 * (4096 + 2 * 1024) * 2)
