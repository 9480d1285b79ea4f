"""Validation against public measurements: kernel anchors and serving benchmarks, with errors per case."""

from model.validation.run import ValidationReport, validate

__all__ = ["ValidationReport", "validate"]
