"""Reserve a block of sandbox uids for one pool, so concurrent pools on a host never share uids.

Pools sharing a uid would share RLIMIT_NPROC (one pool's fork bomb starves the other) and could see each other's
processes. A block is held by an exclusive ``flock`` on a lock file for the pool's lifetime; the kernel drops the
lock when the process dies, so a crashed pool never leaks its block.
"""

from __future__ import annotations

import fcntl
import os
from typing import IO

FIRST_UID = 64000
BLOCK = 64
LOCK_DIR = "/tmp/next-jax-uids"


def reserve(count: int, blocks: int = 1000) -> tuple[int, IO[bytes]]:
    """Return (first uid, open lock file); close the file to release the block."""
    if count > BLOCK:
        raise ValueError(f"at most {BLOCK // 2} workers per pool")
    os.makedirs(LOCK_DIR, mode=0o700, exist_ok=True)
    for index in range(blocks):
        base = FIRST_UID + index * BLOCK
        lock = open(os.path.join(LOCK_DIR, f"{base}.lock"), "wb")
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            lock.close()
            continue
        return base, lock
    raise RuntimeError("no free sandbox uid block")
