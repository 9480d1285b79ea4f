"""model.training.reliability: failure rates, Young/Daly intervals and lost time by hand."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from model.errors import RidgeplanError
from model.training import reliability as rel


def test_by_hand():
    """4,096 GPUs at 50,000 h MTBF each: the job fails every 12.2 h = 43,945 s. A 1.1 GB checkpoint per GPU at
    0.05 GB/s takes 22 s; Young/Daly: sqrt(2 x 22 x 43,945) = 1,390.5 s. Lost: 22/1390.5 + (600 + 600 +
    695.3)/43,945 = 1.58% + 4.31% = 5.89%."""
    m = float(rel.job_mtbf_s(4096, 50_000 * 3600))
    assert m == pytest.approx(43_945.3, rel=1e-4)
    c = float(rel.checkpoint_s(1.1e9, 0.05e9))
    assert c == pytest.approx(22.0)
    tau = float(rel.young_daly_interval_s(c, m))
    assert tau == pytest.approx(1390.5, rel=1e-4)
    lost = float(rel.lost_fraction(tau, c, m, detect_s=600, restart_s=600))
    assert lost == pytest.approx(22 / tau + (1200 + tau / 2) / m)
    assert lost == pytest.approx(0.0589, abs=5e-4)
    assert float(rel.goodput_fraction(tau, c, m, detect_s=600, restart_s=600)) == pytest.approx(1 - lost)
    with pytest.raises(RidgeplanError):
        rel.job_mtbf_s(0, 1.0)


@given(c=st.floats(0.1, 600.0), m=st.floats(3600.0, 1e7), scale=st.floats(0.2, 5.0))
def test_young_daly_minimises_the_first_order_loss(c, m, scale):
    """Without detection/restart costs, C/τ + τ/(2M) is smallest at τ* = sqrt(2CM)."""
    tau = float(rel.young_daly_interval_s(c, m))
    best = float(rel.lost_fraction(tau, c, m))
    other = float(rel.lost_fraction(tau * scale, c, m))
    assert best <= other + 1e-12
    assert np.isclose(best, min(1.0, 2 * c / tau), rtol=1e-9) or best == 1.0
