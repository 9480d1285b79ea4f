"""Device power per phase, power caps, energy and oversubscription (POLCA).

- Power of a phase: P = P_idle + (P_TDP − P_idle)·u, with u the utilisation of the binding resource:
  u = max(u_c, s_m·u_m), where u_c is the share of the step the GPU spends in compute-bound work and u_m the
  share in memory-bound work (from the roofline terms of every operator), and s_m (default 0.5, an assumption
  of this model) the share of the dynamic power range that streaming memory at full bandwidth draws compared
  with full-rate tensor-core math. So compute-bound prefill and training sit near TDP and memory-bound decode
  lower, as the catalogue describes. Devices without an idle figure get `DEFAULT_IDLE_FRACTION` of TDP.
- Power cap: a phase whose uncapped draw P exceeds the cap runs at a lower clock. Dynamic power scales as
  f·V², and with DVFS the voltage follows the clock, so P_dyn ∝ f^k with k = `CLOCK_POWER_EXPONENT` (3);
  the clock fraction is ((P_cap − P_idle)/(P − P_idle))^(1/k). Compute-bound time scales as 1/f; memory-bound
  and network time are unchanged (the memory clock is not throttled).
- Energy: J/token = P·T/tokens.
- Oversubscription: servers = budget / planned power per server; gain = provisioned/planned − 1, so a gain g
  needs planned power <= 1/(1 + g) of what is provisioned.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from model.errors import RidgeplanError
from model.hardware.schema import Device
from model.roofline.efficiency_forms import combine_roofline
from model.serving.deployment import Deployment

MEMORY_POWER_SHARE = 0.5
CLOCK_POWER_EXPONENT = 3.0
DEFAULT_IDLE_FRACTION = 0.1


def power_range_w(device: Device) -> tuple[float, float]:
    """(idle, TDP) watts of a device from its hardware file (idle defaults to 10% of TDP)."""
    if device.power is None:
        raise RidgeplanError("gpu", f"{device.name} has no [power] section in its hardware file")
    idle = device.power.idle_w if device.power.idle_w is not None else DEFAULT_IDLE_FRACTION * device.power.tdp_w
    return float(idle), float(device.power.tdp_w)


def phase_power_w(device: Device, compute_share, memory_share, *, memory_power_share: float = MEMORY_POWER_SHARE):
    """P_idle + (P_TDP − P_idle)·min(1, max(u_c, s_m·u_m)) for the shares of time in compute- and memory-bound
    work (vectorized)."""
    idle, tdp = power_range_w(device)
    u_c, u_m = np.asarray(compute_share, float), np.asarray(memory_share, float)
    u = np.minimum(1.0, np.maximum(u_c, memory_power_share * u_m))
    return idle + (tdp - idle) * u


def clock_fraction_under_cap(device: Device, uncapped_power_w, cap_w, *, exponent: float = CLOCK_POWER_EXPONENT):
    """Clock fraction f a cap leaves a phase that would draw `uncapped_power_w`: 1 below the cap, else
    ((cap − idle)/(P − idle))^(1/k)."""
    idle, _ = power_range_w(device)
    cap = np.asarray(cap_w, float)
    if np.any(cap <= idle):
        raise RidgeplanError("power_cap", f"a cap must exceed the idle power ({idle:.0f} W)")
    p = np.asarray(uncapped_power_w, float)
    with np.errstate(divide="ignore", invalid="ignore"):
        f = ((cap - idle) / np.maximum(p - idle, 1e-12)) ** (1.0 / exponent)
    return np.where(p <= cap, 1.0, np.minimum(f, 1.0))


def capped_time_s(compute_bound_s, other_s, clock_fraction):
    """Time under a cap: compute-bound seconds stretch by 1/f, the rest (memory, network, host) do not."""
    return np.asarray(compute_bound_s, float) / np.asarray(clock_fraction, float) + np.asarray(other_s, float)


@dataclass(frozen=True)
class PhasePower:
    """One step of a phase on each GPU of a replica, uncapped and under a cap (arrays over scenarios)."""

    time_s: np.ndarray
    compute_share: np.ndarray  # of the step in compute-bound work
    memory_share: np.ndarray  # of the step in memory-bound work
    power_w: np.ndarray  # uncapped draw per GPU
    cap_w: float | None
    clock_fraction: np.ndarray
    capped_time_s: np.ndarray
    tokens: np.ndarray  # tokens the step processes (whole replica)
    gpus: int = 1

    @property
    def slowdown(self) -> np.ndarray:
        """Capped time / uncapped time."""
        return self.capped_time_s / self.time_s

    @property
    def energy_j_per_token(self) -> np.ndarray:
        """Uncapped energy of all GPUs of the replica per token processed."""
        return self.power_w * self.time_s * self.gpus / self.tokens


def phase_power(device: Device, compute_bound_s, memory_bound_s, total_s, *, tokens=1.0, gpus: int = 1,
                cap_w: float | None = None, memory_power_share: float = MEMORY_POWER_SHARE,
                exponent: float = CLOCK_POWER_EXPONENT) -> PhasePower:
    """A phase given its seconds in compute-bound and memory-bound work out of `total_s` (e.g. a training
    step's compute and optimizer terms); under a cap only the compute-bound seconds stretch."""
    c, m, t = (np.asarray(x, float) for x in (compute_bound_s, memory_bound_s, total_s))
    p = phase_power_w(device, c / t, m / t, memory_power_share=memory_power_share)
    f = np.ones_like(p) if cap_w is None else clock_fraction_under_cap(device, p, cap_w, exponent=exponent)
    return PhasePower(t, c / t, m / t, p, cap_w, f, capped_time_s(c, t - c, f),
                      np.broadcast_to(np.asarray(tokens, float), np.shape(t)), gpus)


def step_power(d: Deployment, batch, new_tokens, context=0.0, *, cap_w: float | None = None,
               memory_power_share: float = MEMORY_POWER_SHARE, exponent: float = CLOCK_POWER_EXPONENT) -> PhasePower:
    """Power, and time under a cap, of one forward step (prefill: new_tokens > 1; decode: 1) of deployment `d`.

    Operator by operator the larger roofline term decides whether its time counts as compute-bound or
    memory-bound for the power draw; under a cap every operator's compute term stretches by 1/f and is
    recombined with its memory term as the evaluator does (`combine_roofline`); network time, kernel floors
    and the engine overhead are unchanged. One pipeline stage (pp = 1)."""
    if d.layout.pp != 1:
        raise RidgeplanError("pp", "the power model covers one pipeline stage (pp = 1)")
    ops, times, exposed = d.op_seconds(batch, new_tokens, context)
    counts = d.counts.sum(axis=0)
    overhead = d.eff.step_overhead_s
    compute_bound = (times.compute_s >= times.memory_s) & (times.compute_s >= times.network_s) & (times.compute_s > 0)
    memory_bound = ~compute_bound & (times.memory_s >= times.network_s) & (times.memory_s > 0)
    compute = counts @ np.where(compute_bound, times.compute_s, 0.0)
    memory = counts @ np.where(memory_bound, times.memory_s, 0.0)
    total = counts @ exposed + overhead
    p = phase_power_w(d.device, compute / total, memory / total, memory_power_share=memory_power_share)
    if cap_w is None:
        f, capped = np.ones_like(total), total
    else:
        f = clock_fraction_under_cap(d.device, p, cap_w, exponent=exponent)
        stretched = np.maximum(combine_roofline(times.compute_s / f, times.memory_s, d.eff.roofline_p), times.network_s)
        capped = counts @ (stretched + times.floor_s - times.comm_overlap * times.network_s) + overhead
    tokens = np.broadcast_to(np.asarray(batch, float) * np.asarray(new_tokens, float), total.shape)
    return PhasePower(total, compute / total, memory / total, p, cap_w, f, capped, tokens, d.layout.gpus_per_replica)


# ---------------------------------------------------------------------------------------------------------
# oversubscription

def oversubscription_gain(provisioned_w, planned_w):
    """Extra servers a power budget holds when planned at `planned_w` instead of `provisioned_w`: P_prov/P_plan − 1."""
    return np.asarray(provisioned_w, float) / np.asarray(planned_w, float) - 1.0


def planned_fraction_for_gain(gain):
    """Planned power per server, as a fraction of provisioned, that a gain g in servers needs: 1/(1 + g)."""
    return 1.0 / (1.0 + np.asarray(gain, float))


def servers_within_budget(budget_w, per_server_w):
    """Whole servers a power budget holds."""
    return np.floor(np.asarray(budget_w, float) / np.asarray(per_server_w, float) + 1e-9)
