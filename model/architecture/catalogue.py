"""The built-in model catalogue: Hugging Face config.json files shipped in `catalogue/`, with the published
parameter counts they are checked against (`catalogue/index.toml`)."""

from __future__ import annotations

import difflib
import json
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Any

from model.architecture.config import Architecture, parse_config
from model.errors import RidgeplanError, UnknownNameError

_ADD_HINT = ("Pass a path to a Hugging Face config.json (or a dict of one), or add <id>.json and an entry in "
             "model/architecture/catalogue/index.toml")


@dataclass(frozen=True)
class CatalogueEntry:
    id: str
    hf_repo: str
    family: str
    published_total_params: float | None
    published_active_params: float | None
    params_source: str
    config_source: str
    notes: str
    published_significant_digits: int | None = None  # set when the published figure is rounded ("13B")
    active_excludes: str = "none"  # none | one_vocab_matrix | both_vocab_matrices
    config: str = ""  # config file relative to catalogue/ when not <id>.json (e.g. aic/org--Name_config.json)
    quant_config: str = ""  # hf_quant_config.json sidecar relative to catalogue/, if any

    def tolerance(self, published: float) -> float:
        """Relative tolerance for comparing a count with `published`: 1%, or one unit of the last published
        digit when the figure is rounded (so "13B" admits 12-14B)."""
        import math

        if not self.published_significant_digits:
            return 0.01
        unit = 10 ** (math.floor(math.log10(published)) - self.published_significant_digits + 1)
        return max(0.01, unit / published)


def _folder() -> Path:
    return Path(str(resources.files("model.architecture") / "catalogue"))


@lru_cache(maxsize=1)
def _index() -> dict[str, CatalogueEntry]:
    path = _folder() / "index.toml"
    with path.open("rb") as fh:
        raw = tomllib.load(fh)
    entries = {}
    for ident, row in raw.items():
        entries[ident] = CatalogueEntry(
            id=ident, hf_repo=row.get("hf_repo", ""), family=row.get("family", ""),
            published_total_params=row.get("published_total_params"),
            published_active_params=row.get("published_active_params"),
            params_source=row.get("params_source", ""), config_source=row.get("config_source", ""),
            notes=row.get("notes", ""),
            published_significant_digits=row.get("published_significant_digits"),
            active_excludes=row.get("active_excludes", "none"),
            config=row.get("config", ""), quant_config=row.get("quant_config", ""),
        )
    return entries


def model_ids() -> list[str]:
    """Curated catalogue ids: <id>.json files and index entries pointing at a config elsewhere (aic/)."""
    return sorted({p.stem for p in _folder().glob("*.json")} | {i for i, e in _index().items() if e.config})


_AIC_SUFFIX = "_config.json"
_AIC_SIDECAR = "_hf_quant_config.json"


@lru_cache(maxsize=1)
def _aic_files() -> dict[str, str]:
    """lower-case hub id (org/name) -> config file name, for every config in catalogue/aic/."""
    out = {}
    for p in sorted((_folder() / "aic").glob("*" + _AIC_SUFFIX)):
        if not p.name.endswith(_AIC_SIDECAR):
            out[p.name[: -len(_AIC_SUFFIX)].replace("--", "/", 1).lower()] = p.name
    return out


def aic_ids() -> list[str]:
    """Hub ids (org/Name) of the configs copied from aiconfigurator-core (catalogue/aic/README.md)."""
    return [f[: -len(_AIC_SUFFIX)].replace("--", "/", 1) for f in _aic_files().values()]


def _read_json(path: Path, field: str) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except UnicodeDecodeError:
        raise RidgeplanError(field, f"{path.name} is not UTF-8 text") from None
    except json.JSONDecodeError as err:
        raise RidgeplanError(field, f"{path.name} is not valid JSON (line {err.lineno}: {err.msg})") from None


@lru_cache(maxsize=128)
def _load_aic(key: str) -> Architecture:
    name = _aic_files()[key]
    folder = _folder() / "aic"
    sidecar = folder / name.replace(_AIC_SUFFIX, _AIC_SIDECAR)
    quant = _read_json(sidecar, "model") if sidecar.is_file() else None
    return parse_config(_read_json(folder / name, "model"), name=name[: -len(_AIC_SUFFIX)].replace("--", "/", 1),
                        quant_config=quant)


def catalogue_entry(ident: str) -> CatalogueEntry | None:
    return _index().get(ident)


@lru_cache(maxsize=None)
def _load_catalogue(ident: str) -> Architecture:
    entry = _index().get(ident)
    if entry is not None and entry.config:
        quant = _read_json(_folder() / entry.quant_config, "model") if entry.quant_config else None
        return parse_config(_read_json(_folder() / entry.config, "model"), name=ident, quant_config=quant)
    return parse_config(_read_json(_folder() / f"{ident}.json", "model"), name=ident)


def load_architecture(spec: str | Path | Mapping[str, Any] | Architecture, field: str = "model") -> Architecture:
    """An Architecture from a catalogue id, a config.json path, a config dict, or an Architecture."""
    if isinstance(spec, Architecture):
        return spec
    if isinstance(spec, Mapping):
        return parse_config(spec, name=str(spec.get("_name_or_path") or "custom"))
    text = str(spec)
    if text in model_ids():
        return _load_catalogue(text)
    if text.lower() in _aic_files():
        return _load_aic(text.lower())
    path = Path(text)
    if text.endswith(".json") or path.is_file():
        if not path.is_file():
            raise RidgeplanError(field, f"no such file {text!r}", hint=_ADD_HINT)
        data = _read_json(path, field)
        return parse_config(data, name=path.parent.name if path.name == "config.json" else path.stem)
    close = difflib.get_close_matches(text, model_ids() + aic_ids(), n=3)
    hint = (f"Did you mean {', '.join(close)}? " if close else "") + _ADD_HINT
    raise UnknownNameError(field, f"unknown model {text!r}", "run `ridgeplan models list`", hint)
