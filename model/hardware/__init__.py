"""Hardware: devices, links and node types from hardware_db/ (see docs/hardware_db.md)."""

from model.hardware.db import (
    device_ids,
    get_link,
    get_node,
    list_devices,
    list_links,
    list_nodes,
    load_device,
    register_device,
    unregister_device,
    validate_all,
)
from model.hardware.schema import Device, Link, NodeType

__all__ = [
    "Device", "Link", "NodeType", "device_ids", "get_link", "get_node", "list_devices", "list_links",
    "list_nodes", "load_device", "register_device", "unregister_device", "validate_all",
]
