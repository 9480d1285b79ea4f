"""Blackwell Ultra devices and the NVL72 node types, checked against the figures their sources state."""

from __future__ import annotations

import pytest

from model.hardware.db import get_node, load_device
from model.precision import number_format


@pytest.mark.parametrize("ident, fp4, fp8, bf16, capacity, tdp, domain", [
    # HGX B300: 108 PF dense FP4, 72 PF sparse FP8, 36 PF sparse BF16 for 8 GPUs; 288 GB; 1.1 kW
    ("b300", 13.5e15, 4.5e15, 2.25e15, 288e9, 1100, 8),
    # GB300 NVL72: 1,080 PF dense FP4, 720 PF sparse FP8, 360 PF sparse BF16 for 72 GPUs; 288 GB; 1.4 kW
    ("gb300", 15e15, 5e15, 2.5e15, 288e9, 1400, 72),
    # HGX B200: 144 PF sparse FP4 -> 9 PF dense per GPU; GB200 NVL72: 1,440 PF sparse -> 10 PF dense
    ("b200", 9e15, 4.5e15, 2.25e15, 180e9, 1000, 8),
    ("gb200", 10e15, 5e15, 2.5e15, 186e9, 1200, 72),
])
def test_blackwell_figures(ident, fp4, fp8, bf16, capacity, tdp, domain):
    d = load_device(ident)
    assert (d.peak("fp4"), d.peak("fp8"), d.peak("bf16")) == (fp4, fp8, bf16)
    assert d.memory.capacity_bytes == capacity and d.memory.bandwidth_bytes_per_s == 8e12
    assert d.power.tdp_w == tdp and d.scale_up.max_domain_devices == domain


def test_blackwell_ultra_raises_fp4_by_half_and_cuts_int8():
    assert load_device("gb300").peak("fp4") == 1.5 * load_device("gb200").peak("fp4")
    assert load_device("b300").peak("fp4") == 1.5 * load_device("b200").peak("fp4")
    assert load_device("b300").peak("int8") < 0.05 * load_device("b200").peak("int8")


def test_nvl72_nodes_are_one_domain():
    for node, device in (("gb200-nvl72", "gb200"), ("gb300-nvl72", "gb300")):
        n = get_node(node)
        assert n.devices_per_node == 72 and n.device == device and n.scale_up_topology == "switch"
    assert get_node("dgx-b300").devices_per_node == 8


def test_fp4_formats_carry_their_block_scales():
    """NVFP4: 4-bit e2m1 + one fp8 scale per 16 = 4.5 bits; MXFP4: one e8m0 scale per 32 = 4.25 bits; both run on
    the device's fp4 tensor-core peak."""
    assert number_format("nvfp4").bits_per_element == 4 + 8 / 16
    assert number_format("mxfp4").bits_per_element == 4 + 8 / 32
    assert number_format("nvfp4").compute_dtype == number_format("mxfp4").compute_dtype == "fp4"


def test_b200_fit_checks_use_the_driver_reported_total():
    """nvidia-smi reports 183,359 MiB per B200 (marketed 180 GB): 183,359 x 2^20 = 192,265,846,784 bytes, of which
    vLLM's 90% is 173.0 GB."""
    m = load_device("b200").memory
    assert m.runtime_total_bytes == 183_359 * 2**20 == 192_265_846_784
    assert m.total_bytes == m.runtime_total_bytes and m.capacity_bytes == 180e9
