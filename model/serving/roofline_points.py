"""Data for roofline charts: each device's attainable FLOP/s against arithmetic intensity per dtype (the
rooflines and their ridge points) and the operators of a step placed on the same axes.

Attainable FLOP/s at intensity I (FLOP/byte) on a device with peak P (FLOP/s) and memory bandwidth W (byte/s)
is min(P, I x W); the ridge point I* = P / W is where the two meet. An operator sits at its own intensity
(FLOPs / bytes moved) and its achieved rate (FLOPs / modelled seconds), under the roofline of the dtype it
runs on. Plotting libraries only draw what these frames hold; no formula lives in the app.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
import pandas as pd

from model.hardware.schema import Device
from model.serving.breakdown import op_table
from model.serving.deployment import StepResult

DEFAULT_INTENSITY_RANGE = (1e-2, 1e4)  # FLOP/byte: from element-wise kernels to large GEMMs


def _dtypes(device: Device, dtypes: Iterable[str] | None) -> list[str]:
    peaks = device.peak_flop_per_s
    chosen = list(peaks) if dtypes is None else [d for d in dtypes if d in peaks]
    return sorted(chosen, key=lambda d: -peaks[d])


def roofline_lines(device: Device, dtypes: Iterable[str] | None = None,
                   intensity_range_flop_per_byte: tuple[float, float] = DEFAULT_INTENSITY_RANGE) -> pd.DataFrame:
    """Three points per dtype, (I_min, I_min W), (I*, P), (I_max, P): straight lines on log-log axes.

    A ridge outside the range is clipped to it (the line is then all memory- or all compute-bound).
    Columns: device, dtype, intensity_flop_per_byte, attainable_flop_per_s, order."""
    lo, hi = intensity_range_flop_per_byte
    if not 0 < lo < hi:
        raise ValueError(f"intensity range must satisfy 0 < low < high, got {intensity_range_flop_per_byte}")
    bw = device.memory.bandwidth_bytes_per_s
    rows = []
    for dtype in _dtypes(device, dtypes):
        peak = device.peak_flop_per_s[dtype]
        ridge = min(max(peak / bw, lo), hi)
        for order, x in enumerate((lo, ridge, hi)):
            rows.append({"device": device.id, "dtype": dtype, "intensity_flop_per_byte": x,
                         "attainable_flop_per_s": min(peak, x * bw), "order": order})
    return pd.DataFrame(rows, columns=["device", "dtype", "intensity_flop_per_byte", "attainable_flop_per_s",
                                       "order"])


def ridge_points(device: Device, dtypes: Iterable[str] | None = None) -> pd.DataFrame:
    """One row per dtype: the ridge intensity P / W and the peak. Columns: device, dtype,
    ridge_flop_per_byte, peak_flop_per_s, memory_bytes_per_s."""
    ridges = device.ridge_flop_per_byte
    rows = [{"device": device.id, "dtype": d, "ridge_flop_per_byte": ridges[d],
             "peak_flop_per_s": device.peak_flop_per_s[d], "memory_bytes_per_s": device.memory.bandwidth_bytes_per_s}
            for d in _dtypes(device, dtypes)]
    return pd.DataFrame(rows, columns=["device", "dtype", "ridge_flop_per_byte", "peak_flop_per_s",
                                       "memory_bytes_per_s"])


def operator_points(step: StepResult, phase: str, scenario: int = 0) -> pd.DataFrame:
    """Every operator of a step with FLOPs and bytes, at (intensity, achieved FLOP/s) for a roofline chart.

    Operators that do no arithmetic (collectives, gathers) have no place on log axes; they are returned with
    `on_chart` False so a caller can list them beside the chart. Columns: device, phase, operator, kind, flops,
    bytes, network_bytes, intensity_flop_per_byte, time_s, achieved_flop_per_s, bound, share, on_chart."""
    df = op_table(step, scenario)
    cols = ["device", "phase", "operator", "kind", "flops", "bytes", "network_bytes", "intensity_flop_per_byte",
            "time_s", "achieved_flop_per_s", "bound", "share", "on_chart"]
    if df.empty:
        return pd.DataFrame(columns=cols)
    out = df[["operator", "kind", "flops", "bytes", "network_bytes", "intensity_flop_per_byte", "time_s", "bound",
              "share"]].copy()
    with np.errstate(divide="ignore", invalid="ignore"):
        out["achieved_flop_per_s"] = np.where(out["time_s"] > 0, out["flops"] / out["time_s"], 0.0)
    out["on_chart"] = (out["flops"] > 0) & (out["bytes"] > 0) & np.isfinite(out["intensity_flop_per_byte"])
    out.insert(0, "phase", phase)
    out.insert(0, "device", step.deployment.device.id)
    return out[cols].reset_index(drop=True)


def attainable_flop_per_s(device: Device, dtype: str, intensity_flop_per_byte) -> np.ndarray:
    """min(P, I x W) for one dtype, vectorized over intensities."""
    i = np.asarray(intensity_flop_per_byte, dtype=float)
    return np.minimum(device.peak(dtype), i * device.memory.bandwidth_bytes_per_s)
