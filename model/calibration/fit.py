"""Fit the efficiency model to measured kernel (or whole-step) times with scipy, and report the fit error.

Input: a table (CSV) with one measurement per row. Kernel rows use the columns of `model.roofline.kernels`
(`kernel` = gemm | attention | decode_attention | copy | elementwise, `dtype`, shape columns) plus
`measured_s`. Step rows (`kernel` = step) give `model`, `batch`, `new_tokens`, `context` (and optionally
`tp`) plus `measured_s`, and are predicted with the full operator graph.

The fit minimises the squared log-ratio of predicted to measured time (so a 2x miss on a 5 us kernel weighs
as much as on a 5 ms one) over the parameters the data can inform, with bounds that keep fractions of peak in
(0, 1]. A random held-out fraction is never seen by the fit; its error is reported separately.
"""

from __future__ import annotations

from dataclasses import dataclass, fields, replace
from pathlib import Path

import numpy as np
import pandas as pd
from scipy.optimize import least_squares

from model.errors import RidgeplanError
from model.hardware.schema import Device
from model.roofline.efficiency import Efficiency
from model.roofline.efficiency_sets import efficiency_for
from model.calibration.collective_rows import COLLECTIVES, predict_collectives
from model.roofline.kernels import KERNELS, predict_kernels

STEP_COLUMNS = ("model", "batch", "new_tokens", "context")
# parameter -> (lower, upper) bounds
BOUNDS = {
    "gemm_max_16": (0.05, 1.0), "gemm_max_8": (0.05, 1.0), "gemm_max_4": (0.05, 1.0), "gemm_max_32": (0.05, 1.0),
    "gemm_m_half": (0.0, 4096.0), "gemm_n_half": (0.0, 4096.0),
    "attention_max": (0.05, 1.0), "attention_q_half": (0.0, 4096.0),
    "mem_max": (0.05, 1.0), "mem_bytes_half": (0.0, 1e9), "vector_max": (0.01, 1.0),
    "kernel_floor_s": (0.0, 1e-3), "attention_floor_s": (0.0, 1e-3), "decode_attention_floor_s": (0.0, 1e-3),
    "step_overhead_s": (0.0, 0.1), "roofline_p": (1.0, 16.0),
    "collective_base_s": (0.0, 1e-3), "scale_up_bus_efficiency": (0.05, 1.0), "attention_kv_half": (0.0, 1e6),
    "attention_d_half": (0.0, 4096.0), "mla_attention_scale": (0.05, 4.0), "mla_d_half_scale": (0.01, 100.0),
    "mla_kv_half_scale": (0.0, 100.0), "mla_q_half_scale": (0.0, 100.0),
    "attention_mem_scale": (0.05, 2.0), "gemm_k_s": (0.0, 1e-8), "gemm_k_split": (0.0, 1e6),
    "gemm_k_scale_8": (0.02, 20.0), "gemm_k_scale_4": (0.02, 20.0),
    "gemm_tile_m_8": (1.0, 256.0), "gemm_tile_m_4": (1.0, 256.0), "gemm_quant_s_8": (0.0, 1e-3),
    "gemm_quant_s_4": (0.0, 1e-3), "gemm_quant_bytes_8": (0.0, 64.0), "gemm_quant_bytes_4": (0.0, 64.0),
    "gemm_quant_row_s_8": (0.0, 1e-6), "gemm_quant_row_s_4": (0.0, 1e-6),
    "nvls_bus_efficiency": (0.0, 1.0), "nvls_latency_s": (0.0, 1e-3), "collective_floor_s": (0.0, 1e-3),
    # grouped MoE kernels relative to dense GEMMs (a compute share above 1 stops at the peak: context_for caps it)
    **{f"moe_{kind}_scale_{c}": (0.02, 2.0) for kind in ("gemm", "mem") for c in ("16", "8", "4", "wo")},
    "attention_roofline_p": (1.0, 16.0), "mla_roofline_p": (1.0, 16.0), "mla_mem_scale": (0.2, 2.0),
    "mla_qo_mem_scale": (0.1, 2.0),
    "decode_fallback_mem_scale": (0.2, 20.0), "mla_decode_floor_s": (0.0, 1e-3), "mla_prefill_floor_s": (0.0, 1e-3),
    "gemv_mem_scale": (0.2, 1.5), "custom_ar_bus_efficiency": (0.02, 1.0), "custom_ar_two_shot_s": (0.0, 1e-3),
    "nccl_base_s": (0.0, 1e-3),
    # block-scaled FP8 kernels (Efficiency.gemm_max_8b and the other _8b terms)
    "gemm_k_split_8": (0.0, 1e6), "gemm_k_split_4": (0.0, 1e6), "gemm_max_8b": (0.05, 1.0),
    "gemm_tile_m_8b": (1.0, 256.0), "gemm_k_scale_8b": (0.02, 20.0),
    "gemm_quant_s_8b": (0.0, 1e-3), "gemm_quant_bytes_8b": (0.0, 64.0), "gemm_quant_row_s_8b": (0.0, 1e-6),
    "gemm_host_s_8b": (0.0, 1e-3),
    "decode_item_s": (0.0, 1e-6), "prefill_tile_s": (0.0, 1e-6), "decode_split_s": (0.0, 1e-3),
    "kv_store_unfused_s": (0.0, 1e-3),
    "mla_block_s": (0.0, 1e-4), "mla_split_s": (0.0, 1e-3), "decode_block_s": (0.0, 1e-4),
    "decode_item_tile_s": (0.0, 1e-6), "decode_fallback_item_s": (0.0, 1e-6),
    "attention_wide_scale": (0.05, 2.0), "gemm_sustain_drop": (0.0, 0.25), "gemm_sustain_s": (0.0, 1.0),
    "bench_l2_floor_s": (0.0, 2e-6),
}


