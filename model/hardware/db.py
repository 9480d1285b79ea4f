"""Loading the hardware database: built-in TOML files, user folders, paths and dicts.

Search order for an id: devices registered in this process, then folders named in the environment variable
RIDGEPLAN_HARDWARE_PATH (os.pathsep-separated), then the built-in `hardware_db/`. A user folder may hold
`devices/`, `links/` and `nodes/` subfolders or the TOML files directly (kind decided by the subfolder name).
"""

from __future__ import annotations

import difflib
import os
import tomllib
from collections.abc import Mapping
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from model.errors import RidgeplanError, UnknownNameError
from model.hardware.schema import Device, Link, NodeType

M = TypeVar("M", bound=BaseModel)

_ADD_HINT = (
    "To add one, drop a TOML file into hardware_db/{folder}/ (format: docs/hardware_db.md), point "
    "RIDGEPLAN_HARDWARE_PATH at a folder of such files, or pass a dict or a path"
)

_registered: dict[str, dict[str, BaseModel]] = {"devices": {}, "links": {}, "nodes": {}}


def builtin_root() -> Path:
    """The built-in hardware_db folder (installed as package data beside `model`)."""
    return Path(str(resources.files("hardware_db")))


def _search_roots() -> list[Path]:
    extra = [Path(p) for p in os.environ.get("RIDGEPLAN_HARDWARE_PATH", "").split(os.pathsep) if p]
    return [*extra, builtin_root()]


def _validation_message(err: ValidationError) -> tuple[str, str]:
    first = err.errors()[0]
    loc = ".".join(str(p) for p in first.get("loc", ())) or "file"
    msg = first.get("msg", "invalid").removeprefix("Value error, ")
    return loc, msg


def _parse(model: type[M], data: Mapping[str, Any], origin: str) -> M:
    try:
        return model.model_validate(dict(data))
    except ValidationError as err:
        loc, msg = _validation_message(err)
        raise RidgeplanError(f"{origin}: {loc}", msg) from None


def _read_toml(path: Path) -> dict[str, Any]:
    try:
        with path.open("rb") as fh:
            return tomllib.load(fh)
    except tomllib.TOMLDecodeError as err:
        raise RidgeplanError(str(path), f"is not valid TOML: {err}") from None
    except UnicodeDecodeError as err:
        raise RidgeplanError(str(path), f"is not UTF-8 text (byte {err.start}): TOML files are UTF-8") from None
    except OSError as err:
        raise RidgeplanError(str(path), f"cannot be read: {err.strerror}") from None


def _files(folder: str) -> dict[str, Path]:
    """id -> path for every TOML file of a kind; user folders override the built-in ones.

    Cached per (search path, folder modification times): adding or removing a file invalidates it."""
    roots = tuple(_search_roots())
    stamps = tuple(_mtime(r / folder) for r in roots) + tuple(_mtime(r) for r in roots)
    return dict(_scan(folder, roots, stamps))


def _mtime(path: Path) -> float:
    try:
        return path.stat().st_mtime_ns
    except OSError:
        return -1.0


@lru_cache(maxsize=64)
def _scan(folder: str, roots: tuple[Path, ...], stamps: tuple[float, ...]) -> tuple[tuple[str, Path], ...]:
    del stamps  # part of the cache key only
    found: dict[str, Path] = {}
    builtin = builtin_root()
    for root in reversed(roots):
        bases = [root / folder]
        if folder == "devices" and root != builtin:
            bases.append(root)  # a flat user folder holds device files directly
        for base in bases:
            if base.is_dir():
                for path in sorted(base.glob("*.toml")):
                    if not path.name.endswith(".calibration.toml"):
                        found[path.stem] = path
    return tuple(found.items())


@lru_cache(maxsize=None)
def _load_file(model_name: str, path: str, mtime: float) -> BaseModel:
    model = {"Device": Device, "Link": Link, "NodeType": NodeType}[model_name]
    data = _read_toml(Path(path))
    obj = _parse(model, data, Path(path).name)
    if obj.id != Path(path).stem:  # type: ignore[attr-defined]
        raise RidgeplanError(f"{Path(path).name}: id", f"must equal the file name {Path(path).stem!r}, got {obj.id!r}")  # type: ignore[attr-defined]
    return obj


