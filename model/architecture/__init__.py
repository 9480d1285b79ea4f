"""Model architectures read from Hugging Face config.json files (the first stage of the flow)."""

from model.architecture.catalogue import CatalogueEntry, aic_ids, catalogue_entry, load_architecture, model_ids
from model.architecture.config import Architecture, Attention, LayerGroup, Mlp, parse_config

__all__ = [
    "Architecture",
    "Attention",
    "CatalogueEntry",
    "LayerGroup",
    "Mlp",
    "aic_ids",
    "catalogue_entry",
    "load_architecture",
    "model_ids",
    "parse_config",
]
