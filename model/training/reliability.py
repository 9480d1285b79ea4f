"""Failures and checkpoints of long training runs.

- A job on N GPUs whose GPUs fail independently with mean time between failures M_gpu fails every
  M = M_gpu / N on average.
- A checkpoint of S bytes per GPU written at B bytes/s per GPU takes C = S / B (blocking).
- Young/Daly: the interval between checkpoints that minimises lost time is τ* ≈ sqrt(2·C·M) (Young 1974; Daly
  2006 adds higher-order terms, negligible while C << M).
- Lost fraction of wall time: checkpointing C/τ, plus per failure (rate 1/M) the detection time, the restart
  time and on average half an interval of recomputed work: C/τ + (t_detect + t_restart + τ/2)/M. Goodput is
  1 minus that (the catalogue's 1 − λ_fail·(t_detect + t_restart + t_lost), with checkpoint cost added).
"""

from __future__ import annotations

import numpy as np

from model.errors import RidgeplanError


def job_mtbf_s(gpus, gpu_mtbf_s):
    """Mean time between failures of a job on `gpus` GPUs that fail independently: M_gpu / N."""
    n = np.asarray(gpus, float)
    if np.any(n <= 0):
        raise RidgeplanError("gpus", "must be positive")
    return np.asarray(gpu_mtbf_s, float) / n


def checkpoint_s(bytes_per_gpu, bytes_per_s_per_gpu):
    """Blocking time to write one checkpoint: bytes per GPU / bandwidth per GPU."""
    return np.asarray(bytes_per_gpu, float) / np.asarray(bytes_per_s_per_gpu, float)


def young_daly_interval_s(checkpoint_cost_s, mtbf_s):
    """Checkpoint interval minimising lost time, sqrt(2·C·M)."""
    return np.sqrt(2.0 * np.asarray(checkpoint_cost_s, float) * np.asarray(mtbf_s, float))


def lost_fraction(interval_s, checkpoint_cost_s, mtbf_s, *, detect_s=0.0, restart_s=0.0):
    """Share of wall time lost to checkpoints and failures: C/τ + (t_detect + t_restart + τ/2)/M (capped at 1)."""
    tau, c, m = (np.asarray(x, float) for x in (interval_s, checkpoint_cost_s, mtbf_s))
    lost = c / tau + (np.asarray(detect_s, float) + np.asarray(restart_s, float) + tau / 2.0) / m
    return np.minimum(lost, 1.0)


def goodput_fraction(interval_s, checkpoint_cost_s, mtbf_s, *, detect_s=0.0, restart_s=0.0):
    """Share of wall time that advances training: 1 − `lost_fraction`."""
    return 1.0 - lost_fraction(interval_s, checkpoint_cost_s, mtbf_s, detect_s=detect_s, restart_s=restart_s)
