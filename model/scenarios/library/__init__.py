"""Scenario modules, one per capability area of the catalogue. Every module in this package is imported (and
its scenarios registered) by `model.scenarios.load_all()`; a module may also define

    NOT_EXPRESSIBLE = {"<catalogue system name>": ("why it is not expressible yet", "what the planner lacks")}

for systems of its area that no scenario expresses."""

import importlib
import pkgutil

MODULES = []
for _info in pkgutil.iter_modules(__path__):
    MODULES.append(importlib.import_module(f"{__name__}.{_info.name}"))
