"""A training cluster: GPUs, their network tiers (`model.placement.topology`) and the host resources offload uses."""

from __future__ import annotations

from dataclasses import dataclass

from model.errors import RidgeplanError
from model.hardware.db import get_node, load_device
from model.hardware.schema import Device, NodeType
from model.placement.topology import Topology, topology_for


DEFAULT_HOST = "host-epyc-7742"
DEFAULT_NVME = "nvme-gen4-ssd"


@dataclass(frozen=True)
class Cluster:
    device: Device
    topology: Topology
    node: NodeType | None = None
    host_memory_bytes_per_s: float = 0.0  # CPU memory bandwidth of one node (CPU Adam is bound by it)
    nvme_bytes_per_s: float = 0.0  # sequential bandwidth of one NVMe drive
    assumptions: tuple[str, ...] = ()

    @property
    def gpus_per_node(self) -> float:
        return float(self.node.devices_per_node) if self.node else min(self.topology.node_size, 8.0)

    @property
    def price_usd_per_gpu_hour(self) -> float | None:
        return self.device.price.usd_per_hour if self.device.price else None


def cluster_for(device: Device | str, node: NodeType | str | None = None, *, scale_out_link: str | None = None,
                gpus_per_nic: float | None = None, topology: Topology | None = None) -> Cluster:
    """A Cluster from hardware_db ids: the topology plus the node's host CPU and one NVMe drive type."""
    dev = load_device(device)
    nd = get_node(node) if isinstance(node, str) else node
    if nd is not None and nd.device != dev.id:
        raise RidgeplanError("node", f"{nd.id} holds {nd.device} GPUs, not {dev.id}", [nd.device])
    topo = topology or topology_for(dev, nd, scale_out_link=scale_out_link, gpus_per_nic=gpus_per_nic)
    notes = [f"network tiers: {topo.describe()}"]
    host_id = (nd.host_device if nd and nd.host_device else DEFAULT_HOST)
    host = load_device(host_id)
    if not (nd and nd.host_device):
        notes.append(f"host CPU memory assumed to be one {host.name} ({host.memory.bandwidth_bytes_per_s / 1e9:.0f} GB/s)")
    nvme = load_device(DEFAULT_NVME)
    return Cluster(dev, topo, nd, host.memory.bandwidth_bytes_per_s, nvme.memory.bandwidth_bytes_per_s, tuple(notes))
