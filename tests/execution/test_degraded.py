"""The pool where the kernel gives no namespaces: still judged outside the candidate, still confined.

Without mount/pid/net/ipc/uts namespaces there is no private root, no private /tmp and no pid namespace to kill
in one go; what must still hold is everything the verdict rests on (values judged outside, exit codes ignored),
the time and process limits, Landlock's file-system confinement, the unprivileged uid, and that nothing the
candidate started outlives it (its process group is killed, then every process of its uid). Network cases are
left out: with no network namespace only Landlock guards it, and Landlock does not cover UDP.
A case may end in another non-passing status than with namespaces: with no private root, an unprivileged uid
cannot import modules the zygote did not pre-import from a Python installed under a private home (as on this CI
host, under /root), so some attacks stop at their import.
"""

from __future__ import annotations

import os
import string
import time
from collections.abc import Iterator

import pytest
from sandbox_checks import HONEST
from test_adversarial import CASES

from next_jax.execution.isolation import Limits
from next_jax.execution.pool import VerificationPool
from next_jax.execution.sandbox import SpawnConfig, Zygote

DEGRADED = ("loop_in_call", "loop_signals_blocked", "sleep_forever", "fork_bomb", "threads_left_running",
            "daemon_double_fork_setsid", "kill_minus_1", "kill_host_pids", "raise_rlimits", "run_commands",
            "memory_in_call", "eq_always_true", "int_subclass", "shadow_builtins_used_by_tests",
            "sys_exit_in_call", "os_exit_at_import", "forge_frames_in_call", "print_pass",
            "filesystem_outside_workdir", "read_repo_and_shared_data")


@pytest.fixture(scope="module")
def bare_pool(checks) -> Iterator[VerificationPool]:
    # The uid block reserved in conftest has room for this one-slot pool after the session pool's four uids
    # and the memory test's two.
    with VerificationPool(workers=1, timeout=3.0, uid_base=checks.uid_base + 6, namespaces=()) as pool:
        yield pool


def test_degraded_pool_says_what_it_lacks(bare_pool):
    assert "namespaces=none" in bare_pool.isolation
    assert [v.status for v in bare_pool.verify([HONEST, HONEST])] == ["pass", "pass"]


def test_next_child_of_a_uid_outlives_the_sweep_of_the_last(checks):
    """Without a pid namespace a finished child's uid is swept once it is reaped; the child after it, same uid,
    must not be spawned before that sweep (it used to be, and died in set-up or mid-run: a lost honest verdict).
    A child holding memory takes long enough to die to open that window every time."""
    uid = checks.uid_base + 6  # the bare pool's candidate uid, idle between its tests
    zygote = Zygote(namespaces=())
    config = SpawnConfig(Limits(), uid, uid)
    try:
        for _ in range(10):
            with zygote.spawn("candidate", config) as heavy:
                heavy.channel.send({"op": "load", "code": "held = [bytearray(1 << 20) for _ in range(60)]"})
                assert "names" in heavy.channel.recv(time.monotonic() + 10)
            light = zygote.spawn("candidate", config)
            light.channel.send({"op": "load", "code": "y = 1"})
            assert "names" in light.channel.recv(time.monotonic() + 10)
            light.close()
    finally:
        zygote.close()
    checks.nothing_left_running(uid_base=checks.uid_base + 6, workers=1)


@pytest.mark.parametrize("case", [c for c in CASES if c.name in DEGRADED], ids=lambda c: c.name)
def test_hostile_candidate_is_contained_without_namespaces(bare_pool, checks, host_sentinel, data_root, case):
    context = {"repo_dir": host_sentinel["repo"], "tmp_dir": host_sentinel["tmp"], "data_root": data_root,
               "host_pid": os.getpid(), "host_ppid": os.getppid()}
    before = checks.sentinel_state(host_sentinel)
    verdict = checks.verify_one(bare_pool, string.Template(case.code).safe_substitute(context), case.tests)
    assert verdict.status != "pass", verdict
    checks.nothing_left_running(uid_base=checks.uid_base + 6, workers=1)
    assert checks.sentinel_state(host_sentinel) == before
    assert [v.status for v in bare_pool.verify([HONEST])] == ["pass"]
