"""Hardware: browse the hardware database with every number's source; add or edit a device for this session
(`model.hardware.custom.custom_device` + `register_device`)."""

from __future__ import annotations

import json

import pandas as pd
import streamlit as st

from model import format as fmt
from model.app import cache
from model.app.scenario import Context
from model.errors import RidgeplanError
from model.hardware import register_device, unregister_device
from model.hardware.custom import custom_device
from model.precision import COMPUTE_DTYPES as PEAK_DTYPES

# which form slot shows an error of the custom-device form, by a word of the error's field
_FORM_SLOTS = (("id", "id"), ("name", "id"), ("memory", "memory"), ("capacity", "memory"), ("bandwidth", "memory"),
               ("peak", "peaks"), ("price", "price"), ("usd", "price"))


def _table(ctx: Context) -> pd.DataFrame:
    df = cache.devices_frame(tuple(ctx.custom_devices.values()))
    return pd.DataFrame({
        "id": df["id"], "name": df["name"], "kind": df["kind"], "year": df["release_year"],
        "bf16/fp16": [fmt.si(x, "FLOP/s") for x in df["bf16_or_fp16_flop_per_s"]],
        "fp8": [fmt.si(x, "FLOP/s") for x in df["fp8_flop_per_s"]],
        "memory (marketed)": [fmt.gb(x) for x in df["capacity_bytes"]],
        "memory fits use": [f"{fmt.gb(x)} = {fmt.gib(x)}" for x in df["total_bytes"]],
        "bandwidth": [fmt.si(x, "B/s") for x in df["bandwidth_bytes_per_s"]],
        "ridge (bf16)": [fmt.DASH if pd.isna(x) else f"{fmt.number(x)} FLOP/B" for x in df["ridge_bf16_flop_per_byte"]],
        "$/h": [fmt.usd(x) for x in df["usd_per_hour"]],
    })


def _browse(ctx: Context) -> None:
    table = _table(ctx)
    kinds = sorted(table["kind"].unique())
    chosen = st.multiselect("Kinds", kinds, default=["gpu"], key="hw_kinds", bind="query-params")
    shown = table[table["kind"].isin(chosen)] if chosen else table
    st.dataframe(shown, hide_index=True, width="stretch", height=300)
    ids = list(table["id"])
    default = ctx.deployment_key.gpu if ctx.deployment_key.gpu in ids else ids[0]
    pick = st.selectbox("Device details", ids, index=ids.index(default), key="hw", bind="query-params")
    dev = cache.device(pick, ctx.custom_devices.get(pick, ""))
    st.markdown(f"**{dev.name}** — {dev.vendor} {dev.arch} ({dev.kind}){' · ' + dev.notes if dev.notes else ''}")
    numbers = cache.device_sources(pick, ctx.custom_devices.get(pick, ""))
    numbers = numbers.assign(value=[_number(f, v) for f, v in zip(numbers["field"], numbers["value"])])
    st.dataframe(numbers, hide_index=True, width="stretch")


_UNITS = (("_bytes_per_s_per_direction", "B/s per direction"), ("_bytes_per_s", "B/s"), ("_bytes", "B"),
          ("_w", "W"), ("_s", "s"), ("usd_per_hour", "$/h"))


def _number(field: str, value: object) -> str:
    """A device number for reading: SI prefix and the unit its field name carries (peaks are FLOP/s)."""
    if not isinstance(value, (int, float)) or isinstance(value, bool) or field in ("compute_units", "release_year",
                                                                                    "max_domain_devices"):
        return str(value)
    unit = next((u for suffix, u in _UNITS if field.endswith(suffix)), "FLOP/s" if field in PEAK_DTYPES else "")
    return fmt.si(float(value), unit)


def _form_slot(err: RidgeplanError) -> str:
    field = err.field.lower()
    return next((slot for word, slot in _FORM_SLOTS if word in field), "general")


def _editor(ctx: Context) -> None:
    st.subheader("Add or edit a device for this session")
    customs = ctx.custom_devices
    templates = [*customs, *cache.catalogue_devices()]
    base_id = st.selectbox("Start from", templates, index=templates.index(ctx.deployment_key.gpu)
                           if ctx.deployment_key.gpu in templates else 0, key="hw_template",
                           help="a hardware_db device to copy, or one of this session's devices to edit")
    base = cache.device(base_id, customs.get(base_id, ""))
    peaks = base.peak_flop_per_s
    with st.form(f"custom-device-{base_id}"):
        c1, c2 = st.columns(2)
        new_id = c1.text_input("id (lowercase, digits, '-', '.')", value=base_id if base_id in customs
                               else f"{base_id}-custom")
        name = c2.text_input("name", value=base.name if base_id in customs else f"{base.name} (custom)")
        slots = {"id": st.empty()}
        c1, c2 = st.columns(2)
        capacity_gb = c1.number_input("memory capacity (GB)", min_value=0.0, value=base.memory.capacity_bytes / 1e9,
                                      step=8.0, format="%g")
        bandwidth_gb_per_s = c2.number_input("memory bandwidth (GB/s)", min_value=0.0,
                                             value=base.memory.bandwidth_bytes_per_s / 1e9, step=100.0, format="%g")
        slots["memory"] = st.empty()
        c1, c2 = st.columns(2)
        bf16_tflop_per_s = c1.number_input("bf16 dense (TFLOP/s, 0 = none)", min_value=0.0,
                                           value=peaks.get("bf16", 0.0) / 1e12, step=10.0, format="%g")
        fp8_tflop_per_s = c2.number_input("fp8 dense (TFLOP/s, 0 = none)", min_value=0.0,
                                          value=peaks.get("fp8", 0.0) / 1e12, step=10.0, format="%g")
        slots["peaks"] = st.empty()
        usd_per_hour = st.number_input("price ($ per GPU-hour, 0 = none)", min_value=0.0,
                                       value=base.price.usd_per_hour if base.price else 0.0, step=0.25, format="%g")
        slots["price"] = st.empty()
        slots["general"] = st.empty()
        submitted = st.form_submit_button("Save device for this session")
    if submitted:
        try:
            data = custom_device(base, id=new_id.strip(), name=name.strip() or None, capacity_bytes=capacity_gb * 1e9,
                                 bandwidth_bytes_per_s=bandwidth_gb_per_s * 1e9,
                                 peak_flop_per_s={"bf16": bf16_tflop_per_s * 1e12, "fp8": fp8_tflop_per_s * 1e12},
                                 usd_per_hour=usd_per_hour)
            register_device(data)
        except RidgeplanError as err:
            slots[_form_slot(err)].error(err.one_line(), icon="⚠️")
        else:
            customs[data["id"]] = json.dumps(data, sort_keys=True)
            st.success(f"Saved {data['id']}: choose it in the sidebar's GPU list (this session only).")
            st.rerun()
    if customs:
        st.markdown("This session's devices: " + ", ".join(f"`{i}`" for i in customs))
        gone = st.selectbox("Remove a session device", ["—", *customs], key="hw_remove")
        if gone != "—" and st.button(f"Remove {gone}"):
            customs.pop(gone, None)
            unregister_device(gone)
            st.rerun()


def render(ctx: Context) -> None:
    _browse(ctx)
    _editor(ctx)
