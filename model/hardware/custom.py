"""Custom devices built from an existing one: copy a hardware_db device, change its headline numbers, and keep
the sources honest (every changed section is marked as supplied by the user).

The calculator app's "add or edit a device" form uses this with `register_device`; notebooks can too.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pandas as pd

from model.errors import RidgeplanError
from model.hardware.db import _files, load_device
from model.hardware.schema import Device

USER_SOURCE = "set by the user (custom device)"


def file_device_ids() -> list[str]:
    """Ids of devices defined by TOML files (built-in hardware_db/ and RIDGEPLAN_HARDWARE_PATH folders), without
    the devices registered in this process."""
    return sorted(_files("devices"))


def custom_device(template: str | Device, *, id: str, name: str | None = None,
                  capacity_bytes: float | None = None, bandwidth_bytes_per_s: float | None = None,
                  peak_flop_per_s: Mapping[str, float] | None = None, usd_per_hour: float | None = None,
                  price_date: str = "") -> dict[str, Any]:
    """A device dict in the hardware file layout: `template` with the given numbers replaced.

    `peak_flop_per_s` replaces the listed dtypes (a value of 0 removes that dtype); `usd_per_hour` of 0 removes
    the price. The id must not name a device file (a session's device must not shadow the shared database).
    The result validates with `load_device` / `register_device`; errors name the field at fault."""
    base = load_device(template, field="template")
    if id in file_device_ids():
        raise RidgeplanError("id", f"{id!r} already names a device in the hardware database; choose a new id",
                             hint=f"e.g. {base.id}-custom")
    data = base.model_dump(mode="python", exclude_none=True)
    sources = dict(data.get("sources") or {})
    data.update(id=id, name=name or f"{base.name} (custom)",
                notes=f"custom device based on {base.id}" + (f"; {base.notes}" if base.notes else ""))
    if capacity_bytes is not None or bandwidth_bytes_per_s is not None:
        memory = dict(data["memory"])
        if capacity_bytes is not None:
            memory["capacity_bytes"] = float(capacity_bytes)
            memory.pop("runtime_total_bytes", None)  # the driver-reported total belongs to the template's size
        if bandwidth_bytes_per_s is not None:
            memory["bandwidth_bytes_per_s"] = float(bandwidth_bytes_per_s)
        data["memory"] = memory
        sources["memory"] = USER_SOURCE
    if peak_flop_per_s:
        peaks = dict(data.get("peak_flop_per_s") or {})
        for dtype, value in peak_flop_per_s.items():
            if value == 0:
                peaks.pop(dtype, None)
            else:
                peaks[dtype] = float(value)
        data["peak_flop_per_s"] = peaks
        sources["peak_flop_per_s"] = USER_SOURCE
    if usd_per_hour is not None:
        if usd_per_hour == 0:
            data.pop("price", None)
        else:
            data["price"] = {"usd_per_hour": float(usd_per_hour), "date": price_date or "custom",
                             "source": USER_SOURCE}
    data["sources"] = sources
    load_device(data)  # validate now so errors surface where the numbers were typed
    return data


def device_table(devices: list[Device]) -> pd.DataFrame:
    """One row per device with its headline numbers in SI units (for browsing): id, name, vendor, kind, arch,
    release_year, bf16_or_fp16_flop_per_s, fp8_flop_per_s, capacity_bytes (marketed), total_bytes (what fits use:
    the runtime-reported total when known), bandwidth_bytes_per_s,
    ridge_bf16_flop_per_byte, usd_per_hour."""
    rows = []
    for d in devices:
        p = d.peak_flop_per_s
        sixteen = p.get("bf16") or p.get("fp16")
        ridge = d.ridge_flop_per_byte
        rows.append({"id": d.id, "name": d.name, "vendor": d.vendor, "kind": d.kind, "arch": d.arch,
                     "release_year": d.release_year, "bf16_or_fp16_flop_per_s": sixteen,
                     "fp8_flop_per_s": p.get("fp8"), "capacity_bytes": d.memory.capacity_bytes,
                     "total_bytes": d.memory.total_bytes,
                     "bandwidth_bytes_per_s": d.memory.bandwidth_bytes_per_s,
                     "ridge_bf16_flop_per_byte": ridge.get("bf16", ridge.get("fp16")),
                     "usd_per_hour": d.price.usd_per_hour if d.price else None})
    return pd.DataFrame(rows)


def device_numbers(device: Device) -> pd.DataFrame:
    """Every number of a device with the source of its section: section, field, value (as in the file: a number
    in the unit its field name carries, or text), source."""
    rows = []
    data = device.model_dump(mode="python", exclude_none=True)
    for section in ("peak_flop_per_s", "memory", "on_chip", "scale_up", "scale_out", "host_link", "power", "price"):
        values = data.get(section)
        if not values:
            continue
        source = values.get("source") if section == "price" else device.sources.get(section, "")
        for key, value in values.items():
            if section == "price" and key == "source":
                continue
            rows.append({"section": section, "field": key, "value": value, "source": source or ""})
    return pd.DataFrame(rows, columns=["section", "field", "value", "source"])
