"""Predicted time of single collective calls (all-reduce and the like inside one scale-up domain), so measured
collective tables can be fitted with the same formulas the step evaluator uses.

A collective op in a step costs collective_time(alpha-beta over the link tier) + collective_base_s, plus one
collective kernel floor (Efficiency.collective_floor; `model.roofline.evaluator.evaluate`); the scale-up tier is
the device file's link, with its bus efficiency replaced by a calibrated `scale_up_bus_efficiency` when one is set,
an in-switch all-reduce where `nvls_bus_efficiency` > 0 and the engine's custom all-reduce where
`custom_ar_bus_efficiency` > 0 (`model.placement.topology.efficiency_tiers`). The all-reduce tables keep per size the
faster of the engine's call and NCCL (`model.calibration.tables`), so rows are predicted with algorithm "fastest"
(a step runs the engine's call, "auto").
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from model.errors import RidgeplanError
from model.hardware.schema import Device
from model.placement.topology import efficiency_tiers
from model.roofline.collectives import KINDS, collective_time

COLLECTIVES = ("all_reduce", "all_gather", "reduce_scatter", "all_to_all")
COLUMNS = ("message_bytes", "ranks")


def predict_collectives(table: pd.DataFrame, device: Device, eff) -> np.ndarray:
    """Seconds for each row (kernel = a collective kind; message_bytes per rank; ranks inside one node)."""
    for col in COLUMNS:
        if col not in table or table[col].isna().any():
            raise RidgeplanError(col, "is needed for collective rows", COLUMNS)
    tier = efficiency_tiers(device, None, eff).intra
    out = np.zeros(len(table))
    kinds = table["kernel"].astype(str).to_numpy()
    for kind in set(kinds):
        if kind not in KINDS:
            raise RidgeplanError("kernel", f"unknown collective {kind!r}", COLLECTIVES)
        rows = kinds == kind
        t = collective_time(kind, table.loc[rows, "message_bytes"].to_numpy(float),
                            table.loc[rows, "ranks"].to_numpy(float), intra=tier, algorithm="fastest")
        out[rows] = np.where(t > 0, t + eff.collective_base_s, 0.0) + eff.collective_floor()
    return out
