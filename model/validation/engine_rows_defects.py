"""Engine rows whose measurement is not a serving run the model could be compared with, each with its evidence.

A row listed here is reported with its reason (like a row that cannot be expressed), never silently dropped and
never compared: its error would measure the data, not the model. A defect is named by the row's model, engine,
system and the export file its silicon_data_source records, and carries the evidence that decided it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class DataDefect:
    model_path: str
    backend: str
    system: str
    source_file: str  # a substring of the row's `source_file=` entry in silicon_data_source
    reason: str


DEFECTS = (
    DataDefect(
        "nvidia/DeepSeek-R1-NVFP4", "trtllm", "b200_sxm", "trtllm/1.3.0rc1/nvidia_DeepSeek-R1-NVFP4.csv",
        "measured TPOT is not a decode step of this launch (data defect): 85-92 ms at every batch (5 to 56) and "
        "both TP4 and TP8, where TPOT must grow with batch and fall with TP; 7-12x the plain (no MTP) "
        "deepseek-ai/DeepSeek-R1 fp4 TensorRT-LLM B200 rows of the same architecture and format at batch 4-16 (TP8 "
        "batch 4, 8k/1k: 7.5 ms; TP4 batch 8, 8k/1k: 10.5 ms; TP8 batch 16: 11.6-11.9 ms) and 4x the same harness's nvidia/DeepSeek-V3.1-NVFP4 B200 row at batch 56, "
        "TP8 (21.2 ms); and over 13x the time to read every weight a TP8 GPU holds once (about 50 GB at "
        "8 TB/s: 6.3 ms, ridgeplan's resident weights of this TP8 x EP8 launch)"),
)


def source_file(row: Mapping[str, Any]) -> str:
    """The `source_file=` entry of a row's silicon_data_source ('' when absent)."""
    from model.validation.engine_rows_layout import source_field

    return source_field(row.get("silicon_data_source", ""), "source_file")


def data_defect_reason(row: Mapping[str, Any]) -> str:
    """Why a row's measurement is set aside as a data defect ('' for every other row)."""
    src = source_file(row)
    for d in DEFECTS:
        if (str(row.get("model_path")) == d.model_path and str(row.get("backend")) == d.backend
                and str(row.get("system")) == d.system and d.source_file in src):
            return d.reason
    return ""
