"""What the execution tests share beyond fixtures: the session's sandbox uid block, an honest candidate and
`SandboxChecks`. A module of its own name so tests import it as `sandbox_checks`: `from conftest import` picks
whichever of the suite's conftest modules pytest loaded last, which depends on the paths given to pytest."""

from __future__ import annotations

import os
import pathlib
import time

from next_jax.execution import uid_block
from next_jax.execution.pool import VerificationPool
from next_jax.execution.verdict import Candidate, Verdict

WORKERS = 2
TIMEOUT = 3.0
# This session's pools take uids from a block reserved like the pool's own default (a flock held for the whole
# session), so concurrent sessions (xdist workers, other runs) never share uids or RLIMIT_NPROC.
# The block holds room for the session pool (4 uids) and a second, one-slot pool after it.
UID_BASE, _UID_LOCK = uid_block.reserve(8)
HONEST = Candidate("honest", "def add(a, b):\n    return a + b\n", ("assert add(2, 3) == 5", "assert add('a', 'b') == 'ab'"))


class SandboxChecks:
    """Assertions about the pool's processes and the host, shared by the execution tests."""

    def __init__(self, workers: int = WORKERS, uid_base: int = UID_BASE) -> None:
        self.workers, self.uid_base = workers, uid_base

    def processes(self, uid_base: int | None = None, workers: int | None = None) -> list[str]:
        """Processes whose real, effective, saved or fs uid is one of a pool's sandbox uids (default: ours)."""
        base = self.uid_base if uid_base is None else uid_base
        # Candidate uids only: each slot keeps one judge (trusted tests, plain values) alive between candidates.
        uids = range(base, base + 2 * (workers or self.workers), 2)
        found = []
        for entry in os.listdir("/proc"):
            if not entry.isdigit():
                continue
            try:
                with open(f"/proc/{entry}/status") as f:
                    status = dict(line.split(":", 1) for line in f if ":" in line)
            except OSError:  # it exited while we looked
                continue
            if any(int(x) in uids for x in status.get("Uid", "").split()):
                found.append(f"pid {entry} {status.get('Name', '?').strip()} ({status.get('State', '?').strip()})")
        return found

    def nothing_left_running(self, grace: float = 2.0, uid_base: int | None = None,
                             workers: int | None = None) -> None:
        """No sandboxed process survives a verdict by more than ``grace`` seconds."""
        deadline = time.monotonic() + grace
        while (left := self.processes(uid_base, workers)) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not left, f"sandboxed processes still running after the verdict: {left}"

    def pool_healthy(self, pool: VerificationPool) -> None:
        """Every slot still judges an honest candidate correctly (one per slot, submitted together)."""
        verdicts = pool.verify([HONEST] * self.workers)
        assert [v.status for v in verdicts] == ["pass"] * self.workers, verdicts

    @staticmethod
    def verify_one(pool: VerificationPool, code: str, tests: list[str] | tuple[str, ...], setup: str = "",
                   entry_point: str = "", all_tests: bool = False) -> Verdict:
        """One candidate through the pool, with per-test details."""
        return pool.verify([Candidate("c", code, tuple(tests), setup, entry_point)], details=True,
                           all_tests=all_tests)[0]

    @staticmethod
    def sentinel_state(dirs: dict[str, pathlib.Path]) -> dict:
        """Everything a candidate might have changed in the sentinel dirs (entries, modes, owners, content)."""
        state = {}
        for name, d in dirs.items():
            for path in [d, *sorted(d.rglob("*"))]:
                st = os.lstat(path)
                content = path.read_bytes() if path.is_file() else None
                state[f"{name}:{path.relative_to(d)}"] = (st.st_mode, st.st_uid, st.st_mtime_ns, content)
        return state
