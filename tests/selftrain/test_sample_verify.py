"""Sampling and verification overlap through a bounded queue, and a stage resumes shard by shard with every
(problem, sample index) exactly once."""

from __future__ import annotations

import threading
import time

import pytest

from next_jax.data.example import iter_jsonl
from next_jax.execution.verdict import Verdict
from next_jax.selftrain.sample_verify import Problem, read_joined, sample_and_verify, shards_of

FIX = "Reason.\n\nFixed program:\n```python\ndef f(x):\n    return x + 1\n```\n"
WRONG = "Reason.\n\nFixed program:\n```python\ndef f(x):\n    return x\n```\n"


def problems(n: int) -> list[Problem]:
    return [Problem(f"p{i:02d}", "#" * (i % 5 + 1), {"entry_point": "f", "tests": ["assert f(1) == 2"]})
            for i in range(n)]


class SlowGenerate:
    """Fixed completions after `delay` seconds per shard: sample 0 fixes, sample 1 is wrong, 2 unparsable."""

    def __init__(self, delay: float = 0.0) -> None:
        self.delay, self.calls = delay, []

    def __call__(self, shard, num_samples):
        self.calls.append([p.example_id for p in shard])
        time.sleep(self.delay)
        return [[(FIX, -1.0), (WRONG, -2.0), ("no code here", -3.0)][:num_samples] for _ in shard]


class SlowVerify:
    """Judges by the code text (no sandbox) after `delay` seconds per call."""

    def __init__(self, delay: float = 0.0) -> None:
        self.delay, self.seen = delay, []
        self.lock = threading.Lock()

    def __call__(self, candidates):
        time.sleep(self.delay)
        with self.lock:
            self.seen += [c.id for c in candidates]
        return [Verdict(c.id, "pass" if "x + 1" in c.code else "fail", int("x + 1" in c.code), 1) for c in candidates]


def test_stage_takes_about_the_longer_of_sampling_and_verification(tmp_path):
    delay, n_shards = 0.25, 6
    shards = shards_of(problems(n_shards * 2), 2, len)
    stats = sample_and_verify(shards, tmp_path, iteration=0, generate=SlowGenerate(delay), verify=SlowVerify(delay),
                              num_samples=2, queue_size=2)
    serial = 2 * delay * n_shards  # 3.0 s if sampling waited for verification
    assert stats.wall_seconds < 0.75 * serial, stats
    assert stats.sample_seconds >= delay * n_shards * 0.9 and stats.verify_seconds >= delay * n_shards * 0.9
    assert stats.samples == 24 and stats.passed == 12


def test_sampler_waits_only_when_the_queue_is_full(tmp_path):
    shards = shards_of(problems(8), 1, len)
    fast = sample_and_verify(shards, tmp_path / "a", iteration=0, generate=SlowGenerate(0.0),
                             verify=SlowVerify(0.0), num_samples=1, queue_size=2)
    slow = sample_and_verify(shards, tmp_path / "b", iteration=0, generate=SlowGenerate(0.0),
                             verify=SlowVerify(0.1), num_samples=1, queue_size=2)
    assert slow.sampler_wait_seconds > 0.3 > fast.sampler_wait_seconds


def test_records_parse_statuses_and_verdicts(tmp_path):
    stats = sample_and_verify(shards_of(problems(3), 2, len), tmp_path, iteration=4, generate=SlowGenerate(),
                              verify=SlowVerify(), num_samples=3)
    joined = read_joined(tmp_path)
    assert len(joined) == 9 and stats.parsed == 6 and stats.passed == 3
    by_index = {(s.example_id, s.index): (s, v) for s, v in joined}
    s, v = by_index[("p00", 2)]
    assert s.parse_status == "parse_no_code" and v["status"] == "parse_no_code" and s.iteration == 4
    s, v = by_index[("p01", 0)]
    assert s.parse_status == "ok" and "x + 1" in s.code and v["status"] == "pass" and s.logprob == -1.0


@pytest.mark.parametrize("stop_after", ["samples", "verdicts"])
def test_resume_skips_complete_shards_and_never_duplicates(tmp_path, stop_after):
    shards = shards_of(problems(6), 2, len)
    sample_and_verify(shards[:2], tmp_path, iteration=0, generate=SlowGenerate(), verify=SlowVerify(), num_samples=2)
    # An interrupted third shard: its samples were written, its verdicts were not.
    if stop_after == "samples":
        sample_and_verify(shards, tmp_path / "scratch", iteration=0, generate=SlowGenerate(), verify=SlowVerify(),
                          num_samples=2)
        name = sorted((tmp_path / "scratch" / "samples").glob("*"))[2].name
        (tmp_path / "samples").joinpath(name).write_bytes((tmp_path / "scratch" / "samples" / name).read_bytes())
    generate, verify = SlowGenerate(), SlowVerify()
    sample_and_verify(shards, tmp_path, iteration=0, generate=generate, verify=verify, num_samples=2)
    expected_sampled = [p.example_id for p in shards[2]] if stop_after == "verdicts" else []
    assert [i for call in generate.calls for i in call] == expected_sampled
    assert sorted(c.split("#")[0] for c in verify.seen) == sorted(p.example_id for p in shards[2] for _ in range(2))
    keys = [(s.example_id, s.index) for s, _ in read_joined(tmp_path)]
    assert len(keys) == len(set(keys)) == 12
    assert all(r["status"] in ("pass", "fail") for f in (tmp_path / "verdicts").glob("*") for r in iter_jsonl(f))


def test_a_verifier_error_reaches_the_caller(tmp_path):
    def broken(candidates):
        raise OSError("pool died")

    with pytest.raises(OSError, match="pool died"):
        sample_and_verify(shards_of(problems(6), 1, len), tmp_path, iteration=0, generate=SlowGenerate(),
                          verify=broken, num_samples=1, queue_size=1)