def _informed(table: pd.DataFrame) -> list[str]:
    """Parameters the rows can constrain."""
    kinds = set(table["kernel"])
    dtypes = set(table.get("dtype", pd.Series(dtype=str)).dropna().astype(str))
    params: list[str] = ["kernel_floor_s"]
    if "gemm" in kinds or "step" in kinds:
        params += ["gemm_m_half", "gemm_n_half", "gemm_k_s", "gemm_k_split", "gemm_sustain_drop", "gemm_sustain_s"]
        params += [f"gemm_max_{c}" for c, names in (("16", {"bf16", "fp16"}), ("8", {"fp8", "int8"}),
                                                     ("4", {"fp4", "int4"}), ("32", {"fp32", "tf32"}))
                   if dtypes & names or ("step" in kinds and c == "16")]
    if kinds & {"attention", "decode_attention", "step"}:
        params += ["attention_max", "attention_q_half", "attention_kv_half", "attention_floor_s",
                   "decode_attention_floor_s", "attention_mem_scale"]
        if "mla" in table and (table["mla"].fillna(0) > 0).any():
            params += ["mla_attention_scale", "mla_d_half_scale", "mla_kv_half_scale", "mla_q_half_scale",
                       "mla_roofline_p", "mla_mem_scale", "mla_qo_mem_scale", "mla_decode_floor_s",
                       "mla_prefill_floor_s", "mla_block_s", "mla_split_s"]
        # the head-dimension term needs more than one head dimension (with one it is the ceiling under another name)
        attention = table["kernel"].isin(["attention", "decode_attention"])
        if "head_dim" in table and table.loc[attention, "head_dim"].nunique() > 1:
            params.append("attention_d_half")
    if kinds & {"copy", "elementwise", "decode_attention", "gemm", "step"}:
        params += ["mem_max", "mem_bytes_half"]
    if "elementwise" in kinds:
        params.append("vector_max")
    if "step" in kinds:
        params.append("step_overhead_s")
    if "moe" in kinds:  # every class; _responsive leaves out those no row runs
        params += [f"moe_{kind}_scale_{c}" for kind in ("gemm", "mem") for c in ("16", "8", "4", "wo")]
    if kinds & set(COLLECTIVES):
        params += ["collective_base_s", "scale_up_bus_efficiency", "nvls_bus_efficiency", "nvls_latency_s",
                   "collective_floor_s", "custom_ar_bus_efficiency", "custom_ar_two_shot_s",
                   "nccl_base_s"]
    return sorted(set(params), key=list(BOUNDS).index)


