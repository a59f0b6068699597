"""Per-problem time limits from the reference's measured time, and their cache."""

from __future__ import annotations

import json

import pytest

from next_jax.execution import time_limits
from next_jax.execution.verdict import Candidate

SLEEPY = Candidate("p/slow", "import time\ndef f():\n    time.sleep(0.3)\n    return 1\n", ("assert f() == 1",))
QUICK = Candidate("p/quick", "def f():\n    return 1\n", ("assert f() == 1",) * 3)
HANGS = Candidate("p/hangs", "def f():\n    while True:\n        pass\n", ("assert f() == 1",))
WRONG = Candidate("p/wrong", "def f():\n    return 2\n", ("assert f() == 1", "assert f() == 2"))


class NoPool:
    timeout = 7.0

    def verify(self, *args, **kwargs):
        raise AssertionError("measured again although the cache holds it")


def test_limits_follow_the_reference_time(pool, tmp_path):
    cache = tmp_path / "reference_times.json"
    limits = time_limits.reference_time_limits(pool, [SLEEPY, QUICK, WRONG], floor=0.5, factor=4.0, cache=cache)
    assert limits["p/slow"] >= 4 * 0.3 and limits["p/quick"] == 0.5 and limits["p/wrong"] == 0.5
    stored = json.loads(cache.read_text())
    assert stored["format"] == time_limits.FORMAT and stored["problems"]["p/wrong"]["status"] == "fail"
    assert stored["problems"]["p/slow"]["seconds"] >= 0.3
    again = time_limits.reference_time_limits(NoPool(), [SLEEPY, QUICK, WRONG], floor=0.5, factor=4.0, cache=cache)
    assert again == limits
    changed = Candidate(QUICK.id, QUICK.code, QUICK.tests[:1])  # new tests: the entry no longer applies
    with pytest.raises(AssertionError, match="measured again"):
        time_limits.reference_time_limits(NoPool(), [changed], cache=cache)


def test_a_reference_without_a_verdict_gets_the_fixed_limit(pool):
    times = time_limits.measure(pool, [HANGS], measure_timeout=1.0)
    assert times["p/hangs"].seconds is None and times["p/hangs"].status == "timeout"
    policy = time_limits.TimeLimitPolicy(floor=1.0, factor=4.0, default=9.0)
    assert policy.limit(times["p/hangs"]) == 9.0 and policy.limit(None) == 9.0
    assert policy.limit(time_limits.ReferenceTime(0.5, "pass", "")) == 2.0
    assert time_limits.reference_time_limits(pool, [HANGS], measure_timeout=1.0)["p/hangs"] == pool.timeout


def test_a_foreign_file_is_not_read_as_a_cache(tmp_path):
    path = tmp_path / "other.json"
    path.write_text(json.dumps({"problems": {}}))
    with pytest.raises(ValueError, match="reference-time cache"):
        time_limits.load(path)
    assert time_limits.load(tmp_path / "absent.json") == {}
