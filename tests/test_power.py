"""model.techniques.power: phase power, caps and oversubscription by hand, and the directions the catalogue names."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from model.api import deployment
from model.errors import RidgeplanError
from model.hardware import load_device
from model.techniques import power as pw


def test_phase_power_by_hand():
    """H100 (70 W idle, 700 W TDP): a step 90% compute-bound draws 70 + 630 x 0.9 = 637 W; a step 90% memory-bound
    draws 70 + 630 x 0.5 x 0.9 = 353.5 W. A device without an idle figure (RTX A6000, 300 W) idles at 30 W."""
    h100 = load_device("h100-sxm")
    assert pw.power_range_w(h100) == (70.0, 700.0)
    assert float(pw.phase_power_w(h100, 0.9, 0.05)) == pytest.approx(637.0)
    assert float(pw.phase_power_w(h100, 0.05, 0.9)) == pytest.approx(353.5)
    assert pw.power_range_w(load_device("rtx-a6000")) == (30.0, 300.0)


def test_cap_by_hand():
    """A 637 W phase under a 420 W cap: f = ((420 − 70)/(637 − 70))^(1/3) = 0.8513; a step of 1 s compute-bound
    and 0.2 s other becomes 1/0.8513 + 0.2 = 1.3747 s. Under the cap nothing changes; a cap at idle is an error."""
    h100 = load_device("h100-sxm")
    f = float(pw.clock_fraction_under_cap(h100, 637.0, 420.0))
    assert f == pytest.approx((350 / 567) ** (1 / 3))
    assert float(pw.capped_time_s(1.0, 0.2, f)) == pytest.approx(1 / f + 0.2)
    assert float(pw.clock_fraction_under_cap(h100, 400.0, 420.0)) == 1.0
    with pytest.raises(RidgeplanError):
        pw.clock_fraction_under_cap(h100, 637.0, 70.0)
    p = pw.phase_power(h100, 1.0, 0.0, 1.2, cap_w=420.0)
    assert float(p.slowdown) == pytest.approx((1 / float(p.clock_fraction) + 0.2) / 1.2)


def test_oversubscription_by_hand():
    """30% more servers needs planned power <= 1/1.3 = 76.9% of provisioned; 1 MW of 5.6 kW servers holds 178 at
    nameplate and 232 at 76.9%."""
    assert float(pw.planned_fraction_for_gain(0.3)) == pytest.approx(0.7692, abs=1e-4)
    assert float(pw.oversubscription_gain(1.0, 1 / 1.3)) == pytest.approx(0.3)
    assert int(pw.servers_within_budget(1e6, 5600)) == 178
    assert int(pw.servers_within_budget(1e6, 5600 / 1.3)) == 232


def test_prefill_draws_more_and_slows_more_than_decode():
    """Llama-3.1-8B on one H100: prefill (compute-bound) draws more than decode (memory-bound); under a 60% cap
    prefill slows and decode hardly does; uncapped, the capped time equals the step time."""
    d = deployment("llama-3.1-8b", "h100-sxm")
    pre, dec = pw.step_power(d, 2, 2048, 0), pw.step_power(d, 64, 1, 2048)
    assert pre.power_w[0] > dec.power_w[0]
    assert pre.compute_share[0] > 0.5 and dec.memory_share[0] > 0.5
    assert pre.capped_time_s[0] == pre.time_s[0]
    pre_c, dec_c = pw.step_power(d, 2, 2048, 0, cap_w=420), pw.step_power(d, 64, 1, 2048, cap_w=420)
    assert pre_c.slowdown[0] > 1.05 and dec_c.slowdown[0] < 1.01
    # f = 1 reproduces the evaluator's own step time
    same = pw.step_power(d, 2, 2048, 0, cap_w=10_000)
    assert same.capped_time_s[0] == pytest.approx(pre.time_s[0], rel=1e-9)
    assert dec.energy_j_per_token[0] == pytest.approx(dec.power_w[0] * dec.time_s[0] / 64)
    with pytest.raises(RidgeplanError):
        pw.step_power(deployment("llama-3.1-8b", "h100-sxm", pp=2), 1, 1, 0)


@given(u_c=st.floats(0, 1), u_m=st.floats(0, 1), cap=st.floats(100, 700))
def test_power_bounds_and_monotone_cap(u_c, u_m, cap):
    """Power stays within [idle, TDP]; a tighter cap never raises the clock."""
    h100 = load_device("h100-sxm")
    p = float(pw.phase_power_w(h100, u_c, u_m))
    assert 70 - 1e-9 <= p <= 700 + 1e-9
    f1 = float(pw.clock_fraction_under_cap(h100, p, cap))
    f2 = float(pw.clock_fraction_under_cap(h100, p, cap * 0.9 if cap * 0.9 > 70 else cap))
    assert 0 < f2 <= f1 <= 1
    assert np.isfinite(f1)
