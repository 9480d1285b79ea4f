"""Printing helpers for the CLI: JSON with units in keys (raw numbers, a `schema_version` first), or rich tables
for people with every value formatted by `model.format` (the formatter the app shares)."""

from __future__ import annotations

import json
import math
from typing import TYPE_CHECKING, Any

import numpy as np
from rich.console import Console
from rich.table import Table
from rich.text import Text

from model import format as fmt
from model.format import SCHEMA_VERSION, gb, si, with_schema  # noqa: F401  (re-exported for the commands)

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
    print(json.dumps(_plain(with_schema(data)), indent=2))


def ms(s: float | None) -> str:
    return fmt.seconds(s)


def op_table_rich(df: pd.DataFrame, title: str) -> Table:
    table = Table(title=title, title_justify="left")
    for col, justify in (("operator", "left"), ("layers", "right"), ("FLOP", "right"), ("bytes", "right"),
                         ("FLOP/B", "right"), ("time", "right"), ("share", "right"), ("bound", "left")):
        table.add_column(col, justify=justify)
    for _, r in df.sort_values("time_s", ascending=False).iterrows():
        inten = r["intensity_flop_per_byte"]
        table.add_row(r["operator"], fmt.count(r["layers"]) if r["layers"] else "", si(r["flops"]), si(r["bytes"], "B"),
                      fmt.DASH if not math.isfinite(inten) else fmt.number(inten), ms(r["time_s"]),
                      fmt.percent(r["share"]), r["bound"])
    return table


def dict_table(title: str, data: dict[str, Any], skip: tuple[str, ...] = ("assumptions",)) -> Table:
    """A result dict as a two-column table: each key as a label, each value with the unit its key names."""
    return kv_table(title, fmt.rows(data, skip))


def kv_table(title: str, rows: list[tuple[str, str]]) -> Table:
    table = Table(title=title, title_justify="left", show_header=False)
    table.add_column("", style="bold")
    table.add_column("")
    for k, v in rows:
        table.add_row(Text(k), Text(v))  # Text: a '[efficiency]' inside a value is not rich markup
    return table
