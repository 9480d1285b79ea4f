"""Which prefill pools may hand their KV to which decode pools, and what the hand-off costs.

A prefill instance and a decode instance pair only when
- they run the same model with the same weights format (the KV was computed by the weights that decode with it),
- they store the same KV format (no conversion is offered: none is modelled or costed),
- they come from the same vendor (no production engine hands KV between NVIDIA and AMD), and
- a link in hardware_db reaches from one to the other: both GPUs' scale-out NICs (pools across nodes), or the
  node's own scale-up/PCIe link when both pools are the same GPU type in one node.
Candidates are grouped by that key; every prefill and decode candidate of a group pairs with every other, so the
program needs one pair variable per (slice group, pair group), not one per candidate pair.

The KV-transfer time of a pair is model.serving.disagg.kv_transfer_s on the pair itself (bytes at the decode side's
KV format over the prefill side's link). Within a group both are fixed by the prefill candidate (same KV format,
same link class), so the prefill capacities the program uses priced exactly the hand-off each pair reports.
"""

from __future__ import annotations

from model.planner.candidates import Candidate
from model.serving.disagg import DisaggPlan, kv_transfer_s


def link_class(candidate: Candidate, placement: str) -> str:
    """'scale-out' when the GPU has a NIC in hardware_db and the pools sit on different nodes; else the pools
    must share a node, which only the same GPU type can do (the class is the GPU id)."""
    if placement == "across_nodes" and candidate.deployment.device.scale_out is not None:
        return "scale-out"
    return f"node:{candidate.gpu}"


def pair_key(candidate: Candidate, placement: str) -> tuple[str, str, str, str, str]:
    """(model, weights format, KV format, vendor, link class): prefill and decode candidates with equal keys pair."""
    d = candidate.deployment
    return (candidate.model, d.precision.weights, d.precision.kv, d.device.vendor, link_class(candidate, placement))


def describe_key(key: tuple[str, ...]) -> str:
    model, w, kv, vendor, link = key
    return f"{model} W{w}/KV{kv} {vendor} over {link}"


def pair_transfer_s(prefill: Candidate, decode: Candidate, input_len, placement: str):
    """Seconds to hand one prompt's KV from `prefill` to `decode` (per prompt length)."""
    where = "same_node" if link_class(prefill, placement).startswith("node:") else placement
    return kv_transfer_s(DisaggPlan(prefill.deployment, 1, decode.deployment, 1, placement=where), input_len)


def compatible(prefill: Candidate, decode: Candidate, placement: str) -> bool:
    return prefill.role == "prefill" and decode.role == "decode" and \
        pair_key(prefill, placement) == pair_key(decode, placement)
