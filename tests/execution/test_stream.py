"""The streaming interface: submit as candidates come, verdicts as they complete, bounded in flight, clean exit."""

from __future__ import annotations

import pytest

from next_jax.execution.verdict import Candidate

ADD = "def add(a, b):\n    return a + b\n"
SLOW_ADD = "import time\ndef add(a, b):\n    time.sleep(0.3)\n    return a + b\n"
LOOP = "def add(a, b):\n    while True:\n        pass\n"
TESTS = ("assert add(2, 3) == 5",)


def test_verdicts_come_back_with_their_tags(pool):
    codes = {i: ADD if i % 3 else ADD.replace("+", "-") for i in range(9)}
    got = {}
    with pool.stream(max_in_flight=3) as stream:
        for i, code in codes.items():
            stream.submit(Candidate(f"c{i}", code, TESTS), tag=("sample", i))
            got.update(stream.poll())
        got.update(stream.completed())
    assert sorted(got) == [("sample", i) for i in range(9)]
    assert all(got[("sample", i)].ok == bool(i % 3) for i in range(9)), got
    assert got[("sample", 4)].id == "c4"


def test_the_tag_defaults_to_the_id_and_close_waits(pool):
    with pool.stream() as stream:
        stream.submit(Candidate("only", SLOW_ADD, TESTS))
    assert [(tag, verdict.status) for tag, verdict in stream.poll()] == [("only", "pass")]


def test_submit_blocks_while_the_limit_is_in_flight(pool):
    with pool.stream(max_in_flight=2) as stream:
        for i in range(5):
            stream.submit(Candidate(f"s{i}", SLOW_ADD, TESTS))
            assert stream.in_flight <= 2
        assert sorted(tag for tag, _ in stream.completed()) == [f"s{i}" for i in range(5)]
    assert stream.in_flight == 0


def test_completed_returns_at_its_timeout_with_work_pending(pool):
    with pool.stream() as stream:
        stream.submit(Candidate("loop", LOOP, TESTS, timeout=1.0))
        assert list(stream.completed(timeout=0.05)) == []
        assert stream.in_flight == 1
        [(tag, verdict)] = list(stream.completed())
    assert (tag, verdict.status) == ("loop", "timeout")


@pytest.mark.parametrize("interrupt", [KeyboardInterrupt, RuntimeError])
def test_an_exception_cancels_and_leaves_nothing_running(pool, checks, interrupt):
    with pytest.raises(interrupt):
        with pool.stream(max_in_flight=4) as stream:
            for i in range(4):
                stream.submit(Candidate(f"loop{i}", LOOP, TESTS, timeout=60.0))
            raise interrupt()
    assert stream.in_flight == 0 and stream.poll() == []
    checks.nothing_left_running()
    checks.pool_healthy(pool)


def test_cancel_keeps_the_verdicts_finished_before(pool, checks):
    with pool.stream(max_in_flight=2) as stream:
        stream.submit(Candidate("fast", ADD, TESTS))
        assert [tag for tag, _ in stream.completed()] == ["fast"]
        stream.submit(Candidate("loop", LOOP, TESTS, timeout=60.0))
        stream.submit(Candidate("after", ADD, TESTS))
        stream.cancel()
        stream.close()
        with pytest.raises(RuntimeError, match="closed"):
            stream.submit(Candidate("late", ADD, TESTS))
    rest = stream.poll()  # "after" may have finished before the cancel; the killed loop never reports
    assert all(tag == "after" and verdict.ok for tag, verdict in rest), rest
    checks.nothing_left_running()
    checks.pool_healthy(pool)