@dataclass(frozen=True)
class FitResult:
    device: Device
    before: Efficiency
    after: Efficiency
    params: dict[str, float]
    errors: pd.DataFrame  # per kernel class and split: median and mean |error| before and after
    rows: pd.DataFrame  # every measurement with its split and predictions
    unconstrained: tuple[str, ...] = ()  # parameters the measurements do not inform: left at their start value

    def held_out_error(self) -> float:
        held = self.rows[self.rows["split"] != "fit"]
        return float(np.median(np.abs(held["after"] / held["measured_s"] - 1))) if len(held) else float("nan")

    def to_toml(self, provenance: str = "") -> str:
        lines = [f"# Fitted efficiency for {self.device.id} ({self.device.name}) by `ridgeplan calibrate fit`.",
                 f"# {provenance}".rstrip(), "[efficiency]"]
        lines += [f"{k} = {v:.6g}" for k, v in self.params.items()]
        if self.unconstrained:
            lines.append(f"# not informed by the measurements, left at the defaults: {', '.join(self.unconstrained)}")
        lines += ["", "[fit]", f"rows = {len(self.rows)}",
                  f"held_out_rows = {int((self.rows['split'] != 'fit').sum())}",
                  f"held_out_median_abs_error = {self.held_out_error():.4f}"]
        for _, r in self.errors.iterrows():
            key = f"{r['kernel']}_{r['split'].replace('-', '_')}"
            lines.append(f"{key}_median_abs_error_before = {r['median_before']:.4f}")
            lines.append(f"{key}_median_abs_error_after = {r['median_after']:.4f}")
        return "\n".join(lines) + "\n"


def load_measurements(path: str | Path) -> pd.DataFrame:
    path = Path(path)
    if not path.is_file():
        raise RidgeplanError("csv", f"no such file {str(path)!r}")
    try:
        table = pd.read_csv(path, comment="#")
    except (pd.errors.ParserError, UnicodeDecodeError) as err:
        raise RidgeplanError("csv", f"{path.name} is not a readable CSV: {err}") from None
    except pd.errors.EmptyDataError:
        raise RidgeplanError("csv", f"{path.name} has no rows") from None
    table = check_measurements(table)
    if "model" in table:  # a step model given as a config file is found next to the CSV
        steps = table["kernel"] == "step"
        table.loc[steps, "model"] = table.loc[steps, "model"].map(lambda m: _beside(path, m))
    return table


def _beside(csv: Path, model: object) -> object:
    text = str(model)
    local = csv.parent / text
    return str(local) if text.endswith(".json") and not Path(text).is_absolute() and local.is_file() else model


def check_measurements(table: pd.DataFrame) -> pd.DataFrame:
    for col in ("kernel", "measured_s"):
        if col not in table:
            raise RidgeplanError(col, "column is missing from the measurements", ["kernel", "measured_s", "shape columns"])
    bad = set(table["kernel"]) - set(KERNELS) - set(COLLECTIVES) - {"step", "moe"}
    if bad:
        raise RidgeplanError("kernel", f"unknown kernel kind {sorted(bad)[0]!r}",
                             [*KERNELS, *COLLECTIVES, "moe", "step"])
    times = pd.to_numeric(table["measured_s"], errors="coerce")
    if times.isna().any() or (times <= 0).any():
        raise RidgeplanError("measured_s", "every measurement must be a positive number of seconds")
    steps = table[table["kernel"] == "step"]
    for col in STEP_COLUMNS:
        if len(steps) and (col not in steps or steps[col].isna().any()):
            raise RidgeplanError(col, "is needed for step rows", STEP_COLUMNS)
    if len(table) < 3:
        raise RidgeplanError("csv", f"need at least 3 measurements to fit, got {len(table)}")
    return table.reset_index(drop=True)


