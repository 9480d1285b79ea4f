"""hardware_db: every file validates; numbers that planning depends on; errors name the field."""

from __future__ import annotations

import textwrap

import pytest

from model.errors import RidgeplanError, UnknownNameError
from model.hardware import device_ids, get_link, list_devices, load_device, register_device, unregister_device, validate_all

REQUIRED = [
    "a100-sxm-40gb", "a100-sxm-80gb", "a100-pcie-40gb", "a100-pcie-80gb", "h100-sxm", "h100-pcie", "h100-nvl", "h200",
    "h20", "h800", "a800", "b200", "gb200", "l4", "l40s", "a10g", "rtx-a6000", "rtx-4090", "rtx-3090", "v100-sxm2-32gb",
    "t4", "mi250x-gcd", "mi300x", "mi325x", "gaudi3", "tpu-v5e", "tpu-v5p",
]
RESEARCH_DEVICES = {"cpu": "host CPU with DRAM", "ssd": "NVMe SSD", "csd": "computational storage drive", "pim": "HBM-PIM"}


def test_every_file_validates_and_references_resolve():
    assert validate_all() == []


@pytest.mark.parametrize("ident", REQUIRED)
def test_required_devices_present_with_sources(ident):
    d = load_device(ident)
    assert d.id == ident
    assert d.peak_flop_per_s, "a GPU needs at least one peak"
    for section in ("peak_flop_per_s", "memory"):
        assert section in d.sources


@pytest.mark.parametrize("kind", sorted(RESEARCH_DEVICES))
def test_non_gpu_devices_for_research_systems(kind):
    assert list_devices(kind), f"need a {RESEARCH_DEVICES[kind]} device"


def test_csd_and_pim_restrict_compute():
    csd = list_devices("csd")[0]
    pim = list_devices("pim")[0]
    assert csd.can_run("attention") and not csd.can_run("gemm")
    assert pim.can_run("gemv") and not pim.can_run("attention")
    assert csd.memory.external_bandwidth_bytes_per_s is not None
    # bank-internal bandwidth exceeds what crosses the pins: the point of processing in memory
    assert pim.memory.bandwidth_bytes_per_s > 2 * pim.memory.external_bandwidth_bytes_per_s


def test_h100_reference_numbers():
    # ../shared/validation/REFERENCE.md section 4: 989 TFLOP/s BF16 dense, 1,979 FP8, 3.35 TB/s, 80 GB, 450 GB/s/dir
    d = load_device("h100-sxm")
    assert d.peak("bf16") == pytest.approx(989.4e12, rel=1e-3)
    assert d.peak("fp8") == pytest.approx(1978.9e12, rel=1e-3)
    assert d.memory.bandwidth_bytes_per_s == pytest.approx(3.35e12)
    assert d.memory.capacity_bytes == pytest.approx(80e9)
    assert d.scale_up.bandwidth_bytes_per_s_per_direction == pytest.approx(450e9)


@pytest.mark.parametrize("ident, ridge", [("h100-sxm", 295), ("h200", 206), ("a100-sxm-80gb", 153)])
def test_ridge_points_match_rules_of_thumb(ident, ridge):
    # REFERENCE.md section 5: ridge = peak FLOP/s / bytes/s: H100 ~295, H200 ~206, A100 ~153 (BF16)
    assert load_device(ident).ridge_flop_per_byte["bf16"] == pytest.approx(ridge, rel=0.02)


def test_absent_dtype_means_unsupported():
    a100 = load_device("a100-sxm-80gb")
    assert not a100.supports("fp8")
    with pytest.raises(RidgeplanError) as err:
        a100.peak("fp8")
    assert "fp8" in str(err.value) and "bf16" in str(err.value)
    assert not load_device("v100-sxm2-32gb").supports("bf16")


def test_mi250x_is_per_gcd_and_says_so():
    d = load_device("mi250x-gcd")
    assert "GCD" in d.unit_note
    assert d.memory.capacity_bytes == pytest.approx(64e9, rel=0.05)  # half of the 128 GB package