def _get(folder: str, model: type[M], ident: str, field: str) -> M:
    if ident in _registered[folder]:
        return _registered[folder][ident]  # type: ignore[return-value]
    files = _files(folder)
    if ident not in files:
        known = sorted({*files, *_registered[folder]})
        close = difflib.get_close_matches(str(ident), known, n=3)
        hint = (f"Did you mean {', '.join(close)}? " if close else "") + _ADD_HINT.format(folder=folder)
        raise UnknownNameError(field, f"unknown {folder[:-1]} {ident!r}", f"run `ridgeplan hardware list` ({len(known)} known)", hint)
    path = files[ident]
    return _load_file(model.__name__, str(path), path.stat().st_mtime)  # type: ignore[return-value]


def load_device(spec: str | Path | Mapping[str, Any] | Device, field: str = "gpu") -> Device:
    """A device from an id, a TOML path, a dict in the file's layout, or a Device."""
    if isinstance(spec, Device):
        return spec
    if isinstance(spec, Mapping):
        data = dict(spec)
        sources = dict(data.get("sources") or {})
        for section in ("peak_flop_per_s", "memory", "on_chip", "scale_up", "scale_out", "host_link", "power"):
            if data.get(section):
                sources.setdefault(section, "supplied by the user")
        data["sources"] = sources
        return _parse(Device, data, "device dict")
    text = str(spec)
    if text.endswith(".toml") or os.sep in text:
        path = Path(text)
        if not path.is_file():
            raise RidgeplanError(field, f"no such device file {text!r}")
        return _parse(Device, _read_toml(path), path.name)
    return _get("devices", Device, text, field)


def get_link(ident: str, field: str = "link") -> Link:
    return _get("links", Link, ident, field)


def get_node(ident: str, field: str = "node") -> NodeType:
    return _get("nodes", NodeType, ident, field)


def register_device(spec: Mapping[str, Any] | Device) -> Device:
    """Add a device for this process (the app's 'custom device' uses this)."""
    device = load_device(spec)
    _registered["devices"][device.id] = device
    return device


def unregister_device(ident: str) -> None:
    _registered["devices"].pop(ident, None)


def device_ids() -> list[str]:
    return sorted({*_files("devices"), *_registered["devices"]})


def list_devices(kind: str | None = None) -> list[Device]:
    devices = [load_device(i) for i in device_ids()]
    return [d for d in devices if kind is None or d.kind == kind]


def list_links() -> list[Link]:
    return [get_link(i) for i in sorted(_files("links"))]


def list_nodes() -> list[NodeType]:
    return [get_node(i) for i in sorted(_files("nodes"))]


def validate_all() -> list[str]:
    """Load every file and check cross references; returns a list of problems (empty when all is well)."""
    problems: list[str] = []
    links = set(_files("links"))
    for folder, model in (("devices", Device), ("links", Link), ("nodes", NodeType)):
        for ident in sorted(_files(folder)):
            try:
                obj = _get(folder, model, ident, folder)
            except RidgeplanError as err:
                problems.append(err.one_line())
                continue
            refs: list[str] = []
            if isinstance(obj, Device):
                refs = [a.link for a in (obj.scale_up, obj.scale_out, obj.host_link) if a is not None]
            elif isinstance(obj, NodeType):
                refs = [x for x in (obj.scale_up_link, obj.scale_out_link) if x]
                if obj.device not in _files("devices"):
                    problems.append(f"{ident}.toml: device: unknown device {obj.device!r}")
                if obj.host_device and obj.host_device not in _files("devices"):
                    problems.append(f"{ident}.toml: host_device: unknown device {obj.host_device!r}")
            problems += [f"{ident}.toml: link: unknown link {r!r}" for r in refs if r not in links]
    return problems