def predictor(table: pd.DataFrame, device: Device):
    """A function eff -> predicted seconds for every row (kernel rows directly, step rows via the graph)."""
    comm_rows = table["kernel"].isin(COLLECTIVES)
    moe_rows = table["kernel"] == "moe"  # whole MoE layers (model.calibration.moe_rows)
    kernel_rows = (table["kernel"] != "step") & ~comm_rows & ~moe_rows
    kernels = table[kernel_rows]
    comms = table[comm_rows]
    predict_moe = None
    if moe_rows.any():
        from model.calibration.moe_rows import moe_predictor

        predict_moe = moe_predictor(table[moe_rows].reset_index(drop=True), device)
    steps = table[(table["kernel"] == "step")]
    step_ops = []
    if len(steps):
        from model.serving.deployment import deployment

        for _, r in steps.iterrows():
            d = deployment(r["model"], device, tp=int(r.get("tp", 1) or 1))
            ops = d.graph.evaluate({**d.symbols(), "B": r["batch"], "T": r["new_tokens"], "C": r["context"]})
            step_ops.append((d, ops))

    def predict(eff: Efficiency) -> np.ndarray:
        from model.roofline.evaluator import evaluate

        out = np.zeros(len(table))
        if len(kernels):
            out[kernel_rows.to_numpy()] = predict_kernels(kernels, device, eff)
        if len(comms):
            out[comm_rows.to_numpy()] = predict_collectives(comms, device, eff)
        if predict_moe is not None:
            out[moe_rows.to_numpy()] = predict_moe(eff)
        for j, (d, ops) in zip(np.flatnonzero((table["kernel"] == "step").to_numpy()), step_ops):
            ctx = replace(d.context, eff=eff)
            out[j] = float(evaluate(ops, ctx).step_time_s()[0]) + eff.step_overhead_s
        return out

    return predict


def fit_efficiency(table: pd.DataFrame, device: Device, start: Efficiency | None = None, *,
                   params: list[str] | None = None, holdout: float = 0.2, seed: int = 0,
                   split: np.ndarray | None = None, max_nfev: int = 800, loss: str = "linear") -> FitResult:
    """Fit efficiency parameters to measured times; hold out a random `holdout` fraction for an honest error.

    `split`: a label per row instead of the random hold-out ("fit" rows are fitted on; any other label, e.g.
    "interpolation" or "extrapolation", is held out and reported under that label)."""
    table = check_measurements(table)
    _check_platform(table, device)
    if not 0 <= holdout < 1:
        raise RidgeplanError("holdout", f"must be in [0, 1), got {holdout}")
    start = start or efficiency_for(device, calibration=False)
    names = params or _informed(table)
    unknown = set(names) - set(BOUNDS)
    if unknown:
        raise RidgeplanError("params", f"cannot fit {sorted(unknown)[0]!r}", list(BOUNDS))
    if split is not None:
        labels = np.asarray(split, dtype=object)
        if len(labels) != len(table):
            raise RidgeplanError("split", f"needs one label per row ({len(table)}), got {len(labels)}")
        held = labels != "fit"
    else:
        rng = np.random.default_rng(seed)
        held = rng.random(len(table)) < holdout if len(table) >= 10 else np.zeros(len(table), bool)
        labels = np.where(held, "held-out", "fit")
    if held.all():
        raise RidgeplanError("split", "every row is held out; nothing to fit")
    measured = table["measured_s"].to_numpy(float)
    predict = predictor(table, device)
    names, idle = _responsive(names, start, predict, len(table))
    lo = np.array([BOUNDS[n][0] for n in names])
    hi = np.array([BOUNDS[n][1] for n in names])
    # log-scale the size-like parameters so the optimiser moves them in proportion
    logged = np.array([n.endswith("_half") or n.endswith("_s") or n in _LOG_UNIT for n in names])
    # sizes and latencies span decades: move them in log space, with a scale that keeps log1p informative
    scale = np.array([_LOG_UNIT.get(n, 1.0) for n in names])

    def to_eff(x: np.ndarray) -> Efficiency:
        values = np.where(logged, np.expm1(x) * scale, x)
        return replace(start, **{n: float(v) for n, v in zip(names, values)})

    def residuals(x: np.ndarray) -> np.ndarray:
        pred = predict(to_eff(x))
        return np.log(pred[~held] / measured[~held])

    x0 = np.array([getattr(start, n) for n in names], dtype=float)
    x0 = np.clip(x0, lo, hi)
    x0 = np.where(logged, np.log1p(x0 / scale), x0)
    lo_t = np.where(logged, np.log1p(lo / scale), lo)
    hi_t = np.where(logged, np.log1p(hi / scale), hi)
    x0 = np.clip(x0, lo_t + 1e-12, hi_t - 1e-12)
    # loss "soft_l1" (scale 0.05 = 5% in log time) keeps a few odd shapes from pulling every curve
    result = least_squares(residuals, x0, bounds=(lo_t, hi_t), x_scale="jac", max_nfev=max_nfev, xtol=1e-12,
                           ftol=1e-12, gtol=1e-12, loss=loss, f_scale=0.05)
    after = to_eff(result.x)
    after = replace(after, source=f"{start.source}; fitted to {len(table) - int(held.sum())} measurements")
    rows = table.copy()
    rows["split"] = labels
    rows["before"] = predict(start)
    rows["after"] = predict(after)
    errors = _error_table(rows)
    fitted = {n: float(getattr(after, n)) for n in names}
    return FitResult(device, start, after, fitted, errors, rows, tuple(idle))


