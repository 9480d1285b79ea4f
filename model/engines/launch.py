"""What every engine's launch-flag table shares: a typed flag, the table, and a parser built from the table.

A table lists, for one engine version, every flag the planner emits with its value type (and allowed values) and
the document it comes from. `parse` reads an emitted command back with nothing but the table: an unknown flag, a
missing value or a value outside its choices is an error; each engine's `check_launch` then applies its
combination rules (for example SGLang's tp_size % dp_size == 0) to the parsed flags.
"""

from __future__ import annotations

import json
import shlex
from dataclasses import dataclass, field

from model.errors import RidgeplanError


@dataclass(frozen=True)
class Flag:
    name: str
    kind: str  # int | float | str | json | switch (no value)
    choices: tuple[str, ...] = ()
    source: str = ""  # where the flag is documented, when not the table's own source


@dataclass(frozen=True)
class LaunchTable:
    engine: str
    version: str  # the engine version whose flags these are
    source: str  # the document listing them
    entry: tuple[str, ...]  # the command words before the model (the model is the next word, or a flag's value)
    model_flag: str | None  # the flag that carries the model, when the model is not positional
    flags: tuple[Flag, ...]
    rocm: bool  # runs on AMD GPUs (ROCm builds)
    notes: tuple[str, ...] = field(default=())

    def flag(self, name: str) -> Flag:
        for f in self.flags:
            if f.name == name:
                return f
        raise RidgeplanError("launch", f"{self.engine} {self.version} has no flag {name}",
                             [f.name for f in self.flags])


def parse(table: LaunchTable, command: str) -> dict[str, object]:
    """Flags of an emitted command as {flag: value} (switches: True; 'model': the model); errors name the flag."""
    words = shlex.split(command)
    n = len(table.entry)
    if tuple(words[:n]) != table.entry:
        raise RidgeplanError("launch", f"expected a command starting {' '.join(table.entry)!r}, got {command[:60]!r}")
    out: dict[str, object] = {}
    rest = words[n:]
    if table.model_flag is None:
        if not rest or rest[0].startswith("--"):
            raise RidgeplanError("launch", f"{table.engine}: the model must follow {' '.join(table.entry)}")
        out["model"], rest = rest[0], rest[1:]
    i = 0
    while i < len(rest):
        name = rest[i]
        f = table.flag(name)
        if name in out:
            raise RidgeplanError("launch", f"{table.engine}: {name} given twice")
        if f.kind == "switch":
            out[name] = True
            i += 1
            continue
        if i + 1 >= len(rest) or rest[i + 1].startswith("--"):
            raise RidgeplanError("launch", f"{table.engine}: {name} needs a value")
        out[name] = _value(table, f, rest[i + 1])
        i += 2
    if table.model_flag is not None:
        if table.model_flag not in out:
            raise RidgeplanError("launch", f"{table.engine}: {table.model_flag} is required")
        out["model"] = out[table.model_flag]
    return out


def _value(table: LaunchTable, f: Flag, text: str) -> object:
    try:
        value: object = {"int": int, "float": float, "str": str, "json": json.loads}[f.kind](text)
    except ValueError:
        raise RidgeplanError("launch", f"{table.engine}: {f.name} takes a {f.kind}, got {text!r}") from None
    if f.choices and text not in f.choices:
        raise RidgeplanError("launch", f"{table.engine}: {f.name} {text!r} is not allowed", f.choices)
    return value


@dataclass(frozen=True)
class LaunchSpec:
    """One instance to launch, in engine-neutral terms (built by model.planner.commands)."""

    model: str  # the checkpoint to serve (a repo, or a $VARIABLE naming a checkpoint that must be supplied)
    tp: int
    pp: int
    ep: int
    dp: int  # attention data-parallel replicas (with ep > 1)
    weights: str  # weight format of the plan (bf16, fp8, int4, ...)
    kv: str  # KV-cache format of the plan
    checkpoint_format: str  # the format the checkpoint is stored in (bf16 for an unquantized repo)
    max_seqs: int
    batched_tokens: int
    role: str  # aggregated | prefill | decode
    gpu_arch: str  # hardware_db arch (hopper, ada, ampere, blackwell, cdna3, ...)
    vendor: str
    gpus: int  # GPUs of the instance