def test_consumer_fp16_peak_is_fp32_accumulate():
    # GeForce parts run FP16 with FP32 accumulate at half the FP16-accumulate rate; the planner uses the former.
    d = load_device("rtx-4090")
    assert d.peak("fp16_acc16") == pytest.approx(2 * d.peak("fp16"), rel=0.05)


def test_every_priced_device_has_date_and_source():
    for d in list_devices():
        if d.price:
            assert d.price.date and d.price.source and d.price.usd_per_hour > 0


def test_unknown_device_says_how_to_add_one():
    with pytest.raises(UnknownNameError) as err:
        load_device("h100-sxmm")
    text = str(err.value)
    assert text.startswith("gpu:") and "h100-sxm" in text and "hardware_db/devices" in text


def test_link_lookup():
    assert get_link("nvlink4").latency_s > 0


def _write(tmp_path, text):
    folder = tmp_path / "devices"
    folder.mkdir(exist_ok=True)
    path = folder / "my-gpu.toml"
    path.write_text(textwrap.dedent(text))
    return path


GOOD = """
    schema_version = 1
    id = "my-gpu"
    name = "My GPU"
    vendor = "Me"
    kind = "gpu"
    arch = "hopper"
    [peak_flop_per_s]
    bf16 = 500e12
    [memory]
    capacity_bytes = 48e9
    bandwidth_bytes_per_s = 1.5e12
    [sources]
    peak_flop_per_s = "my datasheet"
    memory = "my datasheet"
"""


def test_user_folder_adds_a_device(tmp_path, monkeypatch):
    _write(tmp_path, GOOD)
    monkeypatch.setenv("RIDGEPLAN_HARDWARE_PATH", str(tmp_path))
    assert "my-gpu" in device_ids()
    assert load_device("my-gpu").peak("bf16") == 500e12


def test_device_from_path_and_dict(tmp_path):
    path = _write(tmp_path, GOOD)
    assert load_device(str(path)).name == "My GPU"
    d = load_device({"id": "dict-gpu", "name": "Dict", "vendor": "x", "kind": "gpu", "arch": "ampere",
                     "peak_flop_per_s": {"fp16": 1e14}, "memory": {"capacity_bytes": 1e10, "bandwidth_bytes_per_s": 1e12}})
    assert d.peak("fp16") == 1e14
    register_device(d)
    try:
        assert load_device("dict-gpu") is d
    finally:
        unregister_device("dict-gpu")


@pytest.mark.parametrize("mutation, field", [
    (("bf16 = 500e12", "bf16 = -5"), "peak_flop_per_s"),
    (("bf16 = 500e12", "bf17 = 5e12"), "peak_flop_per_s"),
    (("capacity_bytes = 48e9\n", ""), "memory.capacity_bytes"),
    (('kind = "gpu"', 'kind = "toaster"'), "kind"),
    (('memory = "my datasheet"\n', ""), "sources"),
    (('id = "my-gpu"', 'id = "other"'), "id"),
])
def test_bad_file_errors_name_the_field(tmp_path, mutation, field):
    old, new = mutation
    path = _write(tmp_path, GOOD.replace(old, new))
    with pytest.raises(RidgeplanError) as err:
        load_device(str(path)) if field != "id" else _load_by_folder(tmp_path)
    assert field.split(".")[0] in str(err.value)
    assert "my-gpu.toml" in str(err.value)


def _load_by_folder(tmp_path):
    import os

    os.environ["RIDGEPLAN_HARDWARE_PATH"] = str(tmp_path)
    try:
        return load_device("my-gpu")
    finally:
        del os.environ["RIDGEPLAN_HARDWARE_PATH"]


def test_invalid_toml_is_a_clear_error(tmp_path):
    path = _write(tmp_path, "id = [unclosed")
    with pytest.raises(RidgeplanError) as err:
        load_device(str(path))
    assert "not valid TOML" in str(err.value)