# unit of the log-scaled parameters: log1p(value / unit) (a latency of 1e-6 s and a size of 1 token alike)
_LOG_UNIT = {"gemm_k_scale_8": 1.0, "gemm_k_scale_4": 1.0, "gemm_k_scale_8b": 1.0, "gemm_quant_s_8b": 1e-7,
             "gemm_quant_row_s_8b": 1e-11, "gemm_host_s_8b": 1e-7,
             "kernel_floor_s": 1e-7, "attention_floor_s": 1e-7, "decode_attention_floor_s": 1e-7,
             "collective_floor_s": 1e-7, "nvls_latency_s": 1e-7, "mla_decode_floor_s": 1e-7,
             "mla_prefill_floor_s": 1e-7, "gemm_k_split": 64.0, "bench_l2_floor_s": 1e-7,
             "gemm_k_split_8": 64.0, "gemm_k_split_4": 64.0, "custom_ar_two_shot_s": 1e-7, "nccl_base_s": 1e-7,
             "collective_base_s": 1e-7, "step_overhead_s": 1e-6,
             "mem_bytes_half": 1e3, "gemm_k_s": 1e-11, "gemm_quant_s_8": 1e-7, "gemm_quant_s_4": 1e-7,
             "gemm_quant_row_s_8": 1e-11, "gemm_quant_row_s_4": 1e-11, "decode_item_s": 1e-10, "prefill_tile_s": 1e-10,
             "decode_split_s": 1e-7, "mla_block_s": 1e-8, "mla_split_s": 1e-7, "gemm_sustain_s": 1e-6,
             "decode_block_s": 1e-8, "decode_item_tile_s": 1e-10,
             "decode_fallback_item_s": 1e-10,
             "kv_store_unfused_s": 1e-7}

