"""A cluster as nested network tiers, and collectives over groups that span several of them.

A `Topology` is a list of levels from the fastest to the slowest: each level is a domain of `size` ranks
joined by one link tier (per-rank achievable bandwidth per direction and per-hop latency). A DGX node is
[NVLink x 8, InfiniBand x inf]; a Frontier node is [GCD pair over in-package xGMI x 2, node xGMI x 8,
Slingshot x inf]; two RDMA islands joined by Ethernet add an [island x n] level before the Ethernet one.

A communication group of n ranks placed with a stride s (see the rank order in `config`) has, inside a
level of size D, min(n, max(1, D/s)) members; the ratio of member counts between consecutive levels is the
group's fan-out on that tier. Collectives over several tiers are hierarchical (Σ_tier volume_tier / β_tier), with
the library's one multi-tier formula, `model.roofline.collectives.hierarchical_time`, which the serving path's
two-tier collectives use too.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from model.errors import RidgeplanError
from model.hardware.db import get_link, get_node, load_device
from model.hardware.schema import Device, NodeType
from model.roofline.collectives import Tier, collective_time, hierarchical_time


@dataclass(frozen=True)
class LinkTiers:
    """Scale-up (inside a node) and scale-out (across nodes) tiers of one device type, and the domain size."""

    intra: Tier
    inter: Tier | None
    domain: int
    intra_name: str
    inter_name: str


def link_tiers(device: Device, node: NodeType | None = None, scale_up_bus_efficiency: float = 0.0,
               switch_reduce_bus_efficiency: float = 0.0, switch_reduce_latency_s: float = 0.0,
               custom_bus_efficiency: float = 0.0, custom_two_shot_latency_s: float = 0.0,
               custom_limits: tuple = (), nccl_base_latency_s: float = 0.0) -> LinkTiers:
    """Achievable per-direction bandwidth (nominal x bus efficiency) and per-hop latency of each tier.

    `scale_up_bus_efficiency` > 0 (a calibrated Efficiency's) replaces the scale-up link file's bus efficiency;
    `switch_reduce_bus_efficiency` > 0 (Efficiency.nvls_bus_efficiency) gives the scale-up tier an in-switch
    all-reduce at that share of the nominal bandwidth (0: none) with start-up `switch_reduce_latency_s`;
    `custom_bus_efficiency` > 0 (Efficiency.custom_ar_bus_efficiency) gives it the engine's custom all-reduce at that
    share, with the two-shot start-up, the engine's size rule (`custom_limits`, collectives.Tier) and NCCL's own
    start-up above it (`nccl_base_latency_s`)."""
    def tier(attachment, fallback_name: str) -> tuple[Tier, str]:
        link = get_link(attachment.link)
        scale_up = fallback_name == "scale-up"
        bus = scale_up_bus_efficiency if (scale_up and scale_up_bus_efficiency > 0) else link.bus_efficiency
        nominal = attachment.bandwidth_bytes_per_s_per_direction
        switch = nominal * switch_reduce_bus_efficiency if scale_up else 0.0
        custom = nominal * custom_bus_efficiency if scale_up and custom_limits else 0.0
        return Tier(nominal * bus, link.latency_s, switch, switch_reduce_latency_s, custom,
                    custom_two_shot_latency_s if custom else 0.0, tuple(custom_limits) if custom else (),
                    nccl_base_latency_s if custom else 0.0), link.name

    if node is not None and node.scale_up_topology == "pcie" or device.scale_up is None:
        if device.host_link is None:
            intra, intra_name = Tier(1e9, 1e-5), "none (assumed 1 GB/s)"
        else:
            intra, intra_name = tier(device.host_link, "pcie")
            intra_name += " (no scale-up link: peer traffic over PCIe)"
        domain = node.devices_per_node if node else 8
    else:
        intra, intra_name = tier(device.scale_up, "scale-up")
        domain = node.devices_per_node if node else (device.scale_up.max_domain_devices or 8)
    inter, inter_name = (tier(device.scale_out, "scale-out") if device.scale_out else (None, "none"))
    return LinkTiers(intra, inter, domain, intra_name, inter_name)


def efficiency_tiers(device: Device, node: NodeType | None, eff) -> LinkTiers:
    """`link_tiers` with a (calibrated) Efficiency's collective parameters: scale-up bus efficiency, in-switch
    all-reduce, and the engine's custom all-reduce (getattr: a planner context may lack them)."""
    limits = eff.custom_all_reduce_limits() if hasattr(eff, "custom_all_reduce_limits") else ()
    return link_tiers(device, node, float(getattr(eff, "scale_up_bus_efficiency", 0.0)),
                      float(getattr(eff, "nvls_bus_efficiency", 0.0)), float(getattr(eff, "nvls_latency_s", 0.0)),
                      float(getattr(eff, "custom_ar_bus_efficiency", 0.0)),
                      float(getattr(eff, "custom_ar_two_shot_s", 0.0)), limits,
                      float(getattr(eff, "nccl_base_s", 0.0)))


@dataclass(frozen=True)
class Level:
    name: str
    size: float  # ranks inside one domain of this level (np.inf for the outermost network)
    tier: Tier
    link: str = ""


@dataclass(frozen=True)
class Topology:
    levels: tuple[Level, ...]

    def __post_init__(self) -> None:
        sizes = [lv.size for lv in self.levels]
        if not self.levels or sizes != sorted(sizes):
            raise RidgeplanError("topology", "levels must run from the smallest domain to the largest")

    @property
    def node_size(self) -> float:
        """Ranks that share the scale-up fabric (the largest finite level below the network)."""
        finite = [lv.size for lv in self.levels if np.isfinite(lv.size)]
        return finite[-1] if finite else np.inf

    def describe(self) -> str:
        parts = []
        for lv in self.levels:
            size = "all" if not np.isfinite(lv.size) else f"{int(lv.size)}"
            bw = float(np.max(lv.tier.bandwidth_bytes_per_s))
            parts.append(f"{lv.name} ({size} ranks, {lv.link or 'link'}, {bw / 1e9:.1f} GB/s per rank)")
        return " < ".join(parts)


def _tier(link_id: str, bandwidth_bytes_per_s: float | None = None, sharing: float = 1.0) -> Tier:
    link = get_link(link_id)
    nominal = bandwidth_bytes_per_s if bandwidth_bytes_per_s is not None else link.bandwidth_bytes_per_s_per_direction
    return Tier(nominal * link.bus_efficiency / sharing, link.latency_s)


def topology_for(device: Device | str, node: NodeType | str | None = None, *, scale_out_link: str | None = None,
                 gpus_per_nic: float | None = None) -> Topology:
    """The tiers a training job sees on `device` GPUs in `node`s (or the device's own scale-up domain).

    `scale_out_link` replaces the device's scale-out NIC (for example "ethernet-25g" for TCP clusters);
    `gpus_per_nic` GPUs then share one such link (default: devices per node / NICs per node, else 1).
    """
    dev = load_device(device)
    nd = get_node(node) if isinstance(node, str) else node
    tiers = link_tiers(dev, nd)
    levels: list[Level] = []
    node_link = nd.scale_up_link if nd is not None else None
    own_domain = dev.scale_up.max_domain_devices if dev.scale_up is not None else None
    if (nd is not None and node_link and dev.scale_up is not None and node_link != dev.scale_up.link
            and own_domain and own_domain < nd.devices_per_node):
        # three tiers (Frontier): the device's own scale-up domain, then the node's slower fabric
        levels.append(Level("package", float(own_domain), tiers.intra, dev.scale_up.link))
        levels.append(Level("node", float(nd.devices_per_node), _tier(node_link), node_link))
    else:
        levels.append(Level("node", float(tiers.domain), tiers.intra, tiers.intra_name))
    if scale_out_link is not None:
        sharing = gpus_per_nic or ((nd.devices_per_node / nd.nics_per_node) if nd and nd.nics_per_node else 1.0)
        levels.append(Level("network", np.inf, _tier(scale_out_link, sharing=sharing), scale_out_link))
    elif tiers.inter is not None:
        levels.append(Level("network", np.inf, tiers.inter, tiers.inter_name))
    return Topology(tuple(levels))


def host_tier(device: Device) -> Tier:
    """The device's host link (PCIe / C2C) as a tier, for offload traffic."""
    if device.host_link is None:
        raise RidgeplanError("gpu", f"{device.name} has no host link in its hardware file; offload cannot be modelled")
    return _tier(device.host_link.link, device.host_link.bandwidth_bytes_per_s_per_direction)


# ---------------------------------------------------------------------------------------------------------
# groups over levels

def fanouts(topology: Topology, dims: list[tuple[np.ndarray | float, np.ndarray | float]]) -> list[np.ndarray]:
    """Per level, the group's fan-out k_i (members at level i / members at level i-1); Π k_i = group size.

    `dims` lists the group's factors as (count, stride) pairs: a TP group is [(tp, 1)], a DP group
    [(dp, tp*sp)], an EP group of tp ranks times ep/tp data-parallel replicas [(tp, 1), (ep/tp, tp*sp)].
    """
    prev = 1.0
    out = []
    for lv in topology.levels:
        members = 1.0
        for count, stride in dims:
            count = np.asarray(count, dtype=float)
            inside = count if not np.isfinite(lv.size) else np.clip(lv.size / np.asarray(stride, float), 1, count)
            members = members * np.floor(inside + 1e-9)
        out.append(np.maximum(members / prev, 1.0))
        prev = members
    return out


def group_collective_s(kind: str, message_bytes, topology: Topology, dims) -> np.ndarray:
    """Seconds for one collective over a group placed by `dims`, hierarchical over the tiers it spans.

    all_reduce / all_gather / reduce_scatter: tier i works on M / Π_{j<i} k_j with the library's single-tier
    algorithm (ring, tree or one-shot, whichever is fastest); the tiers run one after another.
    all_to_all: each rank sends M/n to every peer; the peers reached first at tier i take that tier's link,
    and the tiers run concurrently (the slowest one sets the time). p2p: one hop over the first tier that
    holds both ranks.
    """
    return hierarchical_time(kind, message_bytes, fanouts(topology, dims), [lv.tier for lv in topology.levels])


def p2p_s(message_bytes, topology: Topology, stride) -> np.ndarray:
    """One point-to-point send between ranks `stride` apart, over the first tier whose domain holds both."""
    m = np.asarray(message_bytes, dtype=float)
    s = np.asarray(stride, dtype=float)
    t = np.full(np.broadcast_shapes(m.shape, s.shape), np.nan)
    for lv in topology.levels:
        inside = np.isnan(t) & (s < lv.size)
        t = np.where(inside, collective_time("p2p", m, 2, intra=lv.tier), t)
    return np.nan_to_num(t, nan=0.0)


def check_span(topology: Topology, gpus) -> None:
    """A job larger than the scale-up domain needs a scale-out level."""
    if np.any(np.asarray(gpus) > topology.levels[-1].size):
        raise RidgeplanError("gpus", f"{int(np.max(gpus))} GPUs span nodes but the device has no scale-out link "
                             f"(domain of {int(topology.levels[-1].size)})", hint="pass --node or a device with a NIC")
