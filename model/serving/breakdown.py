"""Per-operator breakdown tables of a step: FLOPs, bytes, intensity, time, bound and share of the step."""

from __future__ import annotations

import numpy as np
import pandas as pd

from model.roofline.evaluator import BOUNDS
from model.serving.deployment import StepResult


def op_table(step: StepResult, scenario: int = 0) -> pd.DataFrame:
    """One row per operator (summed over its layers and stages) for one scenario of a step."""
    ops, times = step.ops, step.times
    counts = step.stage_counts.sum(axis=0)
    s = scenario
    exposed = times.time_s[:, s] - times.comm_overlap[s] * times.network_s[:, s]
    rows = []
    for i, op in enumerate(ops.ops):
        if counts[i] == 0:
            continue
        flops = counts[i] * ops.flops[i, s]
        nbytes = counts[i] * (ops.bytes[i, s])
        net = counts[i] * ops.comm_bytes[i, s]
        t = counts[i] * exposed[i]
        if flops == 0 and nbytes == 0 and net == 0:
            continue
        rows.append({
            "operator": op.name,
            "kind": op.kind,
            "layers": int(counts[i]) if op.group >= 0 else 0,
            "flops": flops,
            "bytes": nbytes,
            "network_bytes": net,
            "intensity_flop_per_byte": flops / nbytes if nbytes else float("inf"),
            "compute_s": counts[i] * times.compute_s[i, s],
            "memory_s": counts[i] * times.memory_s[i, s],
            "network_s": counts[i] * times.network_s[i, s],
            "floor_s": counts[i] * times.floor_s[i, s],
            "time_s": t,
            "bound": BOUNDS[int(times.bound[i, s])],
            "description": op.description,
        })
    df = pd.DataFrame(rows)
    if df.empty:
        return df
    df = (df.groupby(["operator", "kind", "bound", "description"], as_index=False, sort=False)
          .agg({"layers": "sum", "flops": "sum", "bytes": "sum", "network_bytes": "sum", "compute_s": "sum",
                "memory_s": "sum", "network_s": "sum", "floor_s": "sum", "time_s": "sum"}))
    with np.errstate(divide="ignore", invalid="ignore"):
        df["intensity_flop_per_byte"] = np.where(df["bytes"] > 0, df["flops"] / df["bytes"], np.inf)
    gpu_total = df["time_s"].sum()
    df["share"] = df["time_s"] / gpu_total if gpu_total > 0 else 0.0
    cols = ["operator", "kind", "layers", "flops", "bytes", "network_bytes", "intensity_flop_per_byte", "compute_s",
            "memory_s", "network_s", "floor_s", "time_s", "share", "bound", "description"]
    return df[cols]


def bound_table(step: StepResult, scenario: int = 0) -> dict[str, float]:
    """Seconds of the step by what bound each operator (compute / memory / network / latency), plus the
    pipeline hand-offs and the engine overhead."""
    df = op_table(step, scenario)
    out = {f"{b}_s": float(df.loc[df["bound"] == b, "time_s"].sum()) if not df.empty else 0.0 for b in BOUNDS}
    pp = step.stage_time_s.shape[0]
    out["pipeline_p2p_s"] = float((pp - 1) * step.p2p_time_s[scenario])
    out["overhead_s"] = float(step.overhead_s)
    return out
