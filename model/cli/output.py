"""Printing helpers for the CLI: JSON with units in keys, or rich tables for people."""

from __future__ import annotations

import json
import math
from typing import TYPE_CHECKING, Any

import numpy as np
from rich.console import Console
from rich.table import Table

if TYPE_CHECKING:  # pandas costs ~0.5 s to import; only annotations need it here
    import pandas as pd

console = Console(highlight=False, soft_wrap=False, width=160)


def _plain(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, np.ndarray):
        return [_plain(v) for v in value.tolist()]
    if isinstance(value, (np.floating, float)):
        f = float(value)
        return f if math.isfinite(f) else None
    if isinstance(value, (np.integer,)):
        return int(value)
    if isinstance(value, np.bool_):
        return bool(value)
    return value


def print_json(data: dict[str, Any]) -> None:
    print(json.dumps(_plain(data), indent=2))


def gb(n: float) -> str:
    return f"{n / 1e9:,.2f} GB"


def ms(s: float | None) -> str:
    return "-" if s is None else f"{s * 1e3:,.2f} ms"


def si(n: float, unit: str = "") -> str:
    for scale, prefix in ((1e15, "P"), (1e12, "T"), (1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(n) >= scale:
            return f"{n / scale:,.2f} {prefix}{unit}"
    return f"{n:,.2f} {unit}".rstrip()


def op_table_rich(df: pd.DataFrame, title: str) -> Table:
    table = Table(title=title, title_justify="left")
    for col, justify in (("operator", "left"), ("layers", "right"), ("FLOP", "right"), ("bytes", "right"),
                         ("FLOP/B", "right"), ("time", "right"), ("share", "right"), ("bound", "left")):
        table.add_column(col, justify=justify)
    for _, r in df.sort_values("time_s", ascending=False).iterrows():
        inten = r["intensity_flop_per_byte"]
        table.add_row(r["operator"], str(int(r["layers"])) if r["layers"] else "", si(r["flops"]), si(r["bytes"], "B"),
                      "-" if not math.isfinite(inten) else f"{inten:,.1f}", ms(r["time_s"]), f"{r['share']:.1%}",
                      r["bound"])
    return table


def kv_table(title: str, rows: list[tuple[str, str]]) -> Table:
    table = Table(title=title, title_justify="left", show_header=False)
    table.add_column("", style="bold")
    table.add_column("")
    for k, v in rows:
        table.add_row(k, v)
    return table
