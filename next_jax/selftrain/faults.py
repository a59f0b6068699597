"""Crash points for resume tests: `NEXT_JAX_SELFTRAIN_CRASH_AT=<point>` makes the process SIGKILL itself
when it reaches `<point>`, exactly as `kill -9` would at that moment (nothing is flushed or cleaned up).

Points: `stage:<name>` (right after a stage is recorded complete), `samples:<iter dir>:<shard>` (a shard's
samples are written, its verdicts not), `verdicts:<iter dir>:<shard>` (while verifying: candidates judged,
verdicts not written), `train:<name>:<step>` (after a training step and its checkpoint save).
"""

from __future__ import annotations

import os
import signal


def maybe_crash(point: str) -> None:
    if os.environ.get("NEXT_JAX_SELFTRAIN_CRASH_AT") == point:
        os.kill(os.getpid(), signal.SIGKILL)
