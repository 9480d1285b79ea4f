"""A deployment whose scenario symbols are overridden: the way to price a storage format the precision table does
not list (sparse weights stored as value + index, mixed-precision KV) through the ordinary operator graph.

`override_symbols(d, note, b_w=..., b_kv=...)` returns a Deployment that behaves exactly like `d` except that
the named symbols (bytes per weight `b_w`, per expert weight `b_e`, per KV element `b_kv`, ...) take the given
values wherever the graph uses them: step time, resident weights, KV capacity. The note is added to the
deployment's assumptions.
"""

from __future__ import annotations

from dataclasses import dataclass, fields

from model.errors import RidgeplanError
from model.operators.symbols import DEFAULTS
from model.serving.deployment import Deployment


@dataclass(frozen=True)
class SymbolOverride(Deployment):
    overrides: tuple[tuple[str, float], ...] = ()
    notes: tuple[str, ...] = ()

    def symbols(self) -> dict[str, float]:
        return {**super().symbols(), **dict(self.overrides)}

    def assumptions(self) -> list[str]:
        return super().assumptions() + list(self.notes)


def override_symbols(d: Deployment, note: str, **values: float) -> SymbolOverride:
    """`d` with the named scenario symbols replaced (see module docstring)."""
    known = set(d.symbols()) | set(DEFAULTS)
    unknown = set(values) - known
    if unknown:
        raise RidgeplanError("override", f"unknown symbol(s) {sorted(unknown)}", sorted(known))
    for name, v in values.items():
        if not v > 0:
            raise RidgeplanError(name, f"must be > 0, got {v}")
    base = {f.name: getattr(d, f.name) for f in fields(Deployment)}
    old = dict(getattr(d, "overrides", ()))
    notes = tuple(getattr(d, "notes", ())) + (note,)
    return SymbolOverride(**base, overrides=tuple({**old, **values}.items()), notes=notes)