_ZERO_NUDGE = {"gemv_mem_scale": 1.0, "gemm_k_split": 1024.0, "collective_floor_s": 1e-7, "nvls_latency_s": 1e-7,
               "nvls_bus_efficiency": 0.5, "custom_ar_bus_efficiency": 0.5, "custom_ar_two_shot_s": 1e-7,
               "nccl_base_s": 1e-7,
               "gemm_m_half": 1.0, "gemm_n_half": 1.0, "attention_q_half": 1.0, "mem_bytes_half": 1e4,
               "kernel_floor_s": 1e-7, "attention_floor_s": 1e-7, "decode_attention_floor_s": 1e-7,
               "step_overhead_s": 1e-6,
               "attention_kv_half": 16.0, "attention_d_half": 8.0, "gemm_k_s": 1e-11,
               "gemm_quant_s_8": 1e-7, "gemm_quant_s_4": 1e-7, "gemm_quant_bytes_8": 0.5,
               "gemm_quant_bytes_4": 0.5, "gemm_quant_row_s_8": 1e-11, "gemm_quant_row_s_4": 1e-11,
               "gemm_quant_s_8b": 1e-7, "gemm_quant_bytes_8b": 0.5, "gemm_quant_row_s_8b": 1e-11,
               "gemm_host_s_8b": 1e-7,
               "decode_item_s": 1e-10, "prefill_tile_s": 1e-10, "decode_split_s": 1e-7, "kv_store_unfused_s": 1e-7,
               "mla_block_s": 1e-8, "mla_split_s": 1e-7, "decode_block_s": 1e-8,
               "decode_item_tile_s": 1e-10, "decode_fallback_item_s": 1e-10}


def _responsive(names: list[str], start: Efficiency, predict, n_rows: int) -> tuple[list[str], list[str]]:
    """Split parameters into those some prediction responds to at the start, and those none does.

    A parameter no row responds to (vector_max when every element-wise row is memory-bound; a 1% change that
    moves no prediction by 0.01%) is not informed
    by the data; fitted anyway it drifts wherever it helps absorb noise elsewhere and would be written out.
    It keeps its start value and is reported as not informed.
    """
    base = predict(start)
    live, idle = [], []
    for n in names:
        value, (lo, hi) = getattr(start, n), BOUNDS[n]
        # from zero, nudge to a small but meaningful size (1 token, 10 kB, 0.1 us) rather than a fraction of 0
        nudged = (value * 1.01 if value * 1.01 <= hi else value * 0.99) if value else _ZERO_NUDGE.get(n, hi * 1e-6)
        moved = predict(replace(start, **{n: max(lo, nudged)}))
        # a 1% nudge that moves no prediction by 0.01% is not information (only the soft roofline corner's tail)
        if np.max(np.abs(moved / base - 1)) < 1e-4:
            idle.append(n)
        else:
            live.append(n)
    if not live:
        raise RidgeplanError("csv", f"none of the {n_rows} measurements responds to any efficiency parameter")
    return live, idle


def _check_platform(table: pd.DataFrame, device: Device) -> None:
    """Rows measured on a CPU (`platform` = cpu) calibrate a CPU device only, and GPU rows never a CPU."""
    if "platform" not in table:
        return
    measured = set(table["platform"].dropna().astype(str))
    if "cpu" in measured and device.kind != "cpu":
        raise RidgeplanError("device", f"the measurements were taken on a CPU; {device.id} is a {device.kind}",
                             hint="fit CPU measurements to a CPU device (ridgeplan hardware list --kind cpu)")
    if measured - {"cpu"} and device.kind == "cpu":
        raise RidgeplanError("device", f"the measurements were taken on {sorted(measured - {'cpu'})[0]}; "
                             f"{device.id} is a CPU")


def _error_table(rows: pd.DataFrame) -> pd.DataFrame:
    out = []
    for (kernel, split), g in rows.groupby(["kernel", "split"]):
        before = np.abs(g["before"] / g["measured_s"] - 1)
        after = np.abs(g["after"] / g["measured_s"] - 1)
        out.append({"kernel": kernel, "split": split, "rows": len(g), "median_before": float(np.median(before)),
                    "median_after": float(np.median(after)), "mean_before": float(before.mean()),
                    "mean_after": float(after.mean())})
    return pd.DataFrame(out)


def efficiency_parameters() -> list[str]:
    return [f.name for f in fields(Efficiency) if f.name != "source"]
